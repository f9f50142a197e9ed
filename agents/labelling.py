"""Labels joined to their predictions, and the performance monitors they feed.

A label may land long after its prediction, or, when producers race, before
it. :class:`LabelDesk` keeps whichever comes first waiting in the label
join's store (a faust table in the worker, so a restarted or rebalanced
worker goes on where the last one stopped) for ``label_retention_seconds`` of
event time. A joined pair feeds the version's
:class:`~driftline.monitors.performance.PerformanceMonitor`; a prediction
still alone at the end of the retention counts as never labelled; a label
still alone is dead-lettered as ``orphan_label`` with its original bytes.

Every label message ends as processed (joined), dead-lettered, a duplicate,
or waiting; a waiting one later becomes processed or dead-lettered.

Predictions come in batches (:meth:`LabelDesk.predictions`). What a batch
reveals is worked out first (:meth:`LabelDesk.join_predictions`: counting,
joining, expiring, event by event exactly as one at a time, since each event
can settle a window or expire what waited), and only then taken through the
version's lifecycle (:meth:`LabelDesk.release`), so that the caller can
release each event's share right after that event's own drift alerts, in
the order a one-at-a-time worker would have produced them.

A model's predictions wait in the store only once the model has had a label
(see :mod:`driftline.monitors.labels`): before, the latest
``held_before_first_label`` of them are held in memory only, so a model that
never gets labels costs no table writes. What waits is only what the
performance monitor needs, as a compact JSON array: for a prediction
``[version, window, prediction, probabilities, [partition, offset(, topic)]]``
(the probabilities as a list in the order of the spec's classes when it has
them; the topic only when it is not the predictions topic; the event time is
the join's own), for a label ``[event_id, label, value, key, [topic,
partition, offset]]`` (the message's bytes in base64, to dead-letter it as it
came). Objects written by earlier versions are still read.
"""

import base64
import logging
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from driftline.agents.alerts import performance_alert
from driftline.agents.counters import TopicCounters
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelKey, ModelRegistry
from driftline.monitors.labels import AlreadyLabelled, Expired, LabelJoin, Match, Side
from driftline.monitors.performance import (
    PerformanceFindings,
    PerformanceMonitor,
    PerformanceResolution,
    PredictionRecord,
)
from driftline.monitors.positions import Located, Position, maybe_kafka_position
from driftline.schemas import (
    Alert,
    DeadLetterReason,
    KafkaPosition,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
    TaskType,
)
from driftline.streams import Rejection
from driftline.streams.settings import Settings

log = logging.getLogger(__name__)


class LabelMessage(NamedTuple):
    """A label message as received: enough to dead-letter it long after it arrived.

    ``source`` is where it was consumed, as the consumer gave it: it becomes
    a validated :class:`~driftline.schemas.KafkaPosition` only in an output
    that names it (a dead letter, an alert's evidence), which few labels lead to.
    """

    value: bytes | None
    key: bytes | None
    source: Located


DeadLetterSink = Callable[[LabelMessage, Rejection], Output]
"""Counts a label message as dead-lettered and returns its dead letter."""

AlertSink = Callable[[Alert], list[Output]]
"""Takes a performance alert through the version's lifecycle; the messages it leads to."""

ResolutionSink = Callable[[ModelSpec, PerformanceResolution, KafkaPosition | None], list[Output]]
"""Takes a performance that came back through the version's lifecycle; the messages."""


@dataclass(frozen=True, slots=True)
class _Revealed:
    """Performance findings of a version, not yet through its lifecycle."""

    spec: ModelSpec
    found: PerformanceFindings
    source: Located | None


@dataclass(frozen=True, slots=True)
class _Refused:
    """A label message to dead-letter, not yet counted."""

    message: LabelMessage
    rejection: Rejection


class _Judged(NamedTuple):
    """A joined pair whose label fits its version: what its monitor is to be fed.

    A named tuple, like :class:`LabelMessage`: one of each is made for each
    label, and a frozen dataclass takes about twice as long to make.
    """

    match: Match
    spec: ModelSpec
    monitor: PerformanceMonitor
    record: PredictionRecord
    event_id: str
    label: Any


_Judge = tuple[ModelSpec | None, PerformanceMonitor | None]
"""A version's spec (None: not registered) and performance monitor, looked up once."""

