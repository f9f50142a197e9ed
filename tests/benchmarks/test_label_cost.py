"""The label-cost benchmark on a tiny size: every label is joined, and runs agree.

No figure is compared with a speed: the benchmark shows speed, tests only
check that what it measured is whole and the same from run to run.
"""

import sys
from pathlib import Path

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import label_cost
finally:
    sys.path.remove(ROOT)

TINY = label_cost.Options(layout="10-models", events=600, batch=100, runs=2)


def test_every_label_finds_its_prediction_and_runs_give_the_same_outputs():
    traffic = label_cost.traffic(TINY)
    first, second = (label_cost.run(TINY, *traffic) for _ in range(2))
    assert first.labels_joined == second.labels_joined == TINY.events - TINY.batch
    assert (first.outputs, first.digest) == (second.outputs, second.digest)
    assert first.prediction_us > 0
    assert first.label_us > 0
