"""Joining delayed ground-truth labels to their predictions, in event time.

Labels arrive long after their predictions (sometimes before, when
producers race), so whichever comes first waits in a store for its partner.
Waiting is bounded in event time, never by a wall clock: an entry older than
its model's watermark minus the retention expires. Each side (predictions,
labels) has its own watermark, the latest event time it brought; the model's
is the earlier of the two (for a side the model has not seen yet, how far
that side has come for any model), so that a topic consumed ahead of the
other expires nothing its lagging partner could still join.
An expired prediction was never labelled (it lowers label coverage); an
expired label is an orphan (dead-lettered, so it keeps its payload). Every
label given ends as exactly one of: part of a :class:`Match`, an
:class:`AlreadyLabelled`, an :class:`Expired`, or still pending; every
prediction likewise, or else counted as repeated (its id was stored already).

**Only models that have had a label fill the store.** Most predictions of a
model that never gets labels would wait out the whole retention for nothing,
each costing a store write (a changelog message in the worker) and memory.
So until a model's first label, its predictions are held in memory only, at
most ``held_before_first_label`` of them, and with many such models at most
``max_held`` in all (the oldest are pushed out, as unlabelled, past that).
The first label moves them into the store, and from
then on the model's predictions wait there. The trade-off: a label whose
prediction was pushed out before the model's first label, or held in memory
by a worker that restarted before that first label, finds no prediction; it
waits, and becomes an orphan, like any other label whose prediction never
came. Whether a model has had a label is kept in the store (its label
watermark), so it survives a restart.

All durable state lives in an injectable ``MutableMapping[bytes, bytes]`` (a
faust Table in the worker, whose writes go to a Kafka changelog; a dict in
tests). Keys are compact JSON arrays (UTF-8), values compact JSON, event
times integer microseconds since the epoch (an exact round trip). The join
keeps the key object it stores under to find the entry again, so a key
costs its bytes once:

* ``[model_id, prediction_id]``: ``["p" | "l", time, payload]``, a
  prediction or a label waiting for its partner. Values written before this
  format (objects ``{"side", "time", "payload"}``) are still read, and so
  are markers written as ``["m", time]`` under their own key.
* ``[model_id, "matched", n]``: markers, the predictions already joined to a
  label, up to :data:`MARKS_PER_SEGMENT` per key: for each, the 64-bit
  digest of its prediction id (:func:`~driftline.monitors.matched.digest`)
  and the prediction's time, as little-endian int64 pairs. A marker costs
  16 bytes there and 16 in memory (:class:`~driftline.monitors.matched.MatchedIds`)
  instead of a key and a value of its own. The newest segment takes new
  markers until it is full; a segment is rewritten when one of its markers
  expires or is evicted, and deleted when none is left, so the store holds
  exactly the markers the join remembers.
* ``[model_id]``: ``{"prediction", "label"}``, the watermark of each side
  seen so far, written when one rises (one more write per such event), so
  that a join rebuilt from the store goes on exactly as the one that wrote
  it. Only models that have had a label have one: the ``label`` watermark
  says they had.

Values are copied to their exact size: ``orjson.dumps`` returns bytes with a
4 KiB allocation behind them, and a store keeps each value for a long time.
Predictions held in memory (before their model's first label) are kept in a
:class:`~driftline.monitors.held.HeldPredictions` per model, about 130 bytes
each; their model's first label writes them into the store.
"""

import contextlib
import heapq
import struct
from collections import Counter
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from typing import Any, Literal, NamedTuple

import numpy as np
import orjson

from driftline.monitors.held import HeldPredictions
from driftline.monitors.instants import ZoneEpoch
from driftline.monitors.matched import MatchedIds, digest
from driftline.monitors.waiting import Item, WaitingEntries

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PREDICTION, _LABEL, _MARKER = "p", "l", "m"  # how an entry's side is stored
_LEGACY_SIDES = {"prediction": _PREDICTION, "label": _LABEL, "labelled": _MARKER}
_Item = Item  # a waiting entry: (event time in microseconds, store key, side code)
_Entry = tuple[str, int, Any]  # an entry: (side code, event time in microseconds, payload)
_MATCHED = "matched"  # the middle part of a marker segment's key
_MARK = struct.Struct("<qq")  # a marker in a segment: (digest, time)

STALE_SWEEP_AT = 64
"""A model's waiting entries (:class:`~driftline.monitors.waiting.WaitingEntries`) are swept
of the items of matched entries once it has this many (and they are at least half of them).
An item costs its key (~80 bytes) and 17 more until then: with labels that follow their
predictions closely, a model's items are mostly such, so a small number keeps them few
(1,024 kept 50 labelled models ~9 MiB heavier when items were heap tuples), and the half
keeps a sweep's cost per match under two reads."""

EVICTION_ROUND = 1_024
"""Past ``max_entries``, the join evicts down to ``max_entries - max_entries //
EVICTION_ROUND`` at once (down to ``max_entries`` itself below 1,024 entries). Finding the
oldest entry of all takes a look at each model; a join kept at its bound would otherwise take
those looks at every new entry (with ten models, the join alone then cost 62 µs an event
instead of 16). In a round, each eviction costs one look (at the model it evicted from) and a
heap step, and the markers it drops leave their segments with one rewrite each, not one per
marker: at its bound, the join costs ~4 µs an event more than below it."""

MARKS_PER_SEGMENT = 64
"""Markers stored under one key: a segment is rewritten whenever one of its
markers goes, so small segments keep that cheap, and 64 spread the cost of
a key over many markers."""


@dataclass(slots=True)
class _Segment:
    """Where some of a model's markers are stored, and their span of event time."""

    key: bytes
    count: int
    earliest: int
    latest: int


class Side(StrEnum):
    """Which half of a (prediction, label) pair an entry is."""

    PREDICTION = "prediction"
    LABEL = "label"


