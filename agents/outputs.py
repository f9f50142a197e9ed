"""What the agents send: typed messages for output topics, encoded only at the edge."""

from dataclasses import dataclass
from enum import StrEnum

from driftline.schemas import (
    Alert,
    DeadLetter,
    PerformanceReport,
    ReferenceProfile,
    RetrainTrigger,
)
from driftline.schemas.summaries import VersionSummary
from driftline.streams import encode

OutputMessage = (
    Alert | DeadLetter | PerformanceReport | RetrainTrigger | VersionSummary | ReferenceProfile
)
"""A message the worker sends."""


class Destination(StrEnum):
    """Which output topic a message goes to."""

    ALERTS = "alerts"
    PERFORMANCE = "performance"
    RETRAIN_TRIGGERS = "retrain_triggers"
    DEAD_LETTERS = "dead_letters"
    SUMMARIES = "summaries"
    """A batch's summary of a model keyed by event id, for the worker that tests its version."""
    REFERENCES = "references"
    """A reference built from a warm-up in summaries, for every worker's first stage."""


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
