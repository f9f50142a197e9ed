"""Drift of one numeric feature's mean, detected online with ADWIN."""

import math
from collections import deque
from dataclasses import dataclass

from river import drift

from driftline.monitors.changepoint import estimate_mean_change


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """What a detector saw when it fired: the evidence of one drift.

    ``observation`` counts the values the detector has seen, the one that
    fired included. ``change_observation`` is the estimated first value after
    the change; ``mean_before`` summarises the ``values_before`` values just
    before it, ``mean_after`` the ``values_after`` values from it on.
    """

    observation: int
    change_observation: int
    mean_before: float
    mean_after: float
    values_before: int
    values_after: int
    delta: float


class AdwinDriftDetector:
    """ADWIN on one numeric stream, reporting where and how far the mean moved.

    ADWIN (Bifet and Gavaldà, 2007) keeps a window of recent values, and cuts
    its older part off when the means of two parts differ by more than
    chance allows at confidence ``delta``. It needs no reference and adapts
    its window to the rate of change. It sees changes of the mean only.

    ADWIN's own cut is coarse (its window is summarised in buckets), so when
    it fires, the change point and the means on either side are estimated
    afresh from the last ``history`` values (see :func:`estimate_mean_change`).

    Parameters
    ----------
    delta
        Confidence of each cut: smaller means fewer false alarms and later
        detection.
    clock
        How often, in observations, the window is checked for a cut.
    history
        How many recent values are kept to estimate the change point; a
        change further back than this is placed at its start.

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
    (1024, 1001)
    >>> round(finding.mean_before, 2), round(finding.mean_after, 2)
    (0.02, 2.83)
    """

    def __init__(self, delta: float = 0.002, clock: int = 32, history: int = 256) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        if clock < 1:
            raise ValueError(f"clock must be a positive number of observations, got {clock!r}")
        if history < 2:
            raise ValueError(f"history must be at least 2 values, got {history!r}")
        self.delta = delta
        self.clock = clock
        self.history = history
        self._adwin = drift.ADWIN(delta=delta, clock=clock)  # type: ignore[no-untyped-call]
        self._recent: deque[float] = deque(maxlen=history)
        self._observations = 0
        self._drift_detected = False
        self._last_finding: DriftFinding | None = None

    def update(self, x: float) -> None:
        """Feed one value. Non-finite values are refused: they would poison ADWIN."""
        if not math.isfinite(x):
            raise ValueError(f"drift detectors take finite values only, got {x!r}")
        self._adwin.update(x)  # type: ignore[no-untyped-call]
        self._recent.append(x)
        self._observations += 1
        self._drift_detected = self._adwin.drift_detected
        if self._drift_detected:
            self._last_finding = self._finding()

    def _finding(self) -> DriftFinding:
        change = estimate_mean_change(self._recent)
        first_recent = self._observations - len(self._recent) + 1
        return DriftFinding(
            observation=self._observations,
            change_observation=first_recent + change.split,
            mean_before=change.mean_before,
            mean_after=change.mean_after,
            values_before=change.split,
            values_after=len(self._recent) - change.split,
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
