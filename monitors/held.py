"""The predictions of a model that has had no label yet, held compactly in event-time order.

Most models never get labels, and the label join holds the latest
predictions of each of them only so that a model's first labels can find
theirs (see :mod:`driftline.monitors.labels`). A worker watching a hundred
such models holds a hundred thousand of them, so each is kept in as few
bytes as a Python program allows:

* its event time and the ``hash()`` of its prediction id in two
  :class:`array.array` of 64-bit integers (16 bytes);
* its prediction id and payload as one compact JSON array and a comma, at
  the end of one ``bytearray`` of all of them, and where it starts in an
  :class:`array.array` (8 bytes beyond the JSON, where a ``bytes`` object
  of its own in a list took 41 and more, and kept a small block of memory
  alive for as long as it was held);
* a count per bucket of hashes, 16 to 32 one-byte buckets per prediction
  held, so that an id is known not to be held without a look at the others
  in 15 of 16 cases or more; the rest compare the hashes in one numpy call.

That is about 128 bytes for a regression prediction with a UUID for an id
(its JSON is 60), where a ``bytes`` object each took 158, and a dict by
store key with a heap item by event time about 370.

They are kept sorted by event time (equal times in arrival order), so the
earliest leaves first, pushed out or expired, as from a heap. Predictions
mostly come in order: a new one then goes at the end, and one out of order
is inserted with a move of the later ones (a ``memmove`` in C).
"""

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import orjson

_BUCKETS_PER_PREDICTION = 16
"""Buckets of the id index per prediction it has room for: a new id finds its bucket empty
in about 15 of 16 cases."""

_FEWEST_BUCKETS = 256

_FEWEST_SORTED = 8
_HELD_PER_SORTED = 128
"""Up to ``_FEWEST_SORTED`` ids, and one more per ``_HELD_PER_SORTED`` held, are looked
up one by one; more are intersected with all held at once (a sort)."""

_FULL = 255
"""A bucket's count stops here (a byte) and stays, meaning "look", until the index is rebuilt."""


