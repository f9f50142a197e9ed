"""Dead letters: every input message that could not be used, and why."""

import base64

from driftline.schemas import DeadLetter, KafkaPosition
from driftline.streams.codecs import Rejection


def dead_letter(
    rejection: Rejection,
    *,
    value: bytes | None,
    key: bytes | None,
    source: KafkaPosition,
) -> DeadLetter:
    """The dead letter of one rejected message, carrying its original bytes.

    >>> from driftline.schemas import DeadLetterReason
    >>> letter = dead_letter(
    ...     Rejection(DeadLetterReason.INVALID_JSON, "not JSON"),
    ...     value=b"{", key=b"m", source=KafkaPosition(topic="t", partition=0, offset=7),
    ... )
    >>> letter.original, letter.key, letter.source.offset
    ('ew==', 'm', 7)
    """
    return DeadLetter(
        reason=rejection.reason,
        message=rejection.message,
        field_path=rejection.field_path,
        source=source,
        key=_text(key),
        original=None if value is None else base64.b64encode(value).decode("ascii"),
    )


def _text(key: bytes | None) -> str | None:
    """The key as text when it is UTF-8; a key that is not cannot be shown as text."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None
