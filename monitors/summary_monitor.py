"""The second stage of a two-stage worker: one model version's tests, run on summaries.

The first stage (:mod:`~driftline.monitors.summarise`) turns each batch of
a partition into a :class:`~driftline.schemas.summaries.VersionSummary`.
A :class:`SummaryMonitor` takes them, from every partition, in the order
of their events' times (:class:`~driftline.monitors.aligning.SummaryAligner`),
and runs the same tests as a :class:`~driftline.monitors.model.ModelMonitor`
does on events, each in one step per summary: data quality on the
violation counts, every sequential test on the walks of its sides'
increments over the batch (it crosses in the summary in which, event by
event in the partition's order, it would have), the serial correction on
the differences. Its work grows with summaries, not events. An alarm is
reported at the end of the summary it came in; its change point is the
first event of the summary in which the alarming test left zero, with
that summary's first position to read the events again from.

Summaries of labels (a first stage's batch of labels, joined to their
predictions there; they carry no events) wait in an aligner of their own, in
the order of the labels' times, and go to the version's performance monitor
(:class:`~driftline.monitors.summary_performance.SummaryPerformance`), as do
the labels and the prediction counts of the other summaries.

Without a registered reference it builds one from the warm-up rows the
first stage forwards, exactly as a model monitor builds one from its first
events; the worker publishes it, the first stage scores against it from
then on, and summaries still scored against none (or another reference)
count for data quality only.
"""

import heapq
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from pydantic import TypeAdapter

from driftline.monitors.aligning import SummaryAligner
from driftline.monitors.feature_drift import CategoricalDrift, DriftAlarm, NumericDrift
from driftline.monitors.findings import (
    PREDICTION,
    UNCERTAINTY,
    BatchFindings,
    DriftFinding,
    DriftResolution,
    ModelFindings,
    Subject,
)
from driftline.monitors.model import ModelMonitor
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.packing import pack_ints, unpack_ints
from driftline.monitors.positions import Located
from driftline.monitors.rings import EventMemory, IntRing
from driftline.monitors.state import State
from driftline.monitors.summarise import VersionSummariser, reference_digest
from driftline.monitors.summary_performance import (
    LabelPlace,
    Placed,
    Revealed,
    SummaryMoment,
    SummaryPerformance,
    outcomes_of,
)
from driftline.schemas import (
    FeatureEvent,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
    ReferenceProfile,
)
from driftline.schemas.summaries import Outcome, VersionSummary, WarmupRow

LABEL_SUMMARIES_HELD_PER_PARTITION = 64
"""Summaries of labels held at most per partition until the others catch up in time.

A first stage working through a backlog reads some partitions well ahead of
others; taken as they come, labels from after a change would reach the error
test before labels from before it, which then reads as a recovery. A summary
of labels is small (the outcomes of a batch's share of one partition), so
many more of them are held than of the other summaries, which may carry
warm-up rows."""

_OUTCOME = TypeAdapter(Outcome)

EARLY_OUTCOMES = 100_000
"""Labels that came with their predictions held at most until the labels of every partition
have passed their times."""

SUMMARY_MEMORY = 1_024
"""Recent summaries whose first event time and position are kept to place a change point."""


class Taken(NamedTuple):
    """A summary the monitor took, what it revealed of drift and data quality, whether the
    monitor was warming up before it, whether it ended the warm-up, and what it revealed
    of performance (:meth:`SummaryPerformance.update_summary`)."""

    summary: VersionSummary
    findings: ModelFindings
    warming_up: bool
    warmed_up: bool
    performance: list[Revealed]


