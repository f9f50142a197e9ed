"""Bytes from Kafka to validated events, and validated messages to bytes.

Agents consume raw bytes and call :func:`decode_prediction` themselves, so
a bad message becomes a :class:`Rejection` to dead-letter instead of an
exception that faust would swallow along with the event.
"""

from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from driftline.schemas import DeadLetterReason, PredictionEvent


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message could not be used, in words that say what to fix."""

    reason: DeadLetterReason
    message: str
    field_path: str | None = None


def decode_prediction(value: bytes | None, *, max_bytes: int) -> PredictionEvent | Rejection:
    """Validate one message value as a :class:`PredictionEvent`; never raises.

    >>> decode_prediction(b'{"model_id": 1}', max_bytes=1024).field_path
    'model_id'
    >>> decode_prediction(None, max_bytes=1024).reason
    <DeadLetterReason.EMPTY: 'empty'>
    """
    if not value:
        return Rejection(
            DeadLetterReason.EMPTY,
            "the message has no value (a tombstone or an empty message); "
            "publish one JSON prediction event per message",
        )
    if len(value) > max_bytes:
        return Rejection(
            DeadLetterReason.TOO_LARGE,
            f"the message is {len(value)} bytes, over the limit of {max_bytes}; "
            "send fewer or shorter features, or raise DRIFTLINE_MAX_MESSAGE_BYTES",
        )
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection(
            DeadLetterReason.INVALID_UTF8,
            f"the message is not UTF-8 text ({error.reason} at byte {error.start}); "
            "encode events as UTF-8 JSON",
        )
    try:
        return PredictionEvent.model_validate_json(value)
    except ValidationError as error:
        return _rejection_from(error)


def _rejection_from(error: ValidationError) -> Rejection:
    first = error.errors(include_url=False)[0]
    path = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "json_invalid":
        return Rejection(
            DeadLetterReason.INVALID_JSON,
            f"the message is not valid JSON: {first['msg']}",
        )
    count = error.error_count()
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    where = f"field {path!r}" if path else "the event"
    return Rejection(
        DeadLetterReason.INVALID_EVENT,
        f"{where}: {first['msg']}{more}",
        field_path=path,
    )


def encode(message: BaseModel) -> bytes:
    """Serialize an output message as compact JSON, as consumers read it."""
    return message.model_dump_json().encode("utf-8")
