"""The second stage's label benchmark on a tiny size: every label is taken, once.

No figure is compared with a speed: the benchmark shows speed, tests only
check that what it measured is whole.
"""

import sys
from pathlib import Path

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import stage_two_labels
finally:
    sys.path.remove(ROOT)


def test_every_label_of_every_partition_is_taken_once():
    options = stage_two_labels.Options(events=3_000, partitions=4, batch=100)
    result = stage_two_labels.run(options, stage_two_labels.summaries(options))
    assert result.labels == result.labelled == 3_000
    assert result.take_us > 0
    assert result.bytes_per_label > 0
