import math
import random
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from driftline.monitors.model import MULTIVARIATE, PREDICTION, UNCERTAINTY, ModelMonitor
from driftline.monitors.reference import build_reference
from driftline.schemas import (
    DriftPolicy,
    FeatureEvent,
    FeatureKind,
    FeatureSpec,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
)

TIME = datetime(2026, 1, 1, tzinfo=UTC)


def spec(*features: FeatureSpec, task: str = "regression", **drift: object) -> ModelSpec:
    return ModelSpec(
        model_id="m",
        model_version="1",
        task=task,
        features=list(features),
        drift=DriftPolicy(**drift),
    )


def numeric(name: str, **options: object) -> FeatureSpec:
    return FeatureSpec(name=name, kind=FeatureKind.NUMERIC, **options)


def event(features: dict | None, index: int = 0, model: str = "m", **fields) -> PredictionEvent:
    return PredictionEvent(
        model_id=model,
        model_version="1",
        event_id=f"e{index}",
        event_time=TIME + timedelta(seconds=index),
        features=features,
        **fields,
    )


def run(monitor: ModelMonitor, rows: list[dict], **fields) -> list:
    drifts = []
    for index, row in enumerate(rows):
        position = KafkaPosition(topic="t", partition=1, offset=index)
        drifts += monitor.update(event(row, index, **fields), position).drifts
    return drifts


def test_warm_up_then_only_the_drifting_feature_and_the_joint_test_alarm_once_each():
    rng = random.Random(5)
    monitor = ModelMonitor(spec(numeric("x"), numeric("y")))
    rows = [{"x": rng.gauss(0 if i < 4_000 else 1, 1), "y": rng.gauss(0, 1)} for i in range(8_000)]
    drifts = run(monitor, rows)
    assert monitor.drift_subjects == ["x", "y", MULTIVARIATE]
    assert {d.subject for d in drifts} == {"x", MULTIVARIATE}
    assert len(drifts) == 2, "a lasting change is reported once per subject"
    x = next(d for d in drifts if d.subject == "x")
    assert int(x.event_id[1:]) >= 4_000
    assert x.change_position is not None
    assert abs(x.change_position.offset - 4_000) <= 60
    assert x.change_event_time == TIME + timedelta(seconds=x.change_position.offset)
    assert x.reference.quantiles is not None
    assert x.current.quantiles is not None
    assert x.current.quantiles["0.5"] > x.reference.quantiles["0.5"] + 0.5


def test_no_drift_is_watched_during_the_warm_up():
    monitor = ModelMonitor(spec(numeric("x"), warmup_events=500))
    run(monitor, [{"x": float(i)} for i in range(499)])
    assert monitor.warming_up
    assert monitor.drift_subjects == []
    run(monitor, [{"x": 1.0}])
    assert not monitor.warming_up
    assert monitor.reference is not None
    assert monitor.reference.source == "warmup:500 events"


def test_the_pressure_of_each_subject_rises_with_a_drift_toward_its_alarm():
    rng = random.Random(7)
    monitor = ModelMonitor(spec(numeric("x"), numeric("y"), warmup_events=1_000))
    run(monitor, [{"x": rng.gauss(0, 1), "y": rng.gauss(0, 1)} for _ in range(999)])
    assert monitor.pressures == {}
    run(monitor, [{"x": rng.gauss(0, 1), "y": rng.gauss(0, 1)} for _ in range(501)])
    assert list(monitor.pressures) == monitor.drift_subjects == ["x", "y", MULTIVARIATE]
    assert all(0.0 <= value < 1.0 for value in monitor.pressures.values())
    # Far up: once the upward test leads (the downward one may lead while quiet), each such
    # value pushes x's pressure, and the features' joint test's, toward the alarm at 1.
    run(monitor, [{"x": 2.5, "y": rng.gauss(0, 1)} for _ in range(2)])
    seen = [monitor.pressures]
    for _ in range(6):
        run(monitor, [{"x": 2.5, "y": rng.gauss(0, 1)}])
        seen.append(monitor.pressures)
    for subject in ("x", MULTIVARIATE):
        pushed = [pressures[subject] for pressures in seen]
        assert pushed == sorted(set(pushed)), subject
        assert pushed[-1] < 1.0


