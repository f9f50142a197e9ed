"""Drift of one numeric feature's mean, detected online with ADWIN."""

import math
from dataclasses import dataclass

from river import drift


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """What a detector saw when it fired: the evidence of one drift.

    ``observation`` counts the values the detector has seen, the one that
    fired included; ``change_observation`` estimates where the change began.
    """

    observation: int
    mean_before: float
    mean_after: float
    window_before: int
    window_after: int
    delta: float

    @property
    def change_observation(self) -> int:
        """The first observation of the window ADWIN kept: the estimated change."""
        return self.observation - self.window_after + 1


class AdwinDriftDetector:
    """ADWIN on one numeric stream, reporting evidence when the mean moves.

    ADWIN (Bifet and Gavaldà, 2007) keeps a window of recent values, and cuts
    its older part off when the means of the two parts differ by more than
    chance allows at confidence ``delta``. It needs no reference and adapts
    its window to the rate of change. It sees changes of the mean only.

    Parameters
    ----------
    delta
        Confidence of each cut: smaller means fewer false alarms and later
        detection.
    clock
        How often, in observations, the window is checked for a cut.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> detector = AdwinDriftDetector()
    >>> stream = [rng.gauss(0, 1) for _ in range(1000)] + [rng.gauss(3, 1) for _ in range(1000)]
    >>> for value in stream:
    ...     detector.update(value)
    ...     if detector.drift_detected:
    ...         break
    >>> finding = detector.last_finding
    >>> finding.observation, finding.change_observation
    (1024, 985)
    >>> round(finding.mean_before, 2), round(finding.mean_after, 2)
    (0.03, 1.66)
    """

    def __init__(self, delta: float = 0.002, clock: int = 32) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if clock < 1:
            raise ValueError(f"clock must be a positive number of observations, got {clock!r}")
        self.delta = delta
        self.clock = clock
        self._adwin = drift.ADWIN(delta=delta, clock=clock)  # type: ignore[no-untyped-call]
        self._observations = 0
        self._drift_detected = False
        self._last_finding: DriftFinding | None = None

    def update(self, x: float) -> None:
        """Feed one value. Non-finite values are refused: they would poison ADWIN."""
        if not math.isfinite(x):
            raise ValueError(f"drift detectors take finite values only, got {x!r}")
        width_before = int(self._adwin.width)
        sum_before = self._adwin.estimation * width_before
        self._adwin.update(x)  # type: ignore[no-untyped-call]
        self._observations += 1
        self._drift_detected = self._adwin.drift_detected
        if not self._drift_detected:
            return
        width_after = int(self._adwin.width)
        sum_after = self._adwin.estimation * width_after
        dropped = width_before + 1 - width_after
        self._last_finding = DriftFinding(
            observation=self._observations,
            mean_before=(sum_before + x - sum_after) / dropped if dropped else math.nan,
            mean_after=self._adwin.estimation,
            window_before=dropped,
            window_after=width_after,
            delta=self.delta,
        )

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a drift."""
        return self._drift_detected

    @property
    def last_finding(self) -> DriftFinding | None:
        """The evidence of the most recent drift, if any was detected."""
        return self._last_finding

    @property
    def observations(self) -> int:
        """How many values this detector has seen."""
        return self._observations
