"""Checkpoints: the tables' changes and every touched version's state, saved together every two
seconds, and only then the batches they reflect acked.

Why not once a batch. A version's record is ~150 KB for a model of 20
features and costs 2-4 ms to encode in a busy worker. A worker of ten models
touches about five versions a batch: saving them each batch cost it ~20 % of
its throughput. Saved once every ``DRIFTLINE_STATE_SAVE_INTERVAL_SECONDS``
(2 s) instead, a version costs that once an interval, whatever the batch size:
the same worker ran as fast as one that saved no state (~8 % slower with 1 s).

What keeps it right. A restarted worker skips the events a version's saved
state reflects (its fence), so three orders hold:

- A batch is acked only once a checkpoint after it saved what it changed
  (:class:`~driftline.streams.batching.DeferredAcks`): faust commits only
  acked offsets, so committed offsets are never ahead of the saved state.
- A checkpoint waits until every output of the batches it covers is
  delivered: a state saved with an alert open whose message was then lost
  in a crash would never send it again.
- No checkpoint is taken while a batch is between its processing and the
  hand-over of its outputs (:meth:`Checkpointer.processing`): its changes
  would be saved before its outputs could be waited for.

The label join's changes wait for the checkpoint too, so the join and the
versions' state always reflect the same events: after a crash, what is
replayed finds both where it left them.

What a crash costs. The events since the last commit are read again
(``DRIFTLINE_COMMIT_INTERVAL_SECONDS`` plus at most one save interval);
those the saved state reflects count as duplicates, the rest are processed
again, and their outputs sent again with the same ids.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from driftline.agents.intake import Intake
from driftline.agents.tables import TableStore
from driftline.streams.batching import DeferredAcks
from driftline.streams.busy import AgentClock
from driftline.streams.runtime import collector_paused
from driftline.streams.sending import BatchProducer, RecordSender
from driftline.streams.settings import Settings

log = logging.getLogger(__name__)


class Checkpointer:
    """Hands what batches changed in the tables to the producer, one agent at a time, and the
    versions' state with it once a save interval has passed.

    Each change goes to the table's changelog in record batches
    (:meth:`~driftline.agents.tables.TableStore.drain`), not through faust's
    send, a message at a time. The agents share the tables, so one agent's
    checkpoint takes the changes the others' batches made. Where each table's
    changes landed on its changelog is told to the table as they are
    delivered: one kept on disk records it, as faust does for its own sends,
    so that a restart reads only what came after.
    """

    def __init__(
        self,
        settings: Settings,
        producer: Callable[[], BatchProducer],
        stores: Sequence[TableStore[Any]] = (),
        acks: DeferredAcks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.records = RecordSender(
            producer, timeout=settings.send_timeout_seconds, on_delivered=self._persisted
        )
        self.timeout = settings.send_timeout_seconds
        self.interval = settings.state_save_interval_seconds
        self.acks = acks
        self.saves = 0
        """Checkpoints taken so far."""
        self._clock = clock
        self._saved_at = -float("inf")
        self._lock = asyncio.Lock()
        self._stores = {store.changelog_topic: store for store in stores}
        """The tables by changelog topic, told where their delivered changes landed."""
        self._owed: list[asyncio.Future[Any]] = []
        """Deliveries of the outputs of the batches since the last checkpoint."""
        self._processing = 0
        self._all_handed_over = asyncio.Event()
        self._all_handed_over.set()

    @contextlib.asynccontextmanager
    async def processing(self) -> AsyncIterator[Callable[[Sequence["asyncio.Future[Any]"]], None]]:
        """Around a batch's processing and the hand-over of its outputs: no checkpoint is
        taken meanwhile. It gives the function that hands the outputs' deliveries over (the
        checkpoint that covers the batch waits for them)."""
        self._processing += 1
        self._all_handed_over.clear()

        def owe(deliveries: Sequence["asyncio.Future[Any]"]) -> None:
            self._owed += deliveries

        try:
            yield owe
        finally:
            self._processing -= 1
            if not self._processing:
                self._all_handed_over.set()

    def _persisted(self, topic: str, partition: int, offset: int) -> None:
        """A table kept on disk records how far its changelog holds what it holds."""
        store = self._stores.get(topic)
        if store is not None:
            store.persisted(partition, offset)

    @property
    def due(self) -> bool:
        """Whether a save interval has passed since the last checkpoint."""
        return self._clock() - self._saved_at >= self.interval

    async def write(
        self, intake: Intake, clock: AgentClock | None = None, *, now: bool = False
    ) -> bool:
        """Take a checkpoint if one is due (or ``now``); whether one was taken.

        A checkpoint waits for the outputs of the batches it covers to be
        delivered and for batches in progress to hand theirs over, each
        bounded by the send timeout; outputs not delivered by then (or
        lost) leave the checkpoint to a later call. It writes the changes
        the intake's tables buffered and every touched version's state
        (their encoding timed by the writing agent's ``clock``), then acks
        the batches processed before it.
        """
        if not (now or self.due):
            return False
        async with self._lock:
            if not await self._ready():
                return False
            with clock or contextlib.nullcontext(), collector_paused():
                placed = intake.flush_state()
                covered = self.acks.take() if self.acks is not None else []
            self._saved_at = self._clock()
            self.saves += 1
            await self.records.send_placed(placed)
            if self.acks is not None:
                self.acks.ack(covered)
        return True

    async def _ready(self) -> bool:
        """Wait, bounded by the send timeout, until no batch is between its processing and the
        hand-over of its outputs and every output owed is delivered; whether the checkpoint
        may be taken now. The caller takes it without awaiting anything after.

        Lost outputs (reported when they were) are dropped after holding this
        checkpoint back, so that one lost message never stops every later one.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            pending = [delivery for delivery in self._owed if not delivery.done()]
            if not pending and not self._processing:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("outputs not handed over or delivered yet: the checkpoint waits")
                return False
            if self._processing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_handed_over.wait(), remaining)
            else:
                await asyncio.wait(pending, timeout=remaining)
        if not all(_delivered(delivery) for delivery in self._owed):
            self._owed = [delivery for delivery in self._owed if _delivered(delivery)]
            log.warning("outputs were lost: the checkpoint waits for the next batch")
            return False
        self._owed = []
        return True


def _delivered(delivery: "asyncio.Future[Any]") -> bool:
    """Whether a delivery succeeded (it is done)."""
    return not delivery.cancelled() and delivery.exception() is None
