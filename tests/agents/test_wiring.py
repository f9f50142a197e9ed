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
