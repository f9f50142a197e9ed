"""OutputSender: a batch's outputs handed over in order per partition, then awaited together
(bounded)."""

import asyncio

import orjson
import pytest
from fake_producer import FakeProducer

from driftline.agents import wiring
from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry
from driftline.agents.wiring import OutputSender
from driftline.schemas import KafkaPosition
from driftline.streams.settings import Settings


def outputs(count: int) -> list[Output]:
    """Dead letters of messages at offsets 0..count-1, alternately to two destinations."""
    intake = Intake(Settings(), ModelRegistry())
    letters = []
    for offset in range(count):
        source = KafkaPosition(topic="in", partition=0, offset=offset)
        message = InputMessage(InputTopic.PREDICTIONS, b"{}", b"model", source)
        letter = intake.failed(message, KeyError())
        destination = Destination.DEAD_LETTERS if offset % 2 else Destination.ALERTS
        letters.append(Output(destination, letter.key, letter.message))
    return letters


def sender(delay: float | None) -> tuple[OutputSender, FakeProducer]:
    producer = FakeProducer(delay=delay)
    return OutputSender(Settings(), lambda: producer), producer


def offsets(producer: FakeProducer) -> list[int]:
    """The input offsets the dead letters taken name, in the order taken."""
    return [orjson.loads(value)["source"]["offset"] for _, _, _, value in producer.records()]


def test_outputs_go_to_their_topics_in_order_and_the_batch_waits_for_their_delivery() -> None:
    send, producer = sender(delay=0.02)
    asyncio.run(send.send_all(outputs(6)))
    settings = Settings()
    assert [topic for topic, _, _ in producer.taken] == [
        settings.alerts_topic,
        settings.dead_letters_topic,
    ]  # one key: a batch per topic
    assert offsets(producer) == [0, 2, 4, 1, 3, 5]
    assert all(delivery.done() for delivery in producer.deliveries)


def test_a_delivery_that_never_comes_holds_the_batch_back_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wiring, "OUTPUT_DELIVERY_WAIT_SECONDS", 0.05)
    send, producer = sender(delay=None)
    asyncio.run(asyncio.wait_for(send.send_all(outputs(2)), timeout=5.0))
    assert offsets(producer) == [0, 1]
    assert not any(delivery.done() for delivery in producer.deliveries)


def test_a_batch_without_outputs_sends_and_waits_for_nothing() -> None:
    send, producer = sender(delay=None)
    asyncio.run(asyncio.wait_for(send.send_all([]), timeout=1.0))
    assert producer.taken == []


class _Tables:
    """What ChangelogWriter uses of an intake: the changes its tables buffered."""

    def __init__(self, *records: tuple[str, int, bytes, bytes | None]) -> None:
        self.records = list(records)

    def flush_state(self, *, versions: bool = True) -> list[tuple[str, int, bytes, bytes | None]]:
        self.versions = versions
        drained, self.records = self.records, []
        return drained


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


def test_table_changes_go_to_the_partitions_they_were_written_for() -> None:
    producer = FakeProducer()
    writer = wiring.ChangelogWriter(Settings(), lambda: producer)
    tables = _Tables(("join-changelog", 2, b"a", b"1"), ("join-changelog", 0, b"b", None))
    asyncio.run(writer.write(tables))  # type: ignore[arg-type]
    assert producer.records() == [
        ("join-changelog", 2, b"a", b"1"),
        ("join-changelog", 0, b"b", None),
    ]


def test_a_write_returns_only_after_a_write_in_progress_handed_its_changes_over() -> None:
    """One agent's write may take the changes of another's batch: that other agent must not
    ack its batch (it acks once its own write returns) before they are with the producer."""
    producer = GatedProducer()
    writer = wiring.ChangelogWriter(Settings(), lambda: producer)

    async def run() -> list[str]:
        done: list[str] = []

        async def write(name: str, tables: _Tables) -> None:
            await writer.write(tables)  # type: ignore[arg-type]
            done.append(name)

        first = asyncio.create_task(write("first", _Tables(("changelog", 1, b"k", b"v"))))
        await asyncio.sleep(0.01)  # the first write holds the lock, waiting for the producer
        second = asyncio.create_task(write("second", _Tables()))
        await asyncio.sleep(0.05)
        assert done == []  # the second has nothing of its own, and still waits
        producer.gate.set()
        await asyncio.gather(first, second)
        return done

    assert asyncio.run(run()) == ["first", "second"]
    assert producer.records() == [("changelog", 1, b"k", b"v")]


@pytest.mark.parametrize(
    ("delivery", "written"),
    [("delivered", True), ("failed", False), ("delivered later", True), ("never", False)],
)
def test_the_versions_state_is_written_only_once_the_batchs_outputs_are_delivered(
    delivery: str, written: bool
) -> None:
    """A state saved with an alert open whose message was lost would never send it: the
    restarted worker skips the events the state reflects."""
    producer = FakeProducer()
    writer = wiring.ChangelogWriter(Settings(send_timeout_seconds=0.2), lambda: producer)
    tables = _Tables(("join-changelog", 0, b"a", b"1"))

    async def run() -> None:
        output: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if delivery == "delivered":
            output.set_result(None)
        elif delivery == "failed":
            output.set_exception(RuntimeError("not delivered"))
        elif delivery == "delivered later":
            asyncio.get_running_loop().call_later(0.05, output.set_result, None)
        await writer.write(tables, after=[output])  # type: ignore[arg-type]

    asyncio.run(asyncio.wait_for(run(), timeout=5.0))
    assert tables.versions is written
    assert producer.records() == [("join-changelog", 0, b"a", b"1")]  # the rest goes at once
