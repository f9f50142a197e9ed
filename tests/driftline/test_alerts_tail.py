"""`driftline alerts tail`, and the one-line form of alerts and triggers it prints.

The formatting tests need no broker; the others (marked ``kafka``) publish
to topics of their own on the session's broker and run the command.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from typer.testing import CliRunner

from driftline import cli
from driftline.broker import free_port
from driftline.schemas import (
    Alert,
    AlertKind,
    AlertStatus,
    DataQualityEvidence,
    DistributionSummary,
    DriftEvidence,
    KafkaPosition,
    QualityCheck,
    RetrainTrigger,
    Severity,
    TrainingWindow,
    TriggerReason,
)
from driftline.schemas.lines import alert_line, output_line, trigger_line
from driftline.streams.settings import Settings

WHEN = datetime(2026, 1, 1, tzinfo=UTC)

DRIFT = DriftEvidence(
    test="location_cusum",
    direction="up",
    statistic=13.1,
    threshold=12.5,
    expected_events_between_false_alarms=4e6,
    observations=100,
    change_observation=71,
    reference=DistributionSummary(count=2000, quantiles={"0.5": 0.1}),
    current=DistributionSummary(count=30, quantiles={"0.5": 2.9}),
)

QUALITY = DataQualityEvidence(
    check=QualityCheck.MISSING,
    window=1000,
    window_index=2,
    observations=400,
    violations=31,
    rate=31 / 400,
    tolerated_rate=0.01,
    threshold=25,
    alpha=1e-4,
    p_value=1e-9,
)


def an_alert(alert_id: str = "a-1", model_id: str = "m", **changes) -> Alert:
    fields = {
        "alert_id": alert_id,
        "kind": AlertKind.DRIFT,
        "model_id": model_id,
        "model_version": "1",
        "feature": "x",
        "summary": "x: location_cusum up (statistic 13.1 over threshold 12.5)",
        "event_id": "e-100",
        "event_time": WHEN + timedelta(minutes=5),
        "evidence": DRIFT,
    }
    return Alert(**{**fields, **changes})


def a_trigger(key: str = "m/1/71", model_id: str = "m", **changes) -> RetrainTrigger:
    fields = {
        "trigger_id": f"t-{key}",
        "idempotency_key": key,
        "model_id": model_id,
        "model_version": "1",
        "event_time": WHEN + timedelta(minutes=5, seconds=1),
        "reasons": [TriggerReason(kind=AlertKind.DRIFT, alert_id="a-1", summary="x moved up")],
        "training_window": TrainingWindow(
            start_event_time=WHEN + timedelta(minutes=4, seconds=58, milliseconds=800),
            start_positions=[
                KafkaPosition(topic="predictions", partition=2, offset=2988),
                KafkaPosition(topic="predictions", partition=0, offset=3001),
            ],
        ),
    }
    return RetrainTrigger(**{**fields, **changes})


# One line per message, without Kafka.


def test_an_alert_line_gives_status_severity_kind_model_version_feature_and_summary():
    assert alert_line(an_alert()) == (
        "2026-01-01T00:05:00Z ALERT open warning drift model m v1 feature x: "
        "location_cusum up (statistic 13.1 over threshold 12.5)"
    )
    resolved = an_alert(
        status=AlertStatus.RESOLVE,
        severity=Severity.CRITICAL,
        kind=AlertKind.DATA_QUALITY,
        feature="plan",
        model_version="7",
        summary="back under 1.0% missing",  # no "plan: " prefix to drop
        evidence=QUALITY,
        event_time=WHEN + timedelta(milliseconds=250),
    )
    assert alert_line(resolved) == (
        "2026-01-01T00:00:00.250Z ALERT resolve critical data_quality model m v7 feature plan: "
        "back under 1.0% missing"
    )


def test_an_alert_line_ends_at_the_event_the_alert_stands_at():
    placed = an_alert(source=KafkaPosition(topic="predictions", partition=2, offset=3007))
    assert alert_line(placed).endswith("over threshold 12.5) at predictions[2]@3007")
    assert alert_line(placed, "line 3008").endswith("over threshold 12.5) at line 3008")
    assert output_line(placed, "line 3008") == alert_line(placed, "line 3008")
    assert alert_line(an_alert(), "line\n2").endswith(" at line\\n2")


def test_an_alert_on_no_feature_names_none():
    alert = an_alert(feature=None, summary="3 subjects drifted together")
    assert alert_line(alert) == (
        "2026-01-01T00:05:00Z ALERT open warning drift model m v1: 3 subjects drifted together"
    )


def test_times_are_shown_in_utc():
    alert = an_alert(event_time=datetime(2026, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=2))))
    assert alert_line(alert).startswith("2026-01-01T00:30:00Z ALERT ")


def test_a_trigger_line_gives_model_version_window_start_key_and_reasons():
    trigger = a_trigger(
        reasons=[
            TriggerReason(kind=AlertKind.DRIFT, alert_id="a-1", summary="x moved up"),
            TriggerReason(kind=AlertKind.DATA_QUALITY, alert_id="a-2", summary="y missing"),
        ]
    )
    assert trigger_line(trigger) == (
        "2026-01-01T00:05:01Z RETRAIN model m v1 from 2026-01-01T00:04:58.800Z "
        "(predictions[2]@2988, predictions[0]@3001) key m/1/71: "
        "drift: x moved up; data_quality: y missing"
    )
    assert output_line(trigger) == trigger_line(trigger)
    assert output_line(an_alert()) == alert_line(an_alert())


def test_a_trigger_without_a_training_window_says_so():
    assert trigger_line(a_trigger(training_window=None)) == (
        "2026-01-01T00:05:01Z RETRAIN model m v1 no training window key m/1/71: drift: x moved up"
    )
    window = TrainingWindow(start_event_time=WHEN)
    assert trigger_line(a_trigger(training_window=window)) == (
        "2026-01-01T00:05:01Z RETRAIN model m v1 from 2026-01-01T00:00:00Z key m/1/71: "
        "drift: x moved up"
    )


def test_line_breaks_and_escape_sequences_cannot_break_a_line_or_reach_the_terminal():
    alert = an_alert(feature="x\ny", summary="x\ny: first\nsecond \x1b[31mred\r")
    line = alert_line(alert)
    assert line.splitlines() == [line]
    assert "\x1b" not in line
    assert line.endswith(r"feature x\ny: first\nsecond \x1b[31mred\r")
    trigger = a_trigger(
        key="k\n1", reasons=[TriggerReason(kind="drift", alert_id="a", summary="\n")]
    )
    assert trigger_line(trigger).splitlines() == [trigger_line(trigger)]


# The command's options, without Kafka.

runner = CliRunner()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONSAFEPATH": "1", **(env or {})},
        check=False,
    )


def test_the_topics_default_to_the_settings_defaults():
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert defaults["alerts_topic"] == cli.DEFAULT_ALERTS_TOPIC
    assert defaults["retrain_triggers_topic"] == cli.DEFAULT_RETRAIN_TRIGGERS_TOPIC


def test_unreachable_kafka_is_a_clear_error_with_exit_code_2():
    servers = f"127.0.0.1:{free_port()}"
    result = run_cli("alerts", "tail", "--bootstrap-servers", servers, "--timeout", "1")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"driftline alerts tail: cannot reach Kafka at {servers} ")
    assert "Traceback" not in result.stderr


def test_the_bootstrap_servers_default_to_driftline_bootstrap_servers():
    servers = f"127.0.0.1:{free_port()}"
    result = runner.invoke(
        cli.app,
        ["alerts", "tail", "--timeout", "0.5"],
        env={"DRIFTLINE_BOOTSTRAP_SERVERS": servers},
    )
    assert result.exit_code == 2
    assert f"cannot reach Kafka at {servers} " in result.stderr


def test_alerts_and_triggers_need_topics_of_their_own():
    result = runner.invoke(
        cli.app, ["alerts", "tail", "--alerts-topic", "t", "--triggers-topic", "t"]
    )
    assert result.exit_code == 2
    assert "topics of their own" in result.stderr


# Against a real broker.


def create_topics(bootstrap_servers: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()


@pytest.fixture
def topics(worker_settings: Settings) -> Settings:
    s = worker_settings
    create_topics(s.bootstrap_servers, s.alerts_topic, s.retrain_triggers_topic)
    return s


def publish(settings: Settings, *messages: Alert | RetrainTrigger | tuple[str, bytes]) -> None:
    """Send each message to its topic, keyed by model id; a (topic, bytes) pair as it is.

    Everything goes to partition 0, so the order of publication is the order read.
    """
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    try:
        for message in messages:
            if isinstance(message, tuple):
                topic, value = message
            else:
                topic = (
                    settings.alerts_topic
                    if isinstance(message, Alert)
                    else settings.retrain_triggers_topic
                )
                value = message.model_dump_json().encode()
            producer.send(topic, value=value, partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()


def topic_options(settings: Settings) -> list[str]:
    return [
        "--bootstrap-servers",
        settings.bootstrap_servers,
        "--alerts-topic",
        settings.alerts_topic,
        "--triggers-topic",
        settings.retrain_triggers_topic,
    ]


def start_tail(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``driftline alerts tail`` in a process of its own, once it is following the topics;
    and what it said on stderr until then."""
    process = subprocess.Popen(
        [sys.executable, "-m", "driftline", "alerts", "tail", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
    )
    assert process.stderr is not None
    said = []
    for line in process.stderr:
        said.append(line)
        if "; Ctrl-C stops)" in line:
            return process, "".join(said)
    process.kill()
    raise AssertionError(f"the tail never started: {''.join(said)}")


@pytest.mark.kafka
def test_tail_prints_readable_lines_from_the_beginning(topics: Settings):
    other = an_alert(
        "a-2",
        model_id="n",
        feature=None,
        status=AlertStatus.UPDATE,
        severity=Severity.CRITICAL,
        summary="3 subjects drifted together",
    )
    publish(topics, an_alert(), other, a_trigger())
    # Servers and topics from the settings' environment variables this time.
    env = {
        "DRIFTLINE_BOOTSTRAP_SERVERS": topics.bootstrap_servers,
        "DRIFTLINE_ALERTS_TOPIC": topics.alerts_topic,
        "DRIFTLINE_RETRAIN_TRIGGERS_TOPIC": topics.retrain_triggers_topic,
    }
    result = runner.invoke(
        cli.app,
        ["alerts", "tail", "--from-beginning", "--max-messages", "3", "--idle-timeout", "30"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == [
        "2026-01-01T00:05:00Z ALERT open warning drift model m v1 feature x: "
        "location_cusum up (statistic 13.1 over threshold 12.5)",
        "2026-01-01T00:05:00Z ALERT update critical drift model n v1: 3 subjects drifted together",
        "2026-01-01T00:05:01Z RETRAIN model m v1 from 2026-01-01T00:04:58.800Z "
        "(predictions[2]@2988, predictions[0]@3001) key m/1/71: drift: x moved up",
    ]
    assert f"following {topics.alerts_topic} and {topics.retrain_triggers_topic}" in result.stderr


@pytest.mark.kafka
def test_json_lines_are_the_messages_as_published(topics: Settings):
    alerts = [an_alert("a-1"), an_alert("a-2", model_id="n")]
    triggers = [a_trigger("m/1/71"), a_trigger("n/1/9", model_id="n", training_window=None)]
    publish(topics, *alerts, *triggers)
    result = runner.invoke(
        cli.app,
        [
            "alerts",
            "tail",
            *topic_options(topics),
            "--json",
            "--from-beginning",
            "--max-messages",
            "4",
            "--idle-timeout",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4
    parsed = [
        Alert.model_validate_json(line)
        if "alert_id" in json.loads(line)
        else RetrainTrigger.model_validate_json(line)
        for line in lines
    ]
    assert [m for m in parsed if isinstance(m, Alert)] == alerts
    assert [m for m in parsed if isinstance(m, RetrainTrigger)] == triggers
    published = {m.model_dump_json() for m in [*alerts, *triggers]}
    assert set(lines) == published


@pytest.mark.kafka
def test_the_model_filter_shows_only_that_models_messages(topics: Settings):
    publish(
        topics,
        an_alert("a-1", model_id="m"),
        an_alert("a-2", model_id="n"),
        a_trigger("m/1/71", model_id="m"),
        a_trigger("n/1/9", model_id="n"),
        an_alert("a-3", model_id="n"),
    )
    args = ["alerts", "tail", *topic_options(topics), "--from-beginning", "--json"]
    result = runner.invoke(cli.app, [*args, "--model", "n", "--idle-timeout", "3"])
    assert result.exit_code == 0, result.output
    seen = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(m.get("alert_id") or m["idempotency_key"] for m in seen) == [
        "a-2",
        "a-3",
        "n/1/9",
    ]
    assert {m["model_id"] for m in seen} == {"n"}


@pytest.mark.kafka
def test_max_messages_stops_after_that_many(topics: Settings):
    publish(topics, *(an_alert(f"a-{i}") for i in range(5)))
    started = time.monotonic()
    result = runner.invoke(
        cli.app,
        [
            "alerts",
            "tail",
            *topic_options(topics),
            "--from-beginning",
            "--json",
            "--max-messages",
            "2",
            "--idle-timeout",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["alert_id"] for line in result.stdout.splitlines()] == ["a-0", "a-1"]
    assert time.monotonic() - started < 30  # stopped at the count, not the idle timeout


@pytest.mark.kafka
def test_the_idle_timeout_ends_a_quiet_tail(topics: Settings):
    started = time.monotonic()
    result = runner.invoke(
        cli.app, ["alerts", "tail", *topic_options(topics), "--idle-timeout", "2"]
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert 2 <= elapsed < 20


@pytest.mark.kafka
def test_without_from_beginning_only_new_messages_show(topics: Settings):
    publish(topics, an_alert("sent-before"), a_trigger("sent-before/1/1"))
    tail, _ = start_tail(
        *topic_options(topics), "--json", "--max-messages", "2", "--idle-timeout", "60"
    )
    publish(topics, an_alert("sent-after"), a_trigger("sent-after/1/1"))
    stdout, stderr = tail.communicate(timeout=90)
    assert tail.returncode == 0, stderr
    seen = sorted(
        message.get("alert_id") or message["idempotency_key"]
        for message in map(json.loads, stdout.splitlines())
    )
    assert seen == ["sent-after", "sent-after/1/1"]


@pytest.mark.kafka
def test_a_topic_created_after_the_start_is_followed_from_its_beginning(
    worker_settings: Settings,
):
    tail, said = start_tail(
        *topic_options(worker_settings), "--max-messages", "2", "--idle-timeout", "60"
    )
    for topic in (worker_settings.alerts_topic, worker_settings.retrain_triggers_topic):
        assert f"topic {topic} does not exist yet" in said
    create_topics(
        worker_settings.bootstrap_servers,
        worker_settings.alerts_topic,
        worker_settings.retrain_triggers_topic,
    )
    publish(worker_settings, an_alert(), a_trigger())
    stdout, stderr = tail.communicate(timeout=90)
    assert tail.returncode == 0, stderr
    assert sorted(line.split(" ")[1] for line in stdout.splitlines()) == ["ALERT", "RETRAIN"]


@pytest.mark.kafka
def test_unreadable_messages_are_skipped_with_a_warning(topics: Settings):
    publish(
        topics,
        (topics.alerts_topic, b"not json"),
        (topics.alerts_topic, a_trigger().model_dump_json().encode()),  # on the wrong topic
        an_alert(),
    )
    result = runner.invoke(
        cli.app,
        [
            "alerts",
            "tail",
            *topic_options(topics),
            "--from-beginning",
            "--max-messages",
            "1",
            "--idle-timeout",
            "30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == alert_line(an_alert()) + "\n"
    assert f"skipped a message at {topics.alerts_topic}[0]@0 that is no valid Alert" in (
        result.stderr
    )
    assert f"skipped a message at {topics.alerts_topic}[0]@1 that is no valid Alert" in (
        result.stderr
    )


@pytest.mark.kafka
def test_ctrl_c_ends_the_tail_cleanly(topics: Settings):
    publish(topics, an_alert())
    tail, _ = start_tail(*topic_options(topics), "--from-beginning")
    assert tail.stdout is not None
    assert tail.stdout.readline().startswith("2026-01-01T00:05:00Z ALERT open")
    tail.send_signal(signal.SIGINT)
    _, stderr = tail.communicate(timeout=60)
    assert tail.returncode == 0
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr
