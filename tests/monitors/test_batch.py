"""The batch path finds exactly what the event-by-event path finds, wherever batches end."""

import functools
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.batch import BatchWatch, counted_events
from driftline.monitors.findings import prediction_value
from driftline.monitors.model import ModelFindings, ModelMonitor
from driftline.monitors.quality import DataQualityMonitor
from driftline.monitors.uncertainty import uncertainty_of
from driftline.schemas import FeatureEvent, FeatureSpec, KafkaPosition, ModelSpec, PredictionEvent

START = datetime(2026, 1, 1, tzinfo=UTC)
LENGTH = 4_000

SPEC = ModelSpec(
    model_id="m",
    model_version="1",
    task="classification",
    classes=["a", "b", "c"],
    features=[
        FeatureSpec(name="x", kind="numeric", minimum=-6, maximum=6),
        FeatureSpec(name="y", kind="numeric", nullable=True, max_missing_rate=0.05),
        FeatureSpec(name="z", kind="numeric"),
        FeatureSpec(name="k", kind="categorical", categories=["p", "q", "r", "s"]),
        FeatureSpec(name="b", kind="boolean"),
    ],
    quality_window=100,
    drift={"warmup_events": 400},
    alerts={"resolve_after_events": 150},
)


def stream(seed: int) -> list[PredictionEvent | FeatureEvent]:
    """Drifts that come and go, in location, scale, shares and a boolean; bad values; gaps."""
    rng = random.Random(seed)
    events: list[PredictionEvent | FeatureEvent] = []
    for i in range(LENGTH):
        drifting = 1_200 <= i < 2_000 or 2_600 <= i < 2_900
        features: dict[str, float | str | bool | None] = {
            "x": rng.gauss(1.2 if drifting else 0.0, 1.0),
            "y": rng.gauss(0.0, 2.0 if drifting and seed % 2 else 1.0),
            "z": float(rng.randint(0, 3)),  # ties
            "k": rng.choices("pqrs", [0.4, 0.2, 0.2, 0.2] if drifting else [0.1, 0.2, 0.3, 0.4])[0],
            "b": rng.random() < (0.75 if drifting else 0.5),
        }
        if rng.random() < 0.03:
            features["y"] = None
        if 3_100 <= i < 3_300 and rng.random() < 0.4:
            features["x"] = rng.choice([9.0, "nine", True, None])
        if rng.random() < 0.01:
            del features["z"]
        if rng.random() < 0.005:
            features["k"] = "unheard-of"
        if rng.random() < 0.003:
            features["extra"] = 1.0
        probabilities = rng.choice(
            [{"a": 0.6, "b": 0.3, "c": 0.1}, {"a": 0.2, "b": 0.3, "c": 0.5}]
            if not drifting
            else [{"a": 0.4, "b": 0.35, "c": 0.25}]
        )
        time = START + timedelta(seconds=i)
        if rng.random() < 0.05:
            events.append(
                FeatureEvent(
                    model_id="m",
                    model_version="1",
                    event_id=f"e{i}",
                    event_time=time,
                    prediction_id=f"p{i}",
                    features=features,
                )
            )
        else:
            events.append(
                PredictionEvent(
                    model_id="m",
                    model_version="1",
                    event_id=f"e{i}",
                    event_time=time,
                    features=None if rng.random() < 0.02 else features,
                    prediction=max(probabilities, key=probabilities.__getitem__),
                    probabilities=probabilities,
                )
            )
    return events


def positions() -> list[KafkaPosition]:
    return [KafkaPosition(topic="predictions", partition=0, offset=i) for i in range(LENGTH)]


def seen(found: ModelFindings) -> tuple[object, ...]:
    """Everything a finding says, comparable."""
    return (
        found.drifts,
        [(d.reference, d.current, d.distances) for d in found.drifts + found.repeats],
        found.quality,
        found.repeats,
        found.resolved,
    )


@functools.cache
def one_by_one(seed: int) -> tuple[dict[int, tuple[object, ...]], list[tuple[bool, ...]], str]:
    """Findings, data-quality alarming after each event, and final state, event by event."""
    monitor = ModelMonitor(SPEC)
    checks = list(monitor._quality.alarming_checks())
    findings: dict[int, tuple[object, ...]] = {}
    alarming: list[tuple[bool, ...]] = []
    for index, (event, position) in enumerate(zip(stream(seed), positions(), strict=True)):
        found = monitor.update(event, position)
        if found.drifts or found.quality or found.repeats or found.resolved:
            findings[index] = seen(found)
        alarming.append(tuple(monitor.quality_alarming(f, c) for f, c in checks))
    return findings, alarming, json.dumps(monitor.to_state(), sort_keys=True)


