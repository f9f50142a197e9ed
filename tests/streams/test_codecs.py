import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from samples import LABEL_DOCUMENT

from driftline.schemas import (
    DeadLetterReason,
    FeatureEvent,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
)
from driftline.streams.codecs import (
    EXCERPT_CHARS,
    MESSAGE_CHARS,
    Rejection,
    decode,
    encode,
)

LIMIT = 16_384
R = DeadLetterReason

PREDICTION = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "e-1",
    "event_time": "2026-01-01T00:00:00Z",
    "features": {"tenure": 7, "plan": "pro", "active": True, "age": None},
    "prediction": "stays",
    "probabilities": {"stays": 0.8, "leaves": 0.2},
    "interval": {"lower": 0.1, "upper": 0.9},
}
FEATURES = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "f-1",
    "prediction_id": "e-1",
    "event_time": "2026-01-01T00:00:00+02:00",
    "features": {"tenure": 7, "plan": "pro"},
}
LABEL = LABEL_DOCUMENT
SPEC = {
    "model_id": "churn",
    "model_version": "3",
    "task": "classification",
    "classes": ["stays", "leaves"],
    "features": [
        {"name": "tenure", "kind": "numeric", "minimum": 0},
        {"name": "plan", "kind": "categorical", "categories": ["free", "pro"]},
    ],
    "quality_window": 500,
    "description": "churn model",
}
VALID = {PredictionEvent: PREDICTION, FeatureEvent: FEATURES, LabelEvent: LABEL, ModelSpec: SPEC}
INVALID = {
    PredictionEvent: R.INVALID_EVENT,
    FeatureEvent: R.INVALID_EVENT,
    LabelEvent: R.INVALID_EVENT,
    ModelSpec: R.INVALID_SPEC,
}

EVENT = (
    '{"model_id": "m", "model_version": "1", "event_id": "e",'
    ' "event_time": "2026-01-01T00:00:00Z", %s}'
)


def event_with(members: str) -> bytes:
    """A prediction event with raw JSON members added, written as given."""
    return (EVENT % members).encode()


def with_x(raw: str) -> bytes:
    return event_with('"features": {"x": ' + raw + "}")


def spec_with(features: str) -> bytes:
    start = '{"model_id": "m", "model_version": "1", "task": "regression", "features": ['
    return (start + features + "]}").encode()


def label_with(time: str) -> bytes:
    start = '{"model_id": "m", "event_id": "e", "prediction_id": "p", "event_time": "'
    return (start + time + '", "label": 1}').encode()


def dumps(document: object) -> bytes:
    return json.dumps(document).encode()


def decoded_or_rejected(model, value, max_bytes=LIMIT):
    result = decode(model, value, max_bytes=max_bytes)
    assert isinstance(result, model | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, DeadLetterReason)
        assert result.message.strip()
        assert len(result.message) <= MESSAGE_CHARS
    return result


@pytest.mark.parametrize(
    ("model", "document"), VALID.items(), ids=lambda v: getattr(v, "__name__", "")
)
def test_a_valid_message_decodes_to_its_model(model, document):
    result = decode(model, dumps(document), max_bytes=LIMIT)
    assert isinstance(result, model)
    assert result == model.model_validate_json(dumps(document))


def test_a_valid_prediction_keeps_its_values():
    event = decode(PredictionEvent, with_x("1.5"), max_bytes=LIMIT)
    assert isinstance(event, PredictionEvent)
    assert event.features == {"x": 1.5}


def test_the_same_key_in_different_objects_is_no_duplicate():
    document = {**PREDICTION, "features": {"model_id": 1, "x": 2}, "probabilities": None}
    assert isinstance(decode(PredictionEvent, dumps(document), max_bytes=LIMIT), PredictionEvent)


def test_encode_writes_compact_json_that_decodes_back():
    event = PredictionEvent.model_validate_json(dumps(PREDICTION))
    assert b" " not in encode(event)
    assert decode(PredictionEvent, encode(event), max_bytes=LIMIT) == event


