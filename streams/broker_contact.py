"""Whether the brokers answer the worker: the worker's own, cheap view of a Kafka outage.

A broker that is paused, cut off by a network partition or frozen leaves
its TCP connections open, and the kernel even accepts new ones for it, so
connection state says nothing; the Kafka clients only notice when a
request times out (90 s for the consumer's) and then reconnect in a loop.
What does tell is whether requests get answers: a healthy broker answers
every request within moments, a fetch included (it holds one at most
1.5 s for data to arrive). So every request the worker's Kafka clients
send (consumer, producer, admin: all are aiokafka connections) marks its
broker as asked, and every response from it clears the mark; a broker
asked and silent for :data:`UNANSWERED_SECONDS` counts as unreachable
until it answers again. A broker that refuses connections outright, one
that answered this worker before, counts as asked too.

Group joins are left out: the coordinator holds a JoinGroup or SyncGroup
request on purpose until every member of the group has joined.

The marks are taken in :class:`aiokafka.conn.AIOKafkaConnection` itself
(:func:`watch_broker_contact`), a few dictionary operations per request
and response, from the consumer's thread and the event loop's alike.
"""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka.conn import AIOKafkaConnection

UNANSWERED_SECONDS = 10.0
"""How long a broker may leave the worker's requests unanswered before it counts as
unreachable: well beyond what a healthy broker takes, a held fetch (1.5 s) included."""

FORGET_SECONDS = 300.0
"""A broker the clients have not asked anything for this long is no longer counted (it left
the cluster, or was only a bootstrap address): longer than any client's request timeout, so
a broker that is still being retried is never forgotten."""

PATIENT_REQUESTS = frozenset({11, 14})
"""API keys of requests the broker holds on purpose until the group is complete: JoinGroup
and SyncGroup."""

Address = tuple[str, int]
"""A broker's host and port, as the client connects to it."""


class BrokerContact:
    """Which brokers the worker asked something and heard nothing back from, since when.

    >>> now = [0.0]
    >>> contact = BrokerContact(clock=lambda: now[0], wall=lambda: 1_000.0 + now[0])
    >>> contact.asked(("kafka", 9092))
    >>> now[0] = 12.0
    >>> contact.unanswered()
    {('kafka', 9092): 12.0}
    >>> contact.answered(("kafka", 9092))
    >>> contact.unanswered(), contact.back_at
    ({}, 12.0)
    """

    def __init__(
        self,
        *,
        unanswered_seconds: float = UNANSWERED_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.unanswered_seconds = unanswered_seconds
        self.clock = clock
        self.wall = wall
        self._asked_since: dict[Address, float] = {}
        """When each broker was first asked something it has not answered yet."""
        self._last_asked: dict[Address, float] = {}
        self._heard_from: set[Address] = set()
        self._lock = threading.Lock()
        self.back_at: float | None = None
        """When (on ``clock``) a broker last answered again after counting as unreachable."""

    def asked(self, address: Address) -> None:
        """A request that expects an answer went to the broker at ``address``."""
        now = self.clock()
        with self._lock:
            self._asked_since.setdefault(address, now)
            self._last_asked[address] = now

    def answered(self, address: Address) -> None:
        """The broker at ``address`` answered a request."""
        now = self.clock()
        with self._lock:
            self._heard_from.add(address)
            since = self._asked_since.pop(address, None)
            if since is not None and now - since >= self.unanswered_seconds:
                self.back_at = now

    def refused(self, address: Address) -> None:
        """A connection to the broker at ``address`` failed. Counted only for a broker that
        answered before: a bootstrap address that never did is not the worker's broker."""
        with self._lock:
            known = address in self._heard_from
        if known:
            self.asked(address)

    def unanswered(self) -> dict[Address, float]:
        """Each broker that counts as unreachable now, with how long it has been silent."""
        now = self.clock()
        with self._lock:
            return {
                address: now - since
                for address, since in self._asked_since.items()
                if now - since >= self.unanswered_seconds
                and now - self._last_asked[address] < FORGET_SECONDS
            }

    def report(self) -> dict[str, Any]:
        """For the probes: ``reachable``; else ``since`` (UTC, ISO 8601) and ``seconds``, of
        the longest silence, and the ``unanswered`` brokers as ``host:port``."""
        silent = self.unanswered()
        if not silent:
            return {"reachable": True}
        seconds = max(silent.values())
        since = datetime.fromtimestamp(self.wall() - seconds, UTC)
        return {
            "reachable": False,
            "since": since.isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "unanswered": [f"{host}:{port}" for host, port in sorted(silent)],
        }


CONTACT = BrokerContact()
"""What this process's Kafka connections have seen (once :func:`watch_broker_contact` ran)."""

_WATCHED = "_driftline_contact_watched"


def watch_broker_contact() -> None:
    """Make every aiokafka connection of this process tell :data:`CONTACT` of its requests,
    answers and failed connects (once; idempotent)."""
    if getattr(AIOKafkaConnection, _WATCHED, False):
        return
    send, handle_frame, connect = (
        AIOKafkaConnection.send,
        AIOKafkaConnection._handle_frame,
        AIOKafkaConnection.connect,
    )

    def watched_send(self: Any, request: Any, expect_response: bool = True) -> Any:
        if expect_response and getattr(request, "API_KEY", None) not in PATIENT_REQUESTS:
            CONTACT.asked((self.host, self.port))
        return send(self, request, expect_response)

    def watched_handle_frame(self: Any, resp: bytes) -> None:
        CONTACT.answered((self.host, self.port))
        handle_frame(self, resp)

    async def watched_connect(self: Any) -> Any:
        try:
            return await connect(self)
        except OSError:  # refused, unreachable: a broker that hangs is caught by its requests
            CONTACT.refused((self.host, self.port))
            raise

    AIOKafkaConnection.send = watched_send
    AIOKafkaConnection._handle_frame = watched_handle_frame
    AIOKafkaConnection.connect = watched_connect
    setattr(AIOKafkaConnection, _WATCHED, True)
