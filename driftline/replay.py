"""``driftline replay``: run recorded events through the worker's decisions, offline.

Before deploying a spec (or a new false-alarm budget), replay the events a
model saw and read every alert the worker would have raised, and every
event it would have refused. The same :class:`~driftline.agents.intake.Intake`
runs as in the worker, so the answers are the worker's, alert ids included.
"""

import gc
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson

from driftline.agents.counters import TopicCounters
from driftline.agents.history import StatusHistory
from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import OutputMessage
from driftline.agents.registry import ModelRegistry, ReferenceRegistration, Registration
from driftline.monitors.sequential import use_recursive_filter
from driftline.parallel_replay import ParallelIntake, new_message, new_position
from driftline.pipelined_replay import PipelinedIntake
from driftline.schemas import (
    Alert,
    DeadLetter,
    KeyedBy,
    ModelSpec,
    PerformanceReport,
    ReferenceProfile,
    RetrainTrigger,
)
from driftline.schemas.summaries import VersionSummary
from driftline.streams.runtime import (
    collector_paused,
    fix_mmap_threshold,
    keep_heap_top,
    tune_garbage_collector,
)
from driftline.streams.settings import Settings

Output = Alert | DeadLetter | PerformanceReport | RetrainTrigger


def _reported(message: OutputMessage) -> Output:
    """A message a replay reports: never a summary or a reference, which its one intake took
    back itself (see :meth:`~driftline.agents.intake.Intake.loop_back`)."""
    if isinstance(message, VersionSummary | ReferenceProfile):
        raise TypeError(f"a replay reports no {type(message).__name__}")
    return message


"""What a replay yields: every message the worker would send."""


REPLAY_BATCH_EVENTS = 5_000
"""Replay's batches, unless told: no alert waits on them, so they are larger than a worker's."""

REPORT_BATCH_EVENTS = 250
"""Replay's batches when it draws a report: a chart's point each batch."""


REPLAY_MMAP_THRESHOLD_BYTES = 8 * 2**20
"""C allocations this large or larger get pages of their own in a replay process (a worker's
threshold is 1 MiB)."""


REPLAY_YOUNG_COLLECTION_THRESHOLD = 100_000
"""Objects made (less those freed) before a young garbage collection, in a replay process."""


