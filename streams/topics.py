"""Create the topics driftline reads and writes, before anything uses them.

A broker that creates topics on first use picks its own partition count,
and the worker's scale-out depends on that count, so the worker creates its
topics explicitly at start-up with the configured partitions.
"""

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from driftline.streams.settings import Settings

log = logging.getLogger(__name__)


def worker_topics(settings: Settings) -> list[str]:
    """The topics a worker consumes from or produces to."""
    return [settings.predictions_topic, settings.alerts_topic, settings.dead_letters_topic]


def ensure_topics(settings: Settings) -> list[str]:
    """Create each missing topic with the configured partitions; return those created.

    Existing topics are left as they are; one whose partition count differs
    from the setting is reported in the log, since it still works but caps
    how many workers can share the load.
    """
    wanted = worker_topics(settings)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_server_list,
        client_id=f"{settings.app_id}-admin",
        request_timeout_ms=int(settings.send_timeout_seconds * 1000),
        bootstrap_timeout_ms=int(settings.startup_timeout_seconds * 1000),
    )
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        created = []
        for name in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor,
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:  # another worker was faster
                pass
        for description in admin.describe_topics([n for n in wanted if n in existing]):
            count = len(description.get("partitions", []))
            if count and count != settings.topic_partitions:
                log.warning(
                    "topic %s has %d partitions, not the configured %d",
                    description["topic"],
                    count,
                    settings.topic_partitions,
                )
        return created
    finally:
        admin.close()
