"""One monitor per model version: data quality and drift of all its features."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from driftline.monitors.drift import AdwinDriftDetector, DriftFinding
from driftline.monitors.quality import DataQualityMonitor, QualityFinding
from driftline.schemas import FeatureEvent, FeatureKind, ModelSpec, PredictionEvent

DRIFT_KINDS = frozenset({FeatureKind.NUMERIC, FeatureKind.BOOLEAN})
"""Feature kinds whose values a mean detector can watch (booleans as 0 and 1)."""


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """A drift of one feature, found while processing one event."""

    feature: str
    event_id: str
    event_time: datetime
    finding: DriftFinding


@dataclass(frozen=True, slots=True)
class ModelFindings:
    """What one event revealed about its model version."""

    drifts: list[FeatureDrift] = field(default_factory=list)
    quality: list[QualityFinding] = field(default_factory=list)


class ModelMonitor:
    """Checks every event of one model version against its spec, and watches for drift.

    Each event's features go through the data-quality checks of the
    :class:`~driftline.schemas.ModelSpec`; the values that pass as numbers
    (booleans as 0 and 1) of the features marked ``monitor`` feed one drift
    detector each. Detectors exist for the spec's features only, created up
    front, at most ``max_monitored_features`` of them: a producer sending new
    feature names cannot make a worker's memory grow.

    Examples
    --------
    >>> import random
    >>> from datetime import UTC, datetime
    >>> from driftline.schemas import FeatureSpec, TaskType
    >>> spec = ModelSpec(
    ...     model_id="churn", model_version="3", task=TaskType.REGRESSION,
    ...     features=[FeatureSpec(name="x", kind="numeric"), FeatureSpec(name="y", kind="numeric")],
    ... )
    >>> rng = random.Random(1)
    >>> monitor = ModelMonitor(spec)
    >>> drifts = []
    >>> for i in range(3000):
    ...     event = PredictionEvent(
    ...         model_id="churn", model_version="3", event_id=f"e{i}",
    ...         event_time=datetime(2026, 1, 1, tzinfo=UTC),
    ...         features={"x": rng.gauss(0 if i < 1500 else 3, 1), "y": rng.gauss(0, 1)},
    ...     )
    ...     drifts.extend(monitor.update(event).drifts)
    >>> sorted({d.feature for d in drifts})
    ['x']
    >>> drifts[0].event_id
    'e1535'
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        detector_factory: Callable[[], AdwinDriftDetector] = AdwinDriftDetector,
        max_monitored_features: int = 1_000,
        quality_alpha: float = 1e-4,
    ) -> None:
        self.spec = spec
        self.detector_factory = detector_factory
        self.max_monitored_features = max_monitored_features
        self.quality_alpha = quality_alpha
        self._quality = DataQualityMonitor(spec, alpha=quality_alpha)
        watchable = [f.name for f in spec.features if f.monitor and f.kind in DRIFT_KINDS]
        self._detectors = {name: detector_factory() for name in watchable[:max_monitored_features]}
        self._features_unmonitored = len(watchable) - len(self._detectors)
        self._events = 0

    def update(self, event: PredictionEvent | FeatureEvent) -> ModelFindings:
        """Feed one event of this model version; return what it revealed.

        An event without features (they may come separately) changes nothing.
        """
        if (event.model_id, event.model_version) != (self.spec.model_id, self.spec.model_version):
            raise ValueError(
                f"event of {event.model_id}/{event.model_version} fed to the monitor of "
                f"{self.spec.model_id}/{self.spec.model_version}"
            )
        if event.features is None:
            return ModelFindings()
        self._events += 1
        checked = self._quality.update(event.features)
        drifts: list[FeatureDrift] = []
        for name, detector in self._detectors.items():
            value = checked.values[name].numeric
            if value is None:
                continue
            detector.update(value)
            if detector.drift_detected and detector.last_finding is not None:
                drifts.append(
                    FeatureDrift(name, event.event_id, event.event_time, detector.last_finding)
                )
        return ModelFindings(drifts=drifts, quality=checked.findings)

    @property
    def events(self) -> int:
        """How many events with features this monitor has processed."""
        return self._events

    @property
    def monitored_features(self) -> list[str]:
        """The features watched for drift, in the spec's order."""
        return list(self._detectors)

    @property
    def features_unmonitored(self) -> int:
        """Features marked for monitoring that got no detector: past the limit."""
        return self._features_unmonitored

    @property
    def unexpected_features(self) -> int:
        """Feature values received under names the spec does not know."""
        return self._quality.unexpected_features
