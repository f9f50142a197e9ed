"""Summaries from many partitions, put back in the order of their events' times.

The first stages of a version keyed by event id run on several workers,
and do not keep pace with each other: one started later, one was handed
partitions by a rebalance and reads them again from their last commit, one
has a backlog. Their summaries then reach the second stage out of the
order of the events they summarise, minutes of event time apart; taken in
that order, a warm-up reference would mix events from before and after a
change, and a test would see a change come, go and come again.

:class:`SummaryAligner` holds each summary until every partition the
version's events spread over has sent one as late (a watermark, the
earliest of the partitions' latest event times), and lets them go in the
order of their last events' times, each partition's in its own order. A
partition that sends nothing (a stopped worker, no traffic) would hold the
rest for ever, so at most ``held`` summaries wait: past that, the earliest
goes. A summary that ends at or before the last offset seen from its
partition was seen already (a batch summarised again after a restart) and
is dropped.

>>> from datetime import UTC, datetime
>>> from driftline.schemas import KafkaPosition
>>> def summary(partition, offset, second):
...     time = datetime(2026, 1, 1, 0, 0, second, tzinfo=UTC)
...     return VersionSummary(model_id="m", model_version="1", events=1, checked=1, spread=2,
...         source=KafkaPosition(topic="p", partition=partition, offset=offset),
...         last_offset=offset, first_event_time=time, last_event_time=time, last_event_id="e")
>>> aligner = SummaryAligner(held=8)
>>> [s.source.offset for s in aligner.offer(summary(0, 10, 5))]  # partition 1 not heard yet
[]
>>> [s.source.offset for s in aligner.offer(summary(0, 11, 9))]
[]
>>> [s.source.offset for s in aligner.offer(summary(1, 3, 7))]  # both past second 5, 7
[10, 3]
>>> aligner.offer(summary(1, 3, 7)) is None  # sent again
True
"""

import heapq
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftline.monitors.state import State
from driftline.schemas.summaries import VersionSummary

HELD_PER_PARTITION = 4
"""Summaries held at most per partition the version spreads over, by default."""

Source = tuple[str, int]
"""A summary's source: its events' topic and partition."""


class SummaryAligner:
    """Lets a version's summaries go in the order of their events' times (see the module).

    Parameters
    ----------
    held
        Summaries held at most; None for ``per_partition`` per partition the
        summaries say their version spreads over.
    per_partition
        Summaries held at most per partition, when ``held`` is None.
    """

    def __init__(self, held: int | None = None, *, per_partition: int = HELD_PER_PARTITION) -> None:
        if held is not None and held < 0:
            raise ValueError(f"held must be a count, got {held!r}")
        if per_partition < 1:
            raise ValueError(f"per_partition must be a positive count, got {per_partition!r}")
        self.held = held
        self.per_partition = per_partition
        self._waiting: dict[Source, list[VersionSummary]] = {}
        """Per source, its summaries held, in its order."""
        self._latest: dict[Source, datetime] = {}
        """Per source, the last event time of its latest summary."""
        self._seen: dict[Source, int] = {}
        """Per source, the last offset of its latest summary."""
        self._spread = 1

    def offer(self, summary: VersionSummary) -> list[VersionSummary] | None:
        """Take one summary; the summaries it lets go, in order (None if it was seen already)."""
        source = (summary.source.topic, summary.source.partition)
        if summary.last_offset <= self._seen.get(source, -1):
            return None
        self._seen[source] = summary.last_offset
        self._latest[source] = max(
            self._latest.get(source, summary.last_event_time), summary.last_event_time
        )
        self._spread = max(self._spread, summary.spread)
        self._waiting.setdefault(source, []).append(summary)
        return self._release()

    def flush(self) -> list[VersionSummary]:
        """Let every summary held go, in order (the version's summaries end here)."""
        return self._release(everything=True)

    def _release(self, everything: bool = False) -> list[VersionSummary]:
        """The held summaries the watermark, or the bound, lets go, in order."""
        watermark = self.watermark
        limit = self.held if self.held is not None else self.per_partition * self._spread
        heads = [(queue[0].last_event_time, source) for source, queue in self._waiting.items()]
        heapq.heapify(heads)
        count = sum(map(len, self._waiting.values()))
        going: list[VersionSummary] = []
        while heads:
            time, source = heads[0]
            due = watermark is not None and time <= watermark
            if not (everything or due or count > limit):
                break
            heapq.heappop(heads)
            queue = self._waiting[source]
            going.append(queue.pop(0))
            count -= 1
            if queue:
                heapq.heappush(heads, (queue[0].last_event_time, source))
            else:
                del self._waiting[source]
        return going

    @property
    def watermark(self) -> datetime | None:
        """The earliest of the partitions' latest event times, once every partition has sent a
        summary (None before): no partition sends an earlier event after it, unless it goes
        back (a restart)."""
        topics = {topic for topic, _ in self._latest}
        if not self._latest or len(self._latest) < self._spread * len(topics):
            return None
        return min(self._latest.values())

    @property
    def waiting(self) -> int:
        """How many summaries are held."""
        return sum(map(len, self._waiting.values()))

    def to_state(self) -> State:
        """What is held and seen, as plain JSON-ready data."""
        return {
            "held": self.held,
            "per_partition": self.per_partition,
            "spread": self._spread,
            "sources": [
                {
                    "topic": topic,
                    "partition": partition,
                    "seen": self._seen[(topic, partition)],
                    "latest": self._latest[(topic, partition)].isoformat(),
                    "waiting": [
                        s.model_dump_json() for s in self._waiting.get((topic, partition), [])
                    ],
                }
                for topic, partition in self._seen
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "SummaryAligner":
        """The aligner :meth:`to_state` described, going on exactly where it was."""
        aligner = cls(
            held=state["held"], per_partition=int(state.get("per_partition", HELD_PER_PARTITION))
        )
        aligner._spread = int(state["spread"])
        for entry in state["sources"]:
            source = (str(entry["topic"]), int(entry["partition"]))
            aligner._seen[source] = int(entry["seen"])
            aligner._latest[source] = datetime.fromisoformat(entry["latest"])
            waiting = [VersionSummary.model_validate_json(s) for s in entry["waiting"]]
            if waiting:
                aligner._waiting[source] = waiting
        return aligner
