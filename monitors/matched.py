"""The predictions already joined to a label, remembered compactly: 16 bytes each.

After a match, the label join remembers that the prediction was labelled,
until the prediction's event time leaves the retention, so that a second
label is told apart from a future orphan and a repeated prediction is not
joined again. Half the predictions of a busy labelled model are in that
state at any time, so one Python entry each (a key string, a value, an
index tuple: about 300 bytes) would dominate a worker's memory. Here a
prediction id is kept as a 64-bit digest next to the prediction's time, in
numpy arrays: sorted by digest for lookups, with the newest few in a dict
until they are merged in.

Two different ids share a digest with probability 2⁻⁶⁴: among ``n`` ids
remembered at once, a collision has probability about n²/2⁶⁵ (3·10⁻⁸ for a
million). It would make the second id's first label look like a repeat.
The digest is the same in every process (BLAKE2b), so it can be stored.
"""

import hashlib

import numpy as np

MERGE_EVERY = 2_048
"""Digests added before they are merged into the sorted arrays."""


def digest(prediction_id: str) -> int:
    """The 64-bit digest (a signed int64) of a prediction id, the same in every process.

    >>> digest("p1") == digest("p1"), digest("p1") == digest("p2")
    (True, False)
    """
    raw = hashlib.blake2b(prediction_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


class MatchedIds:
    """Digests of labelled prediction ids, each with the prediction's event time (an int).

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

    __slots__ = ("_keys", "_oldest", "_recent", "_times", "merge_every")

    def __init__(self, merge_every: int = MERGE_EVERY) -> None:
        if merge_every < 1:
            raise ValueError(f"merge_every must be at least 1, got {merge_every}")
        self.merge_every = merge_every
        self._keys = np.empty(0, dtype=np.int64)
        """Merged digests, sorted."""
        self._times = np.empty(0, dtype=np.int64)
        """The event time of each merged digest."""
        self._recent: dict[int, int] = {}
        """Digests not merged yet, with their times."""
        self._oldest: tuple[int, int] | None = None
        """``(time, digest)`` of the oldest, when known (None: to be found again)."""

    def __len__(self) -> int:
        return int(self._keys.size) + len(self._recent)

    def add(self, key: int, time: int) -> None:
        """Remember a digest (not remembered yet) with its event time."""
        self._recent[key] = time
        if self._oldest is not None and (time, key) < self._oldest:
            self._oldest = (time, key)
        if len(self._recent) >= self.merge_every:
            self._merge()

    def time_of(self, key: int) -> int | None:
        """The event time remembered with a digest, or None when it is not remembered."""
        time = self._recent.get(key)
        if time is not None:
            return time
        keys = self._keys
        if not keys.size:
            return None
        slot = int(np.searchsorted(keys, key))
        if slot < keys.size and int(keys[slot]) == key:
            return int(self._times[slot])
        return None

    def remove(self, key: int) -> None:
        """Forget one remembered digest."""
        if self._recent.pop(key, None) is None:
            slot = int(np.searchsorted(self._keys, key))
            if slot >= self._keys.size or int(self._keys[slot]) != key:
                raise KeyError(key)
            self._keys = np.delete(self._keys, slot)
            self._times = np.delete(self._times, slot)
        self._oldest = None

    def oldest(self) -> tuple[int, int] | None:
        """``(time, digest)`` of the earliest remembered (least digest first); None when empty."""
        if self._oldest is None and len(self):
            candidates = []
            if self._keys.size:
                times = self._times
                earliest = times.min()
                slot = int(np.flatnonzero(times == earliest)[0])  # keys sorted: the least
                candidates.append((int(earliest), int(self._keys[slot])))
            if self._recent:
                candidates.append(min((time, key) for key, time in self._recent.items()))
            self._oldest = min(candidates)
        return self._oldest

    def remove_before(self, horizon: int) -> int:
        """Forget every digest whose time is before ``horizon``; how many were forgotten."""
        oldest = self.oldest()
        if oldest is None or oldest[0] >= horizon:
            return 0
        gone = [key for key, time in self._recent.items() if time < horizon]
        for key in gone:
            del self._recent[key]
        keep = self._times >= horizon
        removed = len(gone) + int(keep.size - np.count_nonzero(keep))
        self._keys, self._times = self._keys[keep], self._times[keep]
        self._oldest = None
        return removed

    def items(self) -> list[tuple[int, int]]:
        """Every ``(digest, time)`` remembered, by digest."""
        self._merge()
        return list(zip(self._keys.tolist(), self._times.tolist(), strict=True))

    def _merge(self) -> None:
        if not self._recent:
            return
        keys = np.fromiter(self._recent.keys(), dtype=np.int64, count=len(self._recent))
        times = np.fromiter(self._recent.values(), dtype=np.int64, count=len(self._recent))
        self._recent = {}
        keys = np.concatenate([self._keys, keys])
        times = np.concatenate([self._times, times])
        order = np.argsort(keys, kind="stable")
        self._keys, self._times = keys[order], times[order]
