import csv
import json
import math
import re
import tempfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from driftline import cli
from driftline import progress as progress_module
from driftline.monitors import reference as reference_module
from driftline.monitors.reference import NumericReference, build_reference
from driftline.reference_build import (
    ReferenceBuildError,
    build_reference_file,
    feature_columns,
    known_rows,
    read_columns,
    reference_build_command,
)
from driftline.schemas.reference import CategoricalCounts, NumericSketch, ReferenceProfile
from driftline.schemas.registry import FeatureKind, FeatureSpec, ModelSpec, TaskType
from driftline.specfiles import SpecFileError

SPEC = ModelSpec(
    model_id="churn",
    model_version="3",
    task=TaskType.CLASSIFICATION,
    classes=["stays", "leaves"],
    features=[
        FeatureSpec(name="tenure", kind=FeatureKind.NUMERIC, minimum=0),
        FeatureSpec(name="zip", kind=FeatureKind.CATEGORICAL),
        FeatureSpec(name="trial", kind=FeatureKind.BOOLEAN),
    ],
)

SPEC_YAML = """\
model_id: churn
model_version: "3"
task: classification
classes: [stays, leaves]
features:
  - {name: tenure, kind: numeric, minimum: 0}
  - {name: zip, kind: categorical}
  - {name: trial, kind: boolean}
"""

