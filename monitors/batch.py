"""A batch of one model version's events through its monitor, column by column.

:meth:`ModelMonitor.update <driftline.monitors.model.ModelMonitor.update>`
costs hundreds of microseconds an event, nearly all of it Python spent per
value. :class:`BatchWatch` finds exactly the same things for a whole batch
with numpy: data quality on one column per feature, each drift subject's
normal scores and CUSUMs on its column, the multivariate distance on the
matrix of scores. Python runs per alarm, per resolution and per
data-quality violation, not per value.

Exactness is the point: whatever the batch boundaries, the findings, their
order and the monitor's state are those of the event-by-event path. Three
things make that hold:

* a detector consumes a batch up to its first alarm and stops there in the
  state the scalar path would have (``take_until_alarm``), so the subject's
  latch sees every alarm at the observation it happened;
* a latched subject is checked for resolution only once it has been quiet
  long enough, from then on one observation at a time (it resolves at the
  first observation back under its exit threshold);
* change points are placed from what the event-by-event path would have
  remembered at the alarm (``observed_at`` grows as the subject goes, and
  the monitor's recent events are looked up as of the alarming event).
"""

from collections.abc import Callable, Generator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from driftline.monitors.feature_drift import CategoricalDrift, NumericDrift
from driftline.monitors.findings import (
    EVENT_MEMORY,
    PREDICTION,
    UNCERTAINTY,
    DriftFinding,
    DriftResolution,
    ModelFindings,
    Subject,
    change_event_number,
    drift_finding,
)
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.positions import Located, maybe_kafka_position
from driftline.monitors.quality import QualityBatch
from driftline.monitors.rings import RunRing
from driftline.monitors.scoring import ReferenceStack
from driftline.monitors.uncertainty import margin
from driftline.schemas import (
    FeatureEvent,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
    QualityCheck,
    TaskType,
)

if TYPE_CHECKING:
    from driftline.monitors.model import ModelMonitor

Event = PredictionEvent | FeatureEvent
_Latch = Generator[tuple[int, int], int | None, None]
"""A subject's latch over a batch: it asks for stretches of observations, and is told their
first alarm (see :meth:`BatchWatch._latch_steps`)."""
_FIRST = object()
"""What starts a latch (see :meth:`BatchWatch._answer`)."""
Outcome = tuple[DriftFinding, bool] | DriftResolution
"""A subject's alarm (and whether it repeats one still latched), or its resolution."""


def counted_events(
    spec: ModelSpec, events: Sequence[Event]
) -> tuple[list[int], list[object], list[float | None]]:
    """The events of ``spec``'s version a monitor counts (features or a prediction), by index;
    each one's :func:`~driftline.monitors.findings.prediction_value` and
    :func:`~driftline.monitors.uncertainty.uncertainty_of`.

    Both worked out here as they would, with the version's task looked up
    once (two calls an event cost as much as the rest), a pass over the
    batch for each part when all are predictions (about a third of the
    time of one loop doing all of it). Raises ``ValueError`` for an event
    of another model version.
    """
    model_id, version = spec.model_id, spec.model_version
    for event in events:
        if event.model_id != model_id or event.model_version != version:
            raise ValueError(
                f"event of {event.model_id}/{event.model_version} fed to the monitor of "
                f"{model_id}/{version}"
            )
    wanted = float if spec.task is TaskType.REGRESSION else str
    classifier = spec.task is TaskType.CLASSIFICATION
    predicted = [event for event in events if isinstance(event, PredictionEvent)]
    if len(predicted) < len(events):  # feature events among them: event by event
        return _counted_in_turn(events, wanted, classifier)
    predictions: list[object] = [
        given if isinstance(given, wanted) else None
        for given in [event.prediction for event in predicted]
    ]
    unsure: list[float | None]
    if classifier:
        unsure = [
            None if event.probabilities is None else margin(event.probabilities)
            for event in predicted
        ]
    else:
        unsure = [
            None if event.interval is None else event.interval.upper - event.interval.lower
            for event in predicted
        ]
    rows = [
        index
        for index, event in enumerate(predicted)
        if event.features is not None or predictions[index] is not None or unsure[index] is not None
    ]
    if len(rows) < len(events):
        predictions = [predictions[index] for index in rows]
        unsure = [unsure[index] for index in rows]
    return rows, predictions, unsure


