"""The faust side: one agent per input topic, all deciding through one :class:`Intake`.

Agents read raw bytes and validate each message themselves, so every
consumed message ends as processed, dead-lettered or a counted duplicate,
never as an exception that faust would log and drop together with the
event. Each agent runs with concurrency 1: with more, faust can commit an
offset past an event still being processed.

The event topics are read in batches (:func:`~driftline.streams.batching.take_batches`):
a batch is decoded, checked and fed to each model version's monitor at
once, its outputs are sent in order, and its offsets are acked only once a
checkpoint (:mod:`~driftline.agents.checkpoints`, every two seconds) saved
the state it changed, so a crash replays at most the batches since (alert
ids are deterministic, so a replay repeats ids, never invents new alerts).
"""

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from faust.types import StreamT, TopicT
from prometheus_client import Histogram

from driftline.agents.checkpoints import Checkpointer
from driftline.agents.history import StatusHistory
from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.progress import ProgressWatch, batch_seconds_histogram
from driftline.agents.registry import ModelRegistry
from driftline.agents.registry_follower import RegistryFollower
from driftline.agents.tables import TableStore, label_join_table, version_state_table
from driftline.monitors.positions import Position
from driftline.streams import DriftlineApp
from driftline.streams.app import kafka_producer
from driftline.streams.batching import BatchingConsumer, DeferredAcks, take_batches
from driftline.streams.busy import AgentClock, LoopTime
from driftline.streams.pacing import InputPacer, earliest_by_partition, latest_by_partition
from driftline.streams.runtime import collector_paused
from driftline.streams.sending import BatchProducer, RecordSender
from driftline.streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Monitoring:
    """What the agents share: the decisions, the registry, its follower, and the tables' writer."""

    intake: Intake
    registry: ModelRegistry
    follower: RegistryFollower
    changelog: Checkpointer
    progress: ProgressWatch
    """When each input partition last had a batch processed (for ``/livez``)."""
    batch_seconds: Histogram
    """How long batches take, by input topic (for ``/metrics``)."""
    history: StatusHistory
    """What the status page draws: recent pressures, alerts, triggers, windows."""
    work: dict[InputTopic, AgentClock] = field(default_factory=dict)
    """Each input agent's synchronous work (decoding, deciding, encoding its outputs): what
    each topic costs, stage 1 (predictions) and stage 2 (summaries) apart."""


