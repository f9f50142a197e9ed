import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.core
import typer.main
from cli_commands import cli_commands
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from typer.testing import CliRunner

from driftline import cli
from driftline.broker import free_port
from driftline.schema_export import export_json_schemas
from driftline.schemas import KeyedBy, ModelSpec, PredictionEvent, registry_key
from driftline.simulate import simulated_model_spec
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "churn-model.yaml"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONSAFEPATH": "1", **(env or {})},
        check=False,
    )


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("worker", "demo", "broker", "simulate", "models", "schemas"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DRIFTLINE_TOPIC_PARTITIONS", "many", "DRIFTLINE_TOPIC_PARTITIONS: Input should be"),
        ("DRIFTLINE_BOOTSTRAP_SERVER", "kafka:9092", "did you mean DRIFTLINE_BOOTSTRAP_SERVERS"),
    ],
)
def test_the_worker_refuses_bad_settings_before_touching_kafka(name, value, expected):
    result = run_cli("worker", env={name: value})
    assert result.returncode == 2
    assert "invalid settings" in result.stderr
    assert expected in result.stderr


def test_the_worker_never_echoes_a_secret_it_refuses():
    result = run_cli("worker", env={"DRIFTLINE_WEB_TOKEN": "short-s3cret"})
    assert result.returncode == 2
    assert "DRIFTLINE_WEB_TOKEN: a token needs at least 16 characters" in result.stderr
    assert "short-s3cret" not in result.stderr + result.stdout


def test_the_worker_says_which_brokers_it_cannot_reach():
    result = run_cli(
        "worker",
        env={
            "DRIFTLINE_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "DRIFTLINE_STARTUP_TIMEOUT_SECONDS": "2",
        },
    )
    assert result.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:" in result.stderr
    assert "check DRIFTLINE_BOOTSTRAP_SERVERS" in result.stderr


# The registry and schema commands, run in-process.

runner = CliRunner()


