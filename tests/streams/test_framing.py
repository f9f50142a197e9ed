import json

from hypothesis import given
from hypothesis import strategies as st
from samples import LABEL_DOCUMENT

from driftline.schemas import DeadLetterReason, LabelEvent, PredictionEvent
from driftline.streams.codecs import MESSAGE_CHARS, Rejection, decode, decode_many
from driftline.streams.framing import HEADER_BYTES, RegistryFrame, registry_frame

LIMIT = 16_384
LABEL = LABEL_DOCUMENT
AVRO_LABEL = b"\x0achurn\x06l-1\x06e-1\x00\x0cleaves"
"""A label as Avro binary might write it: strings as a zigzag length and their bytes."""


def framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_a_framed_message_gives_its_schema_id_and_payload(schema_id, payload):
    frame = registry_frame(framed(schema_id, payload))
    assert frame == RegistryFrame(schema_id, payload)
    assert frame.holds_json == payload.lstrip(b" \t\n\r").startswith(b"{")
    assert f"schema id {schema_id}" in frame.describe()


@given(st.binary(max_size=64))
def test_only_a_message_opening_with_the_magic_byte_and_a_whole_header_is_framed(value):
    frame = registry_frame(value)
    assert (frame is not None) == (len(value) >= HEADER_BYTES and value[0] == 0)


def test_json_whitespace_may_come_before_the_object():
    assert registry_frame(framed(7, b' \n\t\r{"a": 1}')).holds_json  # type: ignore[union-attr]
    assert not registry_frame(framed(7, b'\x0c{"a": 1}')).holds_json  # type: ignore[union-attr]
    assert not registry_frame(framed(7, b"[1, 2]")).holds_json  # type: ignore[union-attr]


def test_an_event_from_the_json_schema_serializer_is_read_as_plain_json():
    value = json.dumps(LABEL).encode()
    result = decode(LabelEvent, framed(100_003, value), max_bytes=LIMIT)
    assert isinstance(result, LabelEvent)
    assert result == decode(LabelEvent, value, max_bytes=LIMIT)


def test_an_avro_or_protobuf_payload_is_rejected_naming_the_framing_and_schema_id():
    for payload in (AVRO_LABEL, b"\x00\x08\x96\x01", b""):
        result = decode(LabelEvent, framed(42, payload), max_bytes=LIMIT)
        assert isinstance(result, Rejection)
        assert result.reason is DeadLetterReason.UNSUPPORTED_FRAMING
        assert "Schema Registry framing (magic byte 0, schema id 42)" in result.message
        assert "JSON Schema serializer" in result.message
        assert result.field_path is None


def test_a_broken_json_payload_is_rejected_as_its_json_is_and_names_the_framing():
    result = decode(PredictionEvent, framed(9, b'{"model_id": "m", '), max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.reason is DeadLetterReason.INVALID_JSON
    assert result.message.endswith("(magic byte 0, schema id 9))")


def test_the_size_limit_counts_the_whole_message():
    value = json.dumps(LABEL).encode()
    result = decode(LabelEvent, framed(1, value), max_bytes=len(value) + HEADER_BYTES - 1)
    assert isinstance(result, Rejection)
    assert result.reason is DeadLetterReason.TOO_LARGE


def test_a_batch_reads_framed_messages_as_one_by_one():
    values = [
        framed(1, json.dumps(LABEL).encode()),
        framed(2, AVRO_LABEL),
        json.dumps(LABEL).encode(),
        framed(3, b"{" + b"x" * MESSAGE_CHARS),
    ]
    results = decode_many(LabelEvent, values, max_bytes=LIMIT)
    assert results == [decode(LabelEvent, value, max_bytes=LIMIT) for value in values]
    assert [type(result) for result in results] == [LabelEvent, Rejection, LabelEvent, Rejection]
    assert len(results[3].message) <= MESSAGE_CHARS  # type: ignore[union-attr]