def _counted_in_turn(
    events: Sequence[Event], wanted: type, classifier: bool
) -> tuple[list[int], list[object], list[float | None]]:
    """:func:`counted_events` event by event, for a batch with feature events."""
    rows: list[int] = []
    predictions: list[object] = []
    unsure: list[float | None] = []
    for index, event in enumerate(events):
        prediction: object = None
        uncertainty: float | None = None
        if isinstance(event, PredictionEvent):
            given = event.prediction
            if isinstance(given, wanted):
                prediction = given
            if classifier:
                if event.probabilities is not None:
                    uncertainty = margin(event.probabilities)
            elif event.interval is not None:
                uncertainty = event.interval.upper - event.interval.lower
        if event.features is None and prediction is None and uncertainty is None:
            continue
        rows.append(index)
        predictions.append(prediction)
        unsure.append(uncertainty)
    return rows, predictions, unsure


class BatchWatch:
    """One batch of a monitor's events, after its warm-up, watched column by column.

    Build it with the monitor (whose reference is known), the events and
    their Kafka positions, then :meth:`run` it once: it updates the monitor
    and returns the findings of each event that revealed something, by the
    event's index in the batch.
    """

    def __init__(
        self,
        monitor: "ModelMonitor",
        events: Sequence[Event],
        positions: Sequence[Located | None],
    ) -> None:
        self.monitor = monitor
        self.events = events
        self.positions = positions
        rows, predictions, unsure = counted_events(monitor.spec, events)
        self.rows: list[int] = rows
        """Indices in the batch of the events the monitor counts (features or a prediction)."""
        self.predictions: list[object] = predictions
        self.unsure: list[float | None] = unsure
        self.events_before = monitor.events
        self.outcomes: list[tuple[int, int, Outcome]] = []
        self.scores: dict[str, np.ndarray] = {}
        self._failed: Exception | None = None
        """What a numeric subject's latch raised, failing the batch."""

    def collect(self) -> tuple[int, dict[int, ModelFindings]]:
        """Collect the warm-up reference from the batch's first events, as far as it goes.

        Data quality runs on the counted events up to the one that completes
        the warm-up (the reference is then built and the detectors started);
        returns how many of the batch's events that took, and their findings.
        """
        monitor = self.monitor
        warmup = monitor._warmup
        assert warmup is not None
        need = monitor.spec.drift.warmup_events - monitor.events
        if 0 < need <= len(self.rows):
            self.rows = self.rows[:need]
            taken = self.rows[-1] + 1
        else:
            taken = len(self.events)
        rows = self.rows
        with_features = [j for j, row in enumerate(rows) if self.events[row].features is not None]
        quality = monitor._quality.update_many(
            [self.events[rows[j]].features or {} for j in with_features]
        )
        features = [self.events[row].features or {} for row in rows]
        # A feature whose values are all finite floats is a column of the quality checks
        # already: taken as it is, not read from each event again.
        whole = quality.whole if len(with_features) == len(rows) else frozenset()
        warmup.extend(
            {
                **{
                    name: (
                        quality.numeric[name]
                        if name in whole
                        else [given.get(name) for given in features]
                    )
                    for name in monitor._watched
                },
                PREDICTION: self.predictions[: len(rows)],
                UNCERTAINTY: self.unsure[: len(rows)],
            }
        )
        self._account(quality, with_features)
        if monitor.events >= monitor.spec.drift.warmup_events:
            monitor._end_warmup()
        return taken, self._findings(quality, with_features)

    def _account(self, quality: QualityBatch, with_features: list[int]) -> None:
        """Count the batch's events as the monitor's, and remember them to place changes."""
        self.quality = quality
        self.with_features = with_features
        self.monitor._events += len(self.rows)
        self.monitor._recent_events.extend(
            [self.events[row].event_time for row in self.rows],
            [self.positions[row] for row in self.rows],
        )

    def run(self) -> tuple[int, dict[int, ModelFindings]]:
        """Update the monitor with the whole batch; its length, and each event's findings."""
        outcome = BatchWatch.run_together([self])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @staticmethod
    def run_together(
        watches: Sequence["BatchWatch"],
    ) -> list[tuple[int, dict[int, ModelFindings]] | Exception]:
        """:meth:`run` of several monitors' batches, their numeric tests side by side.

        With many models a batch brings each only a few events, and a
        model's share of the fixed cost of the numeric tests (a few dozen
        numpy calls) outweighs its events: here every model's numeric
        subjects advance in one computation (:meth:`NumericDrift.take_together`),
        and each monitor ends exactly as its own :meth:`run` would leave it.
        A batch that raised gets its exception in place of its outcome and the
        others go on (an exception in the shared step fails them all). The
        monitors must be distinct.
        """
        if len({id(watch.monitor) for watch in watches}) != len(watches):
            raise ValueError("each batch run together needs a monitor of its own")
        outcomes: list[tuple[int, dict[int, ModelFindings]] | Exception | None]
        outcomes = [None] * len(watches)
        ready: list[int] = []
        for number, watch in enumerate(watches):
            try:
                watch._prepare()
                ready.append(number)
            except Exception as error:
                outcomes[number] = error
        try:
            BatchWatch._latch_numeric_together([watches[number] for number in ready])
        except Exception as error:
            for number in ready:
                outcomes[number] = error
            ready = []
        for number in ready:
            watch = watches[number]
            try:
                if watch._failed is not None:
                    raise watch._failed
                outcomes[number] = watch._finish()
            except Exception as error:
                outcomes[number] = error
        return [outcome for outcome in outcomes if outcome is not None]

    @staticmethod
    def _latch_numeric_together(watches: Sequence["BatchWatch"]) -> None:
        """Every numeric subject's latch over its batch, their feeds run side by side in rounds.

        A subject's latch feeds its detector stretch by stretch: up to the
        first alarm, then on from there (a drift that goes on alarms every few
        dozen values), or one value at a time while it looks at resolving.
        Each round gathers the next stretch of every latch that asks for one,
        whatever its model, and runs them in one computation
        (:meth:`NumericDrift.take_together`); the first round is the whole
        batch of most subjects (see :meth:`_together`). Each latch goes on
        exactly as it would alone. An exception inside a latch fails its own
        batch only; one in a shared computation fails them all (it raises).
        """
        plan = [(watch, order, taken) for watch in watches for order, taken in watch._together()]
        hits = NumericDrift.take_together(
            [watch.monitor._subjects[order].detector for watch, order, _ in plan],  # type: ignore[misc]
            [watch._columns[order][1][:taken] for watch, order, taken in plan],
            [watch._columns[order][2][:taken] for watch, order, taken in plan],
        )
        for (watch, order, taken), hit in zip(plan, hits, strict=True):
            watch._ahead[order] = (taken, hit)
        asking: list[tuple[BatchWatch, int, _Latch, tuple[int, int]]] = []
        for watch in watches:
            asking += watch._start_numeric_latches()
        while asking:
            hits = NumericDrift.take_together(
                [watch.monitor._subjects[order].detector for watch, order, _, _ in asking],  # type: ignore[misc]
                [watch._columns[order][1][lo:hi] for watch, order, _, (lo, hi) in asking],
                [watch._columns[order][2][lo:hi] for watch, order, _, (lo, hi) in asking],
            )
            still: list[tuple[BatchWatch, int, _Latch, tuple[int, int]]] = []
            for (watch, order, latch, (lo, _)), hit in zip(asking, hits, strict=True):
                if watch._failed is not None:
                    continue
                stretch = watch._answer(latch, None if hit is None else lo + hit)
                if stretch is not None:
                    still.append((watch, order, latch, stretch))
            asking = [item for item in still if item[0]._failed is None]

    def _start_numeric_latches(self) -> list[tuple["BatchWatch", int, "_Latch", tuple[int, int]]]:
        """Start the latch of each numeric subject with what was taken ahead; what they ask next.

        A subject taken whole with no alarm, and not latched, needs no latch:
        all it would do is note where each value was observed.
        """
        asking: list[tuple[BatchWatch, int, _Latch, tuple[int, int]]] = []
        subjects = self.monitor._subjects
        for order, (ticks, _, _) in self._columns.items():
            subject = subjects[order]
            ahead = self._ahead.get(order)
            if ahead == (len(ticks), None) and not subject.latched:
                _note_observed(subject.observed_at, self.events_before + 1 + ticks)
                continue
            latch = self._latch_steps(order, subject, ticks, np.ones(len(ticks), dtype=bool))
            stretch = self._answer(latch, _FIRST)
            if ahead is not None and stretch is not None:
                taken, hit = ahead
                if stretch != (0, taken):  # a bug: fail this batch only, as a latch would
                    self._failed = AssertionError(f"took {taken} ahead; the latch wants {stretch}")
                    return []
                stretch = self._answer(latch, hit)
            if stretch is not None:
                asking.append((self, order, latch, stretch))
            if self._failed is not None:
                return []
        return asking

    def _answer(self, latch: "_Latch", hit: object) -> tuple[int, int] | None:
        """Give a latch what its last stretch found; the next stretch it asks for (None: done).

        The first call (``_FIRST``) starts it. A latch that raises fails this batch.
        """
        try:
            return next(latch) if hit is _FIRST else latch.send(hit)  # type: ignore[arg-type]
        except StopIteration:
            return None
        except Exception as error:
            self._failed = error
            return None

    def _prepare(self) -> None:
        """Data quality of the batch, and its numeric subjects' columns and normal scores."""
        rows = self.rows
        self._with_features = [
            j for j, row in enumerate(rows) if self.events[row].features is not None
        ]
        self._quality = self.monitor._quality.update_many(
            [self.events[rows[j]].features or {} for j in self._with_features]
        )
        self._feature_rows = np.asarray(self._with_features, dtype=np.int64)
        self._columns = self._numeric_columns(self._quality, self._feature_rows)
        self._ahead: dict[int, tuple[int, int | None]] = {}
        """What was taken ahead of a subject's latch, by order: how many values, and the alarm."""

    def _together(self) -> list[tuple[int, int]]:
        """The numeric subjects whose latch starts by feeding a known stretch; its length.

        A subject's latch starts by feeding the whole batch (up to its first
        alarm) when it is not latched, and the values up to its next look at
        resolving when it is latched and that look is ahead (the usual case
        under a drift that goes on, which keeps alarming): either way the
        stretch is known before the latch runs, so it may as well be fed side
        by side with the others. A latched subject due to look at resolving
        at its next value steps one value at a time, alone.
        """
        subjects = self.monitor._subjects
        resolve_after = self.monitor.spec.alerts.resolve_after_events
        stretches = []
        for order, (ticks, _, _) in self._columns.items():
            subject, taken = subjects[order], len(ticks)
            if subject.latched:
                need = resolve_after - subject.quiet - 1
                if need <= 0:
                    continue
                taken = min(taken, need)
            if taken:
                stretches.append((order, taken))
        return stretches

    def _finish(self) -> tuple[int, dict[int, ModelFindings]]:
        """The other subjects over the batch (the numeric ones ran together), then the counts."""
        quality, feature_rows = self._quality, self._feature_rows
        for order, subject in enumerate(self.monitor._subjects):
            if not isinstance(subject.detector, NumericDrift):  # the numeric ones ran together
                self._watch(order, subject, quality, feature_rows)
        self._account(quality, self._with_features)
        return len(self.events), self._findings(quality, self._with_features)

    def quality_changes(self) -> dict[tuple[str, QualityCheck], list[tuple[int, bool]]]:
        """Per data-quality check, the batch indices at which it began or stopped alarming."""
        rows, with_features = self.rows, self.with_features
        changes: dict[tuple[str, QualityCheck], list[tuple[int, bool]]] = {}
        for state, marks in ((False, self.quality.clears), (True, self.quality.alarms)):
            for key, indices in marks.items():
                changes.setdefault(key, []).extend((rows[with_features[i]], state) for i in indices)
        return {key: sorted(marks) for key, marks in changes.items()}

    # One subject over the batch.

    def _numeric_columns(
        self, quality: QualityBatch, feature_rows: np.ndarray
    ) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each numeric subject's ticks, values and normal scores, by the subject's order.

        All of them scored in one pass (see :class:`ReferenceStack`): with few
        events a model, scoring feature by feature would cost most of the batch.
        The stack is laid out for each batch, not kept: kept, it would copy
        every reference (about 270 KB for a model of 20 features), and with
        a hundred models that costs more memory than the time it saves.
        """
        numeric: list[tuple[int, Subject, NumericDrift, np.ndarray, np.ndarray]] = []
        for order, subject in enumerate(self.monitor._subjects):
            detector = subject.detector
            if isinstance(detector, NumericDrift):
                ticks, values = self._column(subject.name, detector, quality, feature_rows)
                numbers = np.asarray(values, dtype=np.float64)
                numeric.append((order, subject, detector, ticks, numbers))
        if not numeric:
            return {}
        detectors = [detector for _, _, detector, _, _ in numeric]
        every_score = NumericDrift.scores_ahead_together(
            detectors,
            [numbers for *_, numbers in numeric],
            ReferenceStack([detector.reference for detector in detectors]),
        )
        columns: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for (order, subject, _, ticks, numbers), scores in zip(numeric, every_score, strict=True):
            column = np.full(len(self.rows), np.nan)
            column[ticks] = scores
            self.scores[subject.name] = column
            columns[order] = (ticks, numbers, scores)
        return columns

    def _watch(
        self, order: int, subject: Subject, quality: QualityBatch, feature_rows: np.ndarray
    ) -> None:
        """Run one categorical or multivariate subject over the batch: alarms and resolution."""
        detector = subject.detector
        if isinstance(detector, MultivariateDrift):
            self._watch_together(order, subject, detector)
            return
        assert isinstance(detector, CategoricalDrift)
        ticks, values = self._column(subject.name, detector, quality, feature_rows)
        categories = [str(value) for value in values]

        def feed(lo: int, hi: int) -> int | None:
            hit = detector.take_until_alarm(categories[lo:hi])
            return None if hit is None else lo + hit

        self._latch(order, subject, ticks, np.ones(len(ticks), dtype=bool), feed)

    def _watch_together(self, order: int, subject: Subject, detector: MultivariateDrift) -> None:
        """The multivariate subject: every counted event is a tick, complete ones observations."""
        matrix = np.column_stack([self.scores[name] for name in detector.features])
        observed = np.isfinite(matrix).all(axis=1)
        distances = detector.distances(matrix[observed])

        def feed(lo: int, hi: int) -> int | None:
            hit = detector.take_until_alarm(distances[lo:hi])
            return None if hit is None else lo + hit

        self._latch(order, subject, np.arange(len(self.rows)), observed, feed)

    def _column(
        self,
        name: str,
        detector: NumericDrift | CategoricalDrift,
        quality: QualityBatch,
        feature_rows: np.ndarray,
    ) -> tuple[np.ndarray, list[object] | np.ndarray]:
        """The counted events with a value for ``name`` (indices among ``rows``), and the values."""
        if name in (PREDICTION, UNCERTAINTY):
            column = self.predictions if name == PREDICTION else self.unsure
            wanted = float if isinstance(detector, NumericDrift) else str
            ticks = [j for j, value in enumerate(column) if isinstance(value, wanted)]
            return np.asarray(ticks, dtype=np.int64), [column[j] for j in ticks]
        numbers = quality.numeric.get(name)
        if numbers is not None and name in quality.whole and isinstance(detector, NumericDrift):
            return feature_rows, numbers  # a value in every event: nothing to leave out
        if numbers is not None:
            present = ~np.isnan(numbers)
            values = numbers[present]
            if isinstance(detector, CategoricalDrift):
                return feature_rows[present], [float(value) for value in values]
            return feature_rows[present], values
        texts = quality.categories[name]
        kept = [i for i, text in enumerate(texts) if text is not None]
        if isinstance(detector, NumericDrift):
            return np.zeros(0, dtype=np.int64), []
        return feature_rows[kept], [texts[i] for i in kept]

    def _latch(
        self,
        order: int,
        subject: Subject,
        ticks: np.ndarray,
        observed: np.ndarray,
        feed: Callable[[int, int], int | None],
    ) -> None:
        """:meth:`_latch_steps`, each stretch it asks for fed by ``feed(lo, hi)`` at once."""
        latch = self._latch_steps(order, subject, ticks, observed)
        try:
            stretch = next(latch)
            while True:
                stretch = latch.send(feed(*stretch))
        except StopIteration:
            return

    def _latch_steps(
        self, order: int, subject: Subject, ticks: np.ndarray, observed: np.ndarray
    ) -> "_Latch":
        """The latch of :meth:`ModelMonitor._latch`, over a batch of ticks.

        ``ticks`` are the counted events (indices among ``rows``) at which
        the event-by-event path looks at the subject; ``observed`` marks
        those whose value the detector takes. It yields each stretch of
        observations ``(lo, hi)`` the detector must be fed next, up to the
        first alarm, and is sent back that alarm's observation index (None
        when there was none), so that its caller may feed many latches'
        stretches together.
        """
        policy = self.monitor.spec.alerts
        before = np.concatenate([[0], np.cumsum(observed)])
        """Observations among the first t ticks."""
        tick_of = np.flatnonzero(observed)
        first_event = self.events_before + 1
        observation_events = first_event + ticks[observed]
        tick = 0
        while tick < len(ticks):
            stepping = False
            if subject.latched:
                need = policy.resolve_after_events - subject.quiet - 1
                stepping = need <= 0
                end = tick + 1 if stepping else min(len(ticks), tick + need)
            else:
                end = len(ticks)
            lo = int(before[tick])
            hit = yield lo, int(before[end])
            if hit is not None:
                _note_observed(subject.observed_at, observation_events[lo : hit + 1])
                alarm_tick = int(tick_of[hit])
                repeat = subject.latched
                subject.latched, subject.quiet = True, 0
                self._alarm(order, subject, int(ticks[alarm_tick]), repeat)
                tick = alarm_tick + 1
                continue
            _note_observed(subject.observed_at, observation_events[lo : int(before[end])])
            if subject.latched:
                subject.quiet += end - tick
                back = subject.detector.pressure < policy.exit_fraction
                if stepping and subject.quiet >= policy.resolve_after_events and back:
                    subject.latched, subject.quiet = False, 0
                    event = self.events[self.rows[int(ticks[tick])]]
                    resolution = DriftResolution(subject.name, event.event_id, event.event_time)
                    self.outcomes.append((int(ticks[tick]), order, resolution))
            tick = end

    def _alarm(self, order: int, subject: Subject, j: int, repeat: bool) -> None:
        alarm = subject.detector.last_alarm
        assert alarm is not None
        event = self.events[self.rows[j]]
        finding = drift_finding(
            subject, alarm, event, self._recalled(change_event_number(subject, alarm), j)
        )
        self.outcomes.append((j, order, (finding, repeat)))

    def _recalled(self, event_number: int, j: int) -> tuple[datetime | None, KafkaPosition | None]:
        """Event time and position of a model event, as remembered at the ``j``-th counted one."""
        before = self.monitor._recent_events  # as before the batch: it grows once it is done
        alarm_number = self.events_before + j + 1
        remembered = min(EVENT_MEMORY, len(before) + j + 1)
        if not alarm_number - remembered < event_number <= alarm_number:
            return None, None
        if event_number > self.events_before:
            row = self.rows[event_number - self.events_before - 1]
            return self.events[row].event_time, maybe_kafka_position(self.positions[row])
        return before[event_number - (self.events_before - len(before)) - 1]

    # Putting the findings together.

    def _findings(
        self, quality: QualityBatch, with_features: list[int]
    ) -> dict[int, ModelFindings]:
        """Each event's findings in the order the event-by-event path lists them."""
        found: dict[int, ModelFindings] = {}

        def of(j: int) -> ModelFindings:
            row = self.rows[j]
            if row not in found:
                found[row] = ModelFindings()
            return found[row]

        for j, _, outcome in sorted(self.outcomes, key=lambda item: item[:2]):
            if isinstance(outcome, DriftResolution):
                of(j).resolved.append(outcome)
            else:
                finding, repeat = outcome
                (of(j).repeats if repeat else of(j).drifts).append(finding)
        for index, findings in quality.findings.items():
            of(with_features[index]).quality.extend(findings)
        return found


def _note_observed(ring: RunRing, events: np.ndarray) -> None:
    """Note strictly increasing event numbers in a subject's ring: as one run when they
    follow each other (then the last is the first plus their count less one), as they do for
    a value present in every event."""
    count = len(events)
    if count and int(events[-1]) - int(events[0]) == count - 1:
        ring.extend_run(int(events[0]), count)
    else:
        ring.extend(events)
