"""What a model monitor finds, and the drift subjects it finds it on.

Shared by the event-by-event path (:class:`~driftline.monitors.model.ModelMonitor`)
and the batch path (:class:`~driftline.monitors.batch.BatchWatch`), which
must find exactly the same things.
"""

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Protocol

import numpy as np
from scipy import stats

from driftline.monitors.feature_drift import QUANTILES, CategoricalDrift, DriftAlarm, NumericDrift
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.quality import QualityFinding
from driftline.monitors.rings import RunRing
from driftline.schemas import (
    DistributionSummary,
    FeatureEvent,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
    QualityCheck,
    TaskType,
)

PREDICTION = "(prediction)"
"""The drift subject of a model's predictions (a score, a value or a class)."""

UNCERTAINTY = "(uncertainty)"
"""The drift subject of how sure the model is (see :mod:`driftline.monitors.uncertainty`)."""

MULTIVARIATE = "(multivariate)"
"""The drift subject of a model's numeric features taken together."""

EVENT_MEMORY = 4_096
"""Recent events whose time and Kafka position are kept to place a change point."""

Detector = NumericDrift | CategoricalDrift | MultivariateDrift


Evidence = tuple[DistributionSummary, DistributionSummary, dict[str, float]]
"""Reference and current summaries, and distances, of one alarm."""


@dataclass(frozen=True)
class DriftFinding:
    """A drift of one subject, found while processing one event, with its evidence.

    The evidence (``reference``, ``current``, ``distances``) is computed from
    the alarm on first use: during a lasting change a subject alarms again
    every few dozen events, and most of those repeats open or update no
    alert, so their evidence (quantiles, a KS test, PSI, Wasserstein) would
    be work thrown away. Give ``evidence`` to fix it up front instead.
    """

    subject: str
    alarm: DriftAlarm
    event_id: str
    event_time: datetime
    change_event_time: datetime | None
    change_position: KafkaPosition | None
    detector: "Detector | None" = field(default=None, repr=False, compare=False)
    evidence: Evidence | None = field(default=None, repr=False, compare=False)

    @cached_property
    def _evidence(self) -> Evidence:
        if self.evidence is not None:
            return self.evidence
        assert self.detector is not None, "a finding needs its detector or its evidence"
        return evidence_of(self.detector, self.alarm)

    @property
    def reference(self) -> DistributionSummary:
        """The reference distribution of the subject, summarised."""
        return self._evidence[0]

    @property
    def current(self) -> DistributionSummary:
        """The distribution since the estimated change, summarised."""
        return self._evidence[1]

    @property
    def distances(self) -> dict[str, float]:
        """How far the current values lie from the reference (KS, PSI, ...)."""
        return self._evidence[2]


@dataclass(frozen=True, slots=True)
class DriftResolution:
    """A subject that alarmed has stayed under its exit threshold long enough: it is back."""

    subject: str
    event_id: str
    event_time: datetime


@dataclass(frozen=True, slots=True)
class ModelFindings:
    """What one event revealed about its model version.

    ``drifts`` are new alarms; ``repeats`` alarms of subjects already
    alarming (the change goes on); ``resolved`` subjects that came back.
    """

    drifts: list[DriftFinding] = field(default_factory=list)
    quality: list[QualityFinding] = field(default_factory=list)
    repeats: list[DriftFinding] = field(default_factory=list)
    resolved: list[DriftResolution] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchFindings:
    """What a batch of events revealed about its model version, event by event.

    ``findings`` maps an event's index in the batch to what it revealed
    (events that revealed nothing are left out). :meth:`quality_alarming`
    says which data-quality checks were alarming right after a given event,
    as the event-by-event path would have read them then.
    """

    findings: dict[int, ModelFindings]
    quality_before: dict[tuple[str, QualityCheck], bool]
    """Whether each check was alarming before the batch."""
    quality_changes: dict[tuple[str, QualityCheck], list[tuple[int, bool]]]
    """Per check, where in the batch its alarming state changed, in order."""

    def quality_alarming(self, index: int) -> Callable[[str, QualityCheck], bool]:
        """Whether a feature's check is alarming right after the ``index``-th event."""

        def alarming(feature: str, check: QualityCheck) -> bool:
            key = (feature, check)
            changes = self.quality_changes.get(key, [])
            at = bisect.bisect_right(changes, (index, True))
            return changes[at - 1][1] if at else self.quality_before[key]

        return alarming


