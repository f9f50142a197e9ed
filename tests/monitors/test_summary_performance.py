"""A classifier spread over four partitions: its performance measured from summaries, against
the single-process oracle (a performance monitor fed every prediction and label in order)."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from math import ceil

import numpy as np
import pytest

from driftline.monitors.estimation import score_bins
from driftline.monitors.performance import PerformanceMonitor
from driftline.monitors.summary_monitor import SummaryMonitor
from driftline.monitors.summary_performance import SummaryPerformance
from driftline.schemas import KafkaPosition, ModelSpec, PerformancePolicy, PredictionEvent
from driftline.schemas.summaries import Outcome, VersionSummary, WindowCount

TIME = datetime(2026, 1, 1, tzinfo=UTC)
PARTITIONS = 4
BATCH = 50
"""Predictions of one partition in one summary."""

SPEC = ModelSpec(
    model_id="hot",
    model_version="1",
    task="classification",
    classes=["no", "yes"],
    features=[],
    performance=PerformancePolicy(window=400, reference_labels=300),
)
SHARE = ceil(SPEC.performance.window / PARTITIONS)


def predictions(count: int, seed: int, *, worse_from: int | None = None):
    """Predictions, each with its partition, and its label (right 90 % of the time, then 70 %)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        wrong = rng.random() > (0.7 if worse_from is not None and i >= worse_from else 0.9)
        predicted = "yes" if rng.random() < 0.5 else "no"
        label = ("no" if predicted == "yes" else "yes") if wrong else predicted
        p = 0.8 if predicted == "yes" else 0.2
        event = PredictionEvent(
            model_id="hot",
            model_version="1",
            event_id=f"e{i}",
            event_time=TIME + timedelta(seconds=i),
            prediction=predicted,
            probabilities={"yes": p, "no": 1 - p},
        )
        rows.append((event, int(rng.integers(PARTITIONS)), label))
    return rows


