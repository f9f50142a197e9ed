"""`driftline worker` as a real subprocess against the real broker."""

import json
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka_helpers import committed_offsets, end_offsets, read_all, wait_until_caught_up

from driftline.schemas import Alert, DeadLetter
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

DRIFT_OF_X = {"x", "(prediction)", "(multivariate)"}
"""What x's shift moves: x, the score computed from it, and the features together."""


def publish(settings: Settings, values: list[tuple[bytes, bytes | None]]) -> None:
    """Register the simulated model, then publish these predictions."""
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    spec = simulated_model_spec()
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    )
    for key, value in values:
        producer.send(settings.predictions_topic, key=key, value=value)
    producer.flush()
    producer.close()


def simulated(count: int, shift_at: int, *, seed: int) -> list[tuple[bytes, bytes | None]]:
    return [
        (event.model_id.encode(), event.model_dump_json().encode())
        for event in simulated_predictions(count, shift_at=shift_at, shift=3.0, seed=seed)
    ]


def test_worker_alerts_on_the_drifting_feature_only(worker_settings: Settings, tmp_path: Path):
    publish(worker_settings, simulated(4_000, shift_at=2_000, seed=11))

    with WorkerProcess(worker_settings, tmp_path / "worker.log") as worker:
        wait_until_caught_up(
            worker_settings.bootstrap_servers,
            worker_settings.app_id,
            worker_settings.predictions_topic,
        )
        assert worker.running, worker.log_text()

    raw_alerts = read_all(worker_settings.bootstrap_servers, worker_settings.alerts_topic)
    alerts = [Alert.model_validate_json(value or b"") for value in raw_alerts]
    assert all(json.loads(value or b"")["kind"] == "drift" for value in raw_alerts)
    features = {alert.feature for alert in alerts}
    assert "x" in features, worker.log_text()
    assert "y" not in features
    for alert in alerts:
        shifted_from = int(alert.event_id.rsplit("-", 1)[1])
        assert shifted_from >= 2_000, "an alert before the shift is a false alarm"
        if alert.feature == "x":
            before, after = alert.evidence.reference, alert.evidence.current
            assert after.quantiles
            assert before.quantiles
            assert after.quantiles["0.5"] > before.quantiles["0.5"] + 0.5
        assert alert.source is not None
        assert alert.source.topic == worker_settings.predictions_topic
    assert read_all(worker_settings.bootstrap_servers, worker_settings.dead_letters_topic) == []


def test_worker_dead_letters_bad_messages_and_keeps_going(
    worker_settings: Settings, tmp_path: Path
):
    bad = [(b"m", b"{not json"), (b"m", b"\xff\xfe"), (b"m", None)]
    publish(worker_settings, bad + simulated(3_000, shift_at=1_500, seed=5))

    with WorkerProcess(worker_settings, tmp_path / "worker.log") as worker:
        wait_until_caught_up(
            worker_settings.bootstrap_servers,
            worker_settings.app_id,
            worker_settings.predictions_topic,
        )
        assert worker.running, worker.log_text()

    letters = [
        DeadLetter.model_validate_json(value or b"")
        for value in read_all(worker_settings.bootstrap_servers, worker_settings.dead_letters_topic)
    ]
    assert sorted(letter.reason.value for letter in letters) == [
        "empty",
        "invalid_json",
        "invalid_utf8",
    ]
    alerts = read_all(worker_settings.bootstrap_servers, worker_settings.alerts_topic)
    found = {Alert.model_validate_json(a or b"").feature for a in alerts}
    assert "x" in found
    assert found - {None} <= DRIFT_OF_X  # None: the model-level alert


def test_worker_stops_on_sigterm_within_ten_seconds_with_offsets_committed(
    worker_settings: Settings, tmp_path: Path
):
    # Periodic commits are pushed far out, so only the commit on shutdown can
    # have stored the offsets checked below.
    settings = worker_settings.model_copy(update={"commit_interval_seconds": 600.0})
    # The last message is invalid: once its dead letter appears, the worker
    # has processed everything before it on that partition.
    publish(settings, [*simulated(500, shift_at=10_000, seed=3), (b"demo-model", b"[")])

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        deadline = time.monotonic() + 120
        while not read_all(settings.bootstrap_servers, settings.dead_letters_topic, idle_ms=500):
            assert time.monotonic() < deadline, worker.log_text()
            assert worker.running, worker.log_text()
        before_stop = committed_offsets(
            settings.bootstrap_servers, settings.app_id, settings.predictions_topic
        )
        stopping = time.monotonic()
        code = worker.stop(timeout=30)
        took = time.monotonic() - stopping
    finally:
        if worker.running:
            worker.stop()

    assert code == 0, worker.log_text()
    assert took < 10.0, f"the worker took {took:.1f} s to stop"
    written = {
        p: o
        for p, o in end_offsets(settings.bootstrap_servers, settings.predictions_topic).items()
        if o
    }
    committed = committed_offsets(
        settings.bootstrap_servers, settings.app_id, settings.predictions_topic
    )
    assert {p: committed.get(p) for p in written} == written
    assert {p: before_stop.get(p) for p in written} != written, "committed before the stop"
