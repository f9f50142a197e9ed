"""Every message a set of topics holds now, read once from the start to the end.

``driftline report`` draws from what a running system has sent (alerts,
triggers, performance reports). It joins no consumer group, commits
nothing and stops at the end offsets it found when it started, so it takes
nothing away from anyone and never waits for new messages.
"""

import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

POLL_MILLISECONDS = 500


def read_to_end(
    bootstrap_servers: str,
    topics: list[str],
    *,
    timeout: float,
    security: dict[str, Any] | None = None,
) -> Iterator[ConsumerRecord]:
    """The records of ``topics`` from the oldest kept to the end offsets found at the start.

    Topics that do not exist are read as empty. ``timeout`` bounds the wait
    for Kafka at the start and for each poll that brings nothing while
    records are still due.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
        allow_auto_create_topics=False,
        bootstrap_timeout_ms=int(timeout * 1000),
        **(security or {}),
    )
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        due = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
        quiet_since = time.monotonic()
        while due:
            batches = consumer.poll(timeout_ms=POLL_MILLISECONDS)
            if not batches and time.monotonic() - quiet_since > timeout:
                raise TimeoutError(
                    f"no message from {sorted({tp.topic for tp in due})} for {timeout:g} s "
                    "although the end offsets say more are there"
                )
            for tp, records in batches.items():
                quiet_since = time.monotonic()
                for record in records:
                    if record.offset < ends[tp]:
                        yield record
            due = {tp for tp in due if consumer.position(tp) < ends[tp]}
    finally:
        consumer.close()
