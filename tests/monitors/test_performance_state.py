"""A performance monitor's state: saved mid-stream and restored, it goes on exactly alike."""

import contextlib
import copy
import dataclasses
import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest.mock import patch

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors import performance
from driftline.monitors.performance import (
    PerformanceFindings,
    PerformanceMonitor,
    PredictionRecord,
)
from driftline.monitors.positions import Position
from driftline.monitors.window_metrics import HitCounts, RealizedMetrics, UncertaintySummary
from driftline.schemas import (
    KafkaPosition,
    ModelSpec,
    PerformancePolicy,
    PredictionEvent,
    PredictionInterval,
    TaskType,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))
TASKS = ("binary", "multiclass", "regression")


def small_spec(task: str, window: int = 25, reference_labels: int = 40) -> ModelSpec:
    """A spec of the task with small windows and a short reference (past the policy's
    bounds, as the other performance tests do), so that a short stream goes through
    the reference, calibration, alarms and settled windows."""
    if task == "regression":
        spec = ModelSpec(model_id="m", model_version="1", task=TaskType.REGRESSION, features=[])
    else:
        binary = task == "binary"
        spec = ModelSpec(
            model_id="m",
            model_version="1",
            task=TaskType.CLASSIFICATION,
            classes=["no", "yes"] if binary else ["a", "b", "c"],
            features=[],
            performance=PerformancePolicy(positive_class="yes" if binary else None),
        )
    policy = spec.performance.model_copy(
        update={"window": window, "reference_labels": reference_labels}
    )
    return spec.model_copy(update={"performance": policy})


def new_monitor(spec: ModelSpec, arl: float = 400.0) -> PerformanceMonitor:
    monitor = PerformanceMonitor(spec, arl=arl)
    if monitor._estimator is not None:  # calibrated on the few reference labels
        monitor._estimator.min_reference = 10
        monitor._estimator.min_class_reference = 8
    return monitor


# A stream: predictions in batches, labels (some late, some never, some together after
# expect()), expiries of predictions never labelled; its error rate rises halfway.

Step = tuple[Any, ...]