PendingOutputs = list[_Revealed | _Refused]
"""What one prediction led to, before :meth:`LabelDesk.release` makes it messages."""


@dataclass
class LabelCounts:
    """What the join saw beyond the labels topic's counts."""

    orphaned: int = 0
    predictions_unlabelled: int = 0


class LabelDesk:
    """Joins labels to predictions by id and feeds each version's performance monitor."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        counters: TopicCounters,
        *,
        dead_letter: DeadLetterSink,
        alert: AlertSink,
        resolve: ResolutionSink,
        store: MutableMapping[bytes, bytes] | None = None,
        held_before_first_label: int = 2_000,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.counts = LabelCounts()
        self.counters = counters
        self._dead_letter = dead_letter
        self._alert = alert
        self._resolve = resolve
        self.join = LabelJoin(
            timedelta(seconds=settings.label_retention_seconds),
            store=store,
            max_entries=settings.max_pending_labels,
            held_before_first_label=held_before_first_label,
            max_held=settings.max_held_predictions,
        )
        self._monitors: dict[ModelKey, PerformanceMonitor] = {}
        self.used: Callable[[ModelSpec], None] | None = None
        """Told of each version whose performance monitor is fed, so its state is saved."""

    @property
    def monitors(self) -> dict[ModelKey, PerformanceMonitor]:
        """The performance monitor of each model version seen, by model and version."""
        return self._monitors

    def prediction(
        self, spec: ModelSpec, event: PredictionEvent, position: Located | None
    ) -> list[Output]:
        """Count a prediction, join it to a waiting label, and expire what waited too long."""
        return self.predictions(spec, [event], [position])[0]

    def predictions(
        self,
        spec: ModelSpec,
        events: Sequence[PredictionEvent],
        positions: Sequence[Located | None],
    ) -> list[list[Output]]:
        """:meth:`prediction` for each event of one version, in order; each event's outputs.

        The outputs are those of calling :meth:`prediction` event by event.
        A caller that takes other alerts of the version through its
        lifecycle between these events should call :meth:`join_predictions`
        first and :meth:`release` each event's share at its place instead.
        """
        return [self.release(pending) for pending in self.join_predictions(spec, events, positions)]

    def join_predictions(
        self,
        spec: ModelSpec,
        events: Sequence[PredictionEvent],
        positions: Sequence[Located | None],
    ) -> list[PendingOutputs]:
        """Count, join and expire a batch of one version's predictions; each one's findings.

        Event by event, exactly as :meth:`prediction` would, but nothing goes
        through the version's lifecycle yet: :meth:`release` each event's
        share, in order, to get its messages. The performance monitor and the
        join do not depend on the lifecycle, so releasing later changes
        nothing they find.
        """
        monitor = self._monitor(spec)
        payload_of = _PayloadWriter(spec, self.settings.predictions_topic)
        records = monitor.records(events, positions)
        ids = [event.event_id for event in events]
        times = [event.event_time for event in events]
        payloads = payload_of.many(records)
        looked_up: dict[ModelKey, _Judge] = {}
        pushed = self.join.held_many(spec.model_id, ids, times, payloads)
        if pushed is not None:  # no label yet: no match, and what leaves was never labelled
            return self._held(spec, monitor, events, records, pushed, looked_up)
        counted = monitor.predicted_many(events, positions, records)
        joined = self.join.predicted_many(spec.model_id, ids, times, payloads)
        revealed: list[PendingOutputs] = []
        # Each prediction is counted just before what its joining led to.
        for (_, found), (match, expired) in zip(counted, joined, strict=True):
            pending: PendingOutputs = []
            if found:
                pending.append(_Revealed(spec, found, None))
            if match is not None:
                self.counters.waiting -= 1
                pending += self._joined(match)
            if expired:
                pending += self._expired(expired, looked_up)
            revealed.append(pending)
        return revealed

    def release(self, pending: PendingOutputs) -> list[Output]:
        """The messages of what one prediction (or label) led to, through the lifecycle."""
        outputs: list[Output] = []
        for item in pending:
            if isinstance(item, _Refused):
                outputs.append(self._dead_letter(item.message, item.rejection))
            else:
                source = maybe_kafka_position(item.source)
                outputs += self.outputs_of(item.spec, item.found, source=source)
        return outputs

    def label(self, label: LabelEvent, message: LabelMessage) -> list[Output]:
        """Join one new label (counted as processed, waiting or dead-lettered); the outputs."""
        return self.label_many([label], [message])[0]

    def label_many(
        self, labels: Sequence[LabelEvent], messages: Sequence[LabelMessage]
    ) -> list[list[Output]]:
        """:meth:`label` each new label in turn; the outputs of each.

        The same outputs as one by one, in three passes: every label is
        joined first; then what the matches and expiries found is counted by
        the performance monitors, in the same order for each monitor; then
        each label's outputs go through the lifecycle, in order. The join
        reads nothing of the monitors, nor the lifecycle, so this changes
        nothing they see; but each monitor takes the matches between two
        labels that expire something together
        (:meth:`PerformanceMonitor.labelled_many`).
        """
        with self.join.saving_marks_once():
            joined = [
                self._join(label, message) for label, message in zip(labels, messages, strict=True)
            ]
        found = self._count_joined(joined)
        return [
            self.release(step if isinstance(step, list) else found.get(number, []))
            for number, step in enumerate(joined)
        ]

    def _count_joined(
        self, joined: Sequence[PendingOutputs | tuple[Match | None, list[Expired]]]
    ) -> dict[int, PendingOutputs]:
        """What each joined label's match, then what its model's join expired, led to, by the
        label's number: each run of matches between two labels that expire something goes to
        each version's monitor together, in order; the expiries after them."""
        found: dict[int, PendingOutputs] = {}
        run: dict[int, list[tuple[int, _Judged]]] = {}
        """Per monitor (by id), the matches of the run, in order."""
        for number, step in enumerate(joined):
            if isinstance(step, list):
                continue
            match, gone = step
            if match is not None:
                judgement = self._judge(match)
                if isinstance(judgement, _Refused):
                    found[number] = [judgement]
                else:
                    run.setdefault(id(judgement.monitor), []).append((number, judgement))
            if gone:
                self._count_run(run, found)
                found.setdefault(number, []).extend(self._expired(gone))
        self._count_run(run, found)
        return found

    def _count_run(
        self, run: dict[int, list[tuple[int, "_Judged"]]], found: dict[int, PendingOutputs]
    ) -> None:
        """Feed a run of matches to their monitors, each monitor's at once; what each revealed
        goes into ``found`` by the label's number. Empties ``run``."""
        for matched in run.values():
            monitor = matched[0][1].monitor
            self.counters.processed += len(matched)
            revealed = monitor.labelled_many(
                [judged.record for _, judged in matched],
                [judged.label for _, judged in matched],
                [judged.event_id for _, judged in matched],
                [judged.match.label_time for _, judged in matched],
            )
            for place, findings in revealed:
                number, judged = matched[place]
                source = _label_source(judged.match.label)
                found.setdefault(number, []).append(_Revealed(judged.spec, findings, source))
        run.clear()

    def _join(
        self, label: LabelEvent, message: LabelMessage
    ) -> PendingOutputs | tuple[Match | None, list[Expired]]:
        """Join one label: its match (None: it waits) and what its model's join expired, or
        its refusal (its prediction had a label already)."""
        payload = label_payload(label, message)
        result = self.join.labelled(label.model_id, label.prediction_id, label.event_time, payload)
        if isinstance(result, AlreadyLabelled):
            return [_Refused(message, already_labelled(label))]
        if result is None:
            self.counters.waiting += 1
        return result, self.join.advance(label.model_id)

    def refuse(self, message: LabelMessage, rejection: Rejection) -> Output:
        """Count a label message as dead-lettered; its dead letter."""
        return self._dead_letter(message, rejection)

    def forget(self, model: ModelKey) -> None:
        """Drop the performance state of a version whose spec changed or went away."""
        self._monitors.pop(model, None)

    # Joining and expiring.

    def _joined(self, match: Match) -> PendingOutputs:
        """Feed a joined pair to its version's monitor, unless the label does not fit."""
        return self._fed(self._judge(match))

    def _judge(self, match: Match) -> "_Judged | _Refused":
        """A joined pair, ready for its version's monitor; or its label refused (its version
        went away, or the label does not fit).

        The label's message is read back from its payload only for an output
        that needs it: most labels lead to none.
        """
        version = _version(match.prediction)
        spec = self.registry.spec(match.model_id, version)
        if spec is None:
            return _Refused(_label_message(match.label), version_gone(match.model_id, version))
        event_id, label = _label_of(match.label)
        misfit = label_violation(spec, label)
        if misfit is not None:
            return _Refused(_label_message(match.label), misfit)
        record = _prediction_record(
            spec, match.prediction, match.prediction_time, self.settings.predictions_topic
        )
        return _Judged(match, spec, self._monitor(spec), record, event_id, label)

    def _fed(self, judged: "_Judged | _Refused") -> PendingOutputs:
        """What a joined pair reveals, fed to its version's monitor (or its label refused)."""
        if isinstance(judged, _Refused):
            return [judged]
        self.counters.processed += 1
        found = judged.monitor.labelled(
            judged.record,
            judged.label,
            event_id=judged.event_id,
            label_time=judged.match.label_time,
        )
        return [_Revealed(judged.spec, found, _label_source(judged.match.label))] if found else []

    def _expired(
        self, gone: list[Expired], looked_up: dict[ModelKey, _Judge] | None = None
    ) -> PendingOutputs:
        """Count what the join expired: orphan labels, and predictions never labelled.

        ``looked_up`` keeps the spec and performance monitor of each version
        met, for a caller that expires many predictions while nothing can
        register a spec (one batch): a model without labels expires one
        prediction for each it makes.
        """
        pending: PendingOutputs = []
        for expired in gone:
            if expired.side is Side.LABEL:
                self.counters.waiting -= 1
                self.counts.orphaned += 1
                pending.append(_Refused(_label_message(expired.payload), _orphan(expired)))
                continue
            self._unlabelled(expired.model_id, pending, [expired.payload], looked_up)
        return pending

    def _held(
        self,
        spec: ModelSpec,
        monitor: PerformanceMonitor,
        events: Sequence[PredictionEvent],
        records: Sequence[PredictionRecord],
        pushed: list[tuple[int, Any]],
        looked_up: dict[ModelKey, _Judge],
    ) -> list[PendingOutputs]:
        """What each of a batch's predictions led to, held by a model without labels.

        Each is counted by the version's ``monitor``, then the predictions it
        pushed out (``pushed``: the index of the one they left after, and
        their payload) are counted as never labelled, as :meth:`_unlabelled`
        counts them. When all of them are of the batch's own version (as a
        rule), the monitor counts them all at once
        (:meth:`PerformanceMonitor.predicted_leaving`); else in turn, those of
        the version straight into its ``monitor``, without looking their
        version up.
        """
        self.counts.predictions_unlabelled += len(pushed)
        version, model_id = spec.model_version, spec.model_id
        windows = _version_windows(pushed, version)
        if windows is not None:
            held: list[PendingOutputs] = [[] for _ in events]
            for number, findings in monitor.predicted_leaving(events, records, windows).items():
                held[number] = [_Revealed(spec, some, None) for some in findings]
            return held
        counted = monitor.predicted_many(events, [record.position for record in records], records)
        revealed: list[PendingOutputs] = []
        at, leaving = 0, len(pushed)
        for index, (_, found) in enumerate(counted):
            pending: PendingOutputs = [_Revealed(spec, found, None)] if found else []
            while at < leaving and pushed[at][0] == index:
                payload = pushed[at][1]
                at += 1
                if type(payload) is list and payload[0] == version:
                    more = monitor.unlabelled_in(int(payload[1]))
                    if more:
                        pending.append(_Revealed(spec, more, None))
                else:  # another version's, or written by an earlier driftline
                    self._unlabelled_one(model_id, pending, payload, looked_up)
            revealed.append(pending)
        return revealed

    def _unlabelled(
        self,
        model_id: str,
        pending: PendingOutputs,
        payloads: list[Any],
        looked_up: dict[ModelKey, _Judge] | None,
    ) -> PendingOutputs:
        """Count predictions of ``model_id`` never labelled into their versions' windows.

        What each reveals is added to ``pending``, which is returned.
        """
        self.counts.predictions_unlabelled += len(payloads)
        for payload in payloads:
            self._unlabelled_one(model_id, pending, payload, looked_up)
        return pending

    def _unlabelled_one(
        self,
        model_id: str,
        pending: PendingOutputs,
        payload: Any,
        looked_up: dict[ModelKey, _Judge] | None,
    ) -> None:
        """One prediction of :meth:`_unlabelled` into its window (already counted there)."""
        key = (model_id, _version(payload))
        judge = None if looked_up is None else looked_up.get(key)
        if judge is None:
            spec = self.registry.spec(*key)
            judge = (spec, None if spec is None else self._monitor(spec))
            if looked_up is not None:
                looked_up[key] = judge
        spec, monitor = judge
        if spec is None or monitor is None:
            return
        found = monitor.unlabelled_in(_window_of(payload))
        if found:
            pending.append(_Revealed(spec, found, None))

    # Monitors and outputs.

    def _monitor(self, spec: ModelSpec) -> PerformanceMonitor:
        key = (spec.model_id, spec.model_version)
        monitor = self._monitors.get(key)
        if monitor is None or monitor.spec is not spec:  # a new spec starts afresh
            monitor = self._monitors[key] = PerformanceMonitor(spec)
        if self.used is not None:
            self.used(spec)
        return monitor

    def outputs_of(
        self, spec: ModelSpec, found: PerformanceFindings, source: KafkaPosition | None = None
    ) -> list[Output]:
        """The messages of what a version's performance monitor found: its alerts and
        resolutions through the version's lifecycle, its window reports."""
        outputs: list[Output] = []
        for finding in found.findings:
            outputs += self._alert(
                performance_alert(spec.model_id, spec.model_version, finding, source)
            )
        for resolution in found.resolved:
            outputs += self._resolve(spec, resolution, source)
        for report in found.reports:
            outputs.append(Output(Destination.PERFORMANCE, spec.model_id.encode("utf-8"), report))
        return outputs