TWO_SPECS_YAML = """\
models:
  - model_id: churn
    model_version: "3"
    task: regression
    features: [{name: tenure, kind: numeric}]
  - model_id: churn
    model_version: "4"
    task: regression
    features: [{name: tenure, kind: numeric}, {name: zip, kind: categorical}]
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def event(i: int, features: dict, *, version: str = "3", model: str = "churn") -> str:
    return json.dumps(
        {
            "model_id": model,
            "model_version": version,
            "event_id": f"e-{i}",
            "event_time": "2026-01-01T00:00:00Z",
            "features": features,
            "prediction": "stays",
            "probabilities": {"stays": 0.8, "leaves": 0.2},
        }
    )


# CSV


def test_csv_cells_are_read_by_their_features_kind(tmp_path):
    path = write(
        tmp_path / "train.csv",
        "tenure,zip,trial,note\n3,02139,true,1.5\n,10001,FALSE,\nn/a,,1,true\n7.5,02139,0,x\n",
    )
    columns = read_columns(path, SPEC)
    assert columns == {
        "tenure": [3.0, None, "n/a", 7.5],
        "zip": ["02139", "10001", None, "02139"],
        "trial": [True, False, True, False],
        "note": ["1.5", None, "true", "x"],
    }


def test_csv_cells_are_guessed_without_a_spec(tmp_path):
    path = write(tmp_path / "data.csv", "a,b,c\n1,True,x\n2.5,false,\n")
    assert read_columns(path) == {"a": [1.0, 2.5], "b": [True, False], "c": ["x", None]}


def test_a_csv_file_builds_the_profile_its_values_give(tmp_path):
    rng = np.random.default_rng(1)
    tenure = rng.exponential(10.0, 2_000).round(2)
    zips = rng.choice(["02139", "10001", "94105"], 2_000)
    trial = rng.random(2_000) < 0.2
    lines = ["tenure,zip,trial"] + [
        f"{t},{z},{str(b).lower()}" for t, z, b in zip(tenure, zips, trial, strict=True)
    ]
    path = write(tmp_path / "train.csv", "\n".join(lines) + "\n")
    output = tmp_path / "reference.json"
    profile = build_reference_file(path, SPEC, output=output)
    expected = build_reference(
        SPEC,
        {"tenure": tenure.tolist(), "zip": zips.tolist(), "trial": trial.tolist()},
        source="file:train.csv",
        ordered=False,
    )
    assert profile == expected
    assert profile.source == "file:train.csv"
    assert ReferenceProfile.model_validate_json(output.read_text(encoding="utf-8")) == profile
    assert isinstance(profile.features["zip"], CategoricalCounts)
    assert set(profile.features["zip"].counts) == {"02139", "10001", "94105"}


def test_a_csv_row_with_too_many_cells_is_refused_with_its_line(tmp_path):
    path = write(tmp_path / "bad.csv", "tenure,zip\n1,a\n2,b,extra\n")
    with pytest.raises(ReferenceBuildError, match=r"bad.csv: line 3: 3 cells, but the header"):
        read_columns(path, SPEC)


def test_csv_rows_with_fewer_cells_have_missing_values(tmp_path):
    path = write(tmp_path / "short.csv", "tenure,zip\n1\n\n2,b\n")
    assert read_columns(path, SPEC) == {"tenure": [1.0, 2.0], "zip": [None, "b"]}


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path):
    path = write(tmp_path / "twice.csv", "tenure,zip,tenure\n1,a,2\n")
    with pytest.raises(ReferenceBuildError, match="line 1: columns named more than once: tenure"):
        read_columns(path)


def test_an_empty_csv_file_is_refused(tmp_path):
    with pytest.raises(ReferenceBuildError, match="the file is empty"):
        read_columns(write(tmp_path / "empty.csv", ""))
    with pytest.raises(ReferenceBuildError, match="no rows"):
        build_reference_file(write(tmp_path / "header.csv", "tenure,zip\n"), SPEC)


def test_a_csv_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("tenure\n4\n".encode("utf-8-sig"))
    assert read_columns(path, SPEC) == {"tenure": [4.0]}


# JSON Lines


def test_recorded_prediction_events_can_be_used_as_they_are(tmp_path):
    lines = [
        event(0, {"tenure": 3, "zip": "02139", "trial": True}),
        event(1, {"tenure": 5.5, "zip": "10001", "trial": False}),
        event(2, {"tenure": 1e9, "zip": "x"}, version="2"),
        event(3, {"tenure": 1e9, "zip": "x"}, model="fraud"),
        "",
        event(4, {"tenure": None, "zip": 7, "trial": True}),
        event(5, {"tenure": 8, "zip": "02139", "trial": False}),
    ]
    path = write(tmp_path / "events.jsonl", "\n".join(lines) + "\n")
    columns = read_columns(path)
    assert columns["features.tenure"] == [3, 5.5, 1e9, 1e9, None, 8]
    assert columns["features.trial"] == [True, False, None, None, True, False]
    assert columns["probabilities.stays"] == [0.8] * 6
    profile = build_reference_file(path, SPEC, ordered=True)
    assert profile.event_count == 4
    tenure = profile.features["tenure"]
    assert isinstance(tenure, NumericSketch)
    assert (tenure.count, tenure.values) == (3, [3.0, 5.5, 8.0])
    assert profile.features["zip"] == CategoricalCounts(
        count=3, counts={"02139": 2, "10001": 1}, other=0
    )
    assert profile.features["trial"].count == 4


def test_a_features_column_wins_over_a_top_level_one_of_the_same_name(tmp_path):
    spec = ModelSpec(
        model_id="m",
        model_version="1",
        task=TaskType.REGRESSION,
        features=[FeatureSpec(name="prediction", kind=FeatureKind.NUMERIC)],
    )
    lines = [
        json.dumps({"prediction": 100.0, "features": {"prediction": float(i)}}) for i in range(5)
    ]
    profile = build_reference_file(write(tmp_path / "e.jsonl", "\n".join(lines)), spec)
    assert profile.features["prediction"].count == 5
    assert isinstance(profile.features["prediction"], NumericSketch)
    assert profile.features["prediction"].maximum == 4.0


def test_an_invalid_json_line_is_refused_with_its_number(tmp_path):
    path = write(tmp_path / "bad.jsonl", '{"tenure": 1}\n\n{"tenure": 2,}\n')
    with pytest.raises(ReferenceBuildError, match=r"bad.jsonl: line 3: not valid JSON: .*column"):
        read_columns(path)
    path = write(tmp_path / "list.jsonl", '{"tenure": 1}\n[1, 2]\n')
    with pytest.raises(ReferenceBuildError, match="line 2: a JSON object is expected, not list"):
        read_columns(path)


def test_rows_of_another_model_version_only_are_refused(tmp_path):
    path = write(tmp_path / "v2.jsonl", event(0, {"tenure": 1}, version="2") + "\n")
    with pytest.raises(
        ReferenceBuildError,
        match=r"no rows of model churn version 3 \(model_id, model_version found: churn 2\)",
    ):
        build_reference_file(path, SPEC)


def test_a_file_without_any_feature_of_the_spec_is_refused(tmp_path):
    path = write(tmp_path / "other.jsonl", '{"age": 1}\n{"age": 2}\n')
    with pytest.raises(ReferenceBuildError, match=r"no values of any feature .*columns found: age"):
        build_reference_file(path, SPEC)


def test_text_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"zip": "caf\xe9"}\n')
    with pytest.raises(ReferenceBuildError, match="not UTF-8 text"):
        read_columns(path)


# Parquet


def test_a_parquet_file_with_nested_features_and_decimals(tmp_path):
    rng = np.random.default_rng(2)
    n = 1_000
    tenure = rng.exponential(10.0, n)
    table = pa.table(
        {
            "model_id": ["churn"] * n,
            "model_version": ["3"] * n,
            "features": pa.StructArray.from_arrays(
                [
                    pa.array(tenure),
                    pa.array(rng.choice(["a", "b"], n)).dictionary_encode(),
                    pa.array(rng.random(n) < 0.5),
                ],
                names=["tenure", "zip", "trial"],
            ),
            "price": pa.array([Decimal("1.25")] * n, pa.decimal128(10, 2)),
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    columns = read_columns(path)
    assert sorted(columns) == [
        "features.tenure",
        "features.trial",
        "features.zip",
        "model_id",
        "model_version",
        "price",
    ]
    assert columns["price"][0] == 1.25
    profile = build_reference_file(path, SPEC)
    assert profile.event_count == n
    reference = NumericReference.from_values(tenure)
    assert profile.features["tenure"] == reference.to_sketch()
    assert profile.features["zip"].count == n
    assert profile.features["trial"].count == n


def test_a_file_that_is_not_parquet_is_refused(tmp_path):
    path = write(tmp_path / "fake.parquet", "tenure\n1\n")
    with pytest.raises(ReferenceBuildError, match=r"fake\.parquet: cannot read the Parquet file"):
        read_columns(path)


def test_an_unknown_kind_of_file_is_refused(tmp_path):
    with pytest.raises(ReferenceBuildError, match=r"unknown kind of file '.xlsx'"):
        read_columns(tmp_path / "data.xlsx")


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ReferenceBuildError, match="cannot read the file"):
        read_columns(tmp_path / "absent.csv")


# The command


def test_the_command_builds_from_a_spec_file_and_writes_the_profile(tmp_path):
    spec_path = write(tmp_path / "churn.yaml", SPEC_YAML)
    data = write(tmp_path / "train.csv", "tenure,zip,trial\n1,a,true\n2,b,false\n3,a,true\n")
    output = tmp_path / "out" / "reference.json"
    output.parent.mkdir()
    profile = reference_build_command(data, spec_path, output)
    assert (profile.model_id, profile.model_version, profile.event_count) == ("churn", "3", 3)
    assert sorted(profile.features) == ["tenure", "trial", "zip"]
    assert ReferenceProfile.model_validate_json(output.read_text(encoding="utf-8")) == profile
    assert reference_build_command(data, spec_path, None) == profile


def test_the_command_picks_one_spec_of_several(tmp_path):
    spec_path = write(tmp_path / "models.yaml", TWO_SPECS_YAML)
    data = write(tmp_path / "train.csv", "tenure,zip\n1,a\n2,b\n")
    with pytest.raises(ReferenceBuildError, match=r"holds 2 specs of model churn; choose one"):
        reference_build_command(data, spec_path, None, model="churn")
    with pytest.raises(ReferenceBuildError, match=r"holds 2 specs; choose one"):
        reference_build_command(data, spec_path, None)
    with pytest.raises(ReferenceBuildError, match=r"no spec of model churn version 5 \(it holds"):
        reference_build_command(data, spec_path, None, model="churn", version="5")
    profile = reference_build_command(data, spec_path, None, version="4")
    assert sorted(profile.features) == ["tenure", "zip"]


def test_the_command_reports_an_invalid_spec_file(tmp_path):
    spec_path = write(tmp_path / "bad.yaml", "model_id: churn\n")
    data = write(tmp_path / "train.csv", "tenure\n1\n")
    with pytest.raises(SpecFileError, match=r"bad\.yaml"):
        reference_build_command(data, spec_path, None)


def test_an_unwritable_output_is_reported(tmp_path):
    data = write(tmp_path / "train.csv", "tenure\n1\n")
    with pytest.raises(ReferenceBuildError, match="cannot write the profile"):
        build_reference_file(data, SPEC, output=tmp_path / "missing" / "out.json")


def test_the_profile_json_is_small_for_a_realistic_file(tmp_path):
    rng = np.random.default_rng(3)
    n = 50_000
    lines = ["tenure,zip,trial"] + [
        f"{t:.3f},{z},{b}"
        for t, z, b in zip(
            rng.lognormal(2.0, 1.0, n),
            rng.choice([f"{i:05d}" for i in range(300)], n),
            rng.choice(["true", "false"], n),
            strict=True,
        )
    ]
    path = write(tmp_path / "big.csv", "\n".join(lines))
    output = tmp_path / "reference.json"
    build_reference_file(path, SPEC, output=output)
    size = output.stat().st_size
    assert size < 40 * 1024
    assert not math.isnan(size)


# Batches: the profile is the one the whole columns give


def whole_file_profile(path: Path, spec: ModelSpec, *, ordered: bool = False):
    """The profile as the module describes it, from every column read whole (``read_columns``):
    the rows of the spec's model version, each feature's column, then ``build_reference``.
    None where there is no profile to build (no row of the version, no value of a feature)."""
    columns = read_columns(path, spec)
    tags = {name: getattr(spec, name) for name in ("model_id", "model_version") if name in columns}
    rows = len(next(iter(columns.values()), []))
    keep = [r for r in range(rows) if all(columns[n][r] == v for n, v in tags.items())]
    found = feature_columns(columns, spec)
    if not keep or not found:
        return None
    features = {name: [column[r] for r in keep] for name, column in found.items()}
    profile = build_reference(spec, features, source=f"file:{path.name}", ordered=ordered)
    return profile if profile.features else None


def assert_batches_change_nothing(path: Path, spec: ModelSpec = SPEC) -> ReferenceProfile:
    """Every batch size builds the whole-file profile, or refuses the file when there is none."""
    for ordered in (False, True):
        expected = whole_file_profile(path, spec, ordered=ordered)
        for batch_rows in (1, 3, 64, 1_000_000):
            if expected is None:
                with pytest.raises(ReferenceBuildError):
                    build_reference_file(path, spec, ordered=ordered, batch_rows=batch_rows)
            else:
                built = build_reference_file(path, spec, ordered=ordered, batch_rows=batch_rows)
                assert built == expected, (batch_rows, ordered)
    return expected


def mixed_rows(n: int, seed: int) -> list[dict]:
    """Rows of two model versions and two models, with missing values and values of the wrong
    type in every feature."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        tenure = rng.choice([float(rng.exponential(9.0)), int(rng.integers(0, 50)), None, "n/a"])
        rows.append(
            {
                "model_id": "fraud" if i % 11 == 0 else "churn",
                "model_version": "2" if i % 4 == 0 else "3",
                "tenure": tenure,
                "zip": rng.choice(["02139", "10001", "94105", None, 7]),
                "trial": rng.choice([True, False, None, 1]),
                "note": f"row {i}",
            }
        )
    return rows


