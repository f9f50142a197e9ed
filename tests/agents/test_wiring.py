"""OutputSender: a batch's outputs handed over in order, then awaited together (bounded)."""

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from driftline.agents import wiring
from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry
from driftline.agents.wiring import OutputSender
from driftline.schemas import KafkaPosition
from driftline.streams.settings import Settings


class Topic:
    """Records what it takes; delivers each message ``delay`` seconds later (None: never)."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.deliveries: list[asyncio.Future[None]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> "asyncio.Future[None]":
        loop = asyncio.get_running_loop()
        delivery: asyncio.Future[None] = loop.create_future()
        if self.delay is not None:
            loop.call_later(self.delay, delivery.set_result, None)
        self.deliveries.append(delivery)
        sent.append(orjson.loads(value)["source"]["offset"])
        return delivery

    def get_topic_name(self) -> str:
        return "out"


sent: list[int] = []


def outputs(count: int) -> list[Output]:
    """Dead letters of messages at offsets 0..count-1, alternately to two destinations."""
    intake = Intake(Settings(), ModelRegistry())
    letters = []
    for offset in range(count):
        source = KafkaPosition(topic="in", partition=0, offset=offset)
        message = InputMessage(InputTopic.PREDICTIONS, b"{}", None, source)
        letter = intake.failed(message, KeyError())
        destination = Destination.DEAD_LETTERS if offset % 2 else Destination.ALERTS
        letters.append(Output(destination, letter.key, letter.message))
    return letters


def sender(delay: float | None) -> tuple[OutputSender, list[Topic]]:
    topics = [Topic(delay) for _ in range(4)]
    app = SimpleNamespace(
        alerts=topics[0],
        performance=topics[1],
        retrain_triggers=topics[2],
        dead_letters=topics[3],
        settings=Settings(),
    )
    return OutputSender(app), topics  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def nothing_sent() -> None:
    sent.clear()


def test_outputs_are_handed_over_in_order_and_the_batch_waits_for_their_delivery() -> None:
    send, topics = sender(delay=0.02)
    asyncio.run(send.send_all(outputs(6)))
    assert sent == [0, 1, 2, 3, 4, 5]
    assert len(topics[0].deliveries) == 3
    assert len(topics[3].deliveries) == 3
    assert all(d.done() for topic in topics for d in topic.deliveries)


def test_a_delivery_that_never_comes_holds_the_batch_back_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wiring, "OUTPUT_DELIVERY_WAIT_SECONDS", 0.05)
    send, topics = sender(delay=None)
    asyncio.run(asyncio.wait_for(send.send_all(outputs(2)), timeout=5.0))
    assert sent == [0, 1]
    assert not any(d.done() for topic in topics for d in topic.deliveries)


def test_a_batch_without_outputs_sends_and_waits_for_nothing() -> None:
    send, _ = sender(delay=None)
    asyncio.run(asyncio.wait_for(send.send_all([]), timeout=1.0))
    assert sent == []
