"""Every consumed message, accounted for: processed, dead-lettered or a duplicate.

:class:`Intake` holds the decisions the agents make about each message and
knows nothing of faust, so it can be tested message by message. For each
input topic it validates the bytes, checks the event against its model's
registered spec, recognises repeats, feeds the model's monitor and turns
what the monitor found into alerts. Each message ends in exactly one of
three counts: processed, dead-lettered (with a reason) or duplicate.
"""

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from itertools import islice
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard, cast

import orjson
from pydantic import ValidationError

from driftline.agents.books import AlertBooks
from driftline.agents.counters import TopicCounters
from driftline.agents.labelling import LabelDesk, LabelMessage, PendingOutputs
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import (
    ModelKey,
    ModelRegistry,
    ReferenceRegistration,
    read_registry_message,
    registry_max_bytes,
)
from driftline.agents.saved_arrivals import SavedArrivals
from driftline.agents.spread_labelling import PartitionJoin, SpreadLabels
from driftline.agents.version_state import Fence, VersionStates
from driftline.monitors import ModelMonitor
from driftline.monitors.dedup import Arrival, RecentEventIds
from driftline.monitors.findings import BatchFindings
from driftline.monitors.model import ModelFindings
from driftline.monitors.performance import PerformanceResolution
from driftline.monitors.positions import Located, Position, kafka_position
from driftline.monitors.summarise import NOTHING_JOINED, Joined, VersionSummariser, reference_digest
from driftline.monitors.summary_monitor import SummaryMonitor, Taken
from driftline.monitors.summary_performance import SummaryMoment
from driftline.schemas import (
    Alert,
    AlertKind,
    AlertStatus,
    DeadLetterReason,
    FeatureEvent,
    KafkaPosition,
    KeyedBy,
    LabelEvent,
    ModelSpec,
    PerformanceBasis,
    PerformanceEvidence,
    PredictionEvent,
    ReferenceProfile,
    RetrainTrigger,
    TaskType,
)
from driftline.schemas.lines import alert_line, trigger_line
from driftline.schemas.summaries import VersionSummary
from driftline.streams import Rejection, dead_letter
from driftline.streams.codecs import decode_many
from driftline.streams.grouping import model_grouped_order
from driftline.streams.settings import Settings

if TYPE_CHECKING:  # the sending module loads aiokafka; the intake knows nothing of it
    from driftline.streams.sending import PlacedRecord

log = logging.getLogger(__name__)

ALERTS_LOGGER = "driftline.alerts"
"""The logger of every alert and retraining trigger sent, a line each at WARNING
(:mod:`driftline.schemas.lines`): a worker's log shows them; ``driftline replay``, which
prints them, leaves it quiet."""

alert_log = logging.getLogger(ALERTS_LOGGER)

InputEvent = PredictionEvent | FeatureEvent | LabelEvent


class InputTopic(StrEnum):
    """The topics driftline consumes."""

    PREDICTIONS = "predictions"
    FEATURES = "features"
    LABELS = "labels"
    MODELS = "models"
    REFERENCES = "references"
    SUMMARIES = "summaries"
    """Summaries of batches of models keyed by event id, for the second stage."""


EVENT_TYPES: dict[InputTopic, type[InputEvent]] = {
    InputTopic.PREDICTIONS: PredictionEvent,
    InputTopic.FEATURES: FeatureEvent,
    InputTopic.LABELS: LabelEvent,
}


class InputMessage(NamedTuple):
    """One consumed message: its bytes, where it was, and when Kafka recorded it.

    One is made for every message consumed, so it is a named tuple, and its
    ``source`` may be a :class:`~driftline.monitors.positions.Position` (what
    the worker and replay give): outputs get a validated
    :class:`~driftline.schemas.KafkaPosition` of it only when they name it.
    """

    topic: InputTopic
    value: bytes | None
    key: bytes | None
    source: Located
    timestamp: float | None = None
    """Kafka's timestamp of the message, in Unix seconds, when it has one."""


class Decoded(NamedTuple):
    """A message whose bytes are a valid event, not yet checked against its model."""

    message: InputMessage
    event: InputEvent


new_decoded = partial(tuple.__new__, Decoded)
"""A :class:`Decoded` made from the tuple of its fields, without the Python-level ``__new__``
of its class: about 115 against 210 ns, for one made an event."""


@dataclass
class IntakeCounters:
    """Counts per input topic, and alerts raised by kind."""

    topics: dict[InputTopic, TopicCounters] = field(
        default_factory=lambda: {topic: TopicCounters() for topic in InputTopic}
    )
    alerts: Counter[str] = field(default_factory=Counter)
    """Alerts opened, by kind."""
    alert_messages: Counter[str] = field(default_factory=Counter)
    """Alert messages sent, by status (open, update, resolve)."""
    triggers: int = 0


def _partition_runs(messages: Sequence[InputMessage]) -> Iterator[tuple[int, int]]:
    """The start and end of each run of consecutive messages from one partition.

    >>> from driftline.monitors.positions import Position
    >>> at = [Position("t", partition, 0) for partition in (0, 0, 1, 0)]
    >>> list(_partition_runs([InputMessage(InputTopic.LABELS, None, None, p) for p in at]))
    [(0, 2), (2, 3), (3, 4)]
    """
    if messages and len({message.source.partition for message in messages}) == 1:
        yield 0, len(messages)  # as a rule: one partition's messages
        return
    start = 0
    while start < len(messages):
        partition = messages[start].source.partition
        end = start + 1
        while end < len(messages) and messages[end].source.partition == partition:
            end += 1
        yield start, end
        start = end


def _by_partition(messages: Sequence[InputMessage]) -> list[list[int]]:
    """The places of each partition's messages, in their order, partitions in order of their
    first message: a batch interleaves the partitions it reads.

    >>> from driftline.monitors.positions import Position
    >>> at = [Position("t", partition, 0) for partition in (0, 1, 0, 2, 1, 0)]
    >>> _by_partition([InputMessage(InputTopic.PREDICTIONS, None, None, p) for p in at])
    [[0, 2, 5], [1, 4], [3]]
    """
    places: dict[tuple[str, int], list[int]] = {}
    for place, message in enumerate(messages):
        places.setdefault((message.source.topic, message.source.partition), []).append(place)
    return list(places.values())


def _cut(places: list[int], most: int | None) -> list[list[int]]:
    """The places in runs of at most ``most`` (one run when None).

    >>> _cut([3, 4, 5, 6, 7], 2)
    [[3, 4], [5, 6], [7]]
    """
    if most is None:
        return [places]
    return [places[start : start + most] for start in range(0, len(places), most)]


RESUMED_SUMMARY_EVENTS = 64
"""The most events a summary covers in the first batch of a partition a worker summarises (at
its start, or handed by a rebalance).

Its batches may begin where the previous owner's summaries did but end elsewhere: a summary
wholly taken already is skipped by the second stage, one that overlaps the last it took is
counted again. Small summaries there bound what is counted twice to a few dozen events."""


def _most_events_a_summary(summariser: VersionSummariser) -> int | None:
    """The most events one summary of this summariser may cover: while the version warms up,
    as many as a summary forwards as rows (so that every event of the warm-up reaches the
    second stage); else a partition's whole batch."""
    if summariser.warming_up and summariser.warmup_rows > 0:
        return summariser.warmup_rows
    return None


def _judged(event: PredictionEvent | FeatureEvent) -> TypeGuard[PredictionEvent]:
    """Whether an event is a prediction whose performance can be judged once labelled."""
    return isinstance(event, PredictionEvent) and (
        event.prediction is not None or bool(event.probabilities)
    )


_NEW = Arrival.NEW
_REGRESSION = TaskType.REGRESSION
"""Enum members, read from their class, cost ~70 ns each: these are read once an event."""


class _Known(NamedTuple):
    """What the batch established of a model version: its spec, monitor (or summariser, for a
    version keyed by event id) and recent ids."""

    spec: ModelSpec
    monitor: "ModelMonitor | VersionSummariser"
    recent: RecentEventIds


class NewLabel(NamedTuple):
    """A label that passed its checks: it goes to the join unless it is a repeat."""

    message: InputMessage
    label: LabelEvent


_NOTHING = ModelFindings()
"""What most events reveal (shared, never changed)."""


@dataclass
class _VersionBatch:
    """The valid events of one model version in a batch, with their places in it."""

    spec: ModelSpec
    monitor: "ModelMonitor | VersionSummariser"
    indices: list[int] = field(default_factory=list)
    messages: list[InputMessage] = field(default_factory=list)
    events: list[PredictionEvent | FeatureEvent] = field(default_factory=list)

    @property
    def positions(self) -> list[Located | None]:
        return [message.source for message in self.messages]

    @property
    def key(self) -> ModelKey:
        return (self.spec.model_id, self.spec.model_version)