def test_csv_batches_of_any_size_give_the_whole_files_profile(tmp_path):
    lines = ["model_id,model_version,tenure,zip,trial,note"] + [
        ",".join("" if value is None else str(value) for value in row.values())
        for row in mixed_rows(500, seed=4)
    ]
    expected = assert_batches_change_nothing(write(tmp_path / "t.csv", "\n".join(lines)))
    assert expected is not None
    assert sorted(expected.features) == ["tenure", "trial", "zip"]


def test_json_lines_batches_of_any_size_give_the_whole_files_profile(tmp_path):
    rows = [json.dumps(row) for row in mixed_rows(500, seed=5)]
    # A model version named only from the 50th row on, a features object only from the 400th:
    # the rows before lack them, as the whole columns would have it.
    rows[:50] = [json.dumps({"tenure": 1.0 + i}) for i in range(50)]
    rows[400:] = [
        json.dumps({**json.loads(row), "features": {"tenure": 2.0}}) for row in rows[400:]
    ]
    expected = assert_batches_change_nothing(write(tmp_path / "t.jsonl", "\n".join(rows)))
    assert expected is not None
    assert expected.features["tenure"].maximum == 2.0


def parquet_of_mixed_rows(path: Path, n: int, seed: int, row_group_size: int) -> Path:
    rng = np.random.default_rng(seed)
    missing = rng.random(n) < 0.1
    tenure = rng.exponential(9.0, n)
    tenure[rng.random(n) < 0.02] = np.inf
    table = pa.table(
        {
            "model_id": pa.array(
                np.where(np.arange(n) % 11 == 0, "fraud", "churn")
            ).dictionary_encode(),
            "model_version": pa.array(np.where(np.arange(n) % 4 == 0, "2", "3")),
            "features": pa.StructArray.from_arrays(
                [
                    pa.array(tenure, mask=missing),
                    pa.array(rng.choice(["a", "b", "c"], n), mask=missing).dictionary_encode(),
                    pa.array(rng.random(n) < 0.3, mask=missing),
                ],
                names=["tenure", "zip", "trial"],
            ),
            "price": pa.array([Decimal(i) / 4 for i in range(n)], pa.decimal128(12, 2)),
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_parquet_batches_of_any_size_give_the_whole_files_profile(tmp_path):
    # Row groups of 70 rows: batches end at each, and some hold a struct of dictionaries.
    path = parquet_of_mixed_rows(tmp_path / "t.parquet", 500, seed=6, row_group_size=70)
    expected = assert_batches_change_nothing(path)
    assert expected is not None
    assert sorted(expected.features) == ["tenure", "trial", "zip"]


def test_parquet_columns_of_every_type_give_the_whole_files_profile(tmp_path):
    n = 300
    rng = np.random.default_rng(7)
    numbers = rng.normal(size=n)
    numbers[::17] = np.nan
    numbers[::23] = -np.inf
    mask = rng.random(n) < 0.1
    kinds = {
        "int64": pa.array(rng.integers(-(2**62), 2**62, n), mask=mask),
        "int8": pa.array(rng.integers(-100, 100, n).astype(np.int8), mask=mask),
        "uint64": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64), mask=mask),
        "float32": pa.array(numbers.astype(np.float32), mask=mask),
        "float64": pa.array(numbers, mask=mask),
        "float16": pa.array(numbers.astype(np.float16)),
        "bool": pa.array(rng.random(n) < 0.5, mask=mask),
        "string": pa.array(rng.choice(["1.5", "true", "x"], n), mask=mask),
        "decimal": pa.array([Decimal(i) / 8 for i in range(n)], pa.decimal128(10, 3)),
        "timestamp": pa.array(rng.integers(0, 10**9, n), pa.timestamp("s")),
        "list": pa.array([[float(i)] for i in range(n)]),
    }
    summarised = {}
    for name, column in kinds.items():
        for other in ("int8", "bool", "string"):
            table = pa.table({"tenure": column, "trial": column, "zip": kinds[other]})
            path = tmp_path / f"{name}-{other}.parquet"
            pq.write_table(table, path, row_group_size=128)
            profile = assert_batches_change_nothing(path)
            summarised[name, other] = sorted(profile.features) if profile else []
    for name in ("int64", "int8", "uint64", "float32", "float64", "decimal"):
        assert summarised[name, "string"] == ["tenure", "zip"], name
    assert summarised["bool", "string"] == ["trial", "zip"]
    assert summarised["list", "int8"] == []


