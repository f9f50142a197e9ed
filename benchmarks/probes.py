"""What the throughput benchmark reads from outside a process: /proc, Kafka offsets, /status.

Kept apart from the measurements so each path's code says what it times,
not how a figure is fetched.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from driftline.streams.settings import Settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (``utime + stime`` of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def resident_bytes(pid: int) -> int:
    """A process's resident memory now (``VmRSS`` of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a worker's web server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker_status(web_port: int) -> dict[str, Any] | None:
    """The worker's ``/status`` report, or None while its web server is not answering."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/status", timeout=2) as answer:
            return dict(json.loads(answer.read()))
    except (OSError, ValueError):
        return None


def settled(report: dict[str, Any] | None, topic: str = "predictions") -> int | None:
    """Messages of an input topic that ended processed, dead-lettered or counted as duplicates."""
    if report is None:
        return None
    counts = report.get("topics", {}).get(topic)
    if counts is None:
        return 0
    return int(counts["processed"]) + int(counts["dead_lettered"]) + int(counts["duplicates"])


class GroupProbe:
    """Reads a consumer group's committed offsets and members, over one admin connection."""

    def __init__(self, bootstrap_servers: str, group: str) -> None:
        self.group = group
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)

    def committed(self, topic: str) -> dict[int, int]:
        """The offsets the group has committed on ``topic``, per partition (none yet: empty)."""
        try:
            offsets = self._admin.list_group_offsets(self.group).get(self.group, {})
        except KafkaError:  # e.g. the group coordinator is still loading
            return {}
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    def caught_up(self, topic: str, ends: dict[int, int]) -> bool:
        """Whether the group has committed every message ``ends`` counts on ``topic``."""
        committed = self.committed(topic)
        return all(committed.get(p, -1) >= end for p, end in ends.items() if end > 0)

    def holds(self, topic: str) -> set[int]:
        """The partitions of ``topic`` the group's members hold, once the group is stable."""
        try:
            description = self._admin.describe_groups([self.group])[self.group]
        except (KafkaError, KeyError):
            return set()
        if description["group_state"] != "Stable":
            return set()
        return {
            partition
            for member in description["members"]
            for assigned in member["member_assignment"]["assigned_partitions"]
            if assigned["topic"] == topic
            for partition in assigned["partitions"]
        }

    def close(self) -> None:
        self._admin.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def own_topics(prefix: str) -> dict[str, str]:
    """Every ``*_topic`` setting named ``<prefix>-<what>``, so a run never shares a topic."""
    return {
        field: f"{prefix}-{field.removesuffix('_topic')}"
        for field in Settings.model_fields
        if field.endswith("_topic")
    }
