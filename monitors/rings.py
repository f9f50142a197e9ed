"""A monitor's long recent memories, in arrays of numbers instead of deques of Python objects.

A model monitor remembers, per drift subject, the last few hundred values
its detector saw (for the evidence of an alarm) and the model's event
numbers they came at (to place a change point), and the time and Kafka
position of the model's last few thousand events. In deques every number
is a Python object: 32 bytes a float or an int with its slot, far more for
a tuple of a time and a position. With a hundred model versions of twenty
features that is most of a worker's memory. Here a number takes 8 bytes:

* :class:`FloatRing` and :class:`IntRing` keep the last ``maxlen`` numbers,
  like ``deque(maxlen=maxlen)``, and take a batch of them as one numpy copy
  (:class:`CodeRing` likewise, in 4 bytes, for small codes);
* :class:`RunRing` keeps the last ``maxlen`` integers as runs of consecutive
  ones, a few bytes for the event numbers of a feature present in every event;
* :class:`EventMemory` keeps the last ``maxlen`` events' times and positions
  as integers, 20 bytes an event, and gives back ``(time, position)`` equal
  to those it was given.
"""

from array import array
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from driftline.monitors.packing import pack_ints, pack_positions, pack_times, unpack_ints
from driftline.monitors.positions import Located, Position
from driftline.schemas import KafkaPosition

Number = TypeVar("Number", int, float)

_SMALLEST = 16
"""Numbers a ring makes room for at first: a ring grows only as far as it is filled."""

_EPOCH = datetime(1970, 1, 1)
_UNSEEN = object()
"""No tzinfo is this one: what :meth:`EventMemory.extend` compares the first time's with."""
_MICROSECOND = timedelta(microseconds=1)


class _Bounded(Generic[Number]):
    """What every ring here shares: at most ``maxlen`` numbers, read oldest first.

    A subclass keeps the numbers as it likes, counts them in ``_size``, and
    gives them back as an array in :meth:`values`.
    """

    __slots__ = ("_maxlen", "_size")

    def __init__(self, maxlen: int) -> None:
        if maxlen < 0:
            raise ValueError(f"maxlen must be at least 0, got {maxlen}")
        self._maxlen = maxlen
        self._size = 0

    @property
    def maxlen(self) -> int:
        """How many numbers the ring keeps at most."""
        return self._maxlen

    def __len__(self) -> int:
        return self._size

    def values(self) -> np.ndarray:
        """The numbers, oldest first, as a new array."""
        raise NotImplementedError

    def tolist(self) -> list[Number]:
        """The numbers, oldest first, as Python numbers."""
        numbers: list[Number] = self.values().tolist()
        return numbers

    def __iter__(self) -> Iterator[Number]:
        return iter(self.tolist())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.tolist()!r}, maxlen={self._maxlen})"


