"""The throughput benchmark on a tiny size: every path reads every event, the figures add up.

No figure is compared with a speed: the benchmark shows speed, tests only
check that what it measured is whole and consistent.
"""

import dataclasses
import json
import math
import statistics
import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import throughput
    from benchmarks.traffic import LAYOUTS, model_specs
finally:
    sys.path.remove(ROOT)

pytestmark = pytest.mark.kafka

EVENTS = 2_000
TINY = throughput.Options(
    events=EVENTS,
    repeats=1,
    layouts=("10-models",),
    warmup_events=200,
    latency_shifted_events=300,
    latency_trials=2,
    state_events=1_000,
    scaling_events=1_000,
    timeout=240,
)


@pytest.fixture(scope="module")
def layout_figures(kafka_broker, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("throughput")
    return throughput.run_layout(
        kafka_broker.bootstrap_servers, LAYOUTS["10-models"], TINY, workdir
    )


def test_every_path_reads_every_event(layout_figures):
    paths = layout_figures["paths"]
    expected = {"a", "b", "c", "d", "d1"} | ({"b'"} if throughput.batching_available() else set())
    assert set(paths) == expected
    for path, summary in paths.items():
        assert [run.get("error") for run in summary["runs"]] == [None], path
        assert summary["events_consumed"] == [EVENTS], path
    worker = paths["c"]["runs"][0]
    assert (worker["processed"], worker["dead_lettered"]) == (EVENTS, 0)
    assert paths["d"]["runs"][0]["processed"] == EVENTS
    assert paths["d1"]["runs"][0]["processed"] == EVENTS
    assert layout_figures["partitions_used"] == 4


def test_rates_are_positive_and_follow_from_the_timings(layout_figures):
    for path, summary in layout_figures["paths"].items():
        run = summary["runs"][0]
        assert 0 < run["timed_events"] <= run["events"], path
        assert run["seconds"] > 0, path
        assert run["cpu_seconds"] > 0, path
        assert math.isclose(run["events_per_second"], run["timed_events"] / run["seconds"])
        assert math.isclose(run["cpu_us_per_event"], 1e6 * run["cpu_seconds"] / run["timed_events"])
        assert summary["events_per_second"] == run["events_per_second"]  # the median of one
        if path not in ("d", "d1"):
            assert run["startup_seconds"] >= 0, path


def test_ratios_are_those_of_the_median_rates(layout_figures):
    rate = {path: s["events_per_second"] for path, s in layout_figures["paths"].items()}
    ratios = layout_figures["ratios"]
    for name in ("c/a", "c/b", "d/a", "d1/a"):
        top, bottom = name.split("/")
        assert math.isclose(ratios[name], rate[top] / rate[bottom])


def test_worker_memory_and_commits_are_reported(layout_figures):
    worker = layout_figures["paths"]["c"]["runs"][0]
    assert layout_figures["worker_resident_bytes"] == worker["resident_bytes"] > 0
    assert worker["committed_after_seconds"] >= worker["startup_seconds"]
    assert worker["commit_tail_seconds"] >= 0


def test_alert_latency_times_alerts_of_published_events(layout_figures):
    latency = layout_figures["alert_latency"]
    assert latency["events"] == 2 * 10 * (200 + 300)  # two trials, pooled
    assert [trial["events"] for trial in latency["trials"]] == [10 * (200 + 300)] * 2
    assert latency["alerts_timed"] == sum(trial["alerts_timed"] for trial in latency["trials"])
    assert {alert["trial"] for alert in latency["timed"]} == {0, 1}
    assert all("timed" not in trial for trial in latency["trials"])
    assert 0 < latency["alerts_timed"] <= latency["alerts"]
    assert 0 < latency["p50_seconds"] <= latency["p99_seconds"] <= latency["max_seconds"]
    assert latency["behind_at_end_seconds"] > 0
    assert len(latency["timed"]) == latency["alerts_timed"]
    assert {alert["feature"] for alert in latency["timed"]} >= {"f0"}  # the shifted feature
    half_rate = layout_figures["paths"]["c"]["events_per_second"] / 2
    assert math.isclose(latency["rate_events_per_second"], half_rate)


def test_monitor_state_counts_the_reference_apart():
    spec = model_specs(LAYOUTS["1-model"], 1, warmup_events=200)[0]
    state = throughput.monitor_state_size(spec, 1_000)
    assert state["monitored_features"] == 20
    assert 0 < state["reference_bytes"] < state["state_bytes"]
    assert math.isclose(state["bytes_per_feature"] * 20, state["state_bytes"])
    without = (state["state_bytes"] - state["reference_bytes"]) / 20
    assert math.isclose(state["bytes_per_feature_without_reference"], without)
    assert state["bytes_by_part"]["reference"] == state["reference_bytes"]


def test_broken_input_case_dead_letters_every_event(kafka_broker, tmp_path):
    options = dataclasses.replace(TINY, broken_events=1_000, repeats=2)
    broken = throughput.run_broken(kafka_broker.bootstrap_servers, options, tmp_path)
    assert broken["events"] == 1_000
    runs = broken["worker"]["runs"]
    assert [(run["processed"], run["dead_lettered"]) for run in runs] == [(0, 1_000)] * 2
    assert broken["worker"]["events_per_second"] == statistics.median(
        run["events_per_second"] for run in runs
    )


def test_scaling_case_settles_predictions_and_labels(kafka_broker, tmp_path):
    scaling = throughput.run_scaling(kafka_broker.bootstrap_servers, TINY, tmp_path)
    assert scaling["labels_sent"] == 500
    assert scaling["worker"]["events"] == 1_000
    assert scaling["worker"]["processed"] + scaling["worker"]["dead_lettered"] == 1_000
    assert scaling["worker_resident_bytes"] > 0


def test_command_line_writes_every_figure_to_json(kafka_broker, tmp_path, capsys):
    output = tmp_path / "figures.json"
    throughput.main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--events",
            "500",
            "--repeats",
            "2",
            "--layout",
            "1-model",
            "--paths",
            "a,d",
            "--state-events",
            "300",
            "--broken-events",
            "300",
            "--warmup-events",
            "200",
            "--json",
            str(output),
        ]
    )
    figures = json.loads(output.read_text())
    layout = figures["layouts"]["1-model"]
    assert set(layout["paths"]) == {"a", "d"}
    assert layout["paths"]["a"]["events_consumed"] == [500, 500]
    assert layout["paths"]["d"]["events_consumed"] == [500, 500]
    assert figures["broken"]["events"] == 300
    assert "alert_latency" not in layout  # it needs the worker's measured rate
    assert figures["monitor_state"]["events"] == 300
    printed = capsys.readouterr().out
    assert "(a) aiokafka getmany + orjson" in printed
    assert "d/a" in printed
    assert "broken input" in printed
