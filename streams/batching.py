"""Batch consumption for agents: whole fetched batches, acked only once processed.

Why not faust's own batching. faust hands every record to its agents one by
one: for each record its fetch loop creates four asyncio tasks
(``Service.wait_first`` around the conductor's callback), puts an event on
the agent's queue, and the stream takes it off again, calls the sensors and
acks it. That costs about 90-100 µs of CPU per record on this kind of
machine, against ~6 µs for aiokafka's ``getmany`` and an orjson decode, and
``stream.take()`` / ``take_events()`` only batch after that per-record path.
They are not at-least-once either: they ack the buffered events in a
``finally`` around their ``yield``, so a batch the agent failed on (an
exception, a cancellation) is acked all the same and its offsets committed.
``noack()`` plus ``stream.ack(event)`` would be at-least-once but keeps the
per-record cost.

What this does instead. :class:`BatchingConsumer` is faust's aiokafka
consumer with one change in its fetch loop (``_drain_messages``): records of
a topic read through :func:`take_batches` skip the conductor and are put, a
fetched batch at a time, on that topic's :class:`RecordFeed`. A full feed
never blocks that loop: its partitions are taken out of fetching, as faust
does for a full stream buffer, so one slow topic never starves another.
A seek to the committed offsets (after a rebalance) waits for a fetch in progress to
set its read offsets (the loop waits for a stopped flow without holding that step
up), and records fetched before it are fetched again, not delivered.
Everything else stays faust's: the same consumer joins the group, its rebalance
listener, table recovery and the changelogs run unchanged, other topics go
through the conductor as before, read offsets and gaps are tracked the same
way, and offsets are committed by faust's commit loop (every
``broker_commit_interval`` and on rebalance and shutdown) from the same
bookkeeping as ``consumer.ack`` (:meth:`BatchingConsumer.ack_batch` does
it for a batch at once), so only offsets of acked records, up to the
first unacked one, are ever committed.

What it guarantees. :func:`take_batches` yields lists of faust
:class:`~faust.types.Message` (``topic``, ``partition``, ``offset``,
``key``, ``value``, ``timestamp`` in seconds, ``headers``; raw bytes, no
faust deserialization). It acks a batch only when the caller asks for the
next one, so a batch is committed only after the loop body that processed
it, including every send it awaited, has finished: at-least-once. A worker
killed mid-batch reads the batch again after its restart. If the caller
leaves the loop without asking for the next batch (an exception, a break, a
cancellation), that batch is not acked: commits stop before it until the
partition is assigned again (a restart or a rebalance), which delivers it
again. Messages fetched before a rebalance are dropped, never yielded, as
faust's streams drop them; they are fetched again from the committed
offsets.

What it costs. A topic read through ``take_batches`` can have no other
reader in the app (the conductor no longer sees its records), faust's
per-event sensors (the Monitor's event counts and times) do not count its
records, and the consumer is no longer faust's stock class, so a faust
upgrade must be checked against the copied fetch loop and ``getmany``
(``tests/streams/test_batching.py`` runs them against a real broker,
including a kill -9 and restart).
"""

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer as AIOKafkaClient
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP, AppT, Message, StreamT
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from driftline.streams.busy import AgentClock

logger = logging.getLogger(__name__)


