"""The predictions already joined to a label, remembered compactly: 24 bytes each.

After a match, the label join remembers that the prediction was labelled,
until the prediction's event time leaves the retention, so that a second
label is told apart from a future orphan and a repeated prediction is not
joined again. Half the predictions of a busy labelled model are in that
state at any time, so one Python entry each (a key string, a value, an
index tuple: about 300 bytes) would dominate a worker's memory. Here a
prediction id is kept as a 64-bit digest next to the prediction's time, in
numpy arrays (the two, and two 32-bit indexes between time and digest
order), with the newest few in a dict until they are merged in.

Two different ids share a digest with probability 2⁻⁶⁴: among ``n`` ids
remembered at once, a collision has probability about n²/2⁶⁵ (3·10⁻⁸ for a
million). It would make the second id's first label look like a repeat.
The digest is the same in every process (BLAKE2b), so it can be stored.
"""

import hashlib

import numpy as np

MERGE_EVERY = 2_048
"""Digests added before they are merged into the arrays (or an eighth of those kept, if more)."""


def digest(prediction_id: str) -> int:
    """The 64-bit digest (a signed int64) of a prediction id, the same in every process.

    >>> digest("p1") == digest("p1"), digest("p1") == digest("p2")
    (True, False)
    """
    raw = hashlib.blake2b(prediction_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


class MatchedIds:
    """Digests of labelled prediction ids, each with the prediction's event time (an int).

    Markers leave in time order (the retention passes them, or the join's
    bound evicts the oldest), once per event of a busy model, so that must
    not cost a pass over all of them. Merged digests are kept in order of
    ``(time, digest)``, forgotten ones before a start index, with a
    permutation that sorts them by digest for lookups; digests added since
    the last merge wait in a dict, their oldest known. Finding, dropping and
    reading the oldest then take constant time; a merge sorts everything
    again, which happens after a number of additions proportional to those
    kept.

    Examples
    --------
    >>> matched = MatchedIds()
    >>> matched.add(digest("p1"), 10)
    >>> matched.add(digest("p2"), 5)
    >>> matched.time_of(digest("p1")), matched.time_of(digest("p3")), len(matched)
    (10, None, 2)
    >>> matched.oldest() == (5, digest("p2"))
    True
    >>> matched.remove_before(8), len(matched), matched.time_of(digest("p2"))
    (1, 1, None)
    """

    __slots__ = (
        "_by_key",
        "_dead",
        "_rank",
        "_recent",
        "_recent_oldest",
        "_sorted_keys",
        "_start",
        "_times",
        "merge_every",
    )

    def __init__(self, merge_every: int = MERGE_EVERY) -> None:
        if merge_every < 1:
            raise ValueError(f"merge_every must be at least 1, got {merge_every}")
        self.merge_every = merge_every
        self._times = np.empty(0, dtype=np.int64)
        """Merged times, in order of (time, digest)."""
        self._sorted_keys = np.empty(0, dtype=np.int64)
        """The merged digests, sorted."""
        self._by_key = np.empty(0, dtype=np.int32)
        """Where each of ``_sorted_keys`` is in ``_times``."""
        self._rank = np.empty(0, dtype=np.int32)
        """Where the digest of each merged time is in ``_sorted_keys``: 4 bytes where the
        digests in time order would take 8 again."""
        self._start = 0
        """Merged entries before this one are forgotten."""
        self._dead: set[int] = set()
        """Merged entries at or after ``_start`` forgotten out of order (by :meth:`remove`)."""
        self._recent: dict[int, int] = {}
        """Digests not merged yet, with their times."""
        self._recent_oldest: tuple[int, int] | None = None
        """``(time, digest)`` of the oldest in ``_recent`` (None when it is empty)."""

    def __len__(self) -> int:
        return int(self._times.size) - self._start - len(self._dead) + len(self._recent)

    def add(self, key: int, time: int) -> None:
        """Remember a digest (not remembered yet) with its event time."""
        self._recent[key] = time
        if self._recent_oldest is None or (time, key) < self._recent_oldest:
            self._recent_oldest = (time, key)
        if len(self._recent) >= max(self.merge_every, (self._times.size - self._start) // 8):
            self._merge()

    def time_of(self, key: int) -> int | None:
        """The event time remembered with a digest, or None when it is not remembered."""
        time = self._recent.get(key)
        if time is not None:
            return time
        at = self._merged_at(key)
        return None if at is None else int(self._times[at])

    def remove(self, key: int) -> None:
        """Forget one remembered digest (the oldest in constant time)."""
        if key in self._recent:
            del self._recent[key]
            self._recent_oldest = _oldest_of(self._recent)
            return
        at = self._merged_at(key)
        if at is None:
            raise KeyError(key)
        self._dead.add(at)
        self._skip_dead()

    def remove_oldest(self) -> tuple[int, int]:
        """Forget the earliest remembered (see :meth:`oldest`) and return it, in constant time.

        >>> matched = MatchedIds()
        >>> matched.add(7, 20); matched.add(3, 10)
        >>> matched.remove_oldest(), len(matched)
        ((10, 3), 1)
        """
        oldest = self.oldest()
        if oldest is None:
            raise KeyError("no digest is remembered")
        if oldest == self._recent_oldest:
            del self._recent[oldest[1]]
            self._recent_oldest = _oldest_of(self._recent)
        else:  # the merged one at the start
            self._start += 1
            self._skip_dead()
        return oldest

    def oldest(self) -> tuple[int, int] | None:
        """``(time, digest)`` of the earliest remembered (least digest first); None when empty."""
        merged = None
        if self._start < self._times.size:
            merged = (int(self._times[self._start]), self._key_at(self._start))
        if merged is None or (self._recent_oldest is not None and self._recent_oldest < merged):
            return self._recent_oldest
        return merged

    def remove_before(self, horizon: int) -> int:
        """Forget every digest whose time is before ``horizon``; how many were forgotten."""
        removed = 0
        if self._recent_oldest is not None and self._recent_oldest[0] < horizon:
            gone = [key for key, time in self._recent.items() if time < horizon]
            for key in gone:
                del self._recent[key]
            self._recent_oldest = _oldest_of(self._recent)
            removed += len(gone)
        if self._start < self._times.size and self._times[self._start] < horizon:
            end = self._start + int(self._times[self._start :].searchsorted(horizon))
            dead = {at for at in self._dead if at < end}
            removed += end - self._start - len(dead)
            self._dead -= dead
            self._start = end
            self._skip_dead()
        return removed

    def items(self) -> list[tuple[int, int]]:
        """Every ``(digest, time)`` remembered, by digest."""
        self._merge()
        keys = self._sorted_keys[self._rank[self._start :]]
        times = self._times[self._start :]
        order = np.argsort(keys, kind="stable")
        return list(zip(keys[order].tolist(), times[order].tolist(), strict=True))

    def _merged_at(self, key: int) -> int | None:
        """Where a remembered merged digest is in ``_times``, or None."""
        sorted_keys = self._sorted_keys
        if not sorted_keys.size:
            return None
        slot = int(sorted_keys.searchsorted(key))  # the method: half the cost of np.searchsorted
        if slot == sorted_keys.size or int(sorted_keys[slot]) != key:
            return None
        at = int(self._by_key[slot])
        return None if at < self._start or at in self._dead else at

    def _key_at(self, at: int) -> int:
        """The digest of the merged time at ``at``."""
        return int(self._sorted_keys[self._rank[at]])

    def _skip_dead(self) -> None:
        while self._start in self._dead:
            self._dead.discard(self._start)
            self._start += 1

    def _merge(self) -> None:
        """Sort the merged digests still remembered and the recent ones together."""
        live = np.arange(self._start, self._times.size, dtype=np.int64)
        if self._dead:
            live = live[~np.isin(live, np.fromiter(self._dead, dtype=np.int64))]
        count = len(self._recent)
        times = np.concatenate(
            [self._times[live], np.fromiter(self._recent.values(), np.int64, count)]
        )
        keys = np.concatenate(
            [self._sorted_keys[self._rank[live]], np.fromiter(self._recent.keys(), np.int64, count)]
        )
        order = np.lexsort((keys, times))
        self._times, keys = times[order], keys[order]
        place_type = np.int32 if keys.size <= np.iinfo(np.int32).max else np.int64
        self._by_key = np.argsort(keys, kind="stable").astype(place_type)
        self._sorted_keys = keys[self._by_key]
        self._rank = np.empty(keys.size, place_type)
        self._rank[self._by_key] = np.arange(keys.size, dtype=place_type)
        self._start, self._dead = 0, set()
        self._recent, self._recent_oldest = {}, None


def _oldest_of(recent: dict[int, int]) -> tuple[int, int] | None:
    return min(((time, key) for key, time in recent.items()), default=None)
