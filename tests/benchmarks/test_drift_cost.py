"""The drift-cost benchmark on a tiny size: each event is timed in one phase; no speed checked."""

import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import drift_cost
finally:
    sys.path.remove(ROOT)

TINY = drift_cost.Options(warmup_events=200, shifted_events=100, batch=50, onset_events=300, runs=1)
MODELS = 10


def test_every_event_is_timed_in_exactly_one_phase():
    costs = drift_cost.replay_costs(TINY, *drift_cost.traffic(TINY, shifted=True))
    assert set(costs) == set(drift_cost.PHASES)
    assert sum(events for events, _ in costs.values()) == MODELS * (200 + 100)
    # The ten warm-ups end within the last batch of the warm-up's events.
    assert costs["warm-ups end"][0] == TINY.batch
    assert costs["onset"][0] == TINY.onset_events
    assert costs["later"][0] == MODELS * 100 - TINY.onset_events
    assert all(seconds >= 0 for _, seconds in costs.values())


def test_the_table_has_every_phase_with_and_without_the_shift():
    figures = drift_cost.measure(TINY)
    assert set(figures) == {"drift", "quiet"}
    for kind in figures.values():
        assert all(kind[phase] is not None and kind[phase] >= 0 for phase in drift_cost.PHASES)
    table = drift_cost.lines(figures, TINY)
    assert [row.split()[0] for row in table[2:]] == ["warm-up", "warm-ups", "onset", "later"]


def test_batches_and_runs_must_be_positive():
    with pytest.raises(SystemExit):
        drift_cost.parse_options(["--batch", "0"])
    assert drift_cost.parse_options(["--batch", "2000", "--runs", "1"]).batch == 2000
