"""BrokerContact: a broker asked and silent counts as unreachable until it answers again."""

import asyncio
import socket
from collections.abc import Iterator

import pytest
from aiokafka.conn import create_conn

from driftline.streams import broker_contact
from driftline.streams.broker_contact import FORGET_SECONDS, BrokerContact

KAFKA = ("kafka-0", 9092)
OTHER = ("kafka-1", 9092)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def contact(clock: Clock) -> BrokerContact:
    return BrokerContact(unanswered_seconds=10.0, clock=clock, wall=lambda: 1_800_000_000.0)


def test_a_broker_answering_within_the_limit_stays_reachable(contact: BrokerContact, clock: Clock):
    for _ in range(5):
        contact.asked(KAFKA)
        clock.now += 9.0
        contact.answered(KAFKA)
    assert contact.report() == {"reachable": True}
    assert contact.back_at is None


def test_a_broker_silent_past_the_limit_is_unreachable_until_it_answers(
    contact: BrokerContact, clock: Clock
):
    contact.asked(KAFKA)
    clock.now += 5.0
    contact.asked(KAFKA)  # a later request does not restart the silence
    clock.now += 7.5
    assert contact.unanswered() == {KAFKA: 12.5}
    assert contact.report() == {
        "reachable": False,
        "since": "2027-01-15T07:59:47+00:00",  # the wall clock, 12.5 s back
        "seconds": 12.5,
        "unanswered": ["kafka-0:9092"],
    }
    clock.now += 1.0
    contact.answered(KAFKA)
    assert contact.report() == {"reachable": True}
    assert contact.back_at == clock.now


def test_each_broker_is_counted_apart(contact: BrokerContact, clock: Clock):
    contact.asked(KAFKA)
    contact.asked(OTHER)
    clock.now += 11.0
    contact.answered(OTHER)
    assert contact.report()["unanswered"] == ["kafka-0:9092"]


def test_a_refused_connection_counts_only_for_a_broker_heard_from_before(
    contact: BrokerContact, clock: Clock
):
    contact.refused(OTHER)  # a bootstrap address that never answered: not the worker's broker
    contact.asked(KAFKA)
    contact.answered(KAFKA)
    contact.refused(KAFKA)
    clock.now += 10.0
    assert contact.unanswered() == {KAFKA: 10.0}


def test_a_broker_no_longer_asked_is_forgotten(contact: BrokerContact, clock: Clock):
    contact.asked(KAFKA)
    clock.now += FORGET_SECONDS - 1.0
    assert KAFKA in contact.unanswered()
    clock.now += 1.0
    assert contact.report() == {"reachable": True}


@pytest.fixture
def watched() -> Iterator[BrokerContact]:
    """A fresh contact that every aiokafka connection of this process tells, with no wait."""
    broker_contact.watch_broker_contact()
    original = broker_contact.CONTACT
    broker_contact.CONTACT = BrokerContact(unanswered_seconds=0.0)
    try:
        yield broker_contact.CONTACT
    finally:
        broker_contact.CONTACT = original


def test_a_connection_to_a_broker_that_accepts_and_never_answers_is_seen_unanswered(
    watched: BrokerContact,
):
    async def connect_to_a_silent_broker() -> tuple[str, int]:
        server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
        address = server.sockets[0].getsockname()[:2]
        async with server:
            with pytest.raises(asyncio.TimeoutError):
                await create_conn(address[0], address[1], request_timeout_ms=300)
        return address

    host, port = asyncio.run(connect_to_a_silent_broker())
    assert (host, port) in watched.unanswered()


def test_a_refused_connection_is_not_counted_for_a_broker_never_heard_from(
    watched: BrokerContact,
):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host, port = closed.getsockname()[:2]

    async def connect() -> None:
        with pytest.raises(ConnectionRefusedError):
            await create_conn(host, port, request_timeout_ms=1000)

    asyncio.run(connect())
    assert watched.report() == {"reachable": True}


@pytest.mark.kafka
def test_a_real_broker_answers_the_connection(watched: BrokerContact, kafka_broker):
    host, port = kafka_broker.bootstrap_servers.split(":")

    async def connect() -> None:
        conn = await create_conn(host, int(port), request_timeout_ms=30_000)
        conn.close()

    asyncio.run(connect())
    assert watched.report() == {"reachable": True}
    assert (host, int(port)) in watched._heard_from
