"""Peak memory of ``driftline reference build`` on a wide Parquet file.

Writes a seeded Parquet file of 1,000,000 rows and 24 columns (20 numeric,
4 categorical) and the spec of a model with 4 of them as features (3
numeric, 1 categorical) into a temporary folder, runs ``driftline reference
build`` on them in a child process of its own, and prints the child's peak
resident memory (its ``ru_maxrss``, from ``wait4``) and wall time (start-up
and imports included), with the profile's row count as a check that it did
the work, and the peak of a child that only imports what the command
imports before it reads a row (the floor).

A child's ``ru_maxrss`` counts the memory of the process that started it,
as it was then (the child begins as a copy of it): this script imports
neither numpy nor pyarrow, writes the file in a child of its own, and
prints its own peak, which stays far below the figures.

    python benchmarks/reference_build_memory.py [--rows N] [--json PATH]

Another version of the code runs with ``--python`` (its interpreter) and
``--pythonpath`` (a folder holding its ``driftline`` package, put first on
the child's path): an A/B on the same file, for instance against a commit
installed into a folder of its own::

    git archive COMMIT | tar -xf - -C OLD/src
    .venv/bin/pip install -q --no-deps --target OLD/pkg OLD/src
    python benchmarks/reference_build_memory.py --pythonpath OLD/pkg

The line ``code:`` says which package the child imported. Run the two one
after the other, never beside another heavy job: they share the memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SEED = 20_260_101
ROWS = 1_000_000
NUMERIC_COLUMNS = 20
CATEGORICAL_COLUMNS = 4
FEATURES = ["tenure_months", "monthly_spend", "sessions", "plan"]
"""The spec's features: the first three numeric columns and the first categorical one."""

SPEC_YAML = """\
model_id: churn
model_version: "3"
task: classification
classes: [stays, leaves]
features:
  - {name: tenure_months, kind: numeric, minimum: 0}
  - {name: monthly_spend, kind: numeric, minimum: 0}
  - {name: sessions, kind: numeric, minimum: 0}
  - {name: plan, kind: categorical}
"""

IMPORTS = "import driftline.cli, driftline.reference_build, pyarrow.parquet"
"""What the command imports before it reads a row: its memory is the floor of the figure."""


@dataclass(frozen=True)
class Result:
    rows: int
    columns: int
    file_mib: float
    code: str
    peak_mib: float
    imports_mib: float
    seconds: float
    profile_rows: int
    profile_features: int


def write_table(path: Path, rows: int) -> None:
    """A seeded table: 20 numeric columns of assorted shapes, 4 categorical ones."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    numeric = {
        "tenure_months": rng.integers(0, 120, rows).astype(np.float64),
        "monthly_spend": rng.lognormal(3.0, 0.6, rows).round(2),
        "sessions": rng.poisson(12.0, rows).astype(np.float64),
    }
    for i in range(len(numeric), NUMERIC_COLUMNS):
        shape = i % 3
        values = (
            rng.normal(50.0, 10.0, rows)
            if shape == 0
            else rng.exponential(5.0, rows)
            if shape == 1
            else rng.uniform(-1.0, 1.0, rows)
        )
        numeric[f"x{i:02d}"] = values
    categories = {
        "plan": ["free", "basic", "pro", "team"],
        "country": [f"c{i:02d}" for i in range(40)],
        "device": ["ios", "android", "web"],
        "channel": [f"ch-{i}" for i in range(12)],
    }
    columns = {name: pa.array(v) for name, v in numeric.items()}
    for name, names in list(categories.items())[:CATEGORICAL_COLUMNS]:
        codes = pa.array(rng.integers(0, len(names), rows).astype(np.int32))
        columns[name] = pa.DictionaryArray.from_arrays(codes, pa.array(names)).cast(pa.string())
    pq.write_table(pa.table(columns), path)


def child_env(pythonpath: Path | None) -> dict[str, str]:
    """The environment of the child: the project's root never on its path, another code's first."""
    env = dict(os.environ, PYTHONSAFEPATH="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (str(pythonpath), os.environ.get("PYTHONPATH", "")) if part
        )
    return env


def imported_from(python: str, env: dict[str, str]) -> str:
    """The folder of the driftline package the child imports."""
    probe = "import driftline, pathlib; print(pathlib.Path(driftline.__file__).parent)"
    return subprocess.run(
        [python, "-c", probe], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def run_child(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Run the command; its peak resident memory in MiB (from ``wait4``) and its seconds."""
    with log.open("wb") as output:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, cwd=log.parent, stdout=output, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"the command failed ({child.returncode}):\n{log.read_text()}")
    return usage.ru_maxrss / 1024, seconds  # KiB on Linux


def measure(rows: int, python: str, pythonpath: Path | None, folder: Path) -> Result:
    """Write the file and spec into ``folder``, build the reference in a child, and measure it."""
    data, spec, output = folder / "wide.parquet", folder / "churn.yaml", folder / "reference.json"
    writer = [sys.executable, str(Path(__file__).resolve()), "--rows", str(rows)]
    subprocess.run([*writer, "--write-data", str(data)], check=True)
    spec.write_text(SPEC_YAML, encoding="utf-8")
    env = child_env(pythonpath)
    command = [python, "-m", "driftline", "reference", "build", str(data)]
    command += ["--spec", str(spec), "--output", str(output)]
    peak_mib, seconds = run_child(command, env, folder / "child.log")
    imports_mib, _ = run_child([python, "-c", IMPORTS], env, folder / "imports.log")
    profile = json.loads(output.read_text(encoding="utf-8"))
    return Result(
        rows=rows,
        columns=NUMERIC_COLUMNS + CATEGORICAL_COLUMNS,
        file_mib=data.stat().st_size / 2**20,
        code=imported_from(python, env),
        peak_mib=peak_mib,
        imports_mib=imports_mib,
        seconds=seconds,
        profile_rows=profile["event_count"],
        profile_features=len(profile["features"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--python", default=sys.executable, help="the child's interpreter")
    parser.add_argument(
        "--pythonpath", type=Path, help="a folder with another driftline package, put first"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--write-data", type=Path, help=argparse.SUPPRESS)  # the writing child
    args = parser.parse_args()
    if args.write_data is not None:
        write_table(args.write_data, args.rows)
        return
    with tempfile.TemporaryDirectory(prefix="reference-build-memory-") as folder:
        result = measure(args.rows, args.python, args.pythonpath, Path(folder))
    print(
        f"reference build: {result.rows:,} rows x {result.columns} columns of Parquet "
        f"({result.file_mib:,.0f} MiB), a spec of {len(FEATURES)} features"
    )
    print(f"code: {result.code}")
    print(
        f"peak resident memory {result.peak_mib:,.0f} MiB (the imports alone: "
        f"{result.imports_mib:,.0f} MiB), {result.seconds:.1f} s wall"
    )
    print(f"profile of {result.profile_rows:,} rows, {result.profile_features} features")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this script's own peak: {own:,.0f} MiB")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