def _by_version(
    arrived: Sequence[tuple[int, Decoded, "ModelMonitor | VersionSummariser"]],
) -> list[_VersionBatch]:
    """The arrived events of each model version, in the order of their versions' first."""
    if arrived and all(monitor is arrived[0][2] for _, _, monitor in arrived):
        monitor = arrived[0][2]  # as a rule, a batch holds one version: its lists at once
        return [
            _VersionBatch(
                monitor.spec,
                monitor,
                [index for index, _, _ in arrived],
                [item.message for _, item, _ in arrived],
                [item.event for _, item, _ in arrived],  # type: ignore[misc]  # labels went to the join
            )
        ]
    versions: dict[int, _VersionBatch] = {}  # by the id of the version's one monitor
    for index, item, monitor in arrived:
        batch = versions.get(id(monitor))
        if batch is None:
            batch = versions[id(monitor)] = _VersionBatch(monitor.spec, monitor)
        batch.indices.append(index)
        batch.messages.append(item.message)
        batch.events.append(item.event)  # type: ignore[arg-type]  # labels went to the join
    return list(versions.values())


@dataclass
class Screened:
    """A batch checked event by event (:meth:`Intake.screen_batch`), for its monitors next."""

    outputs: list[list[Output]]
    """Each message's outputs so far: those of the messages refused or repeated."""
    arrived: list[tuple[int, Decoded, "ModelMonitor | VersionSummariser"]]
    """The new valid events (no labels), in order, by place, with their version's monitor (or
    summariser)."""
    labels: list[tuple[int, "NewLabel"]]
    """The new labels, in order, by place, for the join."""
    created: list[ModelKey]
    """The model versions whose monitors the screening created, in order."""


