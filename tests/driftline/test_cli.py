import os
import subprocess
import sys

import pytest

from driftline.streams.broker import free_port


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
    for command in ("worker", "demo", "broker", "simulate"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DRIFTLINE_TOPIC_PARTITIONS", "many", "topic_partitions"),
        ("DRIFTLINE_BOOTSTRAP_SERVER", "kafka:9092", "did you mean DRIFTLINE_BOOTSTRAP_SERVERS"),
    ],
)
def test_the_worker_refuses_bad_settings_before_touching_kafka(name, value, expected):
    result = run_cli("worker", env={name: value})
    assert result.returncode == 2
    assert "invalid settings" in result.stderr
    assert expected in result.stderr


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
