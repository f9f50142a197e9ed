"""Reading the registry and references topics into a :class:`ModelRegistry`, for a worker.

Each worker reads both compacted topics whole with a consumer of its own
(aiokafka, outside the consumer group), from the beginning and then as they
grow; see :mod:`driftline.agents.registry` for what the messages mean.
"""

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from driftline.agents.registry import ModelRegistry, read_registry_message, registry_max_bytes
from driftline.streams.codecs import Rejection
from driftline.streams.security import aiokafka_security
from driftline.streams.settings import REFERENCE_MAX_BYTES, Settings

log = logging.getLogger(__name__)


class RegistryFollower:
    """Keeps a :class:`ModelRegistry` up to date with the registry topic.

    Reads every partition of the registry and references topics from the
    beginning with a consumer of its own (no consumer group, nothing
    committed), for as long as the worker runs.
    """

    def __init__(self, settings: Settings, registry: ModelRegistry) -> None:
        self.settings = settings
        self.registry = registry
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._next_offsets: dict[TopicPartition, int] = {}
        self._started = asyncio.Event()
        self._progress = asyncio.Event()
        self._synced_at: float | None = None
        self.caught_up = False
        """Whether the topics have been read to their end once (the worker is then ready)."""

    async def run(self) -> None:
        """Follow the topic until cancelled (when the worker stops)."""
        settings = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_server_list,
            client_id=f"{settings.app_id}-registry",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=max(settings.max_message_bytes * 2, REFERENCE_MAX_BYTES * 2),
            max_partition_fetch_bytes=max(settings.max_message_bytes * 2, REFERENCE_MAX_BYTES),
            **aiokafka_security(settings),
        )
        await consumer.start()
        try:
            partitions = [
                partition
                for topic in (settings.models_topic, settings.references_topic)
                for partition in await self._wait_for_partitions(consumer, topic)
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            beginnings = await consumer.beginning_offsets(partitions)
            self._next_offsets = dict(beginnings)
            self._partitions, self._consumer = partitions, consumer
            self._started.set()
            ends = await consumer.end_offsets(partitions)
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for partition, records in batches.items():
                    for record in records:
                        self._apply(partition.topic, record.key, record.value)
                        self._next_offsets[partition] = record.offset + 1
                # Compaction can remove a partition's last records while its end
                # offset stays: the consumer's position (taken after applying)
                # moves past such gaps, the offsets of records read do not.
                for partition in partitions:
                    position = await consumer.position(partition)
                    if position > self._next_offsets.get(partition, 0):
                        self._next_offsets[partition] = position
                if not self.caught_up:
                    self.caught_up = all(self._next_offsets.get(p, 0) >= e for p, e in ends.items())
                self._progress.set()
                self._progress.clear()
        finally:
            self._started.clear()
            await consumer.stop()

    async def sync(self, published_before: float | None = None) -> None:
        """Wait until everything on the topic before ``published_before`` has been read.

        ``published_before`` is a Unix time in seconds (an event's Kafka
        timestamp); when a sync that started after it has already finished,
        nothing is done. Gives up with a warning after the startup timeout.
        """
        if (
            published_before is not None
            and self._synced_at is not None
            and self._synced_at >= published_before
        ):
            return
        timeout = self.settings.startup_timeout_seconds
        try:
            await asyncio.wait_for(self._sync(), timeout=timeout)
        except TimeoutError:
            log.warning("could not read the registry topic to its end within %.0f s", timeout)

    async def _sync(self) -> None:
        await self._started.wait()
        assert self._consumer is not None
        started = time.time()
        ends = await self._consumer.end_offsets(self._partitions)
        while any(self._next_offsets.get(p, 0) < end for p, end in ends.items()):
            await self._progress.wait()
        self._synced_at = started

    def _apply(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        references = topic == self.settings.references_topic
        message = read_registry_message(
            key,
            value,
            max_bytes=registry_max_bytes(self.settings, references),
            references=references,
        )
        if isinstance(message, Rejection):
            log.debug("registry message ignored (dead-lettered by the models agent)")
            return
        self.registry.apply(message)

    async def _wait_for_partitions(
        self, consumer: AIOKafkaConsumer, topic: str
    ) -> list[TopicPartition]:
        while True:
            # The consumer tracks metadata only for the topics it is subscribed
            # to, and this one assigns itself partitions: ask the cluster.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                return [TopicPartition(topic, p) for p in sorted(partitions)]
            log.warning("registry topic %s has no partitions yet; waiting", topic)
            await asyncio.sleep(1.0)
