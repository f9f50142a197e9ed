"""One monitor per model version: the detectors of all its features."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from driftline.monitors.drift import AdwinDriftDetector, DriftFinding
from driftline.schemas import PredictionEvent


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """A drift of one feature, found while processing one event."""

    feature: str
    event_id: str
    event_time: datetime
    finding: DriftFinding


class ModelMonitor:
    """Keeps a drift detector per numeric feature of one model version.

    A detector is created for a feature the first time the feature is seen,
    up to ``max_features``; features beyond that are counted in
    ``features_ignored`` and never get state, so a producer sending ever new
    feature names cannot grow a worker's memory without bound.

    Examples
    --------
    >>> import random
    >>> from datetime import UTC, datetime
    >>> rng = random.Random(1)
    >>> monitor = ModelMonitor("churn", "3")
    >>> drifts = []
    >>> for i in range(3000):
    ...     event = PredictionEvent(
    ...         model_id="churn", model_version="3", event_id=f"e{i}",
    ...         event_time=datetime(2026, 1, 1, tzinfo=UTC),
    ...         features={"x": rng.gauss(0 if i < 1500 else 3, 1), "y": rng.gauss(0, 1)},
    ...     )
    ...     drifts.extend(monitor.update(event))
    >>> sorted({d.feature for d in drifts})
    ['x']
    >>> drifts[0].event_id
    'e1535'
    """

    def __init__(
        self,
        model_id: str,
        model_version: str,
        *,
        detector_factory: Callable[[], AdwinDriftDetector] = AdwinDriftDetector,
        max_features: int = 1_000,
    ) -> None:
        self.model_id = model_id
        self.model_version = model_version
        self.detector_factory = detector_factory
        self.max_features = max_features
        self._detectors: dict[str, AdwinDriftDetector] = {}
        self._events = 0
        self._features_ignored = 0

    def update(self, event: PredictionEvent) -> list[FeatureDrift]:
        """Feed one event of this model version; return the drifts it revealed."""
        if (event.model_id, event.model_version) != (self.model_id, self.model_version):
            raise ValueError(
                f"event of {event.model_id}/{event.model_version} fed to the monitor of "
                f"{self.model_id}/{self.model_version}"
            )
        self._events += 1
        drifts: list[FeatureDrift] = []
        for name, value in event.features.items():
            detector = self._detector(name)
            if detector is None:
                continue
            detector.update(value)
            if detector.drift_detected and detector.last_finding is not None:
                drifts.append(
                    FeatureDrift(name, event.event_id, event.event_time, detector.last_finding)
                )
        return drifts

    def _detector(self, feature: str) -> AdwinDriftDetector | None:
        detector = self._detectors.get(feature)
        if detector is None:
            if len(self._detectors) >= self.max_features:
                self._features_ignored += 1
                return None
            detector = self._detectors[feature] = self.detector_factory()
        return detector

    @property
    def events(self) -> int:
        """How many events this monitor has processed."""
        return self._events

    @property
    def features(self) -> list[str]:
        """The features being monitored, in the order they were first seen."""
        return list(self._detectors)

    @property
    def features_ignored(self) -> int:
        """Feature values skipped because ``max_features`` was reached."""
        return self._features_ignored
