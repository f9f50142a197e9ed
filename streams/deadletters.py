"""Dead letters: every input message that could not be used, and why."""

import base64
import hashlib

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

    Every dead letter of a message with a value says how large the value was
    (``original_bytes``) and its SHA-256 digest (``original_sha256``), so a
    consumer can check what it holds, or find the message again. A message
    whose value and key together are over ``max_original_bytes`` (a worker's
    ``max_message_bytes``) is carried cut: ``original`` holds the first
    ``max_original_bytes`` bytes of the value less the key's (none when the
    key alone is as long), ``original_truncated`` is true and the reason
    says where to read the whole. So a dead letter carries at most
    ``max_original_bytes`` of value and key, at most about 4/3 of that once
    base64-encoded, plus a few kilobytes of text (its reason, field path and
    key are cut at :data:`MAX_TEXT_CHARS`), and its topic can be made to take
    every one (``Settings.dead_letter_max_bytes``): a dead letter the broker
    refused would be lost.

    >>> from driftline.schemas import DeadLetterReason
    >>> letter = dead_letter(
    ...     Rejection(DeadLetterReason.INVALID_JSON, "not JSON"),
    ...     value=b"{", key=b"m", source=KafkaPosition(topic="t", partition=0, offset=7),
    ... )
    >>> letter.original, letter.original_bytes, letter.original_truncated, letter.key
    ('ew==', 1, False, 'm')
    >>> letter.original_sha256[:16]
    '021fb596db81e6d0'
    >>> cut = dead_letter(
    ...     Rejection(DeadLetterReason.TOO_LARGE, "too large"),
    ...     value=b"0123456789", key=b"m", source=KafkaPosition(topic="t", partition=0, offset=8),
    ...     max_original_bytes=5,
    ... )
    >>> base64.b64decode(cut.original), cut.original_bytes, cut.original_truncated
    (b'0123', 10, True)
    """
    message = _cut(rejection.message)
    original = digest = None
    truncated = False
    if value is not None:
        digest = hashlib.sha256(value).hexdigest()
        carried = value
        key_size = 0 if key is None else len(key)
        if max_original_bytes is not None and len(value) + key_size > max_original_bytes:
            carried, truncated = value[: max(max_original_bytes - key_size, 0)], True
            message += (
                f" (the message's {len(value):,} bytes are cut to their first {len(carried):,}: "
                f"a dead letter carries at most {max_original_bytes:,} bytes of value and key; "
                f"read the whole at topic {source.topic}, partition {source.partition}, "
                f"offset {source.offset})"
            )
        original = base64.b64encode(carried).decode("ascii")
    return DeadLetter(
        reason=rejection.reason,
        message=message,
        field_path=None if rejection.field_path is None else _cut(rejection.field_path),
        source=source,
        key=_text(key),
        original=original,
        original_bytes=None if value is None else len(value),
        original_sha256=digest,
        original_truncated=truncated,
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