def label_payload(label: LabelEvent, message: LabelMessage) -> list[Any]:
    """What the join keeps of a label waiting for its prediction: its id, the label, and its
    message (base64) to dead-letter it as it came."""
    source = message.source
    return [
        label.event_id,
        label.label,
        None if message.value is None else _b64(message.value),
        None if message.key is None else _b64(message.key),
        [source.topic, source.partition, source.offset],
    ]


def already_labelled(label: LabelEvent) -> Rejection:
    """Why a second label of a prediction is refused."""
    return Rejection(
        DeadLetterReason.ALREADY_LABELLED,
        f"prediction {label.prediction_id!r} of model {label.model_id} already has a "
        "label; send one label per prediction (a correction needs the prediction "
        "published again under a new event id)",
        field_path="prediction_id",
    )


def version_gone(model_id: str, version: str) -> Rejection:
    """Why a label is refused whose prediction's version is no longer registered."""
    return Rejection(
        DeadLetterReason.UNKNOWN_MODEL,
        f"the prediction this label is for belongs to model {model_id} version "
        f"{version}, which is no longer registered",
        field_path="prediction_id",
    )


def label_violation(spec: ModelSpec, label: Any) -> Rejection | None:
    """Why a label does not fit its prediction's model, or None when it does."""
    name = f"model {spec.model_id} version {spec.model_version}"
    if spec.task is TaskType.REGRESSION:
        if isinstance(label, float):
            return None
        return Rejection(
            DeadLetterReason.SPEC_VIOLATION,
            f"{name} is a regression model: its label must be a number, not {label!r}",
            field_path="label",
        )
    if not isinstance(label, str):
        return Rejection(
            DeadLetterReason.SPEC_VIOLATION,
            f"{name} is a classifier: its label must be a class (a string), not {label!r}",
            field_path="label",
        )
    if spec.classes is not None and label not in spec.classes:
        return Rejection(
            DeadLetterReason.SPEC_VIOLATION,
            f"{name} has the classes {', '.join(map(repr, spec.classes[:10]))}; "
            f"the label is {label!r}",
            field_path="label",
        )
    return None