def read_keyed(bootstrap_servers: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, consumer_timeout_ms=2_000
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        return [(record.key, record.value) for record in consumer]
    finally:
        consumer.close()


def create_registry_topic(bootstrap_servers: str, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(
                [NewTopic(topic, 1, 1, topic_configs={"cleanup.policy": "compact"})]
            )
    finally:
        admin.close()


def test_the_registry_commands_default_to_the_settings_defaults():
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert defaults["bootstrap_servers"] == cli.DEFAULT_BOOTSTRAP_SERVERS
    assert defaults["predictions_topic"] == cli.DEFAULT_PREDICTIONS_TOPIC
    assert defaults["models_topic"] == cli.DEFAULT_MODELS_TOPIC
    assert defaults["references_topic"] == cli.DEFAULT_REFERENCES_TOPIC
    assert defaults["alerts_topic"] == cli.DEFAULT_ALERTS_TOPIC
    assert defaults["retrain_triggers_topic"] == cli.DEFAULT_RETRAIN_TRIGGERS_TOPIC


def kafka_options() -> list[tuple[str, typer.core.TyperOption]]:
    """Every option of every command that names Kafka servers or a topic."""
    return [
        (path, param)
        for path, command in cli_commands()
        for param in command.params
        if isinstance(param, typer.core.TyperOption)
        and (param.name == "bootstrap_servers" or (param.name or "").endswith("topic"))
    ]


def test_every_kafka_option_reads_the_workers_variable_and_default():
    options = kafka_options()
    assert {path for path, _ in options} >= {
        "simulate",
        "models register",
        "models unregister",
        "reference build",
        "alerts tail",
        "report",
    }
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    for path, option in options:
        envvar = option.envvar
        assert isinstance(envvar, str), f"{path} {option.opts} reads no variable"
        setting = envvar.removeprefix("DRIFTLINE_").lower()
        assert envvar.startswith("DRIFTLINE_"), (path, envvar)
        assert setting in defaults, (path, envvar)
        assert option.default == defaults[setting], (path, envvar)


def test_the_registry_commands_read_the_servers_from_the_environment():
    servers = f"127.0.0.1:{free_port()}"
    result = runner.invoke(
        cli.app,
        ["models", "unregister", "churn", "3", "--timeout", "2"],
        env={"DRIFTLINE_BOOTSTRAP_SERVERS": servers},
    )
    assert result.exit_code == 1
    assert f"could not publish to driftline.models at {servers} " in result.stderr


def test_version_prints_the_installed_version():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"driftline {importlib.metadata.version('driftline')}\n"


def test_schemas_export_writes_one_file_per_wire_model(tmp_path):
    target = tmp_path / "new" / "schemas"
    result = runner.invoke(cli.app, ["schemas", "export", str(target)])
    assert result.exit_code == 0, result.output
    expected = export_json_schemas(tmp_path / "expected")
    assert result.stdout.splitlines() == [f"wrote {target / path.name}" for path in expected]
    for path in expected:
        assert (target / path.name).read_bytes() == path.read_bytes()


def test_schemas_export_refuses_a_file_as_directory(tmp_path):
    (tmp_path / "file").write_text("")
    result = runner.invoke(cli.app, ["schemas", "export", str(tmp_path / "file")])
    assert result.exit_code != 0


def test_a_bad_spec_file_registers_nothing_and_says_why(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(EXAMPLE.read_text().replace("kind: boolean", "kind: flag"))
    # No broker listens there: the files are checked before anything is sent.
    servers = f"127.0.0.1:{free_port()}"
    result = runner.invoke(
        cli.app, ["models", "register", str(EXAMPLE), str(bad), "--bootstrap-servers", servers]
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"driftline models register: {bad}: model churn version 3: features.3.kind: "
        "Input should be 'numeric', 'categorical' or 'boolean'\n"
    )


def test_register_needs_a_file():
    result = runner.invoke(cli.app, ["models", "register"])
    assert result.exit_code == 2


@pytest.mark.kafka
def test_models_register_and_unregister_publish_to_the_registry(
    kafka_broker, worker_settings: Settings, tmp_path
):
    servers, topic = kafka_broker.bootstrap_servers, worker_settings.models_topic
    create_registry_topic(servers, topic)
    more = tmp_path / "more.toml"
    more.write_text(
        "[[models]]\n"
        'model_id = "price"\nmodel_version = "1"\ntask = "regression"\nfeatures = []\n'
        "[[models]]\n"
        'model_id = "price"\nmodel_version = "2"\ntask = "regression"\nfeatures = []\n'
    )
    options = ["--bootstrap-servers", servers, "--topic", topic]
    result = runner.invoke(cli.app, ["models", "register", str(EXAMPLE), str(more), *options])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"registered model churn version 3 from {EXAMPLE}",
        f"registered model price version 1 from {more}",
        f"registered model price version 2 from {more}",
    ]
    result = runner.invoke(cli.app, ["models", "unregister", "price", "1", *options])
    assert result.exit_code == 0, result.output
    assert result.stdout == "unregistered model price version 1\n"

    received = read_keyed(servers, topic)
    assert [key for key, _ in received] == [
        registry_key("churn", "3"),
        registry_key("price", "1"),
        registry_key("price", "2"),
        registry_key("price", "1"),
    ]
    churn = ModelSpec.model_validate_json(received[0][1] or b"")
    assert churn.feature("plan").categories == ["free", "basic", "pro"]
    assert json.loads(received[2][1] or b"")["model_version"] == "2"
    assert received[3][1] is None


@pytest.mark.kafka
def test_simulate_registers_its_model_first_when_asked(worker_settings: Settings):
    settings = worker_settings
    ensure_topics(settings)
    result = runner.invoke(
        cli.app,
        ["simulate", "--register", "--events", "20", "--model-id", "sim"],
        env={
            "DRIFTLINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "DRIFTLINE_PREDICTIONS_TOPIC": settings.predictions_topic,
            "DRIFTLINE_MODELS_TOPIC": settings.models_topic,
        },
    )
    assert result.exit_code == 0, result.output
    [(key, value)] = read_keyed(settings.bootstrap_servers, settings.models_topic)
    assert key == registry_key("sim", "1")
    assert ModelSpec.model_validate_json(value or b"") == simulated_model_spec(model_id="sim")
    events = read_keyed(settings.bootstrap_servers, settings.predictions_topic)
    assert len(events) == 20
    assert {key for key, _ in events} == {b"sim"}


@pytest.mark.kafka
def test_simulate_can_key_a_model_by_event_id(worker_settings: Settings):
    settings = worker_settings
    ensure_topics(settings)
    result = runner.invoke(
        cli.app,
        ["simulate", "--register", "--events", "20", "--keyed-by", "event_id"],
        env={
            "DRIFTLINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "DRIFTLINE_PREDICTIONS_TOPIC": settings.predictions_topic,
            "DRIFTLINE_MODELS_TOPIC": settings.models_topic,
        },
    )
    assert result.exit_code == 0, result.output
    [(_, value)] = read_keyed(settings.bootstrap_servers, settings.models_topic)
    assert ModelSpec.model_validate_json(value or b"").keyed_by is KeyedBy.EVENT_ID
    events = read_keyed(settings.bootstrap_servers, settings.predictions_topic)
    assert sorted(key or b"" for key, _ in events) == sorted(
        PredictionEvent.model_validate_json(value or b"").event_id.encode() for _, value in events
    )
    assert len({key for key, _ in events}) == 20


def test_register_says_when_kafka_cannot_be_reached():
    servers = f"127.0.0.1:{free_port()}"
    result = runner.invoke(
        cli.app,
        ["models", "unregister", "churn", "3", "--bootstrap-servers", servers, "--timeout", "2"],
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"driftline models unregister: could not publish to driftline.models at {servers} "
        "(is Kafka reachable there, and does the topic exist?): "
    )


@pytest.mark.kafka
def test_register_says_when_the_registry_topic_is_missing(kafka_broker):
    options = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--timeout", "2"]
    result = runner.invoke(
        cli.app, ["models", "register", str(EXAMPLE), "--topic", "no-such-topic", *options]
    )
    assert result.exit_code == 1
    assert "could not publish to no-such-topic" in result.stderr
    assert result.stdout == ""
