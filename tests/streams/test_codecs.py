import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas import DeadLetterReason, PredictionEvent
from driftline.streams.codecs import Rejection, decode_prediction

LIMIT = 4_096
VALID = (
    '{"model_id": "m", "model_version": "1", "event_id": "e",'
    ' "event_time": "2026-01-01T00:00:00Z", "features": {"x": %s}}'
)


def with_x(raw: str) -> bytes:
    return (VALID % raw).encode()


def test_a_valid_message_decodes_to_an_event():
    event = decode_prediction(with_x("1.5"), max_bytes=LIMIT)
    assert isinstance(event, PredictionEvent)
    assert event.features == {"x": 1.5}


@pytest.mark.parametrize(
    ("value", "reason", "field_path"),
    [
        (None, DeadLetterReason.EMPTY, None),
        (b"", DeadLetterReason.EMPTY, None),
        (b" " * (LIMIT + 1), DeadLetterReason.TOO_LARGE, None),
        (b"\xff\xfe{}", DeadLetterReason.INVALID_UTF8, None),
        (b'{"model_id": ', DeadLetterReason.INVALID_JSON, None),
        (b"[" * 2_000 + b"]" * 2_000, DeadLetterReason.INVALID_JSON, None),
        (with_x("1" * 400), DeadLetterReason.INVALID_EVENT, "features.x"),
        (with_x('"\\ud800"'), DeadLetterReason.INVALID_JSON, None),
        (with_x("NaN"), DeadLetterReason.INVALID_EVENT, "features.x"),
        (with_x("Infinity"), DeadLetterReason.INVALID_EVENT, "features.x"),
        (with_x("1e400"), DeadLetterReason.INVALID_EVENT, "features.x"),
        (with_x('"0.5"'), DeadLetterReason.INVALID_EVENT, "features.x"),
        (with_x("true"), DeadLetterReason.INVALID_EVENT, "features.x"),
        (b'{"model_id": "m"}', DeadLetterReason.INVALID_EVENT, "model_version"),
        (b"[]", DeadLetterReason.INVALID_EVENT, None),
    ],
)
def test_each_kind_of_bad_message_is_rejected_with_its_reason(value, reason, field_path):
    result = decode_prediction(value, max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.field_path == field_path
    assert result.message


def test_a_rejection_counts_the_further_problems():
    result = decode_prediction(b'{"model_id": "m"}', max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert "and 3 more problems" in result.message


@settings(max_examples=500)
@given(st.binary(max_size=LIMIT + 16) | st.none())
def test_no_bytes_make_decoding_raise(value):
    result = decode_prediction(value, max_bytes=LIMIT)
    assert isinstance(result, PredictionEvent | Rejection)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "model_id": json_values,
            "model_version": json_values,
            "event_id": json_values,
            "event_time": json_values | st.just("2026-01-01T00:00:00Z"),
            "features": json_values | st.dictionaries(st.text(), json_values),
            "prediction": json_values,
        },
    )
)
def test_no_json_document_makes_decoding_raise_or_lets_a_non_finite_value_through(document):
    result = decode_prediction(json.dumps(document).encode(), max_bytes=LIMIT * 4)
    assert isinstance(result, PredictionEvent | Rejection)
    if isinstance(result, PredictionEvent):
        assert all(
            value == value and abs(value) != float("inf") for value in result.features.values()
        )
