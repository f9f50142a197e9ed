"""Checkpointer: the tables' changes and the versions' state saved together once an interval,
only once the outputs they follow are delivered, and only then the batches acked."""

import asyncio

import pytest
from fake_producer import FakeProducer

from driftline.agents.checkpoints import Checkpointer
from driftline.streams.settings import Settings


class _Tables:
    """What Checkpointer uses of an intake: the changes its tables buffered."""

    def __init__(self, *records: tuple[str, int, bytes, bytes | None]) -> None:
        self.records = list(records)
        self.flushes = 0

    def flush_state(self) -> list[tuple[str, int, bytes, bytes | None]]:
        self.flushes += 1
        drained, self.records = self.records, []
        return drained


class _Acks:
    """What Checkpointer uses of the deferred acks: batches taken, then acked."""

    def __init__(self) -> None:
        self.deferred: list[str] = []
        self.acked: list[str] = []

    def take(self) -> list[str]:
        taken, self.deferred = self.deferred, []
        return taken

    def ack(self, batches: list[str]) -> None:
        self.acked += batches


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class GatedProducer(FakeProducer):
    """Takes no batch until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def send_batch(
        self, batch: object, topic: str, *, partition: int
    ) -> "asyncio.Future[int]":
        await self.gate.wait()
        return await super().send_batch(batch, topic, partition=partition)


def checkpointer(
    producer: FakeProducer, *, interval: float = 1.0, timeout: float = 5.0
) -> tuple[Checkpointer, _Acks, _Clock]:
    acks, clock = _Acks(), _Clock()
    settings = Settings(state_save_interval_seconds=interval, send_timeout_seconds=timeout)
    return Checkpointer(settings, lambda: producer, acks=acks, clock=clock), acks, clock  # type: ignore[arg-type]


def test_table_changes_go_to_the_partitions_they_were_written_for() -> None:
    producer = FakeProducer()
    writer, _, _ = checkpointer(producer)
    tables = _Tables(("join-changelog", 2, b"a", b"1"), ("join-changelog", 0, b"b", None))
    assert asyncio.run(writer.write(tables))  # type: ignore[arg-type]
    assert producer.records() == [
        ("join-changelog", 2, b"a", b"1"),
        ("join-changelog", 0, b"b", None),
    ]


def test_a_checkpoint_is_taken_once_an_interval_and_the_batches_before_it_acked() -> None:
    producer = FakeProducer()
    writer, acks, clock = checkpointer(producer, interval=1.0)
    tables = _Tables()

    async def run() -> list[bool]:
        taken = []
        for now, batch in [(0.0, "b1"), (0.4, "b2"), (0.9, "b3"), (1.0, "b4"), (1.5, "b5")]:
            clock.now = now
            acks.deferred.append(batch)
            taken.append(await writer.write(tables))  # type: ignore[arg-type]
        clock.now = 1.6
        taken.append(await writer.write(tables, now=True))  # type: ignore[arg-type]
        return taken

    assert asyncio.run(run()) == [True, False, False, True, False, True]
    assert tables.flushes == 3
    assert acks.acked == ["b1", "b2", "b3", "b4", "b5"]
    assert writer.saves == 3


def test_an_interval_of_zero_saves_after_every_batch() -> None:
    writer, _, _ = checkpointer(FakeProducer(), interval=0.0)
    tables = _Tables()

    async def run() -> list[bool]:
        return [await writer.write(tables) for _ in range(3)]  # type: ignore[arg-type]

    assert asyncio.run(run()) == [True, True, True]


def test_batches_are_acked_only_once_the_checkpoints_changes_are_with_the_producer() -> None:
    producer = GatedProducer()
    writer, acks, _ = checkpointer(producer)
    acks.deferred.append("b1")

    async def run() -> None:
        task = asyncio.create_task(writer.write(_Tables(("changelog", 1, b"k", b"v"))))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert acks.acked == []  # the producer has not taken the changes yet
        producer.gate.set()
        assert await task
        assert acks.acked == ["b1"]

    asyncio.run(asyncio.wait_for(run(), timeout=5.0))
    assert producer.records() == [("changelog", 1, b"k", b"v")]


def test_a_batch_deferred_while_a_checkpoint_sends_waits_for_the_next_one() -> None:
    """Its changes may postdate what the checkpoint saved."""
    producer = GatedProducer()
    writer, acks, _ = checkpointer(producer)
    acks.deferred.append("b1")

    async def run() -> None:
        task = asyncio.create_task(writer.write(_Tables(("changelog", 1, b"k", b"v"))))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        acks.deferred.append("b2")
        producer.gate.set()
        await task
        assert acks.acked == ["b1"]
        await writer.write(_Tables(), now=True)  # type: ignore[arg-type]
        assert acks.acked == ["b1", "b2"]

    asyncio.run(asyncio.wait_for(run(), timeout=5.0))


@pytest.mark.parametrize(
    ("delivery", "taken"),
    [("delivered", True), ("failed", False), ("delivered later", True), ("never", False)],
)
def test_a_checkpoint_is_taken_only_once_the_outputs_it_follows_are_delivered(
    delivery: str, taken: bool
) -> None:
    """A state saved with an alert open whose message was lost would never send it: the
    restarted worker skips the events the state reflects."""
    producer = FakeProducer()
    writer, acks, _ = checkpointer(producer, timeout=0.2)
    tables = _Tables(("join-changelog", 0, b"a", b"1"))

    async def run() -> bool:
        output: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if delivery == "delivered":
            output.set_result(None)
        elif delivery == "failed":
            output.set_exception(RuntimeError("not delivered"))
        elif delivery == "delivered later":
            asyncio.get_running_loop().call_later(0.05, output.set_result, None)
        async with writer.processing() as owe:
            owe([output])
        acks.deferred.append("b1")
        return await writer.write(tables)  # type: ignore[arg-type]

    assert asyncio.run(asyncio.wait_for(run(), timeout=5.0)) is taken
    assert acks.acked == (["b1"] if taken else [])
    assert producer.records() == ([("join-changelog", 0, b"a", b"1")] if taken else [])


def test_a_lost_output_holds_back_one_checkpoint_only() -> None:
    writer, _, _ = checkpointer(FakeProducer())

    async def run() -> list[bool]:
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lost.set_exception(RuntimeError("not delivered"))
        async with writer.processing() as owe:
            owe([lost])
        return [await writer.write(_Tables()) for _ in range(2)]  # type: ignore[arg-type]

    assert asyncio.run(run()) == [False, True]


def test_no_checkpoint_is_taken_while_a_batch_is_between_its_processing_and_its_hand_over() -> None:
    writer, _, _ = checkpointer(FakeProducer())
    order: list[str] = []

    async def batch() -> None:
        async with writer.processing() as owe:
            order.append("processing")
            await asyncio.sleep(0.05)  # handing its outputs over
            owe([])
            order.append("handed over")

    async def run() -> None:
        task = asyncio.create_task(batch())
        await asyncio.sleep(0)
        assert await writer.write(_Tables())  # type: ignore[arg-type]
        order.append("checkpoint")
        await task

    asyncio.run(asyncio.wait_for(run(), timeout=5.0))
    assert order == ["processing", "handed over", "checkpoint"]


def test_a_batch_that_never_hands_over_holds_the_checkpoint_back_only_so_long() -> None:
    writer, _, _ = checkpointer(FakeProducer(), timeout=0.1)

    async def run() -> bool:
        async with writer.processing():
            return await writer.write(_Tables())  # type: ignore[arg-type]

    assert asyncio.run(asyncio.wait_for(run(), timeout=5.0)) is False


def test_where_changes_land_is_told_to_their_table() -> None:
    told: list[tuple[int, int]] = []

    class Store:
        changelog_topic = "app-t-changelog"

        def persisted(self, partition: int, offset: int) -> None:
            told.append((partition, offset))

    writer = Checkpointer(Settings(), lambda: FakeProducer(), [Store()])  # type: ignore[list-item]
    writer._persisted("app-t-changelog", 2, 41)
    writer._persisted("other", 2, 7)
    assert told == [(2, 41)]