class Ring(_Bounded[Number]):
    """The last ``maxlen`` numbers appended, oldest first, as ``deque(maxlen=maxlen)`` keeps them.

    The numbers live in one :class:`array.array` used as a circle: once
    full, each new number overwrites the oldest. It starts small and doubles
    as the ring fills, up to ``maxlen``. One number is appended or read in
    Python, as fast as with a deque; many are written or read at once
    through a numpy view of the same memory (:meth:`extend`, :meth:`last`).
    """

    __slots__ = ("_data", "_start")

    typecode = "d"
    """The :mod:`array` type of the numbers, and ``dtype`` the same as numpy's."""
    dtype: DTypeLike = np.float64

    def __init__(self, maxlen: int, values: ArrayLike = ()) -> None:
        super().__init__(maxlen)
        self._data = self._zeros(min(maxlen, _SMALLEST))
        self._start = 0
        """Where the oldest number is in ``_data``."""
        self.extend(values)

    def append(self, value: Number) -> None:
        """Add one number, forgetting the oldest when the ring is full."""
        size, data = self._size, self._data
        if size < len(data):
            data[(self._start + size) % len(data)] = value
            self._size = size + 1
        elif size < self._maxlen:
            self._reserve(size + 1)
            self._data[size] = value
            self._size = size + 1
        elif size:  # full: the newest takes the oldest's place
            data[self._start] = value
            self._start = (self._start + 1) % size

    def extend(self, values: ArrayLike) -> None:
        """Add numbers in order (an array, or any sequence of numbers), as many appends would.

        A detector's ring takes a batch's values at every batch, so the usual
        case (room without growing, one stretch without wrapping) costs one
        numpy copy and a few integer operations.
        """
        new = np.asarray(values, dtype=self.dtype)
        if new.ndim != 1:
            new = new.ravel()
        count, maxlen = len(new), self._maxlen
        if count == 0 or maxlen == 0:
            return
        if count >= maxlen:  # the newest of them are all that is kept
            self._data = self._zeros(maxlen)
            np.frombuffer(self._data, dtype=self.dtype)[:] = new[count - maxlen :]
            self._start, self._size = 0, maxlen
            return
        size = self._size
        if size + count > len(self._data):
            self._reserve(size + count)
        capacity, start = len(self._data), self._start
        end = start + size
        if end >= capacity:
            end -= capacity
        data = np.frombuffer(self._data, dtype=self.dtype)
        room = capacity - end  # up to the end of the array, then on from its start
        if count <= room:
            data[end : end + count] = new
        else:
            data[end:] = new[:room]
            data[: count - room] = new[room:]
        total = size + count
        if total > capacity:  # the oldest were overwritten
            self._start = (start + total - capacity) % capacity
            total = capacity
        self._size = total

    def __getitem__(self, index: int) -> Number:
        """The ``index``-th number from the oldest (from the newest when negative)."""
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("ring index out of range")
        value: Number = self._data[(self._start + index) % len(self._data)]
        return value

    def values(self) -> np.ndarray:
        """The numbers, oldest first, as a new array."""
        return self.last(self._size)

    def last(self, count: int) -> np.ndarray:
        """The newest ``count`` numbers (all of them if there are fewer), oldest first."""
        count = min(max(count, 0), self._size)
        data = np.frombuffer(self._data, dtype=self.dtype)
        begin = (self._start + self._size - count) % len(data) if len(data) else 0
        if begin + count <= len(data):
            return data[begin : begin + count].copy()
        return np.concatenate([data[begin:], data[: begin + count - len(data)]])

    def _zeros(self, size: int) -> "array[Any]":
        # Repeating one zero allocates exactly ``size`` numbers; extending would leave slack.
        zero: array[Any] = array(self.typecode, bytes(np.dtype(self.dtype).itemsize))
        return zero * size

    def _reserve(self, size: int) -> None:
        """Make room for ``size`` numbers (at most ``maxlen``), the oldest moved to the front."""
        if min(size, self._maxlen) <= len(self._data):
            return
        data = self._zeros(min(self._maxlen, max(size, 2 * len(self._data))))
        np.frombuffer(data, dtype=self.dtype)[: self._size] = self.values()
        self._data, self._start = data, 0


class FloatRing(Ring[float]):
    """A :class:`Ring` of doubles: recent values of a detector, exactly as they came."""

    __slots__ = ()
    typecode = "d"
    dtype = np.float64


class IntRing(Ring[int]):
    """A :class:`Ring` of 64-bit integers: event numbers, times, offsets."""

    __slots__ = ()
    typecode = "q"
    dtype = np.int64


class CodeRing(Ring[int]):
    """A :class:`Ring` of 32-bit integers: small codes that index a list kept beside it."""

    __slots__ = ()
    typecode = "i"
    dtype = np.intc


