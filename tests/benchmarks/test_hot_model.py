"""The scaling benchmark on a tiny size: every event settled, the stages costed, the sums right.

No figure is compared with a speed: the benchmark shows speed, tests only
check that what it measured is whole and consistent.
"""

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import hot_model
finally:
    sys.path.remove(ROOT)

EVENTS = 3_000


@pytest.mark.kafka
def test_two_workers_settle_every_event_and_cost_both_stages(kafka_broker, tmp_path, capsys):
    output = tmp_path / "figures.json"
    hot_model.main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--events",
            str(EVENTS),
            "--repeats",
            "1",
            "--workers",
            "2",
            "--partitions",
            "4",
            "--warmup-events",
            "300",
            "--json",
            str(output),
        ]
    )
    figures = json.loads(output.read_text())
    assert set(figures["cases"]) == {"by model id, 1 worker", "by event id, 2 workers"}
    for runs in figures["cases"].values():
        [run] = runs
        assert run["processed"] + run["dead_lettered"] == EVENTS
        assert run["events_per_second"] >= run["events_per_second_to_last_summary"] > 0
        assert run["stage_1_cpu_us_per_event"] > 0
    [baseline] = figures["cases"]["by model id, 1 worker"]
    assert (baseline["summaries"], baseline["stage_2_cpu_us_per_event"]) == (0, 0)
    [spread] = figures["cases"]["by event id, 2 workers"]
    assert spread["processed"] == EVENTS  # every event summarised by one of the two
    assert spread["summaries"] == spread["summaries_taken"] > 0
    assert spread["stage_2_cpu_us_per_event"] > 0
    assert math.isclose(
        spread["stage_2_over_stage_1"],
        spread["stage_2_cpu_us_per_event"] / spread["stage_1_cpu_us_per_event"],
    )
    # Once steady (from a fifth of the events on; a run this short may count whole).
    assert 0 < spread["steady_events"] <= EVENTS
    assert spread["events_per_summary"] > 0
    assert spread["stage_2_cpu_us_per_summary"] > 0
    assert spread["whole_stage_2_cpu_us_per_event"] > 0
    assert spread["summary_bytes_mean"] > 0
    assert sum(run.get("drift", 0) for run in spread["alerts"]) == 0  # stationary traffic
    table = capsys.readouterr().out
    assert "by event id, 2 workers" in table
    assert "1,000,000 events/s of one model over 64 partitions" in table


def test_the_arithmetic_follows_from_the_measured_costs():
    measured = {
        "by model id, 1 worker": {"events_per_second": 20_000.0},
        "by event id, 1 worker": {
            "events_per_second": 18_000.0,
            "events_per_summary": 1_000.0,
            "steady_summary_bytes_mean": 10_000.0,
            "stage_2_cpu_us_per_summary": 800.0,
        },
    }
    sums = hot_model.arithmetic(measured, hot_model.Options())
    assert sums["stage_1_workers"] == 56  # ceil(1,000,000 / 18,000)
    assert sums["stage_1_workers_fit_partitions"]
    assert sums["measured"]["summaries_per_second"] == 1_000
    assert sums["measured"]["summary_megabytes_per_second"] == 10
    assert math.isclose(sums["measured"]["stage_2_core_share"], 0.8)
    # 56 workers on 64 partitions: full batches of 2,000 over 64/56 partitions each.
    assert math.isclose(sums["target"]["events_per_summary"], 2_000 * 56 / 64)
    assert math.isclose(sums["target"]["summaries_per_second"], 1_000_000 / 1_750)
    assert math.isclose(sums["target"]["stage_2_core_share"], 0.8 * 1_000 / 1_750)
    assert hot_model.arithmetic({"by model id, 1 worker": {}}, hot_model.Options()) == {}


def test_medians_leave_out_what_was_not_measured():
    runs = [
        {name: 1.0 for name in hot_model.NUMBERS},
        {name: 3.0 for name in hot_model.NUMBERS} | {"events_per_summary": math.nan},
    ]
    result = hot_model.medians(runs)
    assert result["events_per_second"] == 2.0
    assert result["events_per_summary"] == 1.0