class HeldPredictions:
    """One model's held predictions: ``(prediction id, event time, payload)``, earliest first.

    Event times are integers (the label join's microseconds since the
    epoch); of equal times, the earlier arrival comes first. Payloads are
    kept as JSON, so they come back as ``orjson`` reads them.

    Two different prediction ids with the same ``hash()`` would make the
    later one look held already: with ``n`` held, a new id does so with
    probability ``n / 2**64``. ``hash()`` of a str is randomised per
    process, which is fine for what lives in one process's memory only.

    >>> held = HeldPredictions()
    >>> held.push("p1", 30, {"score": 0.9})
    >>> held.push("p2", 10, [1, 2])
    >>> len(held), "p1" in held, "p3" in held, held.oldest_time, held.peek()
    (2, True, False, 10, ('p2', 10))
    >>> held.pop()
    ('p2', 10, [1, 2])
    >>> list(held), "p2" in held
    ([('p1', 30, {'score': 0.9})], False)
    """

    __slots__ = ("_buckets", "_hashes", "_records", "_start", "_starts", "_times")

    def __init__(self) -> None:
        self._times = array("q")
        self._hashes = array("q")
        self._records = bytearray()
        """Each held prediction's ``[id, payload]`` and a comma, one after the other."""
        self._starts = array("q", [0])
        """Where each record starts in ``_records``, and where the last ends."""
        self._start = 0
        """Places before it were popped; they are dropped once they are half."""
        self._buckets = bytearray(_FEWEST_BUCKETS)

    def __len__(self) -> int:
        return len(self._times) - self._start

    def __contains__(self, prediction_id: object) -> bool:
        key = hash(prediction_id)
        if not self._buckets[key & (len(self._buckets) - 1)]:
            return False
        hashes = np.frombuffer(self._hashes, dtype=np.int64)[self._start :]
        return bool((hashes == key).any())

    def holds_any(self, keys: Iterable[int]) -> bool:
        """Whether any of these ``hash()`` values is that of a held prediction id.

        :meth:`__contains__` for many ids at once, given their hashes: most
        find their bucket empty. The few left (a worker's small batches) are
        each compared with the held hashes in one numpy call, ~2 µs per
        10,000 held; more of them are intersected with the held hashes in
        one sort, ~250 µs per 10,000 held. (``np.isin`` took ~1.1 ms per
        10,000 held however few were looked up.)

        >>> held = HeldPredictions()
        >>> held.push("p1", 30, None)
        >>> held.holds_any([hash("p2"), hash("p3")]), held.holds_any([hash("p2"), hash("p1")])
        (False, True)
        """
        buckets, mask = self._buckets, len(self._buckets) - 1
        looked = {key for key in keys if buckets[key & mask]}
        if not looked:
            return False
        hashes = np.frombuffer(self._hashes, dtype=np.int64)[self._start :]
        if len(looked) <= _FEWEST_SORTED + len(hashes) // _HELD_PER_SORTED:
            return any(bool((hashes == key).any()) for key in looked)
        # Held hashes repeat only if two held ids share one: then this says "held"
        # of an id that is not, which only sends the caller the long way.
        common = np.intersect1d(
            np.fromiter(looked, np.int64, len(looked)), hashes, assume_unique=True
        )
        return bool(common.size)

    @property
    def oldest_time(self) -> int:
        """The earliest event time held (raises IndexError when none is)."""
        if not len(self):
            raise IndexError("no prediction is held")
        return self._times[self._start]

    @property
    def newest_time(self) -> int:
        """The latest event time held (raises IndexError when none is)."""
        if not len(self):
            raise IndexError("no prediction is held")
        return self._times[-1]

    def times(self) -> "array[int]":
        """The event times held, earliest first (a copy)."""
        return self._times[self._start :]

    def peek(self) -> tuple[str, int]:
        """The prediction id and event time of the earliest held (IndexError: none)."""
        if not len(self):
            raise IndexError("no prediction is held")
        prediction_id: str = orjson.loads(self._record(self._start))[0]
        return prediction_id, self._times[self._start]

    def push(self, prediction_id: str, time: int, payload: Any) -> None:
        """Hold a new prediction (the caller checked its id is not held)."""
        key = hash(prediction_id)
        record = orjson.dumps([prediction_id, payload]) + b","
        times, records, starts = self._times, self._records, self._starts
        if len(times) == self._start or time >= times[-1]:
            times.append(time)
            self._hashes.append(key)
            records += record
            starts.append(len(records))
        else:
            place = bisect_right(times, time, self._start)
            times.insert(place, time)
            self._hashes.insert(place, key)
            at = starts[place]
            records[at:at] = record
            starts.insert(place, at)
            np.frombuffer(starts, dtype=np.int64)[place + 1 :] += len(record)
        if _BUCKETS_PER_PREDICTION * len(self) > len(self._buckets):
            self._index()
            return
        bucket = key & (len(self._buckets) - 1)
        if self._buckets[bucket] < _FULL:
            self._buckets[bucket] += 1

    def extend(
        self,
        prediction_ids: Sequence[str],
        times: Sequence[int],
        payloads: Sequence[Any],
        *,
        hashes: Sequence[int] | None = None,
        in_order: bool = False,
    ) -> None:
        """:meth:`push` each, for predictions in event-time order, none earlier than one held.

        The caller checked that no id is held or given twice. Raises
        ValueError, holding none of them, when the times are out of order
        (``in_order``: the caller checked that they are not). ``hashes``: the
        ids' ``hash()``, when the caller has them already.
        """
        if not times:
            return
        if (len(self) and times[0] < self._times[-1]) or (
            not in_order and any(later < earlier for earlier, later in pairwise(times))
        ):
            raise ValueError("predictions held together must come in event-time order")
        keys = hashes if hashes is not None else [hash(p) for p in prediction_ids]
        self._times.extend(times)
        self._hashes.extend(keys)
        records, starts = self._records, self._starts
        for prediction_id, payload in zip(prediction_ids, payloads, strict=True):
            records += orjson.dumps([prediction_id, payload])
            records += b","
            starts.append(len(records))
        if _BUCKETS_PER_PREDICTION * len(self) > len(self._buckets):
            self._index()
            return
        self._count_in(np.fromiter(keys, np.int64, len(keys)), 1)

    def pop_many(self, count: int) -> list[tuple[str, int, Any]]:
        """Remove and return the ``count`` earliest held, earliest first (:meth:`pop` each)."""
        if count > len(self):
            raise IndexError(f"{count} predictions asked for, {len(self)} held")
        start, end = self._start, self._start + count
        times, hashes, starts = self._times, self._hashes, self._starts
        if not count:
            return []
        self._count_in(np.frombuffer(hashes, dtype=np.int64)[start:end], -1)
        # One JSON document of all the records: one parse, not one call per record.
        decoded = orjson.loads(b"[" + self._records[starts[start] : starts[end] - 1] + b"]")
        popped = [
            (prediction_id, time, payload)
            for (prediction_id, payload), time in zip(decoded, times[start:end], strict=True)
        ]
        self._start = end
        self._drop_popped()
        return popped

    def pop(self) -> tuple[str, int, Any]:
        """Remove and return the earliest held."""
        if not len(self):
            raise IndexError("no prediction is held")
        start = self._start
        prediction_id, payload = orjson.loads(self._record(start))
        bucket = self._hashes[start] & (len(self._buckets) - 1)
        if self._buckets[bucket] < _FULL:
            self._buckets[bucket] -= 1
        time = self._times[start]
        self._start = start + 1
        self._drop_popped()
        return prediction_id, time, payload

    def __iter__(self) -> Iterator[tuple[str, int, Any]]:
        """The held predictions, earliest first."""
        for place in range(self._start, len(self._times)):
            prediction_id, payload = orjson.loads(self._record(place))
            yield prediction_id, self._times[place], payload

    def _record(self, place: int) -> bytes:
        """The JSON of the record at ``place``, without its comma."""
        return bytes(self._records[self._starts[place] : self._starts[place + 1] - 1])

    def _drop_popped(self) -> None:
        """Drop the popped places once they are half of those kept (a move of the rest)."""
        start = self._start
        if 2 * start < len(self._times):
            return
        starts = self._starts
        del self._times[:start], self._hashes[:start], self._records[: starts[start]]
        kept = np.frombuffer(starts, dtype=np.int64)[start:] - starts[start]
        self._starts = array("q", kept.tobytes())
        self._start = 0

    def _count_in(self, keys: "np.ndarray[Any, np.dtype[np.int64]]", step: int) -> None:
        """Add ``step`` (1 or -1) to the bucket of each of these hashes, as one by one would.

        A bucket at ``_FULL`` stays there; one below it never reaches it by
        removals, and additions stop at it.
        """
        buckets = np.frombuffer(self._buckets, dtype=np.uint8)
        places, added = np.unique(keys & (len(buckets) - 1), return_counts=True)
        counts = buckets[places].astype(np.int64)
        counting = counts < _FULL
        changed = counts[counting] + step * added[counting]
        buckets[places[counting]] = np.minimum(changed, _FULL)

    def _index(self) -> None:
        """Rebuild the bucket counts, with room for twice the predictions held."""
        size = max(_FEWEST_BUCKETS, 1 << (2 * _BUCKETS_PER_PREDICTION * len(self) - 1).bit_length())
        hashes = np.frombuffer(self._hashes, dtype=np.int64)[self._start :]
        counts = np.bincount(hashes & (size - 1), minlength=size)
        self._buckets = bytearray(np.minimum(counts, _FULL).astype(np.uint8).tobytes())
