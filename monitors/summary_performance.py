"""A spread version's performance, measured by the second stage from summaries.

When a version's events are keyed by event id, a label lands in the
partition of its prediction (it is keyed by the prediction's id), so each
first stage joins the labels of its own partitions, as a single worker
does for a whole model (see :mod:`driftline.agents.labelling`). What the
joins find travels in the summaries
(:class:`~driftline.schemas.summaries.VersionSummary`): how many
predictions each performance window got, each labelled prediction
(:class:`~driftline.schemas.summaries.Outcome`), how many left unlabelled.
:class:`SummaryPerformance` takes them, as a
:class:`~driftline.monitors.performance.PerformanceMonitor` takes events.

The first stages number the windows, each its own partition's predictions
(``ceil(window / spread)`` of them to a window), so window ``k`` of the
version holds the ``k``-th share of every partition. It closes when it has
a full share from each partition, and settles when each of its predictions
is labelled or waited out its retention, as an event-by-event window does;
a window is opened by whichever comes first, a count of its predictions or
one of its labels (labels may overtake their predictions' summary, which the
second stage holds back to take summaries in the order of event time).

The realized test and the reference are those of the event-by-event
monitor, over the labels in the order their summaries are taken. So is the
estimated performance, before the labels: the estimator is calibrated on
the reference labels' probabilities, which the outcomes carry, and a
summary carries its predictions' scores by window, class and bin
(:class:`~driftline.schemas.summaries.ScoreBins`), each bin read at its
middle. The estimates begin with the first window opened once the
estimator is ready (the event-by-event monitor begins within the window
being counted); a window's estimate and its check against the labels
are of the same predictions, as there.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from math import ceil
from typing import Any, NamedTuple, Self

import numpy as np

from driftline.monitors.estimation import bin_scores
from driftline.monitors.performance import (
    PerformanceFindings,
    PerformanceMonitor,
    PredictionRecord,
    _Window,
)
from driftline.monitors.positions import Position
from driftline.monitors.state import State
from driftline.schemas import KafkaPosition, ModelSpec
from driftline.schemas.summaries import Outcome, ScoreBins, VersionSummary

SETTLED_MEMORY = 4_096
"""Windows remembered as settled, so that a late label or count does not open one again."""


class SummaryMoment(NamedTuple):
    """A summary as a report or an alarm names it: by its last event."""

    event_id: str
    event_time: datetime


class LabelPlace(NamedTuple):
    """Where the messages of a summary's outcomes are: the partition of that number of the
    predictions and labels topics."""

    partition: int
    predictions_topic: str
    labels_topic: str


Placed = tuple[Outcome, LabelPlace]
"""A labelled prediction and where its messages are."""


def outcomes_of(summary: VersionSummary) -> list[Placed]:
    """The outcomes of a summary, each with where its messages are."""
    place = LabelPlace(summary.source.partition, summary.predictions_topic, summary.labels_topic)
    return [(outcome, place) for outcome in summary.outcomes]


class Revealed(NamedTuple):
    """What part of a summary revealed, and the position of the message that led to it (the
    label, for what a label revealed; None for counts)."""

    findings: PerformanceFindings
    source: KafkaPosition | None


class SummaryPerformance(PerformanceMonitor):
    """Realized performance of a spread model version, from its summaries.

    Parameters are those of :class:`~driftline.monitors.performance.PerformanceMonitor`.
    Feed it with :meth:`update_summary`, each summary once, in the order the
    second stage takes them; the event methods (:meth:`predicted` and the
    others) are for a version's events in one process.

    Examples
    --------
    See the tests of this module: a classifier spread over four partitions,
    its error rate rising, against the event-by-event monitor on the same labels.
    """

    windows_open_empty = True  # a label may open its window before its count comes

    def __init__(self, spec: ModelSpec, *, arl: float | None = None) -> None:
        super().__init__(spec, arl=arl)
        self._settled_windows: dict[int, None] = {}
        """The latest windows settled (an ordered set of at most ``SETTLED_MEMORY``)."""

    def update_summary(
        self, summary: VersionSummary, *, with_outcomes: bool = True
    ) -> list[Revealed]:
        """Count a summary's predictions into their windows, then its labelled predictions
        (unless ``with_outcomes`` is false: the caller brings them with
        :meth:`update_outcomes`, in the order of the labels' times) and those left
        unlabelled; what each revealed, in that order."""
        moment = SummaryMoment(summary.last_event_id, summary.last_event_time)
        revealed: list[Revealed] = []
        full = ceil(self.window / summary.spread) * summary.spread
        scored: dict[int, list[ScoreBins]] = {}
        for score in summary.scored:
            scored.setdefault(score.window, []).append(score)
        for index, count in summary.predicted:
            found = self._count(index, count, summary, full, moment, scored.get(index, ()))
            if found:
                revealed.append(Revealed(found, None))
        if summary.outcomes and with_outcomes:
            revealed += self.update_outcomes(outcomes_of(summary))
        for index, count in summary.unlabelled:
            window = self._window(index, summary.first_event_time)
            self._expired += count
            if window is None:
                continue
            window.expired += count
            if window.settled:
                revealed.append(Revealed(self._settle(window), None))
        return revealed

    def update_outcomes(self, outcomes: Sequence["Placed"]) -> list[Revealed]:
        """The labelled predictions, in order, as :meth:`labelled` takes them (together:
        :meth:`labelled_many`); what each revealed."""
        records = [
            PredictionRecord(
                outcome.window,
                outcome.prediction_time,
                outcome.prediction,
                outcome.probabilities,
                Position(place.predictions_topic, place.partition, outcome.prediction_offset),
            )
            for outcome, place in outcomes
        ]
        for outcome, _ in outcomes:
            self._window(outcome.window, outcome.prediction_time)
        found = self.labelled_many(
            records,
            [outcome.label for outcome, _ in outcomes],
            [outcome.label_id for outcome, _ in outcomes],
            [outcome.label_time for outcome, _ in outcomes],
        )
        revealed: list[Revealed] = []
        for number, findings in found:
            outcome, place = outcomes[number]
            where = KafkaPosition(
                topic=place.labels_topic, partition=place.partition, offset=outcome.label_offset
            )
            revealed.append(Revealed(findings, where))
        return revealed

    def _count(
        self,
        index: int,
        count: int,
        summary: VersionSummary,
        full: int,
        moment: SummaryMoment,
        scores: Sequence[ScoreBins],
    ) -> PerformanceFindings:
        """Count ``count`` predictions into window ``index``, and their ``scores`` into its
        estimate; its report if that closes it."""
        self._predictions += count
        window = self._window(index, summary.first_event_time)
        if window is None:
            return PerformanceFindings()
        window.predictions += count
        window.first_time = min(window.first_time, summary.first_event_time)
        window.last_time = max(window.last_time, summary.last_event_time)
        self._estimate(window, scores)
        found = PerformanceFindings()
        if not window.closed and window.predictions >= full:
            window.closed = True
            found = self._close(window, moment)
        return found + self._settle_overflow()

    def _estimate(self, window: _Window, scores: Sequence[ScoreBins]) -> None:
        """Add the expected performance of the predictions of ``scores`` to the window's
        estimate, once the estimator is ready, from the first window opened after."""
        estimator, first = self._estimator, self._estimated_from
        if estimator is None or not estimator.ready or first is None or window.index < first:
            return
        positive = estimator.positive_class
        for bins in scores:
            places = np.arange(bins.first, bins.first + len(bins.counts))
            try:
                p_correct, p_positive = estimator.expect_scores(bin_scores(places), bins.prediction)
            except ValueError:  # a class the spec does not know
                continue
            window.estimate.add_counts(
                bins.counts,
                p_correct,
                p_positive,
                None if positive is None else bins.prediction == positive,
            )

    def _estimation_start(self) -> tuple[int, datetime | None]:
        """The first window opened from now on: the windows open now (or settled) have had
        predictions counted before the estimator was ready, and summaries do not say which."""
        seen = [*self._windows, *self._settled_windows]
        return (max(seen) + 1 if seen else 0), None

    def _window(self, index: int, time: datetime) -> _Window | None:
        """Window ``index``, opened if it is new; None if it was settled already."""
        window = self._windows.get(index)
        if window is None and index not in self._settled_windows:
            window = self._open(index, time)
        return window

    def _settle(self, window: _Window) -> PerformanceFindings:
        self._settled_windows[window.index] = None
        if len(self._settled_windows) > SETTLED_MEMORY:
            del self._settled_windows[next(iter(self._settled_windows))]
        return super()._settle(window)

    def _may_hold(self, index: int) -> bool:
        return True  # a label opens its window, whatever was counted

    def to_state(self) -> State:
        """:meth:`PerformanceMonitor.to_state`, and the windows settled lately."""
        state = super().to_state()
        state["settled_windows"] = list(self._settled_windows)
        return state

    @classmethod
    def from_state(cls, spec: ModelSpec, state: Mapping[str, Any]) -> Self:
        """The monitor :meth:`to_state` described, going on exactly where it was."""
        monitor = super().from_state(spec, state)
        settled = state.get("settled_windows", [])
        if not (isinstance(settled, list) and all(type(i) is int and i >= 0 for i in settled)):
            raise ValueError("state: settled_windows must be a list of window indices")
        monitor._settled_windows = dict.fromkeys(settled[-SETTLED_MEMORY:])
        return monitor
