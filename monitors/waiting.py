"""The entries of one model waiting in the label join's store, earliest event time first.

The label join expires and evicts a model's waiting predictions and labels
oldest first, so it keeps their store keys ordered by event time. A list of
``(time, key, code)`` tuples kept as a heap did that at ~105 bytes an entry
beside the key itself (the tuple, its time as an int object, the list's
slot). A worker whose models get labels, but not for every prediction,
keeps hundreds of thousands of entries waiting for a week; here each costs
17 bytes beside its key: the time in an :class:`array.array` of 64-bit
integers, the key in a list, the side's code in a byte. The key is the very
``bytes`` object the store holds, so it costs nothing more.

Entries mostly come in event-time order, so a new one goes at the end; one
out of order is inserted with a move of the later ones (a ``memmove`` in C).
Taking the earliest moves a start index; the places before it are dropped
once they are half. The order is a heap's of ``(time, key, code)``: by time,
then key, then code.
"""

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable

Item = tuple[int, bytes, str]
"""An entry's event time (the join's microseconds), store key and side's code."""


class WaitingEntries:
    """A model's waiting entries as ``(time, key, code)``, the least first.

    Stale items (whose entry the store no longer holds as given) stay until
    taken or swept with :meth:`keep`, as they would in a heap.

    >>> entries = WaitingEntries()
    >>> entries.push(30, b'["m","b"]', "p")
    >>> entries.push(10, b'["m","a"]', "l")
    >>> entries.push(30, b'["m","a"]', "p")
    >>> len(entries), entries.peek()
    (3, (10, b'["m","a"]', 'l'))
    >>> [entries.pop() for _ in range(len(entries))]
    [(10, b'["m","a"]', 'l'), (30, b'["m","a"]', 'p'), (30, b'["m","b"]', 'p')]
    """

    __slots__ = ("_codes", "_keys", "_start", "_times")

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._times = array("q")
        self._keys: list[bytes | None] = []
        self._codes = bytearray()
        self._start = 0
        """Places before it were taken; they are dropped once they are half."""
        self._hold(sorted(items))

    def __len__(self) -> int:
        return len(self._times) - self._start

    def push(self, time: int, key: bytes, code: str) -> None:
        """Add an entry in its place."""
        times, keys, codes = self._times, self._keys, self._codes
        mark = ord(code)
        if len(times) == self._start or time > times[-1]:
            times.append(time)
            keys.append(key)
            codes.append(mark)
            return
        place = bisect_right(times, time, self._start)
        tie = bisect_left(times, time, self._start, place)
        while tie < place and (keys[tie], codes[tie]) <= (key, mark):
            tie += 1
        times.insert(tie, time)
        keys.insert(tie, key)
        codes.insert(tie, mark)

    def peek(self) -> Item:
        """The least entry (IndexError when none is left)."""
        if not len(self):
            raise IndexError("no entry is waiting")
        start = self._start
        key = self._keys[start]
        assert key is not None
        return self._times[start], key, chr(self._codes[start])

    def pop(self) -> Item:
        """Remove and return the least entry."""
        item = self.peek()
        start = self._start
        self._keys[start] = None
        start += 1
        if 2 * start >= len(self._times):  # the taken places are half: drop them
            del self._times[:start], self._keys[:start], self._codes[:start]
            start = 0
        self._start = start
        return item

    def keep(self, wanted: Callable[[Item], bool]) -> None:
        """Drop every entry but those ``wanted`` says to keep, in order."""
        self._hold([item for item in self.items() if wanted(item)])

    def items(self) -> list[Item]:
        """Every entry, the least first."""
        start = self._start
        keys = self._keys[start:]
        return [
            (time, key, chr(code))
            for time, key, code in zip(self._times[start:], keys, self._codes[start:], strict=True)
            if key is not None  # always, from the start on (it narrows the type)
        ]

    def _hold(self, ordered: list[Item]) -> None:
        """Hold exactly these entries, given in order."""
        self._times = array("q", [time for time, _, _ in ordered])
        self._keys = [key for _, key, _ in ordered]
        self._codes = bytearray(ord(code) for _, _, code in ordered)
        self._start = 0
