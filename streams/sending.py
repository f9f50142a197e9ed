"""Sending output messages without losing them, without hanging forever, and in batches.

A worker's batch of events can lead to a thousand outputs (a producer that
sends broken events gets a dead letter for each). Handing them to faust
one by one (``Topic.send``) cost ~75 µs a message: channel, sensors and
callbacks for every one. A worker whose every event was dead-lettered then
carried ~8,400 events/s, where it carries ~18,000 valid ones.
:class:`RecordSender` appends them to aiokafka record batches instead, a
few calls per partition and batch: ~16,300 events/s (two runs). A
partition has one batch in flight at a time, so each batch of 16 KiB
(aiokafka's size) beyond the first waits a round trip. Batches of 512 KiB
made it ~25,000 events/s, but are not used: the 100-model scaling case,
within a few MiB of its memory limit, ended at 376 and 380 MiB with them,
and whether they were the cause was not established.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

from aiokafka.errors import KafkaTimeoutError

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0

RETRIED_ERRORS = (TimeoutError, OSError, RuntimeError, KafkaTimeoutError)
"""Errors of a hand-over that a later try may not meet: a broker away, a producer queue full."""

Record = tuple[str, bytes | None, bytes]
"""One message to produce: its topic, key and value."""

PlacedRecord = tuple[str, int, bytes | None, bytes | None]
"""One message to produce on a partition chosen by the caller: its topic, partition, key and
value (None: a tombstone, which deletes the key from a compacted topic such as a changelog)."""

T = TypeVar("T")


class BatchProducer(Protocol):
    """What :class:`RecordSender` uses of aiokafka's ``AIOKafkaProducer``."""

    def create_batch(self) -> Any:
        """An empty record batch, as large as the producer's batches may be (its ``append``
        returns None once full; its ``record_count()`` says how many it holds)."""

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> "asyncio.Future[Any]":
        """Queue a record batch for a partition; its delivery."""

    async def partitions_for(self, topic: str) -> set[int]:
        """The topic's partitions, once its metadata is known."""

    def _partition(
        self,
        topic: str,
        partition: int | None,
        key: object,
        value: object,
        serialized_key: bytes | None,
        serialized_value: bytes | None,
    ) -> int:
        """The partition the producer's partitioner gives a record (its topic's metadata known)."""


