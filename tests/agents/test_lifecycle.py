"""Alerts in their life, and retraining triggers, through the intake without Kafka."""

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry, ReferenceRegistration, Registration
from driftline.monitors.reference import build_reference
from driftline.schemas import (
    Alert,
    FeatureSpec,
    GroupEvidence,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
    RetrainTrigger,
)
from driftline.streams.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = ["a", "b", "c", "d", "e"]


def spec(**policies: object) -> ModelSpec:
    return ModelSpec(
        model_id="m",
        model_version="1",
        task="regression",
        features=[FeatureSpec(name=name, kind="numeric") for name in FEATURES],
        drift={"multivariate": False, "prediction": False, "uncertainty": False},
        **policies,
    )


def run(model: ModelSpec, rows: np.ndarray) -> tuple[list[Alert], list[RetrainTrigger]]:
    registry = ModelRegistry()
    registry.apply(Registration(model))
    intake = Intake(Settings(), registry)
    outputs: list[Output] = []
    for index, row in enumerate(rows):
        event = PredictionEvent(
            model_id="m",
            model_version="1",
            event_id=f"e{index}",
            event_time=START + timedelta(seconds=index),
            features=dict(zip(FEATURES, row.tolist(), strict=True)),
        )
        source = KafkaPosition(topic="predictions", partition=0, offset=index)
        outputs += intake.handle(
            InputMessage(InputTopic.PREDICTIONS, event.model_dump_json().encode(), b"m", source)
        )
    alerts = [
        Alert.model_validate_json(o.value) for o in outputs if o.destination is Destination.ALERTS
    ]
    triggers = [
        RetrainTrigger.model_validate_json(o.value)
        for o in outputs
        if o.destination is Destination.RETRAIN_TRIGGERS
    ]
    return alerts, triggers


def stream(seed: int, length: int, shifted: dict[str, tuple[int, int]]) -> np.ndarray:
    """Normal features; each named one shifted by 1.5 sd over [start, end)."""
    rows = np.random.default_rng(seed).normal(size=(length, len(FEATURES)))
    for name, (start, end) in shifted.items():
        rows[start:end, FEATURES.index(name)] += 1.5
    return rows


def opened(alerts: list[Alert]) -> list[Alert]:
    return [alert for alert in alerts if alert.status.value == "open"]


def test_three_features_drifting_together_open_one_model_alert_resolve_and_trigger_once():
    model = spec(retraining={"drift_sustained_events": 1_500})
    drift = (4_000, 7_000)
    alerts, triggers = run(model, stream(1, 12_000, dict.fromkeys(["a", "c", "e"], drift)))
    members = [alert for alert in opened(alerts) if alert.feature is not None]
    [group] = [alert for alert in opened(alerts) if alert.feature is None]
    assert sorted(alert.feature or "" for alert in members) == ["a", "c", "e"]
    assert {alert.group_id for alert in alerts if alert.feature is not None} == {group.alert_id}
    resolved = [alert for alert in alerts if alert.status.value == "resolve"]
    assert sorted(alert.feature or "(model)" for alert in resolved) == ["(model)", "a", "c", "e"]
    assert all(int(alert.event_id[1:]) > drift[1] for alert in resolved)
    final = resolved[-1]
    assert final.alert_id == group.alert_id
    assert isinstance(final.evidence, GroupEvidence)
    assert final.evidence.open_members == []
    assert sorted(final.evidence.subjects) == ["a", "c", "e"]

    [trigger] = triggers
    assert trigger.reasons[0].alert_id == group.alert_id
    assert {reason.alert_id for reason in trigger.reasons[1:]} == {m.alert_id for m in members}
    window = trigger.training_window
    assert window is not None
    assert abs((window.start_event_time - START).total_seconds() - drift[0]) < 200
    [position] = window.start_positions
    assert abs(position.offset - drift[0]) < 200

    again, same = run(model, stream(1, 12_000, dict.fromkeys(["a", "c", "e"], drift)))
    assert [(a.alert_id, a.status) for a in again] == [(a.alert_id, a.status) for a in alerts]
    assert [t.idempotency_key for t in same] == [trigger.idempotency_key]