def _orphan(expired: Expired) -> Rejection:
    when = (
        "was pushed out early: too many labels and predictions were waiting"
        if (expired.evicted)
        else "found no prediction within the label retention"
    )
    return Rejection(
        DeadLetterReason.ORPHAN_LABEL,
        f"this label for prediction {expired.prediction_id!r} of model {expired.model_id} "
        f"(event time {_iso(expired.event_time)}) {when}; publish the prediction with that "
        "event_id on the predictions topic, keyed by model id, or raise "
        "DRIFTLINE_LABEL_RETENTION_SECONDS (and DRIFTLINE_MAX_PENDING_LABELS). A model's "
        "predictions wait for labels from its first label on: before it, only the latest "
        "few are held, in memory",
        field_path="prediction_id",
    )


# What waits in the join: compact JSON arrays (see the module's docstring).


def _prediction_payload(spec: ModelSpec, record: PredictionRecord, topic: str) -> list[Any]:
    """What the join keeps of a prediction: only what the performance monitor needs."""
    return _PayloadWriter(spec, topic).many([record])[0]


def _version_windows(pushed: list[tuple[int, Any]], version: str) -> list[tuple[int, int]] | None:
    """``(index, window)`` of each prediction pushed out, if all are this version's and
    written by this driftline (as a rule), in one pass; else None."""
    windows: list[tuple[int, int]] = []
    for index, payload in pushed:
        if type(payload) is not list or payload[0] != version:
            return None
        windows.append((index, int(payload[1])))
    return windows


