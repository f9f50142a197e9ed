"""Compact, exact JSON forms of the long sequences in monitor states.

A monitor keeps hundreds of recent values per detector (for the evidence of
an alert) and thousands of event times and positions (to place a change).
As plain JSON lists they make up most of a serialised state. These forms
are smaller and still exact, so that a monitor restored from its state
behaves exactly like the one that wrote it:

* floats: their IEEE 754 doubles, little-endian, in base64 (about 10.7
  characters a value, whatever its digits);
* integers: the first, then the differences between neighbours, a run of
  equal differences written as ``[difference, count]`` (event numbers that
  follow each other, or times a fixed step apart, take a few characters in
  all);
* timezone-aware times: microseconds since the epoch and UTC offsets in
  microseconds, as integers;
* Kafka positions: a list of the topics, and per position the index of its
  topic (-1 for none), its partition and its offset, as integers.

Unpacking also takes the plain lists the states held before.
"""

import base64
import binascii
from array import array
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.monitors.positions import Located
from driftline.schemas import KafkaPosition

PackedInts = list[int | list[int]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def pack_floats(values: "Iterable[float] | npt.NDArray[np.floating[Any]] | array[float]") -> str:
    """``values`` as base64 of little-endian doubles (exact).

    >>> pack_floats([1.5, -0.1])
    'AAAAAAAA+D+amZmZmZm5vw=='
    """
    if isinstance(values, np.ndarray | array):  # a ring's values: at once, not one by one
        doubles = np.asarray(values, dtype="<f8")
    else:
        doubles = np.fromiter(values, dtype="<f8")
    return base64.b64encode(doubles.tobytes()).decode("ascii")


def unpack_floats(packed: str | Sequence[float]) -> list[float]:
    """The floats :func:`pack_floats` packed (or a plain list of them, as it is).

    >>> unpack_floats(pack_floats([1.5, -0.1, 1e-300]))
    [1.5, -0.1, 1e-300]
    """
    if not isinstance(packed, str):
        return [float(x) for x in packed]
    array = np.frombuffer(base64.b64decode(packed), dtype="<f8")
    return [float(x) for x in array.tolist()]


def unpack_float_array(packed: object, field: str) -> npt.NDArray[np.float64]:
    """The doubles :func:`pack_floats` packed, as an array, checked: ValueError naming
    ``field`` (of a state) if ``packed`` is no such string.

    >>> unpack_float_array(pack_floats([1.5, -0.1]), "values").tolist()
    [1.5, -0.1]
    >>> unpack_float_array("AAA", "values")
    Traceback (most recent call last):
    ...
    ValueError: state: values is not base64: ...
    """
    if not isinstance(packed, str):
        raise ValueError(f"state: {field} must be packed doubles (base64), got {packed!r}")
    try:
        raw = base64.b64decode(packed, validate=True)
    except binascii.Error as error:
        raise ValueError(f"state: {field} is not base64: {error}") from error
    if len(raw) % 8:
        raise ValueError(f"state: {field} must pack whole doubles")
    return np.frombuffer(raw, dtype="<f8").astype(np.float64)


def pack_ints(values: Iterable[int] | npt.NDArray[np.integer[Any]]) -> PackedInts:
    """``values`` as their first, then differences, runs of equal ones as ``[d, count]``.

    Many values (an integer array, or a long sequence) are packed with numpy
    (:func:`_pack_int_array`), to the same list.

    >>> pack_ints([7, 8, 9, 10, 20, 19])
    [7, [1, 3], 10, -1]
    >>> pack_ints(np.array([7, 8, 9, 10, 20, 19]))
    [7, [1, 3], 10, -1]
    >>> pack_ints([])
    []
    """
    if isinstance(values, np.ndarray):
        packed = _pack_int_array(values)
        if packed is not None:
            return packed
        values = values.tolist()
    elif isinstance(values, Sequence) and len(values) >= _NUMPY_FROM:
        packed = _pack_int_array(values)
        if packed is not None:
            return packed
    packed = []
    previous: int | None = None
    run_step, run_length = 0, 0
    for value in values:
        if previous is None:
            packed.append(value)
        else:
            step = value - previous
            if run_length and step == run_step:
                run_length += 1
            else:
                _close_run(packed, run_step, run_length)
                run_step, run_length = step, 1
        previous = value
    _close_run(packed, run_step, run_length)
    return packed


_NUMPY_FROM = 64
"""Sequences at least this long are packed with numpy (shorter ones faster in Python)."""

_NUMPY_SAFE = 2**62
"""Integers from minus this up to (not including) it are packed with numpy: their differences
fit in 64 bits."""


def _pack_int_array(values: object) -> PackedInts | None:
    """:func:`pack_ints` of many integers at once; None when they are no integers that fit
    in 64 bits with their differences (the Python loop then packs them, exactly).

    A monitor state holds thousands of event times and positions, packed at
    every checkpoint: the loop took some 250 ns an integer, this about a
    tenth of that.
    """
    try:
        array = np.asarray(values)
    except (OverflowError, ValueError):
        return None
    if array.ndim != 1 or array.dtype.kind not in "iu":
        return None
    if array.size == 0:
        return []
    if int(array.max()) >= _NUMPY_SAFE or int(array.min()) < -_NUMPY_SAFE:
        return None
    array = array.astype(np.int64, copy=False)
    steps = np.diff(array)
    packed: PackedInts = [int(array[0])]
    if steps.size == 0:
        return packed
    starts = np.flatnonzero(np.concatenate(([True], steps[1:] != steps[:-1])))
    lengths = np.diff(np.append(starts, steps.size))
    packed += [
        step if length == 1 else [step, length]
        for step, length in zip(steps[starts].tolist(), lengths.tolist(), strict=True)
    ]
    return packed


def unpack_ints(packed: Sequence[int | Sequence[int]]) -> list[int]:
    """The integers :func:`pack_ints` packed.

    >>> unpack_ints([7, [1, 3], 10, -1])
    [7, 8, 9, 10, 20, 19]
    """
    values: list[int] = []
    for item in packed:
        if isinstance(item, int):
            values.append(item if not values else values[-1] + item)
            continue
        step, count = item
        start = values[-1]
        values.extend(start + step * k for k in range(1, count + 1))
    return values


def pack_times(times: Sequence[datetime]) -> dict[str, PackedInts]:
    """Timezone-aware times as integers: microseconds since the epoch, and UTC offsets.

    >>> from datetime import timezone
    >>> moments = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in range(4)]
    >>> pack_times(moments)
    {'micros': [1767225600000000, [1000000, 3]], 'offsets': [0, [0, 3]]}
    >>> unpack_times(pack_times(moments)) == moments
    True
    """
    return {
        "micros": pack_ints((time - _EPOCH) // _MICROSECOND for time in times),
        "offsets": pack_ints(_offset(time) // _MICROSECOND for time in times),
    }


def unpack_times(packed: dict[str, Any]) -> list[datetime]:
    """The times :func:`pack_times` packed, each with its own UTC offset."""
    zones: dict[int, timezone] = {}
    times = []
    for micros, offset in zip(
        unpack_ints(packed["micros"]), unpack_ints(packed["offsets"]), strict=True
    ):
        zone = zones.get(offset)
        if zone is None:
            zone = zones[offset] = timezone(timedelta(microseconds=offset))
        times.append((_EPOCH + timedelta(microseconds=micros)).astimezone(zone))
    return times


def pack_positions(positions: Sequence[Located | None]) -> dict[str, Any]:
    """Kafka positions (or None) as a list of topics and three integer sequences.

    >>> packed = pack_positions([KafkaPosition(topic="t", partition=2, offset=o)
    ...                          for o in (10, 11, 12)] + [None])
    >>> packed["topics"], packed["offset"]
    (['t'], [10, [1, 2], -12])
    >>> unpack_positions(packed)[-2:]
    [KafkaPosition(topic='t', partition=2, offset=12), None]
    """
    topics: dict[str, int] = {}
    for position in positions:
        if position is not None:
            topics.setdefault(position.topic, len(topics))
    return {
        "topics": list(topics),
        "topic": pack_ints(-1 if p is None else topics[p.topic] for p in positions),
        "partition": pack_ints(0 if p is None else p.partition for p in positions),
        "offset": pack_ints(0 if p is None else p.offset for p in positions),
    }


def unpack_positions(packed: dict[str, Any]) -> list[KafkaPosition | None]:
    """The positions :func:`pack_positions` packed."""
    topics = packed["topics"]
    return [
        None
        if topic < 0
        else KafkaPosition(topic=topics[topic], partition=partition, offset=offset)
        for topic, partition, offset in zip(
            unpack_ints(packed["topic"]),
            unpack_ints(packed["partition"]),
            unpack_ints(packed["offset"]),
            strict=True,
        )
    ]


def _offset(time: datetime) -> timedelta:
    offset = time.utcoffset()
    if offset is None:
        raise ValueError(f"times must be timezone-aware, got {time}")
    return offset


def _close_run(packed: PackedInts, step: int, length: int) -> None:
    if length == 1:
        packed.append(step)
    elif length > 1:
        packed.append([step, length])
