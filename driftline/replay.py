"""``driftline replay``: run recorded events through the worker's decisions, offline.

Before deploying a spec (or a new false-alarm budget), replay the events a
model saw and read every alert the worker would have raised, and every
event it would have refused. The same :class:`~driftline.agents.intake.Intake`
runs as in the worker, so the answers are the worker's, alert ids included.
"""

from collections.abc import Iterable, Iterator
from pathlib import Path

from driftline.agents.counters import TopicCounters
from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.registry import ModelRegistry, ReferenceRegistration, Registration
from driftline.monitors.positions import Position
from driftline.schemas import (
    Alert,
    DeadLetter,
    ModelSpec,
    PerformanceReport,
    ReferenceProfile,
    RetrainTrigger,
)
from driftline.streams.runtime import (
    collector_paused,
    fix_mmap_threshold,
    keep_heap_top,
    tune_garbage_collector,
)
from driftline.streams.settings import Settings

Output = Alert | DeadLetter | PerformanceReport | RetrainTrigger
"""What a replay yields: every message the worker would send."""


REPLAY_BATCH_EVENTS = 5_000
"""Replay's batches, unless told: no alert waits on them, so they are larger than a worker's."""


REPLAY_MMAP_THRESHOLD_BYTES = 8 * 2**20
"""C allocations this large or larger get pages of their own in a replay process (a worker's
threshold is 1 MiB)."""


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
    matters. The settings stay for the rest of the process.
    """
    tune_garbage_collector()
    fix_mmap_threshold(REPLAY_MMAP_THRESHOLD_BYTES)
    keep_heap_top()


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
    """

    def __init__(
        self,
        specs: list[ModelSpec],
        *,
        references: list[ReferenceProfile] | None = None,
        settings: Settings | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.batch_size = batch_size or max(self.settings.batch_max_events, REPLAY_BATCH_EVENTS)
        """Events taken at a time, as a worker takes a batch (it changes no answer)."""
        registry = ModelRegistry()
        self.intake = Intake(self.settings, registry)
        for spec in specs:
            registry.apply(Registration(spec))
        for profile in references or []:
            registry.apply(ReferenceRegistration(profile))

    @property
    def counters(self) -> TopicCounters:
        """What became of the events fed so far."""
        return self.intake.counters.topics[InputTopic.PREDICTIONS]

    def feed(
        self,
        lines: Iterable[bytes],
        *,
        source: str = "replay",
        topic: InputTopic = InputTopic.PREDICTIONS,
    ) -> Iterator[Output]:
        """Feed events, one JSON document per line; yield what the worker would send.

        Events go through the worker's batch path, ``batch_size`` at a time.

        Line ``n`` (from 0) stands at offset ``n`` of partition 0 of
        ``source``, so evidence positions point back into the file. Recorded
        events carry no Kafka timestamp, so their times are not checked
        against one.
        """
        batch: list[InputMessage] = []
        for offset, line in enumerate(lines):
            value = line.rstrip(b"\r\n")
            if not value.strip():
                continue
            # Positional: a named tuple made with keywords costs twice as long.
            batch.append(InputMessage(topic, value, None, Position(source, 0, offset)))
            if len(batch) >= self.batch_size:
                yield from self._process(batch)
                batch = []
        yield from self._process(batch)

    def _process(self, batch: list[InputMessage]) -> Iterator[Output]:
        """What the worker would send for one batch of messages, as it would take them."""
        with collector_paused():
            outputs = self.intake.handle_batch(batch)
        for output in outputs:
            yield output.message

    def feed_file(self, path: Path) -> Iterator[Output]:
        """:meth:`feed` over the lines of a JSON Lines file of prediction events."""
        with path.open("rb") as lines:
            yield from self.feed(lines, source=path.name)
