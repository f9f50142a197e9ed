"""The faust app factory: one configured app and the topics it uses."""

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer as AIOKafkaFaustProducer
from faust.types import TopicT

from driftline.streams.batching import install_batching_transport
from driftline.streams.faust_fixes import fix_recovery
from driftline.streams.security import faust_credentials
from driftline.streams.settings import REFERENCE_MAX_BYTES, Settings

FRAMEWORK_LOGGERS = ("aiokafka", "faust", "mode", "kafka")
"""Loggers of the Kafka stack, which log per record at DEBUG."""

FETCH_BYTES_PER_PARTITION = 1024 * 1024
"""Most bytes a fetch brings of one partition, about a batch of 500-byte events (a larger
message still comes whole: the broker sends a first message over the limit as it is).

aiokafka fetches a partition again only once every record of its last
fetch has been polled, and the worker polls between its batches, at most a
batch a poll. With 2 MiB, a fetch brought two batches and a tail, and the
fetch after it went out only once the tail was polled: the agent, left with
the tail, waited for it, 20-40 ms about every other batch. With 1 MiB, a
poll takes a fetch at once, and the next one is fetched while the batch is
processed: the one-model throughput run took 25,133 and 26,074 events/s
against 22,824 and 22,125 with 2 MiB (two runs each, one after the other;
with the fetch task's shorter sleep, ``FETCHER_WAKE_SECONDS`` in
``driftline.streams.batching``, against neither change, two alternated
rounds of two runs: 23,769, 23,715, 23,422 and 21,865 against 21,713,
17,776, 19,866 and 23,190). Memory falls too: the consumer keeps a
fetch's bytes and records until they are polled, a fetch per partition of
every input topic. With 100 models behind, a worker at
300,000 predictions had peaked at 533 and 544 MiB with 4 MiB a partition,
at 444 and 467 MiB with 2 MiB.
"""


@dataclass(frozen=True, slots=True)
class DriftlineApp:
    """A faust app with driftline's topics declared on it.

    Topics carry raw bytes both ways: agents validate input themselves (a
    faust deserializer that raised would drop the event silently) and write
    JSON they serialized from schema objects.
    """

    app: faust.App
    settings: Settings
    predictions: TopicT
    features: TopicT
    labels: TopicT
    models: TopicT
    references: TopicT
    summaries: TopicT
    alerts: TopicT
    retrain_triggers: TopicT
    performance: TopicT
    dead_letters: TopicT


def create_app(settings: Settings) -> DriftlineApp:
    """Build the faust app for these settings; agents are registered on it after.

    The web server binds 127.0.0.1 by default and never serves table contents,
    routing or statistics: faust's defaults (all interfaces, table views on)
    would expose a worker's state to anyone who can reach it, and faust's own
    views know nothing of ``DRIFTLINE_WEB_TOKEN`` (its index, ``{"status":
    "OK"}``, stays, unless the worker's status page takes ``/``).

    Tuned for throughput (``benchmarks/faust_overhead.py`` measures it):
    faust's repaired Cython stream iterator (``cython_optimizations``),
    fetches of up to 1 MiB a partition (:data:`FETCH_BYTES_PER_PARTITION`),
    polls of at most ``batch_max_events`` records (faust's default takes all
    that was fetched, every partition's, and the consumer turns each record
    into two Python objects at once: with 100 models behind, a worker held
    ~100,000 of them, and ended 400,000 predictions at 429 MiB instead of
    371),
    the batching consumer that lets agents read whole fetches through
    :func:`driftline.streams.batching.take_batches`, and the Kafka stack's
    loggers never below INFO, so no per-record DEBUG record is ever built.
    ``stream_wait_empty`` stays on: a rebalance waits for the batches in
    progress, whose offsets are committed only once processed.
    """
    fix_recovery()
    quiet_framework_loggers()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the app's folder
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=faust_credentials(settings),
        store=f"{settings.table_store}://",
        # A folder per app id: the tables' databases of another app (a replay under its own
        # group, say) hold offsets of other changelogs, which faust would refuse to recover.
        datadir=str(settings.data_dir / settings.app_id),
        autodiscover=False,
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_router_enabled=False,  # faust's own views know no token: only a bare index stays
        web_stats_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        # the largest message a worker sends: a dead letter, or a version's state (as large
        # as a reference profile: the state table's changelog takes as much)
        producer_max_request_size=max(settings.dead_letter_max_bytes, REFERENCE_MAX_BYTES),
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.session_timeout_seconds / 3,
        broker_max_poll_records=settings.batch_max_events,
        producer_acks=-1,
        producer_request_timeout=settings.send_timeout_seconds,
        cython_optimizations=True,
    )
    install_batching_transport(app)
    app.transport.Producer = IdempotentProducer  # type: ignore[misc]  # this app's alone
    return DriftlineApp(
        app=app,
        settings=settings,
        predictions=_raw_topic(app, settings.predictions_topic),
        features=_raw_topic(app, settings.features_topic),
        labels=_raw_topic(app, settings.labels_topic),
        models=_raw_topic(app, settings.models_topic),
        references=_raw_topic(app, settings.references_topic),
        summaries=_raw_topic(app, settings.summaries_topic),
        alerts=_raw_topic(app, settings.alerts_topic),
        retrain_triggers=_raw_topic(app, settings.retrain_triggers_topic),
        performance=_raw_topic(app, settings.performance_topic),
        dead_letters=_raw_topic(app, settings.dead_letters_topic),
    )


class IdempotentProducer(AIOKafkaFaustProducer):
    """faust's aiokafka producer, idempotent: a batch is retried until the broker takes it.

    Without idempotence, aiokafka gives up on a batch once it is older than
    the request timeout (``DRIFTLINE_SEND_TIMEOUT_SECONDS``) and fails it:
    with the broker paused for 30 s, a worker lost a record of a version's
    state on its way to the changelog ("were not delivered
    (RequestTimedOutError()); they are lost"), and faust, which only waits
    for the producer to be done before it commits, committed the offsets
    of the events that state reflected; an alert would be lost the same
    way. An idempotent producer never expires a batch, and its sequence
    numbers keep a retried batch from landing twice or out of order
    (aiokafka's ``Sender._can_retry``). Until the broker is back, sends
    wait: commits wait with them (they flush the producer first), and a
    stop past ``DRIFTLINE_SHUTDOWN_TIMEOUT_SECONDS`` ends the worker hard,
    its uncommitted events read again after its restart.

    One way to expire a batch is left even then: a batch older than the
    request timeout, waiting for a partition that has no leader, is failed
    (``NotLeaderForPartitionError``, ``LeaderNotAvailableError``:
    aiokafka's ``MessageAccumulator.drain_by_nodes``). A KRaft broker
    paused past its heartbeats fences itself for a moment when it resumes,
    so its partitions have no leader then: after a 180 s pause, a worker
    lost a batch that way. Its batches here never expire (their time to
    live is infinite): they wait for the leader as they wait for the broker.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        producer = super()._new_producer(transactional_id)
        producer._message_accumulator._batch_ttl = math.inf
        return producer


def kafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under a started app's producer: the one faust flushes before it
    commits offsets, so what is queued on it is delivered before its inputs are committed."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def quiet_framework_loggers() -> None:
    """Keep the Kafka stack's loggers at INFO or above, even in a debug run.

    aiokafka and faust log every fetched record at DEBUG; at that level each
    record would cost several log records built and mostly dropped. A
    logger already at WARNING or above keeps its level.
    """
    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # NOTSET (0) included: it would inherit DEBUG
            logger.setLevel(logging.INFO)


def _raw_topic(app: faust.App, name: str) -> TopicT:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
