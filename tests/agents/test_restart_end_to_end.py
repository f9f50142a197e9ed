"""A worker stopped or killed during a drift changes nothing a user sees.

A real worker, as a subprocess against the local broker, without a
registered reference (so its warm-up reference must survive), is stopped
(SIGTERM) or killed (SIGKILL, its offsets not committed) while a drift goes
on, then a new worker takes over, on the same local state or with its
folder deleted (the state then comes back from the changelogs alone). The
alerts and triggers they sent together, each once, are those of the oracle:
a replay of the same events in one process.
"""

import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka_helpers import end_offsets, free_port, read_all, wait_for_worker, wait_until_caught_up
from rocksdict import AccessType, Options, Rdict

from driftline.agents.tables import VERSION_STATE_TABLE
from driftline.monitors.reference import build_reference
from driftline.replay import Replay
from driftline.schemas import (
    Alert,
    FeatureSpec,
    ModelSpec,
    PredictionEvent,
    ReferenceProfile,
    RetrainTrigger,
)
from driftline.streams.settings import REFERENCE_MAX_BYTES, Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

MODEL = "restarts"
FEATURES = ["a", "b", "c"]
EVENTS, DRIFT_FROM, STOP_AT = 9_000, 3_500, 6_000
START = datetime(2026, 6, 1, tzinfo=UTC)

SPEC = ModelSpec(
    model_id=MODEL,
    model_version="1",
    task="regression",
    features=[FeatureSpec(name=name, kind="numeric") for name in FEATURES],
    drift={"warmup_events": 1_000},
    alerts={"resolve_after_events": 1_500},
)


def lines() -> list[bytes]:
    """The events: feature "a" shifts by one sd from DRIFT_FROM to the end."""
    rng = np.random.default_rng(12)
    rows = rng.normal(size=(EVENTS, len(FEATURES)))
    rows[DRIFT_FROM:, 0] += 1.0
    return [
        orjson.dumps(
            PredictionEvent(
                model_id=MODEL,
                model_version="1",
                event_id=f"e{index}",
                event_time=START + timedelta(seconds=index),
                features=dict(zip(FEATURES, row.tolist(), strict=True)),
                prediction=float(row.sum()),
            ).model_dump(mode="json")
        )
        for index, row in enumerate(rows)
    ]


def what_a_user_sees(messages: list[Alert | RetrainTrigger]) -> list[tuple[Any, ...]]:
    """Each alert message and trigger once (a crash may send one again, with its id), in order."""
    seen = [
        (m.alert_id, m.status.value, m.feature, m.event_id, m.summary)
        if isinstance(m, Alert)
        else (m.trigger_id, m.idempotency_key)
        for m in messages
    ]
    return list(dict.fromkeys(seen))


def processed(report: dict[str, Any]) -> int:
    return int(report["topics"]["predictions"]["processed"])


def registered_reference() -> ReferenceProfile:
    """A training sample's profile, registered for the version (no warm-up then)."""
    training = np.random.default_rng(3).normal(size=(4_000, len(FEATURES)))
    columns = {name: training[:, i].tolist() for i, name in enumerate(FEATURES)}
    return build_reference(SPEC, columns, source="test:training sample", ordered=False)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.2)


def persisted_offsets(data_dir: Path, table: str) -> dict[int, int]:
    """The changelog offset each partition's database of ``table`` says it holds everything up
    to (faust's RocksDB store keeps it with the data)."""
    found = {}
    for path in data_dir.rglob(f"{table}-*.db"):
        partition = int(path.stem.rsplit("-", 1)[1])
        database = Rdict(
            str(path), options=Options(raw_mode=True), access_type=AccessType.read_only()
        )
        try:
            offset = database.get(b"__faust\0offset__")
        finally:
            database.close()
        if offset is not None:
            found[partition] = int(offset)
    return found


