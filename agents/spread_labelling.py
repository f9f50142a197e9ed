"""The label join of a version keyed by event id: each first stage joins its own partitions.

A prediction keyed by its event id and the label keyed by that id land in
the partition of the same number of their topics, so the worker that reads a
partition of predictions reads the labels of those predictions too, and
joins them there, in the label join's store, as it joins a whole model's
when events are keyed by model id (:mod:`driftline.agents.labelling`). Each
partition is a model of its own to the join (:func:`partition_model`): its
watermarks, its predictions held before its first label and its markers are
its partition's, and every key it writes stays in that partition of the
store's changelog, where the worker that takes the partition over finds it.

What the join finds goes to the second stage in the summaries
(:class:`~driftline.monitors.summarise.Joined`), where the version's
performance is measured (:mod:`driftline.monitors.summary_performance`):

- each partition numbers its own predictions, ``ceil(window / spread)`` to
  a performance window, the count kept in the store (so a worker that takes
  the partition over goes on counting);
- a prediction joined to its label becomes an
  :class:`~driftline.schemas.summaries.Outcome`;
- a prediction whose label did not come within the retention is counted as
  unlabelled in its window.

A label that does not fit its version, one for a prediction labelled
already, and one whose prediction never came (an orphan) are dead-lettered
here, as for any model.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from math import ceil
from typing import Any, NamedTuple

import orjson

from driftline.agents.labelling import (
    LabelDesk,
    LabelMessage,
    _label_message,
    _label_of,
    _orphan,
    _prediction_record,
    _version,
    already_labelled,
    label_payload,
    label_violation,
    version_gone,
)
from driftline.agents.outputs import Output
from driftline.monitors.estimation import score_bins
from driftline.monitors.labels import AlreadyLabelled, Expired, Match, Side, _datetime
from driftline.monitors.performance import _predicted_class
from driftline.monitors.summarise import Joined
from driftline.schemas import LabelEvent, ModelSpec, PredictionEvent, TaskType
from driftline.schemas.summaries import Outcome, ScoreBins, WindowCount
from driftline.streams.settings import Settings

ModelVersion = tuple[str, str]
"""A model id and version."""

HANDED_OVER_PER_CHUNK = 1_000
"""Held predictions to a message of the store's changelog when a partition is handed over:
about 150 KB, well under a broker's default largest message (1 MB)."""


def partition_model(model_id: str, partition: int) -> str:
    """What the label join calls a model's share of one partition.

    Model ids are at most 256 characters, and the join takes longer names:
    the ``#`` and the number make a name no model id of 256 can be.

    >>> partition_model("churn", 3)
    'churn#3'
    """
    return f"{model_id}#{partition}"


class _Found:
    """What a batch of one partition's join found, per version, as it is found."""

    def __init__(self) -> None:
        self.predicted: dict[ModelVersion, dict[int, int]] = {}
        self.outcomes: dict[ModelVersion, list[Outcome]] = {}
        self.unlabelled: dict[ModelVersion, dict[int, int]] = {}
        self.scored: dict[ModelVersion, list[ScoreBins]] = {}

    def count(
        self, into: dict[ModelVersion, dict[int, int]], key: ModelVersion, window: int
    ) -> None:
        windows = into.setdefault(key, {})
        windows[window] = windows.get(window, 0) + 1

    def by_version(self) -> dict[ModelVersion, Joined]:
        keys = {*self.predicted, *self.outcomes, *self.unlabelled}
        return {
            key: Joined(
                _counts(self.predicted.get(key, {})),
                self.outcomes.get(key, []),
                _counts(self.unlabelled.get(key, {})),
                self.scored.get(key, []),
            )
            for key in keys
        }


class PartitionJoin(NamedTuple):
    """What a batch of one partition's join found, per version, and what it dead-lettered
    (by the place in the batch of the message that led to it)."""

    joined: dict[ModelVersion, Joined]
    outputs: dict[int, list[Output]]


