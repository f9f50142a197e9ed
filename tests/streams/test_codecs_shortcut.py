"""decode's shortcut past the duplicate-key parse changes no outcome.

The reference below is decode as it was before the shortcut: every message
that validates is parsed once more by json to look for repeated keys. The
properties feed both arbitrary bytes and valid events written in many ways
(whitespace anywhere, escaped keys, tricky strings) with mutations (repeated
keys at any depth, NaN, huge numbers, lone surrogates, wrong types, deep
nesting, missing fields, cut bytes), and require the same event or the same
rejection, reason, message and field path alike.
"""

import json

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from driftline.schemas import (
    DeadLetterReason,
    FeatureEvent,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
)
from driftline.streams import codecs
from driftline.streams.codecs import (
    MESSAGE_CHARS,
    Rejection,
    decode,
    decode_many,
)
from driftline.streams.framing import registry_frame

LIMIT = 16_384


def decode_careful(model: type[BaseModel], value: bytes | None, max_bytes: int) -> object:
    """decode before the shortcut, kept as the reference."""
    try:
        result = _decode_careful(model, value, max_bytes)
    except Exception as error:
        return codecs._unexpected(model, error)
    if isinstance(result, Rejection) and len(result.message) > MESSAGE_CHARS:
        return Rejection(result.reason, codecs._cap(result.message), result.field_path)
    return result


def _decode_careful(model: type[BaseModel], value: bytes | None, max_bytes: int) -> object:
    kind = codecs._kind(model)
    if not value:
        return Rejection(
            DeadLetterReason.EMPTY,
            f"the message has no value (a tombstone or an empty message); "
            f"publish one JSON {kind} per message",
        )
    if len(value) > max_bytes:
        return Rejection(
            DeadLetterReason.TOO_LARGE,
            f"the message is {len(value)} bytes, over the limit of {max_bytes} bytes set by "
            f"DRIFTLINE_MAX_MESSAGE_BYTES; send a smaller {kind} (fewer or shorter features), "
            "or raise DRIFTLINE_MAX_MESSAGE_BYTES",
        )
    frame = registry_frame(value)
    if frame is not None:  # the framing is the same either way: taken off a JSON payload
        if not frame.holds_json:
            return codecs._framed(model, frame, max_bytes)
        payload = _decode_careful(model, frame.payload, max_bytes)
        if isinstance(payload, Rejection):
            note = f" (in the payload after its {frame.describe()})"
            return Rejection(payload.reason, payload.message + note, payload.field_path)
        return payload
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection(
            DeadLetterReason.INVALID_UTF8,
            f"the message is not UTF-8 text ({error.reason} at byte {error.start}); "
            f"encode each {kind} as UTF-8 JSON",
        )
    try:
        decoded = model.model_validate_json(value)
    except ValidationError as error:
        return codecs._explain(model, text, error)
    if codecs._has_duplicate_key(text):
        return codecs._duplicate_key_rejection(kind, codecs._parse_tree(text), problems=0)
    return decoded


# Writing JSON text by hand, so that keys can repeat and anything can go anywhere.


class Obj(list[tuple[str, object]]):
    """A JSON object as its members, in order, repeats allowed."""


class Raw(str):
    """JSON text written as it is."""


BAD_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1E999",
    "9" * 320,
    "9" * 4_400,
    '"\\ud800"',
    '"\\udc00x"',
    '"a\\ud83d"',
    "[" * 300 + "]" * 300,
    '{"a":' * 250 + "1" + "}" * 250,
    "true",
    '"0.5"',
    "{}",
    "[]",
    "null",
    "1.0",
    '"2026-01-01T00:00:00"',
    '{"lower": 2, "upper": 1}',
    "nan",
    "",
]

WHITESPACE = st.sampled_from(["", "", "", " ", "  ", "\n", "\t", "\r\n  "])

TRICKY_TEXT = st.text(
    alphabet=st.sampled_from('abc:"\\/ \t\n{}[],\u00e9\u2028\U0001f600\x01') | st.characters(),
    min_size=1,
    max_size=10,
)
NAMES = st.text(min_size=1, max_size=6) | TRICKY_TEXT | st.sampled_from(["a", "x", "model_id"])
FEATURE_VALUES = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**20), 10**20)
    | st.booleans()
    | st.none()
    | TRICKY_TEXT
)
TIMES = st.sampled_from(
    ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123456+02:00", "2026-01-01T00:00Z", "2026-01-01"]
)