def test_the_streams_exercise_alarms_repeats_resolutions_and_data_quality():
    findings, alarming, _ = one_by_one(0)
    everything = list(findings.values())
    assert sum(len(drifts) for drifts, *_ in everything) >= 2
    assert sum(len(repeats) for *_, repeats, _ in everything) >= 2
    assert sum(len(resolved) for *_, resolved in everything) >= 2
    assert sum(len(quality) for _, _, quality, *_ in everything) >= 1
    assert any(any(states) for states in alarming)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.sampled_from([0, 1]),
    sizes=st.lists(st.sampled_from([1, 2, 15, 16, 17, 99, 256, 700, 2_500]), min_size=1),
)
def test_batch_boundaries_change_no_finding_no_alarming_state_and_no_state(seed, sizes):
    expected, alarming, state = one_by_one(seed)
    events, where = stream(seed), positions()
    monitor = ModelMonitor(SPEC)
    checks = list(monitor._quality.alarming_checks())
    found: dict[int, tuple[object, ...]] = {}
    states: list[tuple[bool, ...]] = []
    start, turn = 0, 0
    while start < LENGTH:
        size = sizes[turn % len(sizes)]
        batch = monitor.update_batch(events[start : start + size], where[start : start + size])
        for index, findings in batch.findings.items():
            found[start + index] = seen(findings)
        for index in range(len(events[start : start + size])):
            states.append(tuple(batch.quality_alarming(index)(f, c) for f, c in checks))
        start, turn = start + size, turn + 1
    assert found == expected
    assert states == alarming
    assert json.dumps(monitor.to_state(), sort_keys=True) == state


def test_a_batch_refuses_events_of_another_model_version():
    monitor = ModelMonitor(SPEC)
    other = PredictionEvent(
        model_id="m", model_version="2", event_id="e", event_time=START, prediction="a"
    )
    with pytest.raises(ValueError, match="fed to the monitor of m/1"):
        monitor.update_batch([*stream(0)[:20], other])


def version(number: int) -> ModelSpec:
    return SPEC.model_copy(update={"model_version": str(number)})


@functools.cache
def versioned(number: int, seed: int) -> list[PredictionEvent | FeatureEvent]:
    return [e.model_copy(update={"model_version": str(number)}) for e in stream(seed)]


@functools.cache
def alone(number: int, seed: int) -> tuple[dict[int, tuple[object, ...]], str]:
    """Findings and final state of one version's monitor, event by event."""
    monitor = ModelMonitor(version(number))
    findings: dict[int, tuple[object, ...]] = {}
    for index, (event, position) in enumerate(
        zip(versioned(number, seed), positions(), strict=True)
    ):
        found = monitor.update(event, position)
        if found.drifts or found.quality or found.repeats or found.resolved:
            findings[index] = seen(found)
    return findings, json.dumps(monitor.to_state(), sort_keys=True)


@settings(max_examples=8, deadline=None)
@given(
    sizes=st.lists(
        st.lists(st.sampled_from([1, 3, 4, 15, 16, 17, 99, 256, 700]), min_size=1, max_size=4),
        min_size=3,
        max_size=3,
    )
)
def test_monitors_updated_together_find_what_each_finds_alone(sizes):
    # Their numeric tests run side by side, with batches of different lengths and
    # detectors at different places of their blocks; each must end as if alone.
    seeds = [0, 1, 0]
    monitors = [ModelMonitor(version(number)) for number in range(3)]
    streams = [versioned(number, seed) for number, seed in enumerate(seeds)]
    where = positions()
    starts = [0, 0, 0]
    found: list[dict[int, tuple[object, ...]]] = [{}, {}, {}]
    turn = 0
    while any(start < LENGTH for start in starts):
        chosen = [number for number in range(3) if starts[number] < LENGTH]
        batches = []
        for number in chosen:
            size = sizes[number][turn % len(sizes[number])]
            begin = starts[number]
            batches.append(
                (
                    monitors[number],
                    streams[number][begin : begin + size],
                    where[begin : begin + size],
                )
            )
        for number, (_, events, _), result in zip(
            chosen, batches, ModelMonitor.update_batches(batches), strict=True
        ):
            assert not isinstance(result, Exception)
            for index, findings in result.findings.items():
                found[number][starts[number] + index] = seen(findings)
            starts[number] += len(events)
        turn += 1
    for number, seed in enumerate(seeds):
        expected, state = alone(number, seed)
        assert found[number] == expected
        assert json.dumps(monitors[number].to_state(), sort_keys=True) == state