def test_errors_name_what_every_batch_held_and_the_line_at_fault(tmp_path):
    lines = ["model_version,tenure"] + [f"{1 + i % 2},{i}" for i in range(6)]
    path = write(tmp_path / "t.csv", "\n".join(lines))
    for batch_rows in (1, 4, 100):
        with pytest.raises(ReferenceBuildError, match=r"\(model_version found: 1, 2\)$"):
            build_reference_file(path, SPEC, batch_rows=batch_rows)
    path = write(tmp_path / "bad.csv", "\n".join([*lines[:5], "3,1,extra"]))
    with pytest.raises(ReferenceBuildError, match=r"bad.csv: line 6: 3 cells"):
        build_reference_file(path, SPEC, batch_rows=2)


def test_only_the_specs_columns_are_read_from_parquet(tmp_path, monkeypatch):
    path = parquet_of_mixed_rows(tmp_path / "t.parquet", 100, seed=8, row_group_size=100)
    asked = []
    iter_batches = pq.ParquetFile.iter_batches

    def recording(self, *args, columns=None, **kwargs):
        asked.append(columns)
        return iter_batches(self, *args, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    build_reference_file(path, SPEC)
    wanted = ["model_id", "model_version", "features.tenure", "features.zip", "features.trial"]
    assert asked == [wanted]


@settings(max_examples=100, deadline=None)
@given(
    cells=st.lists(
        st.tuples(
            st.sampled_from(["3", "2", ""]),
            *[
                st.one_of(
                    st.sampled_from(["", " ", "1", "0", "TRUE", "false", "nan", "-inf", "1e3"]),
                    st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=5),
                )
            ]
            * 3,
        ),
        max_size=30,
    ),
    batch_rows=st.integers(1, 8),
)
def test_any_csv_cells_give_the_whole_files_profile(cells, batch_rows):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.csv"
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["model_version", "tenure", "zip", "trial"])
            writer.writerows(cells)
        expected = whole_file_profile(path, SPEC)
        if expected is None:
            with pytest.raises(ReferenceBuildError):
                build_reference_file(path, SPEC, batch_rows=batch_rows)
        else:
            assert build_reference_file(path, SPEC, batch_rows=batch_rows) == expected


