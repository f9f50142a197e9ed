"""docker-compose.yml and the Dockerfile must agree with the code they deploy."""

import json
import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from driftline import cli
from driftline.agents.intake import InputTopic, Intake
from driftline.agents.metrics import REALIZED_METRICS, worker_registry
from driftline.agents.progress import batch_seconds_histogram
from driftline.agents.registry import ModelRegistry
from driftline.broker import KAFKA_VERSION
from driftline.specfiles import load_spec_files
from driftline.streams.busy import LoopTime
from driftline.streams.settings import Settings, environment_names, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolated(value: object) -> str:
    """A compose value with each ``${NAME:-default}`` taken as its default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def worker_environment() -> dict[str, str]:
    return {
        name: interpolated(value)
        for name, value in COMPOSE["services"]["worker"]["environment"].items()
    }


def test_the_broker_image_is_the_harness_kafka_version():
    assert COMPOSE["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def test_every_worker_variable_is_a_setting_the_worker_reads():
    names = set(worker_environment())
    assert names, "the worker service sets no DRIFTLINE_ variables"
    assert names <= set(environment_names()), names - set(environment_names())


def test_the_worker_environment_is_valid_settings(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("DRIFTLINE_"):
            monkeypatch.delenv(name)
    for name, value in worker_environment().items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.app_id == worker_environment()["DRIFTLINE_APP_ID"]


def test_the_worker_reaches_a_listener_the_broker_advertises():
    kafka = COMPOSE["services"]["kafka"]["environment"]
    advertised = set(re.findall(r"//([^,]+)", kafka["KAFKA_ADVERTISED_LISTENERS"]))
    for server in worker_environment()["DRIFTLINE_BOOTSTRAP_SERVERS"].split(","):
        assert server in advertised


def test_the_worker_is_given_longer_to_stop_than_its_own_shutdown_bound():
    grace = int(COMPOSE["services"]["worker"]["stop_grace_period"].rstrip("s"))
    bound = float(worker_environment().get("DRIFTLINE_SHUTDOWN_TIMEOUT_SECONDS", "8"))
    assert grace > bound


@pytest.mark.parametrize(
    "folder",
    sorted(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
            "package-dir"
        ].values()
    ),
)
def test_the_image_copies_every_package_folder(folder):
    assert re.search(rf"^COPY {folder} {folder}$", (ROOT / "Dockerfile").read_text(), re.M)


# The services around the worker, and the observability profile's files.

DEPLOY = ROOT / "deploy"
PROMETHEUS = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
RULES = yaml.safe_load((DEPLOY / "prometheus" / "driftline-rules.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "driftline.json").read_text())


def test_the_worker_is_healthy_by_its_own_liveness_probe():
    worker = COMPOSE["services"]["worker"]
    assert worker["healthcheck"]["test"] == ["CMD", "driftline", "probe", "livez"]
    assert worker_environment()["DRIFTLINE_WEB_ENABLED"] == "true"
    assert "probe" in {
        command.name for command in typer.main.get_command(cli.app).commands.values()
    }


def test_the_one_shot_services_run_commands_that_exist_with_files_that_are_valid(tmp_path):
    register = COMPOSE["services"]["register-model"]
    assert register["depends_on"]["worker"]["condition"] == "service_healthy"  # topics exist
    [mount] = register["volumes"]
    local, inside = mount.split(":")[:2]
    spec_file = register["command"][-1]
    assert register["command"][:2] == ["models", "register"]
    assert load_spec_files([ROOT / local / Path(spec_file).relative_to(inside)])
    simulate = COMPOSE["services"]["simulate"]
    assert simulate["profiles"] == ["simulate"]
    assert "--register" in simulate["command"]
    # The commands parse as the CLI has them (--help stops before any Kafka is touched).
    for command in (register["command"], simulate["command"]):
        result = CliRunner().invoke(cli.app, [*command, "--help"])
        assert result.exit_code == 0, result.output


def test_prometheus_scrapes_the_workers_with_their_token_and_loads_the_rules():
    [job] = PROMETHEUS["scrape_configs"]
    assert job["authorization"]["credentials"] == worker_environment()["DRIFTLINE_WEB_TOKEN"]
    [discovery] = job["dns_sd_configs"]
    assert discovery["names"] == ["worker"]
    assert str(discovery["port"]) == worker_environment()["DRIFTLINE_WEB_PORT"]
    prometheus = COMPOSE["services"]["prometheus"]
    assert prometheus["profiles"] == ["observability"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    for rule_file in PROMETHEUS["rule_files"]:
        assert (DEPLOY / "prometheus" / Path(rule_file).name).exists()


RULES_SCHEMA = {
    "type": "object",
    "required": ["groups"],
    "additionalProperties": False,
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["alert", "expr"],
                            "additionalProperties": False,
                            "properties": {
                                "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                "expr": {"type": "string", "minLength": 1},
                                "for": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d|w|y)$"},
                                "labels": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "annotations": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}
"""Prometheus's rule file format (promtool is not installable here: a schema of its fields)."""


def exposed_samples() -> set[str]:
    """The name of every sample a worker's /metrics can give, by the families it serves."""
    monitoring = SimpleNamespace(
        intake=Intake(Settings(), ModelRegistry()),
        batch_seconds=batch_seconds_histogram(),
        work={topic: LoopTime().clock() for topic in InputTopic},
    )
    registry = worker_registry(monitoring, None, Settings())  # type: ignore[arg-type]
    families = {family.name: family.type for family in registry.collect()}
    families |= {name: "gauge" for name, _ in REALIZED_METRICS.values()}
    suffixes = {
        "counter": ["_total"],
        "histogram": ["_bucket", "_sum", "_count"],
        "info": ["_info"],
    }
    return {name + suffix for name, kind in families.items() for suffix in suffixes.get(kind, [""])}


METRIC_NAME = re.compile(r"\b((?:driftline|process|python)_[a-z_]+)\b")


def queried(expression: str) -> set[str]:
    return set(METRIC_NAME.findall(expression))


def test_the_alert_rules_parse_and_query_metrics_the_worker_serves():
    jsonschema.validate(RULES, RULES_SCHEMA)
    exposed = exposed_samples()
    named = set()
    for group in RULES["groups"]:
        for rule in group["rules"]:
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            named |= queried(rule["expr"])
    assert named, "the rules query no driftline metric"
    assert named <= exposed, named - exposed
    assert {"driftline_open_alerts", "driftline_consumer_lag_messages"} <= named


def test_the_dashboard_queries_metrics_the_worker_serves_from_the_provisioned_source():
    datasources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    [source] = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    exposed = exposed_samples()
    named = set()
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
            named |= queried(target["expr"])
    assert named <= exposed, named - exposed
    assert {
        "driftline_open_alerts",
        "driftline_drift_pressure_ratio",
        "driftline_consumer_lag_messages",
        "driftline_batch_seconds_bucket",
    } <= named
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "driftline.yml").read_text()
    )
    mounts = COMPOSE["services"]["grafana"]["volumes"]
    [dashboards] = [m for m in mounts if m.startswith("./deploy/grafana/dashboards:")]
    assert dashboards.split(":")[1] == provider["providers"][0]["options"]["path"]


def test_each_worker_publishes_its_status_page_on_a_free_loopback_port():
    ports = COMPOSE["services"]["worker"]["ports"]
    port = COMPOSE["services"]["worker"]["environment"]["DRIFTLINE_WEB_PORT"]
    # No fixed host port: `--scale worker=3` would clash on one.
    assert ports == [f"127.0.0.1::{port}"]
