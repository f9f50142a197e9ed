"""The reference-build memory benchmark on a small file: the command built the profile of every
row. No figure is compared with a size or a speed: the benchmark shows them."""

import os
import sys
from pathlib import Path

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import reference_build_memory
finally:
    sys.path.remove(ROOT)

ROWS = 20_000


def test_the_command_builds_the_profile_of_every_row_of_the_wide_file(tmp_path):
    result = reference_build_memory.measure(ROWS, sys.executable, None, tmp_path)
    assert (result.rows, result.profile_rows) == (ROWS, ROWS)
    assert result.profile_features == len(reference_build_memory.FEATURES) == 4
    assert result.columns == 24
    assert Path(result.code).name == "driftline"


def test_another_codes_folder_comes_first_on_the_childs_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "elsewhere")
    env = reference_build_memory.child_env(tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "elsewhere"]
    assert env["PYTHONSAFEPATH"] == "1"
    assert reference_build_memory.child_env(None)["PYTHONPATH"] == "elsewhere"