_SIDES = {_PREDICTION: Side.PREDICTION, _LABEL: Side.LABEL}
_SIDE_NAMES = {_PREDICTION: Side.PREDICTION.value, _LABEL: Side.LABEL.value}
"""How each side's watermark is named in the store."""
_PREDICTIONS_SEEN, _LABELS_SEEN = _SIDE_NAMES[_PREDICTION], _SIDE_NAMES[_LABEL]


@dataclass(frozen=True, slots=True)
class Match:
    """A prediction and its label, joined.

    Payloads are the JSON values given with the events; the one that waited
    comes back as ``orjson`` reads it from the store (or from memory, where
    it is kept encoded likewise), and its time in UTC.
    """

    model_id: str
    prediction_id: str
    prediction_time: datetime
    prediction: Any
    label_time: datetime
    label: Any

    @property
    def delay(self) -> timedelta:
        """How long the label took: ``label_time - prediction_time``.

        Negative when the producers' clocks disagree: reported as is, not
        clipped, so that the disagreement stays visible.
        """
        return self.label_time - self.prediction_time


@dataclass(frozen=True, slots=True)
class AlreadyLabelled:
    """A second label for a prediction: not joined, the first label stays.

    It comes after the prediction was matched, or while the first label
    still waits for it (the first arrived first, so it keeps its place).
    Rather than wait to become an orphan, it goes back to the caller, who
    dead-letters or counts it.
    """

    model_id: str
    prediction_id: str
    event_time: datetime
    payload: Any


class Expired(NamedTuple):
    """An entry that waited out the retention without its partner.

    ``evicted`` is True when a bound (``max_entries``, or
    ``held_before_first_label`` for a model without a label yet) of
    :class:`LabelJoin` pushed it out before the retention had passed it.

    A named tuple rather than a frozen dataclass: a model that never gets
    labels pushes one out for each prediction it makes, and a named tuple
    is built in under half the time.
    """

    side: Side
    model_id: str
    prediction_id: str
    event_time: datetime
    payload: Any
    evicted: bool = False


_Outcome = Match | Literal["repeated"] | None  # None: it waits


