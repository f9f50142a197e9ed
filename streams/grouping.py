"""The order in which to decode a batch: each model's events together, to keep them together.

A batch of ten models' events comes interleaved, and each model's events
are then read again and again, model by model (its checks, columns, tests
and label join). Python places objects in memory in the order it makes
them, so events decoded in the batch's order leave each model's events
spread over the memory of all ten, and every later pass over one model
reads ten times as many cache lines as it needs. Decoded a model at a
time, a model's events sit together: replay of ten models interleaved ran
about 4% faster in one process (``benchmarks/throughput.py``, path (d1),
runs side by side).

The model id is read from the bytes, before decoding, as a hint only: the
bytes after the first ``"model_id":"`` up to the next quote. A hint that
is wrong (a space before the colon, an escape, another object's key) puts
an event in another group and costs nothing else, since what is decoded
does not depend on the order, and every result goes back to its own place.
:func:`model_named` reads it only where the bytes say it plainly, and
what it reads is then the model of the event, if the bytes are a valid one.

>>> values = [b'{"model_id":"a","x":1}', b'{"model_id":"b"}', b'{"model_id":"a"}', b"junk"]
>>> model_grouped_order(values)
[0, 2, 1, 3]
>>> model_grouped_order([b'{"model_id":"a"}', b'{"model_id":"a","x":2}']) is None
True
"""

from collections.abc import Sequence
from itertools import repeat
from typing import Final

__all__ = ["model_grouped_order", "model_named"]

_MODEL_ID: Final = b'"model_id":"'


def model_grouped_order(values: Sequence[bytes | None]) -> list[int] | None:
    """The values' indices grouped by the model id each seems to name, groups in order of
    first appearance and each in the batch's order; None when all seem to name one model
    (the batch's order is then as good).

    Costs about 0.3 µs a value, or 0.05 µs when each names the first one's model at the
    same place (one producer's events of one model, as a rule).
    """
    first = values[0] if values else None
    at = first.find(_MODEL_ID) if first else -1
    end = first.find(b'"', at + len(_MODEL_ID)) if first and at >= 0 else -1
    if first and end >= 0:
        named = first[at : end + 1]
        try:
            if all(map(bytes.startswith, values, repeat(named), repeat(at))):  # type: ignore[arg-type]
                return None
        except TypeError:  # a value is None (a tombstone)
            pass
    groups: dict[bytes, list[int]] = {}
    last_hint: bytes | None = None
    last_group: list[int] = []
    for index, value in enumerate(values):
        hint = _hint(value)
        if hint != last_hint:
            group = groups.get(hint)
            if group is None:
                group = groups[hint] = []
            last_hint, last_group = hint, group
        last_group.append(index)
    if len(groups) < 2:
        return None
    return [index for group in groups.values() for index in group]


def _hint(value: bytes | None) -> bytes:
    """The bytes after the first ``"model_id":"`` up to the next quote; empty if none."""
    if not value:
        return b""
    start = value.find(_MODEL_ID)
    if start < 0:
        return b""
    start += len(_MODEL_ID)
    return value[start : value.find(b'"', start)]


def model_named(value: bytes | None) -> str | None:
    """The model a valid event with these bytes is of, read without decoding them; None when
    the bytes do not say so plainly (decode them to know).

    They say so when they begin ``{`` and the first ``"model_id":"`` comes
    before any other ``{`` or ``[``, and its string holds no escape. For a
    valid event, that is a key of the top-level object, since nothing opened
    before it (a quote there cannot end a string, or a key would follow a
    value); no other key may hold that text, since the events refuse
    unknown fields and repeated keys; so the string is the model id. Bytes
    that are no valid event may say anything.

    >>> model_named(b'{"model_id":"churn","features":{"x":1}}')
    'churn'
    >>> [model_named(v) for v in (b'{"features":{"model_id":"x"},"model_id":"m"}',
    ...     b'{"model_id": "m"}', b'{"model_id":"a\\\\"b"}', b' {"model_id":"m"}', None)]
    [None, None, None, None, None]
    """
    if not value or value[0] != _OPEN:
        return None
    start = value.find(_MODEL_ID)
    if start < 0 or value.find(b"{", 1, start) >= 0 or value.find(b"[", 1, start) >= 0:
        return None
    start += len(_MODEL_ID)
    end = value.find(b'"', start)
    if end < 0 or value.find(b"\\", start, end) >= 0:
        return None
    try:
        return value[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return None


_OPEN: Final = ord("{")
