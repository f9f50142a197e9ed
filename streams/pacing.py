"""Reading two inputs in step: labels no further ahead of predictions than a lead, in Kafka time.

A worker that starts behind (a fresh group, a restart after downtime, a
burst) reads its predictions and labels topics side by side. Labels cost
next to nothing to process and predictions cost much more, so the labels
agent races through its backlog, and every label whose prediction has not
been read yet waits in the label join: with 500,000 labels ahead of their
predictions, that was most of the worker's memory (the 100-model case of
the throughput benchmark). Kafka Streams meets the same problem by always
taking the record with the smallest timestamp among a task's co-partitioned
inputs; :class:`InputPacer` does the same between two agents, partition by
partition (a model's predictions and labels share a partition number, as
the label join needs anyway).

The labels agent asks :meth:`InputPacer.wait_to_follow` before each batch.
It waits while, in some partition of the batch, its earliest timestamp lies
more than ``lead`` seconds past the latest the predictions agent has
processed in that partition, but only while predictions of that partition
are still to be processed (when they are caught up, a label of a
prediction still to come waits in the join, as it must), and at most
``max_wait`` seconds a batch, so labels never stop for good if predictions
do.

>>> import asyncio
>>> pacer = InputPacer(lead=5.0, leader_backlog=lambda partition: True, max_wait=0.05)
>>> pacer.leader_reached({0: 100.0})
>>> asyncio.run(pacer.wait_to_follow({0: 104.0}))  # within the lead: no wait
0.0
>>> asyncio.run(pacer.wait_to_follow({0: 200.0})) > 0.0  # far ahead: waits, here the most it may
True
"""

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterable, Mapping

__all__ = ["InputPacer", "earliest_by_partition", "latest_by_partition"]


class InputPacer:
    """Holds a follower input back until a leader input has come within ``lead`` seconds."""

    def __init__(
        self, *, lead: float, leader_backlog: Callable[[int], bool], max_wait: float
    ) -> None:
        if lead < 0 or max_wait <= 0:
            raise ValueError(
                f"lead must be at least 0 and max_wait positive, got {lead}, {max_wait}"
            )
        self.lead = lead
        self.leader_backlog = leader_backlog
        """Whether the leader still has records of a partition to process (fetched or not)."""
        self.max_wait = max_wait
        self.leader_times: dict[int, float] = {}
        """The latest Kafka timestamp (seconds) the leader processed, by partition."""
        self._moved = asyncio.Event()

    def leader_reached(self, latest: Mapping[int, float]) -> None:
        """The leader processed records up to these timestamps, by partition."""
        times = self.leader_times
        for partition, timestamp in latest.items():
            if timestamp > times.get(partition, -math.inf):
                times[partition] = timestamp
                self._moved.set()

    def ahead(self, partition: int, timestamp: float) -> bool:
        """Whether a follower record of this partition and timestamp must wait now."""
        reached = self.leader_times.get(partition, -math.inf)
        return timestamp > reached + self.lead and self.leader_backlog(partition)

    async def wait_to_follow(self, earliest: Mapping[int, float]) -> float:
        """Wait until follower records from these timestamps on may go; the seconds waited."""
        if not self._any_ahead(earliest):
            return 0.0
        started = time.monotonic()
        deadline = started + self.max_wait
        while self._any_ahead(earliest):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._moved.clear()
            # Woken by the leader's progress; rechecked now and then for its backlog.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._moved.wait(), timeout=min(left, _RECHECK_SECONDS))
        return time.monotonic() - started

    def _any_ahead(self, earliest: Mapping[int, float]) -> bool:
        return any(self.ahead(partition, stamp) for partition, stamp in earliest.items())


_RECHECK_SECONDS = 0.1
"""How often a waiting follower looks again whether the leader still has a backlog."""


def earliest_by_partition(records: Iterable[tuple[int, float]]) -> dict[int, float]:
    """The smallest timestamp of each partition among ``(partition, timestamp)`` pairs."""
    earliest: dict[int, float] = {}
    for partition, timestamp in records:
        if timestamp < earliest.get(partition, math.inf):
            earliest[partition] = timestamp
    return earliest


def latest_by_partition(records: Iterable[tuple[int, float]]) -> dict[int, float]:
    """The largest timestamp of each partition among ``(partition, timestamp)`` pairs."""
    latest: dict[int, float] = {}
    for partition, timestamp in records:
        if timestamp > latest.get(partition, -math.inf):
            latest[partition] = timestamp
    return latest
