"""send_until_accepted: a message handed to the producer once, retried until it is taken."""

import asyncio
from typing import Any

import pytest

from driftline.streams import sending
from driftline.streams.sending import send_until_accepted


class Topic:
    """A topic whose producer takes a message after ``refusals`` failed tries, the first
    ``stalls`` of them hanging; each taken message is delivered ``delay`` seconds later."""

    def __init__(self, *, refusals: int = 0, stalls: int = 0, delay: float = 0.01) -> None:
        self.refusals, self.stalls, self.delay = refusals, stalls, delay
        self.tries = 0
        self.taken: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> "asyncio.Future[int]":
        self.tries += 1
        if self.stalls:
            self.stalls -= 1
            self.refusals -= 1
            await asyncio.Event().wait()  # never set: the try hangs
        if self.refusals > 0:
            self.refusals -= 1
            raise OSError("the broker went away")
        self.taken.append((key, value))
        delivery: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.delay, delivery.set_result, len(self.taken))
        return delivery

    def get_topic_name(self) -> str:
        return "alerts"


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait 10 ms instead of half a second, so a test takes no time."""
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: Any = None) -> Any:
        return await real_sleep(min(seconds, 0.01), result)

    monkeypatch.setattr(sending.asyncio, "sleep", sleep)


def test_a_message_taken_at_once_is_sent_once_and_its_delivery_comes_back() -> None:
    topic = Topic()

    async def run() -> int:
        delivery = await send_until_accepted(topic, b"k", b"v", timeout=1.0)  # type: ignore[arg-type]
        assert not delivery.done()  # handed over, not yet on the broker
        return await delivery

    assert asyncio.run(run()) == 1
    assert topic.taken == [(b"k", b"v")]
    assert topic.tries == 1


def test_a_refused_send_is_tried_again_until_the_producer_takes_it() -> None:
    topic = Topic(refusals=3)
    asyncio.run(send_until_accepted(topic, None, b"v", timeout=1.0))  # type: ignore[arg-type]
    assert topic.tries == 4
    assert topic.taken == [(None, b"v")]


def test_a_send_that_hangs_past_the_timeout_is_tried_again() -> None:
    topic = Topic(stalls=1, refusals=1)
    asyncio.run(send_until_accepted(topic, None, b"v", timeout=0.05))  # type: ignore[arg-type]
    assert topic.tries == 2
    assert topic.taken == [(None, b"v")]
