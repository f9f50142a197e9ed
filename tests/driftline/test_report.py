"""Reports: from a replay with labels, and from the output topics of a running system."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from browser import png_size, screenshot
from html_elements import elements
from kafka import KafkaProducer
from samples import write_classifier_traffic
from typer.testing import CliRunner

from driftline import cli
from driftline.replay import Replay
from driftline.report import PNG_DPI, PNG_SIZE_INCHES, history_from_outputs, report_html
from driftline.schemas import Alert, PerformanceReport, RetrainTrigger
from driftline.simulate import simulated_classifier_spec
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics

PNG_PIXELS = (round(PNG_SIZE_INCHES[0] * PNG_DPI), round(PNG_SIZE_INCHES[1] * PNG_DPI))


def spec_file(folder: Path) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(json.loads(simulated_classifier_spec().model_dump_json())))
    return path


def replayed_report(folder: Path, *extra: str) -> tuple[Path, object]:
    events, labels = write_classifier_traffic(folder)
    output = folder / "report.html"
    arguments = ["replay", str(events), "--spec", str(spec_file(folder)), "--labels", str(labels)]
    result = CliRunner().invoke(cli.app, [*arguments, "--report", str(output), *extra])
    assert result.exit_code == 0, result.output
    return output, result


def test_a_replay_report_draws_the_drifted_subject_its_alerts_and_performance(tmp_path: Path):
    output, result = replayed_report(tmp_path, "--png", str(tmp_path / "png"))
    assert "8000 labels: 8000 processed, 0 waiting for their prediction" in result.stderr
    found = elements(output.read_text()).found
    figures = {
        (a["class"], a["data-subject"])
        for tag, a in found
        if tag == "figure" and "data-subject" in a
    }
    assert ("subject drifted", "x") in figures
    assert ("subject", "y") in figures  # drawn, not drifted
    assert ("distribution", "x") in figures  # reference against current
    crossed = {a["data-subject"] for tag, a in found if a.get("data-crossed") == "true"}
    assert "x" in crossed
    assert "y" not in crossed
    open_marks = [a for tag, a in found if tag == "line" and a.get("class") == "mark open"]
    assert open_marks
    changes = [a for tag, a in found if tag == "tr" and a.get("class", "").startswith("alert ")]
    assert {"alert open"} <= {a["class"] for a in changes}
    assert any(a.get("class") == "chart performance" for _, a in found)
    windows = [a for tag, a in found if tag == "tr" and "window" in a.get("class", "").split()]
    assert len(windows) == 16  # 8,000 predictions in windows of 500
    # Calibrated on 1,000 labels 200 predictions late: window 2 is estimated in part, and shown so.
    assert [a["class"] for a in windows].count("window partial") == 1
    assert [a for _, a in found if a.get("class") == "estimated partial"]
    pngs = sorted((tmp_path / "png").glob("*.png"))
    names = {path.name for path in pngs}
    assert {
        "demo-classifier-1-drift-x.png",
        "demo-classifier-1-distribution-x.png",
        "demo-classifier-1-performance.png",
    } <= names
    assert {png_size(path) for path in pngs} == {PNG_PIXELS}


def test_the_report_of_a_replay_has_a_screenshot(tmp_path: Path, artifacts: Path):
    output, _ = replayed_report(tmp_path)
    (artifacts / "report.html").write_text(output.read_text())
    shot = screenshot(output.as_uri(), artifacts / "report.png", height=1800)
    assert png_size(shot) == (1280, 1800)


def test_png_needs_a_report(tmp_path: Path):
    events, _ = write_classifier_traffic(tmp_path)
    result = CliRunner().invoke(
        cli.app,
        ["replay", str(events), "--spec", str(spec_file(tmp_path)), "--png", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "--png draws the report's charts: give --report too" in result.stderr


def replay_outputs(folder: Path) -> list[object]:
    run = Replay([simulated_classifier_spec()])
    return list(run.feed_file(*write_classifier_traffic(folder)))


def test_a_report_from_outputs_keeps_the_time_range(tmp_path: Path):
    outputs = replay_outputs(tmp_path)
    everything = history_from_outputs(outputs)
    [version] = everything.versions.values()
    alerts = [o for o in outputs if isinstance(o, Alert)]
    assert len(version.marks) == len(alerts)
    assert version.series["x"].peak >= 1.0  # an alert's own statistic is over its threshold
    cut = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    early = history_from_outputs(outputs, until=cut)
    late = history_from_outputs(outputs, since=cut)
    [early_version] = early.versions.values()
    [late_version] = late.versions.values()
    assert all(mark.event_time < cut for mark in early_version.marks)
    assert all(mark.event_time >= cut for mark in late_version.marks)
    assert len(early_version.marks) + len(late_version.marks) == len(alerts)
    windows = [o for o in outputs if isinstance(o, PerformanceReport)]
    assert {r.window for r in windows if r.last_event_time < cut} == set(early_version.windows)
    elements(report_html(early, title="early"))


@pytest.mark.kafka
def test_driftline_report_reads_the_output_topics_of_a_running_system(
    worker_settings: Settings, tmp_path: Path
):
    ensure_topics(worker_settings)
    outputs = replay_outputs(tmp_path)
    topics = {
        Alert: worker_settings.alerts_topic,
        RetrainTrigger: worker_settings.retrain_triggers_topic,
        PerformanceReport: worker_settings.performance_topic,
    }
    producer = KafkaProducer(bootstrap_servers=worker_settings.bootstrap_servers, acks="all")
    sent = 0
    for output in outputs:
        topic = topics.get(type(output))  # type: ignore[call-overload]
        if topic is not None:
            producer.send(topic, value=output.model_dump_json().encode())  # type: ignore[attr-defined]
            sent += 1
    producer.send(worker_settings.alerts_topic, value=b"{not an alert")
    producer.flush(timeout=30)
    producer.close()
    report = tmp_path / "from-topics.html"
    result = CliRunner().invoke(
        cli.app,
        [
            "report",
            str(report),
            "--since",
            "2026-01-01T00:05:00",
            "--png",
            str(tmp_path / "png"),
            "--bootstrap-servers",
            worker_settings.bootstrap_servers,
            "--alerts-topic",
            worker_settings.alerts_topic,
            "--triggers-topic",
            worker_settings.retrain_triggers_topic,
            "--performance-topic",
            worker_settings.performance_topic,
            "--timeout",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sent > 20
    found = elements(report.read_text()).found
    versions = [a for tag, a in found if tag == "section"]
    assert [(a["data-model"], a["data-version"]) for a in versions] == [("demo-classifier", "1")]
    figures = {a["data-subject"] for tag, a in found if tag == "figure" and "data-subject" in a}
    assert {"x", "(prediction)"} <= figures
    assert any(a.get("class") == "chart performance" for _, a in found)
    windows = [a for tag, a in found if tag == "tr" and "window" in a.get("class", "").split()]
    assert 0 < len(windows) < 16  # those ending from 00:05 on
    assert "skipped" in result.stderr  # the message that was no alert
    assert {png_size(path) for path in (tmp_path / "png").glob("*.png")} == {PNG_PIXELS}


def test_a_refused_label_is_named_with_its_file(tmp_path: Path):
    events, labels = write_classifier_traffic(tmp_path)
    with labels.open("a") as file:
        file.write("{not a label\n")
    result = CliRunner().invoke(
        cli.app,
        [
            "replay",
            str(events),
            "--spec",
            str(spec_file(tmp_path)),
            "--labels",
            str(labels),
            "--dead-letters",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "REFUSED labels.jsonl line 8001: invalid_json" in result.stdout
    # With two files, every alert names the file of its line: a drift one the predictions',
    # the performance one the labels'.
    alerts = [line for line in result.stdout.splitlines() if " ALERT " in line]
    assert any(" drift " in line and " at events.jsonl line " in line for line in alerts)
    assert any(" performance " in line and " at labels.jsonl line " in line for line in alerts)
    assert all(
        " at events.jsonl line " in line or " at labels.jsonl line " in line for line in alerts
    )
    assert "8001 labels: 8000 processed, 0 waiting for their prediction, 1 refused" in result.stderr