def flapping(length: int, period: int) -> np.ndarray:
    """Feature a shifts on and off every ``period`` events, the rest stay put."""
    rows = stream(2, length, {})
    on = (np.arange(length) // period) % 2 == 1
    rows[on, 0] += 1.5
    return rows


def test_a_flapping_feature_opens_at_most_one_alert_per_cooldown():
    length, period, cooldown = 40_000, 1_500, 15_000
    quick = {"resolve_after_events": 300, "update_every_events": 500}
    alerts, _ = run(spec(alerts={**quick, "cooldown_events": cooldown}), flapping(length, period))
    opens = [int(a.event_id[1:]) for a in opened(alerts) if a.feature == "a"]
    assert 1 <= len(opens) <= length // cooldown + 1
    assert all(later - earlier >= cooldown for earlier, later in itertools.pairwise(opens))
    # Without the cooldown the same stream opens an alert on almost every flap.
    alerts, _ = run(spec(alerts={**quick, "cooldown_events": 1}), flapping(length, period))
    assert len([a for a in opened(alerts) if a.feature == "a"]) > 5


def test_no_alert_and_no_trigger_on_a_stationary_stream():
    alerts, triggers = run(spec(), stream(3, 15_000, {}))
    assert alerts == []
    assert triggers == []


def test_a_data_quality_alert_resolves_after_a_clean_window():
    model = spec()
    registry = ModelRegistry()
    registry.apply(Registration(model))
    intake = Intake(Settings(), registry)
    rng = np.random.default_rng(4)
    alerts: list[Alert] = []
    for index in range(8_000):
        features: dict[str, float | None] = {name: float(rng.normal()) for name in FEATURES}
        if 3_000 <= index < 5_000 and rng.random() < 0.3:
            features["b"] = None
        event = PredictionEvent(
            model_id="m",
            model_version="1",
            event_id=f"e{index}",
            event_time=START + timedelta(seconds=index),
            features=features,
        )
        source = KafkaPosition(topic="predictions", partition=0, offset=index)
        outputs = intake.handle(
            InputMessage(InputTopic.PREDICTIONS, event.model_dump_json().encode(), b"m", source)
        )
        alerts += [
            Alert.model_validate_json(o.value)
            for o in outputs
            if o.destination is Destination.ALERTS
        ]
    quality = [(a.feature, a.status.value, int(a.event_id[1:])) for a in alerts]
    assert [(f, s) for f, s, _ in quality] == [("b", "open"), ("b", "resolve")]
    (_, _, opened), (_, _, resolved) = quality
    assert 3_000 < opened < 3_200
    assert 5_000 < resolved <= 7_001  # the first window that ends clean
    assert len({a.alert_id for a in alerts}) == 1


def test_a_restarted_worker_keeps_the_open_alerts_and_sends_no_second_open():
    model = spec(retraining={"drift_sustained_events": 1_500})
    training = np.random.default_rng(9).normal(size=(5_000, len(FEATURES)))
    reference = build_reference(
        model,
        {n: training[:, i].tolist() for i, n in enumerate(FEATURES)},
        source="test",
        ordered=False,
    )
    rows = stream(5, 12_000, dict.fromkeys(["a", "c", "e"], (3_000, 7_000)))

    def intake(store: dict[str, bytes]) -> Intake:
        registry = ModelRegistry()
        registry.apply(Registration(model))
        registry.apply(ReferenceRegistration(reference))
        return Intake(Settings(), registry, state_store=store)

    def feed(target: Intake, start: int, end: int) -> tuple[list[Alert], int]:
        outputs: list[Output] = []
        for index in range(start, end):
            if index % 250 == 0:  # a batch ends: its state is saved
                target.flush_state()
            event = PredictionEvent(
                model_id="m",
                model_version="1",
                event_id=f"e{index}",
                event_time=START + timedelta(seconds=index),
                features=dict(zip(FEATURES, rows[index].tolist(), strict=True)),
            )
            source = KafkaPosition(topic="predictions", partition=0, offset=index)
            message = InputMessage(
                InputTopic.PREDICTIONS, event.model_dump_json().encode(), b"m", source
            )
            outputs += target.handle(message)
        target.flush_state()
        alerts = [
            Alert.model_validate_json(o.value)
            for o in outputs
            if o.destination is Destination.ALERTS
        ]
        triggers = sum(o.destination is Destination.RETRAIN_TRIGGERS for o in outputs)
        return alerts, triggers

    store: dict[str, bytes] = {}
    before, triggered_before = feed(intake(store), 0, 5_000)
    after, triggered_after = feed(intake(store), 5_000, 12_000)  # a new worker, same state
    opens = opened(before + after)
    assert sorted(a.feature or "(model)" for a in opens) == ["(model)", "a", "c", "e"]
    assert opened(after) == []
    resolves = [a for a in after if a.status.value == "resolve"]
    assert {a.alert_id for a in resolves} == {a.alert_id for a in opens}
    assert all(int(a.event_id[1:]) > 7_000 for a in resolves)
    assert triggered_before + triggered_after == 1

    uninterrupted, _ = feed(intake({}), 0, 12_000)
    assert {a.alert_id for a in opened(uninterrupted)} == {a.alert_id for a in opens}