class _PayloadWriter:
    """:func:`_prediction_payload` for the records of one version, its classes looked up once."""

    __slots__ = ("classes", "known", "topic", "version")

    def __init__(self, spec: ModelSpec, topic: str) -> None:
        self.version = spec.model_version
        self.classes = spec.classes
        self.known = frozenset(spec.classes or ())
        self.topic = topic

    def many(self, records: Sequence[PredictionRecord]) -> list[list[Any]]:
        """The payload of each record, in one loop (a call per record costs as much as the rest)."""
        version, classes, known, topic = self.version, self.classes, self.known, self.topic
        payloads: list[list[Any]] = []
        for record in records:
            probabilities: Any = record.probabilities
            if probabilities and classes and probabilities.keys() <= known:
                probabilities = [probabilities.get(name) for name in classes]
            position = record.position
            at: list[Any] | None = None
            if position is not None:
                at = [position.partition, position.offset]
                if position.topic != topic:
                    at.append(position.topic)
            payloads.append([version, record.window, record.prediction, probabilities, at])
        return payloads


def _prediction_record(
    spec: ModelSpec, payload: Any, event_time: datetime, topic: str
) -> PredictionRecord:
    """The record :func:`_prediction_payload` kept, at the prediction's event time."""
    if isinstance(payload, dict):  # written by an earlier version
        return PredictionRecord.from_payload(payload)
    _, window, prediction, probabilities, at = payload
    if isinstance(probabilities, list):
        classes = spec.classes or []
        probabilities = (
            {name: p for name, p in zip(classes, probabilities, strict=True) if p is not None}
            if len(classes) == len(probabilities)
            else None  # the version's classes changed while it waited
        )
    position = None
    if at is not None:
        where = at[2] if len(at) > 2 else topic
        position = Position(where, at[0], at[1])  # validated when an output names it
    return PredictionRecord(int(window), event_time, prediction, probabilities, position)