def register_agents(dapp: DriftlineApp) -> Monitoring:
    """Declare the registry follower and one agent per input topic on the app."""
    registry = ModelRegistry()
    table = label_join_table(dapp)
    acks = DeferredAcks(dapp.app)
    label_store = TableStore(table, bytes, write_behind=True)
    state_store = TableStore(version_state_table(dapp), str, write_behind=True)
    monitoring = Monitoring(
        changelog=Checkpointer(
            dapp.settings,
            lambda: kafka_producer(dapp.app),
            [label_store, state_store],
            acks=acks,
        ),
        intake=Intake(dapp.settings, registry, label_store=label_store, state_store=state_store),
        registry=registry,
        follower=RegistryFollower(dapp.settings, registry),
        progress=ProgressWatch(dapp.settings.stall_seconds),
        batch_seconds=batch_seconds_histogram(),
        history=StatusHistory(),
    )
    acks.checkpoint = partial(monitoring.changelog.write, monitoring.intake, now=True)

    @dapp.app.task  # type: ignore[untyped-decorator]
    async def follow_registry() -> None:
        # A follower that died would leave every new model unknown: restart it.
        while True:
            try:
                await monitoring.follower.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the registry topic failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    @table.on_recover  # type: ignore[untyped-decorator]
    async def rebuild_label_join() -> None:
        # The table holds what was waiting; the join's indexes are rebuilt from it.
        monitoring.intake.labels.join.rebuild()

    @dapp.app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust types it narrowly
    async def release_revoked(app: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        # faust waited for the batches in progress; what they changed is written (and
        # the versions' state with it), then the versions of those partitions leave
        # memory: whoever owns them next reads them back from the table.
        (revoked,) = args
        try:
            kept = monitoring.intake.keep_held({(tp.topic, tp.partition) for tp in revoked})
            if kept:
                log.info(
                    "wrote %d predictions held in memory of the revoked partitions to the label "
                    "join's table, for their next owner",
                    kept,
                )
            await monitoring.changelog.write(monitoring.intake, now=True)
            try:  # bounded: in a broker outage the flush would wait for the broker
                await asyncio.wait_for(app.producer.flush(), dapp.settings.send_timeout_seconds)
            except TimeoutError:
                log.warning(
                    "the last changes of %d revoked partitions are not delivered yet: whoever "
                    "owns them next may process their latest events again",
                    len(revoked),
                )
            monitoring.intake.release({(tp.topic, tp.partition) for tp in revoked})
        except Exception:  # a bug here must not crash the rebalance
            log.exception("releasing the state of %d revoked partitions failed", len(revoked))

    @dapp.app.timer(interval=max(dapp.settings.state_save_interval_seconds, 0.1))  # type: ignore[untyped-decorator]
    async def save_state() -> None:
        # Batches wait for a checkpoint to be acked: one is taken when an agent's batch
        # finds it due, and here when the agents are idle, so that no offset waits long.
        if len(acks):
            await monitoring.changelog.write(monitoring.intake)

    predicting: set[int] = set()
    """Partitions of the predictions batch being processed now."""
    pacer = InputPacer(
        lead=dapp.settings.label_lead_seconds,
        leader_backlog=lambda partition: partition in predicting or _unprocessed(dapp, partition),
        max_wait=LABEL_MAX_WAIT_SECONDS,
    )
    inputs = {
        InputTopic.PREDICTIONS: dapp.predictions,
        InputTopic.FEATURES: dapp.features,
        InputTopic.LABELS: dapp.labels,
        InputTopic.MODELS: dapp.models,
        InputTopic.REFERENCES: dapp.references,
        InputTopic.SUMMARIES: dapp.summaries,
    }
    loop_time = LoopTime()
    for topic, channel in inputs.items():
        monitoring.work[topic] = loop_time.clock()
        _register_input_agent(dapp, topic, channel, monitoring, pacer, predicting)
    return monitoring


LABEL_MAX_WAIT_SECONDS = 10.0
"""Longest a batch of labels waits for the predictions to come near (see :class:`InputPacer`)."""


def _unprocessed(dapp: DriftlineApp, partition: int) -> bool:
    """Whether predictions of this partition wait: on the broker, or fetched."""
    consumer = dapp.app.consumer
    if not isinstance(consumer, BatchingConsumer):
        return False
    topic = dapp.settings.predictions_topic
    return consumer.waiting(topic, partition) > 0 or consumer.unread(topic, partition)


BATCHED_TOPICS = frozenset(
    {InputTopic.PREDICTIONS, InputTopic.FEATURES, InputTopic.LABELS, InputTopic.SUMMARIES}
)
"""Input topics read in batches; the registry topics stay event by event (they are small)."""


def _register_input_agent(
    dapp: DriftlineApp,
    topic: InputTopic,
    channel: TopicT,
    monitoring: Monitoring,
    pacer: InputPacer,
    predicting: set[int],
) -> None:
    """One agent for ``topic``: batches of messages in, their outputs sent, then acked.

    Its batches are sized by its own work (its clock in ``monitoring.work``
    takes the other agents' off), so that one agent's batches do not shrink
    for another's.
    """
    settings = dapp.settings
    clock = monitoring.work[topic]
    sender = OutputSender(settings, lambda: kafka_producer(dapp.app), clock)
    batch_seconds = monitoring.batch_seconds.labels(topic.value)
    intake, follower = monitoring.intake, monitoring.follower

    async def process(records: Sequence[Any]) -> None:
        if topic is InputTopic.LABELS:
            await pacer.wait_to_follow(earliest_by_partition(_times(records)))
            await process_batch(records)
        elif topic is InputTopic.PREDICTIONS:
            predicting.update(record.partition for record in records)
            try:
                await process_batch(records)
                pacer.leader_reached(latest_by_partition(_times(records)))
            finally:
                predicting.clear()
        else:
            await process_batch(records)

    async def process_batch(records: Sequence[Any]) -> None:
        started = time.perf_counter()
        partitions = {record.tp for record in records}
        monitoring.progress.started(partitions)
        messages = [_input_message(topic, record) for record in records]
        # No checkpoint between what the batch changes and the hand-over of its outputs.
        async with monitoring.changelog.processing() as owe:
            try:
                outputs = await decide(messages)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The intake dead-letters what it fails on itself; getting here is a bug
                # outside it. It must not kill the agent nor lose a message: each message
                # of the batch is dead-lettered with the error (its bytes can be replayed).
                log.exception("failed on a batch of %d %s", len(messages), topic)
                outputs = [intake.failed(message, error) for message in messages]
            deliveries = await sender.hand_over(outputs)
            owe(deliveries)
        await sender.wait(deliveries)
        try:
            monitoring.history.observe(intake.monitors, (output.message for output in outputs))
        except Exception:  # a bug in what the status page keeps must not stop the agent
            log.exception("the status history failed on a batch of %d %s", len(messages), topic)
        await monitoring.changelog.write(intake, clock)
        monitoring.progress.processed(partitions)
        batch_seconds.observe(time.perf_counter() - started)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: a batch of %d in %.1f ms, %d outputs",
                topic.value,
                len(messages),
                (time.perf_counter() - started) * 1e3,
                len(outputs),
            )

    async def decide(messages: list[InputMessage]) -> list[Output]:
        """The outputs of a batch, decoded and processed with the collector held off throughout.

        The decoded events are dropped before the collector resumes: alive then, they
        were its new objects, and it walked them all (a young collection each batch,
        ~0.75 µs an event in a replay of one model taken this way). Only a batch with an
        unregistered model lets the loop run in between, while the registry catches up.

        Until the registry and references topics have been read to their end once, a
        batch waits for that first: a version's saved state is read back at its model's
        first event, and checked against the reference registered for it, which must be
        known by then (a monitor saved against a registered reference would otherwise
        start afresh, with a warm-up of its own).
        """
        if not follower.caught_up:
            await follower.sync()
        if topic is InputTopic.SUMMARIES:
            unknown = intake.unregistered_summaries(messages)
            if unknown:
                await follower.sync(published_before=max(unknown))
            with clock, collector_paused():
                return intake.process_summaries(messages)
        with clock, collector_paused():
            items = intake.read_many(messages)
            unknown = intake.unregistered_at(items)
            if not unknown:
                outputs = intake.process_batch(items)
                del items
                return outputs
        await follower.sync(published_before=max(unknown))
        with clock, collector_paused():
            outputs = intake.process_batch(items)
            del items
        return outputs

    async def consume_batches(stream: StreamT[bytes]) -> None:
        async for batch in take_batches(
            stream,
            max_records=settings.batch_max_events,
            within=settings.batch_max_wait_seconds,
            target_seconds=settings.batch_target_seconds,
            clock=clock,
            acks=monitoring.changelog.acks,
        ):
            await process(batch)

    async def consume_events(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await process([event.message])

    consume = consume_batches if topic in BATCHED_TOPICS else consume_events
    dapp.app.agent(channel, name=f"driftline.{topic.value}", concurrency=1)(consume)


def _times(records: Sequence[Any]) -> Iterator[tuple[int, float]]:
    """Each record's partition and Kafka timestamp (seconds; 0 when it has none)."""
    return ((record.partition, record.timestamp or 0.0) for record in records)


def _input_message(topic: InputTopic, record: Any) -> InputMessage:
    # Positional: made with keywords, a named tuple took twice as long (~1 µs a message).
    return InputMessage(
        topic,
        record.value,
        record.key,
        Position(record.topic, record.partition, record.offset),
        record.timestamp,
    )


OUTPUT_DELIVERY_WAIT_SECONDS = 0.1
"""Longest a batch waits for its outputs to reach the broker before the agent takes the next.

Handing a message to the producer only queues it: the producer's sender
task puts it on the wire at a later turn of the event loop, and only once
the produce request before it is acknowledged (aiokafka keeps one in
flight per broker). An agent with a backlog takes its next batch at once,
and processing it holds the loop for up to a batch's time
(``DRIFTLINE_BATCH_TARGET_SECONDS``), so the alerts found in one batch
used to leave only after the next one. In the 10-model latency run, from
an alert's Kafka timestamp to its arrival at a consumer took 0.099 s at
the median and 0.279 s at most (one trial at 5,000 events/s); waiting for
the broker's acknowledgements, 0.013-0.021 s and 0.054-0.107 s (four
trials at 5,000 and 7,000 events/s), and the alerts' p99 latency at 5,000
events/s fell from 0.54-1.23 s (ten trials) to 0.36 and 0.41 s (two). The
wait costs one round trip on batches with outputs, and is bounded so that
a slow broker holds an agent back no longer than this; the delivery
itself is still guaranteed by faust, which flushes the producer before it
commits offsets. Yielding a few turns of the loop instead of waiting (six
latency trials each at 7,000 events/s, alternated) gave p99 0.43-0.93 s
against 0.33-0.74 s.
"""


class OutputSender:
    """Sends the outputs of a batch to their topics, encoded here and only here, then waits for
    them together (see :class:`~driftline.streams.sending.RecordSender`)."""

    def __init__(
        self,
        settings: Settings,
        producer: Callable[[], BatchProducer],
        clock: AgentClock | None = None,
    ) -> None:
        self.clock = clock or LoopTime().clock()
        """Where the encoding is timed: it is part of the agent's work."""
        self.topics = {
            Destination.ALERTS: settings.alerts_topic,
            Destination.PERFORMANCE: settings.performance_topic,
            Destination.RETRAIN_TRIGGERS: settings.retrain_triggers_topic,
            Destination.DEAD_LETTERS: settings.dead_letters_topic,
            Destination.SUMMARIES: settings.summaries_topic,
            Destination.REFERENCES: settings.references_topic,
        }
        self.records = RecordSender(producer, timeout=settings.send_timeout_seconds)

    async def send_all(self, outputs: Sequence[Output]) -> "list[asyncio.Future[Any]]":
        """Hand every output to the producer, in order within each partition, then wait for them
        together: at most :data:`OUTPUT_DELIVERY_WAIT_SECONDS`, until the broker has them all.
        Their deliveries (the state written after them waits for those)."""
        deliveries = await self.hand_over(outputs)
        await self.wait(deliveries)
        return deliveries

    async def hand_over(self, outputs: Sequence[Output]) -> "list[asyncio.Future[Any]]":
        """Hand every output to the producer, in order within each partition; their
        deliveries."""
        topics = self.topics
        with self.clock:
            records = [(topics[output.destination], output.key, output.value) for output in outputs]
        return await self.records.send_all(records)

    async def wait(self, deliveries: "Sequence[asyncio.Future[Any]]") -> None:
        """Wait for deliveries, at most :data:`OUTPUT_DELIVERY_WAIT_SECONDS`."""
        if deliveries:
            await asyncio.wait(deliveries, timeout=OUTPUT_DELIVERY_WAIT_SECONDS)
