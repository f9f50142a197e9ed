"""Bytes from Kafka to validated messages, and validated messages to bytes.

Agents consume raw bytes and call :func:`decode` themselves, so a bad message
becomes a :class:`Rejection` to dead-letter instead of an exception that
faust would swallow along with the event. :func:`decode` never raises: every
input, however broken, yields the message or a rejection that names the most
specific :class:`~driftline.schemas.DeadLetterReason`, says in words what the
producer must fix and, where one is known, gives the dotted path of the field
at fault (``features.x``, ``probabilities.a``, ``features.0.name``).

How each failure maps to a reason, checked in this order:

===========================================  ==============================
Input                                        Reason
===========================================  ==============================
``None`` or no bytes (a tombstone)           ``EMPTY``
more than ``max_bytes`` bytes                ``TOO_LARGE`` (checked first)
Schema Registry framing (byte 0, a 4-byte    ``UNSUPPORTED_FRAMING``
schema id) before anything but a JSON object
(Avro, Protobuf); before a JSON object, the
framing is taken off and the payload decoded
(see :mod:`driftline.streams.framing`)
not UTF-8, UTF-8-encoded surrogates included ``INVALID_UTF8``
malformed JSON, text after the document,     ``INVALID_JSON``
a byte order mark, a lone surrogate escape
(``"\\ud800"``), nesting deeper than the
parser's limit (about 200 levels)
an integer of more than 4,300 digits         ``NUMBER_OUT_OF_RANGE``
a ``schema_version`` number other than 1    ``UNSUPPORTED_SCHEMA_VERSION``
a key repeated in any object, at any depth   ``DUPLICATE_KEY``
a number beyond the float range (``1e400``,  ``NUMBER_OUT_OF_RANGE``
``-1E999``, an integer of 309 or more digits
too large for a float)
``NaN``, ``Infinity``, ``-Infinity``         ``NON_FINITE_NUMBER``
anything else that does not fit the schema   ``INVALID_EVENT`` (events) or
(missing or unknown field, wrong type,       ``INVALID_SPEC`` (model specs)
naive datetime, probabilities not summing
to 1, a JSON value that is not an object)
an unexpected error inside decoding          ``INVALID_EVENT`` / ``INVALID_SPEC``
===========================================  ==============================

When one message has several problems, the reason is that of the highest
row that applies, and the message counts the others.

What pydantic-core does, and how it is mapped:

- An integer of more than 4,300 digits (Python's limit for turning digits
  into an int), even as the integer part of a decimal, is refused while
  parsing as ``json_invalid`` "number out of range"; shorter integers parse,
  and those too large for a float fail a float field as ``finite_number``.
- A decimal or exponent beyond the float range (``1e400``) parses to
  infinity and fails as ``finite_number``, exactly like the ``Infinity``
  literal; the two are told apart by reading the number's own text again.
  A number too small (``1e-400``) quietly becomes ``0.0``.
- ``NaN``, ``Infinity`` and ``-Infinity`` parse and fail as
  ``finite_number``; lower-case ``nan`` or ``inf`` are malformed JSON.
- A lone surrogate escape is malformed JSON with a misleading explanation
  (``"\\ud800"``: "unexpected end of hex escape"; ``"\\udc00"``: "lone
  leading surrogate"), so the escapes are looked at again here.
- Nesting deeper than about 200 levels is ``json_invalid`` "recursion limit
  exceeded".
- A repeated key is silently resolved to its last value. For the input
  events, a message that validates is known to repeat no key when its text,
  whitespace deleted, holds no more ``":`` than the validated event holds
  keys (see :func:`_holds_every_key`); counting costs about a fifth of
  validating. Any other message that validates is parsed once more by
  :mod:`json` to find repeated keys (numbers kept as text, which costs about
  as much again as validating). A message that fails validation is parsed
  once more as well, to find repeated keys and tell overflowing numbers from
  ``NaN`` and ``Infinity``.
- ``schema_version`` ``true`` and ``1.0`` are accepted as 1: a strict
  ``Literal[1]`` still matches values equal to 1.
- A value of a union type (a feature value, a prediction) that fits none of
  its members is reported once per member, with the member's name appended
  to the location (``features.x.float``); those errors count as one problem
  and the member names are left out of the field path.
"""