def test_a_batch_that_fails_leaves_the_others_updated(monkeypatch):
    good, bad = ModelMonitor(version(0)), ModelMonitor(version(1))
    events = versioned(0, 0)[:500]
    results = ModelMonitor.update_batches([(good, events, None), (bad, events, None)])
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], ValueError)  # events of another version
    assert good.events == 500
    with pytest.raises(ValueError, match="a monitor of its own"):
        ModelMonitor.update_batches([(good, events, None), (good, events, None)])
    # Past their warm-ups, their drift tests run side by side: a bug in one spares the other.
    bad.update_batch(versioned(1, 0)[:500])
    original = DataQualityMonitor.update_many

    def update_many(self, batch):
        if self.spec.model_version == "1":
            raise RuntimeError("a bug")
        return original(self, batch)

    monkeypatch.setattr(DataQualityMonitor, "update_many", update_many)
    results = ModelMonitor.update_batches(
        [(good, versioned(0, 0)[500:600], None), (bad, versioned(1, 0)[500:600], None)]
    )
    assert not isinstance(results[0], Exception)
    assert isinstance(results[1], RuntimeError)
    assert (good.events, bad.events) == (600, 500)


def test_a_latch_that_fails_fails_its_own_batch_only(monkeypatch):
    # The numeric subjects' latches of both batches run in shared rounds; one that
    # raises at an alarm takes its batch down, and the other finds what it finds alone.
    good, bad, alone_ = (ModelMonitor(version(number)) for number in (0, 1, 0))
    for monitor in (good, bad, alone_):
        number = int(monitor.spec.model_version)
        monitor.update_batch(versioned(number, 0)[:1_000])
    expected = alone_.update_batch(versioned(0, 0)[1_000:2_000])
    original = BatchWatch._alarm

    def alarm(self, order, subject, j, repeat):
        if self.monitor.spec.model_version == "1":
            raise RuntimeError("a bug")
        return original(self, order, subject, j, repeat)

    monkeypatch.setattr(BatchWatch, "_alarm", alarm)
    results = ModelMonitor.update_batches(
        [(good, versioned(0, 0)[1_000:2_000], None), (bad, versioned(1, 0)[1_000:2_000], None)]
    )
    assert isinstance(results[1], RuntimeError)
    assert not isinstance(results[0], Exception)
    assert results[0].findings
    found = {index: seen(findings) for index, findings in results[0].findings.items()}
    assert found == {index: seen(findings) for index, findings in expected.findings.items()}
    assert json.dumps(good.to_state(), sort_keys=True) == json.dumps(
        alone_.to_state(), sort_keys=True
    )


predictions_of_any_shape = st.builds(
    PredictionEvent,
    model_id=st.just("m"),
    model_version=st.just("1"),
    event_id=st.just("e"),
    event_time=st.just(START),
    features=st.none() | st.just({"x": 1.0}),
    prediction=st.none() | st.sampled_from(["a", "b"]) | st.floats(-5, 5),
    probabilities=st.none()
    | st.just({"a": 1.0})
    | st.floats(0, 1).map(lambda p: {"a": p, "b": 1.0 - p}),
    interval=st.none() | st.floats(0, 3).map(lambda w: {"lower": -w, "upper": w}),
)
feature_events = st.builds(
    FeatureEvent,
    model_id=st.just("m"),
    model_version=st.just("1"),
    event_id=st.just("f"),
    prediction_id=st.just("e"),
    event_time=st.just(START),
    features=st.just({"x": 1.0}),
)


@given(
    st.sampled_from(["classification", "regression"]),
    st.lists(predictions_of_any_shape | feature_events, max_size=12),
)
def test_a_batch_counts_each_event_with_its_prediction_and_uncertainty_as_one_alone(task, events):
    spec = SPEC.model_copy(update={"task": task})
    expected = [
        (index, prediction_value(spec, event), uncertainty_of(spec, event))
        for index, event in enumerate(events)
        if event.features is not None
        or prediction_value(spec, event) is not None
        or uncertainty_of(spec, event) is not None
    ]
    rows, predictions, unsure = counted_events(spec, events)
    assert list(zip(rows, predictions, unsure, strict=True)) == expected
