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
        key=None if key is None else key.decode("utf-8", errors="replace"),
        original=base64.b64encode(value or b"").decode("ascii"),
    )