class RecordFeed:
    """Fetched records of some topics, waiting in fetch order for :func:`take_batches`.

    Bounded without blocking the fetch loop: once ``maxsize`` records wait
    here, ``on_full`` is called with the partitions they came from (the
    consumer then stops fetching those, as faust does for a full stream
    buffer), and ``on_drop`` once fewer than half wait again. A put is never
    refused, so the overshoot is at most what one fetch brought. The fetch
    loop serves all of the app's topics; waiting on one full feed would starve
    the others (a labels agent held back would stall the predictions it waits
    for). Registered with faust's flow control, which clears it on a
    rebalance, as it clears the agents' queues.
    """

    def __init__(
        self,
        topics: frozenset[str],
        maxsize: int,
        *,
        on_full: Callable[[set[TP]], None] = lambda partitions: None,
        on_drop: Callable[[set[TP]], None] = lambda partitions: None,
    ) -> None:
        self.topics = topics
        self.maxsize = maxsize
        self.on_full = on_full
        self.on_drop = on_drop
        self._chunks: deque[list[Message]] = deque()
        self._size = 0
        self._readable = asyncio.Event()
        self._waiting: Counter[TP] = Counter()
        """Records waiting, by partition."""
        self._held: set[TP] = set()
        """The partitions ``on_full`` was called for, and ``on_drop`` not yet."""

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        """Whether fetching for this feed is held back now."""
        return bool(self._held)

    def waiting_in(self, topic: str, partition: int) -> int:
        """How many records of this partition wait here."""
        return self._waiting[TP(topic, partition)]  # equal to aiokafka's, and hashed alike

    def clear(self) -> None:
        """Forget every waiting record (faust's flow control calls it on a rebalance)."""
        self._chunks.clear()
        self._size = 0
        self._waiting.clear()
        self._readable.clear()
        self._release()

    def put(self, records: list[Message]) -> None:
        """Add records; past ``maxsize`` waiting, hold back their partitions."""
        self._chunks.append(records)
        self._size += len(records)
        self._waiting.update(record.tp for record in records)
        self._readable.set()
        if self._size >= self.maxsize:
            newly = self._waiting.keys() - self._held
            if newly:
                self._held |= newly
                self.on_full(newly)

    async def wait(self, count: int, within: float) -> None:
        """Return once ``count`` records wait, or ``within`` seconds after one does.

        The seconds count from the call, or from the first record's arrival
        if none waited then, even when records came while the agent was
        processing its last batch. Counting from the oldest record's arrival
        instead, a worker with a backlog took the few records waiting at once,
        paid a batch's fixed cost per model version on them, and fell further
        behind: the 10-model alert latency at 6,500 events/s, three trials
        of each alternated, had p99 0.75-1.51 s against 0.55-0.91 s.
        """
        while not self._size:
            self._readable.clear()
            await self._readable.wait()
        deadline = time.monotonic() + within
        while self._size < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._readable.clear()
            try:
                await asyncio.wait_for(self._readable.wait(), remaining)
            except TimeoutError:
                return

    def take(self, count: int) -> list[Message]:
        """Up to ``count`` waiting records, oldest first."""
        taken: list[Message] = []
        while self._chunks and len(taken) < count:
            chunk = self._chunks[0]
            room = count - len(taken)
            if len(chunk) <= room:
                taken.extend(self._chunks.popleft())
            else:
                taken.extend(chunk[:room])
                self._chunks[0] = chunk[room:]
        self._size -= len(taken)
        self._waiting.subtract(record.tp for record in taken)
        self._waiting = +self._waiting  # partitions with none left go
        if self._size < self.maxsize // 2:
            self._release()
        return taken

    def _release(self) -> None:
        if self._held:
            held, self._held = self._held, set()
            self.on_drop(held)


FETCH_MAX_WAIT_MS = 20
"""How long the broker may hold a fetch for more data (faust asks for 1,500 ms).

Measured with the alert latency benchmark: after a slow batch (the end of
ten warm-ups), the next fetch came back empty after 1.0-1.5 s although
events kept arriving on the partitions it asked for, and every alert of
the drift that followed waited that long (p50 1.9 s; 0.56 s with 100 ms).
With 100 ms, the agent's wait for its next batch after that slow one still
saw no record come in its 50 ms, and the next fetch brought 2,000 records
about 80 ms after the batch, though ~1,900 events waited on the broker;
with 20 ms, they came about 30 ms after it (10-model latency case, 11,700 events/s,
three alternated trials each: p99 0.247, 0.327 and 0.282 s against 0.346,
0.417 and 0.375). An idle worker then sends up to fifty small fetch
requests a second a broker, each answered empty.
"""


GETMANY_TIMEOUT_SECONDS = 0.1
"""How long one ``getmany`` of the fetch loop may wait (faust's loop waits 1 s).

A ``getmany`` asks only for the partitions fetching is active for; one that
started while a full feed held its partitions back would not see them
released, and the agent would run dry for up to this long.
"""


FETCHER_WAKE_SECONDS = 0.02
"""Longest aiokafka's background fetch task sleeps before it looks again for what to fetch
(aiokafka's ``consumer_timeout_ms``, 200 ms unless told).

That task sends a partition's next fetch once the records of its last one
have all been taken, when the taking wakes it. If it wakes just as a fetch
of other partitions to the same broker completes, it can still count that
broker as busy (the completed fetch's callback that clears the mark has not
run yet), send nothing, and sleep its full timeout with nothing left to wake
it. In the throughput benchmark's one-model run, a worker stalled so for
140-170 ms about once in three fetches, 7 times in 5.4 s, with nothing to
do: 15-20% of the run. Bounded by this, a missed wake costs at most about a
fetch's round trip. An idle consumer's fetch task wakes up to fifty times a
second, as its fetches already do (:data:`FETCH_MAX_WAIT_MS`).
"""


