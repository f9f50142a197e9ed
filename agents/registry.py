"""The model registry as every worker sees it: all specs, read from their topic.

Every worker needs the spec of every model version whose events it may get,
and partitions move between workers, so each worker reads the whole
compacted registry topic itself, outside the consumer group, from the
beginning and then as it grows. A separate agent in the group reads the same
topic once per group to dead-letter invalid registrations.

Specs and events travel on different topics, so a prediction can reach a
worker before the spec registered just ahead of it. Before calling a model
unknown, the agents ask :meth:`RegistryFollower.sync` to read everything
published to the registry up to the event's Kafka timestamp.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from driftline.schemas import DeadLetterReason, ModelSpec
from driftline.streams import Rejection
from driftline.streams.codecs import decode
from driftline.streams.settings import Settings

log = logging.getLogger(__name__)

ModelKey = tuple[str, str]
"""A model id and version."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A model version's spec, registered or replaced."""

    spec: ModelSpec

    @property
    def model(self) -> ModelKey:
        """The model id and version registered."""
        return (self.spec.model_id, self.spec.model_version)


@dataclass(frozen=True, slots=True)
class Unregistration:
    """A tombstone: the model version is no longer registered."""

    model: ModelKey


RegistryMessage = Registration | Unregistration


def read_registry_message(
    key: bytes | None, value: bytes | None, *, max_bytes: int
) -> RegistryMessage | Rejection:
    """What one message on the registry topic says; never raises.

    The key must be the spec's :func:`~driftline.schemas.registry_key` (as
    parsed JSON: spacing and escapes may differ): compaction keeps the last
    message per key, so a spec under another key would survive its own
    unregistration.

    >>> read_registry_message(b'["churn","3"]', None, max_bytes=1024)
    Unregistration(model=('churn', '3'))
    >>> read_registry_message(b'churn', None, max_bytes=1024).reason
    <DeadLetterReason.INVALID_SPEC: 'invalid_spec'>
    """
    model = _model_of_key(key)
    if value is None:
        if model is None:
            return Rejection(
                DeadLetterReason.INVALID_SPEC,
                "a tombstone on the registry topic must carry the key of the model version it "
                'unregisters, a JSON array such as ["churn","3"]',
            )
        return Unregistration(model)
    spec = decode(ModelSpec, value, max_bytes=max_bytes)
    if isinstance(spec, Rejection):
        return spec
    expected = spec.registry_key()
    if model != (spec.model_id, spec.model_version):
        shown = "no key" if key is None else f"key {key.decode('utf-8', errors='replace')!r}"
        return Rejection(
            DeadLetterReason.INVALID_SPEC,
            f"the spec of model {spec.model_id} version {spec.model_version} was published with "
            f"{shown}; publish it under {expected.decode()} so that compaction keeps the "
            "latest spec of each version",
        )
    return Registration(spec)


def _model_of_key(key: bytes | None) -> ModelKey | None:
    if key is None:
        return None
    try:
        parsed = json.loads(key)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, list) and len(parsed) == 2 and all(isinstance(p, str) for p in parsed):
        return (parsed[0], parsed[1])
    return None


class ModelRegistry:
    """The specs of the registered model versions, by model id and version.

    ``on_change`` is called with the model id and version whenever a spec is
    registered, replaced or unregistered, so state kept for the old spec can
    be dropped.
    """

    def __init__(self, on_change: Callable[[ModelKey], None] | None = None) -> None:
        self.on_change = on_change
        self._specs: dict[ModelKey, ModelSpec] = {}
        self._versions: dict[str, set[str]] = {}

    def apply(self, message: RegistryMessage) -> None:
        """Take one registration or unregistration into account."""
        model = message.model
        if isinstance(message, Registration):
            if self._specs.get(model) == message.spec:
                return
            self._specs[model] = message.spec
            self._versions.setdefault(model[0], set()).add(model[1])
            log.info("model %s version %s registered", *model)
        else:
            if self._specs.pop(model, None) is None:
                return
            versions = self._versions[model[0]]
            versions.discard(model[1])
            if not versions:
                del self._versions[model[0]]
            log.info("model %s version %s unregistered", *model)
        if self.on_change is not None:
            self.on_change(model)

    def spec(self, model_id: str, model_version: str) -> ModelSpec | None:
        """The spec of one model version, or None when it is not registered."""
        return self._specs.get((model_id, model_version))

    def has_model(self, model_id: str) -> bool:
        """Whether any version of this model is registered."""
        return model_id in self._versions

    def __len__(self) -> int:
        return len(self._specs)


class RegistryFollower:
    """Keeps a :class:`ModelRegistry` up to date with the registry topic.

    Reads every partition from the beginning with a consumer of its own (no
    consumer group, nothing committed), for as long as the worker runs.
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

    async def run(self) -> None:
        """Follow the topic until cancelled (when the worker stops)."""
        settings = self.settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_server_list,
            client_id=f"{settings.app_id}-registry",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=max(settings.max_message_bytes * 2, 4 * 1024 * 1024),
            max_partition_fetch_bytes=max(settings.max_message_bytes * 2, 1024 * 1024),
        )
        await consumer.start()
        try:
            partitions = await self._wait_for_partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            beginnings = await consumer.beginning_offsets(partitions)
            self._next_offsets = dict(beginnings)
            self._partitions, self._consumer = partitions, consumer
            self._started.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for partition, records in batches.items():
                    for record in records:
                        self._apply(record.key, record.value)
                        self._next_offsets[partition] = record.offset + 1
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

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        message = read_registry_message(key, value, max_bytes=self.settings.max_message_bytes)
        if isinstance(message, Rejection):
            log.debug("registry message ignored (dead-lettered by the models agent)")
            return
        self.registry.apply(message)

    async def _wait_for_partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self.settings.models_topic
        while True:
            # The consumer tracks metadata only for the topics it is subscribed
            # to, and this one assigns itself partitions: ask the cluster.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                return [TopicPartition(topic, p) for p in sorted(partitions)]
            log.warning("registry topic %s has no partitions yet; waiting", topic)
            await asyncio.sleep(1.0)
