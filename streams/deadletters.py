"""Dead letters: every input message that could not be used, and why."""

import base64

from driftline.schemas import DeadLetter, KafkaPosition
from driftline.streams.codecs import Rejection

MAX_TEXT_CHARS = 2_048
"""Longest reason, field path or key text a dead letter carries: a longer reason or field path
is cut (and says so), a longer key is left out (the record's own key still holds it)."""


def dead_letter(
    rejection: Rejection,
    *,
    value: bytes | None,
    key: bytes | None,
    source: KafkaPosition,
    max_original_bytes: int | None = None,
) -> DeadLetter:
    """The dead letter of one rejected message, carrying its original bytes.

    A message whose value and key together are over ``max_original_bytes``
    (a worker's ``max_message_bytes``) goes without its value: ``original``
    is null and the reason says how large it was and where to read it. So a
    dead letter is at most about 4/3 of that bound (base64) plus a few
    kilobytes of text, and its topic can be made to take every one
    (``Settings.dead_letter_max_bytes``): a dead letter the broker refused
    would be lost.

    >>> from driftline.schemas import DeadLetterReason
    >>> letter = dead_letter(
    ...     Rejection(DeadLetterReason.INVALID_JSON, "not JSON"),
    ...     value=b"{", key=b"m", source=KafkaPosition(topic="t", partition=0, offset=7),
    ... )
    >>> letter.original, letter.key, letter.source.offset
    ('ew==', 'm', 7)
    """
    message, original = _cut(rejection.message), None
    if value is not None:
        size = len(value) + (0 if key is None else len(key))
        if max_original_bytes is None or size <= max_original_bytes:
            original = base64.b64encode(value).decode("ascii")
        else:
            message += (
                f" (the message's {len(value):,} bytes are not carried: a dead letter carries "
                f"at most {max_original_bytes:,} bytes of value and key; read it at topic "
                f"{source.topic}, partition {source.partition}, offset {source.offset})"
            )
    return DeadLetter(
        reason=rejection.reason,
        message=message,
        field_path=None if rejection.field_path is None else _cut(rejection.field_path),
        source=source,
        key=_text(key),
        original=original,
    )


def _cut(text: str) -> str:
    """``text``, cut at :data:`MAX_TEXT_CHARS` characters (and marked as cut) when longer."""
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return f"{text[:MAX_TEXT_CHARS]}... ({len(text):,} characters in all)"


def _text(key: bytes | None) -> str | None:
    """The key as text when it is UTF-8 and at most :data:`MAX_TEXT_CHARS` bytes long."""
    if key is None or len(key) > MAX_TEXT_CHARS:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None
