"""Two workers with one app id share the partitions, and each model's stream stays whole."""

import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2
from kafka_helpers import group_assignments, read_all, wait_until_caught_up

from driftline.schemas import Alert
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka


def models_on_every_partition(partitions: int) -> dict[int, str]:
    """One model id per partition, as Kafka's default partitioner places keys."""
    chosen: dict[int, str] = {}
    index = 0
    while len(chosen) < partitions:
        model = f"model-{index}"
        chosen.setdefault((murmur2(model.encode()) & 0x7FFFFFFF) % partitions, model)
        index += 1
    return chosen


def wait_for_two_members(settings: Settings, workers: list[WorkerProcess]) -> list[set[int]]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for worker in workers:
            assert worker.running, worker.log_text()
        try:
            members = group_assignments(
                settings.bootstrap_servers, settings.app_id, settings.predictions_topic
            )
        except KafkaError:
            members = []
        if len(members) == 2 and all(members):
            return members
        time.sleep(1.0)
    raise AssertionError("the two workers never shared the partitions")


def test_two_workers_share_the_partitions_and_every_model_is_watched_whole(
    worker_settings: Settings, tmp_path: Path
):
    ensure_topics(worker_settings)
    workers = [
        WorkerProcess(
            worker_settings.model_copy(update={"data_dir": tmp_path / name}),
            tmp_path / f"{name}.log",
        )
        for name in ("worker-a", "worker-b")
    ]
    try:
        for worker in workers:
            worker.start()
        members = wait_for_two_members(worker_settings, workers)
        assert set.union(*members) == set(range(worker_settings.topic_partitions))

        # Published only once both hold partitions, so no model moves mid-stream.
        models = models_on_every_partition(worker_settings.topic_partitions)
        producer = KafkaProducer(bootstrap_servers=worker_settings.bootstrap_servers, acks="all")
        for model in models.values():
            spec = simulated_model_spec(model_id=model)
            producer.send(
                worker_settings.models_topic,
                key=spec.registry_key(),
                value=spec.model_dump_json().encode(),
            )
        for seed, model in enumerate(models.values()):
            for event in simulated_predictions(4_000, shift_at=3_000, seed=seed, model_id=model):
                producer.send(
                    worker_settings.predictions_topic,
                    key=model.encode(),
                    value=event.model_dump_json().encode(),
                )
        producer.flush()
        producer.close()
        wait_until_caught_up(
            worker_settings.bootstrap_servers,
            worker_settings.app_id,
            worker_settings.predictions_topic,
        )
    finally:
        codes = [worker.stop() for worker in workers if worker.running]
    assert codes == [0, 0]

    alerts = [
        Alert.model_validate_json(value or b"")
        for value in read_all(worker_settings.bootstrap_servers, worker_settings.alerts_topic)
    ]
    assert {alert.model_id for alert in alerts} == set(models.values())
    assert "x" in {alert.feature for alert in alerts}
    assert {alert.feature for alert in alerts} <= {"x", "(prediction)", "(multivariate)", None}
    opened = [alert for alert in alerts if alert.status.value == "open"]
    assert len({alert.alert_id for alert in opened}) == len(opened), "an alert opened twice"
    for member in members:
        assert {a.source.partition for a in alerts if a.source} & member, "a worker sat idle"
    for alert in alerts:
        assert alert.source is not None
        assert alert.source.partition == next(p for p, m in models.items() if m == alert.model_id)
