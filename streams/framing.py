"""Confluent Schema Registry's wire format around a message: recognised, and taken off JSON.

Producers that use Confluent's serializers put five bytes before each
payload: a magic byte 0 and the 4-byte big-endian id of the payload's
schema in the registry. The JSON Schema serializer then writes the event
as JSON text, which driftline reads once the five bytes are off; the Avro
and Protobuf serializers write binary, which driftline does not read, and
such a message is dead-lettered with a reason of its own that names the
framing and the schema id, instead of as broken JSON or UTF-8.

JSON text never starts with the byte 0, so a frame cannot be mistaken for a
plain JSON message. A frame's payload counts as JSON when, after optional
JSON whitespace, it opens an object: every input event is one.

>>> frame = registry_frame(b"\\x00\\x00\\x00\\x01\\x07" + b'{"label": 1}')
>>> frame.schema_id, frame.payload, frame.holds_json
(263, b'{"label": 1}', True)
>>> registry_frame(b'{"label": 1}') is None
True
"""

from dataclasses import dataclass
from typing import Final

MAGIC_BYTE: Final = 0
"""The first byte of a message in the Schema Registry wire format (format version 0)."""

HEADER_BYTES: Final = 5
"""The magic byte and the 4-byte schema id before the payload."""

_JSON_WHITESPACE: Final = b" \t\n\r"


@dataclass(frozen=True, slots=True)
class RegistryFrame:
    """A message in the Schema Registry wire format: its schema's id, and the payload after it."""

    schema_id: int
    payload: bytes

    @property
    def holds_json(self) -> bool:
        """Whether the payload is JSON text that opens an object (a JSON Schema serializer's),
        rather than Avro or Protobuf binary."""
        return self.payload.lstrip(_JSON_WHITESPACE).startswith(b"{")

    def describe(self) -> str:
        """The framing in words, for a rejection message."""
        return f"Confluent Schema Registry framing (magic byte 0, schema id {self.schema_id})"


def registry_frame(value: bytes) -> RegistryFrame | None:
    """The frame of a message in the Schema Registry wire format; None for any other message.

    A message is framed when it starts with the magic byte and holds at
    least the whole header (the payload may be empty).

    >>> registry_frame(b"\\x00\\x00\\x00\\x00\\x2a\\x02\\x06abc")
    RegistryFrame(schema_id=42, payload=b'\\x02\\x06abc')
    >>> registry_frame(b"\\x00\\x01") is None
    True
    """
    if len(value) < HEADER_BYTES or value[0] != MAGIC_BYTE:
        return None
    return RegistryFrame(int.from_bytes(value[1:HEADER_BYTES], "big"), value[HEADER_BYTES:])