class SummaryMonitor(ModelMonitor):
    """A model version's tests, run on the summaries of its batches from every partition.

    Parameters are those of :class:`~driftline.monitors.model.ModelMonitor`.
    Feed it with :meth:`take` as summaries arrive (or :meth:`update_summary`
    with summaries already in order); :meth:`update` and :meth:`update_batch`
    are for events, and refused.

    Each source partition's summaries are taken in order of their offsets:
    one that ends at or before the last taken from its partition was taken
    already (a batch summarised again after a restart), and is skipped.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        reference: ReferenceProfile | None = None,
        max_monitored_features: int = 1_000,
        quality_alpha: float = 1e-4,
    ) -> None:
        self._digest: str | None = None
        self._summaries = EventMemory(SUMMARY_MEMORY)
        """Each recent summary's first event time and position."""
        self._starts: dict[str, IntRing] = {}
        """Per drift subject, its detector's observations before each recent summary."""
        self._taken: dict[tuple[str, int], int] = {}
        """The last offset taken from each source partition."""
        self._last: tuple[datetime, KafkaPosition | None] | None = None
        self.aligner = SummaryAligner()
        """Where summaries wait to be taken in the order of their events' times."""
        self.label_aligner = SummaryAligner(per_partition=LABEL_SUMMARIES_HELD_PER_PARTITION)
        """Where summaries of labels (without events) wait to be taken in the order of the
        labels' times: apart from the others, so that labels, which come later than their
        predictions (days, at times), hold back no drift test."""
        self._warm_rows: list[tuple[float, int, WarmupRow]] = []
        """The earliest warm-up rows so far, latest on top (a heap)."""
        self._warm_count = 0
        """Warm-up rows received."""
        self._late: VersionSummariser | None = None
        """What scores warm-up rows that come after the reference (see :meth:`_scored`)."""
        self._early: list[tuple[float, int, Outcome, LabelPlace]] = []
        """Labels that came with their predictions, waiting for the others' times (a heap)."""
        self._early_count = 0
        self.performance = SummaryPerformance(spec)
        """The version's performance, from the labels the first stages joined."""
        super().__init__(
            spec,
            reference=reference,
            max_monitored_features=max_monitored_features,
            quality_alpha=quality_alpha,
        )
        if reference is not None:
            self._digest = reference_digest(reference)

    def update(
        self, event: PredictionEvent | FeatureEvent, position: Located | None = None
    ) -> ModelFindings:
        """Refused: a summary monitor takes summaries (:meth:`update_summary`)."""
        raise TypeError("a summary monitor takes summaries, not events")

    def update_batch(
        self,
        events: Sequence[PredictionEvent | FeatureEvent],
        positions: Sequence[Located | None] | None = None,
    ) -> BatchFindings:
        """Refused: a summary monitor takes summaries (:meth:`update_summary`)."""
        raise TypeError("a summary monitor takes summaries, not events")

    def take(self, summary: VersionSummary) -> list[Taken] | None:
        """Offer one summary as it arrives; the summaries it lets be taken, in the order of
        their events' times (see :class:`~driftline.monitors.aligning.SummaryAligner`), each
        with what :meth:`update_summary` found; None if it arrived already."""
        aligner = self.label_aligner if summary.of_labels else self.aligner
        going = aligner.offer(summary)
        return None if going is None else self._take_all(going)

    def flush(self) -> list[Taken]:
        """Take every summary held (the input ended), in order; as :meth:`take` gives them."""
        taken = self._take_all(self.aligner.flush()) + self._take_all(self.label_aligner.flush())
        rest = self._early_outcomes(None, everything=True)
        if rest and taken:
            last = taken[-1]
            taken[-1] = last._replace(performance=last.performance + rest)
        return taken

    def _take_all(self, going: Sequence[VersionSummary]) -> list[Taken]:
        """:meth:`update_summary` of each summary let go, in order, and its performance.

        Labels go to the performance monitor in the order of their times: those of
        summaries of labels as the label aligner lets them go, and those that came with
        predictions (their labels came first, and waited for them) once the labels of
        every partition have passed their times (:meth:`_early_outcomes`).
        """
        taken = []
        for each in going:
            warming = self.warming_up
            found = self.update_summary(each)
            if found is None:
                continue
            if not each.of_labels:
                performance = self.performance.update_summary(each, with_outcomes=False)
                for outcome, place in outcomes_of(each):
                    self._early_count += 1
                    entry = (outcome.label_time.timestamp(), self._early_count, outcome, place)
                    heapq.heappush(self._early, entry)
                performance += self._early_outcomes(self.label_aligner.watermark)
            else:
                performance = self._early_outcomes(each.first_event_time)
                performance += self.performance.update_summary(each)
            warmed = warming and not self.warming_up
            taken.append(Taken(each, found, warming, warmed, performance))
        return taken

    def _early_outcomes(
        self, until: datetime | None, *, everything: bool = False
    ) -> list[Revealed]:
        """The labels that came with predictions, up to ``until`` (None: no time yet), to the
        performance monitor in the order of their times; at least enough of the earliest to
        leave no more than ``EARLY_OUTCOMES`` waiting; ``everything``: all of them."""
        early = self._early
        if not early:
            return []
        going: list[Placed] = []
        bound = math.inf if everything else -math.inf if until is None else until.timestamp()
        while early and (early[0][0] <= bound or len(early) > EARLY_OUTCOMES):
            _, _, outcome, place = heapq.heappop(early)
            going.append((outcome, place))
        return self.performance.update_outcomes(going) if going else []

    def update_summary(self, summary: VersionSummary) -> ModelFindings | None:
        """Take one summary; what it revealed, or None if it was taken already.

        Examples
        --------
        See :mod:`driftline.monitors.summarise` for making summaries, and the
        tests of this module for a version spread over eight partitions.
        """
        spec = self.spec
        if (summary.model_id, summary.model_version) != (spec.model_id, spec.model_version):
            raise ValueError(
                f"summary of {summary.model_id}/{summary.model_version} given to the monitor of "
                f"{spec.model_id}/{spec.model_version}"
            )
        source = (summary.source.topic, summary.source.partition)
        if summary.last_offset <= self._taken.get(source, -1):
            return None
        counts = {
            (counted.feature, counted.check): (counted.violations, counted.examples)
            for counted in summary.quality
        }
        quality = self._quality.update_counts(summary.checked, counts, summary.unexpected_features)
        self._taken[source] = summary.last_offset
        if not summary.events:
            return ModelFindings(quality=quality)
        self._events += summary.events
        self._last = (summary.last_event_time, summary.source)
        if self._warmup is not None:
            self._take_warmup(summary)
            return ModelFindings(quality=quality)
        if summary.reference is None and summary.warmup:
            summary = self._scored(summary)
        if summary.reference is None or summary.reference != self._digest:
            return ModelFindings(quality=quality)
        self._summaries.append(summary.first_event_time, summary.source)
        drifts, repeats, resolved = self._watch_summary(summary)
        return ModelFindings(drifts=drifts, quality=quality, repeats=repeats, resolved=resolved)

    def _scored(self, summary: VersionSummary) -> VersionSummary:
        """A warm-up summary that came once the reference was built, scored here as the first
        stage would have scored it.

        A first stage only scores once the reference it waits for has come back on the
        references topic; until then it forwards rows. One working through a backlog sends
        rows of thousands of events after the warm-up ended: skipped, they would go untested.
        The rows are scored against the reference here, as events of the summary's partition
        in their order (its data quality was counted by the first stage already). A row has
        the prediction and its uncertainty, not the probabilities: the uncertainty subject
        takes no value from it.
        """
        assert self.reference is not None
        if self._late is None or self._late.spread != summary.spread:
            self._late = VersionSummariser(
                self.spec,
                reference=self.reference,
                max_monitored_features=self.max_monitored_features,
                quality_alpha=self.quality_alpha,
                spread=summary.spread,
            )
        source = summary.source
        events = [
            PredictionEvent(
                model_id=summary.model_id,
                model_version=summary.model_version,
                event_id=f"{source.topic}-{source.partition}-{source.offset}-{index}",
                event_time=row.event_time,
                features=row.features,
                prediction=row.prediction,
            )
            for index, row in enumerate(summary.warmup)
        ]
        scored = self._late.summarise(
            events, [None] * len(events), partition=(source.topic, source.partition)
        )
        if scored is None:
            return summary
        return scored.model_copy(
            update={
                "source": source,
                "last_offset": summary.last_offset,
                "checked": summary.checked,
                "quality": summary.quality,
                "unexpected_features": summary.unexpected_features,
                "last_event_id": summary.last_event_id,
            }
        )

    def _take_warmup(self, summary: VersionSummary) -> None:
        """Keep the summary's warm-up rows among the earliest; build the reference from the
        ``warmup_events`` earliest once no partition can send an earlier one.

        A first stage ahead of the others sends rows of later events first (a backlog, a
        rebalance): taken as they came, a reference would hold events from after a change.
        So the earliest rows by event time are kept (a bounded heap), and the warm-up ends
        when the aligner's watermark has passed the latest of them, or when four times as
        many rows came (a partition that sends nothing holds it no longer).
        """
        assert self._warmup is not None
        wanted = self.spec.drift.warmup_events
        for row in summary.warmup:
            self._warm_count += 1
            entry = (-row.event_time.timestamp(), -self._warm_count, row)
            if len(self._warm_rows) < wanted:
                heapq.heappush(self._warm_rows, entry)
            elif entry[:2] > self._warm_rows[0][:2]:
                heapq.heapreplace(self._warm_rows, entry)
        if len(self._warm_rows) < wanted:
            return
        watermark = self.aligner.watermark
        latest = -self._warm_rows[0][0]
        if not (watermark is not None and watermark.timestamp() >= latest) and (
            self._warm_count < 4 * wanted
        ):
            return
        for _, _, row in sorted(self._warm_rows, key=lambda entry: (-entry[0], -entry[1])):
            self._warmup.append(
                {**row.features, PREDICTION: row.prediction, UNCERTAINTY: row.uncertainty}
            )
        self._warm_rows = []
        self._end_warmup()
        self._digest = reference_digest(self.reference)  # type: ignore[arg-type]

    def _watch_summary(
        self, summary: VersionSummary
    ) -> tuple[list[DriftFinding], list[DriftFinding], list[DriftResolution]]:
        """New alarms, repeated alarms and resolutions of the drift subjects for one summary."""
        moment = SummaryMoment(summary.last_event_id, summary.last_event_time)
        findings: list[DriftFinding] = []
        repeats: list[DriftFinding] = []
        resolved: list[DriftResolution] = []
        for subject in self._subjects:
            detector = subject.detector
            before = detector.observations
            starts = self._starts.get(subject.name)
            if starts is None:
                starts = self._starts[subject.name] = IntRing(SUMMARY_MEMORY)
            starts.append(before)
            if isinstance(detector, MultivariateDrift):
                alarmed = summary.joint is not None and detector.update_summary(summary.joint)
            elif isinstance(detector, NumericDrift):
                sums = summary.numeric.get(subject.name)
                alarmed = sums is not None and detector.update_summary(sums, summary.spread)
            else:
                assert isinstance(detector, CategoricalDrift)
                counts = summary.categorical.get(subject.name)
                alarmed = counts is not None and detector.update_counts(counts)
            taken = detector.observations - before
            if not taken:
                continue
            outcome = self._latch(subject, alarmed, moment, taken)
            if isinstance(outcome, DriftResolution):
                resolved.append(outcome)
            elif outcome is not None:
                finding, repeat = outcome
                (repeats if repeat else findings).append(finding)
        return findings, repeats, resolved

    def _place(
        self, subject: Subject, alarm: DriftAlarm
    ) -> tuple[datetime | None, KafkaPosition | None]:
        """The first event time and position of the summary the alarm's change point is in."""
        starts = self._starts[subject.name].values()
        slot = int(np.searchsorted(starts, alarm.change_observation, side="left")) - 1
        if slot < 0:
            return None, None
        return self._summaries[slot - len(starts) + len(self._summaries)]

    @property
    def reference_digest(self) -> str | None:
        """The digest of the reference the tests measure against (what summaries must name);
        None during the warm-up."""
        return self._digest

    @property
    def last_event(self) -> tuple[datetime, KafkaPosition | None] | None:
        """The last event time of the last summary taken, and that summary's first position."""
        return self._last

    def to_state(self, *, with_reference: bool = True) -> State:
        """:meth:`ModelMonitor.to_state`, and what places change points and skips repeats."""
        state = super().to_state(with_reference=with_reference)
        state["summaries"] = {
            "aligner": self.aligner.to_state(),
            "label_aligner": self.label_aligner.to_state(),
            "early": [
                [order, _OUTCOME.dump_json(outcome).decode(), list(place)]
                for _, order, outcome, place in sorted(self._early)
            ],
            "early_count": self._early_count,
            "warm_count": self._warm_count,
            "warm_rows": [
                [order, row.model_dump_json()] for _, order, row in sorted(self._warm_rows)
            ],
            "digest": self._digest,
            "performance": self.performance.to_state(),
            "memory": self._summaries.packed(),
            "starts": {name: pack_ints(ring.values()) for name, ring in self._starts.items()},
            "taken": [
                [topic, partition, offset] for (topic, partition), offset in self._taken.items()
            ],
            "last": None
            if self._last is None
            else [
                self._last[0].isoformat(),
                None if self._last[1] is None else self._last[1].model_dump(),
            ],
        }
        return state

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        reference: ReferenceProfile | None = None,
        *,
        spec: ModelSpec | None = None,
    ) -> "SummaryMonitor":
        """The monitor :meth:`to_state` described, going on exactly where it was."""
        monitor = super().from_state(state, reference, spec=spec)
        assert isinstance(monitor, SummaryMonitor)
        saved = state["summaries"]
        monitor.aligner = SummaryAligner.from_state(saved["aligner"])
        if "label_aligner" in saved:  # saved before labels were joined in two stages
            monitor.label_aligner = SummaryAligner.from_state(saved["label_aligner"])
            monitor._early_count = int(saved["early_count"])
            for order, text, place in saved["early"]:
                outcome = _OUTCOME.validate_json(text)
                entry = (outcome.label_time.timestamp(), int(order), outcome, LabelPlace(*place))
                monitor._early.append(entry)
            heapq.heapify(monitor._early)
        monitor._warm_count = int(saved["warm_count"])
        for order, text in saved["warm_rows"]:
            row = WarmupRow.model_validate_json(text)
            monitor._warm_rows.append((-row.event_time.timestamp(), int(order), row))
        heapq.heapify(monitor._warm_rows)
        monitor._digest = saved["digest"]
        if "performance" in saved:  # saved before performance was measured in two stages
            monitor.performance = SummaryPerformance.from_state(monitor.spec, saved["performance"])
        monitor._summaries.extend_packed(saved["memory"])
        for name, packed in saved["starts"].items():
            ring = monitor._starts[name] = IntRing(SUMMARY_MEMORY)
            ring.extend(unpack_ints(packed))
        monitor._taken = {(str(t), int(p)): int(o) for t, p, o in saved["taken"]}
        last = saved["last"]
        if last is not None:
            position = None if last[1] is None else KafkaPosition.model_validate(last[1])
            monitor._last = (datetime.fromisoformat(last[0]), position)
        return monitor