CASES = [
    # (id, model, value, reason, field_path, words the message must hold)
    ("none", PredictionEvent, None, R.EMPTY, None, "tombstone"),
    ("no-bytes", LabelEvent, b"", R.EMPTY, None, "tombstone"),
    ("too-large", PredictionEvent, b" " * (LIMIT + 1), R.TOO_LARGE, None, "MAX_MESSAGE_BYTES"),
    ("too-large-first", ModelSpec, b"\xff" * (LIMIT + 1), R.TOO_LARGE, None, f"{LIMIT + 1} bytes"),
    ("not-utf8", PredictionEvent, b"\xff\xfe{}", R.INVALID_UTF8, None, "UTF-8"),
    (
        "utf8-surrogate",
        PredictionEvent,
        with_x('"a"').replace(b'"a"', b'"\xed\xa0\x80"'),
        R.INVALID_UTF8,
        None,
        "UTF-8",
    ),
    ("truncated", PredictionEvent, b'{"model_id": ', R.INVALID_JSON, None, "cut short"),
    ("trailing-garbage", PredictionEvent, with_x("1") + b" x", R.INVALID_JSON, None, "after"),
    ("two-documents", FeatureEvent, b"{} {}", R.INVALID_JSON, None, "after"),
    (
        "deep-arrays",
        PredictionEvent,
        b"[" * 2_000 + b"]" * 2_000,
        R.INVALID_JSON,
        None,
        "nested too deeply",
    ),
    (
        "deep-objects",
        ModelSpec,
        b'{"a":' * 300 + b"1" + b"}" * 300,
        R.INVALID_JSON,
        None,
        "nested too deeply",
    ),
    (
        "lone-high-surrogate",
        PredictionEvent,
        with_x('"\\ud800"'),
        R.INVALID_JSON,
        None,
        "lone surrogate",
    ),
    (
        "lone-low-surrogate",
        LabelEvent,
        label_with("\\udc00"),
        R.INVALID_JSON,
        None,
        "lone surrogate",
    ),
    (
        "byte-order-mark",
        PredictionEvent,
        b"\xef\xbb\xbf" + with_x("1"),
        R.INVALID_JSON,
        None,
        "byte order mark",
    ),
    ("lower-case-nan", PredictionEvent, with_x("nan"), R.INVALID_JSON, None, "not valid JSON"),
    (
        "huge-integer",
        PredictionEvent,
        with_x("1" * 5_000),
        R.NUMBER_OUT_OF_RANGE,
        "features.x",
        "too large",
    ),
    (
        "huge-decimal",
        PredictionEvent,
        with_x("9" * 5_000 + ".5"),
        R.NUMBER_OUT_OF_RANGE,
        "features.x",
        "too large",
    ),
    (
        "long-integer",
        PredictionEvent,
        with_x("1" * 400),
        R.NUMBER_OUT_OF_RANGE,
        "features.x",
        "too large",
    ),
    (
        "overflowing-exponent",
        PredictionEvent,
        with_x("1e400"),
        R.NUMBER_OUT_OF_RANGE,
        "features.x",
        "1e400",
    ),
    (
        "negative-overflow",
        PredictionEvent,
        with_x("-1.5E400"),
        R.NUMBER_OUT_OF_RANGE,
        "features.x",
        "-1.5E400",
    ),
    (
        "overflowing-probability",
        PredictionEvent,
        event_with('"probabilities": {"a": 1e400, "b": 0.5}'),
        R.NUMBER_OUT_OF_RANGE,
        "probabilities.a",
        "1e400",
    ),
    (
        "overflowing-minimum",
        ModelSpec,
        spec_with('{"name": "a", "kind": "numeric", "minimum": 1e999}'),
        R.NUMBER_OUT_OF_RANGE,
        "features.0.minimum",
        "1e999",
    ),
    ("nan", PredictionEvent, with_x("NaN"), R.NON_FINITE_NUMBER, "features.x", "NaN"),
    (
        "infinity",
        PredictionEvent,
        with_x("Infinity"),
        R.NON_FINITE_NUMBER,
        "features.x",
        "Infinity",
    ),
    (
        "minus-infinity",
        PredictionEvent,
        with_x("-Infinity"),
        R.NON_FINITE_NUMBER,
        "features.x",
        "-Infinity",
    ),
    (
        "nan-prediction",
        PredictionEvent,
        event_with('"prediction": NaN'),
        R.NON_FINITE_NUMBER,
        "prediction",
        "NaN",
    ),
    (
        "nan-probability",
        PredictionEvent,
        event_with('"probabilities": {"a": NaN, "b": 0.5}'),
        R.NON_FINITE_NUMBER,
        "probabilities.a",
        "NaN",
    ),
    (
        "nan-interval",
        PredictionEvent,
        event_with('"interval": {"lower": NaN, "upper": 1}'),
        R.NON_FINITE_NUMBER,
        "interval.lower",
        "NaN",
    ),
    (
        "infinite-label",
        LabelEvent,
        label_with("2026-01-01T00:00:00Z").replace(b'"label": 1', b'"label": Infinity'),
        R.NON_FINITE_NUMBER,
        "label",
        "Infinity",
    ),
    (
        "duplicate-top-level-key",
        PredictionEvent,
        event_with('"model_id": "n"'),
        R.DUPLICATE_KEY,
        "model_id",
        "'model_id'",
    ),
    (
        "duplicate-that-breaks-validation",
        PredictionEvent,
        event_with('"model_id": 1'),
        R.DUPLICATE_KEY,
        "model_id",
        "2 times",
    ),
    (
        "duplicate-feature",
        PredictionEvent,
        event_with('"features": {"x": 1, "y": 2, "x": 3}'),
        R.DUPLICATE_KEY,
        "features.x",
        "'features'",
    ),
    (
        "duplicate-probability",
        PredictionEvent,
        event_with('"probabilities": {"a": 0.5, "a": 1.0}'),
        R.DUPLICATE_KEY,
        "probabilities.a",
        "'a'",
    ),
    (
        "duplicate-in-a-list",
        ModelSpec,
        spec_with(
            '{"name": "a", "kind": "numeric"}, {"name": "b", "kind": "numeric", "kind": "boolean"}'
        ),
        R.DUPLICATE_KEY,
        "features.1.kind",
        "'features.1'",
    ),
    (
        "schema-version-2",
        PredictionEvent,
        event_with('"schema_version": 2'),
        R.UNSUPPORTED_SCHEMA_VERSION,
        "schema_version",
        "reads schema_version 1; got 2",
    ),
    (
        "spec-schema-version-7",
        ModelSpec,
        spec_with("").replace(b"{", b'{"schema_version": 7, ', 1),
        R.UNSUPPORTED_SCHEMA_VERSION,
        "schema_version",
        "got 7",
    ),
    (
        "version-beats-other-problems",
        LabelEvent,
        b'{"schema_version": 2, "labels": []}',
        R.UNSUPPORTED_SCHEMA_VERSION,
        "schema_version",
        "more problems",
    ),
    (
        "schema-version-as-text",
        PredictionEvent,
        event_with('"schema_version": "1"'),
        R.INVALID_EVENT,
        "schema_version",
        "Input should be 1",
    ),
    (
        "missing-field",
        PredictionEvent,
        b'{"model_id": "m"}',
        R.INVALID_EVENT,
        "model_version",
        "required",
    ),
    (
        "missing-feature-field",
        FeatureEvent,
        dumps({k: v for k, v in FEATURES.items() if k != "prediction_id"}),
        R.INVALID_EVENT,
        "prediction_id",
        "required",
    ),
    (
        "missing-label",
        LabelEvent,
        dumps({k: v for k, v in LABEL.items() if k != "label"}),
        R.INVALID_EVENT,
        "label",
        "required",
    ),
    (
        "unknown-field",
        PredictionEvent,
        event_with('"featurs": {"x": 1}'),
        R.INVALID_EVENT,
        "featurs",
        "not a field",
    ),
    (
        "number-as-text",
        PredictionEvent,
        event_with('"probabilities": {"a": "0.5", "b": 0.5}'),
        R.INVALID_EVENT,
        "probabilities.a",
        'valid number (got "0.5")',
    ),
    (
        "boolean-as-number",
        PredictionEvent,
        event_with('"probabilities": {"a": true, "b": 0.5}'),
        R.INVALID_EVENT,
        "probabilities.a",
        "got true",
    ),
    (
        "number-as-id",
        PredictionEvent,
        dumps({**PREDICTION, "model_id": 1}),
        R.INVALID_EVENT,
        "model_id",
        "valid string",
    ),
    (
        "boolean-prediction",
        PredictionEvent,
        event_with('"prediction": true'),
        R.INVALID_EVENT,
        "prediction",
        "valid number or a valid string",
    ),
    (
        "object-feature-value",
        PredictionEvent,
        with_x('{"float": 1}'),
        R.INVALID_EVENT,
        "features.x",
        'got {"float": 1}',
    ),
    (
        "list-feature-named-float",
        PredictionEvent,
        event_with('"features": {"float": [1]}'),
        R.INVALID_EVENT,
        "features.float",
        "got [1]",
    ),
    (
        "empty-feature-name",
        PredictionEvent,
        event_with('"features": {"": 1}'),
        R.INVALID_EVENT,
        "features",
        "a key of field 'features'",
    ),
    (
        "features-as-list",
        FeatureEvent,
        dumps({**FEATURES, "features": [1]}),
        R.INVALID_EVENT,
        "features",
        "object",
    ),
    (
        "naive-datetime",
        LabelEvent,
        label_with("2026-01-01T00:00:00"),
        R.INVALID_EVENT,
        "event_time",
        "timezone",
    ),
    (
        "probabilities-not-summing-to-1",
        PredictionEvent,
        event_with('"probabilities": {"a": 0.6, "b": 0.5}'),
        R.INVALID_EVENT,
        "probabilities",
        "sum to 1.1",
    ),
    (
        "interval-upside-down",
        PredictionEvent,
        event_with('"interval": {"lower": 2, "upper": 1}'),
        R.INVALID_EVENT,
        "interval",
        "lower (2.0) is above upper (1.0)",
    ),
    ("top-level-array", PredictionEvent, b"[]", R.INVALID_EVENT, None, "JSON array"),
    ("top-level-string", FeatureEvent, b'"event"', R.INVALID_EVENT, None, "JSON string"),
    ("top-level-number", LabelEvent, b"1", R.INVALID_EVENT, None, "JSON number"),
    ("top-level-null", PredictionEvent, b"null", R.INVALID_EVENT, None, "JSON null"),
    ("spec-top-level-array", ModelSpec, b"[]", R.INVALID_SPEC, None, "JSON array"),
    (
        "spec-missing-task",
        ModelSpec,
        dumps({k: v for k, v in SPEC.items() if k != "task"}),
        R.INVALID_SPEC,
        "task",
        "required",
    ),
    (
        "spec-inconsistent-feature",
        ModelSpec,
        spec_with('{"name": "plan", "kind": "categorical", "minimum": 0}'),
        R.INVALID_SPEC,
        "features.0",
        "numeric features only",
    ),
    (
        "spec-bad-kind",
        ModelSpec,
        spec_with('{"name": "a", "kind": "text"}'),
        R.INVALID_SPEC,
        "features.0.kind",
        "'numeric', 'categorical' or 'boolean'",
    ),
]