class Intake:
    """Decides, for each consumed message, what it leads to.

    Events of a model version are only processed once the version's spec is
    registered (see :class:`~driftline.agents.registry.ModelRegistry`); a
    worker never creates state for a model it was not told about. Monitors
    are created on a version's first event and dropped when its spec
    changes, so they always check against the current spec.
    """

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        *,
        label_store: MutableMapping[bytes, bytes] | None = None,
        state_store: MutableMapping[str, bytes] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.counters = IntakeCounters()
        self.labels = LabelDesk(
            settings,
            registry,
            self.counters.topics[InputTopic.LABELS],
            dead_letter=self._label_dead_letter,
            alert=self._performance_alert,
            resolve=self._performance_back,
            store=label_store,
            held_before_first_label=settings.held_predictions_before_first_label,
        )
        self.spread_labels = SpreadLabels(self.labels, settings)
        """The label join of versions keyed by event id, partition by partition."""
        self._monitors: dict[ModelKey, ModelMonitor] = {}
        """Each version's monitor: of its events, or of its summaries (a
        :class:`~driftline.monitors.summary_monitor.SummaryMonitor`, for a version keyed by
        event id whose partition of the summaries topic is this worker's)."""
        self._summarisers: dict[ModelKey, VersionSummariser] = {}
        """The first stage of each version keyed by event id whose events come here."""
        self._summarised: set[tuple[str, str, str, int]] = set()
        """Each (model id, version, topic, partition) whose events were summarised here since
        this worker took the partition."""
        self._labels_joined: set[tuple[str, int]] = set()
        """Each (topic, partition) whose labels of versions keyed by event id were joined here
        since this worker took the partition."""
        self._looped = 0
        """Summaries taken back here (see :meth:`loop_back`)."""
        self._spread_models: dict[str, bool] = {}
        """Per model asked about, whether a version is keyed by event id."""
        self.states = None if state_store is None else VersionStates(state_store)
        """Where each version's state is saved at every checkpoint (see :meth:`flush_state`)."""
        self.books = AlertBooks()
        self._restored_models: set[str] = set()
        """Models whose versions' saved state was read back (at their first event here)."""
        self._restored_versions: set[ModelKey] = set()
        """Versions whose saved state was read back (or found to be none)."""
        self._touched: dict[ModelKey, int | None] = {}
        """The versions whose state changed since it was last saved, with the partition of
        their last message (where the state goes)."""
        self._positions: dict[ModelKey, Fence] = {}
        """Per version, the offset after its last event processed, per topic and partition."""
        self._fences: dict[ModelKey, Fence] = {}
        """Per version restored from saved state, where the events it already reflects end
        (dropped once the events go past it)."""
        self._label_positions: dict[str, Fence] = {}
        """Per model, the offset after its last label taken, per topic and partition."""
        self._label_fences: dict[str, Fence] = {}
        """Per model restored from saved state, where the labels it already reflects end."""
        self._recent: dict[tuple[InputTopic, str], RecentEventIds] = {}
        self.arrivals = None if state_store is None else SavedArrivals(state_store)
        """Where the recent ids of each model and topic are saved with the versions' state."""
        self._max_future = timedelta(seconds=settings.max_future_seconds)
        self._stores = [store for store in (label_store, state_store) if store is not None]
        self._partition: int | None = None
        registry.on_change = self.forget
        if self.states is not None:
            self.labels.used = self._touch

    def handle(self, message: InputMessage) -> list[Output]:
        """The messages one consumed message leads to; never raises on bad input."""
        return self.handle_batch([message])

    def handle_batch(self, messages: Sequence[InputMessage]) -> list[Output]:
        """The messages a batch of consumed messages leads to, in the batch's order.

        An intake that works alone (a replay, a test) is both stages of the versions keyed by
        event id: their summaries and warm-up references come back to it at once
        (:meth:`loop_back`) instead of going out.
        """
        return self.loop_back(self.process_batch(self.read_many(messages)))

    def loop_back(self, outputs: Sequence[Output]) -> list[Output]:
        """``outputs`` with each summary taken here by the second stage in its place, and each
        warm-up reference registered here, as a worker's would come back through Kafka."""
        done: list[Output] = []
        for output in outputs:
            if output.destination is Destination.REFERENCES:
                assert isinstance(output.message, ReferenceProfile)
                self.registry.apply(ReferenceRegistration(output.message))
            elif output.destination is Destination.SUMMARIES:
                self._looped += 1
                message = InputMessage(
                    InputTopic.SUMMARIES,
                    output.value,
                    output.key,
                    Position(self.settings.summaries_topic, 0, self._looped),
                )
                done += self.loop_back(self.process_summaries([message]))
            else:
                done.append(output)
        return done

    def read_many(
        self,
        messages: Sequence[InputMessage],
        owns: Callable[[int, str | None], bool] | None = None,
    ) -> list[Decoded | list[Output]]:
        """Count and validate each message of a batch, in order: a valid event, or what the
        message leads to on its own (a dead letter if its bytes are no valid event).

        With ``owns``, the message at place ``i`` goes on only if
        ``owns(i, its model id)`` for a valid event, ``owns(i, None)`` for any
        other; the rest are left to another process (an empty list here: not
        counted, nothing sent). Processes that each own a share of the
        models, and of the other messages, then count and send together what
        one process would (see :mod:`driftline.parallel_replay`).

        Each topic's events are decoded together
        (:func:`~driftline.streams.codecs.decode_many`), a model at a time
        (:func:`~driftline.streams.grouping.model_grouped_order`: each model's
        events then sit together in memory); messages on the registry and
        references topics are validated completely here. Rejections are
        dead-lettered in the batch's order.
        """
        items: list[Decoded | list[Output]] = []
        events_at: dict[InputTopic, list[int]] = {}
        for index, message in enumerate(messages):
            if message.topic in EVENT_TYPES:
                events_at.setdefault(message.topic, []).append(index)
                items.append([])  # its place, filled below
            elif owns is None or owns(index, None):
                items.append(self._read_registry(message))
            else:
                items.append([])
        max_bytes = self.settings.max_message_bytes
        for topic, indices in events_at.items():
            values = [messages[index].value for index in indices]
            order = model_grouped_order(values)
            if order is not None:
                indices = [indices[place] for place in order]
                values = [values[place] for place in order]
            events = decode_many(EVENT_TYPES[topic], values, max_bytes=max_bytes)
            rejected: list[tuple[int, Rejection]] = []
            taken = 0
            for index, event in zip(indices, events, strict=True):
                if isinstance(event, Rejection):
                    if owns is None or owns(index, None):
                        rejected.append((index, event))
                        taken += 1
                elif owns is None or owns(index, event.model_id):
                    items[index] = new_decoded((messages[index], event))
                    taken += 1
            self.counters.topics[topic].consumed += taken
            for index, rejection in sorted(rejected, key=itemgetter(0)):
                items[index] = [self._dead_letter(messages[index], rejection)]
        return items

    def _read_registry(self, message: InputMessage) -> list[Output]:
        """Count and validate one message of the registry or references topic completely;
        a dead letter if it is no valid registration."""
        counters = self.counters.topics[message.topic]
        counters.consumed += 1
        references = message.topic is InputTopic.REFERENCES
        registration = read_registry_message(
            message.key,
            message.value,
            max_bytes=registry_max_bytes(self.settings, references),
            references=references,
        )
        if isinstance(registration, Rejection):
            return [self._dead_letter(message, registration)]
        counters.processed += 1
        return []

    def knows_model_of(self, decoded: Decoded) -> bool:
        """Whether the event's model (and version, where it names one) is registered."""
        event = decoded.event
        if isinstance(event, LabelEvent):
            return self.registry.has_model(event.model_id)
        return self.registry.spec(event.model_id, event.model_version) is not None

    def unregistered_at(self, items: Sequence[Decoded | list[Output]]) -> list[float]:
        """The Kafka timestamps (0.0 for none) of the valid events of a batch whose model (or
        version) is not registered (:meth:`knows_model_of`), in order; each model version
        is looked up once.

        The worker waits for the registry to catch up with the latest of them
        before it processes the batch, so a spec published just before its
        first events is known to them.
        """
        known: dict[tuple[str, str | None], bool] = {}
        times: list[float] = []
        for item in items:
            if not isinstance(item, Decoded):
                continue
            event = item.event
            key = (event.model_id, None if isinstance(event, LabelEvent) else event.model_version)
            registered = known.get(key)
            if registered is None:
                registered = known[key] = self.knows_model_of(item)
            if not registered:
                times.append(item.message.timestamp or 0.0)
        return times

    def process(self, decoded: Decoded) -> list[Output]:
        """Check a valid event against its model and feed it to the model's monitor."""
        return self.process_batch([decoded])

    def process_batch(self, items: Sequence[Decoded | list[Output]]) -> list[Output]:
        """Process what :meth:`read_many` made of a batch of messages; the outputs, in order
        (those of :meth:`process_batch_each`, one message's after another's)."""
        return [output for some in self.process_batch_each(items) for output in some]

    def process_batch_each(self, items: Sequence[Decoded | list[Output]]) -> list[list[Output]]:
        """Process what :meth:`read_many` made of a batch of messages; each message's outputs.

        Each event is checked on its own (model, spec, repeats) in the
        batch's order (:meth:`screen_batch`); the valid events of each model
        version then go through its monitor together, every version's drift
        tests side by side (:meth:`process_screened`). The outputs are those
        of processing the messages one by one, in the same order, for a batch
        of one topic, as a worker's agents take them. A batch's labels are
        joined before its other events, so one that mixes them answers as if
        its labels had come first (a replay cuts its batches where they take turns).
        """
        return self.process_screened(self.screen_batch(items))

    def screen_batch(self, items: Sequence[Decoded | list[Output]]) -> "Screened":
        """The first part of :meth:`process_batch_each`: check each event of a batch on its
        own (model, spec, repeats), in order, and create the monitors of versions new to it.

        What an event refused or repeated leads to is in the result's
        ``outputs``; the events that go on to their monitors (``arrived``) and
        the new labels that go on to the join (``labels``) are only put aside.
        None of that reads or changes a monitor or the label join, and
        :meth:`process_screened` reads nothing of what this keeps (the
        recent ids), so the two can run in two processes, one batch apart:
        see :mod:`driftline.pipelined_replay`.
        """
        outputs: list[list[Output]] = [item if isinstance(item, list) else [] for item in items]
        known: dict[tuple[InputTopic, str, str], _Known] = {}
        checked: list[tuple[int, Decoded, _Known]] = []
        new_labels: list[tuple[int, NewLabel]] = []
        in_time = self._all_in_time(items)
        watched = len(self._monitors)
        for index, item in enumerate(items):
            if isinstance(item, list):
                continue
            if item.message.source.partition != self._partition:
                self._at(item.message)
            try:
                accepted = self._check_known(item, known, in_time=in_time)
            except Exception as error:  # a bug: this message alone is dead-lettered
                log.exception("failed on %s", item.message.source)
                outputs[index] = [self.failed(item.message, error)]
                continue
            if isinstance(accepted, list):
                outputs[index] = accepted
            elif isinstance(accepted, NewLabel):
                if self._label_fences and _behind(
                    self._label_fences, accepted.label.model_id, item.message
                ):
                    self.counters.topics[item.message.topic].duplicates += 1
                else:
                    new_labels.append((index, accepted))
            elif self._fences and _behind(
                self._fences, (accepted.spec.model_id, accepted.spec.model_version), item.message
            ):
                self.counters.topics[item.message.topic].duplicates += 1
            else:
                checked.append((index, item, accepted))
        if new_labels:
            new_labels = self._new_labels(new_labels, outputs)
        created = list(islice(self._monitors, watched, None))
        arrived = [
            (index, item, version.monitor)
            for index, item, version in self._arrived(checked, outputs)
        ]
        return Screened(outputs, arrived, new_labels, created)

    def process_screened(self, screened: "Screened") -> list[list[Output]]:
        """The second part of :meth:`process_batch_each`: join the new labels, then take each
        model version's arrived events through its monitor and lifecycle; each message's
        outputs (those of :meth:`screen_batch` too).

        An intake that did not screen the batch itself (a copy of the one that
        did) first creates the monitors the screening created
        (:meth:`create_monitors`).
        """
        outputs = screened.outputs
        if screened.labels:
            self._join_new_labels(screened.labels, outputs)
        batches = []
        for batch in _by_version(screened.arrived):
            if isinstance(batch.monitor, VersionSummariser):
                self._summarise(batch, outputs)
            else:
                batches.append(batch)
        monitors = [cast(ModelMonitor, batch.monitor) for batch in batches]
        warming = [monitor.warming_up for monitor in monitors]
        every_found = ModelMonitor.update_batches(
            [
                (monitor, batch.events, batch.positions)
                for monitor, batch in zip(monitors, batches, strict=True)
            ]
        )
        for batch, found, warmed in zip(batches, every_found, warming, strict=True):
            try:
                if isinstance(found, Exception):
                    raise found
                self._watch(batch, found, outputs, warming_up=warmed)
            except Exception as error:
                # A bug: the version's events of this batch are dead-lettered (their
                # bytes can be replayed); the other versions go on.
                log.exception("failed on a batch of model %s version %s", *batch.key)
                for index, message in zip(batch.indices, batch.messages, strict=True):
                    outputs[index] = [self.failed(message, error)]
        return outputs

    def _check_known(
        self,
        decoded: Decoded,
        known: dict[tuple[InputTopic, str, str], _Known],
        *,
        in_time: bool = False,
    ) -> _Known | NewLabel | list[Output]:
        """:meth:`_check`, skipping what an earlier event of the batch established.

        Once an event of a model version is accepted, nothing in the batch
        can change its spec or monitor (specs arrive on another topic), so
        the next events of the version are only checked on their own:
        their time and their fit to the spec. ``in_time``: the batch's
        events are known to be within their time allowance
        (:meth:`_all_in_time`).
        """
        message, event = decoded.message, decoded.event
        if isinstance(event, LabelEvent):
            return self._check(decoded, in_time=in_time)
        key = (message.topic, event.model_id, event.model_version)
        version = known.get(key)
        if version is None:
            accepted = self._check(decoded, in_time=in_time)
            if isinstance(accepted, _Known):
                known[key] = accepted
            return accepted
        rejection = None if in_time else self._too_far_ahead(event, message)
        if rejection is None and isinstance(event, PredictionEvent):
            rejection = prediction_violation(version.spec, event)
        if rejection is not None:
            return [self._dead_letter(message, rejection)]
        return version

    def _arrived(
        self, checked: list[tuple[int, Decoded, _Known]], outputs: list[list[Output]]
    ) -> list[tuple[int, Decoded, _Known]]:
        """The checked events that are new, in order; what a repeated one leads to goes to
        its place in ``outputs``.

        Each stream's events (a topic's, of one model) arrive together, all
        at once when they are all new (as a rule), else one by one
        (:meth:`~driftline.monitors.dedup.RecentEventIds.arrive_all_new`).
        """
        repeated = self._repeats(
            [(index, item, known.recent) for index, item, known in checked], outputs
        )
        if not repeated:
            return checked
        return [entry for entry in checked if entry[0] not in repeated]

    def _repeats(
        self, arriving: list[tuple[int, Decoded, RecentEventIds]], outputs: list[list[Output]]
    ) -> set[int]:
        """Let events arrive in the recent ids of their streams (each entry names its
        stream's); the indices of the repeated ones, whose outputs go to their places in
        ``outputs``."""
        streams: dict[int, list[tuple[int, Decoded, RecentEventIds]]] = {}
        for entry in arriving:
            streams.setdefault(id(entry[2]), []).append(entry)
        repeated: set[int] = set()
        for entries in streams.values():
            events = [item.event for _, item, _ in entries]
            ids, times = [event.event_id for event in events], [e.event_time for e in events]
            try:
                if entries[0][2].arrive_all_new(ids, times):
                    continue
            except Exception:  # a bug: one by one, each message fails alone
                log.exception("failed on %d events at once; taking them one by one", len(ids))
            for index, item, _ in entries:
                try:
                    outcome = self._arrive(item.message, item.event)
                except Exception as error:  # a bug: this message alone is dead-lettered
                    log.exception("failed on %s", item.message.source)
                    outcome = [self.failed(item.message, error)]
                if outcome is not None:
                    outputs[index] = outcome
                    repeated.add(index)
        return repeated

    def _check(
        self, decoded: Decoded, *, in_time: bool = False
    ) -> _Known | NewLabel | list[Output]:
        """A valid event's version, monitor and recent ids (not arrived yet), or a new label
        for the join; else what the event leads to on its own. ``in_time``: the event is
        known to be within its time allowance."""
        message, event = decoded.message, decoded.event
        rejection = self._unknown_model(event)
        if rejection is None and not in_time:
            rejection = self._too_far_ahead(event, message)
        if rejection is not None:
            return [self._dead_letter(message, rejection)]
        if self.states is not None and event.model_id not in self._restored_models:
            self._restore_model(event.model_id)
        if isinstance(event, LabelEvent):
            return NewLabel(message, event)  # repeats are told apart with the batch's others
        spec = self.registry.spec(event.model_id, event.model_version)
        assert spec is not None
        if isinstance(event, PredictionEvent):
            violation = prediction_violation(spec, event)
            if violation is not None:
                return [self._dead_letter(message, violation)]
        if spec.keyed_by is KeyedBy.EVENT_ID:
            summariser = self._summariser_for(spec)
            return _Known(spec, summariser, self._recent_ids(message.topic, event.model_id))
        monitor = self._monitor_for(spec)
        if monitor is None:
            return [self._dead_letter(message, self._model_limit(spec))]
        return _Known(spec, monitor, self._recent_ids(message.topic, event.model_id))

    def _watch(
        self,
        batch: "_VersionBatch",
        found: BatchFindings,
        outputs: list[list[Output]],
        *,
        warming_up: bool = False,
    ) -> None:
        """Take one version's findings (its monitor has seen its events) event by event
        through its lifecycle. ``warming_up``: the monitor was collecting its warm-up
        reference when the batch began (the batch's events then count as no quiet time
        for alerts read back from saved state)."""
        spec = batch.spec
        life, decider = self.books.book_for(spec)
        if warming_up:
            life.not_quiet_until(life.clock + len(batch.events))
        counters = self.counters.topics
        watching = life.watching
        due = decider.due_at
        owed_by_event = self._join_predictions(batch)
        rows = zip(batch.indices, batch.messages, owed_by_event, strict=True)
        for number, (index, message, owed) in enumerate(rows):
            findings = found.findings.get(number)
            now = life.advance()
            if findings is None and not owed and not watching and (due is None or now < due):
                # A quiet event: it counts, and nothing else can come of it.
                counters[message.topic].processed += 1
                continue
            self._at(message)
            alerts: list[Alert] = []
            if findings is not None or watching:
                alarming = found.quality_alarming(number)
                alerts = life.update(
                    findings or _NOTHING,
                    now,
                    batch.events[number],
                    kafka_position(message.source),
                    alarming,
                )
                watching = life.watching
            triggers = decider.observe(alerts, now)
            sent = [self._alert(alert) for alert in alerts]
            sent += [self._trigger(t) for t in triggers]
            counters[message.topic].processed += 1
            if owed:
                sent += self.labels.release(owed)  # a performance alert may trigger
            outputs[index] = sent
            due = decider.due_at
        self._processed(batch)

    def _join_predictions(self, batch: "_VersionBatch") -> list[PendingOutputs | None]:
        """Join a version's predictions to their labels, a run of one partition at a time;
        what each event of the batch led to (None for an event that is no judged prediction).

        What each leads to is released later, at its event's place among the
        version's alerts. Runs keep every join write on its event's partition.
        """
        pending: list[PendingOutputs] = []
        places = [place for place, event in enumerate(batch.events) if _judged(event)]
        messages: Sequence[InputMessage] = batch.messages
        events = cast(list[PredictionEvent], batch.events)
        if len(places) < len(events):  # as a rule, every event is a judged prediction
            messages = [messages[place] for place in places]
            events = [events[place] for place in places]
        for start, end in _partition_runs(messages):
            self._at(messages[start])
            pending += self.labels.join_predictions(
                batch.spec,
                events[start:end],
                [message.source for message in messages[start:end]],
            )
        if len(places) == len(batch.events):
            return list(pending)
        owed: list[PendingOutputs | None] = [None] * len(batch.events)
        for place, some in zip(places, pending, strict=True):
            owed[place] = some
        return owed

    def _at(self, message: InputMessage) -> None:
        """Tell the stores that the writes that follow belong to this message's partition."""
        self._at_partition(message.source.partition)

    def _at_partition(self, partition: int) -> None:
        """Tell the stores which input partition the writes that follow belong to (a saved
        version's state goes to the partition of its last message)."""
        if partition != self._partition:
            self._partition = partition
            for store in self._stores:
                if hasattr(store, "partition"):
                    store.partition = partition

    def flush_state(self, *, versions: bool = True) -> "list[PlacedRecord]":
        """Write what the last batch changed to the stores that buffer their writes; the
        changelog messages that carry it, for the caller to send.

        A faust table store buffers them, so that a key changed many times
        between checkpoints reaches the changelog once; a checkpoint calls
        this and sends the messages before the offsets of the batches it
        covers can be committed. With ``versions``, the state of each version
        changed since is written first (:meth:`save_versions`), with the ids
        that arrived since (:meth:`save_arrivals`); the version records come last.
        """
        if versions:
            partitions = {key[0]: partition for key, partition in self._touched.items()}
            self.save_versions()
            self.save_arrivals(partitions)
        records: list[PlacedRecord] = []
        for store in self._stores:
            drain = getattr(store, "drain", None)
            if drain is not None:
                records += drain()
        return records

    def save_versions(self) -> int:
        """Write the state of every version changed since the last save to the state store,
        each to the partition of its last message; how many were written.

        A version that fails to be written (a bug) is logged and stays to be
        written with the next batch; the others are written.
        """
        if self.states is None:
            self._touched.clear()
            return 0
        written = 0
        for key, partition in list(self._touched.items()):
            spec = self.registry.spec(*key)
            if spec is not None:
                try:
                    self._save(spec, partition)
                except Exception:
                    log.exception("saving the state of model %s version %s failed", *key)
                    continue
                written += 1
            del self._touched[key]
        return written

    def save_arrivals(self, partitions: Mapping[str, int | None] | None = None) -> int:
        """Write the ids that arrived since the last save, per model and topic, each to the
        partition its model's state went to (``partitions``, by model id); how many streams.

        A stream that fails to be written (a bug) is logged and keeps its
        arrivals for the next save.
        """
        if self.arrivals is None:
            return 0
        written = 0
        for (topic, model_id), recent in self._recent.items():
            journal = recent.journal
            if not journal:
                continue
            if self._spread_model(model_id):
                # Its ids arrive at every worker that reads its partitions, each its own: one
                # record per model would be written by all of them. Kept in memory only.
                recent.journal = []
                continue
            partition = (partitions or {}).get(model_id)
            if partition is not None:
                self._at_partition(partition)
            try:
                self.arrivals.write((topic.value, model_id), journal, recent.horizon_micros)
            except Exception:
                log.exception("saving the recent %s ids of model %s failed", topic.value, model_id)
                continue
            recent.journal = []
            written += 1
        return written

    def _save(self, spec: ModelSpec, partition: int | None) -> None:
        assert self.states is not None
        key = (spec.model_id, spec.model_version)
        if partition is not None:
            self._at_partition(partition)
        life, decider = self.books.book_for(spec)
        self.states.write(
            spec,
            self.registry.reference(*key),
            monitor=self._monitors.get(key),
            performance=self.labels.monitors.get(key),
            lifecycle=life.to_state(),
            retraining=decider.to_state(),
            fence=self._positions.get(key, {}),
            label_fence=self._label_positions.get(spec.model_id, {}),
        )

    def _processed(self, batch: "_VersionBatch") -> None:
        """Note where a version's batch ended, for its state's fence; it is to be saved."""
        if not batch.messages:
            return
        positions = self._positions.setdefault(batch.key, {})
        messages = batch.messages
        for _, end in _partition_runs(messages):
            last = messages[end - 1].source
            positions[(last.topic, last.partition)] = last.offset + 1
        self._at(messages[-1])  # the version's state is saved where its last event was
        self._touched[batch.key] = self._partition

    def _touch(self, spec: ModelSpec) -> None:
        """A version's state changed outside its batch of events (a label): it is to be saved."""
        key = (spec.model_id, spec.model_version)
        self._touched.setdefault(key, self._partition)

    def _restore_model(self, model_id: str) -> None:
        """Read back the saved state of every registered version of a model, at its first
        event here (a restart, or a partition a rebalance brought), before any is processed."""
        self._restored_models.add(model_id)
        for version in sorted(self.registry.versions(model_id)):
            spec = self.registry.spec(model_id, version)
            if spec is not None:
                self._restore_version(spec)
        if self.arrivals is not None:
            for topic in InputTopic:
                saved = self.arrivals.read((topic.value, model_id))
                if saved:
                    self._recent.pop((topic, model_id), None)
                    self._recent_ids(topic, model_id).restore(saved)

    def _restore_version(self, spec: ModelSpec) -> None:
        """Read back a version's saved state, once: its monitors, books and fences.

        What is in memory already stays (a version's state is read back
        before any event of it is processed, so nothing is, as a rule).
        """
        key = (spec.model_id, spec.model_version)
        if self.states is None or key in self._restored_versions:
            return
        self._restored_versions.add(key)
        try:
            saved = self.states.read(spec, self.registry.reference(*key))
        except Exception:  # a bug: the version starts afresh rather than the worker failing
            log.exception("reading back the state of model %s version %s failed", *key)
            return
        if saved is None:
            return
        if not self.books.holds(spec):
            life = self.books.restore(spec, saved.lifecycle, saved.retraining)
            if saved.monitor is not None:
                life.carry_on()
        monitor = saved.monitor
        if (
            monitor is not None
            and key not in self._monitors
            and len(self._monitors) < self.settings.max_models
        ):
            self._monitors[key] = monitor
            log.info(
                "model %s version %s: monitor restored from its saved state (%d events in)",
                *key,
                monitor.events,
            )
        if saved.performance is not None and key not in self.labels.monitors:
            self.labels.monitors[key] = saved.performance
        _merge(self._positions.setdefault(key, {}), saved.fence)
        if saved.fence:
            _merge(self._fences.setdefault(key, {}), saved.fence)
        if saved.label_fence:
            _merge(self._label_positions.setdefault(spec.model_id, {}), saved.label_fence)
            _merge(self._label_fences.setdefault(spec.model_id, {}), saved.label_fence)

    @property
    def monitors(self) -> Mapping[ModelKey, ModelMonitor]:
        """The drift and data-quality monitor of each model version watched (read-only)."""
        return MappingProxyType(self._monitors)

    @property
    def monitor_count(self) -> int:
        """How many model versions have a monitor (state) in this worker."""
        return len(self._monitors)

    def forget(self, model: ModelKey) -> None:
        """Drop the state of a model version whose spec changed or went away.

        The one change kept is a version keyed by event id whose reference came back as its
        summary monitor built it (it published it): the first stage takes it up, and the
        monitor goes on, with the summaries it holds back.
        """
        self._spread_models.clear()
        monitor = self._monitors.get(model)
        if isinstance(monitor, SummaryMonitor) and self._own_reference(monitor):
            self._summarisers.pop(model, None)
            return
        self.labels.forget(model)
        self.books.forget(model)
        self._fences.pop(model, None)
        self._restored_versions.discard(model)  # read back again: the books stay
        if self.states is not None:
            self.states.forget(model)
        self._summarisers.pop(model, None)
        if self._monitors.pop(model, None) is not None:
            log.info("model %s version %s: monitor reset for its new spec or reference", *model)
        if not self.registry.has_model(model[0]):
            self._forget_recent(model[0])

    def _own_reference(self, monitor: SummaryMonitor) -> bool:
        """Whether the version's spec is the monitor's and its registered reference the one the
        monitor measures against."""
        spec = monitor.spec
        registered = self.registry.reference(spec.model_id, spec.model_version)
        return (
            self.registry.spec(spec.model_id, spec.model_version) == spec
            and registered is not None
            and reference_digest(registered) == monitor.reference_digest
        )

    def keep_held(self, partitions: Collection[tuple[str, int]]) -> int:
        """Before these (topic, partition)s are handed over: the predictions of models keyed by
        event id held in memory there go to the label join's store (see
        :meth:`~driftline.agents.spread_labelling.SpreadLabels.keep_held`), written with the
        rest of what the batches changed; how many."""
        models = {model_id for model_id, _ in self._summarisers}
        kept = 0
        for topic, partition in sorted(partitions):
            if topic != self.settings.predictions_topic or not models:
                continue
            self._at_partition(partition)
            kept += self.spread_labels.keep_held(partition, models)
        return kept

    def release(self, partitions: Collection[tuple[str, int]]) -> list[ModelKey]:
        """Drop from memory the versions whose events came from these (topic, partition)s,
        which the worker no longer owns (a rebalance took them); the versions dropped.

        Their state is in the state store (saved with their last batch): a
        worker that owns them next, this one included, reads it back from
        there, never from a copy in memory that another worker may have
        moved on from since. A version whose state is not saved yet (its
        outputs were not delivered in time) is logged: the events since its
        last save are replayed to whoever owns it next.
        """
        self._summarised = {
            place for place in self._summarised if (place[2], place[3]) not in partitions
        }
        self._labels_joined -= set(partitions)
        gone = [
            key
            for key, positions in self._positions.items()
            if any(place in partitions for place in positions)
        ]
        for key in gone:
            if key in self._touched:
                log.warning(
                    "model %s version %s: released before its latest state was saved; the "
                    "events since its last save will be processed again",
                    *key,
                )
                del self._touched[key]
            self._monitors.pop(key, None)
            self.labels.forget(key)
            self.books.forget(key)
            self._fences.pop(key, None)
            self._positions.pop(key, None)
            self._restored_versions.discard(key)
            if self.states is not None:
                self.states.forget(key)
        for model_id in {model_id for model_id, _ in gone}:
            self._forget_recent(model_id)
            self._restored_models.discard(model_id)
            self._label_positions.pop(model_id, None)
            self._label_fences.pop(model_id, None)
        if gone:
            log.info("released %d model versions of partitions taken by a rebalance", len(gone))
        return gone

    def create_monitors(self, keys: Sequence[ModelKey]) -> None:
        """Create the monitors of these model versions, in order, as :meth:`screen_batch`
        created them in another intake (a copy of this one as it was then)."""
        for key in keys:
            spec = self.registry.spec(*key)
            if spec is None or self._monitor_for(spec) is None:
                raise RuntimeError(f"model {key[0]} version {key[1]} got no monitor here")

    def _new_labels(
        self, labels: list[tuple[int, NewLabel]], outputs: list[list[Output]]
    ) -> list[tuple[int, NewLabel]]:
        """The batch's labels that are not repeats; what a repeated one leads to goes to its
        place in ``outputs``.

        The repeats are told apart all of a model's labels at once as a rule
        (:meth:`_repeats`), as they were one by one before any label was joined.
        """
        repeated = self._repeats(
            [
                (
                    index,
                    Decoded(new.message, new.label),
                    self._recent_ids(new.message.topic, new.label.model_id),
                )
                for index, new in labels
            ],
            outputs,
        )
        if repeated:
            return [(index, new) for index, new in labels if index not in repeated]
        return labels

    def _join_new_labels(
        self, labels: list[tuple[int, NewLabel]], outputs: list[list[Output]]
    ) -> None:
        """Join a batch's new labels (:meth:`LabelDesk.label_many`), a run of one partition at
        a time, so that every join write is on its label's partition; what each leads to goes
        to its place in ``outputs``. Labels of models keyed by event id are joined in their
        partitions (:meth:`_join_spread_labels`)."""
        spread = [(index, new) for index, new in labels if self._spread_model(new.label.model_id)]
        if spread:
            self._join_spread_labels(spread, outputs)
            labels = [
                (index, new) for index, new in labels if not self._spread_model(new.label.model_id)
            ]
        for start, end in _partition_runs([new.message for _, new in labels]):
            run = [new for _, new in labels[start:end]]
            self._at(run[0].message)
            if self.states is not None:
                for new in run:
                    source = new.message.source
                    positions = self._label_positions.setdefault(new.label.model_id, {})
                    positions[(source.topic, source.partition)] = source.offset + 1
            try:
                joined = self.labels.label_many(
                    [new.label for new in run],
                    [
                        LabelMessage(new.message.value, new.message.key, new.message.source)
                        for new in run
                    ],
                )
            except Exception as error:  # a bug: the run's labels are dead-lettered
                log.exception("failed on %d labels from %s", len(run), run[0].message.source)
                joined = [[self.failed(new.message, error)] for new in run]
            for (index, _), some in zip(labels[start:end], joined, strict=True):
                outputs[index] = some

    def _join_spread_labels(
        self, labels: list[tuple[int, NewLabel]], outputs: list[list[Output]]
    ) -> None:
        """Join the labels of models keyed by event id, a run of one partition at a time, in
        that partition (:class:`~driftline.agents.spread_labelling.SpreadLabels`); what the
        run joined goes to the second stage in a summary per version, sent with its last
        label, and each label's dead letters to its place in ``outputs``.

        The first run of a partition new to this worker goes in summaries of at most
        ``RESUMED_SUMMARY_EVENTS`` labels, as its predictions do: what the second stage
        counts twice after a hand-over stays below that.
        """
        runs: list[list[tuple[int, NewLabel]]] = []
        for start, end in _partition_runs([new.message for _, new in labels]):
            source = labels[start][1].message.source
            if (source.topic, source.partition) in self._labels_joined:
                runs.append(labels[start:end])
                continue
            self._labels_joined.add((source.topic, source.partition))
            runs += [
                labels[at : min(at + RESUMED_SUMMARY_EVENTS, end)]
                for at in range(start, end, RESUMED_SUMMARY_EVENTS)
            ]
        for run in runs:
            first = run[0][1].message
            self._at(first)
            try:
                found = self.spread_labels.labels(
                    [new.label for _, new in run],
                    [
                        LabelMessage(new.message.value, new.message.key, new.message.source)
                        for _, new in run
                    ],
                    first.source.partition,
                )
                for number, (index, _) in enumerate(run):
                    outputs[index] = found.outputs.get(number, [])
                last = run[-1][1]
                for model_id in {new.label.model_id for _, new in run}:
                    for version in self.registry.versions(model_id):
                        found.joined.setdefault((model_id, version), NOTHING_JOINED)
                outputs[run[-1][0]] += self._joined_summaries(
                    found.joined,
                    kafka_position(first.source),
                    last.message.source.offset,
                    [new.label.event_time for _, new in run],
                    last.label.event_id,
                )
            except Exception as error:  # a bug: the run's labels are dead-lettered
                log.exception("failed on %d labels from %s", len(run), first.source)
                for index, new in run:
                    outputs[index] = [self.failed(new.message, error)]

    def _joined_summaries(
        self,
        joined: Mapping[ModelKey, Joined],
        source: KafkaPosition,
        last_offset: int,
        times: Sequence[datetime],
        last_event_id: str,
    ) -> list[Output]:
        """A summary of what a partition's label join found for each version over a batch
        with none of the version's events (see ``VersionSummariser.joined_summary``)."""
        sent = []
        for key, found in joined.items():
            spec = self.registry.spec(*key)
            if spec is None or spec.keyed_by is not KeyedBy.EVENT_ID:
                continue  # gone since: its second stage has no monitor to take it
            if not found and source.topic != self.settings.labels_topic:
                continue  # only a batch of labels says how far its labels came
            summary = self._summariser_for(spec).joined_summary(
                found, source, last_offset, times, last_event_id
            )
            sent.append(Output(Destination.SUMMARIES, summary.registry_key(), summary))
        return sent

    def _arrive(self, message: InputMessage, event: InputEvent) -> list[Output] | None:
        """None for a new event; otherwise what a duplicate or late event leads to."""
        recent = self._recent_ids(message.topic, event.model_id)
        arrival = recent.arrive(event.event_id, event.event_time)
        if arrival is _NEW:
            return None
        return self._repeated(message, event, recent, arrival)

    def _forget_recent(self, model_id: str) -> None:
        """Drop a model's recent ids (saved already, if they are kept: a worker that gets the
        model reads them back)."""
        for topic in InputTopic:
            self._recent.pop((topic, model_id), None)
            if self.arrivals is not None:
                self.arrivals.forget((topic.value, model_id))

    def _recent_ids(self, topic: InputTopic, model_id: str) -> RecentEventIds:
        """The ids seen recently on ``topic`` for ``model_id`` (none yet for a new stream)."""
        recent = self._recent.get((topic, model_id))
        if recent is None:
            recent = self._recent[(topic, model_id)] = RecentEventIds(
                window=timedelta(seconds=self.settings.duplicate_window_seconds),
                max_ids=self.settings.max_remembered_event_ids,
            )
            if self.arrivals is not None:
                recent.journal = []  # saved with the versions' state
        return recent

    def _repeated(
        self, message: InputMessage, event: InputEvent, recent: RecentEventIds, arrival: Arrival
    ) -> list[Output]:
        """What a duplicate (counted) or a late event (dead-lettered) leads to."""
        topic = message.topic
        if arrival is Arrival.DUPLICATE:
            self.counters.topics[topic].duplicates += 1
            return []
        horizon = recent.horizon
        assert horizon is not None
        late = Rejection(
            DeadLetterReason.LATE_EVENT,
            f"event_time {event.event_time.isoformat()} is at or before "
            f"{horizon.isoformat()}, the start of the window in which this worker recognises "
            f"repeated {topic.value} of model {event.model_id}, so it cannot tell whether it is "
            "a duplicate; publish events promptly, or raise DRIFTLINE_DUPLICATE_WINDOW_SECONDS "
            "(and DRIFTLINE_MAX_REMEMBERED_EVENT_IDS)",
            field_path="event_time",
        )
        return [self._dead_letter(message, late)]

    def _unknown_model(self, event: InputEvent) -> Rejection | None:
        if isinstance(event, LabelEvent):
            if self.registry.has_model(event.model_id):
                return None
            return Rejection(
                DeadLetterReason.UNKNOWN_MODEL,
                f"no version of model {event.model_id!r} is registered; register its spec "
                "before publishing labels for it",
                field_path="model_id",
            )
        if self.registry.spec(event.model_id, event.model_version) is not None:
            return None
        return Rejection(
            DeadLetterReason.UNKNOWN_MODEL,
            f"no spec is registered for model {event.model_id!r} version "
            f"{event.model_version!r}; register it (driftline models register SPEC_FILE, or "
            "Publisher.register) before publishing its events",
            field_path="model_version" if self.registry.has_model(event.model_id) else "model_id",
        )

    def _all_in_time(self, items: Sequence[Decoded | list[Output]]) -> bool:
        """Whether no event of the batch can be too far ahead of the time Kafka recorded for
        its message (:meth:`_too_far_ahead`), so that none needs that check of its own.

        So when the latest event time is within the allowance of the batch's
        earliest Kafka time: a later Kafka time allows later events. One
        look for the batch, exact; each look of an event's own took about
        0.8 µs (a datetime made from its Kafka time, compared with one of
        another time zone object), about 2 % of a worker's time an event.
        A batch that fails it is checked event by event, as before; one
        whose messages carry no Kafka time (a replay's) has nothing to check.
        """
        stamps = [
            item.message.timestamp
            for item in items
            if not isinstance(item, list)
            and item.message.timestamp is not None
            and item.message.timestamp > 0
        ]
        if not stamps:
            return True
        latest = max(item.event.event_time for item in items if not isinstance(item, list))
        return latest <= datetime.fromtimestamp(min(stamps), tz=UTC) + self._max_future

    def _too_far_ahead(self, event: InputEvent, message: InputMessage) -> Rejection | None:
        if message.timestamp is None or message.timestamp <= 0:
            return None
        recorded = datetime.fromtimestamp(message.timestamp, tz=UTC)
        if event.event_time <= recorded + self._max_future:
            return None
        return Rejection(
            DeadLetterReason.FUTURE_EVENT_TIME,
            f"event_time {event.event_time.isoformat()} is "
            f"{event.event_time - recorded} after the time Kafka recorded the message "
            f"({recorded.isoformat()}); at most {self._max_future} is allowed. Check the "
            "producer's clock and time zone, or raise DRIFTLINE_MAX_FUTURE_SECONDS",
            field_path="event_time",
        )

    def _model_limit(self, spec: ModelSpec) -> Rejection:
        return Rejection(
            DeadLetterReason.MODEL_LIMIT,
            f"this worker already watches {self.settings.max_models} model versions, the most "
            f"DRIFTLINE_MAX_MODELS allows; model {spec.model_id} version {spec.model_version} "
            "gets none of its memory. Raise the limit or start more workers",
        )

    def _monitor_for(self, spec: ModelSpec) -> ModelMonitor | None:
        """The version's monitor, created on its first event; None past the limit."""
        key = (spec.model_id, spec.model_version)
        monitor = self._monitors.get(key)
        if monitor is None:
            if len(self._monitors) >= self.settings.max_models:
                return None
            self._restore_version(spec)
            monitor = self._monitors.get(key)
            if monitor is None:
                kind = SummaryMonitor if spec.keyed_by is KeyedBy.EVENT_ID else ModelMonitor
                monitor = kind(
                    spec,
                    reference=self.registry.reference(*key),
                    max_monitored_features=self.settings.max_features_per_model,
                    quality_alpha=self.settings.quality_alpha,
                )
                log.info("monitoring model %s version %s", *key)
            self._monitors[key] = monitor
        return monitor

    def _summariser_for(self, spec: ModelSpec) -> VersionSummariser:
        """The first stage of a version keyed by event id, made on its first event here: it
        scores against the version's registered reference (one the second stage built from
        the warm-up and published is registered too), and forwards warm-up rows without one."""
        key = (spec.model_id, spec.model_version)
        summariser = self._summarisers.get(key)
        if summariser is None:
            summariser = self._summarisers[key] = VersionSummariser(
                spec,
                reference=self.registry.reference(*key),
                max_monitored_features=self.settings.max_features_per_model,
                quality_alpha=self.settings.quality_alpha,
                spread=self.settings.topic_partitions,
                warmup_rows=summary_warmup_rows(spec),
                predictions_topic=self.settings.predictions_topic,
                labels_topic=self.settings.labels_topic,
            )
        return summariser

    def _spread_model(self, model_id: str) -> bool:
        """Whether a version of the model is keyed by event id (known once per model until
        the registry changes: every label asks)."""
        spread = self._spread_models.get(model_id)
        if spread is None:
            versions = self.registry.versions(model_id)
            specs = (self.registry.spec(model_id, version) for version in versions)
            spread = any(spec is not None and spec.keyed_by is KeyedBy.EVENT_ID for spec in specs)
            self._spread_models[model_id] = spread
        return spread

    def _summarise(self, batch: "_VersionBatch", outputs: list[list[Output]]) -> None:
        """The first stage of a version keyed by event id: one summary of its events per
        partition of the batch (each partition's in their order), sent with the partition's
        last message; each event counts as processed.

        A bug fails the version's events of the partition alone (dead-lettered, their bytes
        can be replayed); the others go on.
        """
        summariser = cast(VersionSummariser, batch.monitor)
        counters = self.counters.topics
        runs = []
        for places in _by_partition(batch.messages):
            source = batch.messages[places[0]].source
            place = (*batch.key, source.topic, source.partition)
            most = _most_events_a_summary(summariser)
            if place not in self._summarised:  # a partition new here: see RESUMED_SUMMARY_EVENTS
                self._summarised.add(place)
                most = min(most or RESUMED_SUMMARY_EVENTS, RESUMED_SUMMARY_EVENTS)
            runs += _cut(places, most)
        for places in runs:
            messages = [batch.messages[place] for place in places]
            indices = [batch.indices[place] for place in places]
            source = messages[0].source
            events = [batch.events[place] for place in places]
            try:
                self._at(messages[0])
                found = self._join_spread_predictions(batch.spec, events, messages)
                summary = summariser.summarise(
                    events,
                    [message.source for message in messages],
                    partition=(source.topic, source.partition),
                    joined=found.joined.pop(batch.key, NOTHING_JOINED),
                )
                others = self._joined_summaries(
                    found.joined,
                    kafka_position(source),
                    messages[-1].source.offset,
                    [event.event_time for event in events],
                    events[-1].event_id,
                )
            except Exception as error:
                log.exception("failed to summarise a batch of model %s version %s", *batch.key)
                for index, message in zip(indices, messages, strict=True):
                    outputs[index] = [self.failed(message, error)]
                continue
            for number, message in enumerate(messages):
                counters[message.topic].processed += 1
                outputs[indices[number]] += found.outputs.get(number, [])
            if summary is not None:
                others.insert(0, Output(Destination.SUMMARIES, summary.registry_key(), summary))
            outputs[indices[-1]] += others

    def _join_spread_predictions(
        self,
        spec: ModelSpec,
        events: Sequence[PredictionEvent | FeatureEvent],
        messages: Sequence[InputMessage],
    ) -> PartitionJoin:
        """Join the judged predictions of a run of one partition in that partition; what was
        found, the dead letters by the place of their message in the run."""
        places = [place for place, event in enumerate(events) if _judged(event)]
        if not places:
            return PartitionJoin({}, {})
        found = self.spread_labels.predictions(
            spec,
            [cast(PredictionEvent, events[place]) for place in places],
            [messages[place].source.offset for place in places],
            messages[0].source.partition,
        )
        return PartitionJoin(
            found.joined, {places[number]: dead for number, dead in found.outputs.items()}
        )

    def unregistered_summaries(self, messages: Sequence[InputMessage]) -> list[float]:
        """The Kafka timestamps (0.0 for none) of the summaries of a batch whose version is not
        registered here (yet), by their keys: the worker lets the registry catch up first."""
        times = []
        for message in messages:
            try:
                model_id, version = orjson.loads(message.key or b"null")
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue  # the summary is dead-lettered for what it is
            if self.registry.spec(str(model_id), str(version)) is None:
                times.append(message.timestamp or 0.0)
        return times

    def process_summaries(self, messages: Sequence[InputMessage]) -> list[Output]:
        """The second stage: take each summary of a batch of the summaries topic through its
        version's summary monitor and lifecycle; the outputs.

        The batch's summaries are taken in the order of their events' times, each source
        partition's in its own order (:func:`by_event_time`): first stages that do not keep
        pace with each other (one started later, or was handed partitions by a rebalance)
        send summaries of earlier events after later ones, and the tests are to see events
        in about the order they happened. A summary taken already (sent again by a first
        stage that restarted) is counted as a duplicate; one that is no valid summary, or of
        a version no longer registered as keyed by event id, is dead-lettered.
        """
        outputs: list[Output] = []
        counters = self.counters.topics[InputTopic.SUMMARIES]
        read: list[tuple[InputMessage, VersionSummary]] = []
        for message in messages:
            counters.consumed += 1
            try:
                summary = VersionSummary.model_validate_json(message.value or b"")
            except ValidationError as error:
                problem = error.errors()[0]["msg"] if error.errors() else str(error)
                rejection = Rejection(
                    DeadLetterReason.INVALID_EVENT,
                    f"not a batch summary ({problem}); only workers write to this topic",
                )
                outputs.append(self._dead_letter(message, rejection))
                continue
            read.append((message, summary))
        for message, summary in by_event_time(read):
            try:
                outputs += self._take_summary(message, summary)
            except Exception as error:  # a bug: this summary alone is dead-lettered
                log.exception("failed on the summary at %s", message.source)
                outputs.append(self.failed(message, error))
        return outputs

    def _take_summary(self, message: InputMessage, summary: VersionSummary) -> list[Output]:
        """What one summary leads to (see :meth:`process_summaries`)."""
        counters = self.counters.topics[InputTopic.SUMMARIES]
        spec = self.registry.spec(summary.model_id, summary.model_version)
        if spec is None or spec.keyed_by is not KeyedBy.EVENT_ID:
            rejection = Rejection(
                DeadLetterReason.UNKNOWN_MODEL,
                f"model {summary.model_id} version {summary.model_version} is not registered "
                "as keyed by event id (any more): its summaries have no version to test",
            )
            return [self._dead_letter(message, rejection)]
        key = (spec.model_id, spec.model_version)
        if self.states is not None and spec.model_id not in self._restored_models:
            self._restore_model(spec.model_id)
        if self._fences and _behind(self._fences, key, message):
            counters.duplicates += 1
            return []
        monitor = self._monitor_for(spec)
        if monitor is None:
            return [self._dead_letter(message, self._model_limit(spec))]
        assert isinstance(monitor, SummaryMonitor)
        self._at(message)
        source, positions = message.source, self._positions.setdefault(key, {})
        place = (source.topic, source.partition)
        positions[place] = max(positions.get(place, 0), source.offset + 1)
        self._touched[key] = self._partition
        taken = monitor.take(summary)
        if taken is None:
            counters.duplicates += 1
            return []
        sent: list[Output] = []
        for each in taken:
            sent += self._tested(spec, monitor, each)
        counters.processed += 1
        return sent

    def flush_summaries(self) -> list[Output]:
        """Take every summary the second stage holds back (the input ended: a replay's), as
        :meth:`process_summaries` would have; the outputs, looped back as
        :meth:`handle_batch` loops them."""
        sent: list[Output] = []
        for key, monitor in list(self._monitors.items()):
            spec = self.registry.spec(*key)
            if isinstance(monitor, SummaryMonitor) and spec is not None:
                for taken in monitor.flush():
                    sent += self._tested(spec, monitor, taken)
        return self.loop_back(sent)

    def _tested(self, spec: ModelSpec, monitor: SummaryMonitor, taken: Taken) -> list[Output]:
        """What a summary the monitor took leads to: its warm-up reference (once), the alerts
        and triggers of what it revealed."""
        summary, found = taken.summary, taken.findings
        sent: list[Output] = []
        if taken.warmed_up and monitor.reference is not None:
            # Every worker's first stage takes it from the references topic, as a registered
            # one; this worker's monitor goes on with it (see forget).
            sent.append(Output(Destination.REFERENCES, spec.registry_key(), monitor.reference))
        life, decider = self.books.book_for(spec)
        if taken.warming_up:
            life.not_quiet_until(life.clock + summary.events)
        now = life.advance(summary.events)
        moment = SummaryMoment(summary.last_event_id, summary.last_event_time)
        alerts = life.update(found, now, moment, summary.source, monitor.quality_alarming)
        triggers = decider.observe(alerts, now)
        sent += [self._alert(alert) for alert in alerts]
        sent += [self._trigger(trigger) for trigger in triggers]
        for revealed in taken.performance:
            sent += self.labels.outputs_of(spec, revealed.findings, revealed.source)
        return sent

    def _performance_alert(self, alert: Alert) -> list[Output]:
        """A performance alert, through the version's lifecycle and retraining policy."""
        spec = self.registry.spec(alert.model_id, alert.model_version)
        if spec is None:
            return [self._alert(alert)]
        life, decider = self.books.book_for(spec)
        now = life.clock
        evidence = alert.evidence
        subject = evidence.metric if isinstance(evidence, PerformanceEvidence) else alert.kind.value
        sent = life.other(alert, now, subject)
        triggers = decider.observe(sent, now)
        self._touch(spec)
        return [self._alert(a) for a in sent] + [self._trigger(t) for t in triggers]

    def _performance_back(
        self, spec: ModelSpec, back: PerformanceResolution, source: KafkaPosition | None
    ) -> list[Output]:
        """The resolve message of a performance alert whose performance came back."""
        life, _ = self.books.book_for(spec)
        realized = back.basis is PerformanceBasis.REALIZED
        kind = AlertKind.PERFORMANCE if realized else AlertKind.ESTIMATED_PERFORMANCE
        what = "on labels" if realized else "as estimated"
        sent = life.resolve_other(
            kind,
            back.metric,
            event_id=back.event_id,
            event_time=back.event_time,
            source=source,
            summary=f"performance: {back.metric.replace('_', ' ')} back to its reference {what}",
        )
        self._touch(spec)
        return [self._alert(alert) for alert in sent]

    def _trigger(self, trigger: RetrainTrigger) -> Output:
        self.counters.triggers += 1
        if alert_log.isEnabledFor(logging.WARNING):
            alert_log.warning("%s", trigger_line(trigger))
        return Output(Destination.RETRAIN_TRIGGERS, trigger.model_id.encode("utf-8"), trigger)

    def _alert(self, alert: Alert) -> Output:
        if alert.status is AlertStatus.OPEN:
            self.counters.alerts[alert.kind.value] += 1
        self.counters.alert_messages[alert.status.value] += 1
        if alert_log.isEnabledFor(logging.WARNING):
            alert_log.warning("%s", alert_line(alert))
        return Output(Destination.ALERTS, alert.model_id.encode("utf-8"), alert)

    def failed(self, message: InputMessage, error: Exception) -> Output:
        """The dead letter of a message the worker failed on, so it is never lost.

        Only a bug gets here: bad input is dead-lettered by its own reason.
        """
        rejection = Rejection(
            DeadLetterReason.PROCESSING_ERROR,
            f"the worker failed on this message ({type(error).__name__}: {error}); this is a "
            "bug in driftline, please report it with this dead letter",
        )
        return self._dead_letter(message, rejection)

    def _label_dead_letter(self, message: LabelMessage, rejection: Rejection) -> Output:
        as_input = InputMessage(InputTopic.LABELS, message.value, message.key, message.source)
        return self._dead_letter(as_input, rejection)

    def _dead_letter(self, message: InputMessage, rejection: Rejection) -> Output:
        letter = dead_letter(
            rejection,
            value=message.value,
            key=message.key,
            source=kafka_position(message.source),
            max_original_bytes=self.settings.max_message_bytes,
        )
        counters = self.counters.topics[message.topic]
        counters.dead_lettered += 1
        counters.dead_letter_reasons[rejection.reason.value] += 1
        return Output(Destination.DEAD_LETTERS, message.key, letter)


