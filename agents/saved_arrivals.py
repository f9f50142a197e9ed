"""The memory of recent event ids, saved in chunks where a restart or a rebalance finds it.

A worker recognises an event sent twice (a producer's retry) by its id,
remembered for ``DRIFTLINE_DUPLICATE_WINDOW_SECONDS`` of event time per
model and input topic (:class:`~driftline.monitors.dedup.RecentEventIds`).
Started afresh after a restart, that memory would count a retry of an
event from before the restart as new. It is far too large to write whole at
every checkpoint (up to 100,000 ids per model and topic), so each
checkpoint writes only the ids that arrived since the last one, as a chunk
of its own, and deletes the chunks whose every id has left the window:

- ``["arrivals", topic, model_id]``: the head, ``{"format", "first",
  "next"}``, the numbers of the oldest chunk kept and of the next one;
- ``["arrivals", topic, model_id, n]``: chunk ``n``, ``{"format", "ids",
  "micros", "latest"}``, the ids in arrival order with their event times
  in microseconds since the epoch
  (:func:`~driftline.monitors.packing.pack_ints`) and the latest of them.

Reading back replays every kept chunk's arrivals in order
(:meth:`~driftline.monitors.dedup.RecentEventIds.restore`), so the same
ids are remembered, and forgotten, as if the worker had never stopped.
Chunks are written in the same checkpoint as the versions' state, so they
reflect the same events as its fences.
"""

import logging
from collections import deque
from collections.abc import MutableMapping, Sequence
from typing import Any

import orjson

from driftline.monitors.packing import pack_ints, unpack_ints

log = logging.getLogger(__name__)

ARRIVALS_FORMAT = 1
"""The layout of the heads and chunks this code writes, and the only one it reads."""

Stream = tuple[str, str]
"""An input topic's name and a model id: the ids one memory keeps."""


class SavedArrivals:
    """Writes and reads the chunks of arrivals of each stream in a store (a faust table).

    It remembers, per stream written or read, its head and the latest event
    time of each chunk kept, so that expired chunks are deleted without
    reading them again.
    """

    def __init__(self, store: MutableMapping[str, bytes]) -> None:
        self.store = store
        self._chunks: dict[Stream, deque[tuple[int, int]]] = {}
        self._next: dict[Stream, int] = {}

    def write(
        self,
        stream: Stream,
        arrivals: Sequence[tuple[str, int]],
        horizon: int | None,
    ) -> None:
        """Write the arrivals since the last write (ids and event times in microseconds) as a
        new chunk, and delete the chunks whose events all lie at or before ``horizon`` (they
        are forgotten: late from now on)."""
        chunks = self._chunks.setdefault(stream, deque())
        number = self._next.get(stream)
        if number is None:  # not read back here: whatever is kept carries on
            number = self._read_head(stream)[1]
        if horizon is not None:
            while chunks and chunks[0][1] <= horizon:
                first, _ = chunks.popleft()
                self.store.pop(_chunk_key(stream, first), None)
        if arrivals:
            ids = [event_id for event_id, _ in arrivals]
            micros = [time for _, time in arrivals]
            latest = max(micros)
            self.store[_chunk_key(stream, number)] = orjson.dumps(
                {
                    "format": ARRIVALS_FORMAT,
                    "ids": ids,
                    "micros": pack_ints(micros),
                    "latest": latest,
                }
            )
            chunks.append((number, latest))
            number += 1
        self._next[stream] = number
        first = chunks[0][0] if chunks else number
        self.store[_head_key(stream)] = orjson.dumps(
            {"format": ARRIVALS_FORMAT, "first": first, "next": number}
        )

    def read(self, stream: Stream) -> list[tuple[str, int]]:
        """Every kept arrival of a stream, in order (none if nothing was saved).

        A head or chunk that cannot be read is logged: the memory starts
        afresh (a retry of an earlier event then counts as new), never a crash.
        """
        first, number = self._read_head(stream)
        arrivals: list[tuple[str, int]] = []
        chunks: deque[tuple[int, int]] = deque()
        try:
            for chunk in range(first, number):
                raw = self.store.get(_chunk_key(stream, chunk))
                if raw is None:
                    continue  # deleted as expired by a write whose head was not saved yet
                record = orjson.loads(raw)
                _check_format(record)
                ids, micros, latest = record["ids"], unpack_ints(record["micros"]), record["latest"]
                if len(ids) != len(micros) or not all(isinstance(i, str) for i in ids):
                    raise ValueError("a chunk's ids and times do not match")
                if not isinstance(latest, int):
                    raise ValueError(f"latest {latest!r}")
                arrivals += zip(ids, micros, strict=True)
                chunks.append((chunk, latest))
        except (ValueError, KeyError, TypeError) as error:
            log.error(
                "the remembered %s ids of model %s cannot be read (%s); they start afresh",
                *stream,
                error,
            )
            arrivals, chunks = [], deque()
        self._chunks[stream] = chunks
        self._next[stream] = number
        return arrivals

    def forget(self, stream: Stream) -> None:
        """Forget what is known of a stream's chunks (its model left this worker)."""
        self._chunks.pop(stream, None)
        self._next.pop(stream, None)

    def _read_head(self, stream: Stream) -> tuple[int, int]:
        """The numbers of the oldest chunk kept and of the next one ((0, 0): none)."""
        raw = self.store.get(_head_key(stream))
        if raw is None:
            return 0, 0
        try:
            head = orjson.loads(raw)
            _check_format(head)
            first, number = head["first"], head["next"]
            if not (isinstance(first, int) and isinstance(number, int) and 0 <= first <= number):
                raise ValueError(f"chunks {first!r} to {number!r}")
        except (ValueError, KeyError, TypeError) as error:
            log.error(
                "the remembered %s ids of model %s cannot be read (%s); they start afresh",
                *stream,
                error,
            )
            return 0, 0
        return first, number


def _check_format(record: Any) -> None:
    found = record.get("format") if isinstance(record, dict) else None
    if found != ARRIVALS_FORMAT:
        raise ValueError(f"format {found!r}, where this worker reads {ARRIVALS_FORMAT}")


def _head_key(stream: Stream) -> str:
    """The key of a stream's head.

    >>> _head_key(("driftline.predictions", "fraud"))
    '["arrivals","driftline.predictions","fraud"]'
    """
    return orjson.dumps(["arrivals", *stream]).decode("utf-8")


def _chunk_key(stream: Stream, number: int) -> str:
    """The key of a stream's chunk ``number``.

    >>> _chunk_key(("driftline.predictions", "fraud"), 7)
    '["arrivals","driftline.predictions","fraud",7]'
    """
    return orjson.dumps(["arrivals", *stream, number]).decode("utf-8")
