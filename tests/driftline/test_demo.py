"""The README's first command, `driftline demo`, end to end (it starts its own broker)."""

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kafka


def test_the_demo_prints_the_drift_of_x_and_the_missing_values_of_y_and_stops_everything():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline",
            "demo",
            "--events",
            "6000",
            "--rate",
            "6000",
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
    alert_lines = [line for line in result.stdout.splitlines() if " ALERT " in line]
    assert alert_lines, result.stdout
    # <time> ALERT <status> <severity> <kind> model <id> v<version> feature <f>: ... at <where>
    kind_of = {line: line.split(" ALERT ", 1)[1].split()[2] for line in alert_lines}
    status_of = {line: line.split(" ALERT ", 1)[1].split()[0] for line in alert_lines}
    drift = [line for line in alert_lines if kind_of[line] == "drift"]
    quality = [line for line in alert_lines if kind_of[line] == "data_quality"]
    assert drift, result.stdout
    assert any("feature x:" in line for line in drift), alert_lines
    assert len([line for line in drift if status_of[line] == "open"]) >= 2  # x, model
    moved_by_x = (
        "feature x:",
        "feature (prediction):",
        "feature (multivariate):",
        "model demo-model v1:",  # the model-level alert grouping them
    )
    assert all(any(subject in line for subject in moved_by_x) for line in drift), alert_lines
    assert quality, result.stdout
    assert all("feature y: missing" in line for line in quality), alert_lines
    assert len(drift) + len(quality) == len(alert_lines), alert_lines
    assert all(" at driftline.predictions[" in line for line in alert_lines), alert_lines
    assert "broker and worker stopped" in result.stdout
    assert re.search(r"its status page at http://127\.0\.0\.1:\d+/", result.stdout)