def by_event_time(
    read: Sequence[tuple[InputMessage, VersionSummary]],
) -> list[tuple[InputMessage, VersionSummary]]:
    """Summaries merged in the order of their last events' times, each source partition's
    kept in its own order (a partition's summaries are taken in the order of its offsets).

    >>> from datetime import UTC, datetime
    >>> def summary(partition, offset, second):
    ...     time = datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)
    ...     return None, VersionSummary(
    ...         model_id="m", model_version="1", events=1, checked=1,
    ...         source=KafkaPosition(topic="p", partition=partition, offset=offset),
    ...         last_offset=offset, first_event_time=time, last_event_time=time,
    ...         last_event_id="e")
    >>> read = [summary(0, 10, 5), summary(0, 11, 9), summary(1, 3, 2), summary(1, 4, 7)]
    >>> [(s.source.partition, s.source.offset) for _, s in by_event_time(read)]
    [(1, 3), (0, 10), (1, 4), (0, 11)]
    """
    queues: dict[tuple[str, int], list[tuple[InputMessage, VersionSummary]]] = {}
    for item in read:
        queues.setdefault((item[1].source.topic, item[1].source.partition), []).append(item)
    if len(queues) < 2:
        return list(read)
    heads = [
        (queue[0][1].last_event_time, number, 0) for number, queue in enumerate(queues.values())
    ]
    lists = list(queues.values())
    heapq.heapify(heads)
    merged = []
    while heads:
        _, number, at = heapq.heappop(heads)
        merged.append(lists[number][at])
        if at + 1 < len(lists[number]):
            heapq.heappush(heads, (lists[number][at + 1][1].last_event_time, number, at + 1))
    return merged