def test_scores_taken_a_batch_at_a_time_are_the_scores_taken_whole(monkeypatch):
    rng = np.random.default_rng(9)
    n = 3_000
    columns = {
        "tenure": np.where(rng.random(n) < 0.1, np.nan, rng.poisson(4.0, n).astype(float)),
        "trial": (rng.random(n) < 0.3).astype(float),
    }
    whole = build_reference(SPEC, columns, source="t", ordered=True)
    monkeypatch.setattr(reference_module, "SCORE_BATCH", 7)
    assert build_reference(SPEC, columns, source="t", ordered=True) == whole
    assert whole.correlation is not None
    assert whole.serial_correlation


# Progress


def test_the_rows_read_are_told_batch_by_batch(tmp_path):
    lines = ["model_version,tenure"] + [f"{2 + i % 2},{i}" for i in range(250)]
    told = []
    build_reference_file(
        write(tmp_path / "t.csv", "\n".join(lines)), SPEC, batch_rows=100, progress=told.append
    )
    assert told == [100, 100, 50]
    path = parquet_of_mixed_rows(tmp_path / "t.parquet", 250, seed=10, row_group_size=120)
    told.clear()
    build_reference_file(path, SPEC, batch_rows=100, progress=told.append)
    assert told == [100, 20, 100, 20, 10]
    assert known_rows(path) == 250
    events = write(tmp_path / "t.jsonl", "\n".join(event(i, {"tenure": i}) for i in range(250)))
    told.clear()
    build_reference_file(events, SPEC, batch_rows=100, progress=told.append)
    assert sum(told) == 250
    assert known_rows(events) is None
    assert known_rows(write(tmp_path / "fake.parquet", "tenure\n1\n")) is None


