"""Output messages: drift alerts and dead letters.

Consumers subscribe to these topics; every alert parses back into
:class:`DriftAlert`, every unusable input event into :class:`DeadLetter`.
"""

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field, NonNegativeInt

from driftline.schemas._base import WireModel
from driftline.schemas.events import Identifier


class KafkaPosition(WireModel):
    """Where a message sits on Kafka, so it can be found and replayed."""

    topic: str
    partition: NonNegativeInt
    offset: NonNegativeInt


class DriftEvidence(WireModel):
    """Why a detector says a feature's mean changed, and where.

    Observations are counted per model version and feature, from 1.
    ``observations`` is the one that raised the alert; ``change_observation``
    the estimated first observation after the change. ``mean_before``
    summarises the ``values_before`` observations just before the change,
    ``mean_after`` the ``values_after`` ones from it to the alert.
    """

    detector: Literal["adwin"]
    delta: float = Field(gt=0, lt=1, description="ADWIN's confidence parameter.")
    observations: NonNegativeInt
    change_observation: NonNegativeInt
    mean_before: float
    mean_after: float
    values_before: NonNegativeInt
    values_after: NonNegativeInt


class DriftAlert(WireModel):
    """A feature of one model version drifted.

    ``alert_id`` is derived from the model, version, feature and the
    observation at which the drift was seen, so a replay of the same stream
    yields the same id and consumers can deduplicate on it.
    """

    schema_version: Literal[1] = 1
    alert_id: str
    kind: Literal["drift"] = "drift"
    model_id: Identifier
    model_version: Identifier
    feature: Identifier
    event_id: Identifier
    event_time: AwareDatetime
    evidence: DriftEvidence
    source: KafkaPosition | None = None


class DeadLetterReason(StrEnum):
    """Why an event could not be used; each names what the producer must fix."""

    EMPTY = "empty"
    """A message with no value (a tombstone) on an input topic."""
    TOO_LARGE = "too_large"
    """The message is over the configured size limit."""
    INVALID_UTF8 = "invalid_utf8"
    """The value is not UTF-8 text."""
    INVALID_JSON = "invalid_json"
    """The value is not one well-formed JSON document."""
    INVALID_EVENT = "invalid_event"
    """Well-formed JSON that does not match the event schema."""
    MODEL_LIMIT = "model_limit"
    """The worker already watches as many model versions as it is allowed to."""


class DeadLetter(WireModel):
    """An input event that could not be used, with the reason and the bytes.

    ``original`` holds the message value exactly as received, base64-encoded,
    so the producer can see what was sent and it can be replayed once fixed.
    """

    schema_version: Literal[1] = 1
    reason: DeadLetterReason
    message: str
    field_path: str | None = None
    source: KafkaPosition
    key: str | None = None
    original: str = Field(description="The message value as received, base64-encoded.")
