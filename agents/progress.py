"""The progress of the input partitions: when each last had a batch processed (a stalled
worker told from a quiet one), and how long batches take."""

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Histogram

from driftline.streams.batching import BatchingConsumer

Partition = tuple[str, int]
"""A topic's name and a partition number."""


class ProgressWatch:
    """Which input partitions have had messages waiting, and for how long without progress.

    :meth:`started` is told of each partition a batch comes from as it is
    taken, and :meth:`processed` once the batch's outputs are sent;
    :meth:`observe` of the partitions with messages waiting to be taken. A
    partition waits while it has messages waiting or a batch in flight, and
    stalls when it has waited, with no batch of it processed, for
    ``stall_seconds``.

    >>> now = [0.0]
    >>> watch = ProgressWatch(60.0, clock=lambda: now[0])
    >>> watch.observe([("predictions", 0)])
    >>> now[0] = 61.0
    >>> watch.observe([("predictions", 0)])
    >>> watch.stalled()
    {('predictions', 0): 61.0}
    >>> watch.processed([("predictions", 0)])
    >>> watch.stalled()
    {}
    """

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._progress: dict[Partition, float] = {}
        self._waiting_since: dict[Partition, float] = {}
        self._in_flight: set[Partition] = set()

    def started(self, partitions: Iterable[Partition]) -> None:
        """A batch of these partitions' messages is taken, to be processed."""
        self._in_flight.update(partitions)

    def processed(self, partitions: Iterable[Partition]) -> None:
        """A batch of these partitions' messages was processed and its outputs sent."""
        now = self.clock()
        for partition in partitions:
            self._progress[partition] = now
            self._in_flight.discard(partition)

    def observe(self, waiting: Iterable[Partition]) -> None:
        """These partitions have messages waiting to be taken now; any other has none."""
        now = self.clock()
        waiting = set(waiting) | self._in_flight
        for partition in waiting:
            self._waiting_since.setdefault(partition, now)
        for partition in self._waiting_since.keys() - waiting:
            del self._waiting_since[partition]

    def stalled(self, since: float | None = None) -> dict[Partition, float]:
        """Each partition stalled, with how long it has waited without progress (seconds).

        ``since`` (on the watch's clock) is the earliest a wait may count
        from: a partition that waited on something else, a broker that did
        not answer say, is given the full ``stall_seconds`` from then on.
        """
        now = self.clock()
        earliest = float("-inf") if since is None else since
        stalled = {}
        for partition, waiting in self._waiting_since.items():
            idle = now - max(waiting, self._progress.get(partition, waiting), earliest)
            if idle >= self.stall_seconds:
                stalled[partition] = idle
        return stalled


BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Buckets of the batch time: a batch should take about ``DRIFTLINE_BATCH_TARGET_SECONDS``."""


def batch_seconds_histogram() -> Histogram:
    """The histogram of batch times by input topic, unregistered (the metrics page adds it)."""
    return Histogram(
        "driftline_batch_seconds",
        "Time an agent took for one batch: decoding, processing and sending its outputs.",
        labelnames=["topic"],
        buckets=BATCH_SECONDS_BUCKETS,
        registry=None,
    )


def input_lags(app: Any, topics: Iterable[str]) -> dict[Partition, int]:
    """Messages of each assigned partition of ``topics`` not yet taken by its agent, by
    (topic, partition): on the broker past what was read, and fetched but waiting. Empty
    without a running consumer (``app`` None in a test)."""
    wanted = frozenset(topics)
    consumer = getattr(app, "consumer", None) if app is not None else None
    lags: dict[Partition, int] = {}
    if isinstance(consumer, BatchingConsumer):
        for tp in sorted(consumer.held()):
            if tp.topic in wanted:
                behind = consumer.lag(tp.topic, tp.partition)
                if behind is not None:
                    lags[tp.topic, tp.partition] = behind
    return lags