@st.composite
def valid_documents(draw: st.DrawFn, model: type[BaseModel]) -> dict[str, object]:
    """A message of ``model`` that decodes, or nearly: its values are drawn freely."""
    if model is ModelSpec:
        return {
            "model_id": draw(NAMES),
            "model_version": "3",
            "task": "classification",
            "classes": ["stays", "leaves"],
            "features": [{"name": draw(NAMES), "kind": "numeric"}],
        }
    document: dict[str, object] = {
        "model_id": draw(NAMES),
        "event_id": draw(NAMES),
        "event_time": draw(TIMES),
    }
    if draw(st.booleans()):
        document["schema_version"] = 1
    if model is not LabelEvent:
        document["model_version"] = draw(NAMES)
    if model is not PredictionEvent:
        document["prediction_id"] = draw(NAMES)
    features = st.dictionaries(NAMES, FEATURE_VALUES, max_size=25)
    if model is FeatureEvent:
        document["features"] = draw(features)
    if model is LabelEvent:
        document["label"] = draw(FEATURE_VALUES)
    if model is PredictionEvent:
        document["features"] = draw(features | st.none())
        optional = {
            "prediction": st.floats(allow_nan=False, allow_infinity=False) | TRICKY_TEXT,
            "probabilities": st.floats(0, 1).map(lambda p: {"yes": p, "no": 1 - p}) | st.none(),
            "interval": st.just({"lower": 0.1, "upper": 0.9}) | st.none(),
        }
        for name, values in optional.items():
            if draw(st.booleans()):
                document[name] = draw(values)
    return document


def as_tree(document: object) -> object:
    if isinstance(document, dict):
        return Obj((key, as_tree(value)) for key, value in document.items())
    if isinstance(document, list):
        return [as_tree(value) for value in document]
    return document


def places(tree: object) -> list[tuple[Obj, int]]:
    """Every member of every object of a tree, as (object, index)."""
    found = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Obj):
            found.extend((node, index) for index in range(len(node)))
            stack.extend(value for _, value in node)
        elif isinstance(node, list):
            stack.extend(node)
    return found


COLON_TEXT = st.sampled_from([":", ":x", '":', 'a\\":b', "\\", " : "]) | TRICKY_TEXT.map(
    ":".__add__
)


HARSH_MUTATIONS = ["repeat"] * 3 + ["colon"] * 2 + ["retype", "replace", "drop", "add"]
MILD_MUTATIONS = ["repeat", "colon"]
"""Mutations that keep an event valid but for the repeated keys."""


def mutate(draw: st.DrawFn, tree: Obj, mutations: list[str]) -> None:
    members = places(tree)
    mutation = draw(st.sampled_from(mutations))
    event(f"mutation: {mutation}")
    if not members:
        return
    target, index = draw(st.sampled_from(members))
    key, value = target[index]
    if mutation == "repeat":
        keep = mutations is MILD_MUTATIONS or draw(st.booleans())
        again = value if keep else as_tree(draw(FEATURE_VALUES))
        target.insert(draw(st.integers(0, len(target))), (key, again))
    elif mutation == "colon":
        texts = [(obj, at) for obj, at in members if isinstance(obj[at][1], str)]
        texts = [(obj, at) for obj, at in texts if obj[at][0] != "event_time"]
        for target, index in draw(st.lists(st.sampled_from(texts), max_size=3)) if texts else ():
            target[index] = (target[index][0], draw(COLON_TEXT))
    elif mutation == "replace":
        target[index] = (key, Raw(draw(st.sampled_from(BAD_VALUES))))
    elif mutation == "drop":
        del target[index]
    elif mutation == "add":
        target.insert(index, (draw(NAMES), as_tree(draw(FEATURE_VALUES))))
    else:
        target[index] = (key, as_tree(draw(st.sampled_from([{"a": 1}, [1, 2], "s", 3.5]))))


def write_string(draw: st.DrawFn, text: str) -> str:
    style = draw(st.sampled_from(["plain", "plain", "ascii", "escaped"]))
    if style == "escaped":
        units = text.encode("utf-16-be", "surrogatepass")
        codes = (int.from_bytes(units[at : at + 2], "big") for at in range(0, len(units), 2))
        return '"' + "".join(f"\\u{code:04x}" for code in codes) + '"'
    return json.dumps(text, ensure_ascii=style == "ascii")


LAYOUTS = {
    "compact": st.just(""),
    "spaced": st.just(" "),
    "pretty": st.sampled_from(["\n  ", "\n    "]),
    "anything": WHITESPACE,
    "mostly compact": st.sampled_from([""] * 15 + [" ", "\n"]),
}


