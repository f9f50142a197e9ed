"""One abrupt drift of 3 features through a real worker: alerts in their life, one trigger.

Then the same input topic is replayed from offset 0 by a worker of a fresh
consumer group: it must send the same alert and trigger ids, so a consumer
that deduplicates by id sees nothing new.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer
from kafka_helpers import free_port, read_all, wait_for_worker, wait_until_caught_up

from driftline.monitors.reference import build_reference
from driftline.schemas import (
    Alert,
    FeatureSpec,
    GroupEvidence,
    ModelSpec,
    PredictionEvent,
    RetrainTrigger,
)
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

MODEL = "pricing"
FEATURES = [f"f{i}" for i in range(6)]
DRIFTING = ["f1", "f2", "f4"]
BEFORE, DURING, AFTER = 3_000, 3_000, 4_000
START = datetime(2026, 5, 1, tzinfo=UTC)


def consumed(report: dict[str, Any]) -> int:
    return int(report["topics"]["predictions"]["consumed"])


def run_worker(settings: Settings, log: Path, total: int) -> None:
    with WorkerProcess(settings, log) as worker:
        wait_for_worker(settings.web_port, worker, lambda r: consumed(r) >= total)
        time.sleep(1.0)  # let the last outputs go out before the worker stops


def test_one_drift_of_three_features_one_model_alert_one_trigger_and_a_replay_repeats_the_ids(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(update={"web_enabled": True, "web_port": free_port()})
    ensure_topics(settings)
    spec = ModelSpec(
        model_id=MODEL,
        model_version="2",
        task="regression",
        features=[FeatureSpec(name=name, kind="numeric") for name in FEATURES],
        retraining={"drift_sustained_events": 1_500},
    )
    rows = np.random.default_rng(6).normal(size=(BEFORE + DURING + AFTER, len(FEATURES)))
    for name in DRIFTING:
        rows[BEFORE : BEFORE + DURING, FEATURES.index(name)] += 1.5
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    )
    for index, row in enumerate(rows):
        event = PredictionEvent(
            model_id=MODEL,
            model_version="2",
            event_id=f"e{index}",
            event_time=START + timedelta(seconds=index),
            features=dict(zip(FEATURES, row.tolist(), strict=True)),
        )
        producer.send(
            settings.predictions_topic, key=MODEL.encode(), value=event.model_dump_json().encode()
        )
    producer.flush()
    producer.close()

    run_worker(settings, tmp_path / "first.log", len(rows))
    first = [
        Alert.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    triggers = [
        RetrainTrigger.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.retrain_triggers_topic)
    ]

    opened = [alert for alert in first if alert.status.value == "open"]
    [group] = [alert for alert in opened if alert.feature is None]
    per_feature = [alert for alert in opened if alert.feature in FEATURES]
    assert sorted(alert.feature or "" for alert in per_feature) == DRIFTING
    assert {alert.group_id for alert in first if alert.feature is not None} == {group.alert_id}
    resolved = {alert.feature for alert in first if alert.status.value == "resolve"}
    assert set(DRIFTING) | {None} <= resolved, [(a.feature, a.status.value) for a in first]
    back = START + timedelta(seconds=BEFORE + DURING)
    assert all(a.event_time > back for a in first if a.status.value == "resolve")
    assert all(a.event_time >= START + timedelta(seconds=BEFORE) for a in first)
    last = [a for a in first if a.alert_id == group.alert_id][-1]
    assert last.status.value == "resolve"
    assert isinstance(last.evidence, GroupEvidence)

    [trigger] = triggers
    assert (trigger.model_id, trigger.model_version) == (MODEL, "2")
    assert trigger.reasons[0].alert_id == group.alert_id
    assert {r.alert_id for r in trigger.reasons} >= {a.alert_id for a in per_feature}
    assert trigger.training_window is not None
    start = trigger.training_window.start_event_time
    assert abs((start - START).total_seconds() - BEFORE) < 300
    [position] = trigger.training_window.start_positions
    assert position.topic == settings.predictions_topic

    # The same input, from offset 0, by a fresh consumer group.
    again = settings.model_copy(
        update={"app_id": settings.app_id + "-replay", "web_port": free_port()}
    )
    run_worker(again, tmp_path / "replay.log", len(rows))
    everything = [
        Alert.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    replayed = everything[len(first) :]
    assert [(a.alert_id, a.status) for a in replayed] == [(a.alert_id, a.status) for a in first]
    seen = {(a.alert_id, a.status) for a in first}
    assert [a for a in replayed if (a.alert_id, a.status) not in seen] == []
    all_triggers = [
        RetrainTrigger.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.retrain_triggers_topic)
    ]
    assert [t.idempotency_key for t in all_triggers] == [trigger.idempotency_key] * 2
    assert [t.trigger_id for t in all_triggers] == [trigger.trigger_id] * 2


def test_a_restarted_worker_reads_on_without_a_gap_and_goes_on_with_its_open_alerts(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(update={"web_enabled": True, "web_port": free_port()})
    ensure_topics(settings)
    spec = ModelSpec(
        model_id=MODEL,
        model_version="3",
        task="regression",
        features=[FeatureSpec(name=name, kind="numeric") for name in FEATURES],
        drift={"multivariate": False},
        retraining={"drift_sustained_events": 1_500},
    )
    rng = np.random.default_rng(8)
    training = rng.normal(size=(5_000, len(FEATURES)))
    reference = build_reference(
        spec,
        {name: training[:, i].tolist() for i, name in enumerate(FEATURES)},
        source="test:training sample",
        ordered=False,
    )
    rows = rng.normal(size=(BEFORE + DURING + AFTER, len(FEATURES)))
    for name in DRIFTING:
        rows[BEFORE : BEFORE + DURING, FEATURES.index(name)] += 1.5
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    )
    producer.send(
        settings.references_topic,
        key=reference.registry_key(),
        value=reference.model_dump_json().encode(),
    )

    def publish(start: int, end: int) -> None:
        for index in range(start, end):
            event = PredictionEvent(
                model_id=MODEL,
                model_version="3",
                event_id=f"e{index}",
                event_time=START + timedelta(seconds=index),
                features=dict(zip(FEATURES, rows[index].tolist(), strict=True)),
            )
            producer.send(
                settings.predictions_topic,
                key=MODEL.encode(),
                value=event.model_dump_json().encode(),
            )
        producer.flush()

    middle = BEFORE + DURING // 2  # stopped while the drift goes on and its alerts are open
    publish(0, middle)
    run_worker(settings, tmp_path / "first.log", middle)
    publish(middle, len(rows))
    producer.close()
    restarted = settings.model_copy(update={"web_port": free_port()})
    # The restarted worker recovers the alert state from its table first: faust then once
    # skipped the first batch of input and stopped committing (see streams/faust_fixes.py).
    run_worker(restarted, tmp_path / "restarted.log", len(rows) - middle)
    wait_until_caught_up(settings.bootstrap_servers, settings.app_id, settings.predictions_topic)

    alerts = [
        Alert.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    opened = [alert for alert in alerts if alert.status.value == "open"]
    assert sorted(alert.feature or "(model)" for alert in opened) == ["(model)", *DRIFTING]
    resolved = [alert for alert in alerts if alert.status.value == "resolve"]
    assert {alert.alert_id for alert in resolved} == {alert.alert_id for alert in opened}
    back = START + timedelta(seconds=BEFORE + DURING)
    assert all(alert.event_time > back for alert in resolved)
    assert len(read_all(settings.bootstrap_servers, settings.retrain_triggers_topic)) == 1