def test_a_registered_reference_is_used_from_the_first_event():
    rng = np.random.default_rng(3)
    model = spec(numeric("x"), numeric("y"))
    reference = build_reference(
        model,
        {"x": rng.normal(0, 1, 5_000).tolist(), "y": rng.normal(0, 1, 5_000).tolist()},
        source="training",
        ordered=False,
    )
    monitor = ModelMonitor(model, reference=reference)
    assert not monitor.warming_up
    drifts = run(monitor, [{"x": float(v), "y": 0.0} for v in rng.normal(2, 1, 300)])
    assert "x" in {d.subject for d in drifts}


def test_predictions_are_watched_too_as_classes_of_a_classifier():
    rng = random.Random(8)
    model = spec(numeric("x"), task="classification", multivariate=False)
    monitor = ModelMonitor(model)
    drifts = []
    for index in range(6_000):
        share = 0.2 if index < 4_000 else 0.5
        label = "yes" if rng.random() < share else "no"
        drifts += monitor.update(event({"x": rng.gauss(0, 1)}, index, prediction=label)).drifts
    assert [d.subject for d in drifts] == [PREDICTION]
    assert drifts[0].alarm.test == "category_cusum"
    assert drifts[0].current.shares is not None


def test_categorical_features_drift_by_their_shares():
    rng = random.Random(9)
    model = spec(FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL), prediction=False)
    rows = [
        {"plan": rng.choices(["free", "pro"], [0.8, 0.2] if i < 4_000 else [0.5, 0.5])[0]}
        for i in range(7_000)
    ]
    drifts = run(ModelMonitor(model), rows)
    assert [d.subject for d in drifts] == ["plan"]
    assert drifts[0].alarm.direction in {"pro up", "free down"}


def test_the_budget_is_split_across_the_drift_subjects():
    one = ModelMonitor(spec(numeric("a"), warmup_events=100))
    four = ModelMonitor(spec(*(numeric(n) for n in "abcd"), warmup_events=100))
    run(one, [{"a": float(i % 7)} for i in range(100)])
    run(four, [{n: float((i * 3 + k) % 7) for k, n in enumerate("abcd")} for i in range(100)])
    arl_one = one._subjects[0].detector.arl
    arl_four = four._subjects[0].detector.arl
    assert arl_four == pytest.approx(arl_one * 5)  # four features and their joint test


def test_values_that_fail_their_checks_never_reach_a_detector():
    monitor = ModelMonitor(spec(numeric("x"), warmup_events=100))
    run(monitor, [{"x": float(i % 10)} for i in range(100)])
    detector = monitor._subjects[0].detector
    before = detector.observations
    for index, value in enumerate([None, "0.5", True, math.inf, math.nan, 2.5]):
        unchecked = PredictionEvent.model_construct(
            model_id="m",
            model_version="1",
            event_id=f"u{index}",
            event_time=TIME,
            features={"x": value},
            prediction=None,
        )
        monitor.update(unchecked)
    assert detector.observations == before + 1


def test_names_outside_the_spec_are_counted_not_watched():
    monitor = ModelMonitor(spec(numeric("x")))
    monitor.update(event({"x": 1.0, "surprise": 2.0, "another": "a"}))
    assert monitor.unexpected_features == 2
    assert monitor.monitored_features == ["x"]


def test_an_event_without_features_or_prediction_changes_nothing():
    monitor = ModelMonitor(spec(numeric("x")))
    assert monitor.update(event(None)).quality == []
    assert monitor.events == 0


def test_feature_events_are_monitored_like_inline_features():
    monitor = ModelMonitor(spec(numeric("x", maximum=1.0)))
    features = FeatureEvent(
        model_id="m",
        model_version="1",
        event_id="f",
        prediction_id="e",
        event_time=TIME,
        features={"x": 5.0},
    )
    assert monitor.update(features).drifts == []
    assert monitor.events == 1


def test_an_event_of_another_model_is_refused():
    with pytest.raises(ValueError, match="fed to the monitor of m/1"):
        ModelMonitor(spec(numeric("x"))).update(event({"x": 1.0}, model="other"))