SUMMARY_WARMUP_ROWS = 500
"""Events a first stage forwards at most per summary while its version has no reference."""

SUMMARY_WARMUP_BYTES = 256 << 10
"""About the most a summary's warm-up rows take, at 32 bytes a value: a summary stays well
under a topic's default message size (1 MiB) whatever its model's width."""


def summary_warmup_rows(spec: ModelSpec) -> int:
    """The events a first stage forwards per summary during the version's warm-up.

    >>> from driftline.simulate import simulated_model_spec
    >>> summary_warmup_rows(simulated_model_spec())
    500
    """
    values = len(spec.features) + 2  # with the prediction and its uncertainty
    return max(1, min(SUMMARY_WARMUP_ROWS, SUMMARY_WARMUP_BYTES // (32 * values)))


def prediction_violation(spec: ModelSpec, event: PredictionEvent) -> Rejection | None:
    """Why a prediction does not fit its model's spec, or None when it does.

    >>> from datetime import UTC, datetime
    >>> spec = ModelSpec(model_id="m", model_version="1", task="regression", features=[])
    >>> event = PredictionEvent(model_id="m", model_version="1", event_id="e",
    ...     event_time=datetime(2026, 1, 1, tzinfo=UTC), prediction="yes")
    >>> prediction_violation(spec, event).message
    "model m version 1 is a regression model: its prediction must be a number, not 'yes'"
    """
    if spec.task is _REGRESSION:
        if isinstance(event.prediction, str):
            return _violation(
                f"{_named(spec)} is a regression model: its prediction must be a number, "
                f"not {event.prediction!r}",
                "prediction",
            )
        if event.probabilities is not None:
            return _violation(
                f"{_named(spec)} is a regression model: send an interval, not class probabilities",
                "probabilities",
            )
        return None
    if isinstance(event.prediction, float):
        return _violation(
            f"{_named(spec)} is a classifier: its prediction must be a class label (a string), "
            f"not {event.prediction!r}; send scores as class probabilities",
            "prediction",
        )
    if event.interval is not None:
        return _violation(
            f"{_named(spec)} is a classifier: it has no prediction interval", "interval"
        )
    if spec.classes is None:
        return None
    classes = set(spec.classes)
    if event.prediction is not None and event.prediction not in classes:
        return _violation(
            f"{_named(spec)} predicts one of {_listing(spec.classes)}; got {event.prediction!r}",
            "prediction",
        )
    if event.probabilities and not classes.issuperset(event.probabilities):
        unknown = sorted(set(event.probabilities) - classes)
        return _violation(
            f"{_named(spec)} has the classes {_listing(spec.classes)}; probabilities name "
            f"{_listing(unknown)}",
            f"probabilities.{unknown[0]}",
        )
    return None


def _named(spec: ModelSpec) -> str:
    """How a violation names the model version (written only for an event that breaks it)."""
    return f"model {spec.model_id} version {spec.model_version}"


def _violation(message: str, field_path: str) -> Rejection:
    return Rejection(DeadLetterReason.SPEC_VIOLATION, message, field_path=field_path)


def _listing(names: list[str], most: int = 10) -> str:
    shown = ", ".join(repr(name) for name in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _behind(fences: dict[Any, "Fence"], key: object, message: InputMessage) -> bool:
    """Whether a message is one the restored state of ``key`` (a version, or a model for its
    labels) already reflects: its offset is below the fence of its partition.

    Once a message of a partition reaches the fence, the partition's fence is
    dropped: what follows is new.
    """
    fence = fences.get(key)
    if fence is None:
        return False
    source = message.source
    place = (source.topic, source.partition)
    end = fence.get(place)
    if end is None:
        return False
    if source.offset < end:
        return True
    del fence[place]
    if not fence:
        del fences[key]
    return False


def _merge(into: "Fence", fence: "Fence") -> None:
    """Take the later of each partition's offsets of ``fence`` into ``into``."""
    for place, offset in fence.items():
        if offset > into.get(place, -1):
            into[place] = offset
