"""A stand-in for aiokafka's producer, as :class:`~driftline.streams.sending.RecordSender` uses it.

It records every batch it takes, in order, refuses or hangs on the tries
it is told to, and delivers each batch it took ``delay`` seconds later
(never, with ``delay=None``), but fails the delivery of the first ``failures``.
"""

import asyncio
import zlib
from typing import Any

PARTITIONS = 4


class FakeBatch:
    """Takes up to ``capacity`` records, and always a first one."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes | None]] = []

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: None) -> object | None:
        if self.records and len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """Partitions a key by its CRC-32, and one without a key round robin."""

    def __init__(
        self,
        *,
        capacity: int = 100,
        delay: float | None = 0.01,
        refusals: int = 0,
        stalls: int = 0,
        failures: int = 0,
    ) -> None:
        self.capacity, self.delay = capacity, delay
        self.refusals, self.stalls, self.failures = refusals, stalls, failures
        self.tries = 0
        self.partitioned = 0
        self.taken: list[tuple[str, int, list[tuple[bytes | None, bytes | None]]]] = []
        """Each batch taken: its topic, partition and records."""
        self.deliveries: list[asyncio.Future[int]] = []
        self._next_unkeyed = 0

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.capacity)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(PARTITIONS))

    def _partition(
        self,
        topic: str,
        partition: int | None,
        key: object,
        value: object,
        serialized_key: bytes | None,
        serialized_value: bytes | None,
    ) -> int:
        self.partitioned += 1
        if serialized_key is None:
            self._next_unkeyed += 1
            return self._next_unkeyed % PARTITIONS
        return zlib.crc32(serialized_key) % PARTITIONS

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> "asyncio.Future[int]":
        self.tries += 1
        if self.stalls:
            self.stalls -= 1
            await asyncio.Event().wait()  # never set: the try hangs
        if self.refusals:
            self.refusals -= 1
            raise OSError("the broker went away")
        self.taken.append((topic, partition, list(batch.records)))
        loop = asyncio.get_running_loop()
        delivery: asyncio.Future[int] = loop.create_future()
        if self.failures:  # taken, then not delivered
            self.failures -= 1
            loop.call_later(self.delay or 0.0, delivery.set_exception, OSError("not delivered"))
        elif self.delay is not None:
            loop.call_later(self.delay, delivery.set_result, len(self.taken))
        self.deliveries.append(delivery)
        return delivery

    def records(self) -> list[tuple[str, int, bytes | None, bytes | None]]:
        """Every record taken, with its topic and partition, in the order taken."""
        return [
            (topic, partition, key, value)
            for topic, partition, records in self.taken
            for key, value in records
        ]