class SpreadLabels:
    """Joins the labels of versions keyed by event id in the partitions this worker reads.

    It shares the :class:`~driftline.agents.labelling.LabelDesk`'s join (one
    store, one bound on what waits), its counters and its dead letters.
    """

    def __init__(self, desk: LabelDesk, settings: Settings) -> None:
        self.desk = desk
        self.settings = settings
        self.join = desk.join
        self._labelled: set[str] = set()
        """Models known to have had a label in one of their partitions."""
        self._adopted: set[str] = set()
        """Partitions of models (:func:`partition_model`) whose predictions handed over by a
        previous owner were looked for since this worker took the partition."""

    def labelled(self, model_id: str) -> bool:
        """Whether a label of the model came to any of its partitions here (or to one whose
        share of the join this worker read back): its predictions then wait in the store in
        every partition, not in memory, where a hand-over or a crash would lose them."""
        if model_id in self._labelled:
            return True
        partitions = range(self.settings.topic_partitions)
        if any(self.join.had_label(partition_model(model_id, p)) for p in partitions):
            self._labelled.add(model_id)
            return True
        return False

    def keep_held(self, partition: int, model_ids: Iterable[str]) -> int:
        """Before ``partition`` is handed over: the predictions of these models held in memory
        in that partition go to the store, where its next owner finds them; how many.

        A model known to have labels has them wait in the store from now on,
        as its first label would. One without a label here yet writes them
        apart (:meth:`_hand_over`): its next owner holds them in memory
        again, so a model that never gets labels does not come to keep every
        prediction in the store for having been handed over.
        """
        kept = 0
        for model_id in model_ids:
            name = partition_model(model_id, partition)
            self._adopted.discard(name)
            if self.join.had_label(name):
                continue
            if self.labelled(model_id):
                kept += self.join.store_from_now(name)
            else:
                kept += self._hand_over(model_id, partition)
        return kept

    def share(self, spec: ModelSpec) -> int:
        """Predictions of one partition to a performance window of ``spec``."""
        return ceil(spec.performance.window / self.settings.topic_partitions)

    def predictions(
        self,
        spec: ModelSpec,
        events: Sequence[PredictionEvent],
        offsets: Sequence[int],
        partition: int,
    ) -> PartitionJoin:
        """Count a batch of one version's predictions of one partition into their windows, join
        them to the labels waiting, and expire what waited too long; what that found."""
        found = _Found()
        outputs: dict[int, list[Output]] = {}
        key = (spec.model_id, spec.model_version)
        name = partition_model(spec.model_id, partition)
        first, fence = self._counted(spec, partition)
        places = [number for number, offset in enumerate(offsets) if offset > fence]
        if not places:  # read again after a hand-over: counted and joined already
            return PartitionJoin({}, outputs)
        if len(places) < len(events):
            events = [events[number] for number in places]
            offsets = [offsets[number] for number in places]
        share = self.share(spec)
        windows = [(first + number) // share for number in range(len(events))]
        self._count_to(spec, partition, first + len(events), max(offsets))
        for window in windows:
            found.count(found.predicted, key, window)
        predicted = [_predicted(spec, event) for event in events]
        if spec.task is TaskType.CLASSIFICATION:
            found.scored.setdefault(key, []).extend(
                score_bins(
                    windows,
                    predicted,
                    [event.probabilities for event in events],
                    spec.positive_class,
                )
            )
        payloads = [
            [
                spec.model_version,
                window,
                prediction,
                _probabilities(spec, event),
                [partition, offset],
            ]
            for event, window, prediction, offset in zip(
                events, windows, predicted, offsets, strict=True
            )
        ]
        adopted = self._adopt(found, spec.model_id, partition)
        if adopted:
            outputs[places[0]] = adopted
        ids = [event.event_id for event in events]
        times = [event.event_time for event in events]
        for number, dead in self._join_predictions(
            found, spec.model_id, name, ids, times, payloads
        ):
            outputs.setdefault(places[number], []).extend(dead)
        return PartitionJoin(found.by_version(), outputs)

    def _join_predictions(
        self,
        found: _Found,
        model_id: str,
        name: str,
        ids: Sequence[str],
        times: Sequence[datetime],
        payloads: Sequence[Any],
    ) -> list[tuple[int, list[Output]]]:
        """Join predictions of one partition to the labels waiting, and expire what waited too
        long; the dead letters that led to, by the place of the prediction after which."""
        if not self.join.had_label(name) and self.labelled(model_id):
            self.join.store_from_now(name)
        pushed = self.join.held_many(name, ids, times, payloads)
        if pushed is not None:  # no label in this partition yet
            self.desk.counts.predictions_unlabelled += len(pushed)
            for _, payload in pushed:
                self._unlabelled(found, model_id, payload)
            return []
        letters: list[tuple[int, list[Output]]] = []
        for number, (match, expired) in enumerate(
            self.join.predicted_many(name, ids, times, payloads)
        ):
            dead: list[Output] = []
            if match is not None:
                self.desk.counters.waiting -= 1
                dead += self._matched(found, model_id, match)
            dead += self._expired(found, model_id, expired)
            if dead:
                letters.append((number, dead))
        return letters

    def _hand_over(self, model_id: str, partition: int) -> int:
        """Write the predictions held in memory of a partition of a model without a label to
        the store, in chunks (each a message of the store's changelog), for the partition's
        next owner to hold again (:meth:`_adopt`); how many."""
        held = self.join.let_go_held(partition_model(model_id, partition))
        store = self.join.store
        chunks = range(0, len(held), HANDED_OVER_PER_CHUNK)
        for number, start in enumerate(chunks):
            chunk = held[start : start + HANDED_OVER_PER_CHUNK]
            store[self._handed_over_key(model_id, partition, number)] = orjson.dumps(chunk)
        if held:
            store[self._handed_over_key(model_id, partition)] = orjson.dumps(len(chunks))
        return len(held)

    def _adopt(self, found: _Found, model_id: str, partition: int) -> list[Output]:
        """Once per taking a partition over: hold again the predictions its previous owner
        handed over (:meth:`_hand_over`), before this worker's own of the partition; the dead
        letters that led to (labels they expired)."""
        name = partition_model(model_id, partition)
        if name in self._adopted:
            return []
        self._adopted.add(name)
        store = self.join.store
        header = self._handed_over_key(model_id, partition)
        raw = store.get(header)
        if raw is None:
            return []
        held: list[Any] = []
        for number in range(int(orjson.loads(raw))):
            key = self._handed_over_key(model_id, partition, number)
            chunk = store.get(key)
            if chunk is not None:
                held += orjson.loads(chunk)
                del store[key]
        del store[header]
        if not held:
            return []
        ids = [str(item[0]) for item in held]
        times = [_datetime(int(item[1])) for item in held]
        payloads = [item[2] for item in held]
        letters = self._join_predictions(found, model_id, name, ids, times, payloads)
        return [letter for _, dead in letters for letter in dead]

    def labels(
        self, labels: Sequence[LabelEvent], messages: Sequence[LabelMessage], partition: int
    ) -> PartitionJoin:
        """Join a batch of labels of one partition (of models keyed by event id) to their
        predictions; what that found, and each label's dead letter if it has one."""
        found = _Found()
        outputs: dict[int, list[Output]] = {}
        fences: dict[str, int] = {}
        with self.join.saving_marks_once():
            for number, (label, message) in enumerate(zip(labels, messages, strict=True)):
                model_id, offset = label.model_id, message.source.offset
                fence = fences.get(model_id)
                if fence is None:
                    fence = fences[model_id] = self._joined_until(model_id, partition)
                    adopted = self._adopt(found, model_id, partition)
                    if adopted:
                        outputs[number] = adopted
                if offset <= fence:  # read again after a hand-over: joined already
                    self.desk.counters.duplicates += 1
                    continue
                fences[model_id] = offset
                dead = self._label(found, label, message, partition)
                if dead:
                    outputs.setdefault(number, []).extend(dead)
        for model_id, offset in fences.items():
            self.join.store[self._label_fence_key(model_id, partition)] = orjson.dumps(offset)
        return PartitionJoin(found.by_version(), outputs)

    def _label(
        self, found: _Found, label: LabelEvent, message: LabelMessage, partition: int
    ) -> list[Output]:
        """Join one label; its dead letters (its own, or orphans it expired)."""
        name = partition_model(label.model_id, partition)
        payload = label_payload(label, message)
        result = self.join.labelled(name, label.prediction_id, label.event_time, payload)
        if isinstance(result, AlreadyLabelled):
            return [self.desk.refuse(message, already_labelled(label))]
        dead: list[Output] = []
        if result is None:
            self.desk.counters.waiting += 1
        else:
            dead += self._matched(found, label.model_id, result)
        return dead + self._expired(found, label.model_id, self.join.advance(name))

    def _matched(self, found: _Found, model_id: str, match: Match) -> list[Output]:
        """Add a joined pair to what was found, or dead-letter its label."""
        version = _version(match.prediction)
        spec = self.desk.registry.spec(model_id, version)
        if spec is None:
            return [self.desk.refuse(_label_message(match.label), version_gone(model_id, version))]
        label_id, label = _label_of(match.label)
        misfit = label_violation(spec, label)
        if misfit is not None:
            return [self.desk.refuse(_label_message(match.label), misfit)]
        record = _prediction_record(
            spec, match.prediction, match.prediction_time, self.settings.predictions_topic
        )
        self.desk.counters.processed += 1
        offset = 0 if record.position is None else record.position.offset
        found.outcomes.setdefault((model_id, version), []).append(
            Outcome(
                record.window,
                record.event_time,
                record.prediction,
                record.probabilities,
                offset,
                label,
                label_id,
                match.label_time,
                int(match.label[4][2]),
            )
        )
        return []

    def _expired(self, found: _Found, model_id: str, gone: list[Expired]) -> list[Output]:
        """Count what the join expired: orphan labels are dead-lettered, predictions never
        labelled are counted in their windows."""
        dead: list[Output] = []
        for expired in gone:
            if expired.side is Side.LABEL:
                self.desk.counters.waiting -= 1
                self.desk.counts.orphaned += 1
                dead.append(self.desk.refuse(_label_message(expired.payload), _orphan(expired)))
                continue
            self.desk.counts.predictions_unlabelled += 1
            self._unlabelled(found, model_id, expired.payload)
        return dead

    def _unlabelled(self, found: _Found, model_id: str, payload: Any) -> None:
        found.count(found.unlabelled, (model_id, _version(payload)), int(payload[1]))

    def _counted(self, spec: ModelSpec, partition: int) -> tuple[int, int]:
        """Predictions of ``spec`` counted in ``partition`` so far, and the offset of the last
        (-1 before the first).

        Kept in the store with the join's entries, so both go back to the same point after
        a crash, and a partition's next owner, reading from the last committed offset, skips
        what the store already holds (the store is written before the offsets are committed).
        """
        raw = self.join.store.get(self._count_key(spec, partition))
        if raw is None:
            return 0, -1
        count, offset = orjson.loads(raw)
        return int(count), int(offset)

    def _count_to(self, spec: ModelSpec, partition: int, count: int, offset: int) -> None:
        self.join.store[self._count_key(spec, partition)] = orjson.dumps([count, offset])

    def _joined_until(self, model_id: str, partition: int) -> int:
        """The offset of the last label of the model joined in ``partition`` (-1: none), kept
        in the store for the same reason as the count of predictions (see :meth:`_counted`)."""
        raw = self.join.store.get(self._label_fence_key(model_id, partition))
        return -1 if raw is None else int(orjson.loads(raw))

    def _label_fence_key(self, model_id: str, partition: int) -> bytes:
        return orjson.dumps(["#labelled", model_id, "", partition])

    def _handed_over_key(self, model_id: str, partition: int, chunk: int | None = None) -> bytes:
        # Four parts (the count of chunks) or five (a chunk): not the join's own keys.
        parts: list[Any] = ["#handed-over", model_id, "", partition]
        return orjson.dumps(parts if chunk is None else [*parts, chunk])

    def _count_key(self, spec: ModelSpec, partition: int) -> bytes:
        # Four parts: the join reads keys of one, two or three parts as its own.
        return orjson.dumps(["#predicted", spec.model_id, spec.model_version, partition])


def _counts(windows: dict[int, int]) -> list[WindowCount]:
    return [WindowCount(window, count) for window, count in sorted(windows.items())]


def _predicted(spec: ModelSpec, event: PredictionEvent) -> Any:
    """The prediction as the performance monitor takes it (see ``PerformanceMonitor.records``)."""
    if spec.task is TaskType.CLASSIFICATION:
        return _predicted_class(event)
    return event.prediction


def _probabilities(spec: ModelSpec, event: PredictionEvent) -> Any:
    """The probabilities as the join keeps them: in the order of the spec's classes."""
    probabilities = event.probabilities
    if probabilities and spec.classes and probabilities.keys() <= set(spec.classes):
        return [probabilities.get(name) for name in spec.classes]
    return dict(probabilities) if probabilities else None