class RunRing(_Bounded[int]):
    """The last ``maxlen`` integers appended, oldest first, kept as runs of consecutive ones.

    What a drift subject remembers of the event numbers its values came at:
    a feature present in every event sees consecutive numbers, one run that
    costs a few bytes where an :class:`IntRing` takes 8 bytes a number (4
    KiB a subject of 512). Each run is its first number and its length, in
    two arrays: an integer that does not follow the one before starts a
    run, so at worst (no two consecutive) a number takes 16 bytes.

    >>> ring = RunRing(5)
    >>> ring.extend([3, 4, 5, 9])
    >>> ring.append(10)
    >>> ring.append(11)  # 3 is forgotten
    >>> ring.tolist(), len(ring), ring[0], ring[-1]
    ([4, 5, 9, 10, 11], 5, 4, 11)
    """

    __slots__ = ("_counts", "_first", "_starts")

    def __init__(self, maxlen: int, values: ArrayLike = ()) -> None:
        super().__init__(maxlen)
        self._starts = array("q")
        """The first integer of each run (of those not dropped), oldest first."""
        self._counts = array("q")
        """How many integers each run holds."""
        self._first = 0
        """Runs before this index were forgotten (dropped once they are half)."""
        self.extend(values)

    def append(self, value: int) -> None:
        """Add one integer, forgetting the oldest when the ring is full."""
        if not self._maxlen:
            return
        starts, counts = self._starts, self._counts
        if len(starts) > self._first and starts[-1] + counts[-1] == value:
            counts[-1] += 1
        else:
            starts.append(value)
            counts.append(1)
        self._size += 1
        if self._size > self._maxlen:
            self._forget(self._size - self._maxlen)

    def extend(self, values: ArrayLike) -> None:
        """Add integers in order, as many appends would."""
        new = np.asarray(values, dtype=np.int64).ravel()
        if not new.size or not self._maxlen:
            return
        new = new[-self._maxlen :]
        breaks = np.flatnonzero(np.diff(new) != 1) + 1
        firsts = np.concatenate(([0], breaks))
        lengths = np.diff(np.concatenate((firsts, [new.size])))
        starts, counts = new[firsts].tolist(), lengths.tolist()
        if len(self._starts) > self._first and self._starts[-1] + self._counts[-1] == starts[0]:
            self._counts[-1] += counts[0]
            starts, counts = starts[1:], counts[1:]
        self._starts.extend(starts)
        self._counts.extend(counts)
        self._size += int(new.size)
        if self._size > self._maxlen:
            self._forget(self._size - self._maxlen)

    def extend_run(self, first: int, count: int) -> None:
        """Add ``first``, ``first + 1``, ... (``count`` integers), as :meth:`extend` would.

        A drift subject observed in every event of a batch notes one such
        run; this skips the array work of finding runs in them.

        >>> ring = RunRing(4, [1, 2])
        >>> ring.extend_run(3, 3)
        >>> ring.tolist()
        [2, 3, 4, 5]
        """
        if count <= 0 or not self._maxlen:
            return
        if count > self._maxlen:
            first, count = first + count - self._maxlen, self._maxlen
        starts, counts = self._starts, self._counts
        if len(starts) > self._first and starts[-1] + counts[-1] == first:
            counts[-1] += count
        else:
            starts.append(first)
            counts.append(count)
        self._size += count
        if self._size > self._maxlen:
            self._forget(self._size - self._maxlen)

    def __getitem__(self, index: int) -> int:
        """The ``index``-th integer from the oldest (from the newest when negative)."""
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("ring index out of range")
        starts, counts = self._starts, self._counts
        if index >= self._size - counts[-1]:  # the newest run: the common case
            return int(starts[-1] + index - (self._size - counts[-1]))
        ends = np.cumsum(np.frombuffer(counts, dtype=np.int64)[self._first :])
        run = int(ends.searchsorted(index, side="right"))
        return int(starts[self._first + run] + index - (ends[run] - counts[self._first + run]))

    def values(self) -> np.ndarray:
        """The integers, oldest first, as a new array."""
        starts = np.frombuffer(self._starts, dtype=np.int64)[self._first :]
        counts = np.frombuffer(self._counts, dtype=np.int64)[self._first :]
        if not counts.size:
            return np.empty(0, dtype=np.int64)
        run_firsts = np.cumsum(counts) - counts
        steps = np.arange(self._size, dtype=np.int64) - np.repeat(run_firsts, counts)
        return np.repeat(starts, counts) + steps

    def _forget(self, count: int) -> None:
        """Drop the oldest ``count`` integers."""
        starts, counts, first = self._starts, self._counts, self._first
        self._size -= count
        while count:
            if counts[first] > count:
                starts[first] += count
                counts[first] -= count
                break
            count -= counts[first]
            first += 1
        if 2 * first >= len(starts):  # the forgotten runs are half: drop them
            del starts[:first], counts[:first]
            first = 0
        self._first = first