def write(draw: st.DrawFn, node: object, space: st.SearchStrategy[str]) -> str:
    """JSON text of a tree, with whitespace drawn from ``space`` between its tokens."""
    if isinstance(node, Raw):
        return str(node)
    if isinstance(node, Obj):
        members = [
            write_string(draw, key) + draw(space) + ":" + draw(space) + write(draw, value, space)
            for key, value in node
        ]
        return "{" + draw(space) + ("," + draw(space)).join(members) + draw(space) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(write(draw, value, space) for value in node) + "]"
    if isinstance(node, str):
        return write_string(draw, node)
    return json.dumps(node)


@st.composite
def written_messages(draw: st.DrawFn, model: type[BaseModel], *, harsh: bool) -> bytes:
    """A message of ``model`` written by hand, mutated; ``harsh``: anyhow, bytes changed too."""
    tree = as_tree(draw(valid_documents(model)))
    assert isinstance(tree, Obj)
    mutations = HARSH_MUTATIONS if harsh else MILD_MUTATIONS
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3, 4]))):
        mutate(draw, tree, mutations)
    space = LAYOUTS[draw(st.sampled_from(sorted(LAYOUTS)))]
    text = draw(space) + write(draw, tree, space) + draw(space)
    value = bytearray(text.encode("utf-8", "surrogatepass"))
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2])) if harsh else 0):
        at = draw(st.integers(0, max(len(value) - 1, 0)))
        byte = draw(st.sampled_from(b'{}[]",:\\0123456789eE.-+ \tntfuIN\xed\xff\x00'))
        if draw(st.booleans()):
            value.insert(at, byte)
        elif value:
            del value[at]
    return bytes(value)


MODELS = st.sampled_from([PredictionEvent, PredictionEvent, FeatureEvent, LabelEvent, ModelSpec])


def assert_same_outcome(model: type[BaseModel], value: bytes | None, max_bytes: int) -> None:
    expected = decode_careful(model, value, max_bytes)
    result = decode(model, value, max_bytes=max_bytes)
    assert result == expected
    assert type(result) is type(expected)
    [in_batch] = decode_many(model, [value], max_bytes=max_bytes)  # its own shortcut
    assert in_batch == expected
    assert type(in_batch) is type(expected)
    if isinstance(result, BaseModel):
        proven = codecs._holds_every_key(model, value or b"", result)
        event(f"accepted, {'without' if proven else 'after'} parsing again")
    else:
        event(f"rejected: {result.reason.value}")


@settings(max_examples=400, deadline=None)
@given(MODELS, st.data())
def test_an_event_with_repeated_keys_decodes_as_it_did_before_the_shortcut(model, data):
    assert_same_outcome(model, data.draw(written_messages(model, harsh=False)), LIMIT)


@settings(max_examples=600, deadline=None)
@given(MODELS, st.data())
def test_a_mangled_message_decodes_as_it_did_before_the_shortcut(model, data):
    value = data.draw(written_messages(model, harsh=True))
    max_bytes = data.draw(st.sampled_from([LIMIT * 4] * 9 + [max(len(value) - 1, 1)]))
    assert_same_outcome(model, value, max_bytes)


@settings(max_examples=300, deadline=None)
@given(MODELS, st.none() | st.binary(max_size=2_000))
def test_any_bytes_decode_as_they_did_before_the_shortcut(model, value):
    assert_same_outcome(model, value, LIMIT)


SCHEMA_IDS = st.integers(0, 2**32 - 1)


@settings(max_examples=300, deadline=None)
@given(MODELS, SCHEMA_IDS, st.data())
def test_a_json_message_framed_for_schema_registry_decodes_as_it_does_bare(model, schema_id, data):
    """The framing changes nothing but the words of a rejection, which then name it."""
    value = data.draw(written_messages(model, harsh=True))
    if not value.lstrip(b" \t\n\r").startswith(b"{"):
        value = b"{" + value  # a JSON object, or broken after its first byte
    framed = b"\x00" + schema_id.to_bytes(4, "big") + value
    bare = decode(model, value, max_bytes=LIMIT)
    assert_same_outcome(model, framed, LIMIT)
    result = decode(model, framed, max_bytes=LIMIT)
    if isinstance(bare, BaseModel):
        assert result == bare
        return
    assert isinstance(result, Rejection)
    assert (result.reason, result.field_path) == (bare.reason, bare.field_path)
    if len(result.message) < MESSAGE_CHARS:
        assert result.message == (
            f"{bare.message} (in the payload after its Confluent Schema Registry framing "
            f"(magic byte 0, schema id {schema_id}))"
        )


PREFIX = '{"model_id":"m","model_version":"1","event_id":"e","event_time":"2026-01-01T00:00:00Z",'