@pytest.mark.parametrize("split", [1_000, 2_500, 4_200])
def test_a_monitor_restored_from_its_json_state_finds_exactly_what_it_would_have(split):
    import json

    rng = random.Random(11)
    model = spec(numeric("x"), numeric("y", maximum=3.0))
    rows = [
        {
            "x": rng.gauss(0 if i < 4_000 else 1, 1),
            "y": rng.gauss(0, 1) if rng.random() > 0.01 else None,
        }
        for i in range(6_000)
    ]
    whole = ModelMonitor(model)
    expected = run(whole, rows)
    first = ModelMonitor(model)
    before = run(first, rows[:split])
    restored = ModelMonitor.from_state(json.loads(json.dumps(first.to_state())))
    after = []
    for index, row in enumerate(rows[split:], split):
        position = KafkaPosition(topic="t", partition=1, offset=index)
        after += restored.update(event(row, index), position).drifts
    assert [(d.subject, d.event_id, d.change_position) for d in before + after] == [
        (d.subject, d.event_id, d.change_position) for d in expected
    ]
    assert expected


def test_a_batch_gives_the_findings_of_its_events_one_by_one():
    rng = random.Random(13)
    model = spec(numeric("x"), numeric("y"))
    rows = [{"x": rng.gauss(0 if i < 3_000 else 2, 1), "y": rng.gauss(0, 1)} for i in range(4_000)]
    events = [event(row, index) for index, row in enumerate(rows)]
    one = ModelMonitor(model)
    single = [d.event_id for e in events for d in one.update(e).drifts]
    batched = ModelMonitor(model).update_many(events[:1_500]).drifts
    batch = ModelMonitor(model)
    found = batch.update_many(events[:1_500]).drifts + batch.update_many(events[1_500:]).drifts
    assert [d.event_id for d in found] == single
    assert single
    assert batched == []


def classifier_events(count: int, low_share, seed: int) -> list[PredictionEvent]:
    """A classifier whose margin is under 0.1 with probability ``low_share(index)``."""
    rng = random.Random(seed)
    events = []
    for index in range(count):
        low = rng.random() < low_share(index)
        gap = rng.uniform(0.0, 0.1) if low else rng.uniform(0.3, 0.9)
        top = (1 + gap) / 2
        label = rng.choice(["yes", "no"])
        other = "no" if label == "yes" else "yes"
        events.append(
            event(
                {"x": rng.gauss(0, 1)},
                index,
                prediction=label,
                probabilities={label: top, other: 1 - top},
            )
        )
    return events


def test_an_uncertainty_alert_fires_when_the_share_of_low_margin_predictions_doubles():
    model = spec(numeric("x"), task="classification")
    for seed in range(3):
        events = classifier_events(8_000, lambda i: 0.1 if i < 5_000 else 0.2, seed)
        drifts = ModelMonitor(model).update_many(events).drifts
        assert [d.subject for d in drifts] == [UNCERTAINTY], seed
        assert int(drifts[0].event_id[1:]) >= 5_000
        assert drifts[0].alarm.direction == "down", "the margin shrinks"


def test_no_uncertainty_alert_on_a_stationary_classifier():
    model = spec(numeric("x"), task="classification")
    for seed in range(3):
        events = classifier_events(30_000, lambda i: 0.1, seed)
        assert ModelMonitor(model).update_many(events).drifts == []


def test_a_regressor_is_watched_by_its_interval_width():
    rng = random.Random(3)
    monitor = ModelMonitor(spec(numeric("x"), prediction=False))
    drifts = []
    for index in range(6_000):
        width = rng.uniform(1.0, 2.0) * (1.0 if index < 4_000 else 1.6)
        found = monitor.update(
            event(
                {"x": rng.gauss(0, 1)},
                index,
                prediction=0.0,
                interval={"lower": 0.0, "upper": width},
            )
        )
        drifts += found.drifts
    assert [d.subject for d in drifts] == [UNCERTAINTY]


