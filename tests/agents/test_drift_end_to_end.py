"""Drift of 2 of 20 features through a real worker, against a registered reference profile."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaProducer
from kafka_helpers import free_port, read_all, wait_for_worker

from driftline.monitors.reference import build_reference
from driftline.schemas import Alert, FeatureSpec, ModelSpec, PredictionEvent
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

MODEL = "wide-model"
FEATURES = [f"f{i:02d}" for i in range(20)]
DRIFTING = {"f03", "f11"}
BEFORE, AFTER = 3_000, 3_000
START = datetime(2026, 3, 1, tzinfo=UTC)


def consumed(report: dict[str, Any]) -> int:
    return int(report["topics"]["predictions"]["consumed"])


def test_two_drifting_features_of_twenty_raise_exactly_their_alerts_and_a_joint_one(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(update={"web_enabled": True, "web_port": free_port()})
    ensure_topics(settings)
    spec = ModelSpec(
        model_id=MODEL,
        model_version="7",
        task="regression",
        features=[FeatureSpec(name=name, kind="numeric") for name in FEATURES],
    )
    rng = np.random.default_rng(20)
    training = rng.normal(0.0, 1.0, size=(5_000, len(FEATURES)))
    reference = build_reference(
        spec,
        {name: training[:, i].tolist() for i, name in enumerate(FEATURES)},
        source="test:training sample",
        ordered=False,
    )
    live = rng.normal(0.0, 1.0, size=(BEFORE + AFTER, len(FEATURES)))
    for i, name in enumerate(FEATURES):
        if name in DRIFTING:
            live[BEFORE:, i] += 1.0

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    )
    producer.send(
        settings.references_topic,
        key=reference.registry_key(),
        value=reference.model_dump_json().encode(),
    ).get(timeout=30)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        shift_offset = None
        for index, row in enumerate(live):
            event = PredictionEvent(
                model_id=MODEL,
                model_version="7",
                event_id=f"e{index}",
                event_time=START + timedelta(seconds=index),
                features=dict(zip(FEATURES, row.tolist(), strict=True)),
            )
            sent = producer.send(
                settings.predictions_topic,
                key=MODEL.encode(),
                value=event.model_dump_json().encode(),
            )
            if index == BEFORE:
                shift_offset = sent.get(timeout=30).offset
        producer.flush()
        producer.close()
        wait_for_worker(settings.web_port, worker, lambda r: consumed(r) >= BEFORE + AFTER)

    alerts = [
        Alert.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    opened = [alert for alert in alerts if alert.status.value == "open"]
    subjects = [alert for alert in opened if alert.feature is not None]
    assert sorted(alert.feature or "" for alert in subjects) == ["(multivariate)", "f03", "f11"]
    [group] = [alert for alert in opened if alert.feature is None]
    assert {alert.group_id for alert in alerts if alert.feature is not None} == {group.alert_id}
    assert shift_offset is not None
    for alert in subjects:
        evidence = alert.evidence
        assert evidence.kind == "drift"
        assert evidence.statistic >= evidence.threshold
        assert evidence.expected_events_between_false_alarms > 1e6
        assert evidence.change_event_time is not None
        assert evidence.change_event_time >= START + timedelta(seconds=BEFORE - 200)
        [position] = evidence.change_positions
        assert position.topic == settings.predictions_topic
        assert abs(position.offset - shift_offset) <= 200, (alert.feature, position, shift_offset)
        assert alert.source is not None
        assert alert.source.offset >= shift_offset, "an alert before the drift"
        assert evidence.reference.quantiles
        assert evidence.current.quantiles
        if alert.feature in DRIFTING:
            assert evidence.test == "location_cusum"
            assert evidence.direction == "up"
            assert evidence.reference.count == 5_000
            assert evidence.current.quantiles["0.5"] > evidence.reference.quantiles["0.5"] + 0.5
            assert {"ks", "psi", "wasserstein"} <= evidence.distances.keys()