def _window_of(payload: Any) -> int:
    """The performance window of a waiting prediction."""
    return int(payload["window"] if isinstance(payload, dict) else payload[1])


def _version(payload: Any) -> str:
    """The model version of a waiting prediction."""
    return str(payload["version"] if isinstance(payload, dict) else payload[0])


def _label_of(payload: Any) -> tuple[str, Any]:
    """The event id and the label of a waiting label."""
    if isinstance(payload, dict):  # written by an earlier version
        return str(payload["event_id"]), payload["label"]
    return str(payload[0]), payload[1]


def _label_message(payload: Any) -> LabelMessage:
    """The message of a waiting label, as :meth:`LabelDesk.label` kept it."""
    if isinstance(payload, dict):  # written by an earlier version
        value, key = payload.get("value"), payload.get("key")
    else:
        _, _, value, key, _ = payload
    return LabelMessage(
        value=None if value is None else base64.b64decode(value),
        key=None if key is None else base64.b64decode(key),
        source=_label_source(payload),
    )


def _label_source(payload: Any) -> KafkaPosition:
    """Where a waiting label was consumed."""
    if isinstance(payload, dict):  # written by an earlier version
        return KafkaPosition.model_validate(payload["source"])
    topic, partition, offset = payload[4]
    return KafkaPosition(topic=topic, partition=partition, offset=offset)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _iso(time: datetime) -> str:
    return time.isoformat()
