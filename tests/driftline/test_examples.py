"""examples/retrain_on_trigger.py, run against the session's broker.

The retraining command of these tests appends what it was told (its
``RETRAIN_*`` variables) and what the consumer group had committed while it
ran to a file, one JSON object per run.
"""

import contextlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka_helpers import committed_offsets

from driftline.schemas import (
    Alert,
    AlertKind,
    DistributionSummary,
    DriftEvidence,
    KafkaPosition,
    RetrainTrigger,
    TrainingWindow,
    TriggerReason,
)
from driftline.streams.settings import Settings

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retrain_on_trigger.py"

WHEN = datetime(2026, 1, 1, tzinfo=UTC)

# The retraining command: python -c RECORDER <output file> <bootstrap servers> <group> <topic>
RECORDER = """
import json, os, sys
from kafka import KafkaAdminClient
output, servers, group, topic = sys.argv[1:]
admin = KafkaAdminClient(bootstrap_servers=servers)
try:
    offsets = admin.list_group_offsets(group).get(group, {})
finally:
    admin.close()
record = {name: value for name, value in os.environ.items() if name.startswith("RETRAIN_")}
record["committed_while_running"] = {
    str(tp.partition): meta.offset for tp, meta in offsets.items() if tp.topic == topic
}
with open(output, "a") as file:
    file.write(json.dumps(record) + "\\n")
sys.exit(int(os.environ.get("RECORDER_EXIT", "0")))
"""


def a_trigger(key: str, **changes) -> RetrainTrigger:
    fields = {
        "trigger_id": f"t-{key}",
        "idempotency_key": key,
        "model_id": "churn",
        "model_version": "3",
        "event_time": WHEN + timedelta(minutes=5),
        "reasons": [TriggerReason(kind=AlertKind.DRIFT, alert_id="a-1", summary="x moved")],
        "training_window": TrainingWindow(
            start_event_time=WHEN + timedelta(minutes=4, seconds=58, milliseconds=800),
            start_positions=[
                KafkaPosition(topic="predictions", partition=0, offset=2988),
                KafkaPosition(topic="predictions", partition=1, offset=3001),
            ],
        ),
    }
    return RetrainTrigger(**{**fields, **changes})


def an_alert() -> Alert:
    return Alert(
        alert_id="a-1",
        kind=AlertKind.DRIFT,
        model_id="churn",
        model_version="3",
        feature="x",
        summary="x moved",
        event_id="e-1",
        event_time=WHEN,
        evidence=DriftEvidence(
            test="location_cusum",
            statistic=13.1,
            threshold=12.5,
            expected_events_between_false_alarms=4e6,
            observations=100,
            change_observation=71,
            reference=DistributionSummary(count=2000),
            current=DistributionSummary(count=30),
        ),
    )


@pytest.fixture
def topics(worker_settings: Settings) -> Settings:
    admin = KafkaAdminClient(bootstrap_servers=worker_settings.bootstrap_servers)
    try:
        for name in (worker_settings.alerts_topic, worker_settings.retrain_triggers_topic):
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    return worker_settings


