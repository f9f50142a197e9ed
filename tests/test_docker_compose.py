"""docker-compose.yml and the Dockerfile must agree with the code they deploy."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from driftline.streams.broker import KAFKA_VERSION
from driftline.streams.settings import environment_names, load_settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def worker_environment() -> dict[str, str]:
    return {
        name: str(value) for name, value in COMPOSE["services"]["worker"]["environment"].items()
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