class Moment(Protocol):
    """An event as a finding names it: by its id and time (an event, or a summary's last)."""

    @property
    def event_id(self) -> str: ...

    @property
    def event_time(self) -> datetime: ...


@dataclass
class Subject:
    """One drift subject: its detector, and what is needed to place and latch its alarms."""

    name: str
    detector: Detector
    observed_at: RunRing
    """The model's event numbers of the detector's recent observations."""
    latched: bool = False
    quiet: int = 0


def prediction_value(spec: ModelSpec, event: PredictionEvent | FeatureEvent) -> object:
    """The prediction as a drift subject: a number for a regressor, a class for a classifier."""
    if not isinstance(event, PredictionEvent) or event.prediction is None:
        return None
    if spec.task is TaskType.REGRESSION:
        return event.prediction if isinstance(event.prediction, float) else None
    return event.prediction if isinstance(event.prediction, str) else None


def evidence_of(
    detector: Detector, alarm: DriftAlarm
) -> tuple[DistributionSummary, DistributionSummary, dict[str, float]]:
    """Reference and current summaries, and distances, for one alarm."""
    current = alarm.current
    if isinstance(detector, NumericDrift):
        values = np.asarray(current, dtype=np.float64)
        reference = DistributionSummary(
            count=detector.reference.count,
            quantiles=dict(
                zip(map(str, QUANTILES), detector.reference.quantiles(list(QUANTILES)), strict=True)
            ),
        )
        now = DistributionSummary(
            count=len(values),
            quantiles=_quantiles(values),
        )
        return reference, now, detector.distances(values)
    if isinstance(detector, CategoricalDrift):
        reference = DistributionSummary(
            count=detector.reference.count, shares=detector.reference_shares()
        )
        now = DistributionSummary(count=len(current), shares=detector.current_shares(current))
        return reference, now, detector.distances(current)
    values = np.asarray(current, dtype=np.float64)
    dimension = len(detector.features)
    reference_quantiles = _chi2_quantiles(dimension)
    reference = DistributionSummary(
        count=0,
        quantiles=dict(zip(map(str, QUANTILES), map(float, reference_quantiles), strict=True)),
    )
    now = DistributionSummary(count=len(values), quantiles=_quantiles(values))
    return (
        reference,
        now,
        {"mean_distance": float(values.mean()), "expected_mean": float(dimension)},
    )


def _quantiles(values: np.ndarray) -> dict[str, float]:
    """The summary quantiles of ``values``, in one call (each as its own call would give)."""
    return dict(zip(map(str, QUANTILES), np.quantile(values, QUANTILES).tolist(), strict=True))


@functools.cache
def _chi2_quantiles(dimension: int) -> tuple[float, ...]:
    """The summary quantiles of the chi-squared distance of ``dimension`` features, at no change."""
    return tuple(float(q) for q in stats.chi2.ppf(list(QUANTILES), dimension))


def change_event_number(subject: Subject, alarm: DriftAlarm) -> int:
    """The model's event number of an alarm's estimated change point.

    As far back as the subject's ``observed_at`` reaches: an older change
    point is placed at the oldest observation remembered.
    """
    observed = subject.detector.observations
    index = alarm.change_observation - (observed - len(subject.observed_at)) - 1
    index = min(max(index, 0), len(subject.observed_at) - 1)
    return subject.observed_at[index]


def drift_finding(
    subject: Subject,
    alarm: DriftAlarm,
    event: Moment,
    change: tuple[datetime | None, KafkaPosition | None],
) -> DriftFinding:
    """The finding of a subject's alarm on ``event``, its change point at ``change``."""
    return DriftFinding(
        subject=subject.name,
        alarm=alarm,
        event_id=event.event_id,
        event_time=event.event_time,
        change_event_time=change[0],
        change_position=change[1],
        detector=subject.detector,
    )
