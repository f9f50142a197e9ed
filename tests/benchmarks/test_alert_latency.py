"""Pooling alert-latency trials: the quantiles over every alert of every trial."""

import sys
from pathlib import Path

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks.alert_latency import pooled, summary
    from benchmarks.throughput import latency_line
finally:
    sys.path.remove(ROOT)


def trial(latencies: list[float], behind: float) -> dict:
    timed = [
        {"event_id": f"e{i}", "feature": "f0", "status": "open", "latency_seconds": seconds}
        for i, seconds in enumerate(latencies)
    ]
    return summary(timed, len(timed) + 1, 100.0, 1_000) | {"behind_at_end_seconds": behind}


def test_one_trial_is_its_own_figures():
    only = trial([0.1, 0.2, 0.3], 0.5)
    assert pooled([only]) is only
    assert "runs pooled" not in latency_line(only)


def test_trials_pool_their_alerts_and_keep_their_own_figures():
    quick, slow = trial([0.1] * 50, 0.2), trial([0.1] * 45 + [0.9] * 5, 0.7)
    both = pooled([quick, slow])
    assert both["alerts_timed"] == 100
    assert both["alerts"] == 102
    assert both["events"] == 2_000
    assert both["max_seconds"] == 0.9
    assert both["p50_seconds"] == 0.1
    assert 0.1 < both["p99_seconds"] <= 0.9  # five slow alerts of a hundred
    assert both["behind_at_end_seconds"] == 0.7
    assert [t["p99_seconds"] for t in both["trials"]] == [
        quick["p99_seconds"],
        slow["p99_seconds"],
    ]
    assert [alert["trial"] for alert in both["timed"]] == [0] * 50 + [1] * 50
    assert "2 runs pooled" in latency_line(both)