def publish(settings: Settings, *messages: tuple[str, bytes]) -> None:
    """Send each (topic, value) to partition 0 of its topic, in order."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for topic, value in messages:
            producer.send(topic, value=value, partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()


def run_example(
    settings: Settings,
    *,
    group: str,
    state: Path,
    output: Path,
    max_triggers: int,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    topic = settings.retrain_triggers_topic
    servers = settings.bootstrap_servers
    return subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--bootstrap-servers",
            servers,
            "--triggers-topic",
            topic,
            "--group-id",
            group,
            "--state",
            str(state),
            "--max-triggers",
            str(max_triggers),
            "--idle-timeout",
            "30",
            "--",
            sys.executable,
            "-c",
            RECORDER,
            str(output),
            servers,
            group,
            topic,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONSAFEPATH": "1", **(env or {})},
        check=False,
    )


def runs(output: Path) -> list[dict]:
    if not output.exists():
        return []
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_the_command_runs_once_per_idempotency_key_even_across_restarts(
    topics: Settings, tmp_path: Path
):
    trigger = a_trigger("churn/3/1001")
    triggers, alerts = topics.retrain_triggers_topic, topics.alerts_topic
    publish(
        topics,
        (alerts, an_alert().model_dump_json().encode()),
        (triggers, trigger.model_dump_json().encode()),  # offset 0
        (triggers, an_alert().model_dump_json().encode()),  # offset 1: no trigger, skipped
        (triggers, trigger.model_dump_json().encode()),  # offset 2: the same key again
    )
    state, output = tmp_path / "state" / "retrain.json", tmp_path / "runs.jsonl"
    group = f"retrain-{uuid.uuid4().hex[:8]}"

    result = run_example(topics, group=group, state=state, output=output, max_triggers=2)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    [run] = runs(output)
    assert {name: value for name, value in run.items() if name != "RETRAIN_TRIGGER"} == {
        "RETRAIN_MODEL_ID": "churn",
        "RETRAIN_MODEL_VERSION": "3",
        "RETRAIN_START_EVENT_TIME": "2026-01-01T00:04:58.800000Z",
        "RETRAIN_START_POSITIONS": json.dumps(
            [
                {"topic": "predictions", "partition": 0, "offset": 2988},
                {"topic": "predictions", "partition": 1, "offset": 3001},
            ]
        ),
        "RETRAIN_IDEMPOTENCY_KEY": "churn/3/1001",
        "RETRAIN_TRIGGER_ID": "t-churn/3/1001",
        "committed_while_running": {},  # nothing committed before the command finished
    }
    assert RetrainTrigger.model_validate_json(run["RETRAIN_TRIGGER"]) == trigger
    start = datetime.fromisoformat(run["RETRAIN_START_EVENT_TIME"])
    assert trigger.training_window is not None
    assert start == trigger.training_window.start_event_time
    # Every message read, the alert too, is committed once handled.
    assert committed_offsets(topics.bootstrap_servers, group, triggers) == {0: 3}
    assert "is no retraining trigger; skipped" in result.stderr
    handled = json.loads(state.read_text())["handled"]
    assert handled["churn/3/1001"]["status"] == "succeeded"

    # A restart that reads the topic again from the start (a new group) with the
    # same state file: the old key is not acted on again, a new one is.
    publish(
        topics,
        (triggers, a_trigger("churn/3/2002", training_window=None).model_dump_json().encode()),
    )
    again = f"retrain-{uuid.uuid4().hex[:8]}"
    result = run_example(topics, group=again, state=state, output=output, max_triggers=3)
    assert result.returncode == 0, result.stderr
    first, second = runs(output)
    assert first == run
    assert second["RETRAIN_IDEMPOTENCY_KEY"] == "churn/3/2002"
    assert second["RETRAIN_START_EVENT_TIME"] == ""
    assert second["RETRAIN_START_POSITIONS"] == "[]"
    # While it ran, the triggers before it (offsets 0 to 2) were committed, not itself (3).
    assert second["committed_while_running"] == {"0": 3}
    assert committed_offsets(topics.bootstrap_servers, again, triggers) == {0: 4}
    assert "already handled churn/3/1001 (succeeded); skipped" in result.stderr


def test_a_failed_command_is_recorded_and_not_run_again(topics: Settings, tmp_path: Path):
    trigger = a_trigger("churn/3/3003")
    publish(topics, (topics.retrain_triggers_topic, trigger.model_dump_json().encode()))
    state, output = tmp_path / "retrain.json", tmp_path / "runs.jsonl"
    result = run_example(
        topics,
        group=f"retrain-{uuid.uuid4().hex[:8]}",
        state=state,
        output=output,
        max_triggers=1,
        env={"RECORDER_EXIT": "3"},
    )
    assert result.returncode == 0, result.stderr
    assert "retraining for churn/3/3003 failed (exit code 3)" in result.stderr
    assert json.loads(state.read_text())["handled"]["churn/3/3003"]["exit_code"] == 3
    result = run_example(
        topics, group=f"retrain-{uuid.uuid4().hex[:8]}", state=state, output=output, max_triggers=1
    )
    assert result.returncode == 0, result.stderr
    assert len(runs(output)) == 1
    assert "already handled churn/3/3003 (failed); skipped" in result.stderr
