"""`driftline replay` and `driftline reference build`, end to end on files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kafka_helpers import read_all
from typer.testing import CliRunner

from driftline import cli
from driftline.replay import Replay
from driftline.schemas import Alert, ReferenceProfile, RetrainTrigger
from driftline.schemas.lines import output_line
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.topics import ensure_topics

SPEC_YAML = """
model_id: demo-model
model_version: "1"
task: regression
features:
  - {name: x, kind: numeric}
  - {name: y, kind: numeric}
"""


def recorded(path: Path, count: int, shift_at: int, *, seed: int = 2) -> Path:
    events = simulated_predictions(count, shift_at=shift_at, shift=1.0, seed=seed)
    path.write_text("".join(event.model_dump_json() + "\n" for event in events))
    return path


def test_replay_prints_the_alerts_the_worker_would_raise(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    events = recorded(tmp_path / "events.jsonl", 5_000, 3_000)
    with events.open("a") as file:
        file.write("{broken\n")
    result = CliRunner().invoke(
        cli.app, ["replay", str(events), "--spec", str(spec), "--dead-letters"]
    )
    assert result.exit_code == 0, result.output
    replayed = [o for o in Replay([simulated_model_spec()]).feed_file(events) if o is not None]
    lines = [
        line for line in result.stdout.splitlines() if " ALERT " in line or " RETRAIN " in line
    ]
    # One format for every alert line: the event an alert stands at is named by its line.
    assert lines == [
        output_line(o, f"line {o.source.offset + 1}" if isinstance(o, Alert) else None)
        for o in replayed
        if isinstance(o, Alert | RetrainTrigger)
    ]
    assert any(" ALERT open " in line and " drift model " in line for line in lines)
    assert any(" feature x: " in line for line in lines), result.stdout
    assert "REFUSED line 5001: invalid_json" in result.stdout
    # Nothing is printed twice: stderr holds the summary alone, no log line of an alert.
    assert result.stderr.splitlines() == [
        "5001 events: 5000 processed, 1 refused (1 invalid_json), 0 duplicates; "
        f"{sum(1 for o in replayed if isinstance(o, Alert) and o.status.value == 'open')} alerts"
    ]


def test_replay_gives_the_same_alert_ids_every_time(tmp_path):
    events = recorded(tmp_path / "events.jsonl", 5_000, 3_000)
    runs = [
        [
            o.alert_id
            for o in Replay([simulated_model_spec()]).feed_file(events)
            if isinstance(o, Alert)
        ]
        for _ in range(2)
    ]
    assert runs[0]
    assert runs[0] == runs[1]


def test_a_built_reference_replaces_the_warm_up(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    rng = np.random.default_rng(1)
    data = tmp_path / "train.csv"
    data.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in rng.normal(0, 1, size=(5_000, 2))))
    profile_path = tmp_path / "profile.json"
    built = CliRunner().invoke(
        cli.app,
        ["reference", "build", str(data), "--spec", str(spec), "--output", str(profile_path)],
    )
    assert built.exit_code == 0, built.output
    assert "5000 rows, 2 numeric and 0 categorical features" in built.stdout
    profile = ReferenceProfile.model_validate_json(profile_path.read_bytes())
    assert set(profile.features) == {"x", "y"}
    # With the reference known, a change in the first 2,000 events is found too.
    events = recorded(tmp_path / "events.jsonl", 1_500, 500)
    result = CliRunner().invoke(
        cli.app,
        ["replay", str(events), "--spec", str(spec), "--reference", str(profile_path), "--json"],
    )
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert "x" in {alert["feature"] for alert in alerts}


def test_a_bad_reference_file_is_named_with_its_fields(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    events = recorded(tmp_path / "events.jsonl", 10, 5)
    bad = tmp_path / "profile.json"
    bad.write_text('{"model_id": 3}')
    missing = tmp_path / "none.json"
    result = CliRunner().invoke(
        cli.app,
        [
            "replay",
            str(events),
            "--spec",
            str(spec),
            "--reference",
            str(bad),
            "--reference",
            str(missing),
        ],
    )
    assert result.exit_code == 2
    problems = result.stderr.splitlines()
    assert problems[0] == (
        f"driftline replay: {bad}: not a reference profile: model_id: "
        "Input should be a valid string (quote it to write it as text)"
    )
    assert f"{bad}: not a reference profile: features: Field required" in problems
    assert problems[-1] == f"{missing}: cannot read it: No such file or directory"


def test_reference_build_warns_when_the_profile_goes_nowhere(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,2\n3,4\n")
    dropped = CliRunner().invoke(cli.app, ["reference", "build", str(data), "--spec", str(spec)])
    assert dropped.exit_code == 0, dropped.output
    assert "without --output FILE or --publish the profile is only checked" in dropped.stderr
    kept = CliRunner().invoke(
        cli.app,
        ["reference", "build", str(data), "--spec", str(spec), "--output", str(tmp_path / "p")],
    )
    assert kept.exit_code == 0, kept.output
    assert kept.stderr == ""


def test_bad_inputs_are_refused_with_code_2_and_a_message(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model_id: m\n")
    result = CliRunner().invoke(cli.app, ["replay", str(tmp_path / "e.jsonl"), "--spec", str(spec)])
    assert result.exit_code == 2
    assert "driftline replay:" in result.stderr
    missing = CliRunner().invoke(
        cli.app, ["reference", "build", str(tmp_path / "none.csv"), "--spec", str(spec)]
    )
    assert missing.exit_code == 2
    assert "driftline reference build:" in missing.stderr


@pytest.mark.kafka
def test_reference_build_publishes_the_profile_under_its_version_key(worker_settings, tmp_path):
    ensure_topics(worker_settings)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    data = tmp_path / "train.jsonl"
    rng = np.random.default_rng(2)
    data.write_text(
        "".join(json.dumps({"x": a, "y": b}) + "\n" for a, b in rng.normal(size=(500, 2)))
    )
    result = CliRunner().invoke(
        cli.app,
        [
            "reference",
            "build",
            str(data),
            "--spec",
            str(spec),
            "--publish",
            "--bootstrap-servers",
            worker_settings.bootstrap_servers,
            "--topic",
            worker_settings.references_topic,
        ],
    )
    assert result.exit_code == 0, result.output
    [value] = read_all(worker_settings.bootstrap_servers, worker_settings.references_topic)
    profile = ReferenceProfile.model_validate_json(value or b"")
    assert (profile.model_id, profile.model_version, profile.event_count) == (
        "demo-model",
        "1",
        500,
    )


def test_replay_tells_its_progress_once_a_batch(tmp_path):
    events = recorded(tmp_path / "events.jsonl", 1_200, 600)
    told: list[int] = []
    run = Replay([simulated_model_spec()], batch_size=500, progress=told.append)
    list(run.feed_file(events))
    assert told == [500, 500, 200]


def test_replay_is_quiet_on_stderr_when_piped(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC_YAML)
    events = recorded(tmp_path / "events.jsonl", 1_000, 600)
    result = CliRunner().invoke(cli.app, ["replay", str(events), "--spec", str(spec)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "1000 events: 1000 processed, 0 refused, 0 duplicates; 0 alerts"
    ]


def test_a_replay_process_is_tuned_for_speed_a_worker_keeps_its_memory():
    code = (
        "import gc, sys\n"
        "from driftline.monitors import sequential\n"
        "import driftline.agents.worker\n"
        "assert not sequential._RECURSIVE_FILTER and 'scipy.signal' not in sys.modules\n"
        "from driftline.replay import REPLAY_YOUNG_COLLECTION_THRESHOLD, tune_replay_process\n"
        "tune_replay_process()\n"
        "assert sequential._RECURSIVE_FILTER\n"
        "assert gc.get_threshold()[0] == REPLAY_YOUNG_COLLECTION_THRESHOLD\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env=os.environ | {"PYTHONSAFEPATH": "1"}
    )


def test_interleaved_predictions_and_labels_replay_as_they_would_one_by_one():
    """The batch path joins a batch's labels before its predictions, so a replay's batch ends
    where they take turns: large batches answer as batches of one message do."""
    from driftline.agents.intake import InputMessage, InputTopic
    from driftline.monitors.positions import Position
    from driftline.simulate import simulated_classifier_spec, simulated_classifier_traffic

    def messages() -> list[InputMessage]:
        traffic = simulated_classifier_traffic(1_500, shift_at=800, label_delay=50, seed=4)
        return [
            InputMessage(
                InputTopic.LABELS if hasattr(event, "label") else InputTopic.PREDICTIONS,
                event.model_dump_json().encode(),
                None,
                Position("traffic", 0, n),
            )
            for n, event in enumerate(traffic)
        ]

    def replayed(batch_size: int) -> list[bytes]:
        replay = Replay([simulated_classifier_spec()], batch_size=batch_size)
        return [output.model_dump_json().encode() for output in replay.feed_messages(messages())]

    one_by_one = replayed(1)
    assert any(b'"report_id"' in output for output in one_by_one)  # reports to compare
    assert replayed(5_000) == one_by_one