def run_the_command(data: Path, folder: Path):
    spec_path = write(folder / "churn.yaml", SPEC_YAML)
    output = folder / "reference.json"
    result = CliRunner().invoke(
        cli.app,
        ["reference", "build", str(data), "--spec", str(spec_path), "--output", str(output)],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("reference of model churn version 3: 2 rows")
    return result


def test_the_command_draws_no_progress_when_its_output_is_piped(tmp_path):
    data = write(tmp_path / "train.csv", "tenure,zip,trial\n1,a,true\n2,b,false\n")
    assert run_the_command(data, tmp_path).stderr == ""


def test_the_command_draws_the_rows_read_of_the_files_rows_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream: True)
    data = tmp_path / "train.parquet"
    pq.write_table(pa.table({"tenure": [1.0, 2.0], "zip": ["a", "b"]}), data)
    drawn = run_the_command(data, tmp_path).stderr
    assert re.search(r"reading train\.parquet .*2/2 rows, [\d,]+/s", drawn), drawn


def test_a_folder_of_parquet_files_reads_as_one_with_its_partition_columns(tmp_path):
    """A Spark-style folder: part files in ``model_version=...`` folders (the version is in
    the folder's name only), read as the single file they were cut from."""
    import pyarrow.dataset as ds

    single = parquet_of_mixed_rows(tmp_path / "t.parquet", 500, seed=7, row_group_size=70)
    folder = tmp_path / "spark-output.parquet"
    ds.write_dataset(
        pq.read_table(single),
        folder,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("model_version", pa.string())]), flavor="hive"),
        max_rows_per_file=120,
        max_rows_per_group=120,
    )
    assert (folder / "model_version=3").is_dir()
    assert known_rows(folder) == 500
    told: list[int] = []
    from_folder = build_reference_file(folder, SPEC, batch_rows=64, progress=told.append)
    assert sum(told) == 500
    from_file = build_reference_file(single, SPEC)
    # The same rows, in another order (by partition): the same sketches.
    assert from_folder.event_count == from_file.event_count
    assert from_folder.features == from_file.features
