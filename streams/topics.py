"""Create the topics driftline reads and writes, before anything uses them.

A broker that creates topics on first use picks its own partition count,
and the worker's scale-out depends on that count, so the worker creates its
topics explicitly at start-up. Input topics that carry events keyed by
model id get the configured partitions (and so are co-partitioned: one
worker gets a model's predictions, features and labels). The registry and
references topics are compacted, so they keep the latest spec and reference
profile of every model version for ever, and have one partition each, so
changes keep their order. The summaries topic, internal, carries the
summaries of batches of models keyed by event id to the worker that tests
each version (keyed by version, so each version's summaries are in order).

The changelog topics of the worker's tables are created here too, as faust
would create them (compacted, partitioned like the inputs): a worker that
creates one as it starts may have its group assigned by a leader whose
metadata does not have it yet, and faust then leaves the table's partitions
to no one, so that no worker reads the table back after a rebalance.
"""

import logging
from dataclasses import dataclass, field

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from driftline.streams.security import kafka_python_security
from driftline.streams.settings import REFERENCE_MAX_BYTES, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """How one topic is to be created."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


TABLES = {"label-join": None, "version-state": REFERENCE_MAX_BYTES}
"""The worker's tables, by name, with the largest message each changelog takes (None: the
broker's default)."""


def changelog_topic(settings: Settings, table: str) -> str:
    """The changelog topic faust gives a table of the worker.

    >>> changelog_topic(Settings(app_id="driftline"), "label-join")
    'driftline-label-join-changelog'
    """
    return f"{settings.app_id}-{table}-changelog"


def topic_plans(settings: Settings) -> list[TopicPlan]:
    """Every topic a worker consumes from or produces to, as it should be created.

    Each topic the worker reads takes the largest message the worker accepts
    from it (``Settings.input_topic_max_bytes``; a reference profile on the
    references topic), and the dead-letters topic the largest dead letter: a
    message the broker refused would be lost without a trace on Kafka.
    """
    inputs = {"max.message.bytes": str(settings.input_topic_max_bytes)}  # copied per plan
    events = [settings.predictions_topic, settings.features_topic, settings.labels_topic]
    outputs = [settings.alerts_topic, settings.retrain_triggers_topic, settings.performance_topic]
    plans = [TopicPlan(name, settings.topic_partitions, dict(inputs)) for name in events]
    plans += [TopicPlan(name, settings.topic_partitions) for name in outputs]
    plans.append(
        TopicPlan(
            settings.dead_letters_topic,
            settings.topic_partitions,
            {"max.message.bytes": str(settings.dead_letter_max_bytes)},
        )
    )
    plans.append(TopicPlan(settings.summaries_topic, settings.topic_partitions, dict(inputs)))
    plans.append(TopicPlan(settings.models_topic, 1, {"cleanup.policy": "compact", **inputs}))
    references = max(REFERENCE_MAX_BYTES, settings.input_topic_max_bytes)
    plans.append(
        TopicPlan(
            settings.references_topic,
            1,
            {"cleanup.policy": "compact", "max.message.bytes": str(references)},
        )
    )
    for table, largest in TABLES.items():
        config = {"cleanup.policy": "compact"}
        if largest is not None:
            config["max.message.bytes"] = str(largest)
        plans.append(TopicPlan(changelog_topic(settings, table), settings.topic_partitions, config))
    return plans


def worker_topics(settings: Settings) -> list[str]:
    """The names of the topics a worker consumes from or produces to."""
    return [plan.name for plan in topic_plans(settings)]


def ensure_topics(settings: Settings) -> list[str]:
    """Create each missing topic as planned; return the names of those created.

    Existing topics are left as they are; one whose partition count differs
    from the plan is reported in the log, since it still works but caps how
    many workers can share the load.
    """
    plans = {plan.name: plan for plan in topic_plans(settings)}
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_server_list,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(settings.send_timeout_seconds * 1000),
        bootstrap_timeout_ms=int(settings.startup_timeout_seconds * 1000),
        **kafka_python_security(settings),
    )
    try:
        existing = set(admin.list_topics())
        created = []
        for plan in plans.values():
            if plan.name in existing:
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            plan.name,
                            num_partitions=plan.partitions,
                            replication_factor=settings.topic_replication_factor,
                            topic_configs=plan.config,
                        )
                    ]
                )
                created.append(plan.name)
            except TopicAlreadyExistsError:  # another worker was faster
                pass
        for description in admin.describe_topics([name for name in plans if name in existing]):
            count = len(description.get("partitions", []))
            wanted = plans[description["name"]].partitions
            if count and count != wanted:
                log.warning(
                    "topic %s has %d partitions, not the planned %d",
                    description["name"],
                    count,
                    wanted,
                )
        return created
    finally:
        admin.close()


def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """The next offset to be written, per partition of ``topic``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()