def summaries(rows, *, labelled: bool = True, labelled_until: int | None = None):
    """What the first stages send: per partition, a summary of each batch of predictions that
    joins the labels of the batch before it (labels come one batch late); with the
    predictions' scores. ``labelled_until``: only the predictions before that number get a
    label (as event ids are numbered)."""
    by_partition: dict[int, list] = {p: [] for p in range(PARTITIONS)}
    for row in rows:
        by_partition[row[1]].append(row)
    sent = []
    for partition, own in by_partition.items():
        waiting: list[Outcome] = []
        for start in range(0, len(own), BATCH):
            batch = own[start : start + BATCH]
            windows = Counter((start + n) // SHARE for n in range(len(batch)))
            times = [event.event_time for event, _, _ in batch]
            sent.append(
                VersionSummary(
                    model_id="hot",
                    model_version="1",
                    source=KafkaPosition(topic="predictions", partition=partition, offset=start),
                    last_offset=start + len(batch) - 1,
                    events=len(batch),
                    checked=0,
                    first_event_time=min(times),
                    last_event_time=max(times),
                    last_event_id=batch[-1][0].event_id,
                    spread=PARTITIONS,
                    predicted=[WindowCount(w, c) for w, c in sorted(windows.items())],
                    outcomes=waiting,
                    scored=score_bins(
                        [(start + n) // SHARE for n in range(len(batch))],
                        [event.prediction for event, _, _ in batch],
                        [event.probabilities for event, _, _ in batch],
                        SPEC.positive_class,
                    ),
                )
            )
            waiting = [
                Outcome(
                    (start + n) // SHARE,
                    event.event_time,
                    event.prediction,
                    event.probabilities,
                    start + n,
                    label,
                    f"l-{event.event_id}",
                    event.event_time + timedelta(seconds=5),
                    start + n,
                )
                for n, (event, _, label) in enumerate(batch)
                if labelled
                and (
                    labelled_until is None or int(event.event_id.removeprefix("e")) < labelled_until
                )
            ]
        if waiting:  # the last batch's labels, in a summary of labels
            last = waiting[-1]
            sent.append(
                VersionSummary(
                    model_id="hot",
                    model_version="1",
                    source=KafkaPosition(topic="labels", partition=partition, offset=0),
                    last_offset=len(waiting),
                    events=0,
                    checked=0,
                    first_event_time=waiting[0].label_time,
                    last_event_time=last.label_time,
                    last_event_id=last.label_id,
                    spread=PARTITIONS,
                    outcomes=waiting,
                )
            )
    return sorted(sent, key=lambda summary: summary.last_event_time)


def realized_alarms(found):
    return [f for each in found for f in each.findings.findings if f.basis.value == "realized"]


def oracle_alarm(rows):
    """The label at which one process, seeing every prediction and its label in order, alarms."""
    monitor = PerformanceMonitor(SPEC)
    for number, (event, _, label) in enumerate(rows):
        record, _ = monitor.predicted(event)
        found = monitor.labelled(record, label, event_id=f"l-{event.event_id}", label_time=TIME)
        if found.findings:
            return number
    return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rising_error_rate_is_alarmed_within_a_round_of_the_oracle(seed):
    rows = predictions(6_000, seed, worse_from=3_000)
    monitor = SummaryPerformance(SPEC)
    alarm_at = None
    for summary in summaries(rows):
        alarms = realized_alarms(monitor.update_summary(summary))
        if alarms and alarm_at is None:
            alarm_at = int(alarms[0].event_id.removeprefix("l-e"))
            change = alarms[0].change_position
    oracle = oracle_alarm(rows)
    assert oracle is not None
    assert alarm_at is not None
    # Labels come a batch late, and summaries in the order of their events' times.
    round_of_summaries = 2 * PARTITIONS * BATCH
    assert oracle - round_of_summaries <= alarm_at <= oracle + round_of_summaries
    assert alarm_at > 3_000 - round_of_summaries
    assert change is not None
    assert change.topic == "predictions"


def test_nothing_alarms_while_the_error_rate_holds():
    monitor = SummaryPerformance(SPEC)
    found = [f for s in summaries(predictions(8_000, 4)) for f in monitor.update_summary(s)]
    assert not realized_alarms(found)
    assert monitor.reference_ready


def test_every_window_closes_with_a_share_of_each_partition_and_settles_once_labelled():
    rows = predictions(4_000, 5)
    monitor = SummaryPerformance(SPEC)
    reports = [
        report
        for summary in summaries(rows)
        for each in monitor.update_summary(summary)
        for report in each.findings.reports
    ]
    settled = {r.window: r for r in reports if r.stage.value == "settled"}
    closed = {r.window: r for r in reports if r.stage.value == "closed"}
    per_partition = Counter(partition for _, partition, _ in rows)
    full = min(per_partition.values()) // SHARE  # windows every partition filled
    assert full >= 2
    for window in range(full):
        assert closed[window].predictions == SHARE * PARTITIONS
        assert settled[window].labelled == settled[window].predictions == SHARE * PARTITIONS
        assert settled[window].realized["accuracy"] == pytest.approx(0.9, abs=0.05)
    assert monitor.labelled_predictions == len(rows)
    assert monitor.predictions == len(rows)


def test_labels_that_overtake_their_predictions_open_the_window_and_are_counted_in_it():
    rows = predictions(2_000, 6)
    sent = summaries(rows)
    # Every summary of labels first, then the counts: the window is opened by its labels.
    reordered = [s for s in sent if s.outcomes] + [s for s in sent if not s.outcomes]
    monitor = SummaryPerformance(SPEC)
    reports = [
        r for s in reordered for each in monitor.update_summary(s) for r in each.findings.reports
    ]
    settled = [r for r in reports if r.stage.value == "settled"]
    assert settled
    assert all(r.labelled == r.predictions for r in settled)


def test_unlabelled_predictions_settle_their_window():
    rows = predictions(1_000, 7)
    monitor = SummaryPerformance(SPEC)
    for summary in summaries(rows, labelled=False):
        monitor.update_summary(summary)
    assert monitor.labelled_predictions == 0
    partition = rows[0][1]
    count = sum(1 for _, p, _ in rows if p == partition)
    gone = VersionSummary(
        model_id="hot",
        model_version="1",
        source=KafkaPosition(topic="labels", partition=partition, offset=0),
        last_offset=0,
        events=0,
        checked=0,
        first_event_time=TIME,
        last_event_time=TIME,
        last_event_id="l",
        spread=PARTITIONS,
        unlabelled=[WindowCount(0, min(count, SHARE))],
    )
    monitor.update_summary(gone)
    assert monitor.to_state()["expired"] == min(count, SHARE)


def test_a_state_taken_midway_goes_on_exactly():
    rows = predictions(5_000, 8, worse_from=2_500)
    sent = summaries(rows)
    whole = SummaryPerformance(SPEC)
    halves = SummaryPerformance(SPEC)
    for number, summary in enumerate(sent):
        expected = whole.update_summary(summary)
        if number == len(sent) // 2:
            halves = SummaryPerformance.from_state(SPEC, json.loads(json.dumps(halves.to_state())))
        assert halves.update_summary(summary) == expected
    assert halves.to_state() == whole.to_state()


def test_a_window_a_label_opened_before_its_count_survives_a_state_round_trip():
    sent = summaries(predictions(2_000, 9))
    labels_only = [s for s in sent if not s.events]  # each partition's last labels
    early = labels_only[:3] + [s for s in sent if s.events]
    monitor = SummaryPerformance(SPEC)
    for summary in early[:3]:
        monitor.update_summary(summary)
    state = monitor.to_state()
    assert any(window["predictions"] == 0 for window in state["windows"])
    copy = SummaryPerformance.from_state(SPEC, json.loads(json.dumps(state)))
    for summary in early[3:]:
        assert copy.update_summary(summary) == monitor.update_summary(summary)
    with pytest.raises(ValueError, match="predictions"):
        PerformanceMonitor.from_state(SPEC, {**state, "kind": "PerformanceMonitor"})


def test_a_summary_monitor_takes_the_labels_of_every_partition_in_the_order_of_their_times():
    monitor = SummaryMonitor(SPEC.model_copy(update={"features": []}))

    def labels(partition: int, second: int) -> VersionSummary:
        time = TIME + timedelta(seconds=second)
        outcome = Outcome(0, TIME, "yes", None, 0, "yes", f"l{second}", time, second)
        return VersionSummary(
            model_id="hot",
            model_version="1",
            source=KafkaPosition(topic="labels", partition=partition, offset=second),
            last_offset=second,
            events=0,
            checked=0,
            first_event_time=time,
            last_event_time=time,
            last_event_id=f"l{second}",
            spread=2,
            outcomes=[outcome],
        )

    # Partition 0's labels far ahead of partition 1's: held until partition 1 catches up.
    assert monitor.take(labels(0, 500)) == []
    assert monitor.take(labels(0, 600)) == []
    taken = monitor.take(labels(1, 100))
    assert [t.summary.last_event_id for t in taken or []] == ["l100"]
    taken = monitor.take(labels(1, 700))
    assert [t.summary.last_event_id for t in taken or []] == ["l500", "l600"]
    assert monitor.performance.labelled_predictions == 3
    assert [t.summary.last_event_id for t in monitor.flush()] == ["l700"]


def test_labels_that_came_before_their_predictions_are_taken_in_the_order_of_their_times():
    monitor = SummaryMonitor(SPEC.model_copy(update={"features": []}))

    def summary(
        topic: str, partition: int, second: int, events: int = 0, labelled: bool = True
    ) -> VersionSummary:
        time = TIME + timedelta(seconds=second)
        label_time = time if topic == "labels" else TIME + timedelta(seconds=900)
        outcome = Outcome(0, TIME, "yes", None, 0, "yes", f"l{second}", label_time, second)
        return VersionSummary(
            model_id="hot",
            model_version="1",
            source=KafkaPosition(topic=topic, partition=partition, offset=second),
            last_offset=second,
            events=events,
            checked=0,
            first_event_time=time,
            last_event_time=time,
            last_event_id=f"e{second}",
            spread=2,
            predicted=[WindowCount(0, events)] if events else [],
            outcomes=[outcome] if labelled else [],
        )

    # A prediction whose label (of second 900) came first, and waited for it in the join.
    monitor.take(summary("predictions", 0, 50, events=1))
    monitor.take(summary("predictions", 1, 60, events=1))
    monitor.take(summary("predictions", 0, 70, events=1, labelled=False))  # lets 60 go
    assert monitor.performance.labelled_predictions == 0  # the other labels are not there yet
    monitor.take(summary("labels", 0, 100))
    monitor.take(summary("labels", 1, 200))
    monitor.take(summary("labels", 0, 1_000))
    monitor.take(summary("labels", 1, 1_000))
    monitor.flush()
    assert monitor.performance.label_delays == [100.0, 200.0, 900.0, 900.0, 1_000.0, 1_000.0]
    state = json.loads(json.dumps(monitor.to_state()))
    assert SummaryMonitor.from_state(state).to_state() == state


def covariate_shift(count: int, shift_at: int, seed: int):
    """A calibrated classifier whose inputs crowd its decision boundary from ``shift_at`` on:
    its accuracy falls, and its probabilities show it (each with its partition and label)."""
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(count) < shift_at, 1.5, 0.3)
    p_yes = 1.0 / (1.0 + np.exp(-3.0 * rng.normal(0.0, 1.0, count) * spread))
    truths = rng.random(count) < p_yes
    rows = []
    for i in range(count):
        p = float(p_yes[i])
        event = PredictionEvent(
            model_id="hot",
            model_version="1",
            event_id=f"e{i}",
            event_time=TIME + timedelta(seconds=i),
            prediction="yes" if p >= 0.5 else "no",
            probabilities={"yes": p, "no": 1 - p},
        )
        rows.append((event, int(rng.integers(PARTITIONS)), "yes" if truths[i] else "no"))
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_the_estimated_accuracy_follows_a_covariate_shift_before_any_label_as_the_oracle_does(
    seed,
):
    """Labels for the reference only: the windows' estimated accuracy, from the scores the
    summaries carry in bins, is the oracle's from each prediction's probabilities, and the
    estimated alarm comes at the same window."""
    rows = covariate_shift(8_000, shift_at=4_000, seed=seed)
    reference = SPEC.performance.reference_labels
    oracle = PerformanceMonitor(SPEC)
    truth: dict[int, float] = {}
    oracle_alarms = []
    for number, (event, _, label) in enumerate(rows):
        record, found = oracle.predicted(event)
        if number < reference:
            found += oracle.labelled(record, label, event_id=f"l-{event.event_id}", label_time=TIME)
        truth |= {r.window: r.estimated["accuracy"] for r in found.reports if r.estimated}
        oracle_alarms += [f.window for f in found.findings if f.basis.value == "estimated"]
    monitor = SummaryPerformance(SPEC)
    estimated: dict[int, float] = {}
    alarms = []
    for summary in summaries(rows, labelled_until=reference):
        for each in monitor.update_summary(summary):
            found = each.findings
            estimated |= {r.window: r.estimated["accuracy"] for r in found.reports if r.estimated}
            alarms += [f.window for f in found.findings if f.basis.value == "estimated"]
    assert monitor.reference_ready
    size = SPEC.performance.window
    both = sorted(set(truth) & set(estimated))
    assert len(both) >= 15  # every full window after the first few
    for window in both:
        # Read in bins of 1/200 of a score. A spread window holds each partition's share
        # of a window, and partitions fill theirs at their own pace: near the shift, the
        # two windows hold different events.
        if (window + 1) * size < 4_000 - size or window * size > 4_000 + size:
            assert estimated[window] == pytest.approx(truth[window], abs=0.015), window
    before = [estimated[w] for w in both if (w + 1) * size <= 4_000 - size]
    after = [estimated[w] for w in both if w * size >= 4_000 + size]
    assert min(before) > max(after) + 0.1
    assert oracle_alarms
    assert alarms
    assert abs(alarms[0] - oracle_alarms[0]) <= 1, (alarms, oracle_alarms)


def test_a_window_is_estimated_only_when_opened_once_the_estimator_is_ready():
    """Its estimate and its check against the labels are of the same predictions: all of a
    window opened after the reference's last label, none of one opened before."""
    rows = covariate_shift(4_000, shift_at=4_000, seed=3)
    monitor = SummaryPerformance(SPEC)
    reports = [
        r
        for summary in summaries(rows)
        for each in monitor.update_summary(summary)
        for r in each.findings.reports
        if r.stage.value == "settled"
    ]
    first = monitor._estimated_from
    assert first is not None
    assert first > 0
    for report in reports:
        if report.window < first:
            assert report.estimated_predictions == 0
            assert not report.estimated
        elif report.predictions == SPEC.performance.window:
            assert report.estimated_predictions == report.predictions
            assert report.estimation_error["accuracy"] == pytest.approx(0.0, abs=0.06)
