import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.monitors.reference import NumericReference, build_reference
from driftline.reference_build import (
    ReferenceBuildError,
    build_reference_file,
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