REPEATS = {
    "whitespace before the colons and a string that starts with one": (
        '"features":{"s":":x", "a" :1, "a" :2}}'
    ),
    "a key written once plainly and once escaped": '"features":{"a":1,"\\u0061":2}}',
    "a key ending in an escaped quote and a colon": '"features":{"a\\":":1,"a\\":":2}}',
    "a field given twice with the same value": '"event_id":"e","features":null}',
    "a class probability given twice": '"probabilities":{"a":0.5,"b":0.5,"a":0.5}}',
    "an interval bound given twice": '"interval":{"lower":0,"upper":1,"upper":1}}',
    "tabs and newlines before a colon": '"features":{"a"\t\n:1,"s":"::","a"\r\n:1}}',
}


@pytest.mark.parametrize("members", REPEATS.values(), ids=REPEATS.keys())
def test_a_repeated_key_the_count_could_miss_is_still_found(members):
    value = (PREFIX + members).encode()
    result = decode(PredictionEvent, value, max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.reason is DeadLetterReason.DUPLICATE_KEY
    assert result == decode_careful(PredictionEvent, value, LIMIT)


def careful_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record each text decode parses again to look for repeated keys."""
    seen: list[str] = []
    original = codecs._has_duplicate_key

    def recording(text: str) -> bool:
        seen.append(text)
        return original(text)

    monkeypatch.setattr(codecs, "_has_duplicate_key", recording)
    return seen


EVENTS = {
    PredictionEvent: PREFIX + '"features":{"x":1.5,"plan":"pro"},"prediction":0.5,'
    '"probabilities":{"a":0.4,"b":0.6},"interval":{"lower":0,"upper":1}}',
    FeatureEvent: '{"model_id":"m","model_version":"1","event_id":"f","prediction_id":"e",'
    '"event_time":"2026-01-01T00:00:00Z","features":{"x":1}}',
    LabelEvent: '{"schema_version":1,"model_id":"m","event_id":"l","prediction_id":"e",'
    '"event_time":"2026-01-01T00:00:00Z","label":"yes"}',
}


@pytest.mark.parametrize("model", EVENTS, ids=lambda model: model.__name__)
@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_a_valid_event_is_not_parsed_again(monkeypatch, model, spaced):
    text = EVENTS[model]
    if spaced:
        text = json.dumps(json.loads(text), indent=2, separators=(",", " : "))
    seen = careful_parses(monkeypatch)
    assert isinstance(decode(model, text.encode(), max_bytes=LIMIT), model)
    assert seen == []


def test_an_event_with_a_colon_in_a_string_is_parsed_again_and_kept(monkeypatch):
    seen = careful_parses(monkeypatch)
    value = (PREFIX + '"features":{"plan":"a\\":b"}}').encode()
    assert isinstance(decode(PredictionEvent, value, max_bytes=LIMIT), PredictionEvent)
    assert len(seen) == 1


def test_decode_many_gives_what_decode_gives_each_value():
    values = [
        EVENTS[PredictionEvent].encode(),
        None,
        b"{",
        (PREFIX + REPEATS["a key written once plainly and once escaped"]).encode(),
        (PREFIX + '"x":1}').encode(),
    ]
    results = decode_many(PredictionEvent, values, max_bytes=LIMIT)
    assert results == [decode(PredictionEvent, value, max_bytes=LIMIT) for value in values]
    assert isinstance(results[0], PredictionEvent)
    assert [result.reason for result in results[1:]] == [  # type: ignore[union-attr]
        DeadLetterReason.EMPTY,
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.DUPLICATE_KEY,
        DeadLetterReason.INVALID_EVENT,
    ]


def models_within(model: type[BaseModel]) -> set[type[BaseModel]]:
    found = {model}
    for field in model.model_fields.values():
        for part in getattr(field.annotation, "__args__", ()) or (field.annotation,):
            if isinstance(part, type) and issubclass(part, BaseModel):
                found |= models_within(part)
    return found


@pytest.mark.parametrize("model", list(codecs._KEPT_KEYS), ids=lambda model: model.__name__)
def test_a_counted_event_keeps_only_the_keys_it_is_given(model):
    """The key count relies on this: no aliases, no unknown fields, nothing filled in before."""
    for part in models_within(model):
        assert part.model_config.get("extra") == "forbid"
        assert all(field.alias is None for field in part.model_fields.values())
        validators = part.__pydantic_decorators__.model_validators.values()
        assert all(validator.info.mode == "after" for validator in validators)
        field_validators = part.__pydantic_decorators__.field_validators.values()
        assert all(validator.info.mode == "after" for validator in field_validators)