def test_a_model_without_features_is_watched_by_its_predictions_alone():
    classifier = ModelSpec(
        model_id="m", model_version="1", task="classification", classes=["a", "b"], features=[]
    )
    monitor = ModelMonitor(classifier)
    rng = random.Random(2)
    found = []
    for i in range(4_000):
        share = 0.5 if i < 3_000 else 0.8
        label = "a" if rng.random() < share else "b"
        found += monitor.update(event(None, i, prediction=label)).drifts
    assert not monitor.warming_up
    assert [finding.subject for finding in found] == [PREDICTION]
    assert int(found[0].event_id.removeprefix("e")) >= 3_000


def test_a_drift_that_ends_repeats_while_it_lasts_and_resolves_after_it():
    monitor = ModelMonitor(spec(numeric("x"), multivariate=False, prediction=False))
    rng = random.Random(5)
    drifts, repeats, resolved = [], [], []
    for i in range(12_000):
        shifted = 4_000 <= i < 6_000
        found = monitor.update(event({"x": rng.gauss(1.0 if shifted else 0.0, 1.0)}, i))
        drifts += [int(f.event_id[1:]) for f in found.drifts]
        repeats += [int(f.event_id[1:]) for f in found.repeats]
        resolved += [(r.subject, int(r.event_id[1:])) for r in found.resolved]
    [opened] = drifts
    assert 4_000 < opened < 4_200
    assert repeats
    assert all(opened < at < 6_200 for at in repeats)
    [(subject, at)] = resolved
    assert subject == "x"
    assert at >= max(repeats) + monitor.spec.alerts.resolve_after_events


@pytest.mark.parametrize("apart", [False, True])
@pytest.mark.parametrize("split", [800, 1_500, 3_100, 4_700])
def test_a_restored_monitor_gives_exactly_the_same_findings_and_state_afterwards(split, apart):
    # Every finding compared whole (evidence, quantiles, distances, times with
    # their offsets, positions), on numeric, categorical, prediction and joint
    # subjects, with the state cut at a warm-up, a quiet and an alarming moment;
    # ``apart``: the reference profile kept apart from the state, as a worker saves it.
    import json

    rng = random.Random(23)
    model = spec(
        numeric("x"),
        numeric("y"),
        FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL),
        warmup_events=1_000,
    )
    zone = timezone(timedelta(hours=2))
    events = []
    for i in range(6_000):
        moved = i >= 3_000
        row = {
            "x": rng.gauss(1.0 if moved else 0.0, 1),
            "y": rng.gauss(0, 1) if rng.random() > 0.01 else None,
            "plan": rng.choice(["free", "pro", "team"] if moved else ["free", "pro"]),
        }
        events.append(
            event(row, i, prediction=rng.gauss(0, 1)).model_copy(
                update={"event_time": (TIME + timedelta(seconds=i * 1.5)).astimezone(zone)}
            )
        )
    positions = [KafkaPosition(topic="t", partition=1, offset=7 + 2 * i) for i in range(6_000)]
    original = ModelMonitor(model)
    for e, p in zip(events[:split], positions[:split], strict=True):
        original.update(e, p)
    if apart:
        state = json.loads(json.dumps(original.to_state(with_reference=False)))
        assert state["reference"] is (True if split > 1_000 else None)
        restored = ModelMonitor.from_state(state, original.reference, spec=model)
        assert restored.spec is model
    else:
        restored = ModelMonitor.from_state(json.loads(json.dumps(original.to_state())))
    assert restored.to_state() == original.to_state()
    found = []
    for e, p in zip(events[split:], positions[split:], strict=True):
        mine, theirs = original.update(e, p), restored.update(e, p)
        assert repr(theirs) == repr(mine)
        found += [d.subject for d in mine.drifts + mine.repeats]
    assert restored.to_state() == original.to_state()
    assert set(found) >= {"x", "plan"}  # alarms (or repeats of them) after the cut


def test_a_state_without_its_reference_is_refused_without_one_or_for_another_spec():
    model = spec(numeric("x"), warmup_events=100)
    monitor = ModelMonitor(model)
    for i in range(150):
        monitor.update(event({"x": float(i % 7)}, i))
    state = monitor.to_state(with_reference=False)
    with pytest.raises(ValueError, match="without its reference profile"):
        ModelMonitor.from_state(state)
    other = spec(numeric("x"), numeric("y"), warmup_events=100)
    with pytest.raises(ValueError, match="another spec"):
        ModelMonitor.from_state(state, monitor.reference, spec=other)
