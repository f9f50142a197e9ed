"""Realized and estimated performance of one model version, without Kafka."""

from collections import deque
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors import performance
from driftline.monitors.estimation import ConfidenceEstimator
from driftline.monitors.performance import (
    PerformanceMonitor,
    PredictionRecord,
    _uncertainty_columns,
    _uncertainty_measures,
)
from driftline.schemas import (
    KafkaPosition,
    ModelSpec,
    PerformanceBasis,
    PredictionEvent,
    ReportStage,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def binary_spec(**performance: object) -> ModelSpec:
    return ModelSpec(
        model_id="m",
        model_version="1",
        task="classification",
        classes=["no", "yes"],
        features=[],
        performance=performance,
    )


def prediction(i: int, p_yes: float) -> PredictionEvent:
    return PredictionEvent(
        model_id="m",
        model_version="1",
        event_id=f"e{i}",
        event_time=START + timedelta(seconds=i),
        prediction="yes" if p_yes >= 0.5 else "no",
        probabilities={"yes": p_yes, "no": 1 - p_yes},
    )


def logistic_stream(
    n: int, shift_at: int, seed: int, before: float = 1.5, after: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated model's P(yes) and true labels; inputs crowd the boundary after ``shift_at``.

    P(y | x) does not change (covariate shift): the model stays calibrated,
    but more of its inputs are hard, so its accuracy falls.
    """
    rng = np.random.default_rng(seed)
    spread = np.where(np.arange(n) < shift_at, before, after)
    x = rng.normal(0.0, 1.0, n) * spread
    p_yes = 1.0 / (1.0 + np.exp(-3.0 * x))
    labels = rng.random(n) < p_yes
    return p_yes, labels


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_estimated_accuracy_alerts_after_a_covariate_shift_before_labels_can_confirm_it(seed):
    n, shift_at, delay, window = 20_000, 10_000, 4_000, 1_000
    monitor = PerformanceMonitor(binary_spec(window=window))
    p_yes, labels = logistic_stream(n, shift_at, seed)
    waiting: deque[tuple[int, PredictionRecord]] = deque()
    found = []
    labelled_after_shift = []  # at each estimated alert
    reports = []
    for i in range(n):
        record, result = monitor.predicted(prediction(i, float(p_yes[i])))
        waiting.append((i, record))
        while waiting and waiting[0][0] <= i - delay:
            j, old = waiting.popleft()
            label = "yes" if labels[j] else "no"
            time = START + timedelta(seconds=i)
            more = monitor.labelled(old, label, event_id=f"l{j}", label_time=time)
            found += [(f, i) for f in more.findings]
            reports += more.reports
        for finding in result.findings:
            found.append((finding, i))
            labelled_after_shift.append(max(0, i - delay - shift_at))
        reports += result.reports
    estimated = [(f, i) for f, i in found if f.basis is PerformanceBasis.ESTIMATED]
    assert len(estimated) == 1, [(f.basis, f.window, f.current) for f, _ in found]
    finding, at = estimated[0]
    assert shift_at < at <= shift_at + 2 * window
    assert finding.current < finding.threshold < finding.reference
    # No post-shift prediction had a label when the estimate raised the alarm.
    assert labelled_after_shift == [0]
    realized = [i for f, i in found if f.basis is PerformanceBasis.REALIZED]
    assert all(i > at for i in realized)

    settled = [r for r in reports if r.stage is ReportStage.SETTLED and r.estimated]
    errors = [abs(r.estimation_error["accuracy"]) for r in settled]
    assert len(settled) >= 10
    assert float(np.mean(errors)) <= 0.03
    before = [
        r.realized["accuracy"]
        for r in settled
        if r.last_event_time < START + timedelta(seconds=shift_at)
    ]
    after = [
        r.realized["accuracy"]
        for r in settled
        if r.first_event_time >= START + timedelta(seconds=shift_at)
    ]
    assert min(before) - max(after) > 0.1, "the shift must cost real accuracy"


@pytest.mark.parametrize("seed", [4, 5])
def test_a_stationary_calibrated_classifier_raises_no_performance_alert(seed):
    monitor = PerformanceMonitor(binary_spec(window=500))
    p_yes, labels = logistic_stream(30_000, 10**9, seed)
    found = []
    for i in range(len(p_yes)):
        record, result = monitor.predicted(prediction(i, float(p_yes[i])))
        found += result.findings
        label = "yes" if labels[i] else "no"
        found += monitor.labelled(
            record, label, event_id=f"l{i}", label_time=record.event_time
        ).findings
    assert monitor.reference_ready
    assert found == []


def test_a_regressors_absolute_error_rising_raises_a_realized_alert():
    spec = ModelSpec(model_id="m", model_version="1", task="regression", features=[])
    monitor = PerformanceMonitor(spec)
    rng = np.random.default_rng(8)
    found = []
    for i in range(8_000):
        truth = float(rng.normal())
        noise = rng.normal(0.0, 1.0 if i < 5_000 else 2.0)
        event = PredictionEvent(
            model_id="m",
            model_version="1",
            event_id=f"e{i}",
            event_time=START + timedelta(seconds=i),
            prediction=truth + float(noise),
        )
        record, _ = monitor.predicted(event)
        found += monitor.labelled(
            record, truth, event_id=f"l{i}", label_time=event.event_time
        ).findings
    [finding] = found
    assert (finding.basis, finding.metric) == (PerformanceBasis.REALIZED, "mae")
    assert int(finding.event_id.removeprefix("l")) >= 5_000
    assert finding.current > finding.reference


def test_a_window_is_reported_closed_then_settled_with_its_coverage_and_delays():
    monitor = PerformanceMonitor(binary_spec(window=50, reference_labels=100))
    records = []
    for i in range(50):
        record, result = monitor.predicted(prediction(i, 0.8))
        records.append(record)
    [closed] = result.reports
    assert (closed.stage, closed.window, closed.predictions, closed.labelled) == (
        ReportStage.CLOSED,
        0,
        50,
        0,
    )
    assert closed.uncertainty["margin_mean"] == pytest.approx(0.6)
    for k, record in enumerate(records[:40]):
        time = record.event_time + timedelta(seconds=k % 7)
        settled = monitor.labelled(record, "yes", event_id=f"l{k}", label_time=time).reports
        assert settled == []
    for record in records[40:49]:
        assert monitor.unlabelled(record).reports == []
    [report] = monitor.unlabelled(records[49]).reports
    assert (report.stage, report.labelled, report.expired) == (ReportStage.SETTLED, 40, 10)
    assert report.label_coverage == pytest.approx(0.8)
    delays = [k % 7 for k in range(40)]
    assert report.label_delay_seconds["max"] == max(delays)
    assert report.label_delay_seconds["mean"] == pytest.approx(sum(delays) / 40)
    assert report.realized["accuracy"] == 1.0
    assert monitor.label_coverage == pytest.approx(0.8)


def test_a_prediction_record_survives_its_json_payload():
    record = PredictionRecord(
        window=3,
        event_time=START,
        prediction="yes",
        probabilities={"yes": 0.7, "no": 0.3},
        position=KafkaPosition(topic="t", partition=1, offset=9),
    )
    assert PredictionRecord.from_payload(record.to_payload()) == record


def test_a_realized_fall_that_recovers_is_resolved_once_quiet_for_the_reference_labels():
    monitor = PerformanceMonitor(binary_spec(reference_labels=500))
    rng = np.random.default_rng(11)
    findings, resolved = [], []
    for i in range(12_000):
        record, _ = monitor.predicted(prediction(i, 0.8))
        accuracy = 0.7 if 4_000 <= i < 6_000 else 0.9
        label = "yes" if rng.random() < accuracy else "no"
        found = monitor.labelled(record, label, event_id=f"l{i}", label_time=record.event_time)
        findings += [int(f.event_id[1:]) for f in found.findings]
        resolved += [(r.basis, r.metric, int(r.event_id[1:])) for r in found.resolved]
    [opened] = findings
    assert 4_000 < opened < 4_600
    [(basis, metric, at)] = resolved
    assert (basis, metric) == (PerformanceBasis.REALIZED, "error_rate")
    assert 6_000 < at < 6_000 + 2_000  # 500 labels after the last alarm of the fall


def test_uncertainty_measures_of_many_events_are_those_of_each_event():
    rng = np.random.default_rng(4)
    events = []
    for i in range(300):
        classes = [f"c{k}" for k in range(int(rng.integers(1, 6)))]
        weights = rng.dirichlet(np.ones(len(classes)))
        weights[rng.random(len(classes)) < 0.2] = 0.0
        weights = weights / weights.sum() if weights.sum() else np.eye(len(classes))[0]
        events.append(
            PredictionEvent(
                model_id="m",
                model_version="1",
                event_id=f"e{i}",
                event_time=START,
                probabilities=None
                if i % 7 == 0
                else dict(zip(classes, weights.tolist(), strict=True)),
                interval=None if i % 3 else {"lower": float(i), "upper": float(i) + rng.random()},
            )
        )
    columns = _uncertainty_columns(events)
    expected: dict[str, list[tuple[int, float]]] = {}
    for number, event in enumerate(events):
        for name, value in _uncertainty_measures(event).items():
            expected.setdefault(name, []).append((number, value))
    assert set(columns) == set(expected)
    for name, (numbers, values) in columns.items():
        assert numbers.tolist() == [number for number, _ in expected[name]]
        assert values == pytest.approx([value for _, value in expected[name]], abs=1e-12)


def _window_state(monitor: PerformanceMonitor) -> list[tuple[object, ...]]:
    return [
        (
            index,
            window.predictions,
            window.labelled,
            window.expired,
            window.closed,
            window.first_time,
            window.last_time,
            window.estimate.count,
            window.checked.count,
            window.checked.right,
        )
        for index, window in sorted(monitor._windows.items())
    ]


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    window=st.integers(1, 6),
    max_open=st.integers(1, 4),
    batches=st.integers(1, 8),
)
def test_predicted_leaving_finds_what_predicting_and_expiring_in_turn_find(
    data: st.DataObject, window: int, max_open: int, batches: int
) -> None:
    """Counting a batch's predictions and expiries a window's run at a time changes nothing:
    the same findings, at the same events, and the same windows after, as in turn."""
    spec = binary_spec()  # small windows and a short reference, past the policy's bounds:
    policy = spec.performance.model_copy(update={"window": window, "reference_labels": 3})
    spec = spec.model_copy(update={"performance": policy})
    together, in_turn = PerformanceMonitor(spec), PerformanceMonitor(spec)
    for monitor in (together, in_turn):  # calibrated on the few reference labels
        assert monitor._estimator is not None
        monitor._estimator.min_reference = 2
    made: list[PredictionRecord] = []
    predicted = 0
    with patch.object(performance, "MAX_OPEN_WINDOWS", max_open):
        for _ in range(batches):
            size = data.draw(st.integers(1, 12), label="events")
            start, predicted = predicted, predicted + size
            events = [
                prediction(start + i, data.draw(st.sampled_from([0.1, 0.4, 0.6, 0.9])))
                for i in range(size)
            ]
            events = [  # some out of event-time order
                event.model_copy(
                    update={"event_time": event.event_time + timedelta(seconds=jitter)}
                )
                for event, jitter in zip(
                    events,
                    data.draw(st.lists(st.integers(-3, 3), min_size=size, max_size=size)),
                    strict=True,
                )
            ]
            highest = (start + size) // window + 1
            leaving = sorted(
                data.draw(
                    st.lists(
                        st.tuples(st.integers(0, size - 1), st.integers(0, highest)),
                        max_size=2 * size,
                    ),
                    label="leaving",
                ),
                key=lambda item: item[0],
            )
            records = together.records(events, [None] * size)
            assert records == in_turn.records(events, [None] * size)
            found = together.predicted_leaving(events, records, leaving)
            assert found == in_turn._predicted_leaving_in_turn(events, records, leaving)
            made += records
            labelling = data.draw(
                st.lists(st.sampled_from(range(len(made))), max_size=4, unique=True),
                label="labelled",
            )
            for at in labelling:  # each prediction is labelled once
                record = made[at]
                label = data.draw(st.sampled_from(["yes", "no"]))
                assert together.labelled(
                    record, label, event_id="l", label_time=record.event_time
                ) == in_turn.labelled(record, label, event_id="l", label_time=record.event_time)
            made = [record for at, record in enumerate(made) if at not in labelling]
            assert _window_state(together) == _window_state(in_turn)
            assert (together.predictions, together._expired) == (
                in_turn.predictions,
                in_turn._expired,
            )


def test_predicted_leaving_counts_in_turn_a_window_whose_count_is_off() -> None:
    """A window holding fewer predictions than its place says (settled early, then opened
    again) closes where its count says: event by event, as predicted_many closes it."""
    spec = binary_spec(window=50)
    together, in_turn = PerformanceMonitor(spec), PerformanceMonitor(spec)
    warmup = [prediction(i, 0.8) for i in range(30)]
    events = [prediction(30 + i, 0.8) for i in range(30)]
    for monitor in (together, in_turn):
        monitor._predicted_leaving_in_turn(warmup, monitor.records(warmup, [None] * 30), [])
        monitor._windows[0].predictions = 40  # ten more than its place: it fills at event 9
    found = together.predicted_leaving(events, together.records(events, [None] * 30), [])
    expected = in_turn._predicted_leaving_in_turn(events, in_turn.records(events, [None] * 30), [])
    assert found == expected
    assert sorted(found)[0] == 9


def f1_of(labels: np.ndarray, predicted: np.ndarray) -> float | None:
    """F1 of "yes", or None when there is no "yes" label nor prediction."""
    true_positives = int(np.sum(labels & predicted))
    wrong = int(np.sum(labels != predicted))
    return 2 * true_positives / (2 * true_positives + wrong) if true_positives + wrong else None


def overconfident_stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An overconfident model's P(yes) and the true labels: calibrating moves its estimate."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, n)
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * x))
    return 1.0 / (1.0 + np.exp(-6.0 * x)), labels


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_window_estimated_in_part_says_how_much_and_is_checked_on_those_predictions(seed):
    """Labels 995 predictions late: the reference's last label lands when the second window
    holds 995 predictions, so only its last 5 are estimated. The report says so, and the
    estimate is checked against the realized accuracy of those 5, not of the 1,000."""
    window, reference, delay, n = 1_000, 1_000, 995, 4_000
    monitor = PerformanceMonitor(binary_spec(window=window, reference_labels=reference))
    p_yes, labels = overconfident_stream(n, seed)
    predicted = p_yes >= 0.5
    right = predicted == labels
    records: list[PredictionRecord] = []
    reports = []
    for i in range(n):
        record, found = monitor.predicted(prediction(i, float(p_yes[i])))
        records.append(record)
        reports += found.reports
        if i >= delay:
            j = i - delay
            label = "yes" if labels[j] else "no"
            time = START + timedelta(seconds=i)
            reports += monitor.labelled(
                records[j], label, event_id=f"l{j}", label_time=time
            ).reports
    closed = {r.window: r for r in reports if r.stage is ReportStage.CLOSED}
    settled = {r.window: r for r in reports if r.stage is ReportStage.SETTLED}
    assert sorted(settled) == [0, 1, 2]

    # The same calibration, on the same reference: the estimate of each later prediction.
    estimator = ConfidenceEstimator(["no", "yes"], "yes")
    for j in range(reference):
        p = float(p_yes[j])
        label = "yes" if labels[j] else "no"
        estimator.learn({"yes": p, "no": 1 - p}, "yes" if p >= 0.5 else "no", label)
    estimator.fit()
    ready = reference + delay  # predictions counted before the reference's last label
    estimated = slice(ready, 2 * window)
    p_correct = [
        estimator.expect(
            {"yes": float(p), "no": 1 - float(p)}, "yes" if p >= 0.5 else "no"
        ).p_correct
        for p in p_yes[estimated]
    ]

    assert (closed[0].estimated_predictions, closed[0].estimated) == (0, {})
    assert (settled[0].estimated_predictions, settled[0].estimation_error) == (0, {})
    for report in (closed[1], settled[1]):
        assert report.estimated_predictions == 2 * window - ready
        assert report.partially_estimated
        assert report.estimated["accuracy"] == pytest.approx(np.mean(p_correct))
    partial = settled[1]
    assert partial.realized["accuracy"] == pytest.approx(right[window : 2 * window].mean())
    checked = right[estimated].mean()
    error = partial.estimated["accuracy"] - checked
    assert partial.estimation_error["accuracy"] == pytest.approx(error)
    # What the error was before: against the whole window, 995 of whose predictions the
    # estimate never saw.
    unfair = partial.estimated["accuracy"] - partial.realized["accuracy"]
    assert partial.estimation_error["accuracy"] != pytest.approx(unfair)
    f1 = f1_of(labels[estimated], predicted[estimated])
    if f1 is None:
        assert "f1" not in partial.estimation_error
    else:
        assert partial.estimation_error["f1"] == pytest.approx(partial.estimated["f1"] - f1)

    full = settled[2]
    assert full.estimated_predictions == full.predictions == window
    assert not full.partially_estimated
    for name in ("accuracy", "f1"):
        assert full.estimation_error[name] == pytest.approx(
            full.estimated[name] - full.realized[name]
        )


def test_a_prediction_counted_late_but_out_of_time_order_is_left_out_at_both_ends():
    """In the window in which the calibration becomes ready, a prediction counted after it
    but with an event time earlier than one counted before is not estimated: its label,
    which cannot tell when it was counted, is then left out of the check as well."""
    spec = binary_spec(window=50, reference_labels=100)
    monitor = PerformanceMonitor(spec)
    rng = np.random.default_rng(12)
    p_yes = rng.uniform(0.05, 0.95, 150)
    labels = rng.random(150) < p_yes
    records = [monitor.predicted(prediction(i, float(p_yes[i])))[0] for i in range(120)]
    for j in range(100):  # the reference: the estimator is ready with 20 of window 2 counted
        monitor.labelled(
            records[j], "yes" if labels[j] else "no", event_id=f"l{j}", label_time=START
        )
    assert monitor._estimator is not None
    assert monitor._estimator.ready
    late = {125, 140}  # counted after, made before the latest of the 20
    for i in range(120, 150):
        event = prediction(i, float(p_yes[i]))
        if i in late:
            event = event.model_copy(update={"event_time": START + timedelta(seconds=110)})
        record, found = monitor.predicted(event)
        records.append(record)
    [closed] = found.reports
    assert closed.estimated_predictions == 30 - len(late)
    reports = []
    for j in range(100, 150):
        label = "yes" if labels[j] else "no"
        reports += monitor.labelled(records[j], label, event_id=f"l{j}", label_time=START).reports
    [settled] = reports
    counted = [i for i in range(120, 150) if i not in late]
    right = (p_yes >= 0.5) == labels
    assert settled.estimated_predictions == len(counted)
    assert settled.estimation_error["accuracy"] == pytest.approx(
        settled.estimated["accuracy"] - right[counted].mean()
    )
    assert settled.realized["accuracy"] == pytest.approx(right[100:150].mean())


@settings(max_examples=150, deadline=None)
@given(data=st.data(), window=st.integers(2, 8), count=st.integers(4, 60))
def test_the_predictions_checked_on_their_labels_are_those_that_were_estimated(
    data: st.DataObject, window: int, count: int
) -> None:
    """Whatever the order of event times, of labels and of the calibration's readiness, a
    window's estimate is checked on exactly the labelled predictions it counted in."""
    spec = binary_spec()  # small windows and a short reference, past the policy's bounds:
    policy = spec.performance.model_copy(update={"window": window, "reference_labels": 3})
    monitor = PerformanceMonitor(spec.model_copy(update={"performance": policy}))
    assert monitor._estimator is not None
    monitor._estimator.min_reference = 2
    records: list[PredictionRecord] = []
    estimated: list[bool] = []  # whether each prediction was counted into its window's estimate
    labelled: dict[int, str] = {}
    reports = []
    pending: list[int] = []
    while len(records) < count or pending:
        if pending and (len(records) == count or data.draw(st.booleans(), label="label now")):
            at = pending.pop(data.draw(st.integers(0, len(pending) - 1), label="which"))
            label = data.draw(st.sampled_from(["yes", "no"]), label="label")
            labelled[at] = label
            found = monitor.labelled(records[at], label, event_id="l", label_time=START)
            reports += found.reports
            continue
        i = len(records)
        jitter = data.draw(st.integers(-4, 4), label="jitter")
        p_yes = data.draw(st.sampled_from([0.1, 0.4, 0.6, 0.9]), label="p_yes")
        event = prediction(i, p_yes).model_copy(
            update={"event_time": START + timedelta(seconds=i + jitter)}
        )
        if data.draw(st.integers(0, 4), label="no probabilities") == 0:
            event = event.model_copy(update={"probabilities": None})
        ready = monitor._estimator is not None and monitor._estimator.ready
        open_window = monitor._windows.get(i // window)
        before = open_window.estimate.count if open_window is not None else 0
        record, found = monitor.predicted(event)
        records.append(record)
        estimated.append(monitor._windows[record.window].estimate.count > before)
        assert ready or not estimated[-1], "estimated before the calibration was ready"
        if ready and event.probabilities:
            first = monitor._estimated_from
            assert first is not None
            if record.window > first:
                assert estimated[-1], "a prediction after the calibration's window left out"
        reports += found.reports
        pending.append(i)
    closed = {r.window: r for r in reports if r.stage is ReportStage.CLOSED}
    settled = {r.window: r for r in reports if r.stage is ReportStage.SETTLED}
    assert sorted(closed) == sorted(settled) == list(range(count // window))
    for index, report in settled.items():
        members = range(index * window, (index + 1) * window)
        assert report.estimated_predictions == sum(estimated[i] for i in members)
        assert closed[index].estimated_predictions == report.estimated_predictions
        checked = [i for i in members if estimated[i] and i in labelled]
        hits = [records[i].prediction == labelled[i] for i in checked]
        if not checked:
            assert "accuracy" not in report.estimation_error
            continue
        assert report.estimation_error["accuracy"] == pytest.approx(
            report.estimated["accuracy"] - float(np.mean(hits))
        )
        truth = np.array([labelled[i] == "yes" for i in checked])
        said = np.array([records[i].prediction == "yes" for i in checked])
        f1 = f1_of(truth, said)
        if f1 is None or "f1" not in report.estimated:  # undefined, realized or estimated
            assert "f1" not in report.estimation_error
        else:
            assert report.estimation_error["f1"] == pytest.approx(report.estimated["f1"] - f1)


def _labelled_in_turn(
    monitor: PerformanceMonitor,
    records: list[PredictionRecord],
    labels: list[str | float],
    times: list[datetime],
) -> list[tuple[int, object]]:
    """What :meth:`PerformanceMonitor.labelled` found, label by label, for those that found."""
    found = []
    for number, (record, label, time) in enumerate(zip(records, labels, times, strict=True)):
        one = monitor.labelled(record, label, event_id=f"l{number}", label_time=time)
        if one:
            found.append((number, one))
    return found


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    regressor=st.booleans(),
    window=st.integers(1, 8),
    reference=st.integers(2, 12),
    count=st.integers(1, 120),
)
def test_labels_taken_together_find_what_labels_taken_one_by_one_find(
    data: st.DataObject, regressor: bool, window: int, reference: int, count: int
) -> None:
    """labelled_many on labels in any order, in runs of any length: the same findings at
    the same labels (reports, alarms at a small budget, the latch lifting) and the same
    state after, as labelled one at a time."""
    if regressor:
        spec = ModelSpec(
            model_id="m", model_version="1", task="regression", features=[], performance={}
        )
    else:
        spec = binary_spec()
    policy = spec.performance.model_copy(update={"window": window, "reference_labels": reference})
    spec = spec.model_copy(update={"performance": policy})
    together, one_by_one = PerformanceMonitor(spec, arl=40), PerformanceMonitor(spec, arl=40)
    for monitor in (together, one_by_one):
        if monitor._estimator is not None:
            monitor._estimator.min_reference = 2
    records: list[PredictionRecord] = []
    for i in range(count):
        if regressor:
            value = data.draw(st.sampled_from([None, 0.0, 1.0, 2.5]), label="prediction")
            event = PredictionEvent(
                model_id="m",
                model_version="1",
                event_id=f"e{i}",
                event_time=START + timedelta(seconds=i),
                prediction=value,
            )
        else:
            event = prediction(i, data.draw(st.sampled_from([0.1, 0.4, 0.6, 0.9])))
        record, _ = together.predicted(event)
        assert one_by_one.predicted(event) == (record, _)
        records.append(record)
    order = data.draw(st.permutations(range(count)), label="order")
    labelled = order[: data.draw(st.integers(0, count), label="labelled")]
    # Errors that rise halfway, so that the small budget alarms, and fall again.
    labels: list[str | float] = []
    for place, at in enumerate(labelled):
        wrong = data.draw(st.booleans()) and (
            place > len(labelled) // 3 or data.draw(st.booleans())
        )
        if regressor:
            labels.append(data.draw(st.sampled_from([0.0, 1.0])) + (9.0 if wrong else 0.0))
        else:
            truth = records[at].prediction
            labels.append(("no" if truth == "yes" else "yes") if wrong else str(truth))
    taken = [records[at] for at in labelled]
    times = [
        record.event_time + timedelta(seconds=data.draw(st.integers(-2, 50))) for record in taken
    ]
    alone = _labelled_in_turn(one_by_one, taken, labels, times)
    found: list[tuple[int, object]] = []
    start = 0
    while start < len(taken):
        stop = start + data.draw(st.integers(1, len(taken) - start), label="run")
        found += [
            (start + number, one)
            for number, one in together.labelled_many(
                taken[start:stop],
                labels[start:stop],
                [f"l{number}" for number in range(start, stop)],
                times[start:stop],
            )
        ]
        start = stop
    assert found == alone
    assert together.to_state() == one_by_one.to_state()