class LabelJoin:
    """Pairs predictions and labels by ``(model_id, prediction_id)``, whichever comes first.

    The first of the two waits; when the other arrives they are returned as
    a :class:`Match`. Entries wait at most ``retention`` of event time
    behind their model's watermark, the earlier of its predictions' and its
    labels' (see :meth:`watermark`): call :meth:`advance` after each event
    of a model to collect those that expired. After a match, a marker (16
    bytes, in a segment) stays until the prediction's event time leaves the retention, so
    that a second label is :class:`AlreadyLabelled` rather than a future
    orphan, and a repeated prediction is not joined again. Markers expire
    silently.

    Entries wait in ``store`` once their model has had a label; before, its
    predictions are held in memory only (see the module's docstring), at
    most ``held_before_first_label`` per model, and no more than an equal
    share of ``max_held`` over all such models: past it, the model's oldest
    is pushed out as unlabelled (an :class:`Expired` with ``evicted``). They
    are pending, counted and expired like stored ones; a restart loses them.

    A prediction whose id is already waiting (or matched) is ignored: None
    is returned and :attr:`repeated_predictions` counted; the first one
    stays. The caller deduplicates event ids before, so this is rare: a
    producer reusing an id, or a repeat past the dedup window.

    Lateness does not stop a join: an entry matches until the :meth:`advance`
    that expires it. A late event without partner is stored all the same and
    expires at the next :meth:`advance` if it is older than the watermark
    minus the retention, so a late label is dead-lettered. Until a model's
    first label, its predictions expire by their own side alone (and its
    labels likewise until its first prediction): a first label older than
    the watermark minus the retention finds its prediction already gone.

    At most ``max_entries`` entries (waiting predictions, held or stored,
    waiting labels and markers, of all models) are kept. Past that, the
    oldest by event time (then key) are evicted, whatever their model (a
    marker silently), down to 1/1,024 below the bound (see
    :data:`EVICTION_ROUND`); they are held in memory and handed out as
    :class:`Expired` by the next :meth:`advance` of any model, so calling it
    after every event loses none.

    The entries by event time, the watermarks and the counts are
    derived from the store. The constructor does not read it (a faust Table
    is not recovered yet then): call :meth:`rebuild` once it is filled.

    Parameters
    ----------
    retention
        How long, in event time behind the (earlier side's) watermark, an
        entry waits.
    store
        Where the state lives; a new dict when None.
    max_entries
        The most entries kept at once, over all models.
    held_before_first_label
        The most predictions held (in memory) per model that has had no
        label yet.
    max_held
        The most predictions held (in memory) over all models without a
        label yet: each may hold an equal share, if that is less than
        ``held_before_first_label``.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> join = LabelJoin(retention=timedelta(hours=1))
    >>> noon = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> join.predicted("churn", "p1", noon, {"score": 0.9}) is None
    True
    >>> join.store, join.held_predictions  # no label for churn yet: held in memory
    ({}, 1)
    >>> match = join.labelled("churn", "p1", noon + timedelta(minutes=5), {"label": 1})
    >>> match.prediction, match.label, match.delay
    ({'score': 0.9}, {'label': 1}, datetime.timedelta(seconds=300))
    >>> join.labelled("churn", "p1", noon + timedelta(minutes=6), {"label": 0})
    ... # doctest: +ELLIPSIS
    AlreadyLabelled(model_id='churn', prediction_id='p1', ...)
    >>> join.labelled("churn", "p9", noon, {"label": 0}) is None
    True
    >>> join.advance("churn"), join.pending_labels
    ([], 1)

    The predictions run two hours ahead, but the labels lag: p9 still waits.

    >>> join.predicted("churn", "p2", noon + timedelta(hours=2), {"score": 0.1})
    >>> join.watermark("churn").time(), join.advance("churn")
    (datetime.time(12, 6), [])

    Once the labels catch up too, p9 is an orphan.

    >>> join.labelled("churn", "p2", noon + timedelta(hours=2, minutes=1), {"label": 0}).delay
    datetime.timedelta(seconds=60)
    >>> [(e.side.value, e.prediction_id, e.payload) for e in join.advance("churn")]
    [('label', 'p9', {'label': 0})]
    """

    def __init__(
        self,
        retention: timedelta,
        store: MutableMapping[bytes, bytes] | None = None,
        max_entries: int = 1_000_000,
        held_before_first_label: int = 2_000,
        max_held: int = 100_000,
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, got {retention}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if held_before_first_label < 0:
            raise ValueError(
                f"held_before_first_label must be at least 0, got {held_before_first_label}"
            )
        if max_held < 0:
            raise ValueError(f"max_held must be at least 0, got {max_held}")
        self.retention = retention
        self.store: MutableMapping[bytes, bytes] = {} if store is None else store
        self.max_entries = max_entries
        self.held_before_first_label = held_before_first_label
        self.max_held = max_held
        self._retention_us = retention // _MICROSECOND
        self._waiting: dict[str, WaitingEntries] = {}
        """Each model's stored entries by event time (stale ones too, until swept)."""
        self._watermarks: dict[str, dict[str, int]] = {}
        self._furthest: dict[str, int] = {}
        """Each side's watermark over all models: how far that topic has been read."""
        self._counts: Counter[str] = Counter()
        self._size = 0
        """Entries kept, over all sides: the sum of ``_counts``, kept up to date."""
        self._evicted: list[Expired] = []
        self._labelled_models: set[str] = set()
        """Models that have had a label: their entries wait in the store."""
        self._held: dict[str, HeldPredictions] = {}
        """The predictions of the models without a label yet, by model: memory only."""
        self._watermark_keys: dict[str, bytes] = {}
        self._unsaved_marks: set[str] | None = None
        """In :meth:`saving_marks_once`: the models whose watermarks rose, saved at its end."""
        self._stale: dict[str, int] = {}
        """Items of each model whose entry went without the item (at most), to sweep."""
        self._matched: dict[str, MatchedIds] = {}
        """Each model's markers: digests of its labelled prediction ids, with their times."""
        self._segments: dict[str, dict[int, _Segment]] = {}
        """Where each model's markers are stored, by segment number."""
        self._segment_heaps: dict[str, list[tuple[int, int]]] = {}
        """Each model's ``(earliest, number)`` of its segments, stale ones left in."""
        self.repeated_predictions = 0
        """Predictions ignored because their id was stored already, since construction."""

    def predicted(
        self, model_id: str, prediction_id: str, event_time: datetime, payload: Any
    ) -> Match | None:
        """A prediction arrives: its match if its label waited, else None (it waits)."""
        outcome = self._arrive(_PREDICTION, model_id, prediction_id, event_time, payload)
        if outcome is None:
            return None
        if outcome == "repeated":
            self.repeated_predictions += 1
            return None
        return outcome

    def predicted_many(
        self,
        model_id: str,
        prediction_ids: Sequence[str],
        event_times: Sequence[datetime],
        payloads: Sequence[Any],
    ) -> list[tuple[Match | None, list[Expired]]]:
        """:meth:`predicted`, then :meth:`advance` of the model, for each prediction in order.

        Each one's match (or None) and what expired after it, exactly as
        those calls give them. The predictions of a model without a label
        yet (most models), in event-time order, take a shorter way that
        gives the same: see :meth:`_hold_many`.
        """
        if not prediction_ids:
            return []
        left = self._hold_many(model_id, prediction_ids, event_times, payloads, flagged=True)
        if left is not None:
            popped, evicted = left.popped, left.evicted
            assert evicted is not None
            return [
                (
                    None,
                    [
                        Expired(
                            Side.PREDICTION,
                            model_id,
                            popped[place][0],
                            _datetime(popped[place][1]),
                            popped[place][2],
                            evicted[place],
                        )
                        for place in places
                    ],
                )
                for places in left.places()
            ]
        with self.saving_marks_once():
            return [
                (
                    self.predicted(model_id, prediction_id, event_time, payload),
                    self.advance(model_id),
                )
                for prediction_id, event_time, payload in zip(
                    prediction_ids, event_times, payloads, strict=True
                )
            ]

    @contextlib.contextmanager
    def saving_marks_once(self) -> Iterator[None]:
        """Within the block, each model's watermarks are written to the store once, at its
        end, however often they rose: a batch's events raise them at nearly every event,
        and a store that buffers its writes (a faust table's) keeps only the last anyway.

        Nothing reads them from the store but :meth:`rebuild`. Blocks may nest.
        """
        if self._unsaved_marks is not None:
            yield
            return
        self._unsaved_marks = set()
        try:
            yield
        finally:
            unsaved, self._unsaved_marks = self._unsaved_marks, None
            for model_id in unsaved:
                self.store[self._watermark_key(model_id)] = _dumps(self._watermarks[model_id])

    def held_many(
        self,
        model_id: str,
        prediction_ids: Sequence[str],
        event_times: Sequence[datetime],
        payloads: Sequence[Any],
    ) -> list[tuple[int, Any]] | None:
        """:meth:`predicted_many` in short, for a model still holding its predictions.

        The payloads of the predictions pushed out (all of this model, never
        labelled, none matched), each with the index of the prediction after
        which it left, in the order of the :class:`Expired` lists there; None,
        with nothing done, when they cannot be held at once (see
        :meth:`_hold_many`): then call :meth:`predicted_many`. A model without
        labels pushes one out for each prediction it makes, so this skips
        building what a caller that only needs the payloads would drop.
        """
        left = self._hold_many(model_id, prediction_ids, event_times, payloads, flagged=False)
        if left is None:
            return None
        popped = left.popped
        if all(count <= 1 for count in left.counts):  # as a rule: each pushes one out, or none
            after = [index for index, count in enumerate(left.counts) if count]
            return [(index, leaving[2]) for index, leaving in zip(after, popped, strict=True)]
        return [
            (index, popped[place][2])
            for index, places in enumerate(left.places())
            for place in places
        ]

    def labelled(
        self, model_id: str, prediction_id: str, event_time: datetime, payload: Any
    ) -> Match | AlreadyLabelled | None:
        """A label arrives: its match if its prediction waited, else None (it waits)."""
        outcome = self._arrive(_LABEL, model_id, prediction_id, event_time, payload)
        if outcome == "repeated":
            return AlreadyLabelled(model_id, prediction_id, event_time, payload)
        return outcome if isinstance(outcome, Match) else None

    def advance(self, model_id: str) -> list[Expired]:
        """Remove and return what ``model_id``'s watermark has left behind, and all evictions.

        Entries older than ``watermark - retention`` expire; evicted entries
        of any model since the last call come along. The list is in order
        of event time, then model and prediction id.
        """
        gone, self._evicted = self._evicted, []
        waiting = self._waiting.get(model_id)
        held = self._held.get(model_id)
        horizon = self._horizon(model_id) if waiting or held or model_id in self._matched else None
        if horizon is not None and model_id in self._matched:
            self._expire_marks(model_id, horizon)
        if held and horizon is not None:
            while held and held.oldest_time < horizon:
                gone.append(self._let_go(model_id, held, evicted=False))
        if waiting and horizon is not None:
            while waiting and waiting.peek()[0] < horizon:
                item = waiting.pop()
                entry = self._live(model_id, item)
                if entry is not None:
                    expired = self._remove(model_id, item, entry, evicted=False)
                    if expired is not None:
                        gone.append(expired)
        if len(gone) < 2:
            return gone
        return sorted(gone, key=lambda e: (e.event_time, e.model_id, e.prediction_id))

    def had_label(self, model_id: str) -> bool:
        """Whether a label of ``model_id`` ever arrived (so its predictions wait in the store)."""
        return model_id in self._labelled_models

    def store_from_now(self, model_id: str) -> int:
        """Let ``model_id``'s predictions wait in the store from now on, as its first label
        would, the ones held in memory with them; how many were held.

        For a model whose labels are on their way though none came here yet:
        the same model's labels joined elsewhere (another partition of a model
        keyed by event id), or a worker about to hand the model over, whose
        next owner would not find what is held in this one's memory.
        """
        held = self._held.get(model_id)
        count = 0 if held is None else len(held)
        if model_id not in self._labelled_models:
            self._watermarks.setdefault(model_id, {})
            self._first_label(model_id)
        return count

    def let_go_held(self, model_id: str) -> list[tuple[str, int, Any]]:
        """Remove the predictions ``model_id`` holds in memory and return them, oldest first,
        as ``(prediction id, event time in microseconds, payload)``.

        For a hand-over of a model without a label: its next owner holds
        them again (:meth:`predicted_many`), and this join no longer counts
        them as waiting, nor pushes them out later as unlabelled.
        """
        held = self._held.pop(model_id, None)
        if not held:
            return []
        items = list(held)
        self._counts[_PREDICTION] -= len(items)
        self._size -= len(items)
        return items

    def rebuild(self) -> None:
        """Derive the entries by time, watermarks and counts from the store (and the held ones).

        A model's watermarks are the ones stored under ``[model_id]``;
        without them (a store written otherwise), the latest event time stored
        for the model (of an entry of either side, or a marker's prediction
        time) approximates both. That is never later than the later side's
        true watermark, but it can be later than the lagging side's: the
        rebuilt join's watermark may then pass the true one, and entries
        expire sooner. A model with a label watermark or any stored entry
        has had a label. Evictions not yet handed out are kept, and so are
        the predictions held in memory of models still without a label (a
        model the store says had one has its held ones pushed out, as
        unlabelled: its stored state, written elsewhere, wins).
        """
        self._watermarks, self._counts = {}, Counter()
        stored: dict[str, list[_Item]] = {}
        self._matched, self._segments, self._segment_heaps = {}, {}, {}
        self._stale = {}
        self._furthest = {}
        self._size = 0
        self._labelled_models = set()
        latest: dict[str, int] = {}
        for key, value in self.store.items():
            parts = orjson.loads(key)
            if len(parts) == 1:
                marks = orjson.loads(value)
                self._watermarks[parts[0]] = {side: int(t) for side, t in marks.items()}
                for side, t in marks.items():
                    self._furthest[side] = max(self._furthest.get(side, int(t)), int(t))
                if Side.LABEL.value in marks:
                    self._labelled_models.add(parts[0])
                continue
            if len(parts) == 3 and parts[1] == _MATCHED:
                model_id = parts[0]
                self._labelled_models.add(model_id)
                time = self._load_segment(model_id, key, int(parts[2]), value)
                if time is not None:
                    latest[model_id] = max(time, latest.get(model_id, time))
                continue
            if len(parts) != 2:
                continue
            code, time, _ = _decode(value)
            model_id = parts[0]
            self._labelled_models.add(model_id)
            latest[model_id] = max(time, latest.get(model_id, time))
            stored.setdefault(model_id, []).append((time, key, code))
            self._counts[code] += 1
            self._size += 1
        for model_id, time in latest.items():
            self._watermarks.setdefault(
                model_id, {Side.PREDICTION.value: time, Side.LABEL.value: time}
            )
        for model_id, held in list(self._held.items()):
            if model_id in self._labelled_models:
                del self._held[model_id]
                self._evicted += _expired_all(model_id, held)
                continue
            self._counts[_PREDICTION] += len(held)
            self._size += len(held)
        self._waiting = {model_id: WaitingEntries(items) for model_id, items in stored.items()}
        for segment_heap in self._segment_heaps.values():
            heapq.heapify(segment_heap)
        for model_id, segments in self._segments.items():  # the newest last, as written
            self._segments[model_id] = dict(sorted(segments.items()))

    def watermark(self, model_id: str) -> datetime | None:
        """How far both sides of ``model_id`` have come in event time; None before any event.

        Each side (predictions, labels) has its own watermark, the latest
        event time it brought; the join's is the earlier of the two (of the
        one side seen, before the other's first event). So when one topic is
        consumed ahead of the other, nothing expires before the slower one
        has caught up: a label is not an orphan merely because its
        prediction's topic lags.
        """
        horizon = self._horizon(model_id)
        return None if horizon is None else _datetime(horizon + self._retention_us)

    def _horizon(self, model_id: str) -> int | None:
        """Entries older than this (in microseconds) have waited out the retention.

        A side the model has not seen yet counts as far as that side has come
        for any model: before a model's first label, its predictions wait
        until the labels topic as a whole is past them, so a worker whose
        labels agent lags its predictions agent (a backlog, a batch ahead)
        does not give up on predictions whose labels it has not read yet.
        With no event at all on a side, nothing expires by time.
        """
        marks = self._watermarks.get(model_id)
        if not marks:
            return None
        predictions = marks.get(_PREDICTIONS_SEEN)
        if predictions is None:
            predictions = self._furthest.get(_PREDICTIONS_SEEN)
        labels = marks.get(_LABELS_SEEN)
        if labels is None:
            labels = self._furthest.get(_LABELS_SEEN)
        if predictions is None or labels is None:
            return None
        return min(predictions, labels) - self._retention_us

    @property
    def pending_predictions(self) -> int:
        """Predictions waiting for their label (held in memory ones included)."""
        return self._counts[_PREDICTION]

    @property
    def pending_labels(self) -> int:
        """Labels waiting for their prediction."""
        return self._counts[_LABEL]

    @property
    def held_predictions(self) -> int:
        """Predictions of models without a label yet, held in memory only."""
        return sum(len(held) for held in self._held.values())

    def __len__(self) -> int:
        """Entries kept (waiting predictions and labels, and markers): what is bounded."""
        return self._size

    def _get(self, key: bytes) -> _Entry | None:
        """The stored entry under ``key`` (of a model that had a label), if any."""
        raw = self.store.get(key)
        return None if raw is None else _decode(raw)

    def _watermark_key(self, model_id: str) -> bytes:
        key = self._watermark_keys.get(model_id)
        if key is None:
            key = self._watermark_keys[model_id] = _key(model_id)
        return key

    def _arrive(
        self, code: str, model_id: str, prediction_id: str, event_time: datetime, payload: Any
    ) -> _Outcome:
        """Raise the model's watermark, then store the event, join it, or refuse it.

        ``code`` says which side the event is (``_PREDICTION`` or ``_LABEL``).
        """
        time = _micros(event_time)
        labelled = model_id in self._labelled_models
        marks = self._watermarks.get(model_id)
        if marks is None:
            marks = self._watermarks[model_id] = {}
        side = _SIDE_NAMES[code]
        if time > self._furthest.get(side, time - 1):
            self._furthest[side] = time
        if time > marks.get(side, time - 1):
            marks[side] = time
            if labelled and self._unsaved_marks is not None:
                self._unsaved_marks.add(model_id)
            elif labelled:
                self.store[self._watermark_key(model_id)] = _dumps(marks)
        if not labelled:
            if code == _PREDICTION:
                return self._hold(model_id, prediction_id, time, payload)
            self._first_label(model_id)
        key = _key(model_id, prediction_id)
        stored = self._get(key)
        if stored is None:
            if self._is_marked(model_id, prediction_id):
                return "repeated"
            else:
                self._write(model_id, key, (code, time, payload))
            return None
        stored_code, stored_time, stored_payload = stored
        if stored_code != (_LABEL if code == _PREDICTION else _PREDICTION):
            return "repeated"
        given, waited = (event_time, payload), (_datetime(stored_time), stored_payload)
        first, second = (given, waited) if code == _PREDICTION else (waited, given)
        marker_time = time if code == _PREDICTION else stored_time  # the prediction's
        del self.store[key]
        self._counts[stored_code] -= 1
        self._left_behind(model_id)
        self._mark(model_id, prediction_id, marker_time)
        return Match(model_id, prediction_id, *first, *second)

    def _first_label(self, model_id: str) -> None:
        """The model's first label: from now on its entries wait in the store."""
        self._labelled_models.add(model_id)
        held = self._held.pop(model_id, None)
        if held:
            waiting = self._waiting.setdefault(model_id, WaitingEntries())
            for prediction_id, time, payload in held:
                key = _key(model_id, prediction_id)
                self.store[key] = _encode((_PREDICTION, time, payload))
                waiting.push(time, key, _PREDICTION)
        self.store[self._watermark_key(model_id)] = _dumps(self._watermarks[model_id])

    def _write(self, model_id: str, key: bytes, entry: _Entry) -> None:
        """Store a new entry of a model that had a label and index it; evict past the bound.

        (A model without a label yet holds its predictions instead: :meth:`_hold`.)
        """
        code, time, _ = entry
        self.store[key] = _encode(entry)
        waiting = self._waiting.get(model_id)
        if waiting is None:
            waiting = self._waiting[model_id] = WaitingEntries()
        waiting.push(time, key, code)
        self._counts[code] += 1
        self._size += 1
        if self._size > self.max_entries:
            self._evict_oldest()

    def _held_cap(self) -> int:
        """How many predictions each model without a label may hold now.

        ``held_before_first_label``, or less when ``max_held`` shared out
        among the models holding some is less: with many models that never
        get labels, memory stays bounded in all, and each keeps its latest.
        """
        return min(self.held_before_first_label, self.max_held // (len(self._held) or 1))

    def _hold(self, model_id: str, prediction_id: str, time: int, payload: Any) -> _Outcome:
        """Hold a new prediction of a model without a label yet, in memory (not in the store).

        Past the model's share of the bound, its earliest held (maybe this
        one) is pushed out, as unlabelled, for the next :meth:`advance`.
        """
        held = self._held.get(model_id)
        if held is None:
            held = self._held[model_id] = HeldPredictions()
        elif prediction_id in held:
            return "repeated"
        held.push(prediction_id, time, payload)
        self._counts[_PREDICTION] += 1
        self._size += 1
        if self._size > self.max_entries:
            self._evict_oldest()
        cap = self._held_cap()
        while len(held) > cap:
            self._evicted.append(self._let_go(model_id, held, evicted=None))
        return None

    def _hold_many(
        self,
        model_id: str,
        prediction_ids: Sequence[str],
        event_times: Sequence[datetime],
        payloads: Sequence[Any],
        *,
        flagged: bool,
    ) -> "_Left | None":
        """:meth:`predicted_many` for a model still holding its predictions, when it can be
        done at once; None (and nothing done) when not. The predictions pushed out, how many
        after each prediction, and (``flagged``) whether each was evicted: see :class:`_Left`.

        It can when the model has had no label, none of the predictions is
        held or given twice, they come in event-time order and after those
        held, no bound of all entries is reached, and no eviction waits to be
        handed out. (A model holding none yet starts to, as its first
        prediction one by one would, before its share is worked out.)
        Then each prediction pushes the earliest held out past the model's
        share, and the watermark it raises expires the earliest held before
        it: the predictions that leave are the earliest of those held and
        given, in order. How many leave after each prediction is counted
        first (integers only); then all are held at once and those leaving
        removed at once.
        """
        held = self._held.get(model_id)
        count = len(prediction_ids)
        if (
            not count
            or self._evicted
            or model_id in self._labelled_models
            or model_id in self._waiting
            or model_id in self._matched
            or self._size + count > self.max_entries
        ):
            return None
        times = _micros_many(event_times)
        if held and times and times[0] < held.newest_time:
            return None
        if any(later < earlier for earlier, later in pairwise(times)):
            return None
        hashes = [hash(prediction_id) for prediction_id in prediction_ids]
        keys = set(hashes)
        if len(keys) < count or (held and held.holds_any(keys)):
            return None
        if held is None:
            held = self._held[model_id] = HeldPredictions()
        marks = self._watermarks.get(model_id)
        if marks is None:
            marks = self._watermarks[model_id] = {}
        labels = marks.get(_LABELS_SEEN, self._furthest.get(_LABELS_SEEN))
        cap = self._held_cap()
        if labels is None and not flagged:
            # No label yet anywhere, so nothing expires: only the cap pushes out.
            counts, front = _pushed_by_cap(len(held), count, cap)
            return self._held_in(
                model_id, held, prediction_ids, hashes, times, payloads, counts, front
            )
        others = [mark for side, mark in marks.items() if side != _PREDICTIONS_SEEN]
        retention = self._retention_us
        watermark = marks.get(_PREDICTIONS_SEEN, times[0])
        queue = held.times()  # the held times, then the given ones: the order of leaving
        queue.extend(times)
        counts = []  # per prediction, how many leave after it
        evicted: list[bool] | None = [] if flagged else None  # per leaving, in order
        front, size = 0, len(held)
        for time in times:
            if time > watermark:
                watermark = time
            size += 1
            gone = 0
            if size > cap:  # pushed out: early unless the retention had passed it
                gone = size - cap
                if evicted is not None:
                    lowest = min([watermark, *others]) - retention
                    evicted.extend(queue[place] >= lowest for place in range(front, front + gone))
                front += gone
                size = cap
            if labels is not None:
                horizon = min(watermark, labels) - retention
                while size and queue[front] < horizon:
                    if evicted is not None:
                        evicted.append(False)
                    gone += 1
                    front += 1
                    size -= 1
            counts.append(gone)
        return self._held_in(
            model_id, held, prediction_ids, hashes, times, payloads, counts, front, evicted
        )

    def _held_in(
        self,
        model_id: str,
        held: HeldPredictions,
        prediction_ids: Sequence[str],
        hashes: list[int],
        times: list[int],
        payloads: Sequence[Any],
        counts: list[int],
        front: int,
        evicted: list[bool] | None = None,
    ) -> "_Left":
        """Hold the given predictions (in event-time order; ``hashes``: their ids') and let
        the ``front`` earliest go, as :meth:`_hold_many` worked out; the model's prediction
        watermark rises to the last."""
        marks = self._watermarks[model_id]
        if times[-1] > marks.get(_PREDICTIONS_SEEN, times[-1] - 1):
            marks[_PREDICTIONS_SEEN] = times[-1]
        furthest = self._furthest.get(_PREDICTIONS_SEEN)
        if furthest is None or times[-1] > furthest:
            self._furthest[_PREDICTIONS_SEEN] = times[-1]
        held.extend(prediction_ids, times, payloads, hashes=hashes, in_order=True)
        popped = held.pop_many(front)
        count = len(prediction_ids)
        self._counts[_PREDICTION] += count - front
        self._size += count - front
        return _Left(popped, counts, evicted)

    def _let_go(self, model_id: str, held: HeldPredictions, evicted: bool | None) -> Expired:
        """Remove the model's earliest held prediction: expired, or pushed out.

        ``evicted`` None: pushed out, early unless the retention had passed it.
        """
        prediction_id, time, payload = held.pop()
        self._counts[_PREDICTION] -= 1
        self._size -= 1
        if evicted is None:
            marks = self._watermarks.get(model_id)
            evicted = not marks or time >= min(marks.values()) - self._retention_us
        return Expired(Side.PREDICTION, model_id, prediction_id, _datetime(time), payload, evicted)

    def _evict_oldest(self) -> None:
        """Evict the oldest entries of all models (see :data:`EVICTION_ROUND`), in order.

        The oldest live item (or marker) of each model waits in a heap; each
        eviction takes the least and puts back its model's next. An eviction
        changes no other model's oldest, so the order is that of one eviction
        at a time. The markers dropped are removed from their segments at the end.
        """
        target = self.max_entries - self.max_entries // EVICTION_ROUND
        tops = []
        for model_id in self._waiting.keys() | self._matched.keys() | self._held.keys():
            top = self._top(model_id)
            if top is not None:
                tops.append((top, model_id))
        heapq.heapify(tops)
        marks_gone: set[str] = set()
        while self._size > target:
            top, model_id = heapq.heappop(tops)
            self._evict(model_id, top, marks_gone)
            following = self._top(model_id)
            if following is not None:
                heapq.heappush(tops, (following, model_id))
        for model_id in marks_gone:
            self._unstore_marks(model_id)

    def _top(self, model_id: str) -> _Item | None:
        """The model's oldest live item, or its oldest marker as ``(time, b"", "m")``.

        A marker comes before an entry of the same time. For a model without
        a label yet: its earliest held prediction, as an item.
        """
        held = self._held.get(model_id)
        if held is not None:
            if not held:
                return None
            prediction_id, time = held.peek()
            return time, _key(model_id, prediction_id), _PREDICTION
        matched = self._matched.get(model_id)
        oldest = None if matched is None else matched.oldest()
        mark = None if oldest is None else (oldest[0], b"", _MARKER)
        waiting = self._waiting.get(model_id)
        if mark is not None and (not waiting or mark < waiting.peek()):
            return mark  # before every item, live or stale: no store read needed
        while waiting and self._live(model_id, waiting.peek()) is None:
            waiting.pop()  # lazily invalidated: matched, expired or replaced
        if waiting and (mark is None or waiting.peek() < mark):
            return waiting.peek()
        return mark

    def _evict(self, model_id: str, top: _Item, marks_gone: set[str]) -> None:
        """Remove the model's oldest entry, ``top``: keep it for :meth:`advance`, or, for a
        marker, forget it in memory and add its model to ``marks_gone`` (to unstore)."""
        held = self._held.get(model_id)
        if held is not None:
            self._evicted.append(self._let_go(model_id, held, evicted=None))
            return
        if top[1] == b"":
            self._matched[model_id].remove_oldest()
            self._counts[_MARKER] -= 1
            self._size -= 1
            marks_gone.add(model_id)
            return
        waiting = self._waiting[model_id]
        entry = self._live(model_id, waiting.peek())
        assert entry is not None
        item = waiting.pop()
        marks = self._watermarks.get(model_id)
        early = not marks or item[0] >= min(marks.values()) - self._retention_us
        expired = self._remove(model_id, item, entry, evicted=early)
        if expired is not None:
            self._evicted.append(expired)

    def _left_behind(self, model_id: str) -> None:
        """Count an item whose entry went (matched); sweep them out once they are many.

        Such an item would otherwise stay until its time left the retention:
        with labels a second behind their predictions, a busy model would
        hold a week of them, ~100 bytes each. Sweeping when they are more
        than half of its items costs each match under two reads.
        """
        stale = self._stale.get(model_id, 0) + 1
        waiting = self._waiting[model_id]
        if stale < STALE_SWEEP_AT or 2 * stale < len(waiting):
            self._stale[model_id] = stale
            return
        waiting.keep(lambda item: self._live(model_id, item) is not None)
        self._stale[model_id] = 0

    # Markers: the predictions already labelled, kept in segments (see the module's docstring).

    def _is_marked(self, model_id: str, prediction_id: str) -> bool:
        """Whether the prediction was joined to a label already (and the marker is kept)."""
        matched = self._matched.get(model_id)
        return matched is not None and matched.time_of(digest(prediction_id)) is not None

    def _mark(self, model_id: str, prediction_id: str, time: int) -> None:
        """Remember that a prediction (of ``time``) is labelled: in memory, and in a segment."""
        key = digest(prediction_id)
        matched = self._matched.get(model_id)
        if matched is None:
            matched = self._matched[model_id] = MatchedIds()
        matched.add(key, time)
        self._counts[_MARKER] += 1
        segments = self._segments.get(model_id)
        if segments is None:
            segments = self._segments[model_id] = {}
        number = next(reversed(segments), -1)
        segment = segments.get(number)
        if segment is None or segment.count >= MARKS_PER_SEGMENT:
            number += 1
            segment = segments[number] = _Segment(_key(model_id, _MATCHED, number), 0, time, time)
            heapq.heappush(self._segment_heaps.setdefault(model_id, []), (time, number))
            raw = b""
        else:
            raw = self.store[segment.key]
        self.store[segment.key] = raw + _MARK.pack(key, time)
        segment.count += 1
        segment.latest = max(segment.latest, time)
        if time < segment.earliest:
            segment.earliest = time
            heapq.heappush(self._segment_heaps[model_id], (time, number))

    def _expire_marks(self, model_id: str, horizon: int) -> None:
        """Forget the model's markers older than ``horizon``, in memory and in the store."""
        removed = self._matched[model_id].remove_before(horizon)
        if not removed:
            return
        self._counts[_MARKER] -= removed
        self._size -= removed
        self._unstore_marks(model_id)

    def _unstore_marks(self, model_id: str) -> None:
        """Remove the model's forgotten markers from their segments (expired or evicted).

        They were its oldest, by ``(time, digest)`` as :class:`MatchedIds`
        orders them: a stored marker before the oldest one left is gone.
        Only segments that begin no later than that one can hold any: those
        are taken from the segment heap, and each rewritten once. Whatever
        they held before it goes, so the segments agree with the markers
        remembered in memory even if they did not before.
        """
        segment_heap, segments = self._segment_heaps[model_id], self._segments[model_id]
        left = self._matched[model_id].oldest()
        touched: dict[int, np.ndarray] = {}
        untouched = []
        while segment_heap and (left is None or segment_heap[0][0] <= left[0]):
            earliest, number = heapq.heappop(segment_heap)
            segment = segments.get(number)
            if segment is None or segment.earliest != earliest or number in touched:  # stale
                continue
            marks = _marks(self.store[segment.key])
            if left is None:
                gone = np.ones(len(marks), dtype=bool)
            else:
                times, digests = marks[:, 1], marks[:, 0]
                gone = (times < left[0]) | ((times == left[0]) & (digests < left[1]))
            if gone.any():
                touched[number] = marks[~gone]
            else:  # it begins with a marker as old as the oldest left
                untouched.append((earliest, number))
        for number, kept in touched.items():
            self._rewrite(model_id, number, kept)
        for entry in untouched:
            heapq.heappush(segment_heap, entry)

    def _rewrite(self, model_id: str, number: int, kept: np.ndarray) -> None:
        """Store a segment's remaining markers, or delete it when none is left."""
        segments = self._segments[model_id]
        segment = segments[number]
        if not len(kept):
            del self.store[segment.key]
            del segments[number]
            return
        self.store[segment.key] = kept.astype("<i8", copy=False).tobytes()
        segment.count = len(kept)
        segment.earliest, segment.latest = int(kept[:, 1].min()), int(kept[:, 1].max())
        heapq.heappush(self._segment_heaps[model_id], (segment.earliest, number))

    def _load_segment(self, model_id: str, key: bytes, number: int, raw: bytes) -> int | None:
        """Take a stored segment's markers in (see :meth:`rebuild`); their latest time."""
        marks = _marks(raw)
        if not len(marks):
            return None
        matched = self._matched.get(model_id)
        if matched is None:
            matched = self._matched[model_id] = MatchedIds()
        for mark, time in marks.tolist():
            matched.add(mark, time)
        times = marks[:, 1]
        segment = _Segment(key, len(marks), int(times.min()), int(times.max()))
        self._segments.setdefault(model_id, {})[number] = segment
        self._segment_heaps.setdefault(model_id, []).append((segment.earliest, number))
        self._counts[_MARKER] += len(marks)
        self._size += len(marks)
        return segment.latest

    def _live(self, model_id: str, item: _Item) -> _Entry | None:
        """The entry a waiting item stands for, or None if it is stale."""
        time, key, code = item
        entry = self._get(key)
        if entry is None:
            return None
        return entry if entry[0] == code and entry[1] == time else None

    def _remove(self, model_id: str, item: _Item, entry: _Entry, evicted: bool) -> Expired | None:
        """Delete the live entry of a waiting item: an Expired, or None for a marker."""
        time, key, code = item
        del self.store[key]
        self._counts[code] -= 1
        self._size -= 1
        if code == _MARKER:
            return None
        prediction_id = orjson.loads(key)[1]
        return Expired(_SIDES[code], model_id, prediction_id, _datetime(time), entry[2], evicted)


class _Left(NamedTuple):
    """The predictions that left the held ones of a model, from :meth:`LabelJoin._hold_many`."""

    popped: list[tuple[str, int, Any]]
    """``(prediction id, event time, payload)`` of each, in the order they left."""
    counts: list[int]
    """How many left after each prediction given, in its order."""
    evicted: list[bool] | None
    """Whether each was evicted (pushed out early), in the order they left, if asked for."""

    def places(self) -> Iterator[Sequence[int]]:
        """For each prediction given, the places in ``popped`` of those that left after it,
        in the order :meth:`LabelJoin.advance` hands them out: event time, then id."""
        popped, start = self.popped, 0
        for count in self.counts:
            end = start + count
            if count <= 1:
                yield range(start, end)
            else:
                yield sorted(range(start, end), key=lambda k: (popped[k][1], popped[k][0]))
            start = end


def _pushed_by_cap(held: int, count: int, cap: int) -> tuple[list[int], int]:
    """How many of ``held`` predictions (and ``count`` more) leave after each new one when
    only the cap pushes them out, and how many leave in all.

    Once the held reach the cap, each new one pushes one out; a model already
    past it (its share shrank) drops to it at the first.

    >>> _pushed_by_cap(8, 4, 10), _pushed_by_cap(12, 3, 10)
    (([0, 0, 1, 1], 2), ([3, 1, 1], 5))
    """
    room = cap - held
    if room >= count:
        return [0] * count, 0
    if room >= 0:
        return [0] * room + [1] * (count - room), count - room
    return [1 - room] + [1] * (count - 1), count - room


def _expired_all(model_id: str, held: HeldPredictions) -> list[Expired]:
    """All held predictions of a model, pushed out early."""
    return [
        Expired(Side.PREDICTION, model_id, prediction_id, _datetime(time), payload, True)
        for prediction_id, time, payload in held
    ]


def _decode(raw: bytes) -> tuple[str, int, Any]:
    """An entry's side code, event time and payload (None for a marker)."""
    data = orjson.loads(raw)
    if isinstance(data, dict):  # written before the compact format
        return _LEGACY_SIDES[data["side"]], int(data["time"]), data.get("payload")
    return data[0], int(data[1]), data[2] if len(data) > 2 else None


def _encode(entry: _Entry) -> bytes:
    """An entry as the store keeps it (see the module's docstring)."""
    code, time, payload = entry
    return _dumps([code, time] if code == _MARKER else [code, time, payload])


def _dumps(value: Any) -> bytes:
    """``value`` as compact JSON, in bytes of their exact size (see the module's docstring)."""
    return bytes(memoryview(orjson.dumps(value)))


def _marks(raw: bytes) -> np.ndarray:
    """A segment's markers: rows of (digest, time)."""
    return np.frombuffer(raw, dtype="<i8").reshape(-1, 2)


def _key(*parts: str | int) -> bytes:
    """A store key: the compact JSON array of ``parts``, in bytes of their exact size."""
    return _dumps(parts)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime (exact)."""
    if moment.utcoffset() is None:
        raise ValueError(f"event times must be timezone-aware, got {moment}")
    return (moment - _EPOCH) // _MICROSECOND


def _micros_many(moments: Sequence[datetime]) -> list[int]:
    """:func:`_micros` of each (a naive one raises its ValueError), in one loop.

    Times sharing the first one's fixed-offset zone (as a rule, all) are
    taken within it: see :mod:`driftline.monitors.instants`.
    """
    within = ZoneEpoch.of(moments[0].tzinfo) if moments else None
    if within is None or any(moment.tzinfo is not within.zone for moment in moments):
        return [_micros(moment) for moment in moments]
    epoch, offset = within.epoch, within.offset
    return [(moment - epoch) // _MICROSECOND - offset for moment in moments]


def _datetime(micros: int) -> datetime:
    """The UTC datetime of microseconds since the epoch (exact)."""
    return _EPOCH + timedelta(microseconds=micros)