class RoundRobinClient(AIOKafkaClient):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's consumer, whose ``getmany`` serves the partitions it fetched in turns.

    aiokafka hands out fetched records partition by partition, in the order
    its fetches completed, up to ``max_records`` a call; a partition drained
    in part keeps its place, so a partition late in that order waits for
    the others' backlog at every call. After a slow batch (the end of ten
    warm-ups), one partition's alerts waited about half a second longer than
    the others' in the alert latency benchmark, and made its p99. Here a
    partition drained in part goes to the end of the order: the next call
    serves the others first. Records of a partition keep their order.
    """

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, list[Any]]:
        records: dict[Any, list[Any]] = await super().getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        waiting = self._fetcher._records  # fetched, by partition, in the order served
        for tp in records:
            if tp in waiting:  # drained in part
                waiting.move_to_end(tp)
        return records


class _ConsumerThread(AIOKafkaConsumerThread):
    """faust's consumer thread: its aiokafka consumer waits at most ``FETCH_MAX_WAIT_MS``
    for a fetch, its fetch task sleeps at most ``FETCHER_WAKE_SECONDS``, and it serves
    partitions in turns (:class:`RoundRobinClient`)."""

    async def seek_to_committed(self) -> Any:
        """Seek every assigned partition to its committed offset, and one without any to its
        beginning (the app's ``auto_offset_reset``, as a new consumer starts).

        aiokafka's seek leaves a partition without a committed offset where
        its fetches had taken it: records fetched and not delivered (the flow
        stopped for a rebalance) were then never read again, nor committed.
        And a rebalance that takes a partition while it seeks, one partition
        after another, makes it raise for that partition and leave the rest
        unseeked: it is done again over the partitions assigned then.
        """
        return await self.call_thread(self._seek_to_committed_or_beginning)

    async def _seek_to_committed_or_beginning(self) -> Any:
        consumer = self._ensure_consumer()
        while True:
            if not consumer.assignment():
                return {}
            try:
                committed = await consumer.seek_to_committed()
                changelog = self.consumer._is_changelog_tp  # tables recover their own
                unset = [tp for tp, offset in committed.items() if not offset and not changelog(tp)]
                if unset:
                    await consumer.seek_to_beginning(*unset)
                return committed
            except IllegalStateError:
                logger.info("a rebalance took a partition during the seek: seeking again")

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaClient:
        consumer = super()._create_worker_consumer(transport)
        # Both are read when the consumer starts, which creates its fetcher.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        consumer._consumer_timeout = FETCHER_WAKE_SECONDS
        consumer.__class__ = RoundRobinClient  # the same object, with its getmany
        return consumer


class BatchingConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer whose fetch loop feeds batch topics a fetch at a time."""

    _feeds: dict[str, RecordFeed]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._feeds = {}
        self._reading = asyncio.Lock()
        """Held by the fetch loop from a fetch until its read offsets are set, and by seeks."""
        self._seeks = 0
        """Seeks to the committed offsets so far: a failed delivery after one undoes nothing."""
        self._fetching: asyncio.Task[Any] | None = None
        """The fetch loop's task, once it runs."""
        self.deferred: DeferredAcks | None = None
        """The batches processed and waiting for their state to be saved, if agents defer."""

    async def wait_empty(self) -> None:
        """faust's wait for the records in progress (before a rebalance or a stop, which then
        commit), then a checkpoint for the batches deferred, and a commit of their offsets.

        Batches whose acks wait for their state to be saved
        (:class:`DeferredAcks`) are done, so they are not waited for; without
        this, a stop would commit none of the last second's offsets and the
        worker that takes over would read those events again.
        """
        await super().wait_empty()
        deferred = self.deferred
        if deferred is not None and len(deferred) and deferred.checkpoint is not None:
            try:
                await deferred.checkpoint()
            except Exception:  # a bug here must not stop a rebalance or a shutdown
                logger.exception("the checkpoint before a commit failed")
            await self.commit()

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset, never in the middle of a fetch.

        faust seeks (after a rebalance's table recovery) while the fetch loop
        may run: with the seek between a fetch and the read offsets it set,
        the read offsets went back to the committed ones while the consumer's
        position stayed after the fetch, so the next fetch looked like a gap of
        thousands of offsets. faust counts a gap as done, and its commit
        bookkeeping, given those offsets twice, then advanced an offset or two
        per commit: a restarted worker processed everything and stayed
        committed near where it started (``tests/agents/test_lifecycle_end_to_end.py``).
        """
        if asyncio.current_task() is self._fetching:
            # faust's getmany seeks itself when the flow stopped during its fetch:
            # the fetch loop holds the lock then, and no read offsets are set after.
            self._seeks += 1
            await super().perform_seek()
            return
        async with self._reading:
            self._seeks += 1
            await super().perform_seek()

    async def _wait_next_records(self, timeout: float) -> Any:
        """Fetch nothing while the flow is stopped (faust's would wait, holding the fetch lock).

        The flow resumes only after the seek to the committed offsets, which
        waits for that lock: the fetch loop waits for the flow after letting go of it.
        """
        if not self.flow_active:
            return None, None
        return await super()._wait_next_records(timeout)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """faust-streaming 0.15.3's ``Consumer.getmany``, with each partition's high-water mark
        read and handed to the monitor once per fetch, not once per record.

        faust reads it through the consumer thread for every record it hands
        out, to track the partition's end offset: in the decode-only batch
        path (b') that was about a tenth of the CPU time per record. The mark
        read once, before the records go out, is the one of the fetch that
        brought them; the monitor keeps only the latest one anyway. Like
        ``_drain_messages``, a copy to check against each faust upgrade.
        """
        fetch = await self._fetch_served(timeout)
        if fetch is None:
            return
        for tp, message in self._served_messages(fetch):
            yield tp, message

    async def _fetch_served(self, timeout: float) -> "_Fetch | None":
        """The first half of ``getmany``: the next fetched records, and the partitions they may
        go out for; None when there are none to hand out."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return None
        if not self.flow_active:
            self.log.dev("getmany called while flow not active. Seek back to committed offsets.")
            try:
                await self.perform_seek()
            except Exception as ex:
                self.log.warning(f"exception performing seek when flow not active {ex}")
            return None
        served = {
            tp
            for tp in records
            if active_partitions is None
            or tp in active_partitions
            or tp in self._buffered_partitions
        }
        track_end_offset = self.app.monitor.track_tp_end_offset
        for tp in served:
            track_end_offset(tp, self.highwater(tp))
        return _Fetch(records, served, generation_id)

    def _served_messages(self, fetch: "_Fetch") -> Iterator[tuple[TP, Message]]:
        """The second half of ``getmany``: the served records as faust's messages, in faust's
        order, while the flow runs in the fetch's generation."""
        to_message = self._to_message
        for tp, record in self.scheduler.iterate(fetch.records):
            if self._flow_stopped():  # a rebalance may begin while they go out
                break
            if self.app.consumer_generation_id != fetch.generation_id:
                self.log.dev(
                    "Generation id changed from %r to %r. Cancelling getmany.",
                    fetch.generation_id,
                    self.app.consumer_generation_id,
                )
                break
            if tp in fetch.served:
                yield tp, to_message(tp, record)

    async def _read_in_order(
        self, tp: TP, messages: Sequence[Message], into: list[Message]
    ) -> None:
        """The fetch loop's bookkeeping of each record, for the records of a partition read
        at once into a feed (``into``): those at or past its read offset go there, in order,
        and the read offset follows them; a gap in the offsets is noted as faust notes it.

        The same steps as faust's fetch loop takes for each record, without
        the rest of its round for each (``getmany`` hands the records out one
        by one through an async generator and faust's scheduler, ~2 µs a
        record in all).
        """
        read_offset = self._read_offset
        acking = self.app.topics.acks_enabled_for(tp.topic)
        commit_every = self._commit_every
        for message in messages:
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                self.log.dev("DROPPED MESSAGE ROFF %r", offset)
                continue
            if r_offset and offset - r_offset > 1 and acking:
                await self._add_gap(tp, r_offset + 1, offset)
            if commit_every is not None and self._n_acked >= commit_every:
                self._n_acked = 0
                await self.commit()
            into.append(message)
            read_offset[tp] = offset

    def _in_fetch(self, fetch: "_Fetch") -> bool:
        """Whether the fetch's records may still go out: the flow runs, in its generation."""
        return not self._flow_stopped() and self.app.consumer_generation_id == fetch.generation_id

    def _flow_stopped(self) -> bool:
        return not self.flow_active

    def ack_batch(self, messages: Sequence[Message]) -> None:
        """faust-streaming 0.15.3's ``Consumer.ack`` for each message in turn, in one step.

        The same bookkeeping, message by message: an offset at or past the
        partition's committed one, and not acked before, becomes committable.
        faust's takes its lock, looks the topic's acking up and wakes a
        waiter once a message, about 1 µs each; here that is once a batch,
        and the offsets of a partition are added together. Messages of a
        batch are not in the set of unacked messages (:func:`take_batches`
        puts one there for the batch): the caller takes it out. Like
        ``getmany``, a copy to check against each faust upgrade.
        """
        with ack_lock:
            acking: dict[str, bool] = {}
            offsets: dict[TP, list[int]] = {}
            for message in messages:
                if message.acked:
                    continue
                message.acked = True
                topic = message.topic
                enabled = acking.get(topic)
                if enabled is None:
                    enabled = acking[topic] = self.app.topics.acks_enabled_for(topic)
                if enabled:
                    offsets.setdefault(message.tp, []).append(message.offset)
            for tp, some in offsets.items():
                committed = self._committed_offset[tp]
                if committed is not None:
                    some = [offset for offset in some if offset >= committed]
                if not some:
                    continue
                index = self._acked_index[tp]
                new = []
                for offset in some:
                    if offset not in index:
                        index.add(offset)
                        new.append(offset)
                if new:
                    self._acked[tp].extend(new)
                    self._n_acked += len(new)
            if any(acking.values()):
                notify(self._waiting_for_ack)

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def waiting(self, topic: str, partition: int) -> int:
        """Records of a partition fetched and waiting for its batch reader (0 without one)."""
        feed = self._feeds.get(topic)
        return 0 if feed is None else feed.waiting_in(topic, partition)

    def unread(self, topic: str, partition: int) -> bool:
        """Whether this worker holds the partition and the broker has records it has not read.

        From the high-water mark of the last fetch against the last offset
        read (after a seek, the offset to read next: at worst one record is
        missed). Before the first fetch of an assigned partition, True.
        """
        tp = TP(topic, partition)
        if tp not in self.assignment():
            return False
        highwater: int | None = self.highwater(tp)  # None before a fetch, whatever faust says
        if highwater is None:
            return True
        read = self._read_offset[tp]
        return bool(highwater > (-1 if read is None else read) + 1)

    def held(self) -> set[TP]:
        """The partitions assigned to this worker now: none before the consumer has started
        (where :meth:`assignment` raises)."""
        try:
            return set(self.assignment())
        except ConsumerNotStarted:
            return set()

    def lag(self, topic: str, partition: int) -> int | None:
        """Records of a held partition not yet taken by its batch reader: on the broker past
        the last read (by the last fetch's high-water mark), and fetched but waiting. None
        when it is not known: the partition is not held, or not fetched from yet."""
        tp = TP(topic, partition)
        if tp not in self.held():
            return None
        highwater: int | None = self.highwater(tp)
        read = self._read_offset[tp]
        if highwater is None or read is None:
            return None
        return max(highwater - read - 1, 0) + self.waiting(topic, partition)

    def behind(self, topics: Iterable[str]) -> list[str]:
        """The held partitions of ``topics`` with records not yet taken (or none fetched since
        they were assigned), each with why its fetching may be held back, for the worker's
        periodic log: ``"labels[1]: 1946 behind, fetch held back for a full buffer"``.

        faust fetches only its active partitions: one is left out while it is
        paused (recovery) or while its batch reader's buffer is full. A fetch
        that brings no records tells no high-water mark, so a partition read
        to its end by its previous owner looks like one not fetched at all.
        """
        wanted = set(topics)
        active = self._active_partitions or set()
        lines = []
        for tp in sorted(self.held(), key=lambda tp: (tp.topic, tp.partition)):
            if tp.topic not in wanted:
                continue
            lag = self.lag(tp.topic, tp.partition)
            if lag == 0:
                continue
            why = []
            if tp in self._paused_partitions:
                why.append("paused")
            if tp in self._buffered_partitions:
                why.append("fetch held back for a full buffer")
            if tp not in active:
                why.append("not among the partitions fetched")
            told = "no records fetched since assigned (caught up, or not fetched)"
            if lag is not None:
                told = f"{lag} behind"
            lines.append(", ".join([f"{tp.topic}[{tp.partition}]: {told}", *why]))
        return lines

    def feed_for(self, topics: Iterable[str], maxsize: int) -> RecordFeed:
        """The feed of these topics, registered on first use (an agent restart reuses it)."""
        wanted = frozenset(topics)
        existing = {self._feeds.get(topic) for topic in wanted}
        if existing == {None}:
            feed = RecordFeed(wanted, maxsize, on_full=self._hold, on_drop=self._release)
            self._feeds.update(dict.fromkeys(wanted, feed))
            self.app.flow_control.manage_queue(feed)  # type: ignore[arg-type]
            return feed
        found = existing.pop() if len(existing) == 1 else None
        if found is not None and found.topics == wanted:
            return found
        raise ValueError(f"topics {sorted(wanted)} overlap another batch reader's topics")

    # A record's ``tp`` is aiokafka's TopicPartition; faust's partition sets hold its own TP.

    def _hold(self, partitions: set[TP]) -> None:
        for tp in partitions:  # fetched no more until released (not while recovering)
            self.on_buffer_full(TP(tp.topic, tp.partition))

    def _release(self, partitions: set[TP]) -> None:
        for tp in partitions:
            self.on_buffer_drop(TP(tp.topic, tp.partition))

    async def _deliver(self, feed: RecordFeed, records: list[Message], seeks: int) -> None:
        """Put fetched records on their feed; if they cannot be, fetch them again later.

        Waits as the conductor waits before delivering a record: for flow
        control (suspended while rebalancing) and room in the producer's
        buffer (the agent's sends). Records not delivered (the flow was
        suspended) have advanced the read offsets: their partitions are moved
        back to them, unless a seek since their fetch moved them already.
        """
        put = self._put(feed, records, seeks)
        waited = await self.wait_first(put, self.suspend_flow.wait())
        if put not in waited.done and not waited.stopped and self._seeks == seeks:
            assigned = self.assignment()
            for tp, first in _first_offsets(records).items():
                if tp in assigned:
                    self._thread.seek(tp, first)
                    self._read_offset[tp] = first

    async def _put(self, feed: RecordFeed, records: list[Message], seeks: int) -> None:
        await self.app.flow_control.acquire()
        await self.app.producer.buffer.wait_until_ebb()
        if self._seeks == seeks:  # else fetched before a seek, which put them back to be read
            feed.put(records)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - see below
        # faust-streaming 0.15.3's ``Consumer._drain_messages``, with three
        # changes: records of a topic that has a feed skip the per-record
        # ``wait_first(callback(message))`` and are delivered to the feed
        # after the fetched batch, one ``wait_first`` per feed; a feed's
        # partitions are read a partition at a time (``_read_in_order``),
        # not a record at a time through ``getmany``; and a fetch and the
        # read offsets it sets are one step for ``perform_seek`` (the
        # ``_reading`` lock, never held while waiting for the flow to
        # resume). The read offset and gap bookkeeping is the same for every record.
        # (Covered by tests/streams/test_batching.py against a real broker.)
        callback = self.callback
        to_message = self._to_message
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        feeds = self._feeds
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        from faust.transport.consumer import CONSUMER_FETCHING

        self._fetching = asyncio.current_task()
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                fetched: dict[RecordFeed, list[Message]] = {}
                async with self._reading:  # no seek between a fetch and its read offsets
                    seeks = self._seeks
                    await self.sleep(0)
                    if self.should_stop:
                        continue
                    fetch = await self._fetch_served(GETMANY_TIMEOUT_SECONDS)
                    if fetch is not None:  # else none to hand out (the flow may be stopped)
                        # A feed's partitions first, each at once (their records then
                        # taken in turns, as faust serves them); then the others' records
                        # one by one, in faust's order, through the conductor.
                        conducted = dict(fetch.records)
                        reads: dict[RecordFeed, list[list[Message]]] = {}
                        for tp, records in fetch.records.items():
                            feed = feeds.get(tp.topic)
                            if feed is None or tp not in fetch.served:
                                continue
                            if not self._in_fetch(fetch):
                                conducted = {}
                                break
                            del conducted[tp]
                            read: list[Message] = []
                            messages = [to_message(tp, record) for record in records]
                            await self._read_in_order(tp, messages, read)
                            reads.setdefault(feed, []).append(read)
                        for feed, partitions in reads.items():
                            fetched[feed] = _in_turns(partitions)
                        for tp, message in self._served_messages(fetch._replace(records=conducted)):
                            offset = message.offset
                            r_offset = get_read_offset(tp)
                            if r_offset is None or offset >= r_offset:
                                gap = offset - (r_offset or 0)
                                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                                if commit_every is not None and self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                                num_since_yield += 1
                                if num_since_yield > yield_every:
                                    await sleep(0)
                                    num_since_yield = 0
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                                set_read_offset(tp, offset)
                            else:
                                self.log.dev("DROPPED MESSAGE ROFF %r", offset)
                for feed, records in fetched.items():
                    await self._deliver(feed, records, seeks)
                unset_flag(CONSUMER_FETCHING)
                if not self.flow_active:  # see _wait_next_records
                    await self.wait(self.can_resume_flow)  # type: ignore[arg-type]
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class _Fetch(NamedTuple):
    """What one fetch of the consumer brought: its records by partition, the partitions they
    may go out for, and the consumer generation it was made in."""

    records: dict[Any, list[Any]]
    served: set[Any]
    generation_id: int


class BatchingTransport(AIOKafkaTransport):
    """faust's aiokafka transport, with the :class:`BatchingConsumer`."""

    Consumer = BatchingConsumer


def install_batching_transport(app: AppT) -> None:
    """Give ``app`` the batching consumer; call it right after creating the app."""
    app.transport = BatchingTransport(app.conf.broker_consumer, app)


class BatchSizer:
    """How many records the next batch should hold, so that processing it takes about
    ``target_seconds``.

    A batch's outputs go out when it is done, so behind a backlog its
    processing time adds to the latency of the events at its start. The
    sizer learns the processing time per record from the batches done (a
    weighted mean: each batch counts ``weight``, those before it the rest)
    and proposes as many records as fit the target, never fewer than
    ``min_records`` (a twentieth of ``max_records`` unless told) nor more
    than ``max_records``. After a batch that took long (say, ten models
    ending their warm-ups in it), the next ones are small, so the alarms in
    the backlog behind it go out sooner; as batches get quick again, they
    grow back to ``max_records``.

    >>> sizer = BatchSizer(max_records=2_000, target_seconds=0.1)
    >>> sizer.size
    2000
    >>> sizer.update(records=500, seconds=0.25)  # 0.5 ms a record
    >>> sizer.size
    200
    >>> for _ in range(10):  # then 40 µs a record
    ...     sizer.update(records=sizer.size, seconds=sizer.size * 40e-6)
    >>> sizer.size
    2000
    """

    def __init__(
        self,
        max_records: int,
        target_seconds: float,
        *,
        min_records: int | None = None,
        weight: float = 0.5,
    ) -> None:
        if max_records < 1 or target_seconds <= 0:
            raise ValueError("max_records must be at least 1 and target_seconds positive")
        if not 0 < weight <= 1:
            raise ValueError(f"weight must be in (0, 1], got {weight}")
        self.max_records = max_records
        self.target_seconds = target_seconds
        self.min_records = min(
            max_records, max(1, max_records // 20 if min_records is None else min_records)
        )
        self.weight = weight
        self._seconds_per_record: float | None = None

    def update(self, records: int, seconds: float) -> None:
        """Learn from a batch of ``records`` that took ``seconds`` to process."""
        if records < 1 or seconds < 0:
            return
        cost = seconds / records
        known = self._seconds_per_record
        self._seconds_per_record = (
            cost if known is None else self.weight * cost + (1 - self.weight) * known
        )

    @property
    def size(self) -> int:
        """How many records to take next."""
        cost = self._seconds_per_record
        if not cost:
            return self.max_records
        fitting = self.target_seconds / cost  # infinite if the cost is tiny enough
        if fitting >= self.max_records:
            return self.max_records
        return max(self.min_records, int(fitting))


class DeferredAcks:
    """Batches processed but not acked yet: their offsets become committable only when the
    owner of their state says it is saved (:meth:`take`, then :meth:`ack`).

    :func:`take_batches` given one hands it each batch once processed,
    instead of acking it. A batch left here when its partition is taken
    away is never acked: the worker that gets the partition reads it again
    from the last commit, as after a crash.
    """

    def __init__(self, app: AppT) -> None:
        self.app = app
        self._batches: list[Sequence[Message]] = []
        self.checkpoint: Callable[[], Awaitable[object]] | None = None
        """Saves the state and acks what it covers: run before a rebalance or a stop commits."""

    def __len__(self) -> int:
        return len(self._batches)

    def defer(self, messages: Sequence[Message]) -> None:
        """Keep a processed batch to ack later."""
        self._batches.append(messages)

    def take(self) -> list[Sequence[Message]]:
        """The batches deferred so far, which the state being saved now reflects."""
        taken, self._batches = self._batches, []
        return taken

    def ack(self, batches: Sequence[Sequence[Message]]) -> None:
        """Ack batches taken before, in order, once what they changed is saved."""
        consumer = self.app.consumer
        if not isinstance(consumer, BatchingConsumer):
            raise TypeError("deferred acks need an app made by create_app (the batching consumer)")
        for messages in batches:
            consumer.ack_batch(messages)


async def take_batches(
    stream: StreamT[Any],
    *,
    max_records: int,
    within: float,
    target_seconds: float | None = None,
    clock: AgentClock | None = None,
    acks: DeferredAcks | None = None,
) -> AsyncIterator[list[Message]]:
    """Batches of the raw records of ``stream``'s topics, each acked when the next is asked for.

    A batch holds up to ``max_records`` records, in fetch order (offsets
    increase within a partition), and is yielded once ``max_records`` wait
    or ``within`` seconds after the agent asked for it with records waiting
    (see :meth:`RecordFeed.wait`). With ``target_seconds``, a batch holds
    fewer records when batches have been taking longer than that to process
    (the time from a batch's yield to the ask for the next; see
    :class:`BatchSizer`); with ``clock``, the agent's own clock, less the
    time other agents worked meanwhile (see :mod:`~driftline.streams.busy`).
    Its records are
    acked, so their offsets become committable, only when the caller asks
    for the next batch: never if the loop is left otherwise. With ``acks``,
    they are handed to it then instead, to be acked once their state is saved. The app must
    have been made by ``create_app`` (which installs the batching consumer),
    and ``stream`` is the agent's stream; it is never iterated itself.
    """
    if max_records < 1 or within <= 0:
        raise ValueError("max_records must be at least 1 and within positive")
    app = stream.app
    consumer = app.consumer
    if not isinstance(consumer, BatchingConsumer):
        raise TypeError("take_batches needs an app made by create_app (the batching consumer)")
    if acks is not None:
        consumer.deferred = acks
    topics = list(getattr(stream.channel, "topics", ()) or ())
    if not topics:
        raise TypeError("take_batches reads a stream of named Kafka topics")
    feed = consumer.feed_for(topics, maxsize=max(app.conf.stream_buffer_maxsize, 2 * max_records))
    unacked = consumer._unacked_messages
    inbound_time = app.monitor.stream_inbound_time
    sizer = BatchSizer(max_records, target_seconds) if target_seconds else None
    held: list[Message] = []
    try:
        while True:
            count = sizer.size if sizer else max_records
            await feed.wait(count, within)
            batch = _current(app, feed.take(count))
            if not batch:
                continue
            now = time.monotonic()
            # Tracked like a record a stream started on, one for the batch: a
            # rebalance or shutdown waits until it is acked (stream_wait_empty),
            # and the batch is acked whole. (One each cost ~0.5 µs a record.)
            last = batch[-1]
            last.tracked = True
            unacked.add(last)
            for tp in _partitions(batch):
                inbound_time[tp] = now  # faust's stalled-stream check reads it
            held = batch
            others = clock.others if clock else 0.0
            yielded = time.perf_counter()
            yield batch
            if sizer:
                spent = time.perf_counter() - yielded
                if clock:
                    spent -= clock.others - others
                sizer.update(len(batch), spent)
            if acks is None:
                consumer.ack_batch(held)
            else:
                acks.defer(held)
            unacked.discard(last)
            held = []
    finally:
        # Left without asking for the next batch: never ack it, but stop
        # waiting for it, or the next rebalance would wait for ever.
        if held:
            unacked.discard(held[-1])


def _current(app: AppT, records: list[Message]) -> list[Message]:
    """The records fetched in the current generation while flow runs; stale ones are refetched."""
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    return [record for record in records if record.generation_id == generation]


def _in_turns(partitions: list[list[Message]]) -> list[Message]:
    """The records of several partitions taken in turns, one of each at a time, as faust's
    scheduler serves a topic's partitions (each partition's in order).

    >>> _in_turns([[1, 2, 3], [10], [20, 21]])
    [1, 10, 20, 2, 21, 3]
    """
    if len(partitions) == 1:
        return partitions[0]
    turns = itertools.zip_longest(*partitions)  # None once a partition has none left
    return [record for turn in turns for record in turn if record is not None]


def _first_offsets(records: list[Message]) -> dict[TP, int]:
    """The first offset of each partition among records in fetch order."""
    firsts: dict[TP, int] = {}
    for record in records:
        firsts.setdefault(record.tp, record.offset)
    return firsts


def _partitions(records: list[Message]) -> Iterator[TP]:
    seen: set[TP] = set()
    for record in records:
        if record.tp not in seen:
            seen.add(record.tp)
            yield record.tp