def tune_replay_process() -> None:
    """Set up the running process for a long replay, as ``driftline replay`` does.

    The garbage collector as a worker tunes it, and the C heap kept for
    replay's large batches. Their arrays, up to a few MiB when ten models'
    tests run side by side, are freed and allocated again batch after
    batch: they come from the heap (up to
    :data:`REPLAY_MMAP_THRESHOLD_BYTES`, see
    :func:`~driftline.streams.runtime.fix_mmap_threshold`) and stay there
    (:func:`~driftline.streams.runtime.keep_heap_top`) instead of going back
    to the system and returning as fresh pages. Replay of ten models then
    took about one page fault in seven events instead of one an event, and
    29.5-31.0 µs an event instead of 30.5-32.6 (one model: 23.3-24.6
    against 23.4-28.1; ``benchmarks/throughput.py``, two alternated rounds
    of three runs, against the worker's 1 MiB threshold). A replay is a
    short-lived batch job, so the memory kept free costs nothing that
    matters. Young collections come after 100,000 new objects, not 10,000:
    reading a batch's messages (two tuples each) made one or two a batch,
    each walking the batches alive (about 1.1 µs an event in the reading
    process of a replay of one model, which then made none). For the same
    reason the serial-dependence estimates take their decayed sums with
    scipy.signal's filter (the same bits, about 0.9 µs an event less for
    20 features; see
    :func:`~driftline.monitors.sequential.use_recursive_filter`). The
    settings stay for the rest of the process.

    Call it first thing in a script that does little but replay: the objects
    alive by then are frozen out of garbage collection.

    >>> tune_replay_process()  # doctest: +SKIP
    >>> for output in Replay(specs).feed_file(Path("events.jsonl")):  # doctest: +SKIP
    ...     print(output.model_dump_json())
    """
    tune_garbage_collector()
    gc.set_threshold(REPLAY_YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    fix_mmap_threshold(REPLAY_MMAP_THRESHOLD_BYTES)
    keep_heap_top()
    use_recursive_filter()


class Replay:
    """The worker's decisions over recorded events, with the specs and references given.

    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> lines = (event.model_dump_json().encode() for event in events)
    >>> run = Replay([simulated_model_spec()])
    >>> for output in run.feed(lines):
    ...     if isinstance(output, Alert):
    ...         print(output.feature or "(model)", output.status.value, output.event_id)
    x open demo-model-1-3042
    (model) open demo-model-1-3042
    (prediction) open demo-model-1-3051
    (model) update demo-model-1-3051
    (multivariate) open demo-model-1-3069
    (model) update demo-model-1-3069
    x update demo-model-1-4047
    (prediction) update demo-model-1-4083
    (multivariate) update demo-model-1-4157
    >>> run.counters.processed
    5000

    With ``processes`` above 1, the models are shared among that many
    processes (:mod:`driftline.parallel_replay`): this one, and others
    forked at the first batch, each processing its models' events. There
    are never more processes than the specs' models, and one with a
    ``history`` (its charts read every monitor). The events of a single
    model go through two processes, one after the other
    (:mod:`driftline.pipelined_replay`): this one decodes and checks each
    batch while the other monitors the one before. Such a replay is fed
    once. Ten interleaved models of 20 features ran at 36,500 to 37,400
    events a second in one process and 52,000 to 57,600 in two, on two
    cores (each process also reads every message's model from its bytes,
    and the batches go from this process to the others).

    Each process is like one worker of that many: the bounds a worker
    keeps apply to each process, not to them all. Those are the model
    versions watched (``max_models``, 10,000) and the label join's memory:
    the predictions and labels waiting (``max_pending_labels``, 1,000,000)
    and the predictions held before a model's first label
    (``max_held_predictions``, 100,000, shared out among the models holding
    some). Past them, one process drops state that several would keep, and
    the outputs and counts differ. Nor does a model without a label yet see
    the labels of models in other processes: their event times let its
    predictions expire, after the label retention (7 days of event time).
    Below those bounds and spans, which is always with the default settings
    unless the events name over 10,000 model versions, keep over 1,000,000
    labels waiting, hold predictions of over 10 models before their first
    label, or span more than 7 days, the outputs are those of one process,
    in the same order, alert ids included, and so are the counts. A single
    model's two processes, one after the other, keep every bound as one
    process does: their outputs and counts are always one process's.
    """

    def __init__(
        self,
        specs: list[ModelSpec],
        *,
        references: list[ReferenceProfile] | None = None,
        settings: Settings | None = None,
        batch_size: int | None = None,
        history: StatusHistory | None = None,
        progress: Callable[[int], None] | None = None,
        processes: int = 1,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.settings = settings or Settings()
        self.batch_size = batch_size or max(self.settings.batch_max_events, REPLAY_BATCH_EVENTS)
        """Events taken at a time, as a worker takes a batch (it changes no answer)."""
        self.history = history
        """Kept up after each batch when given, for a report (a point per batch and subject)."""
        self.progress = progress
        """Told the number of messages of each batch once it is processed (a progress line)."""
        registry = ModelRegistry()
        self.intake = Intake(self.settings, registry)
        for spec in specs:
            registry.apply(Registration(spec))
        for profile in references or []:
            registry.apply(ReferenceRegistration(profile))
        self._models = list(dict.fromkeys(spec.model_id for spec in specs))
        most = len(self._models) if len(self._models) > 1 else 2 * len(self._models)
        spread = any(spec.keyed_by is KeyedBy.EVENT_ID for spec in specs)
        alone = history is not None or spread
        self.processes = 1 if alone else max(1, min(processes, most))
        """Processes the events go through: as asked, but no more than the specs' models (two
        for one model, one after the other), and one with ``history`` or a model keyed by
        event id (its one process is both of its stages)."""
        self._forked = False

    @property
    def counters(self) -> TopicCounters:
        """What became of the events fed so far.

        >>> from driftline.simulate import simulated_model_spec, simulated_predictions
        >>> lines = [e.model_dump_json().encode() for e in simulated_predictions(100, shift_at=100)]
        >>> run = Replay([simulated_model_spec()])
        >>> outputs = list(run.feed([*lines, b"not an event", lines[0]]))
        >>> run.counters.consumed, run.counters.processed, run.counters.dead_lettered
        (102, 100, 1)
        >>> run.counters.duplicates
        1
        """
        return self.intake.counters.topics[InputTopic.PREDICTIONS]

    def feed(
        self,
        lines: Iterable[bytes],
        *,
        source: str = "replay",
        topic: InputTopic = InputTopic.PREDICTIONS,
    ) -> Generator[Output, None, None]:
        """Feed events, one JSON document per line; yield what the worker would send.

        Events go through the worker's batch path, ``batch_size`` at a time.

        Line ``n`` (from 0) stands at offset ``n`` of partition 0 of
        ``source``, so evidence positions point back into the file. Recorded
        events carry no Kafka timestamp, so their times are not checked
        against one.

        >>> from driftline.simulate import simulated_model_spec
        >>> run = Replay([simulated_model_spec()])
        >>> for output in run.feed([b'{"model_id": "demo-model"}', b"", b"not json"]):
        ...     print(output.source.offset, output.reason.value)
        0 invalid_event
        2 invalid_json
        """
        yield from self.feed_messages(_messages(lines, source, topic))

    def feed_messages(self, messages: Iterable[InputMessage]) -> Generator[Output, None, None]:
        """Feed messages of any input topic, in order, ``batch_size`` at a time.

        A classifier's predictions and their labels, in the order they were published:

        >>> from driftline.monitors.positions import Position
        >>> from driftline.simulate import simulated_classifier_spec, simulated_classifier_traffic
        >>> messages = (
        ...     InputMessage(InputTopic.LABELS if hasattr(e, "label") else InputTopic.PREDICTIONS,
        ...                  e.model_dump_json().encode(), None, Position("traffic", 0, n))
        ...     for n, e in enumerate(simulated_classifier_traffic(3_000, shift_at=1_500))
        ... )
        >>> for output in Replay([simulated_classifier_spec()]).feed_messages(messages):
        ...     if isinstance(output, Alert) and output.status.value == "open":
        ...         print(output.kind.value, output.feature or "(model)", output.event_id)
        performance (model) label-demo-classifier-1-1613
        drift (prediction) demo-classifier-1-2049
        drift (model) demo-classifier-1-2049
        drift x demo-classifier-1-2072
        uncertainty (uncertainty) demo-classifier-1-2127
        """
        if self.processes > 1 and len(self._models) == 1:
            yield from self._feed_pipelined(messages)
            return
        if self.processes > 1:
            yield from self._feed_shared(messages)
            return
        for batch in _batches(messages, self.batch_size):
            with collector_paused():
                outputs = self.intake.handle_batch(batch)
            found = [_reported(output.message) for output in outputs]
            if self.history is not None:
                self.history.observe(self.intake.monitors, found)
            if self.progress is not None:
                self.progress(len(batch))
            yield from found
        # The summaries the second stage still holds back, of models keyed by event id.
        yield from (_reported(output.message) for output in self.intake.flush_summaries())

    def _feed_shared(self, messages: Iterable[InputMessage]) -> Generator[Output, None, None]:
        """:meth:`feed_messages` in :attr:`processes` processes; their counters are added to
        this one's at the end of the input."""
        self._start_once()
        with ParallelIntake(self.intake, self.processes, models=self._models) as shared:
            for batch in _batches(messages, self.batch_size):
                found = shared.outputs(batch)
                if self.progress is not None:
                    self.progress(len(batch))
                yield from map(_reported, found)
            shared.finish()

    def _feed_pipelined(self, messages: Iterable[InputMessage]) -> Generator[Output, None, None]:
        """:meth:`feed_messages` in two processes, one after the other; the other's counters are
        added to this one's at the end of the input."""
        self._start_once()
        with PipelinedIntake(self.intake) as pipeline:
            for count, found in pipeline.outputs(_batches(messages, self.batch_size)):
                if self.progress is not None:
                    self.progress(count)
                yield from map(_reported, found)
            pipeline.finish()

    def _start_once(self) -> None:
        """Note that the other processes are started: they cannot be again."""
        if self._forked:
            raise RuntimeError(
                "a replay in several processes is fed once: its models' state ended with them"
            )
        self._forked = True

    def feed_file(self, path: Path, labels: Path | None = None) -> Generator[Output, None, None]:
        """:meth:`feed` over the lines of a JSON Lines file of prediction events, with the
        label events of ``labels`` (a JSON Lines file too) merged in by event time.

        Labels are taken as a worker takes them, no sooner than the predictions
        up to their own event time: each file keeps its order, and a label
        goes in just before the first prediction later than it. A line that
        is no JSON event keeps its place after the line before it in its file.
        Reading each line's time costs a JSON parse of its own (about 1.2 µs
        for a 300-byte event, against some 25 µs to replay it), with labels only.

        Recorded predictions and labels, in two files, give each window's realized accuracy:

        >>> import tempfile
        >>> from driftline.simulate import simulated_classifier_spec, simulated_classifier_traffic
        >>> folder = tempfile.TemporaryDirectory()
        >>> events, labels = Path(folder.name, "events.jsonl"), Path(folder.name, "labels.jsonl")
        >>> with events.open("w") as predicted, labels.open("w") as labelled:
        ...     for event in simulated_classifier_traffic(3_000, shift_at=1_500):
        ...         file = labelled if hasattr(event, "label") else predicted
        ...         print(event.model_dump_json(), file=file)
        >>> outputs = Replay([simulated_classifier_spec()]).feed_file(events, labels)
        >>> {o.window: o.realized["accuracy"] for o in outputs if isinstance(o, PerformanceReport)}
        {0: 0.784, 1: 0.746, 2: 0.766, 3: 0.52, 4: 0.518, 5: 0.552}
        >>> folder.cleanup()
        """
        with path.open("rb") as events:
            predictions = _messages(events, path.name, InputTopic.PREDICTIONS)
            if labels is None:
                yield from self.feed_messages(predictions)
                return
            with labels.open("rb") as label_lines:
                found = _messages(label_lines, labels.name, InputTopic.LABELS)
                yield from self.feed_messages(merged_by_event_time(predictions, found))


def _batches(messages: Iterable[InputMessage], size: int) -> Iterator[list[InputMessage]]:
    """The messages in order, at most ``size`` at a time, a batch ending where labels and
    other events take turns.

    The batch path joins a batch's labels before its other events (a
    worker's batches hold one topic each), so a batch mixing them would
    answer differently from the messages one by one.

    >>> from driftline.schemas import KafkaPosition
    >>> topics = [InputTopic.PREDICTIONS] * 3 + [InputTopic.LABELS] * 2 + [InputTopic.FEATURES]
    >>> where = KafkaPosition(topic="t", partition=0, offset=0)
    >>> stream = [InputMessage(topic, b"{}", None, where) for topic in topics]
    >>> [[m.topic.value for m in batch] for batch in _batches(stream, 2)]
    [['predictions', 'predictions'], ['predictions'], ['labels', 'labels'], ['features']]
    """
    batch: list[InputMessage] = []
    labels = False
    for message in messages:
        is_label = message.topic is InputTopic.LABELS
        if batch and (len(batch) >= size or is_label is not labels):
            yield batch
            batch = []
        labels = is_label
        batch.append(message)
    if batch:
        yield batch


def _messages(lines: Iterable[bytes], source: str, topic: InputTopic) -> Iterator[InputMessage]:
    """Line ``n`` (from 0) of a file as the message at offset ``n`` of partition 0 of
    ``source``; blank lines are skipped."""
    for offset, line in enumerate(lines):
        value = line.rstrip(b"\r\n")
        if value and not value.isspace():  # strip() would copy each line
            # Made from their fields' tuples: a named tuple's own constructor takes twice as long.
            yield new_message((topic, value, None, new_position((source, 0, offset)), None))


def merged_by_event_time(
    first: Iterable[InputMessage], second: Iterable[InputMessage]
) -> Iterator[InputMessage]:
    """Two streams of messages as one, by their events' times, each stream in its own order.

    A message of ``second`` goes before the next of ``first`` only when its
    event time is earlier; a message without a readable time takes its
    stream's previous one (the start of time before any).

    >>> from driftline.monitors.positions import Position
    >>> def at(topic, *times):
    ...     return [
    ...         InputMessage(topic, b'{"event_time": "%s"}' % t.encode(), None, Position("f", 0, n))
    ...         for n, t in enumerate(times)
    ...     ]
    >>> merged = merged_by_event_time(
    ...     at(InputTopic.PREDICTIONS, "2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z"),
    ...     at(InputTopic.LABELS, "2026-01-01T00:00:02Z", "not a time"),
    ... )
    >>> [(m.topic.value, m.source.offset) for m in merged]
    [('predictions', 0), ('labels', 0), ('labels', 1), ('predictions', 1)]
    """
    seconds = _timed(second)
    waiting = next(seconds, None)
    for time, message in _timed(first):
        while waiting is not None and waiting[0] < time:
            yield waiting[1]
            waiting = next(seconds, None)
        yield message
    while waiting is not None:
        yield waiting[1]
        waiting = next(seconds, None)


def _timed(messages: Iterable[InputMessage]) -> Iterator[tuple[datetime, InputMessage]]:
    """Each message with its event's time, or the one before it when it has none."""
    time = datetime.min.replace(tzinfo=UTC)
    for message in messages:
        try:
            found = datetime.fromisoformat(orjson.loads(message.value or b"")["event_time"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            found = None
        if found is not None and found.tzinfo is not None:
            time = found
        yield time, message