class EventMemory:
    """The time and Kafka position of each of the last ``maxlen`` events, oldest first.

    Reading the ``i``-th gives ``(time, position)`` equal to what was given:
    the same wall-clock time and ``fold``, with a ``tzinfo`` of the same
    type, value and name (the first such one remembered), and a position
    with the same topic, partition and offset, or None. Kept as integers, 20
    bytes an event: the time in microseconds since 1970-01-01 on its own
    clock, the position's offset, and a code for the rest (the time's
    ``tzinfo`` and fold, the position's topic and partition), an index into
    the combinations seen. A worker reads few topics and partitions, and
    events come in few time zones, so that list stays short.

    >>> from datetime import UTC
    >>> memory = EventMemory(2)
    >>> moments = [datetime(2026, 1, 1, second=s, tzinfo=UTC) for s in range(3)]
    >>> memory.extend(moments, [None, *(KafkaPosition(topic="t", partition=0, offset=o)
    ...                                  for o in (7, 8))])
    >>> len(memory), memory[0] == (moments[1], KafkaPosition(topic="t", partition=0, offset=7))
    (2, True)
    """

    __slots__ = (
        "_clock",
        "_last_zone",
        "_offset",
        "_place",
        "_place_codes",
        "_places",
        "_topic_codes",
        "_topics",
        "_zone_codes",
        "_zones",
    )

    def __init__(self, maxlen: int) -> None:
        self._clock = IntRing(maxlen)
        """Each time's microseconds since 1970-01-01, on its own (wall) clock."""
        self._offset = IntRing(maxlen)
        """Each position's offset (0 for no position)."""
        self._place = CodeRing(maxlen)
        """Each event's index in ``_places``."""
        self._places: list[tuple[int, int, int]] = []
        """The combinations seen of: twice the index of a time's tzinfo in ``_zones``
        plus its fold; the index of a position's topic in ``_topics`` (-1 for no
        position); the position's partition (0 for none)."""
        self._place_codes: dict[tuple[int, int, int], int] = {}
        self._zones: list[tzinfo | None] = []
        self._zone_codes: dict[tuple[type, str, tzinfo | None], int] = {}
        self._last_zone: tuple[object, int, datetime] = (_UNSEEN, 0, _EPOCH)
        """The tzinfo object last seen, its code, and 1970-01-01 in it."""
        self._topics: list[str] = []
        self._topic_codes: dict[str, int] = {}

    @property
    def maxlen(self) -> int:
        """How many events are remembered at most."""
        return self._clock.maxlen

    def __len__(self) -> int:
        return len(self._clock)

    def append(self, time: datetime, position: Located | None) -> None:
        """Remember one more event, forgetting the oldest when full."""
        code, epoch = self._zone_of(time.tzinfo)
        self._clock.append((time - epoch) // _MICROSECOND)
        if position is None:
            self._place.append(self._place_code((2 * code + time.fold, -1, 0)))
            self._offset.append(0)
        else:
            topic = self._topic_code(position.topic)
            self._place.append(self._place_code((2 * code + time.fold, topic, position.partition)))
            self._offset.append(position.offset)

    def extend(self, times: Sequence[datetime], positions: Sequence[Located | None]) -> None:
        """Remember events in order: their times and positions, as many appends would."""
        if len(times) != len(positions):
            raise ValueError(f"{len(times)} times but {len(positions)} positions")
        clock: list[int] = []
        zones: list[int] = []
        last: object = _UNSEEN
        code, epoch = 0, _EPOCH
        for time in times:
            zone = time.tzinfo
            if zone is not last:  # most events of a batch share one tzinfo object
                last = zone
                code, epoch = self._zone_of(zone)
            clock.append((time - epoch) // _MICROSECOND)
            zones.append(2 * code + time.fold)
        for topic in dict.fromkeys(p.topic for p in positions if p is not None):
            self._topic_code(topic)
        topics = self._topic_codes
        codes = self._place_codes
        places = [
            (zone, -1, 0) if p is None else (zone, topics[p.topic], p.partition)
            for zone, p in zip(zones, positions, strict=True)
        ]
        for place in dict.fromkeys(places):
            self._place_code(place)
        self._clock.extend(clock)
        self._place.extend([codes[place] for place in places])
        self._offset.extend([0 if p is None else p.offset for p in positions])

    def __getitem__(self, index: int) -> tuple[datetime, KafkaPosition | None]:
        """The time and position of the ``index``-th event from the oldest."""
        return self.time(index), self.position(index)

    def time(self, index: int) -> datetime:
        """The time of the ``index``-th event from the oldest."""
        return self._time(self._clock[index], self._places[self._place[index]][0])

    def position(self, index: int) -> KafkaPosition | None:
        """The Kafka position of the ``index``-th event from the oldest, if it had one."""
        _, topic, partition = self._places[self._place[index]]
        return self._position(topic, partition, self._offset[index])

    def times(self) -> list[datetime]:
        """Every time remembered, oldest first."""
        places = self._places
        return [
            self._time(clock, places[place][0])
            for clock, place in zip(self._clock.tolist(), self._place.tolist(), strict=True)
        ]

    def positions(self) -> list[KafkaPosition | None]:
        """Every position remembered, oldest first."""
        places = self._places
        return [
            self._position(places[place][1], places[place][2], offset)
            for place, offset in zip(self._place.tolist(), self._offset.tolist(), strict=True)
        ]

    def __iter__(self) -> Iterator[tuple[datetime, KafkaPosition | None]]:
        return zip(self.times(), self.positions(), strict=True)

    def extend_packed(self, packed: Mapping[str, Any]) -> None:
        """Remember the events :meth:`packed` wrote, as :meth:`extend` would; ValueError if
        ``packed`` is not such a form, or holds more events than fit.

        The times are made in numpy (wall clocks as ``datetime64``) and the
        positions as named tuples: some ten times faster than
        :func:`~driftline.monitors.packing.unpack_times` and
        :func:`~driftline.monitors.packing.unpack_positions`, which make them one
        by one (a validated KafkaPosition each), when the memory keeps only their
        numbers anyway. Restoring a monitor reads thousands of them.

        >>> from datetime import UTC
        >>> memory = EventMemory(3)
        >>> memory.extend([datetime(2026, 1, 1, s, tzinfo=UTC) for s in range(3)], [None] * 3)
        >>> copy = EventMemory(3)
        >>> copy.extend_packed(memory.packed())
        >>> copy.times() == memory.times(), copy.packed() == memory.packed()
        (True, True)
        """
        times, positions = packed.get("times"), packed.get("positions")
        if not isinstance(times, Mapping) or not isinstance(positions, Mapping):
            raise ValueError("packed events must have times and positions")
        try:
            micros, offsets = (
                np.asarray(unpack_ints(times[key]), dtype=np.int64) for key in ("micros", "offsets")
            )
            topic, partition, offset = (
                unpack_ints(positions[key]) for key in ("topic", "partition", "offset")
            )
        except (KeyError, TypeError, ValueError, OverflowError) as error:
            raise ValueError(f"packed events: {error!r}") from error
        topics = positions.get("topics")
        if not (isinstance(topics, list) and all(isinstance(name, str) for name in topics)):
            raise ValueError("positions.topics must be a list of topic names")
        count = len(micros)
        if not (
            len(offsets) == len(topic) == len(partition) == len(offset) == count <= self.maxlen
        ):
            raise ValueError("times and positions must be as many, and few enough")
        if count and not (
            min(topic) >= -1
            and max(topic) < len(topics)
            and min(partition) >= 0
            and min(offset) >= 0
        ):
            raise ValueError(
                "positions must name a topic listed, and partitions and offsets of at least 0"
            )
        walls = (micros + offsets).astype("datetime64[us]").tolist()
        zones = {value: timezone(timedelta(microseconds=value)) for value in set(offsets.tolist())}
        moments = [
            wall.replace(tzinfo=zones[value])
            for wall, value in zip(walls, offsets.tolist(), strict=True)
        ]
        places: list[Located | None] = [
            None if code < 0 else Position(topics[code], part, at)
            for code, part, at in zip(topic, partition, offset, strict=True)
        ]
        self.extend(moments, places)

    def packed(self) -> dict[str, Any]:
        """The times and positions as :func:`~driftline.monitors.packing.pack_times` and
        :func:`~driftline.monitors.packing.pack_positions` pack them, computed from the
        integers kept, not from a datetime and a position made for each event.

        A worker writes this at every checkpoint of a model version (thousands
        of events each): made one by one, the times took some 2 µs an event.
        Times in a zone whose offset changes (a ``ZoneInfo``) go the slow way.

        >>> from datetime import UTC, timezone
        >>> memory = EventMemory(4)
        >>> plus2 = timezone(timedelta(hours=2))
        >>> moments = [datetime(2026, 1, 1, s, tzinfo=UTC if s % 2 else plus2) for s in range(5)]
        >>> places = [None, *(KafkaPosition(topic=t, partition=1, offset=9) for t in "abab")]
        >>> memory.extend(moments, places)
        >>> memory.packed() == {"times": pack_times(memory.times()),
        ...                     "positions": pack_positions(memory.positions())}
        True
        """
        offsets = [_fixed_offset(zone) for zone in self._zones]
        if any(offset is None for offset in offsets):
            return {
                "times": pack_times(self.times()),
                "positions": pack_positions(self.positions()),
            }
        places = self._places
        place = self._place.values()
        zone_offset = np.array(
            [offsets[zone // 2] or 0 for zone, _, _ in places] or [0], dtype=np.int64
        )[place]
        topic_code = np.array([topic for _, topic, _ in places] or [-1], dtype=np.int64)[place]
        partition = np.array([p for _, _, p in places] or [0], dtype=np.int64)[place]
        present = topic_code >= 0
        codes, first = np.unique(topic_code[present], return_index=True)
        order = codes[np.argsort(first)]  # the topics in the order they first come
        renumber = np.full(len(self._topics) + 1, -1, dtype=np.int64)
        renumber[order] = np.arange(len(order))
        return {
            "times": {
                "micros": pack_ints(self._clock.values() - zone_offset),
                "offsets": pack_ints(zone_offset),
            },
            "positions": {
                "topics": [self._topics[code] for code in order.tolist()],
                "topic": pack_ints(renumber[topic_code]),  # -1 (no position) stays -1
                "partition": pack_ints(partition),
                "offset": pack_ints(self._offset.values()),
            },
        }

    def _time(self, clock: int, zone: int) -> datetime:
        wall = _EPOCH + timedelta(microseconds=clock)
        return wall.replace(tzinfo=self._zones[zone // 2], fold=zone % 2)

    def _position(self, topic: int, partition: int, offset: int) -> KafkaPosition | None:
        if topic < 0:
            return None
        return KafkaPosition(topic=self._topics[topic], partition=partition, offset=offset)

    def _zone_of(self, zone: tzinfo | None) -> tuple[int, datetime]:
        """The code of a time's tzinfo, and 1970-01-01 in that very tzinfo object.

        A time minus that epoch is its wall-clock time since 1970: Python
        subtracts two times of one tzinfo object on their wall clock.
        """
        last, code, epoch = self._last_zone
        if zone is last:
            return code, epoch
        # Equal tzinfos of one type and name share a code: pydantic parses
        # each "+02:00" into a tzinfo object of its own.
        key = (type(zone), str(zone), zone)
        known = self._zone_codes.get(key)
        if known is None:
            known = self._zone_codes[key] = len(self._zones)
            self._zones.append(zone)
        self._last_zone = (zone, known, _EPOCH.replace(tzinfo=zone))
        return known, self._last_zone[2]

    def _place_code(self, place: tuple[int, int, int]) -> int:
        code = self._place_codes.get(place)
        if code is None:
            code = self._place_codes[place] = len(self._places)
            self._places.append(place)
        return code

    def _topic_code(self, topic: str) -> int:
        code = self._topic_codes.get(topic)
        if code is None:
            code = self._topic_codes[topic] = len(self._topics)
            self._topics.append(topic)
        return code


def _fixed_offset(zone: tzinfo | None) -> int | None:
    """A time zone's UTC offset in microseconds when it has one offset for every time (a
    fixed offset, as JSON times carry), else None."""
    if zone is None:
        return None
    offset = zone.utcoffset(None)
    return None if offset is None else offset // _MICROSECOND
