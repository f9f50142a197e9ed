"""A hot model's second stage killed during a drift: another worker takes over its state.

Two workers share a model keyed by event id over eight partitions; the one
that tests its summaries (the second stage, with a share of the first) is
killed with SIGKILL while a drift goes on, its offsets not committed since
its last checkpoint. A third joins: the group hands the partitions on, and
whoever takes the version's summaries partition restores its monitor from
the version-state table. What a user sees is what one uninterrupted process
would show: the drift's alert opened once and never resolved, nothing on the
stationary features, every event accounted for.
"""

import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka_helpers import free_port, read_all, wait_for_worker, wait_until_caught_up

from driftline.monitors import ModelMonitor
from driftline.schemas import Alert, KeyedBy
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

PARTITIONS = 8
EVENTS, SHIFT_AT, KILL_AFTER = 24_000, 12_000, 15_000


def settled(report: dict) -> int:
    counts = report["topics"]["predictions"]
    return int(counts["processed"] + counts["duplicates"] + counts["dead_lettered"])


def test_the_second_stage_killed_during_a_drift_loses_nothing_a_user_sees(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(update={"topic_partitions": PARTITIONS})
    ensure_topics(settings)
    spec = simulated_model_spec(model_id="hot").model_copy(update={"keyed_by": KeyedBy.EVENT_ID})
    events = list(simulated_predictions(EVENTS, shift_at=SHIFT_AT, seed=11, model_id="hot"))
    oracle = ModelMonitor(spec).update_many(events)
    assert "x" in {finding.subject for finding in oracle.drifts}

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    )

    def publish(start: int, end: int) -> None:
        for event in events[start:end]:
            producer.send(
                settings.predictions_topic,
                key=event.event_id.encode(),
                value=event.model_dump_json().encode(),
            )
        producer.flush()

    def worker(name: str) -> WorkerProcess:
        own = settings.model_copy(
            update={"data_dir": tmp_path / name, "web_enabled": True, "web_port": free_port()}
        )
        return WorkerProcess(own, tmp_path / f"{name}.log")

    first = [worker("worker-a"), worker("worker-b")]
    third = worker("worker-c")
    try:
        for each in first:
            each.start()
        publish(0, KILL_AFTER)
        reports = {}
        deadline = time.monotonic() + 180
        while sum(settled(r) for r in reports.values()) < KILL_AFTER:
            assert time.monotonic() < deadline, "the first workers never took the events"
            for each in first:
                reports[each] = wait_for_worker(each.settings.web_port, each, lambda r: True)
            time.sleep(0.5)
        time.sleep(2.5)  # a checkpoint of the second stage's state after them
        # The one testing the summaries (both may have, if the partition moved as they joined).
        taken: dict[WorkerProcess, int] = {}
        while not any(taken.values()):
            assert time.monotonic() < deadline, "no worker took a summary"
            for each in first:
                report = wait_for_worker(each.settings.web_port, each, lambda r: True)
                taken[each] = report["topics"]["summaries"]["processed"]
            time.sleep(0.5)
        tester = max(first, key=taken.__getitem__)
        assert tester.kill() == -9
        third.start()
        publish(KILL_AFTER, EVENTS)
        producer.close()
        for topic in (settings.predictions_topic, settings.summaries_topic):
            wait_until_caught_up(settings.bootstrap_servers, settings.app_id, topic, timeout=180)
        time.sleep(1.0)
        wait_until_caught_up(
            settings.bootstrap_servers, settings.app_id, settings.summaries_topic, timeout=60
        )
        logs = [each.log_text() for each in (*first, third)]
        survivors = [each for each in (*first, third) if each is not tester]
        codes = [each.stop() for each in survivors]
    finally:
        for each in (*first, third):
            if each.running:
                each.stop()
    assert codes == [0, 0], [log[-3000:] for log in logs]
    assert all("Traceback" not in log for log in logs), logs
    assert any("monitor restored from its saved state" in log for log in logs)

    alerts = [
        Alert.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    # Sent again (with its id) by a worker handed a batch the killed one had sent it for.
    seen = list(dict.fromkeys((a.alert_id, a.status.value, a.feature) for a in alerts))
    opened_x = {alert_id for alert_id, status, feature in seen if feature == "x"}
    assert len(opened_x) == 1, seen  # opened once: the state came back, not a fresh warm-up
    assert not [item for item in seen if item[1] == "resolve"], seen  # the drift lasts
    assert {feature for _, _, feature in seen} <= {"x", "(prediction)", "(multivariate)", None}
    [first_x] = [a for a in alerts if a.feature == "x" and a.status.value == "open"][:1]
    assert first_x.event_time >= events[SHIFT_AT].event_time