@pytest.mark.parametrize(
    ("stop", "registered", "local_state"),
    [("sigterm", False, "kept"), ("sigkill", False, "kept"), ("sigkill", True, "deleted")],
)
def test_a_worker_stopped_during_a_drift_sends_what_the_oracle_sends(
    worker_settings: Settings, tmp_path: Path, stop: str, registered: bool, local_state: str
) -> None:
    events = lines()
    reference = registered_reference() if registered else None
    references = [] if reference is None else [reference]
    outputs = list(Replay([SPEC], references=references).feed(events))
    oracle = what_a_user_sees([o for o in outputs if isinstance(o, Alert | RetrainTrigger)])
    opened = [item for item in oracle if item[1] == "open"]
    assert any(item[2] == "a" for item in opened)
    assert not any(item[1] == "resolve" and item[2] == "a" for item in oracle)  # it lasts

    # Killed, the first worker commits seldom: the next one is handed events it processed.
    first_commits = 3_600.0 if stop == "sigkill" else worker_settings.commit_interval_seconds
    settings = worker_settings.model_copy(
        update={
            "web_enabled": True,
            "web_port": free_port(),
            "commit_interval_seconds": first_commits,
        }
    )
    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=SPEC.registry_key(), value=SPEC.model_dump_json().encode()
    )
    if reference is not None:
        producer.send(
            settings.references_topic,
            key=reference.registry_key(),
            value=reference.model_dump_json().encode(),
        )

    def publish(start: int, end: int) -> None:
        for line in events[start:end]:
            producer.send(settings.predictions_topic, key=MODEL.encode(), value=line)
        producer.flush()

    publish(0, STOP_AT)
    changelog = f"{settings.app_id}-{VERSION_STATE_TABLE}-changelog"
    first = WorkerProcess(settings, tmp_path / "first.log").start()
    try:
        wait_for_worker(settings.web_port, first, lambda r: processed(r) >= STOP_AT)
        if stop == "sigkill":
            # Killed once a checkpoint after every event saved its state (two seconds).
            saved = sum(end_offsets(settings.bootstrap_servers, changelog).values())
            wait_for(
                lambda: sum(end_offsets(settings.bootstrap_servers, changelog).values()) > saved
            )
            assert first.kill() == -9
        else:
            assert first.stop() == 0, first.log_text()
    finally:
        first.stop()
    if stop == "sigterm":  # the local state says it holds the whole changelog: none is read again
        written = {
            p: end - 1
            for p, end in end_offsets(settings.bootstrap_servers, changelog).items()
            if end
        }
        assert written
        assert persisted_offsets(settings.data_dir, VERSION_STATE_TABLE) == written
    if local_state == "deleted":
        shutil.rmtree(settings.data_dir)
    publish(STOP_AT, EVENTS)
    producer.close()

    second_settings = worker_settings.model_copy(
        update={"web_enabled": True, "web_port": free_port()}
    )
    with WorkerProcess(second_settings, tmp_path / "second.log") as second:
        wait_for_worker(
            second_settings.web_port, second, lambda r: processed(r) >= EVENTS - STOP_AT
        )
        wait_until_caught_up(
            settings.bootstrap_servers, settings.app_id, settings.predictions_topic
        )
        report = wait_for_worker(second_settings.web_port, second, lambda r: True)
        assert "monitor restored from its saved state" in second.log_text()
        assert second.stop() == 0, second.log_text()

    predictions = report["topics"]["predictions"]
    assert predictions["consumed"] == predictions["processed"] + predictions["duplicates"]
    if stop == "sigkill":  # handed the events since the last commit: those done are not redone
        assert predictions["duplicates"] > 0
        assert predictions["processed"] >= EVENTS - STOP_AT
    else:
        assert predictions["duplicates"] == 0
        assert predictions["processed"] == EVENTS - STOP_AT
    sent: list[Alert | RetrainTrigger] = [
        Alert.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    sent += [
        RetrainTrigger.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.retrain_triggers_topic)
    ]
    assert Counter(what_a_user_sees(sent)) == Counter(oracle)

    # The state's changelog keeps the latest record of each version, and takes large ones.
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, changelog)])
    finally:
        admin.close()
    config = configs["topic"][changelog]
    assert config["cleanup.policy"]["value"] == "compact"
    assert config["max.message.bytes"]["value"] == str(REFERENCE_MAX_BYTES)
