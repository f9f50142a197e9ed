"""The README's first command, `driftline demo`, end to end (it starts its own broker)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kafka


def test_the_demo_prints_alerts_for_the_shifted_feature_and_stops_everything():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "demo",
            "--events",
            "3000",
            "--rate",
            "3000",
            "--linger",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    alert_lines = [line for line in result.stdout.splitlines() if line.startswith("ALERT")]
    assert alert_lines, result.stdout
    assert all("feature x:" in line for line in alert_lines), alert_lines
    assert "broker and worker stopped" in result.stdout
