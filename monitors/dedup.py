"""Recognising repeated events: event ids remembered for a bounded event time.

Kafka delivers at least once, and producers retry, so the same event can
arrive twice; counting it twice would bias every statistic. Remembering
every id forever would grow without bound, so ids are kept for a window of
event time (and at most a number of them). An event older than what is
remembered cannot be told apart from a duplicate, so it is reported as late
instead of being counted blindly.

A worker remembers an hour of events for every model and input topic,
millions of ids in all, so each id is kept in about 27 bytes of numpy
arrays rather than as a string in a dict (about 200 bytes); see
:class:`RecentEventIds` for how.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from driftline.monitors.instants import ZoneEpoch

_MICROSECOND = timedelta(microseconds=1)
_AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_BEFORE_ANY_TIME = -(2**63)
"""Microseconds since the epoch earlier than any datetime (year 1 is about -6.2e16)."""

_ROOM_SHARE = 16
"""Unmerged ids wait for a merge until they are a sixteenth of those remembered.

A merge takes time in proportion to the ids remembered, so merging after a
fixed share of them keeps its cost per arrival fixed (under 0.5 µs), while
the unmerged ids, about 110 bytes each in a dict, add about 7 bytes per
remembered id just before a merge, 3.5 on average. (An eighth, with merges
every 1,024 arrivals at least, kept 32 bytes an id on average, against 27
now, for 20 streams of 10,000 ids; the time per arrival did not change
measurably.)
"""


class Arrival(StrEnum):
    """What an event id's arrival means."""

    NEW = "new"
    """First time seen within the window: process the event."""
    DUPLICATE = "duplicate"
    """Seen before within the window: count it, do not process it again."""
    LATE = "late"
    """Older than the window: it can no longer be checked for duplicates."""


# Module names, for speed: an enum member read from its class costs ~50 ns.
_NEW, _DUPLICATE, _LATE = Arrival.NEW, Arrival.DUPLICATE, Arrival.LATE


