"""A model version's performance: realized once labels land, estimated before they do.

Predictions are counted into tumbling windows of ``spec.performance.window``.
Each window is reported when its last prediction arrives (``closed``: the
estimated accuracy from calibrated class probabilities, uncertainty
summaries, and the labels that landed so far) and again when every
prediction of it is labelled or waited out the label retention
(``settled``: realized metrics next to the estimate, and its error).

A window is estimated only from the predictions counted once the estimator
is calibrated, and says how many they were (``estimated_predictions``). The
window in which the calibration becomes ready is partial: its predictions
counted before it were never estimated, and with labels far behind the
predictions they may be most of it. Its estimate speaks for the few that
were, so its error is measured against them: ``estimation_error`` is the
estimate minus the realized metric of the predictions both estimated and
labelled, and ``realized`` stays that of all the window's labelled ones.
Which predictions were estimated is told again when their labels land, from
the record alone (see :meth:`PerformanceMonitor._estimated`).

The first ``spec.performance.reference_labels`` labelled predictions are the
reference. They calibrate the estimator (see
:mod:`driftline.monitors.estimation`) and set the error the realized test
compares against: a two-sided Bernoulli CUSUM on wrong-or-right for a
classifier, or the drift tests of :class:`NumericDrift` on the absolute
error of a regressor, each with the model's false-alarm budget. An
estimated-performance alarm is raised when a window's estimated accuracy
falls under the reference's by more than the policy's tolerance plus the
window's sampling spread at the budget's level.

Everything is counted in events, never by a clock; label delays are
differences of event times.
"""

import base64
import binascii
import hashlib
import math
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import stats

from driftline.monitors.estimation import ConfidenceEstimator, EstimatedWindow
from driftline.monitors.feature_drift import DriftAlarm, NumericDrift
from driftline.monitors.packing import pack_floats, unpack_float_array
from driftline.monitors.positions import Located, kafka_position
from driftline.monitors.reference import NumericReference
from driftline.monitors.rings import EventMemory, FloatRing
from driftline.monitors.sequential import BernoulliCusum, lorden_threshold
from driftline.monitors.state import (
    State,
    check_header,
    header,
    integer_field,
    number_field,
    numbers_field,
)
from driftline.monitors.uncertainty import entropy, least_confidence, margin
from driftline.monitors.window_metrics import (
    HitCounts,
    RealizedMetrics,
    UncertaintySummary,
)
from driftline.schemas import (
    KafkaPosition,
    ModelSpec,
    PerformanceBasis,
    PerformanceReport,
    PredictionEvent,
    ReportStage,
    TaskType,
)

MAX_OPEN_WINDOWS = 256
"""Windows kept waiting for labels; past it the oldest is settled early, as it stands."""

CHANGE_MEMORY = 4_096
"""Recent labelled predictions whose time and Kafka position are kept to place a change."""

DELAY_MEMORY = 1_000
"""Latest label delays kept for the delay distribution of the whole version."""


class Moment(Protocol):
    """What a window's report is made at: an event, or a summary's last event."""

    @property
    def event_id(self) -> str: ...

    @property
    def event_time(self) -> datetime: ...