@pytest.mark.parametrize(
    ("model", "value", "reason", "field_path", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_each_kind_of_bad_message_is_rejected_with_its_reason(
    model, value, reason, field_path, words
):
    result = decoded_or_rejected(model, value)
    assert isinstance(result, Rejection)
    assert (result.reason, result.field_path) == (reason, field_path), result.message
    assert words in result.message


def test_a_rejection_counts_the_further_problems():
    result = decode(PredictionEvent, b'{"model_id": "m"}', max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.message.startswith("field 'model_version' is required but missing")
    assert "(and 2 more problems)" in result.message
    single = decode(PredictionEvent, b'{"model_id": "m", "model_version": "1"}', max_bytes=LIMIT)
    assert isinstance(single, Rejection)
    assert "(and 1 more problem)" in single.message


def test_a_number_problem_is_named_before_other_problems():
    result = decode(
        PredictionEvent, b'{"model_id": "m", "features": {"x": 1e400}}', max_bytes=LIMIT
    )
    assert isinstance(result, Rejection)
    assert (result.reason, result.field_path) == (R.NUMBER_OUT_OF_RANGE, "features.x")
    assert "(and 3 more problems)" in result.message


def test_huge_input_is_never_quoted_whole():
    value = dumps({**PREDICTION, "prediction": "z" * 3_000, "featurs" + "q" * 3_000: 1})
    result = decode(PredictionEvent, value, max_bytes=100_000)
    assert isinstance(result, Rejection)
    assert "z" * (EXCERPT_CHARS + 1) not in result.message
    assert "q" * (EXCERPT_CHARS + 1) not in result.message
    assert "3002 characters" in result.message
    assert len(result.message) < 600


class Exploding(PredictionEvent):
    @classmethod
    def model_validate_json(cls, *args, **kwargs):
        raise RuntimeError("a bug")


class ExplodingSpec(ModelSpec):
    @classmethod
    def model_validate_json(cls, *args, **kwargs):
        raise ZeroDivisionError


@pytest.mark.parametrize(
    ("model", "reason", "words"),
    [
        (Exploding, R.INVALID_EVENT, "RuntimeError"),
        (ExplodingSpec, R.INVALID_SPEC, "ZeroDivisionError"),
    ],
)
def test_an_unexpected_exception_still_becomes_a_rejection(model, reason, words):
    result = decode(model, with_x("1"), max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert words in result.message


def raising(error: ValidationError) -> type[PredictionEvent]:
    class Refusing(PredictionEvent):
        @classmethod
        def model_validate_json(cls, *args, **kwargs):
            raise error

    return Refusing


ODD_ERRORS = [
    [],
    [
        InitErrorDetails(
            type=PydanticCustomError("odd", "an odd thing"), loc=("x", 3), input=object()
        )
    ],
    [InitErrorDetails(type=PydanticCustomError("odd", "odd"), loc=(), input=float("nan"))],
    [
        InitErrorDetails(
            type="json_invalid", loc=(), input=b"", ctx={"error": "number out of range"}
        )
    ],
    [InitErrorDetails(type="missing", loc=("features", "[key]"), input={})],
]


@pytest.mark.parametrize("errors", ODD_ERRORS)
def test_a_validation_error_of_any_shape_becomes_a_rejection(errors):
    error = ValidationError.from_exception_data("PredictionEvent", errors)
    result = decoded_or_rejected(raising(error), with_x("1"))
    assert isinstance(result, Rejection)


# Properties.


@st.composite
def mangled_events(draw):
    """A valid message with a few bytes changed, inserted or removed."""
    value = bytearray(dumps(draw(st.sampled_from(list(VALID.values())))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(value) - 1))
        edit = draw(st.sampled_from(["change", "insert", "delete"]))
        byte = draw(st.sampled_from(b'{}[]",:\\0123456789eE.-+ ntfuIN\xed\xff\x00'))
        if edit == "change":
            value[at] = byte
        elif edit == "insert":
            value.insert(at, byte)
        else:
            del value[at]
    return bytes(value)


MODELS = st.sampled_from(list(VALID))


@settings(max_examples=300, deadline=None)
@given(MODELS, st.none() | st.binary(max_size=LIMIT + 16) | mangled_events())
def test_no_bytes_make_decoding_raise(model, value):
    decoded_or_rejected(model, value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def documents(model):
    """Objects with some of the model's own fields, holding anything."""
    fields = {name: json_values for name in model.model_fields}
    fields["event_time"] = json_values | st.just("2026-01-01T00:00:00Z")
    fields["features"] = json_values | st.dictionaries(st.text(max_size=8), json_values)
    fields["schema_version"] = json_values | st.just(1)
    return st.fixed_dictionaries({}, optional=fields) | json_values


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_no_json_document_makes_decoding_raise_or_lets_a_non_finite_number_through(data):
    model = data.draw(MODELS)
    document = data.draw(documents(model))
    result = decoded_or_rejected(model, dumps(document), max_bytes=LIMIT * 4)
    if isinstance(result, PredictionEvent | FeatureEvent) and result.features:
        numbers = [value for value in result.features.values() if isinstance(value, float)]
        assert all(math.isfinite(value) for value in numbers)


WRONG_VALUES = st.lists(st.integers(), min_size=1, max_size=3) | st.dictionaries(
    st.text(min_size=1, max_size=5), st.lists(st.integers(), min_size=1, max_size=2), min_size=1
)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_mutated_valid_message_is_rejected_naming_the_field(data):
    model = data.draw(MODELS)
    document = dict(VALID[model])
    mutation = data.draw(st.sampled_from(["drop", "retype", "add"]))
    if mutation == "drop":
        required = [name for name, field in model.model_fields.items() if field.is_required()]
        field = data.draw(st.sampled_from(required))
        del document[field]
    elif mutation == "retype":
        field = data.draw(st.sampled_from(sorted(document)))
        document[field] = data.draw(WRONG_VALUES)
    else:
        field = data.draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in document))
        document[field] = data.draw(st.integers() | st.text(max_size=5) | st.none())
    result = decoded_or_rejected(model, dumps(document))
    assert isinstance(result, Rejection)
    assert result.reason is INVALID[model]
    assert result.field_path is not None
    assert result.field_path == field or result.field_path.startswith(f"{field}.")
    assert repr(field) in result.message or repr(result.field_path) in result.message


def dumps_repeating(document: object, path: tuple) -> str:
    """JSON text of a document whose object at ``path[:-1]`` gives key ``path[-1]`` twice."""
    if isinstance(document, dict):
        members = []
        for key, value in document.items():
            inner = path[1:] if path and path[0] == key else ()
            member = f"{json.dumps(key)}: {dumps_repeating(value, inner)}"
            members.append(member)
            if len(path) == 1 and path[0] == key:
                members.append(member)
        return "{" + ", ".join(members) + "}"
    if isinstance(document, list):
        return (
            "["
            + ", ".join(
                dumps_repeating(value, path[1:] if path and path[0] == index else ())
                for index, value in enumerate(document)
            )
            + "]"
        )
    return json.dumps(document)


def key_paths(document: object, prefix: tuple = ()) -> list[tuple]:
    """The path of every member of every object of a document."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.append((*prefix, key))
            found.extend(key_paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(key_paths(value, (*prefix, index)))
    return found


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_key_given_twice_at_any_depth_is_named(data):
    model = data.draw(MODELS)
    path = data.draw(st.sampled_from(key_paths(VALID[model])))
    result = decoded_or_rejected(model, dumps_repeating(VALID[model], path).encode())
    assert isinstance(result, Rejection)
    assert result.reason is R.DUPLICATE_KEY
    assert result.field_path == ".".join(str(part) for part in path)
    assert f"{path[-1]!r} is given 2 times" in result.message