class RecordSender:
    """Hands records to the producer as record batches; records of one partition keep their order.

    Each record goes to the partition the producer's own partitioner gives
    its key (the call faust's ``Producer.key_partition`` makes), so a key
    lands where a send of its own would have put it; a record without a key
    gets a partition of its own choosing, as the partitioner gives it. The
    records of each partition go, in order, into as few batches as the
    producer's batch size allows (a record larger than that goes alone).

    An agent that gave up on a send would still have its input event marked
    done, and the alert or dead letter would be lost; so each hand-over is
    retried with backoff until the producer takes it, each try bounded by
    ``timeout`` so a broker that went away cannot stall a try forever, and
    the agent simply stops taking new events meanwhile. A batch the producer
    did not take is sent again whole, and one it took is never sent again
    (one it took and then failed to deliver is logged as lost; the worker's
    producer is idempotent, see :class:`~driftline.streams.app.IdempotentProducer`,
    so a broker away does not fail a batch, only an error no retry cures,
    a message too large say).
    faust flushes the producer before it commits offsets, so an event's
    offset is committed only after what it produced was delivered, or
    reported lost.

    ``producer`` gives the producer at the time of sending (faust starts its
    own after the agents are declared).
    """

    def __init__(
        self,
        producer: Callable[[], BatchProducer],
        *,
        timeout: float,
        on_delivered: Callable[[str, int, int], object] | None = None,
    ) -> None:
        self.producer = producer
        self.timeout = timeout
        self.on_delivered = on_delivered
        """Told ``(topic, partition, offset of its last record)`` of each batch delivered."""

    async def send_all(self, records: Sequence[Record]) -> "list[asyncio.Future[Any]]":
        """Hand every record to the producer; the deliveries of their batches.

        Each delivery is done once the broker has its batch (or the producer
        gave up on it).
        """
        if not records:
            return []
        producer = self.producer()
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        known: dict[tuple[str, bytes], int] = {}
        for topic in dict.fromkeys(topic for topic, _, _ in records):
            await self._retried(partial(producer.partitions_for, topic), topic)
        for topic, key, value in records:
            partition = None if key is None else known.get((topic, key))
            if partition is None:
                partition = producer._partition(topic, None, None, None, key, None)
                if key is not None:
                    known[(topic, key)] = partition
            by_partition.setdefault((topic, partition), []).append((key, value))
        return await self._send_grouped(producer, by_partition)

    async def send_placed(self, records: Sequence[PlacedRecord]) -> "list[asyncio.Future[Any]]":
        """:meth:`send_all` for records whose partition the caller chose (a table's changelog
        goes to the partition of the input it was written for, whatever its key)."""
        if not records:
            return []
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic, partition, key, value in records:
            by_partition.setdefault((topic, partition), []).append((key, value))
        return await self._send_grouped(self.producer(), by_partition)

    async def _send_grouped(
        self,
        producer: BatchProducer,
        by_partition: Mapping[tuple[str, int], Sequence[tuple[bytes | None, bytes | None]]],
    ) -> "list[asyncio.Future[Any]]":
        """Each partition's records, in order, handed over in as few batches as they fit."""
        deliveries = []
        for (topic, partition), pairs in by_partition.items():
            for batch in _batches(producer, pairs):
                count = batch.record_count()
                delivery = await self._hand_over(producer, batch, topic, partition)
                delivery.add_done_callback(partial(_report_undelivered, topic, partition, count))
                if self.on_delivered is not None:
                    delivery.add_done_callback(
                        partial(_tell_delivered, self.on_delivered, topic, partition, count)
                    )
                deliveries.append(delivery)
        return deliveries

    async def _hand_over(
        self, producer: BatchProducer, batch: Any, topic: str, partition: int
    ) -> "asyncio.Future[Any]":
        """Queue one batch, until the producer takes it.

        A try that times out leaves nothing queued: aiokafka waits for room
        before it queues a batch, and queues it without waiting again.
        """
        return await self._retried(
            partial(producer.send_batch, batch, topic, partition=partition), topic
        )

    async def _retried(self, attempt: Callable[[], Awaitable[T]], topic: str) -> T:
        """``attempt()`` until it succeeds, each try bounded by ``timeout``, with backoff between.

        The bound is an ``asyncio.timeout`` in this task, not
        ``asyncio.wait_for``, which runs the call in a task of its own: a
        call that completes at once then returns without a turn of the event loop.
        """
        backoff = 0.5
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    return await attempt()
            except RETRIED_ERRORS as error:
                log.error("sending to %s failed (%r); retrying in %.1f s", topic, error, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def _batches(
    producer: BatchProducer, pairs: Sequence[tuple[bytes | None, bytes | None]]
) -> list[Any]:
    """The keys and values in order, in as few of the producer's record batches as they fit."""
    batches = [producer.create_batch()]
    for key, value in pairs:
        if batches[-1].append(key=key, value=value, timestamp=None) is None:  # full
            batches.append(producer.create_batch())
            batches[-1].append(key=key, value=value, timestamp=None)  # a first record always fits
    return batches


def _tell_delivered(
    tell: Callable[[str, int, int], object],
    topic: str,
    partition: int,
    count: int,
    delivery: "asyncio.Future[Any]",
) -> None:
    """``tell`` where a delivered batch's last record landed (its first's offset, plus)."""
    if delivery.cancelled() or delivery.exception() is not None:
        return
    try:
        tell(topic, partition, int(delivery.result().offset) + count - 1)
    except Exception:  # a callback of the event loop: a bug here must not go unseen
        log.exception("telling where a batch to %s partition %d landed failed", topic, partition)


def _report_undelivered(
    topic: str, partition: int, count: int, delivery: "asyncio.Future[Any]"
) -> None:
    """Say so when the producer took a batch and then failed to deliver it (after its own
    retries): its records are lost, and nothing else would tell."""
    if delivery.cancelled() or delivery.exception() is None:
        return
    log.error(
        "%d records to %s partition %d were not delivered (%r); they are lost: check that the "
        "broker is up and that the topic takes messages this large",
        count,
        topic,
        partition,
        delivery.exception(),
    )