class PredictionRecord(NamedTuple):
    """What the label join keeps of one prediction until its label lands.

    A named tuple: one is made for each prediction, and a frozen dataclass
    takes about twice as long to make.
    """

    window: int
    event_time: datetime
    prediction: str | float | None
    probabilities: dict[str, float] | None
    position: Located | None

    def to_payload(self) -> dict[str, Any]:
        """As plain JSON-ready data."""
        return {
            "window": self.window,
            "event_time": self.event_time.isoformat(),
            "prediction": self.prediction,
            "probabilities": self.probabilities,
            "position": None
            if self.position is None
            else kafka_position(self.position).model_dump(mode="json"),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> "PredictionRecord":
        """The record :meth:`to_payload` wrote."""
        position = payload.get("position")
        return cls(
            window=int(payload["window"]),
            event_time=datetime.fromisoformat(payload["event_time"]),
            prediction=payload.get("prediction"),
            probabilities=payload.get("probabilities"),
            position=None if position is None else KafkaPosition.model_validate(position),
        )


new_prediction_record = partial(tuple.__new__, PredictionRecord)
"""A :class:`PredictionRecord` made from the tuple of its fields, without the Python-level
``__new__`` of its class: it takes half the time, and one is made a prediction."""


@dataclass(frozen=True, slots=True)
class PerformanceFinding:
    """Performance fell: realized (on labels) or estimated (from probabilities)."""

    basis: PerformanceBasis
    metric: str
    reference: float
    current: float
    test: str
    statistic: float
    threshold: float
    arl: float
    observations: int
    event_id: str
    event_time: datetime
    change_observation: int | None = None
    change_event_time: datetime | None = None
    change_position: KafkaPosition | None = None
    window: int | None = None
    alarm: int | None = None
    """Which realized alarm of the version this is (1 for the first): the same in a run
    replayed from an earlier state, wherever its change point falls then."""


@dataclass(frozen=True, slots=True)
class PerformanceResolution:
    """Performance that fell is back: no realized alarm for ``reference_labels`` labels, or
    a window's estimate back above its floor."""

    basis: PerformanceBasis
    metric: str
    event_id: str
    event_time: datetime


@dataclass(frozen=True, slots=True)
class PerformanceFindings:
    """What one prediction, label or expiry revealed (never changed once returned)."""

    findings: list[PerformanceFinding] = field(default_factory=list)
    reports: list[PerformanceReport] = field(default_factory=list)
    resolved: list[PerformanceResolution] = field(default_factory=list)

    def __bool__(self) -> bool:
        """Whether it holds anything to send."""
        return bool(self.findings or self.reports or self.resolved)

    def __add__(self, other: "PerformanceFindings") -> "PerformanceFindings":
        return PerformanceFindings(
            self.findings + other.findings,
            self.reports + other.reports,
            self.resolved + other.resolved,
        )


@dataclass
class _Window:
    """One window of predictions, open until its labels have all landed or expired."""

    index: int
    first_time: datetime
    last_time: datetime
    realized: RealizedMetrics
    checked: HitCounts
    """The realized accuracy (and F1) of the estimated predictions that were labelled."""
    predictions: int = 0
    labelled: int = 0
    expired: int = 0
    closed: bool = False
    delays: list[float] = field(default_factory=list)
    estimate: EstimatedWindow = field(default_factory=EstimatedWindow)
    uncertainty: UncertaintySummary = field(default_factory=UncertaintySummary)

    @property
    def settled(self) -> bool:
        return self.closed and self.labelled + self.expired >= self.predictions

    def to_state(self) -> State:
        """The window as JSON-ready data: its counts, times and parts, delays packed."""
        return {
            "index": self.index,
            "first_time": self.first_time.isoformat(),
            "last_time": self.last_time.isoformat(),
            "predictions": self.predictions,
            "labelled": self.labelled,
            "expired": self.expired,
            "closed": self.closed,
            "delays": pack_floats(np.asarray(self.delays, dtype=np.float64)),
            "realized": self.realized.to_state(),
            "checked": self.checked.to_state(),
            "estimate": self.estimate.to_state(),
            "uncertainty": self.uncertainty.to_state(),
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        realized: RealizedMetrics,
        checked: HitCounts,
        *,
        may_be_empty: bool = False,
    ) -> Self:
        """The window :meth:`to_state` described, its metrics and counts loaded into
        ``realized`` and ``checked`` (new ones, made with the spec's parameters).
        ``may_be_empty``: a window may have no prediction counted yet (one a label opened)."""
        if not isinstance(state, Mapping):
            raise ValueError(f"state: a window must be a mapping, got {state!r}")
        _part(state, "realized", realized.load_state)
        _part(state, "checked", checked.load_state)
        estimate = _part(state, "estimate", EstimatedWindow.from_state)
        uncertainty = _part(state, "uncertainty", UncertaintySummary.from_state)
        window = cls(
            index=integer_field(state, "index"),
            first_time=_time_field(state, "first_time"),
            last_time=_time_field(state, "last_time"),
            realized=realized,
            checked=checked,
            predictions=integer_field(state, "predictions", minimum=0 if may_be_empty else 1),
            labelled=integer_field(state, "labelled"),
            expired=integer_field(state, "expired"),
            closed=_bool_field(state, "closed"),
            delays=unpack_float_array(state.get("delays"), "delays").tolist(),
            estimate=estimate,
            uncertainty=uncertainty,
        )
        if len(window.delays) != window.labelled or realized.count != window.labelled:
            raise ValueError("state: a window has a delay and a realized count per label")
        if checked.count > window.labelled or estimate.count > window.predictions:
            raise ValueError("state: more estimated or checked predictions than counted")
        if window.first_time > window.last_time:
            raise ValueError("state: a window must not end before it begins")
        return window


class PerformanceMonitor:
    """Realized and estimated performance of one model version, window by window.

    Parameters
    ----------
    spec
        The version's spec: its task, classes and performance policy.
    arl
        Expected labelled predictions between false realized-performance
        alarms, and (over windows) predictions between false estimated ones;
        by default the spec's drift budget.

    Examples
    --------
    A classifier right 90% of the time, then 70%; labels arrive at once:

    >>> import random
    >>> from datetime import UTC, datetime, timedelta
    >>> spec = ModelSpec(model_id="m", model_version="1", task="classification",
    ...                  classes=["a", "b"], features=[])
    >>> monitor, rng = PerformanceMonitor(spec), random.Random(7)
    >>> start = datetime(2026, 1, 1, tzinfo=UTC)
    >>> alarms = []
    >>> for i in range(8_000):
    ...     time = start + timedelta(seconds=i)
    ...     event = PredictionEvent(model_id="m", model_version="1", event_id=f"e{i}",
    ...                             event_time=time, prediction="a",
    ...                             probabilities={"a": 0.8, "b": 0.2})
    ...     record, _ = monitor.predicted(event)
    ...     right = rng.random() < (0.9 if i < 5_000 else 0.7)
    ...     label = "a" if right else "b"
    ...     found = monitor.labelled(record, label, event_id=f"l{i}", label_time=time)
    ...     alarms += [(f.basis.value, f.metric, f.event_id) for f in found.findings]
    >>> alarms
    [('realized', 'error_rate', 'l5222')]
    """

    windows_open_empty = False
    """Whether a window can be open before its first prediction is counted."""

    def __init__(self, spec: ModelSpec, *, arl: float | None = None) -> None:
        self.spec = spec
        self.arl = arl if arl is not None else spec.drift.expected_events_between_false_alarms
        policy = spec.performance
        self.window = policy.window
        self._classifier = spec.task is TaskType.CLASSIFICATION
        self._positive = spec.positive_class
        self._estimator = (
            ConfidenceEstimator(spec.classes, self._positive) if self._classifier else None
        )
        self._predictions = 0
        self._labelled = 0
        self._expired = 0
        self._windows: dict[int, _Window] = {}
        self._estimated_from: int | None = None
        """The window in which the estimator became ready; None before (or if it never does)."""
        self._estimated_after: datetime | None = None
        """The latest event time of that window's predictions counted before it was ready."""
        self._reference_errors: list[float] = []
        self._reference_error: float | None = None
        self._error_test: BernoulliCusum | NumericDrift | None = None
        self._since_reference = self._metrics()
        self._changes = EventMemory(CHANGE_MEMORY)
        self._latched_quiet: int | None = None
        self._alarms = 0
        """Realized alarms raised (those a latch kept quiet not counted)."""
        self._estimate_latched = False
        self._delays = FloatRing(DELAY_MEMORY)
        self._recent_errors = FloatRing(CHANGE_MEMORY)
        self.last_estimate: dict[str, float] = {}
        self.last_realized: dict[str, float] = {}
        self._coming: deque[float] = deque()
        """The errors the next :meth:`labelled` calls bring (see :meth:`expect`)."""
        self._outcomes: deque[bool] = deque()
        """Whether the error test alarms at each of the next of them, already worked out."""

    # State as plain data (see :mod:`driftline.monitors.state`).

    def to_state(self) -> State:
        """Everything that decides the monitor's future, as plain JSON-ready data.

        The spec is not in it: the caller keeps the spec, and gives it back
        to :meth:`from_state` (the state names its model and version, and is
        refused for another). Kept are the counts; the open windows, each
        with its realized metrics, checked hits, estimate and uncertainty;
        the estimator with its calibration; the reference errors while they
        are collected, then the reference error and the error test; the
        metrics since the reference; the latches; the latest estimate and
        realized metrics; and the recent memories (label delays, errors, the
        time and Kafka position of the labelled predictions), packed exactly
        (see :mod:`driftline.monitors.packing`; a classifier's errors, all 0
        or 1, as bits). Every sequence goes out from its array at once: a
        state costs well under a millisecond to write, whatever the memories
        hold.

        The errors :meth:`expect` announced and the test's outcomes worked
        out ahead for them (``coming``, ``outcomes``) are kept too, with a
        regressor's test's latest alarm (``error_alarm``, which its own state
        leaves out). They are empty between the label join's batches (it ends
        each with ``expect([])``) but not between two :meth:`labelled` calls
        of one, where the test has already taken the errors up to its next
        alarm: a state taken there goes on as exactly as any other.

        >>> spec = ModelSpec(model_id="m", model_version="1", task="classification",
        ...                  classes=["a", "b"], features=[])
        >>> monitor = PerformanceMonitor(spec)
        >>> from datetime import UTC
        >>> event = PredictionEvent(model_id="m", model_version="1", event_id="e0",
        ...                         event_time=datetime(2026, 1, 1, tzinfo=UTC), prediction="a",
        ...                         probabilities={"a": 0.8, "b": 0.2})
        >>> record, _ = monitor.predicted(event)
        >>> import json
        >>> copy = PerformanceMonitor.from_state(spec, json.loads(json.dumps(monitor.to_state())))
        >>> copy.predictions, copy.to_state() == monitor.to_state()
        (1, True)
        """
        test = self._error_test
        return {
            **header(type(self).__name__),
            "model": [self.spec.model_id, self.spec.model_version],
            "arl": self.arl,
            "predictions": self._predictions,
            "labelled": self._labelled,
            "expired": self._expired,
            "windows": [window.to_state() for window in self._windows.values()],
            "estimator": None if self._estimator is None else self._estimator.to_state(),
            "estimated_from": self._estimated_from,
            "estimated_after": None
            if self._estimated_after is None
            else self._estimated_after.isoformat(),
            "reference_errors": _pack_errors(np.asarray(self._reference_errors, dtype=np.float64)),
            "reference_error": self._reference_error,
            # The test the task takes (a classifier's CUSUM, a regressor's drift tests),
            # with its reference: a regressor's was built from the reference errors.
            "error_test": None if test is None else test.to_state(),
            # A regressor's test keeps its latest alarm outside its state: read at the
            # label that raised it, which may come after the state when expect() ran ahead.
            "error_alarm": _alarm_state(test.last_alarm)
            if isinstance(test, NumericDrift)
            else None,
            "since_reference": self._since_reference.to_state(),
            "changes": self._changes.packed(),
            "latched_quiet": self._latched_quiet,
            "estimate_latched": self._estimate_latched,
            "delays": pack_floats(self._delays.values()),
            "recent_errors": _pack_errors(self._recent_errors.values()),
            "last_estimate": dict(self.last_estimate),
            "last_realized": dict(self.last_realized),
            "coming": list(self._coming),
            "outcomes": list(self._outcomes),
            # Absent while zero: a state written before alarms were counted reads the same.
            **({"alarms": self._alarms} if self._alarms else {}),
        }

    @classmethod
    def from_state(cls, spec: ModelSpec, state: Mapping[str, Any]) -> Self:
        """The monitor :meth:`to_state` described, for ``spec`` (the one it was made with),
        going on exactly where it was.

        ValueError, naming the field, if ``state`` is not such a state (of
        another kind, version, or model version, or damaged).
        """
        check_header(state, cls.__name__)
        model = [spec.model_id, spec.model_version]
        if state.get("model") != model:
            raise ValueError(f"state: model {state.get('model')!r} is not {model!r}")
        arl = number_field(state, "arl", minimum=0.0)
        if arl <= 0.0:
            raise ValueError(f"state: arl must be positive, got {arl!r}")
        monitor = cls(spec, arl=arl)
        monitor._predictions = integer_field(state, "predictions")
        monitor._labelled = integer_field(state, "labelled")
        monitor._expired = integer_field(state, "expired")
        windows = state.get("windows")
        if not isinstance(windows, list) or len(windows) > MAX_OPEN_WINDOWS:
            raise ValueError(f"state: windows must be a list of at most {MAX_OPEN_WINDOWS}")
        for number, saved in enumerate(windows):
            with _field(f"windows[{number}]"):
                window = _Window.from_state(
                    saved,
                    monitor._metrics(),
                    HitCounts(monitor._positive),
                    may_be_empty=monitor.windows_open_empty,
                )
            if window.index in monitor._windows or not monitor._may_hold(window.index):
                raise ValueError(f"state: windows[{number}] has the index of another, or to come")
            monitor._windows[window.index] = window
        monitor._estimator = monitor._estimator_from_state(state.get("estimator"))
        estimated_from = state.get("estimated_from")
        if estimated_from is not None:
            estimated_from = integer_field(state, "estimated_from")
            if monitor._estimator is None or not monitor._estimator.ready:
                raise ValueError("state: estimated_from without a ready estimator")
        monitor._estimated_from = estimated_from
        after = state.get("estimated_after")
        monitor._estimated_after = None if after is None else _time_field(state, "estimated_after")
        if after is not None and estimated_from is None:
            raise ValueError("state: estimated_after without estimated_from")
        monitor._reference_errors = _unpack_errors(state, "reference_errors").tolist()
        reference = state.get("reference_error")
        monitor._reference_error = (
            None if reference is None else number_field(state, "reference_error", minimum=0.0)
        )
        monitor._error_test = test = monitor._error_test_from_state(state.get("error_test"))
        alarm = state.get("error_alarm")
        if alarm is not None:
            if not isinstance(test, NumericDrift):
                raise ValueError("state: error_alarm is a regressor's error test's")
            with _field("error_alarm"):
                test.last_alarm = _alarm_from_state(_mapping(alarm, "error_alarm"))
        if (monitor._reference_error is None) != (monitor._error_test is None) or (
            len(monitor._reference_errors) >= spec.performance.reference_labels
        ):
            raise ValueError(
                "state: reference_error and error_test come together, once the reference is in"
            )
        if monitor._reference_error is not None and monitor._reference_errors:
            raise ValueError("state: reference_errors are dropped once the reference is in")
        _part(state, "since_reference", monitor._since_reference.load_state)
        with _field("changes"):
            monitor._changes.extend_packed(_mapping(state.get("changes"), "changes"))
        latched = state.get("latched_quiet")
        monitor._latched_quiet = None if latched is None else integer_field(state, "latched_quiet")
        monitor._estimate_latched = _bool_field(state, "estimate_latched")
        monitor._delays.extend(unpack_float_array(state.get("delays"), "delays"))
        monitor._recent_errors.extend(_unpack_errors(state, "recent_errors"))
        monitor.last_estimate = _figures_field(state, "last_estimate")
        monitor.last_realized = _figures_field(state, "last_realized")
        monitor._coming = deque(numbers_field(state, "coming"))
        outcomes = state.get("outcomes")
        if not (isinstance(outcomes, list) and all(isinstance(o, bool) for o in outcomes)):
            raise ValueError(f"state: outcomes must be a list of booleans, got {outcomes!r}")
        if len(outcomes) > len(monitor._coming) or (outcomes and monitor._error_test is None):
            raise ValueError("state: an outcome worked out for each of some errors to come")
        monitor._outcomes = deque(outcomes)
        monitor._alarms = integer_field(state, "alarms") if "alarms" in state else 0
        return monitor

    def _may_hold(self, index: int) -> bool:
        """Whether a window of this index can be open now: none is opened before its first
        prediction is counted."""
        return index <= self._predictions // self.window

    def _estimator_from_state(self, state: object) -> ConfidenceEstimator | None:
        """The estimator of a state: None, or one of the spec's classes (a classifier's)."""
        if state is None:
            return None
        if not self._classifier:
            raise ValueError("state: a regressor has no estimator")
        with _field("estimator"):
            estimator = ConfidenceEstimator.from_state(_mapping(state, "estimator"))
        if estimator.classes != self.spec.classes or estimator.positive_class != self._positive:
            raise ValueError("state: the estimator is for other classes than the spec's")
        return estimator

    def _error_test_from_state(self, state: object) -> BernoulliCusum | NumericDrift | None:
        """The error test of a state: None, or the one the task takes, with its reference."""
        if state is None:
            return None
        with _field("error_test"):
            saved = _mapping(state, "error_test")
            if self._classifier:
                return BernoulliCusum.from_state(saved)
            # NumericDrift reads its fields unchecked: what fails in it is refused here.
            return NumericDrift.from_state(saved)

    # Feeding predictions, labels and expiries.

    def predicted(
        self, event: PredictionEvent, position: Located | None = None
    ) -> tuple[PredictionRecord, PerformanceFindings]:
        """Count one prediction into its window; the record for the label join, and findings."""
        return next(self.predicted_many([event], [position]))

    def records(
        self, events: Sequence[PredictionEvent], positions: Sequence[Located | None]
    ) -> list[PredictionRecord]:
        """The records :meth:`predicted_many` of these events gives next, ahead of it.

        Nothing is counted: a caller that needs the records before it takes
        the findings event by event (the label join's payloads) passes them on.
        """
        first, window, classifier = self._predictions, self.window, self._classifier
        return [
            new_prediction_record(
                (
                    (first + number) // window,
                    event.event_time,
                    _predicted_class(event) if classifier else event.prediction,
                    dict(event.probabilities) if event.probabilities else None,
                    position,
                )
            )
            for number, (event, position) in enumerate(zip(events, positions, strict=True))
        ]

    def predicted_many(
        self,
        events: Sequence[PredictionEvent],
        positions: Sequence[Located | None],
        records: Sequence[PredictionRecord] | None = None,
    ) -> Iterator[tuple[PredictionRecord, PerformanceFindings]]:
        """:meth:`predicted` for each event in turn, lazily: each event's record and findings.

        An event is counted when its pair is taken from the iterator, so a
        caller that feeds labels or expiries between two events (the label
        join does) gets what :meth:`predicted` one by one would give: a
        window's closing report counts what was labelled before its last
        prediction. What does not depend on that (each prediction's
        uncertainty measures) is worked out for all the events at once.
        ``records`` are those :meth:`records` gave for the same events, if taken ahead.
        """
        if records is None:
            records = self.records(events, positions)
        measures = _uncertainty_columns(events)
        first = self._predictions
        window = self._windows.get(first // self.window)
        for number, (event, record) in enumerate(zip(events, records, strict=True)):
            index = self._predictions // self.window
            self._predictions += 1
            time = event.event_time
            if window is None or window.index != index:
                window = self._windows.get(index)
            if window is None:
                window = self._open(index, time)
            if number == 0 or self._predictions - 1 == index * self.window:
                # this event starts the batch's run of the window: its measures, at once
                end = min(len(events), (index + 1) * self.window - first)
                for name, (at, values) in measures.items():
                    lo, hi = np.searchsorted(at, (number, end))
                    window.uncertainty.update_many(name, values[lo:hi])
            window.predictions += 1
            if time < window.first_time:
                window.first_time = time
            if time > window.last_time:
                window.last_time = time
            prediction, probabilities = record.prediction, record.probabilities
            estimator = self._estimator
            if (
                estimator is not None
                and probabilities
                and isinstance(prediction, str)
                and self._counted_ready(record)
            ):
                window.estimate.add(estimator.expect(probabilities, prediction))
            found = _NOTHING
            if window.predictions >= self.window:
                window.closed = True
                found = self._close(window, event)
            if len(self._windows) > MAX_OPEN_WINDOWS:
                found = found + self._settle_overflow()
            yield record, found

    def predicted_leaving(
        self,
        events: Sequence[PredictionEvent],
        records: Sequence[PredictionRecord],
        leaving: Sequence[tuple[int, int]],
    ) -> dict[int, list[PerformanceFindings]]:
        """:meth:`predicted_many` of each event, each followed by :meth:`unlabelled_in` of the
        windows left after it; what was found, by event number, in that order.

        ``leaving`` lists ``(event number, window index)`` of the predictions
        that left the label join unlabelled, in the order they left: a model
        without labels pushes out one held prediction for each it makes. Only
        the events that found something are listed.

        Counted a window's run of events at a time, not event by event: few
        events can find something (a window's first, which may settle the
        oldest open window, and its last, which closes it), and an expiry
        only when it settles a closed window, which is looked for among a
        run's expiries at once. The same as :meth:`predicted_many` and
        :meth:`unlabelled_in` event by event (:meth:`_predicted_leaving_in_turn`),
        to which it falls back when the current window is not where its count says.
        """
        count, size = len(events), self.window
        first = self._predictions
        window = self._windows.get(first // size)
        if window is not None and window.predictions + min(count, size - first % size) > size:
            # It would close before the run's last event (so it was settled early and
            # opened again): event by event closes it where its count says.
            return self._predicted_leaving_in_turn(events, records, leaving)
        found: dict[int, list[PerformanceFindings]] = {}
        measures = _uncertainty_columns(events)
        after = [number for number, _ in leaving]
        windows = [index for _, index in leaving]
        taken, start = 0, 0
        while start < count:
            index = (first + start) // size
            end = min(count, (index + 1) * size - first)
            window = self._windows.get(index)
            created = window is None
            if window is None:
                window = self._open(index, events[start].event_time)
            for name, (at, values) in measures.items():
                lo, hi = np.searchsorted(at, (start, end))
                window.uncertainty.update_many(name, values[lo:hi])
            times = [event.event_time for event in events[start:end]]
            window.first_time = min(window.first_time, *times)
            window.last_time = max(window.last_time, *times)
            self._estimate_run(window, records[start:end])
            window.predictions += end - start
            self._predictions += end - start
            last = end - 1
            # Expiries after the run's events before its last, which may close the window.
            before_last = bisect_left(after, last, taken)
            closing = True
            if created and len(self._windows) > MAX_OPEN_WINDOWS:  # at the run's first event
                first_found = _NOTHING
                if last == start:  # which closes it first
                    first_found = self._close_run(window, events[last])
                    closing = False
                _note(found, start, first_found + self._settle_overflow())
            self._leave(after, windows, taken, before_last, found)
            if closing:
                _note(found, last, self._close_run(window, events[last]))
            taken = bisect_right(after, last, before_last)
            self._leave(after, windows, before_last, taken, found)
            start = end
        return found

    def _estimate_run(self, window: _Window, records: Sequence[PredictionRecord]) -> None:
        """Add the run's estimated correctness to its window, as :meth:`predicted_many` does."""
        estimator = self._estimator
        if estimator is None or not estimator.ready:
            return
        for record in records:
            prediction, probabilities = record.prediction, record.probabilities
            if probabilities and isinstance(prediction, str) and self._counted_ready(record):
                window.estimate.add(estimator.expect(probabilities, prediction))

    def _close_run(self, window: _Window, event: PredictionEvent) -> PerformanceFindings:
        """Close the window if its run's last event (``event``) filled it; what that found."""
        if window.predictions < self.window:
            return _NOTHING
        window.closed = True
        return self._close(window, event)

    def _leave(
        self,
        after: Sequence[int],
        windows: Sequence[int],
        lo: int,
        hi: int,
        found: dict[int, list[PerformanceFindings]],
    ) -> None:
        """:meth:`unlabelled_in` of ``windows[lo:hi]`` in turn, with nothing counted in between;
        each settled window's report is found at the event its expiry came after."""
        if lo >= hi:
            return
        self._expired += hi - lo
        settling: list[tuple[int, _Window]] = []
        for index, expiries in Counter(windows[lo:hi]).items():
            window = self._windows.get(index)
            if window is None:
                continue
            needed = max(window.predictions - window.labelled - window.expired, 1)
            if not window.closed or expiries < needed:
                window.expired += expiries
                continue
            window.expired += needed
            place = lo - 1
            for _ in range(needed):  # the expiry that settles it
                place = windows.index(index, place + 1, hi)
            settling.append((place, window))
        for place, window in sorted(settling, key=lambda item: item[0]):
            _note(found, after[place], self._settle(window))

    def _predicted_leaving_in_turn(
        self,
        events: Sequence[PredictionEvent],
        records: Sequence[PredictionRecord],
        leaving: Sequence[tuple[int, int]],
    ) -> dict[int, list[PerformanceFindings]]:
        """:meth:`predicted_leaving` event by event, and expiry by expiry."""
        found: dict[int, list[PerformanceFindings]] = {}
        taken = 0
        counted = self.predicted_many(events, [record.position for record in records], records)
        for number, (_, first) in enumerate(counted):
            _note(found, number, first)
            while taken < len(leaving) and leaving[taken][0] == number:
                _note(found, number, self.unlabelled_in(leaving[taken][1]))
                taken += 1
        return found

    def labelled(
        self,
        record: PredictionRecord,
        label: str | float,
        *,
        event_id: str,
        label_time: datetime,
    ) -> PerformanceFindings:
        """Compare one prediction with its label; findings and any window it settles."""
        delay = max((label_time - record.event_time).total_seconds(), 0.0)
        return self._label(record, label, event_id, label_time, delay, None)

    def labelled_many(
        self,
        records: Sequence[PredictionRecord],
        labels: Sequence[str | float],
        event_ids: Sequence[str],
        label_times: Sequence[datetime],
    ) -> list[tuple[int, PerformanceFindings]]:
        """:meth:`labelled` on each labelled prediction in turn; the findings of those that
        found something, each with its number.

        The findings and the state are exactly those of the calls one by one.
        Most labels find nothing: the labels between two that may (the error
        test's next alarm, the label that lifts its latch, the last label a
        window waits for) go in together, their delays, errors and outcomes
        into the rings and the metrics at once, and the error test takes
        their errors in numpy up to its next alarm (as :meth:`expect` lets
        it). Labels announced with :meth:`expect` and not brought yet are
        refused (ValueError).

        >>> from datetime import UTC, datetime, timedelta
        >>> spec = ModelSpec(model_id="m", model_version="1", task="classification",
        ...                  classes=["a", "b"], features=[])
        >>> start = datetime(2026, 1, 1, tzinfo=UTC)
        >>> one, many = PerformanceMonitor(spec), PerformanceMonitor(spec)
        >>> records = []
        >>> for i in range(4_000):
        ...     event = PredictionEvent(model_id="m", model_version="1", event_id=f"e{i}",
        ...                             event_time=start + timedelta(seconds=i), prediction="a")
        ...     records.append(one.predicted(event)[0])
        ...     _ = many.predicted(event)
        >>> labels = ["b" if i % 10 == 0 or (i >= 2_500 and i % 3 == 0) else "a"
        ...           for i in range(4_000)]  # wrong 10% of the time, then 40%
        >>> ids = [f"l{i}" for i in range(4_000)]
        >>> times = [record.event_time + timedelta(hours=1) for record in records]
        >>> alone = [(i, found) for i, found in enumerate(
        ...     one.labelled(r, label, event_id=e, label_time=t)
        ...     for r, label, e, t in zip(records, labels, ids, times)) if found]
        >>> together = many.labelled_many(records, labels, ids, times)
        >>> together == alone, one.to_state() == many.to_state()
        (True, True)
        >>> [(i, [f.metric for f in found.findings] + [r.stage.value for r in found.reports])
        ...  for i, found in together]  # doctest: +NORMALIZE_WHITESPACE
        [(999, ['settled']), (1999, ['settled']), (2619, ['error_rate']), (2999, ['settled']),
         (3999, ['settled'])]
        """
        count = len(records)
        if not len(labels) == len(event_ids) == len(label_times) == count:
            raise ValueError("labelled_many takes as many labels, ids and times as records")
        if self._coming:
            raise ValueError("labels announced to expect() are still to come")
        errors = [_error(record, label) for record, label in zip(records, labels, strict=True)]
        delays = [
            max((time - record.event_time).total_seconds(), 0.0)
            for record, time in zip(records, label_times, strict=True)
        ]
        settling = deque(self._settling(records))
        found: list[tuple[int, PerformanceFindings]] = []
        start = tested = 0  # labels before `tested` were taken by the error test, run ahead
        alarm: int | None = None
        while start < count:
            while settling and settling[0][0] < start:
                settling.popleft()
            if self._reference_error is None:  # the reference's labels, one by one
                one = self._label(
                    records[start], labels[start], event_ids[start], label_times[start],
                    delays[start], None,
                )  # fmt: skip
                if one:
                    found.append((start, one))
                start = tested = start + 1
                continue
            if tested <= start:
                alarm, tested = self._run_ahead(errors, start)
            stop = min(
                count if alarm is None else alarm,
                self._lifting(errors, start, count if alarm is None else alarm),
                settling[0][0] if settling else count,
            )
            self._take_quietly(records, labels, errors, delays, start, stop)
            if stop == count:
                break
            one = self._label(
                records[stop], labels[stop], event_ids[stop], label_times[stop], delays[stop],
                stop == alarm,
            )  # fmt: skip
            if one:
                found.append((stop, one))
            start = stop + 1
        return found

    def _settling(self, records: Sequence[PredictionRecord]) -> list[tuple[int, int]]:
        """The labels (by number) at which windows settle, in order, each with its window:
        the last label a closed window waits for (labels change nothing else of a window,
        and one settled is gone)."""
        waiting: dict[int, int] = {}
        """Labels each closed window met still waits for."""
        settled: set[int] = set()
        points: list[tuple[int, int]] = []
        windows = self._windows
        for number, record in enumerate(records):
            index = record.window
            if index in settled:
                continue
            if index not in waiting:
                window = windows.get(index)
                if window is None or not window.closed:
                    continue
                waiting[index] = window.predictions - window.labelled - window.expired
            waiting[index] -= 1
            if waiting[index] <= 0:
                points.append((number, index))
                settled.add(index)
        return points

    def _run_ahead(self, errors: Sequence[float | None], start: int) -> tuple[int | None, int]:
        """Give the error test the errors from label ``start`` on, up to its first alarm: the
        label that alarms (None: none did), and the label after the last it took."""
        places = [number for number in range(start, len(errors)) if errors[number] is not None]
        if not places:
            return None, len(errors)
        values = np.array([errors[number] for number in places], dtype=np.float64)
        test = self._error_test
        if isinstance(test, BernoulliCusum):
            hit = test.update_many((values != 0).astype(np.int64))
        else:
            assert test is not None
            hit = test.take_until_alarm(values, test.scores_ahead(values))
        if hit is None:
            return None, len(errors)
        return places[hit], places[hit] + 1

    def _lifting(self, errors: Sequence[float | None], start: int, stop: int) -> int:
        """The label before ``stop`` that lifts the latch on realized alarms, if one does
        (labels tested without alarm lift it); else ``stop``."""
        if self._latched_quiet is None:
            return stop
        left = self.spec.performance.reference_labels - self._latched_quiet
        for number in range(start, stop):
            if errors[number] is not None:
                left -= 1
                if left == 0:
                    return number
        return stop

    def _take_quietly(
        self,
        records: Sequence[PredictionRecord],
        labels: Sequence[str | float],
        errors: Sequence[float | None],
        delays: Sequence[float],
        start: int,
        stop: int,
    ) -> None:
        """Labels ``start`` to ``stop`` (excluded), which find nothing, taken together: as
        :meth:`_label` would take them one by one, their errors already tested."""
        if stop <= start:
            return
        taken = range(start, stop)
        self._labelled += stop - start
        self._delays.extend(delays[start:stop])
        by_window: dict[int, list[int]] = {}
        for number in taken:
            by_window.setdefault(records[number].window, []).append(number)
        for index, numbers in by_window.items():
            window = self._windows.get(index)
            if window is None:
                continue
            window.labelled += len(numbers)
            window.delays.extend([delays[number] for number in numbers])
            window.realized.update_many(
                [
                    (labels[number], records[number].prediction, records[number].probabilities)
                    for number in numbers
                ]
            )
            if self._estimator is not None:
                for number in numbers:
                    if self._estimated(records[number]):
                        window.checked.update(labels[number], records[number].prediction)
        self._changes.extend(
            [records[number].event_time for number in taken],
            [records[number].position for number in taken],
        )
        tested = [(number, error) for number in taken if (error := errors[number]) is not None]
        self._since_reference.update_many(
            [
                (labels[number], records[number].prediction, records[number].probabilities)
                for number, _ in tested
            ]
        )
        self._recent_errors.extend([error for _, error in tested])
        if self._latched_quiet is not None:
            self._latched_quiet += len(tested)

    def _label(
        self,
        record: PredictionRecord,
        label: str | float,
        event_id: str,
        label_time: datetime,
        delay: float,
        alarmed: bool | None,
    ) -> PerformanceFindings:
        """:meth:`labelled`, its delay worked out; ``alarmed``: whether the error test,
        run ahead, alarms at this label (None: the test takes it now)."""
        self._labelled += 1
        self._delays.append(delay)
        window = self._windows.get(record.window)
        if window is not None:
            window.labelled += 1
            window.delays.append(delay)
            window.realized.update(label, record.prediction, record.probabilities)
            if self._estimated(record):
                window.checked.update(label, record.prediction)
        self._changes.append(record.event_time, record.position)
        found = self._test(record, label, event_id, label_time, alarmed)
        if window is not None and window.settled:
            found += self._settle(window)
        return found

    def expect(self, labels: Sequence[tuple[PredictionRecord, str | float]]) -> None:
        """Say which labels the next :meth:`labelled` calls bring, in order, so that the error
        test takes their errors together.

        The findings and the state are exactly those of the calls alone: the
        test runs ahead (:meth:`NumericDrift.take_until_alarm`, or the
        classifier's :meth:`BernoulliCusum.update_many`) only up to the first
        alarm, and nothing reads it until the call that alarms. Each
        call must bring the next label given (else ValueError, and the monitor
        is then out of step), and every one must come before the monitor is
        read or saved; ``expect([])`` ends it. The test then runs in numpy over
        the labels between two alarms, not in Python one label at a time.
        """
        self._outcomes.clear()
        self._coming = deque(
            error
            for error in (_error(record, label) for record, label in labels)
            if error is not None
        )

    @property
    def expected(self) -> int:
        """How many labels given to :meth:`expect` have not been brought yet."""
        return len(self._coming)

    def unlabelled(self, record: PredictionRecord) -> PerformanceFindings:
        """A prediction's label did not land within the retention."""
        return self.unlabelled_in(record.window)

    def unlabelled_in(self, window_index: int) -> PerformanceFindings:
        """A prediction of window ``window_index`` whose label did not land in the retention."""
        self._expired += 1
        window = self._windows.get(window_index)
        if window is None:
            return _NOTHING
        window.expired += 1
        return self._settle(window) if window.settled else _NOTHING

    # Reading what it measured.

    @property
    def predictions(self) -> int:
        """Predictions of this version counted so far."""
        return self._predictions

    @property
    def labelled_predictions(self) -> int:
        """Predictions whose label landed."""
        return self._labelled

    @property
    def label_coverage(self) -> float:
        """Share of the predictions labelled so far."""
        return self._labelled / self._predictions if self._predictions else 0.0

    @property
    def label_delays(self) -> list[float]:
        """The latest label delays, in seconds of event time."""
        return self._delays.tolist()

    @property
    def reference_ready(self) -> bool:
        """Whether the reference labels are in, so performance is tested."""
        return self._reference_error is not None

    # Tests.

    def _test(
        self,
        record: PredictionRecord,
        label: str | float,
        event_id: str,
        label_time: datetime,
        alarmed: bool | None = None,
    ) -> PerformanceFindings:
        """The error test on one label; ``alarmed`` as :meth:`_label` takes it."""
        error = _error(record, label)
        if error is None:
            return _NOTHING
        if alarmed is None and self._coming and self._coming.popleft() != error:
            raise ValueError("a label other than the next one expected was brought")
        if self._reference_error is None:
            self._learn(record, label, error)
            return _NOTHING
        self._since_reference.update(label, record.prediction, record.probabilities)
        self._recent_errors.append(error)
        test = self._error_test
        assert test is not None
        hit = self._test_error(test, error) if alarmed is None else alarmed
        if isinstance(test, BernoulliCusum):
            if not (hit and test.direction > 0):
                return self._quiet("error_rate", event_id, label_time)
            statistic, threshold = test.statistic, test.threshold
            change = test.change_observation
            current = self._current_error(test.observations - change + 1)
            metric, name = "error_rate", "error_rate_cusum"
        else:
            alarm = test.last_alarm if hit else None
            if alarm is None or alarm.direction != "up":
                return self._quiet("mae", event_id, label_time)
            statistic, threshold, change = (
                alarm.statistic,
                alarm.threshold,
                alarm.change_observation,
            )
            current = float(np.mean(alarm.current)) if alarm.current else error
            metric, name = "mae", f"absolute_error_{alarm.test}"
        if isinstance(test, BernoulliCusum):
            test.reset()
        was_latched = self._latched_quiet is not None
        self._latched_quiet = 0
        if was_latched:
            return _NOTHING
        self._alarms += 1
        back = test.observations - change
        change_time, change_position = (None, None)
        if 0 <= back < len(self._changes):
            change_time, change_position = self._changes[-1 - back]
        finding = PerformanceFinding(
            basis=PerformanceBasis.REALIZED,
            metric=metric,
            reference=self._reference_error,
            current=current,
            test=name,
            statistic=statistic,
            threshold=threshold,
            arl=self.arl,
            observations=self._labelled,
            event_id=event_id,
            event_time=label_time,
            change_observation=change,
            change_event_time=change_time,
            change_position=change_position,
            alarm=self._alarms,
        )
        return PerformanceFindings(findings=[finding])

    def _test_error(self, test: BernoulliCusum | NumericDrift, error: float) -> bool:
        """Whether ``error`` (the next one expected, if any) raises the test's alarm; a
        classifier's test takes whether it is an error at all.

        The errors expected after it are taken with it, up to the first alarm;
        whether each of them alarms is kept for its own call.
        """
        if self._outcomes:
            return self._outcomes.popleft()
        if not self._coming:
            if isinstance(test, BernoulliCusum):
                test.update(1 if error else 0)
                return test.drift_detected
            return test.update(error)
        values = np.array([error, *self._coming], dtype=np.float64)
        if isinstance(test, BernoulliCusum):
            hit = test.update_many((values != 0).astype(np.int64))
        else:
            hit = test.take_until_alarm(values, test.scores_ahead(values))
        taken = len(values) if hit is None else hit + 1
        self._outcomes.extend(number == hit for number in range(1, taken))
        return hit == 0

    def _quiet(self, metric: str, event_id: str, label_time: datetime) -> PerformanceFindings:
        """Count a label without alarm toward lifting the latch; a resolution when it lifts."""
        if self._latched_quiet is None:
            return _NOTHING
        self._latched_quiet += 1
        if self._latched_quiet < self.spec.performance.reference_labels:
            return _NOTHING
        self._latched_quiet = None
        back = PerformanceResolution(PerformanceBasis.REALIZED, metric, event_id, label_time)
        return PerformanceFindings(resolved=[back])

    def _current_error(self, since: int) -> float:
        recent = self._recent_errors
        count = min(max(since, 1), len(recent))
        return float(np.mean(recent.last(count))) if len(recent) else 0.0

    def _learn(self, record: PredictionRecord, label: str | float, error: float) -> None:
        """Collect one reference label; once all are in, calibrate and build the error test."""
        self._reference_errors.append(error)
        estimator, probabilities, prediction = (
            self._estimator,
            record.probabilities,
            record.prediction,
        )
        readable = isinstance(label, str) and isinstance(prediction, str)
        if estimator is not None and probabilities and readable:
            estimator.learn(probabilities, str(prediction), str(label))
        if len(self._reference_errors) < self.spec.performance.reference_labels:
            return
        errors = np.asarray(self._reference_errors, dtype=np.float64)
        self._reference_errors = []
        self._reference_error = float(errors.mean())
        if self._classifier:
            p0 = reference_error_rate(self._reference_error, len(errors))
            self._error_test = BernoulliCusum(
                p0, lorden_threshold(self.arl, sides=2), ratio=self.spec.performance.error_ratio
            )
        else:
            self._error_test = NumericDrift(
                NumericReference.from_values(errors), arl=self.arl, ratio=2.0
            )
        if self._estimator is not None:
            try:
                self._estimator.fit()
            except ValueError:
                self._estimator = None  # too few probabilities to calibrate on
                return
            self._estimated_from, self._estimated_after = self._estimation_start()

    def _estimation_start(self) -> tuple[int, datetime | None]:
        """Where the estimates begin, the estimator being ready now: the window being
        counted, and the latest event time of its predictions counted so far (None if none);
        see :meth:`_counted_ready`."""
        index = self._predictions // self.window
        current = self._windows.get(index)
        return index, (current.last_time if current is not None and current.predictions else None)

    def _estimated(self, record: PredictionRecord) -> bool:
        """Whether the prediction of ``record`` was estimated; told again when its label
        lands, from the record alone (the estimator never changes once ready).

        A prediction is estimated if it came with class probabilities (a
        class predicted, and its probabilities) and was counted once the
        estimator was ready (:meth:`_counted_ready`).
        """
        return (
            bool(record.probabilities)
            and isinstance(record.prediction, str)
            and self._counted_ready(record)
        )

    def _counted_ready(self, record: PredictionRecord) -> bool:
        """Whether the prediction of ``record`` was counted once the estimator was ready.

        The record does not say when it was counted; its window does, except
        for the window in which the estimator became ready. There a prediction
        is taken as counted after if its event time is later than that of
        every prediction of the window counted before: the rare one counted
        after them but out of event-time order is left out of the estimate,
        so that the rule gives the same answer when the prediction is counted
        and when its label lands. (Event times come back from the label join
        to the microsecond, as they went in.)
        """
        first = self._estimated_from
        if first is None or record.window < first:
            return False
        after = self._estimated_after
        return record.window > first or after is None or record.event_time > after

    # Windows.

    def _close(self, window: _Window, event: "Moment") -> PerformanceFindings:
        window.uncertainty.seal()  # its last prediction is in
        found = PerformanceFindings(reports=[self._report(window, ReportStage.CLOSED)])
        if window.settled:
            found += self._settle(window)
        estimator = self._estimator
        estimate = window.estimate
        if estimator is None or not estimator.ready or estimate.count < self.window // 2:
            return found
        accuracy = estimate.accuracy
        if accuracy is None:
            return found
        self.last_estimate = {"accuracy": accuracy}
        # One-sided, with the window's share of the budget.
        z = float(stats.norm.isf(min(self.window / self.arl, 0.5)))
        spread = estimator.reference_spread / math.sqrt(estimate.count)
        floor = estimator.reference_estimate - self.spec.performance.accuracy_tolerance - z * spread
        if accuracy >= floor:
            if self._estimate_latched:
                self._estimate_latched = False
                back = PerformanceResolution(
                    PerformanceBasis.ESTIMATED, "accuracy", event.event_id, event.event_time
                )
                found += PerformanceFindings(resolved=[back])
            return found
        if self._estimate_latched:
            return found
        self._estimate_latched = True
        finding = PerformanceFinding(
            basis=PerformanceBasis.ESTIMATED,
            metric="accuracy",
            reference=estimator.reference_estimate,
            current=accuracy,
            test="estimated_accuracy_floor",
            statistic=accuracy,
            threshold=floor,
            arl=self.arl,
            observations=estimate.count,
            event_id=event.event_id,
            event_time=event.event_time,
            change_event_time=window.first_time,
            window=window.index,
        )
        return found + PerformanceFindings(findings=[finding])

    def _settle(self, window: _Window) -> PerformanceFindings:
        self._windows.pop(window.index, None)
        report = self._report(window, ReportStage.SETTLED)
        if report.realized:
            self.last_realized = dict(report.realized)
        return PerformanceFindings(reports=[report])

    def _settle_overflow(self) -> PerformanceFindings:
        found = PerformanceFindings()
        while len(self._windows) > MAX_OPEN_WINDOWS:
            oldest = self._windows[min(self._windows)]
            oldest.closed = True
            oldest.uncertainty.seal()
            found += self._settle(oldest)
        return found

    def _report(self, window: _Window, stage: ReportStage) -> PerformanceReport:
        spec = self.spec
        realized = window.realized.values()
        estimated: dict[str, float] = {}
        errors: dict[str, float] = {}
        if window.estimate.count:
            checked = window.checked
            for name, value, truth in (
                ("accuracy", window.estimate.accuracy, checked.accuracy),
                ("f1", window.estimate.f1, checked.f1),
            ):
                if value is None:
                    continue
                estimated[name] = value
                # Against the same predictions: those estimated, and labelled.
                if stage is ReportStage.SETTLED and truth is not None:
                    errors[name] = value - truth
        delays = np.asarray(window.delays, dtype=np.float64)
        delay = (
            {
                "mean": float(delays.mean()),
                "p50": float(np.quantile(delays, 0.5)),
                "p90": float(np.quantile(delays, 0.9)),
                "max": float(delays.max()),
            }
            if delays.size
            else {}
        )
        text = "\x1f".join([spec.model_id, spec.model_version, str(window.index), stage.value])
        return PerformanceReport(
            report_id=hashlib.sha256(text.encode("utf-8")).hexdigest()[:32],
            model_id=spec.model_id,
            model_version=spec.model_version,
            window=window.index,
            stage=stage,
            first_event_time=window.first_time,
            last_event_time=window.last_time,
            predictions=window.predictions,
            labelled=window.labelled,
            expired=window.expired,
            label_coverage=window.labelled / window.predictions,
            label_delay_seconds=delay,
            estimated_predictions=window.estimate.count,
            estimated=estimated,
            estimated_standard_error=(
                window.estimate.accuracy_standard_error if window.estimate.count else None
            ),
            realized=realized,
            estimation_error=errors,
            since_reference=self._since_reference.values(),
            uncertainty=window.uncertainty.values(),
        )

    def _metrics(self) -> RealizedMetrics:
        return RealizedMetrics(self.spec.classes if self._classifier else None, self._positive)

    def _open(self, index: int, time: datetime) -> _Window:
        """A new window, its first prediction made at ``time``."""
        window = _Window(index, time, time, self._metrics(), HitCounts(self._positive))
        self._windows[index] = window
        return window


# Reading states back.

_Part = TypeVar("_Part")


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Refuse whatever reading the field ``name`` raises as a ValueError that names it.

    Reading a part's state (the error test, the packed events) may fail
    deep inside on a damaged state, with a KeyError or TypeError of its own.
    """
    try:
        yield
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError) as error:
        message = str(error).removeprefix("state: ")
        raise ValueError(f"state: {name}: {message}") from error


def _part(state: Mapping[str, Any], key: str, read: Callable[[Mapping[str, Any]], _Part]) -> _Part:
    """The field ``key``, a part's state (a mapping), read by ``read``; errors name it."""
    with _field(key):
        return read(_mapping(state.get(key), key))


def _mapping(value: object, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"state: {key} must be a mapping, got {value!r}")
    return value


def _bool_field(state: Mapping[str, Any], key: str) -> bool:
    value = state.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"state: {key} must be true or false, got {value!r}")
    return value


def _time_field(state: Mapping[str, Any], key: str) -> datetime:
    """The field ``key``: a timezone-aware time in ISO 8601 (as ``isoformat`` writes it)."""
    value = state.get(key)
    try:
        time = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        time = None
    if time is None or time.utcoffset() is None:
        raise ValueError(f"state: {key} must be a timezone-aware ISO 8601 time, got {value!r}")
    return time


def _pack_errors(errors: npt.NDArray[np.float64]) -> str | State:
    """Errors, packed exactly: a classifier's, all 0 or 1, as bits (``numpy.packbits``,
    in base64, with their count), 64 times smaller than as doubles; others as doubles."""
    wrong = errors != 0.0
    if not np.array_equal(errors, wrong):
        return pack_floats(errors)
    bits = base64.b64encode(np.packbits(wrong).tobytes()).decode("ascii")
    return {"count": len(errors), "bits": bits}


def _unpack_errors(state: Mapping[str, Any], key: str) -> npt.NDArray[np.float64]:
    """The errors :func:`_pack_errors` packed in the field ``key``."""
    packed = state.get(key)
    if not isinstance(packed, Mapping):
        return unpack_float_array(packed, key)
    count = integer_field(packed, "count")
    bits = packed.get("bits")
    try:
        raw = base64.b64decode(bits, validate=True) if isinstance(bits, str) else None
    except binascii.Error:
        raw = None
    if raw is None or len(raw) != -(-count // 8):
        raise ValueError(f"state: {key} must pack {count} bits in base64, got {bits!r}")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count).astype(np.float64)


def _alarm_state(alarm: DriftAlarm | None) -> State | None:
    """A drift test's alarm as JSON-ready data, its evidence packed."""
    if alarm is None:
        return None
    return {
        "test": alarm.test,
        "direction": alarm.direction,
        "statistic": alarm.statistic,
        "threshold": alarm.threshold,
        "arl": alarm.arl,
        "observation": alarm.observation,
        "change_observation": alarm.change_observation,
        "current": pack_floats(np.asarray(alarm.current, dtype=np.float64)),
    }


def _alarm_from_state(state: Mapping[str, Any]) -> DriftAlarm:
    """The alarm :func:`_alarm_state` wrote."""
    test, direction = state.get("test"), state.get("direction")
    if not (isinstance(test, str) and direction in ("up", "down")):
        raise ValueError(f"state: an alarm's test and direction, got {test!r}, {direction!r}")
    return DriftAlarm(
        test=test,
        direction=direction,
        statistic=number_field(state, "statistic"),
        threshold=number_field(state, "threshold"),
        arl=number_field(state, "arl"),
        observation=integer_field(state, "observation"),
        change_observation=integer_field(state, "change_observation"),
        current=tuple(unpack_float_array(state.get("current"), "current").tolist()),
    )


def _figures_field(state: Mapping[str, Any], key: str) -> dict[str, float]:
    figures = _mapping(state.get(key), key)
    return {str(name): number_field(figures, name) for name in figures}


REFERENCE_MARGIN = 2.0
"""Standard errors added to the reference error rate the realized test compares against."""


def reference_error_rate(rate: float, labels: int) -> float:
    """The error rate the realized test takes as normal: the reference's, plus two standard errors.

    A reference of ``labels`` labels estimates the error rate with a
    standard error of about sqrt(p(1 - p) / n); a reference that happened to
    go well would otherwise make every later stretch look worse. Two
    standard errors keep the false alarms within the budget for error rates
    down to 5% (measured by benchmarks/performance.py) for about 5% more
    delay than one.

    >>> round(reference_error_rate(0.1, 2_000), 4)
    0.1134
    """
    spread = math.sqrt(max(rate * (1 - rate), 1e-4) / labels)
    return min(rate + REFERENCE_MARGIN * spread, 0.999)


def _predicted_class(event: PredictionEvent) -> str | None:
    """The class predicted: as sent, else the most probable one."""
    if isinstance(event.prediction, str):
        return event.prediction
    if event.probabilities:
        return max(sorted(event.probabilities), key=lambda c: event.probabilities[c])  # type: ignore[index]
    return None


def _error(record: PredictionRecord, label: str | float) -> float | None:
    """1.0 for a wrong class and 0.0 for a right one; a regressor's absolute error."""
    if isinstance(record.prediction, str):
        return 0.0 if label == record.prediction else 1.0
    if isinstance(record.prediction, float) and isinstance(label, float):
        return abs(label - record.prediction)
    return None


_NOTHING = PerformanceFindings()
"""What most predictions reveal (shared: findings are never changed once returned)."""


def _note(
    found: dict[int, list[PerformanceFindings]], number: int, findings: PerformanceFindings
) -> None:
    """Add what event ``number`` found, if anything."""
    if findings:
        found.setdefault(number, []).append(findings)


def _uncertainty_columns(
    events: Sequence[PredictionEvent],
) -> dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]]:
    """:func:`_uncertainty_measures` of many events, by measure: (event numbers, values).

    Each measure lists only the events it applies to, in their order.
    Probabilities are taken in rows of as many classes as they name, so
    that events naming many classes do not widen the others.
    """
    rows: dict[int, tuple[list[int], list[list[float]]]] = {}
    widths: tuple[list[int], list[float]] = ([], [])
    for number, event in enumerate(events):
        probabilities = event.probabilities
        if probabilities and len(probabilities) >= 2:
            at, values = rows.setdefault(len(probabilities), ([], []))
            at.append(number)
            values.append(list(probabilities.values()))
        interval = event.interval
        if interval is not None:
            widths[0].append(number)
            widths[1].append(interval.upper - interval.lower)
    columns: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = {}
    if rows:
        parts = [
            (np.asarray(at, dtype=np.intp), np.asarray(values, dtype=np.float64))
            for at, values in rows.values()
        ]
        numbers = np.concatenate([part for part, _ in parts])
        order = np.argsort(numbers, kind="stable")
        top2 = np.concatenate([np.sort(p, axis=1)[:, -2:] for _, p in parts])[order]
        logs = np.concatenate(
            [
                np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
                for _, p in parts
            ]
        )[order]
        numbers = numbers[order]
        columns["margin"] = (numbers, top2[:, 1] - top2[:, 0])
        columns["entropy"] = (numbers, -logs)
        columns["least_confidence"] = (numbers, 1.0 - top2[:, 1])
    if widths[0]:
        columns["interval_width"] = (
            np.asarray(widths[0], dtype=np.intp),
            np.asarray(widths[1], dtype=np.float64),
        )
    return columns


def _uncertainty_measures(event: PredictionEvent) -> dict[str, float]:
    """How sure the model was of one prediction, by every measure that applies."""
    measures: dict[str, float] = {}
    if event.probabilities and len(event.probabilities) >= 2:
        top = margin(event.probabilities)
        if top is not None:
            measures["margin"] = top
        measures["entropy"] = entropy(event.probabilities)
        measures["least_confidence"] = least_confidence(event.probabilities)
    if event.interval is not None:
        measures["interval_width"] = event.interval.upper - event.interval.lower
    return measures
