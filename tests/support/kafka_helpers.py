"""Helpers for tests that read what a worker did on a real broker."""

import json
import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from driftline.streams.topics import end_offsets


def read_all(bootstrap_servers: str, topic: str, *, idle_ms: int = 2_000) -> list[bytes | None]:
    """Every message value on ``topic``, from the beginning, in partition order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        return [record.value for record in consumer]
    finally:
        consumer.close()


def committed_offsets(bootstrap_servers: str, group: str, topic: str) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic``, per partition."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def wait_until_caught_up(
    bootstrap_servers: str, group: str, topic: str, *, timeout: float = 120.0
) -> None:
    """Wait until ``group`` has committed every message of ``topic``."""
    target = {p: o for p, o in end_offsets(bootstrap_servers, topic).items() if o > 0}
    deadline = time.monotonic() + timeout
    committed: dict[int, int] = {}
    while time.monotonic() < deadline:
        try:
            committed = committed_offsets(bootstrap_servers, group, topic)
        except KafkaError:  # e.g. the group coordinator is still starting
            committed = {}
        if all(committed.get(p, -1) >= o for p, o in target.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"group {group} did not catch up: committed {committed}, end {target}")


def group_assignments(bootstrap_servers: str, group: str, topic: str) -> list[set[int]]:
    """The partitions of ``topic`` each member of ``group`` holds, once the group is stable."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        description = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if description["group_state"] != "Stable":
        return []
    return [
        {
            partition
            for assigned in member["member_assignment"]["assigned_partitions"]
            if assigned["topic"] == topic
            for partition in assigned["partitions"]
        }
        for member in description["members"]
    ]


def named_after(suffix: str) -> dict[str, str]:
    """A consumer group (app id) and every topic of the worker, named for one test alone."""
    topics = [
        "predictions",
        "features",
        "labels",
        "models",
        "references",
        "alerts",
        "retrain_triggers",
        "performance",
        "dead_letters",
        "summaries",
    ]
    names = {f"{topic}_topic": f"{topic.replace('_', '-')}-{suffix}" for topic in topics}
    return {"app_id": f"test-{suffix}", **names}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a worker's web server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_status(web_port: int) -> dict[str, Any]:
    """The ``/status`` report of the worker whose web server listens on ``web_port``."""
    url = f"http://127.0.0.1:{web_port}/status"
    with urllib.request.urlopen(url, timeout=5) as response:
        return dict(json.loads(response.read()))


def wait_for_worker(
    web_port: int,
    worker: Any,
    done: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 180.0,
    interval: float = 0.5,
) -> dict[str, Any]:
    """Poll a running worker's ``/status`` until ``done(report)``; the report that satisfied it.

    Polled every ``interval`` seconds: a test that must act soon after the worker gets
    somewhere (kill it there, say) polls more often. Fails with the worker's log if it
    exits or ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert worker.running, worker.log_text()
        try:
            report = worker_status(web_port)
        except OSError:  # the web server is not up yet
            report = {}
        if report and done(report):
            return report
        time.sleep(interval)
    raise AssertionError(f"the worker did not get there: {report}\n{worker.log_text()}")