def stream(task: str, seed: int, count: int = 600, window: int = 25) -> list[Step]:
    """The steps of a seeded random stream, as data: which call, with what."""
    rng = np.random.default_rng(seed)
    classes = ["no", "yes"] if task == "binary" else ["a", "b", "c"]
    steps: list[Step] = []
    pending: list[int] = []  # predictions neither labelled nor expired yet
    labels: dict[int, str | float] = {}
    made = 0
    while made < count:
        size = int(rng.integers(1, 16))
        events = []
        for number in range(made, made + size):
            event, label = _event(task, classes, number, count, rng)
            events.append(event)
            labels[number] = label
        positions = [_position(number, rng) for number in range(made, made + size)]
        if pending and rng.random() < 0.3:  # old predictions leave the join as these come
            gone = sorted(rng.choice(pending, size=min(len(pending), 3), replace=False).tolist())
            pending = [number for number in pending if number not in gone]
            leaving = sorted((int(rng.integers(0, size)), number // window) for number in gone)
            steps.append(("predicted_leaving", events, positions, leaving))
        else:
            steps.append(("predicted_many", events, positions))
        pending += range(made, made + size)
        made += size
        if pending and rng.random() < 0.8:  # labels land, the older ones first mostly
            taken = sorted(set(pending[: int(rng.integers(1, 24))]))
            if rng.random() < 0.4:
                taken = sorted(rng.choice(pending, size=min(6, len(pending)), replace=False))
            taken = [int(number) for number in taken if rng.random() < 0.9]
            pending = [number for number in pending if number not in taken]
            brought = [(number, labels[number], float(rng.exponential(30.0))) for number in taken]
            together = rng.random() < 0.6
            if together:
                steps.append(("expect", [(n, label) for n, label, _ in brought]))
            steps += [("labelled", n, label, delay) for n, label, delay in brought]
            if together:
                steps.append(("expect", []))
        if pending and rng.random() < 0.15:  # one waited out the retention
            number = pending.pop(0)
            steps.append(("unlabelled" if rng.random() < 0.5 else "unlabelled_in", number))
    return steps


def _event(
    task: str, classes: list[str], number: int, count: int, rng: np.random.Generator
) -> tuple[PredictionEvent, str | float]:
    """One prediction and its true label: wrong more often in the middle third, where a
    classifier's probabilities are flatter too."""
    shift = count // 3 <= number < 2 * count // 3
    time = START + timedelta(seconds=number + int(rng.integers(-2, 3)))
    if rng.random() < 0.2:
        time = time.astimezone(PLUS_TWO)  # the same instant, written in another zone
    fields: dict[str, Any] = {
        "model_id": "m",
        "model_version": "1",
        "event_id": f"e{number}",
        "event_time": time,
    }
    if task == "regression":
        truth = float(rng.normal())
        fields["prediction"] = truth + float(rng.normal(0.0, 2.5 if shift else 1.0))
        if rng.random() < 0.5:
            width = float(rng.exponential(1.0))
            fields["interval"] = PredictionInterval(lower=-width, upper=width)
        return PredictionEvent(**fields), truth
    weights = rng.dirichlet(np.full(len(classes), 4.0 if shift else 0.7))
    predicted = classes[int(np.argmax(weights))]
    right = rng.random() < float(weights.max()) * (0.7 if shift else 1.0)
    label = predicted if right else str(rng.choice([c for c in classes if c != predicted]))
    if rng.random() < 0.9:  # a few come without probabilities
        fields["probabilities"] = {c: float(p) for c, p in zip(classes, weights, strict=True)}
        if rng.random() < 0.5:
            fields["prediction"] = predicted
    else:
        fields["prediction"] = predicted
    return PredictionEvent(**fields), label


def _position(number: int, rng: np.random.Generator) -> Position | KafkaPosition | None:
    draw = rng.random()
    if draw < 0.1:
        return None
    if draw < 0.3:
        return KafkaPosition(topic="other", partition=1, offset=number)
    return Position("predictions", 0, 1_000 + number)


class Runner:
    """Runs steps on one monitor; what each returned, as plain comparable data."""

    def __init__(self, monitor: PerformanceMonitor, records: dict[int, PredictionRecord]) -> None:
        self.monitor = monitor
        self.records = records  # shared: every monitor makes the same records
        self.window = monitor.window

    def run(self, step: Step) -> object:
        monitor, kind = self.monitor, step[0]
        if kind == "predicted_many":
            _, events, positions = step
            out = []
            for event, (record, found) in zip(
                events, monitor.predicted_many(events, positions), strict=True
            ):
                self._keep(event, record)
                out.append((record, found))
            return out
        if kind == "predicted_leaving":
            _, events, positions, leaving = step
            records = monitor.records(events, positions)
            for event, record in zip(events, records, strict=True):
                self._keep(event, record)
            return (records, monitor.predicted_leaving(events, records, leaving))
        if kind == "expect":
            monitor.expect([(self.records[number], label) for number, label in step[1]])
            return monitor.expected
        if kind == "labelled":
            _, number, label, delay = step
            record = self.records[number]
            label_time = record.event_time + timedelta(seconds=delay)
            return monitor.labelled(record, label, event_id=f"l{number}", label_time=label_time)
        if kind == "unlabelled":
            return monitor.unlabelled(self.records[step[1]])
        if kind == "unlabelled_in":
            return monitor.unlabelled_in(self.records[step[1]].window)
        raise AssertionError(kind)

    def _keep(self, event: PredictionEvent, record: PredictionRecord) -> None:
        number = int(event.event_id.removeprefix("e"))
        if number in self.records:
            assert self.records[number] == record
        self.records[number] = record


def plain(value: object) -> object:
    """Findings, reports and records as plain data, times with their UTC offsets."""
    if isinstance(value, PerformanceFindings):
        return {
            "findings": [plain(f) for f in value.findings],
            "reports": [r.model_dump(mode="json") for r in value.reports],
            "resolved": [plain(r) for r in value.resolved],
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, KafkaPosition):
        return value.model_dump(mode="json")
    if isinstance(value, PredictionRecord):
        return value.to_payload()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def public(monitor: PerformanceMonitor) -> dict[str, object]:
    """What anyone may read of a monitor."""
    return {
        "predictions": monitor.predictions,
        "labelled_predictions": monitor.labelled_predictions,
        "label_coverage": monitor.label_coverage,
        "label_delays": monitor.label_delays,
        "reference_ready": monitor.reference_ready,
        "expected": monitor.expected,
        "last_estimate": monitor.last_estimate,
        "last_realized": monitor.last_realized,
        "arl": monitor.arl,
        "window": monitor.window,
    }


def round_trip(state: dict[str, Any], through: str) -> dict[str, Any]:
    if through == "orjson":
        loaded: dict[str, Any] = orjson.loads(orjson.dumps(state))
    else:
        loaded = json.loads(json.dumps(state))
    return loaded


def run_with_a_restart(
    task: str, seed: int, cut: float, through: str
) -> tuple[list[object], list[object], PerformanceMonitor, PerformanceMonitor]:
    """Feed a stream to a monitor; at the cut, restore a copy from its state; feed the
    rest to both. What each returned after the cut, and the two monitors."""
    spec = small_spec(task)
    steps = stream(task, seed)
    at = int(cut * len(steps))
    original = new_monitor(spec)
    records: dict[int, PredictionRecord] = {}
    first = Runner(original, records)
    with patch.object(performance, "MAX_OPEN_WINDOWS", 5):  # some settled early too
        for step in steps[:at]:
            first.run(step)
        state = original.to_state()
        restored = PerformanceMonitor.from_state(spec, round_trip(state, through))
        assert restored.to_state() == state
        assert public(restored) == public(original)
        second = Runner(restored, records)
        ours, theirs = [], []
        for step in steps[at:]:
            ours.append(first.run(step))
            theirs.append(second.run(step))
    return ours, theirs, original, restored


@settings(max_examples=40, deadline=None)
@given(
    task=st.sampled_from(TASKS),
    seed=st.integers(0, 2**32 - 1),
    cut=st.floats(0.0, 1.0),
    through=st.sampled_from(["json", "orjson"]),
)
def test_a_monitor_restored_mid_stream_goes_on_exactly_as_the_original(
    task: str, seed: int, cut: float, through: str
) -> None:
    ours, theirs, original, restored = run_with_a_restart(task, seed, cut, through)
    assert theirs == ours  # findings, reports and resolutions, dataclass by dataclass
    assert plain(theirs) == plain(ours)  # and their times in the same zones
    assert public(restored) == public(original)
    assert restored.to_state() == original.to_state()


@pytest.mark.parametrize("task", TASKS)
def test_the_stream_finds_alarms_and_reports_after_the_restart(task: str) -> None:
    """The property above is not vacuous: after a restart early on, the stream still
    finds realized alarms and their resolutions, settled reports and (for a
    classifier) estimates."""
    ours, theirs, original, _ = run_with_a_restart(task, seed=11, cut=0.3, through="json")
    assert theirs == ours
    found = [
        item
        for result in ours
        for item in (
            [result]
            if isinstance(result, PerformanceFindings)
            else [f for _, f in result]
            if isinstance(result, list)
            else [f for fs in result[1].values() for f in fs]
            if isinstance(result, tuple)
            else []
        )
    ]
    findings = [f for found_ in found for f in found_.findings]
    reports = [r for found_ in found for r in found_.reports]
    assert any(f.basis.value == "realized" for f in findings)
    assert any(found_.resolved for found_ in found)
    assert any(r.stage.value == "settled" for r in reports)
    assert original.reference_ready
    if task != "regression":
        assert original.last_estimate
        assert any(r.estimated for r in reports)


def test_a_state_taken_between_the_labels_of_one_expect_goes_on_exactly() -> None:
    """The errors announced by expect() and the outcomes worked out ahead for them are
    in the state: a monitor saved half-way through them brings the rest as the original."""
    spec = small_spec("binary")
    steps = stream("binary", seed=5)
    cuts, expecting = [], False
    for number, step in enumerate(steps):
        if step[0] == "expect":
            expecting = bool(step[1])
        elif expecting and step[0] == "labelled" and steps[number - 1][0] == "labelled":
            cuts.append(number)  # after a label of an expect(), before the next
    records: dict[int, PredictionRecord] = {}
    seen_ahead = False
    for at in cuts[len(cuts) // 2 :: 7]:
        original = new_monitor(spec)
        first = Runner(original, records)
        for step in steps[:at]:
            first.run(step)
        seen_ahead |= bool(original._outcomes)
        assert original.expected
        restored = PerformanceMonitor.from_state(spec, round_trip(original.to_state(), "json"))
        second = Runner(restored, records)
        for step in steps[at:]:
            assert plain(second.run(step)) == plain(first.run(step))
        assert restored.to_state() == original.to_state()
    assert seen_ahead


def test_the_state_of_a_new_monitor_round_trips() -> None:
    for task in TASKS:
        spec = small_spec(task)
        monitor = PerformanceMonitor(spec)
        state = monitor.to_state()
        assert PerformanceMonitor.from_state(spec, round_trip(state, "orjson")).to_state() == state


# Refusals.


@functools.cache
def state_mid_stream(task: str) -> tuple[ModelSpec, str]:
    """The spec and state (as JSON) of :func:`monitor_mid_stream`, made once per task."""
    spec, monitor = monitor_mid_stream(task)
    return spec, json.dumps(monitor.to_state())


def monitor_mid_stream(task: str) -> tuple[ModelSpec, PerformanceMonitor]:
    """A monitor past its reference, with open windows, an estimator and an error test."""
    spec = small_spec(task)
    monitor = new_monitor(spec)
    runner = Runner(monitor, {})
    steps = stream(task, seed=3)
    for number, step in enumerate(steps):
        runner.run(step)
        if number >= len(steps) * 2 // 3 and not monitor.expected:
            break
    assert monitor.reference_ready
    assert monitor._windows
    return spec, monitor


def damaged(state: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    """A deep copy of ``state`` with the item at ``path`` replaced (or deleted: ``DELETE``)."""
    state = copy.deepcopy(state)
    parent: Any = state
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return state


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("kind",), "ModelMonitor"),
        (("kind",), DELETE),
        (("version",), 2),
        (("version",), True),
        (("model",), ["m", "2"]),
        (("arl",), -1.0),
        (("predictions",), DELETE),
        (("predictions",), "12"),
        (("labelled",), -3),
        (("windows",), DELETE),
        (("windows",), {"0": {}}),
        (("windows", 0, "index"), "0"),
        (("windows", 0, "first_time"), "2026-01-01T00:00:00"),  # no zone
        (("windows", 0, "first_time"), "yesterday"),
        (("windows", 0, "delays"), "not base64!"),
        (("windows", 0, "delays"), [1.0, 2.0]),
        (("windows", 0, "closed"), 0),
        (("windows", 0, "realized"), DELETE),
        (("windows", 0, "realized", "metrics"), {}),
        (("windows", 0, "realized", "count"), 1.5),
        (("windows", 0, "checked", "right"), 10**9),
        (("windows", 0, "estimate", "kind"), "HitCounts"),
        (("windows", 0, "uncertainty", "values"), []),
        (("estimator",), {"kind": "ConfidenceEstimator"}),
        (("estimator",), 7),
        (("estimated_after",), 1_767_225_600),
        (("reference_errors",), None),
        (("reference_error",), None),
        (("error_test",), DELETE),
        (("error_test",), "cusum"),
        (("since_reference",), None),
        (("changes",), DELETE),
        (("changes", "times"), 1),
        (("changes", "times", "micros"), [[1, "x"]]),
        (("changes", "positions", "topics"), [3]),
        (("changes", "positions", "topic"), [99]),
        (("latched_quiet",), "yes"),
        (("estimate_latched",), None),
        (("delays",), DELETE),
        (("recent_errors",), 3.0),
        (("recent_errors", "bits"), "AAAA"),
        (("error_alarm",), {"test": "location"}),
        (("last_estimate",), {"accuracy": "high"}),
        (("last_realized",), []),
        (("coming",), ["1.0"]),
        (("outcomes",), [1]),
        (("outcomes",), [True]),  # an outcome for no error to come
    ],
)
@pytest.mark.parametrize("task", TASKS)
def test_a_damaged_state_is_refused_with_a_value_error(
    task: str, path: tuple[str | int, ...], value: object
) -> None:
    spec, saved = state_mid_stream(task)
    state = json.loads(saved)
    if task == "regression" and path[0] == "estimator" and value == 7:
        value = {"kind": "ConfidenceEstimator"}  # any estimator: a regressor has none
    if task == "regression" and path == ("recent_errors", "bits"):
        path = ("recent_errors",)  # a regressor's errors are doubles, not bits
    with pytest.raises(ValueError, match="state"):
        PerformanceMonitor.from_state(spec, damaged(state, path, value))


def paths(value: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every item of a state, nested ones too; of a list's items, the first
    and the last (the others are alike)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for number in sorted({0, len(value) - 1} if value else set()):
            yield (*prefix, number)
            yield from paths(value[number], (*prefix, number))


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("junk", [DELETE, None, "junk", -1, 1e308, True])
def test_any_field_damaged_anywhere_is_refused_with_a_value_error_or_read(
    task: str, junk: object
) -> None:
    """Every item of the state, at any depth, deleted or replaced: reading it back never
    raises anything but a ValueError."""
    spec, saved = state_mid_stream(task)
    state = json.loads(saved)
    for path in paths(state):
        try:
            damaged_state = damaged(state, path, junk)
        except TypeError:  # a list item cannot be deleted by a key of a list
            continue
        with contextlib.suppress(ValueError):
            PerformanceMonitor.from_state(spec, damaged_state)


def test_a_state_of_another_spec_or_not_a_mapping_is_refused() -> None:
    spec, monitor = monitor_mid_stream("binary")
    state = monitor.to_state()
    other = spec.model_copy(update={"model_version": "2"})
    with pytest.raises(ValueError, match="model"):
        PerformanceMonitor.from_state(other, state)
    with pytest.raises(ValueError, match="mapping"):
        PerformanceMonitor.from_state(spec, [state])  # type: ignore[arg-type]
    three = small_spec("multiclass")  # an estimator of other classes
    with pytest.raises(ValueError, match="state"):
        PerformanceMonitor.from_state(three, state)


# The parts.


@pytest.mark.parametrize(
    ("classes", "positive", "rows"),
    [
        (["no", "yes"], "yes", [("yes", "no", {"no": 0.7, "yes": 0.3}), ("yes", "yes", None)]),
        (["a", "b", "c"], None, [("a", "b", {"a": 0.2, "b": 0.5, "c": 0.3}), ("c", "c", None)]),
        (None, None, [(1.0, 1.5, None), (-2.0, 0.5, None)]),
    ],
)
def test_realized_metrics_load_the_state_and_go_on_alike(
    classes: list[str] | None, positive: str | None, rows: list[tuple[Any, Any, Any]]
) -> None:
    whole, first = RealizedMetrics(classes, positive), RealizedMetrics(classes, positive)
    for row in rows:
        whole.update(*row)
    first.update(*rows[0])
    resumed = RealizedMetrics(classes, positive)
    resumed.load_state(round_trip(first.to_state(), "orjson"))
    assert resumed.to_state() == first.to_state()
    resumed.update(*rows[1])
    assert resumed.values() == whole.values()
    assert resumed.to_state() == whole.to_state()


def test_hit_counts_and_an_uncertainty_summary_round_trip() -> None:
    hits = HitCounts("yes")
    for label, predicted in [("yes", "yes"), ("no", "yes"), ("yes", "no")]:
        hits.update(label, predicted)
    copy_ = HitCounts("yes")
    copy_.load_state(round_trip(hits.to_state(), "json"))
    assert (copy_.accuracy, copy_.f1, copy_.to_state()) == (hits.accuracy, hits.f1, hits.to_state())
    with pytest.raises(ValueError, match="state"):
        HitCounts(None).load_state(hits.to_state())  # positive counts without a positive class
    summary = UncertaintySummary()
    rng = np.random.default_rng(2)
    with patch("driftline.monitors.window_metrics.UNCERTAINTY_SAMPLE", 64):
        summary.update_many("margin", rng.random(150))
        resumed = UncertaintySummary.from_state(round_trip(summary.to_state(), "json"))
        more = rng.random(77)
        summary.update_many("margin", more)
        resumed.update_many("margin", more)
    assert resumed.values() == summary.values()
    assert resumed.to_state() == summary.to_state()
    summary.seal()
    sealed = UncertaintySummary.from_state(round_trip(summary.to_state(), "orjson"))
    assert sealed.values() == summary.values()
    state = summary.to_state()
    with pytest.raises(ValueError, match="state"):
        UncertaintySummary.from_state({**state, "values": {"margin": "AAAA"}})