import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from driftline.schemas import (
    DeadLetterReason,
    FeatureEvent,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
)
from driftline.streams.framing import RegistryFrame, registry_frame

M = TypeVar("M", bound=BaseModel)

EXCERPT_CHARS: Final = 100
"""The most characters of a producer's input quoted in a rejection message."""

MESSAGE_CHARS: Final = 1_000
"""The most characters of a rejection message."""

_PATH_CHARS: Final = 300

_KINDS: Final[dict[type[BaseModel], str]] = {
    PredictionEvent: "prediction event",
    FeatureEvent: "feature event",
    LabelEvent: "label event",
    ModelSpec: "model spec",
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message could not be used, in words that say what to fix."""

    reason: DeadLetterReason
    message: str
    field_path: str | None = None


def decode(model: type[M], value: bytes | None, *, max_bytes: int) -> M | Rejection:
    """Validate one message value as ``model``; never raises, whatever the bytes.

    ``model`` is one of the input messages: :class:`~driftline.schemas.PredictionEvent`,
    :class:`~driftline.schemas.FeatureEvent`, :class:`~driftline.schemas.LabelEvent`
    or :class:`~driftline.schemas.ModelSpec`.

    >>> decode(LabelEvent, b'{"model_id": 1}', max_bytes=1024).field_path
    'model_id'
    >>> decode(ModelSpec, b'[]', max_bytes=1024).reason
    <DeadLetterReason.INVALID_SPEC: 'invalid_spec'>
    >>> decode(PredictionEvent, None, max_bytes=1024).reason
    <DeadLetterReason.EMPTY: 'empty'>
    """
    return _decided(model, value, max_bytes, None)


def _decided(
    model: type[M], value: bytes | None, max_bytes: int, refused: ValidationError | None
) -> M | Rejection:
    """:func:`decode`; ``refused`` is what validating ``value`` raised, when that is known."""
    try:
        result = _decode(model, value, max_bytes, refused)
    except Exception as error:  # the last resort: the worker must never crash on input
        return _unexpected(model, error)
    if isinstance(result, Rejection) and len(result.message) > MESSAGE_CHARS:
        return Rejection(result.reason, _cap(result.message), result.field_path)
    return result


def decode_many(
    model: type[M], values: Iterable[bytes | None], *, max_bytes: int
) -> list[M | Rejection]:
    """:func:`decode` for each value of a batch, in order; never raises.

    The result at each position is exactly what :func:`decode` gives for the
    value there, so a batch path and a per-message path reject alike.

    >>> [type(result).__name__ for result in decode_many(LabelEvent, [b"{}", None], max_bytes=64)]
    ['Rejection', 'Rejection']

    A valid ASCII value, within the size and repeating no key (most of
    them), is validated straight away: its text is valid UTF-8 and needs no
    decoding. Any other goes the whole way of :func:`decode`, which also
    explains what is wrong with it (~0.9 µs an event less: 5.8 against 6.7 µs
    for a valid 20-feature event in ``benchmarks/decoding.py``), without
    validating it again when that is what failed.
    """
    count_kept = _KEPT_KEYS.get(model)
    if count_kept is None:
        return [decode(model, value, max_bytes=max_bytes) for value in values]
    validate = model.__pydantic_validator__.validate_json
    results: list[M | Rejection] = []
    for value in values:
        refused = None
        if value and len(value) <= max_bytes and value.isascii():
            try:
                decoded: M = validate(value)
            except ValidationError as error:  # why, decode says
                refused = error
            except Exception:  # decode says this too
                pass
            else:
                if value.translate(None, _JSON_WHITESPACE).count(b'":') == count_kept(decoded):
                    results.append(decoded)
                    continue
        results.append(_decided(model, value, max_bytes, refused))
    return results


def encode(message: BaseModel) -> bytes:
    """Serialize an output message as compact JSON, as consumers read it."""
    return message.model_dump_json().encode("utf-8")


def _decode(
    model: type[M], value: bytes | None, max_bytes: int, refused: ValidationError | None = None
) -> M | Rejection:
    kind = _kind(model)
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
    if frame is not None:
        return _framed(model, frame, max_bytes)
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejection(
            DeadLetterReason.INVALID_UTF8,
            f"the message is not UTF-8 text ({error.reason} at byte {error.start}); "
            f"encode each {kind} as UTF-8 JSON",
        )
    if refused is not None:  # validated already (the same bytes, the same validator)
        return _explain(model, text, refused)
    try:
        decoded = model.model_validate_json(value)
    except ValidationError as error:
        return _explain(model, text, error)
    if not _holds_every_key(model, value, decoded) and _has_duplicate_key(text):
        return _duplicate_key_rejection(kind, _parse_tree(text), problems=0)
    return decoded


def _framed(model: type[M], frame: RegistryFrame, max_bytes: int) -> M | Rejection:
    """A message in Schema Registry's wire format: its JSON payload decoded as any message
    is (a rejection also names the framing), or a rejection of a payload in another format."""
    if not frame.holds_json:
        return Rejection(
            DeadLetterReason.UNSUPPORTED_FRAMING,
            f"the message has {frame.describe()}, and its payload is not a JSON object "
            f"(Avro or Protobuf?); driftline reads each {_kind(model)} as JSON: publish it "
            "with the JSON Schema serializer, or as plain JSON",
        )
    decoded = _decode(model, frame.payload, max_bytes)
    if isinstance(decoded, Rejection):
        return Rejection(
            decoded.reason,
            f"{decoded.message} (in the payload after its {frame.describe()})",
            decoded.field_path,
        )
    return decoded


# Knowing cheaply that a validated event repeats no key.


def _prediction_keys(event: BaseModel) -> int:
    assert isinstance(event, PredictionEvent)
    count = len(event.model_fields_set)
    if event.features is not None:
        count += len(event.features)
    if event.probabilities is not None:
        count += len(event.probabilities)
    if event.interval is not None:
        count += len(event.interval.model_fields_set)
    return count


def _feature_event_keys(event: BaseModel) -> int:
    assert isinstance(event, FeatureEvent)
    return len(event.model_fields_set) + len(event.features)


def _label_keys(event: BaseModel) -> int:
    return len(event.model_fields_set)


_KEPT_KEYS: Final[dict[type[BaseModel], Callable[[BaseModel], int]]] = {
    PredictionEvent: _prediction_keys,
    FeatureEvent: _feature_event_keys,
    LabelEvent: _label_keys,
}
"""How many object keys a validated message of each input event holds, nested ones included.

Each counts what pydantic kept: one per field given (``model_fields_set``,
these models having no aliases and refusing unknown fields) and one per
entry of a mapping. A repeated key is kept once, so the count is at most
the number of distinct keys of the text. A model left out here, or a field
added to one without being counted, only sends its messages to the full
duplicate check; but a count above what the text gives (a validator that
fills in a field the message left out, say) would let repeated keys through.
"""

_JSON_WHITESPACE: Final = b" \t\n\r"


def _holds_every_key(model: type[BaseModel], value: bytes, decoded: BaseModel) -> bool:
    """Whether a document pydantic accepted is known to give no key twice.

    Every key of a JSON document is a string followed, after optional
    whitespace, by a colon; once the whitespace is deleted, every key ends
    in ``":`` there. Other ``":`` may come out too (a string value that
    starts with a colon, an escaped quote before a colon, whitespace deleted
    inside a string), never fewer: so the count of ``":`` is at least the
    number of keys given, which is at least the number of distinct keys,
    which is at least what the validated message holds. When the count
    equals what the message holds, all three are equal and no key is given
    twice. When they differ (a repeated key, or a colon inside a string),
    the answer is no, and the caller looks properly.
    """
    count_kept = _KEPT_KEYS.get(model)
    if count_kept is None:
        return False
    return value.translate(None, _JSON_WHITESPACE).count(b'":') == count_kept(decoded)


# Why pydantic refused a message.


@dataclass(slots=True)
class _Problem:
    """One problem pydantic reported: one error, or the errors of a union's members."""

    errors: list[dict[str, Any]]
    path: tuple[str | int, ...]
    node: object
    """The JSON value at ``path`` as parsed again, or :data:`_UNKNOWN`."""
    key: str | int | None = None
    """The offending key itself, for an error about a key of an object."""

    @property
    def type(self) -> str:
        return str(self.errors[0].get("type", ""))

    @property
    def input(self) -> object:
        return self.errors[0].get("input", _UNKNOWN)


def _explain(model: type[BaseModel], text: str, error: ValidationError) -> Rejection:
    kind = _kind(model)
    errors = [dict(details) for details in error.errors(include_url=False)]
    if not errors:
        return Rejection(
            _invalid(model),
            f"the {kind} was refused without a stated reason; check it against the "
            f"{model.__name__} schema",
        )
    for details in errors:
        if details.get("type") == "json_invalid":
            return _invalid_json(kind, text, details)
    tree = _parse_tree(text)
    problems = _problems(errors, tree)
    for problem in problems:
        rejection = _unsupported_version(model, problem, len(problems))
        if rejection is not None:
            return rejection
    if tree is not _UNKNOWN and _first_duplicate(tree) is not None:
        return _duplicate_key_rejection(kind, tree, problems=len(problems))
    for reason in (DeadLetterReason.NUMBER_OUT_OF_RANGE, DeadLetterReason.NON_FINITE_NUMBER):
        for problem in problems:
            if _number_trouble(problem) is reason:
                return _number_rejection(reason, problem, len(problems))
    problem = problems[0]
    return Rejection(
        _invalid(model),
        f"{_describe(kind, problem)}{_more(len(problems) - 1)}; "
        f"publish {kind}s that match the {model.__name__} schema",
        field_path=_render_path(problem.path),
    )


def _problems(errors: list[dict[str, Any]], tree: object) -> list[_Problem]:
    """The errors as problems, the errors of one union's members merged into one.

    A union's members are reported one after the other at the same location
    plus each member's name; once the first one's path turns out shorter than
    its location, the next errors of that location are its siblings.
    """
    problems: list[_Problem] = []
    union: tuple[Any, ...] | None = None
    for details in errors:
        loc = tuple(details.get("loc") or ())
        kind = str(details.get("type", ""))
        if union is not None and kind not in _FIELD_LEVEL and loc[:-1] == union and loc:
            problems[-1].errors.append(details)
            continue
        union = None
        given = details.get("input", _UNKNOWN)
        if len(loc) >= 2 and loc[-1] == "[key]":
            path, node = _resolve(loc[:-2], kind, given, tree)
            problems.append(_Problem([details], path, node, key=loc[-2]))
            continue
        path, node = _resolve(loc, kind, given, tree)
        problems.append(_Problem([details], path, node))
        if loc and len(path) < len(loc) and kind not in _FIELD_LEVEL:
            union = loc[:-1]
    return problems


_FIELD_LEVEL: Final = frozenset({"missing", "extra_forbidden"})
"""Error types whose location names a field that is absent from, or unknown to, the schema."""

_UNION_MEMBERS: Final = frozenset(
    {"float", "int", "bool", "str", "none", "constrained-str", "constrained-float"}
)
"""Names pydantic gives union members in error locations; used when the JSON cannot be re-read."""


def _resolve(
    loc: tuple[Any, ...], kind: str, given: object, tree: object
) -> tuple[tuple[str | int, ...], object]:
    """The JSON path of an error location, without union member names, and the value there."""
    if tree is _UNKNOWN:
        path = tuple(part for part in loc if isinstance(part, str | int))
        if path and kind not in _FIELD_LEVEL and path[-1] in _UNION_MEMBERS:
            path = path[:-1]
        return path, _UNKNOWN
    node: object = tree
    parent: object = _UNKNOWN
    path_list: list[str | int] = []
    for index, part in enumerate(loc):
        if isinstance(node, _Object) and isinstance(part, str):
            child = node.get(part)
            if child is _ABSENT:
                if kind == "missing" and index == len(loc) - 1:
                    path_list.append(part)
                    node = _ABSENT
                break
        elif (
            isinstance(node, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(node)
        ):
            child = node[part]
        else:
            break
        path_list.append(part)
        parent, node = node, child
    if (
        path_list
        and kind not in _FIELD_LEVEL
        and given is not _UNKNOWN
        and _json_type(given) != _json_type(node)
        and _json_type(given) == _json_type(parent)
    ):
        # A union member's name that happens to be a key of the value ({"float": 1}).
        path_list.pop()
        node = parent
    return tuple(path_list), node


def _unsupported_version(model: type[BaseModel], problem: _Problem, count: int) -> Rejection | None:
    version = problem.input
    if (
        problem.path != ("schema_version",)
        or problem.type != "literal_error"
        or not isinstance(version, int | float)
        or isinstance(version, bool)
        or not math.isfinite(version)
        or isinstance(problem.node, _Overflow | _NonFinite)
    ):
        return None
    field = model.model_fields.get("schema_version")
    supported = field.default if field is not None else None
    kind = _kind(model)
    return Rejection(
        DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
        f"this worker reads schema_version {supported}; got {_excerpt(version)}. "
        f"Publish {kind}s of schema_version {supported} to this topic, "
        f"or upgrade the worker{_more(count - 1)}",
        field_path="schema_version",
    )


def _number_trouble(problem: _Problem) -> DeadLetterReason | None:
    """Whether a problem is a number out of the float range or a NaN or infinity."""
    if problem.type in _FIELD_LEVEL or problem.key is not None or not problem.path:
        return None
    node = problem.node
    if isinstance(node, _Overflow):
        return DeadLetterReason.NUMBER_OUT_OF_RANGE
    if isinstance(node, _NonFinite):
        return DeadLetterReason.NON_FINITE_NUMBER
    if node is not _UNKNOWN:
        return None
    given = problem.input
    if isinstance(given, bool):
        return None
    if isinstance(given, int) and given.bit_length() > sys.float_info.max_exp:
        return DeadLetterReason.NUMBER_OUT_OF_RANGE
    if isinstance(given, float) and not math.isfinite(given):
        return DeadLetterReason.NON_FINITE_NUMBER
    return None


def _number_rejection(reason: DeadLetterReason, problem: _Problem, count: int) -> Rejection:
    path = _render_path(problem.path)
    shown = _excerpt(problem.node if problem.node is not _UNKNOWN else problem.input)
    if reason is DeadLetterReason.NUMBER_OUT_OF_RANGE:
        message = (
            f"field {path!r} holds {shown}, a number too large for a 64-bit float "
            f"(the largest is about 1.8e308); send a smaller number{_more(count - 1)}"
        )
    else:
        message = (
            f"field {path!r} is {shown}: NaN and Infinity are not JSON numbers; send a finite "
            f"number, or null where a value may be missing{_more(count - 1)}"
        )
    return Rejection(reason, message, field_path=path)


def _describe(kind: str, problem: _Problem) -> str:
    """One problem in words: where, what pydantic says, and what was sent."""
    details = problem.errors[0]
    where = f"field {_render_path(problem.path)!r}" if problem.path else f"the {kind}"
    if problem.key is not None:
        return (
            f"a key of {where} is invalid: {_message(details)} (got {_excerpt(str(problem.key))})"
        )
    if problem.type == "missing":
        return f"{where} is required but missing"
    if problem.type == "extra_forbidden":
        return f"{where} is not a field of a {kind}; remove it or correct its name"
    if problem.type == "model_type" and not problem.path:
        sent = _json_type(problem.input)
        return f"the message is a JSON {sent} where a {kind} (a JSON object) belongs"
    if problem.type == "value_error":
        explanation = _message(details).removeprefix("Value error, ")
        return (
            f"{where}: {explanation}"
            if problem.path
            else f"the {kind} is inconsistent: {explanation}"
        )
    messages = list(dict.fromkeys(_message(error) for error in problem.errors))
    prefix = "Input should be "
    if len(messages) > 1 and all(message.startswith(prefix) for message in messages):
        said = prefix + " or ".join(message.removeprefix(prefix) for message in messages)
    else:
        said = "; ".join(messages)
    shown = "" if problem.input is _UNKNOWN else f" (got {_excerpt(problem.input)})"
    return f"{where}: {said}{shown}"


def _message(details: dict[str, Any]) -> str:
    return _shorten(str(details.get("msg") or details.get("type") or "refused"), 300)


def _invalid_json(kind: str, text: str, details: dict[str, Any]) -> Rejection:
    context = details.get("ctx")
    said = context.get("error") if isinstance(context, dict) else None
    if not isinstance(said, str):
        said = str(details.get("msg", "")).removeprefix("Invalid JSON: ")
    said = _shorten(said, 200)
    fix = f"publish each {kind} as one well-formed JSON object"
    if "recursion limit" in said:
        return Rejection(
            DeadLetterReason.INVALID_JSON,
            f"the message is nested too deeply to parse ({said}); {fix}, nested no deeper "
            "than its schema needs",
        )
    if "number out of range" in said:
        tree = _parse_tree(text)
        path = _first_overflow(tree) if tree is not _UNKNOWN else None
        where = f"field {_render_path(path)!r} holds a number" if path else "a number"
        return Rejection(
            DeadLetterReason.NUMBER_OUT_OF_RANGE,
            f"{where} with too many digits to read ({said}), far too large for a 64-bit "
            "float; send numbers no larger than about 1.8e308",
            field_path=_render_path(path) if path else None,
        )
    surrogate = _lone_surrogate(text) if "surrogate" in said or "escape" in said else None
    if surrogate is not None:
        escape, position = surrogate
        return Rejection(
            DeadLetterReason.INVALID_JSON,
            f"the message holds a lone surrogate escape ({escape} at character {position}), "
            "which stands for no character; encode characters beyond U+FFFF as a surrogate "
            "pair (such as \\ud83d\\ude00) or as plain UTF-8, and never split a pair",
        )
    if text.startswith("\ufeff"):
        return Rejection(
            DeadLetterReason.INVALID_JSON,
            f"the message starts with a byte order mark (U+FEFF); {fix}, without a byte order mark",
        )
    if "trailing characters" in said:
        return Rejection(
            DeadLetterReason.INVALID_JSON,
            f"the message goes on after the end of its JSON document ({said}); "
            f"{fix} per message, with nothing after it",
        )
    if "EOF while parsing" in said:
        return Rejection(
            DeadLetterReason.INVALID_JSON,
            f"the message ends before its JSON document does ({said}); it may have been cut "
            f"short: {fix}",
        )
    return Rejection(
        DeadLetterReason.INVALID_JSON, f"the message is not valid JSON ({said}); {fix}"
    )


_ESCAPE: Final = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.DOTALL)


def _lone_surrogate(text: str) -> tuple[str, int] | None:
    """The first ``\\uXXXX`` escape of a surrogate that is not half of a pair, and where."""
    pending: re.Match[str] | None = None
    for match in _ESCAPE.finditer(text):
        digits = match.group(1)
        code = int(digits, 16) if digits else -1
        if pending is not None:
            if 0xDC00 <= code <= 0xDFFF and match.start() == pending.end():
                pending = None
                continue
            return pending.group(0), pending.start()
        if 0xD800 <= code <= 0xDBFF:
            pending = match
        elif 0xDC00 <= code <= 0xDFFF:
            return match.group(0), match.start()
    if pending is not None:
        return pending.group(0), pending.start()
    return None


# Reading the JSON again, for what pydantic-core does not say.


class _DuplicateKeyError(Exception):
    """Raised by the fast duplicate-key check at the first repeated key."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len(dict(pairs)) != len(pairs):
        raise _DuplicateKeyError


# Numbers are kept as text: faster than making floats, and no limit on digits.
_DUPLICATE_CHECK: Final = json.JSONDecoder(
    object_pairs_hook=_refuse_duplicates, parse_float=str, parse_int=str
)


def _has_duplicate_key(text: str) -> bool:
    """Whether any object of a document that pydantic accepted repeats a key."""
    try:
        _DUPLICATE_CHECK.decode(text)
    except _DuplicateKeyError:
        return True
    except (ValueError, RecursionError):
        return False  # pydantic read it; nothing better to go on
    return False


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_UNKNOWN: Final = _Sentinel("<unknown>")
"""A value not known: the document could not be read again, or pydantic gave no input."""

_ABSENT: Final = _Sentinel("<absent>")
"""A key an object does not have."""

_FINITE: Final = _Sentinel("<number>")
"""A number of the float range; its value does not matter here."""


class _Object(list[tuple[str, Any]]):
    """A JSON object as its key-value pairs, in order, repeats kept."""

    __slots__ = ("_index",)
    _index: dict[str, Any]

    def get(self, key: str) -> object:
        """The value of ``key`` as pydantic sees it: the last one given."""
        try:
            index = self._index
        except AttributeError:
            index = self._index = dict(self)
        return index.get(key, _ABSENT)


@dataclass(frozen=True, slots=True)
class _Overflow:
    """A number beyond the float range, as written."""

    text: str


@dataclass(frozen=True, slots=True)
class _NonFinite:
    """``NaN``, ``Infinity`` or ``-Infinity``, as written."""

    text: str


def _parse_float(text: str) -> object:
    return _Overflow(text) if math.isinf(float(text)) else _FINITE


def _parse_int(text: str) -> object:
    if len(text) < 309:
        return _FINITE
    try:
        float(int(text))
    except (OverflowError, ValueError):
        return _Overflow(text)
    return _FINITE


_TREE: Final = json.JSONDecoder(
    object_pairs_hook=_Object,
    parse_float=_parse_float,
    parse_int=_parse_int,
    parse_constant=_NonFinite,
)


def _parse_tree(text: str) -> object:
    """The document with its repeated keys and its numbers' kinds, or :data:`_UNKNOWN`."""
    try:
        return _TREE.decode(text)
    except (ValueError, RecursionError):
        return _UNKNOWN


def _nodes(root: object) -> Iterator[tuple[tuple[str | int, ...], object]]:
    """Every value of a document with its path, in document order, without recursion."""
    stack: list[tuple[tuple[str | int, ...], object]] = [((), root)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, _Object):
            stack.extend(((*path, key), value) for key, value in reversed(node))
        elif isinstance(node, list):
            stack.extend(((*path, index), node[index]) for index in range(len(node) - 1, -1, -1))


def _first_duplicate(root: object) -> tuple[tuple[str | int, ...], str, int] | None:
    """The path of the first object repeating a key, the key, and how often it is given."""
    for path, node in _nodes(root):
        if isinstance(node, _Object) and len(node) > 1:
            counts: dict[str, int] = {}
            for key, _ in node:
                counts[key] = counts.get(key, 0) + 1
            for key, count in counts.items():
                if count > 1:
                    return path, key, count
    return None


def _first_overflow(root: object) -> tuple[str | int, ...] | None:
    for path, node in _nodes(root):
        if isinstance(node, _Overflow):
            return path
    return None


def _duplicate_key_rejection(kind: str, tree: object, *, problems: int) -> Rejection:
    found = _first_duplicate(tree) if tree is not _UNKNOWN else None
    fix = "JSON objects must name each key once; send each field once"
    if found is None:
        return Rejection(
            DeadLetterReason.DUPLICATE_KEY,
            f"an object in the {kind} names the same key more than once; {fix}{_more(problems)}",
        )
    path, key, count = found
    where = f"in {_render_path(path)!r}" if path else f"at the top level of the {kind}"
    return Rejection(
        DeadLetterReason.DUPLICATE_KEY,
        f"key {_shorten(key)!r} is given {count} times {where}; {fix}{_more(problems)}",
        field_path=_render_path((*path, key)),
    )


# Words.


def _kind(model: type[BaseModel]) -> str:
    kind = _KINDS.get(model)
    return kind if kind is not None else str(getattr(model, "__name__", "message"))


def _invalid(model: type[BaseModel]) -> DeadLetterReason:
    if isinstance(model, type) and issubclass(model, ModelSpec):
        return DeadLetterReason.INVALID_SPEC
    return DeadLetterReason.INVALID_EVENT


def _unexpected(model: type[BaseModel], error: Exception) -> Rejection:
    try:
        kind = _kind(model)
        reason = _invalid(model)
    except Exception:
        kind, reason = "message", DeadLetterReason.INVALID_EVENT
    return Rejection(
        reason,
        f"the {kind} could not be decoded: checking it failed unexpectedly "
        f"({type(error).__name__}); check it against its schema, and report this message "
        "to the driftline maintainers",
    )


def _json_type(value: object) -> str:
    if isinstance(value, _Object | dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float | _Overflow | _NonFinite) or value is _FINITE:
        return "number"
    return "unknown"


def _excerpt(value: object) -> str:
    """A value as JSON text, at most about :data:`EXCERPT_CHARS` characters of it."""
    if isinstance(value, _Overflow | _NonFinite):
        return _shorten(value.text)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return _shorten(text)


def _shorten(text: str, limit: int = EXCERPT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _render_path(path: Sequence[str | int] | None) -> str | None:
    if not path:
        return None
    return _shorten(".".join(_shorten(str(part)) for part in path), _PATH_CHARS)


def _more(count: int) -> str:
    if count <= 0:
        return ""
    return f" (and {count} more problem{'s' if count > 1 else ''})"


def _cap(message: str) -> str:
    return message if len(message) <= MESSAGE_CHARS else message[: MESSAGE_CHARS - 1] + "…"