class RecentEventIds:
    """The event ids of one stream seen within ``window`` of event time.

    The window ends at the latest event time seen so far (the stream's
    watermark), never at a wall clock, so a replay gives the same answers.
    At most ``max_ids`` ids are kept; when more arrive, the earliest
    arrivals are forgotten and everything up to their event time counts as
    late from then on, so a forgotten id can never pass as new.

    How the ids are kept: an id is remembered as its 64-bit ``hash()``, its
    event time as microseconds, in numpy arrays (22 to 33 bytes an id, 27
    on average, where strings in a dict took about 200):

    - the event times in arrival order, from the earliest arrival still
      remembered (forgetting moves a start index, nothing is deleted);
    - the hashes merged so far, sorted for a binary search, each with its
      place in that order, so that a hash placed before the start is
      forgotten;
    - a bitmap of the merged hashes (16 to 32 bits per id), so that a new
      id rarely needs the binary search (3 to 6 % of them do);
    - a dict of the hashes that arrived since the last merge, by place.

    A merge (when the dict holds ``merge_size`` hashes, or a sixteenth of
    those remembered if more) sorts the dict into the merged hashes, drops
    the forgotten ones and moves the event times to a new array with room
    for the arrivals until the next merge. An arrival costs about as much
    time as it did with strings in a dict, about 1.1 µs.

    Two different ids with the same hash would make the later one look
    like a duplicate: with ``n`` ids remembered, a new id collides with
    probability ``n / 2**64`` and some pair of them with about
    ``n**2 / 2**65`` (2.7e-10 for 100,000 ids). ``hash()`` of a str is
    randomised per process, which is fine because the ids live in one
    process's memory; a change that persists them must switch to a stable
    hash (``hashlib.blake2b`` with an 8-byte digest costs about 0.5 µs an
    id, hence not used here).

    Times are compared as instants, all aware or all naive like the first
    event's, as before. :meth:`event_time_of` and :attr:`horizon` give back
    a datetime equal to the one given, in the watermark's time zone (the
    same datetime when all events share one zone).

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> ids = RecentEventIds(window=timedelta(hours=1), max_ids=1000)
    >>> noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> ids.arrive("a", noon).value, ids.arrive("a", noon).value
    ('new', 'duplicate')
    >>> ids.arrive("b", noon + timedelta(hours=2)).value
    'new'
    >>> ids.arrive("c", noon).value
    'late'
    >>> ids.horizon == noon + timedelta(hours=1), len(ids)
    (True, 1)

    A small ``merge_size`` merges often, which gives the same answers:

    >>> few = RecentEventIds(window=timedelta(hours=1), max_ids=1000, merge_size=1)
    >>> [few.arrive(i, noon).value for i in "abab"]
    ['new', 'new', 'duplicate', 'duplicate']
    >>> few.event_time_of("a") == noon, few.event_time_of("c")
    (True, None)
    """

    def __init__(self, window: timedelta, max_ids: int, *, merge_size: int = 256) -> None:
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        if max_ids < 1:
            raise ValueError(f"max_ids must be at least 1, got {max_ids}")
        if merge_size < 1:
            raise ValueError(f"merge_size must be at least 1, got {merge_size}")
        self.window = window
        self.max_ids = max_ids
        self.merge_size = merge_size
        self._window_us = window // _MICROSECOND
        self._epoch = _AWARE_EPOCH
        self._within: ZoneEpoch | None = None
        """The zone of the latest event times, while the stream is aware: see :mod:`.instants`."""
        self._watermark: datetime | None = None
        self._watermark_us = _BEFORE_ANY_TIME
        self._forgotten_until_us = _BEFORE_ANY_TIME
        self._horizon_us = _BEFORE_ANY_TIME
        # Event times (µs) in arrival order; places [_start, _end) are remembered,
        # and a merge is due when _end reaches _capacity, the length of _times.
        self._times: npt.NDArray[np.int64] = np.empty(merge_size, np.int64)
        self._start = 0
        self._end = 0
        self._capacity = merge_size
        # Merged hashes, sorted, and the place of each in _times.
        self._merged: npt.NDArray[np.int64] = np.empty(0, np.int64)
        self._merged_places: npt.NDArray[np.signedinteger] = np.empty(0, np.int32)
        self._merged_bits = bytes(8)
        self._merged_bits_mask = 63
        # Hashes that arrived since the last merge, by place in _times.
        self._unmerged: dict[int, int] = {}
        self.journal: list[tuple[str, int]] | None = None
        """When a list, each new arrival is appended to it, its id and event time (in
        microseconds since the epoch, as the memory keeps it): what a caller that keeps the
        ids elsewhere has to save since it last emptied the list (:meth:`restore` takes them
        back)."""

    def arrive(self, event_id: str, event_time: datetime) -> Arrival:
        """Record one event's arrival and say whether it is new, a duplicate or late."""
        within = self._within
        if within is not None and event_time.tzinfo is within.zone:
            time = (event_time - within.epoch) // _MICROSECOND - within.offset
        else:
            time = self._micros(event_time)
        if time <= self._horizon_us:
            return _LATE
        key = hash(event_id)
        place = self._unmerged.get(key)
        if place is None:
            bit = key & self._merged_bits_mask
            if self._merged_bits[bit >> 3] >> (bit & 7) & 1 and self._merged_place(key) is not None:
                return _DUPLICATE
        elif place >= self._start:
            return _DUPLICATE
        end = self._end
        if end == self._capacity:
            self._merge()
            end = self._end
        self._times[end] = time
        self._unmerged[key] = end
        end += 1
        self._end = end
        if time > self._watermark_us:
            self._watermark = event_time
            self._watermark_us = time
            self._forget_old(end)
        elif end - self._start > self.max_ids:
            self._forget_old(end)
        journal = self.journal
        if journal is not None:
            journal.append((event_id, time))
        return _NEW

    def restore(self, arrivals: Iterable[tuple[str, int]]) -> None:
        """Take back arrivals a journal recorded, in their order, as if they arrived again
        (the journal records none of them): the same ids are remembered and forgotten. Their
        times come back in UTC (the instants are the same; :attr:`horizon` reads in UTC).

        >>> from datetime import UTC, datetime, timedelta
        >>> noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
        >>> first = RecentEventIds(window=timedelta(hours=1), max_ids=1000)
        >>> first.journal = []
        >>> [first.arrive(i, noon).value for i in "aba"]
        ['new', 'new', 'duplicate']
        >>> again = RecentEventIds(window=timedelta(hours=1), max_ids=1000)
        >>> again.restore(first.journal)
        >>> again.arrive("b", noon).value, again.arrive("c", noon).value
        ('duplicate', 'new')
        """
        journal, self.journal = self.journal, None
        try:
            for event_id, micros in arrivals:
                self.arrive(event_id, _AWARE_EPOCH + timedelta(microseconds=micros))
        finally:
            self.journal = journal

    def arrive_all_new(self, event_ids: Sequence[str], event_times: Sequence[datetime]) -> bool:
        """Record the arrivals of a run of events at once if all are new; whether they were.

        When True, each event was recorded as :meth:`arrive` in turn records
        it, and each would have been :attr:`Arrival.NEW`. When False, nothing
        is recorded: call :meth:`arrive` for each, in turn.

        All are new, as a rule, when no id is remembered or given twice, no
        event is late against the watermark of those before it, and all fit
        within ``max_ids`` (so none is forgotten for room): then they are
        checked with a few array operations, and the watermark moves (and
        forgets what it leaves behind) once, to where the latest puts it.
        The same ids are remembered as in turn, though the arrays keeping
        them may be laid out otherwise. A stream's first event, or times in
        another zone than the stream's (see :mod:`.instants`), go in turn.
        """
        count = len(event_ids)
        within = self._within
        if (
            not count
            or within is None
            or self._watermark is None
            or len(self) + count > self.max_ids
            or any(moment.tzinfo is not within.zone for moment in event_times)
        ):
            return False
        epoch, offset = within.epoch, within.offset
        times = [(moment - epoch) // _MICROSECOND - offset for moment in event_times]
        keys = [hash(event_id) for event_id in event_ids]
        if not self._all_new(keys, times):
            return False
        done = 0
        while done < count:
            if self._end == self._capacity:
                self._merge()
            end = self._end
            take = min(count - done, self._capacity - end)
            self._times[end : end + take] = times[done : done + take]
            places = range(end, end + take)
            self._unmerged.update(zip(keys[done : done + take], places, strict=True))
            self._end = end + take
            done += take
        latest = max(times)
        if latest > self._watermark_us:
            self._watermark = event_times[times.index(latest)]
            self._watermark_us = latest
            self._forget_old(self._end)
        if self.journal is not None:
            self.journal.extend(zip(event_ids, times, strict=True))
        return True

    def _all_new(self, keys: list[int], times: list[int]) -> bool:
        """Whether events of these hashes and times, arriving in turn, would all be new."""
        if len(set(keys)) < len(keys) or not self._unmerged.keys().isdisjoint(keys):
            return False  # given twice, or maybe remembered: in turn says
        merged = self._merged
        if len(merged):
            hashes = np.array(keys, dtype=np.int64)
            at = np.minimum(merged.searchsorted(hashes), len(merged) - 1)
            if ((merged[at] == hashes) & (self._merged_places[at] >= self._start)).any():
                return False
        stamps = np.array(times, dtype=np.int64)
        watermarks = np.maximum.accumulate(stamps)  # after each arrival
        before = np.empty_like(stamps)
        before[0] = self._watermark_us
        np.maximum(watermarks[:-1], self._watermark_us, out=before[1:])
        horizons = np.maximum(before - self._window_us, self._forgotten_until_us)
        return bool((stamps > horizons).all())

    def _micros(self, event_time: datetime) -> int:
        """Microseconds since the epoch (naive ones from a naive epoch, for a naive stream);
        remembers the event's zone when its offset is fixed, for the next."""
        try:
            time = (event_time - self._epoch) // _MICROSECOND
        except TypeError:
            if self._watermark is not None:
                raise
            time = (event_time - _NAIVE_EPOCH) // _MICROSECOND
            self._epoch = _NAIVE_EPOCH
        if self._epoch is _AWARE_EPOCH:
            self._within = ZoneEpoch.of(event_time.tzinfo)
        return time

    def event_time_of(self, event_id: str) -> datetime | None:
        """The event time of a remembered id, or None when it is not remembered."""
        key = hash(event_id)
        place = self._unmerged.get(key)
        if place is None:
            place = self._merged_place(key)
        elif place < self._start:
            place = None
        if place is None:
            return None
        return self._datetime(self._times.item(place))

    @property
    def horizon_micros(self) -> int | None:
        """:attr:`horizon` in microseconds since the epoch, as :attr:`journal` gives times."""
        return None if self._watermark is None else self._horizon_us

    @property
    def horizon(self) -> datetime | None:
        """Events at or before this event time are late; None before any event."""
        if self._watermark is None:
            return None
        if self._forgotten_until_us > self._watermark_us - self._window_us:
            return self._datetime(self._forgotten_until_us)
        return self._watermark - self.window

    def __len__(self) -> int:
        return self._end - self._start

    def _merged_place(self, key: int) -> int | None:
        """The place in arrival order of a remembered merged hash, or None."""
        merged = self._merged
        index = int(merged.searchsorted(key))
        if index < len(merged) and merged.item(index) == key:
            place: int = self._merged_places.item(index)
            if place >= self._start:
                return place
        return None

    def _forget_old(self, end: int) -> None:
        """Drop ids past the window, and the earliest arrivals past ``max_ids``."""
        expiry = self._watermark_us - self._window_us
        times = self._times
        start = self._start
        forgotten_until = self._forgotten_until_us
        room_end = end - self.max_ids
        if room_end > start:  # the earliest arrivals, past max_ids, go for room
            forgotten_until = max(forgotten_until, int(times[start:room_end].max()))
            start = room_end
        if start < end and times.item(start) <= expiry:
            # Then arrivals past the window, up to the first one within it; a batch's
            # arrivals forget thousands at once.
            within = times[start:end] > expiry
            start = start + int(within.argmax()) if within.any() else end
        self._start = start
        self._forgotten_until_us = forgotten_until
        self._horizon_us = expiry if expiry >= forgotten_until else forgotten_until

    def _merge(self) -> None:
        """Sort the unmerged hashes in, drop forgotten ones, and make room for more arrivals."""
        start, end = self._start, self._end
        remembered = end - start
        capacity = remembered + max(self.merge_size, remembered // _ROOM_SHARE)
        largest_place = max(capacity, len(self._times))
        place_type = np.int32 if largest_place <= np.iinfo(np.int32).max else np.int64

        kept = self._merged_places >= start
        merged = self._merged[kept]
        merged_places = self._merged_places[kept]

        count = len(self._unmerged)
        new = np.fromiter(self._unmerged.keys(), np.int64, count)
        new_places = np.fromiter(self._unmerged.values(), np.int64, count)
        self._unmerged = {}
        kept = new_places >= start
        new, new_places = new[kept], new_places[kept]
        order = new.argsort()
        new, new_places = new[order], new_places[order]

        # Where each new hash goes among the merged ones, and the rest in order.
        goes_to = merged.searchsorted(new) + np.arange(len(new))
        is_merged = np.ones(remembered, np.bool_)
        is_merged[goes_to] = False
        self._merged = np.empty(remembered, np.int64)
        self._merged[goes_to] = new
        self._merged[is_merged] = merged
        self._merged_places = np.empty(remembered, place_type)
        self._merged_places[goes_to] = new_places
        self._merged_places[is_merged] = merged_places
        self._merged_places -= start

        times = np.empty(capacity, np.int64)
        times[:remembered] = self._times[start:end]
        self._times = times
        self._capacity = capacity
        self._start, self._end = 0, remembered

        size = max(8, 1 << (2 * remembered - 1).bit_length())
        bits = np.zeros(8 * size, np.bool_)
        bits[self._merged & (8 * size - 1)] = True
        self._merged_bits = np.packbits(bits, bitorder="little").tobytes()
        self._merged_bits_mask = 8 * size - 1

    def _datetime(self, time: int) -> datetime:
        """The datetime of a time kept in microseconds, in the watermark's time zone."""
        moment = self._epoch + timedelta(microseconds=time)
        if moment.tzinfo is None or self._watermark is None:
            return moment
        return moment.astimezone(self._watermark.tzinfo)
