"""What the agents send: typed messages for output topics, encoded only at the edge."""

from dataclasses import dataclass
from enum import StrEnum

from driftline.schemas import Alert, DeadLetter, PerformanceReport, RetrainTrigger
from driftline.streams import encode

OutputMessage = Alert | DeadLetter | PerformanceReport | RetrainTrigger
"""A message the worker sends."""


class Destination(StrEnum):
    """Which output topic a message goes to."""

    ALERTS = "alerts"
    PERFORMANCE = "performance"
    RETRAIN_TRIGGERS = "retrain_triggers"
    DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True, slots=True)
class Output:
    """One message to send, with its key; the send loop encodes it."""

    destination: Destination
    key: bytes | None
    message: OutputMessage

    @property
    def value(self) -> bytes:
        """The message as the bytes that go on the wire."""
        return encode(self.message)
