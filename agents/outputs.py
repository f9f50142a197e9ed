"""What the agents send: messages for output topics, already serialized."""

from dataclasses import dataclass
from enum import StrEnum


class Destination(StrEnum):
    """Which output topic a message goes to."""

    ALERTS = "alerts"
    PERFORMANCE = "performance"
    RETRAIN_TRIGGERS = "retrain_triggers"
    DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True, slots=True)
class Output:
    """One message to send, as bytes, with its key."""

    destination: Destination
    key: bytes | None
    value: bytes
