import json

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from driftline.schemas.reference import (
    MAX_SKETCH_POINTS,
    CategoricalCounts,
    NumericSketch,
    ReferenceProfile,
)
from driftline.schemas.registry import registry_key

SKETCH = {
    "kind": "numeric",
    "count": 8,
    "values": [0.0, 1.0, 4.0],
    "cdf_below": [0.0, 0.5, 0.9375],
    "cdf_at": [0.5, 0.5625, 0.9375],
}
COUNTS = {"kind": "categorical", "count": 10, "counts": {"free": 6, "pro": 3}, "other": 1}
PROFILE = {
    "schema_version": 1,
    "model_id": "churn",
    "model_version": "3",
    "source": "file:train.csv",
    "event_count": 10,
    "features": {"tenure": SKETCH, "spend": {**SKETCH, "count": 9}, "plan": COUNTS},
    "correlation": [[1.0, 0.25], [0.25, 1.0]],
    "correlation_features": ["tenure", "spend"],
    "serial_correlation": {"tenure": 0.1},
}


def with_(base: dict, **changes) -> dict:
    return {**base, **changes}


def refusal(model, data: dict) -> str:
    with pytest.raises(ValidationError) as error:
        model.model_validate_json(json.dumps(data))
    return str(error.value)


# Numeric sketches


def test_a_sketch_reads_and_round_trips():
    sketch = NumericSketch.model_validate_json(json.dumps(SKETCH))
    assert (sketch.minimum, sketch.maximum) == (0.0, 4.0)
    assert json.loads(sketch.model_dump_json()) == SKETCH


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cdf_at": [0.5, 0.5625]}, "equally long, got 3, 3 and 2"),
        ({"values": [0.0, 1.0, 1.0]}, "values[2] = 1.0 is not above values[1] = 1.0"),
        ({"values": [0.0, -1.0, 4.0]}, "values[1] = -1.0 is not above values[0] = 0.0"),
        ({"cdf_below": [0.0, 0.6, 0.9375]}, "cdf_below[1] = 0.6 is above cdf_at[1] = 0.5625"),
        ({"cdf_below": [0.0, 0.4, 0.9375]}, "cdf_below[1] = 0.4 is below cdf_at[0] = 0.5"),
        ({"cdf_at": [0.5, 0.5625, 1.5]}, "less than or equal to 1"),
        ({"cdf_below": [-0.1, 0.5, 0.9375]}, "greater than or equal to 0"),
        ({"values": [], "cdf_below": [], "cdf_at": []}, "at least 1 item"),
        ({"count": 0}, "greater than 0"),
        ({"count": "8"}, "valid integer"),
        ({"kind": "categorical"}, "Input should be 'numeric'"),
        ({"extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_a_sketch_that_is_no_cdf_is_refused(changes, message):
    assert message in refusal(NumericSketch, with_(SKETCH, **changes))


def test_a_sketch_refuses_non_finite_values():
    with pytest.raises(ValidationError, match="finite number"):
        NumericSketch(count=1, values=[float("inf")], cdf_below=[0.0], cdf_at=[1.0])


def test_a_sketch_has_a_bounded_size():
    size = MAX_SKETCH_POINTS + 1
    data = with_(
        SKETCH,
        values=[float(i) for i in range(size)],
        cdf_below=[i / size for i in range(size)],
        cdf_at=[i / size for i in range(size)],
    )
    assert "at most 4096 items" in refusal(NumericSketch, data)


def test_shares_beyond_the_values_seen_are_allowed():
    sketch = NumericSketch(count=2, values=[1.0, 2.0], cdf_below=[0.25, 0.75], cdf_at=[0.25, 0.75])
    assert sketch.cdf_below[0] == 0.25


# Categorical counts


def test_counts_read_and_round_trip():
    counts = CategoricalCounts.model_validate_json(json.dumps(COUNTS))
    assert json.loads(counts.model_dump_json()) == COUNTS


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"other": 2}, "add up to 11, not to count (10)"),
        ({"other": -1}, "greater than or equal to 0"),
        ({"counts": {"free": 0, "pro": 9}}, "greater than 0"),
        ({"counts": {"x" * 257: 9}}, "at most 256 characters"),
        ({"counts": {str(i): 1 for i in range(1_001)}, "count": 1_002}, "at most 1000 items"),
    ],
)
def test_counts_that_do_not_add_up_are_refused(changes, message):
    assert message in refusal(CategoricalCounts, with_(COUNTS, **changes))


# Profiles


def test_a_profile_reads_its_features_by_kind():
    profile = ReferenceProfile.model_validate_json(json.dumps(PROFILE))
    assert isinstance(profile.features["tenure"], NumericSketch)
    assert isinstance(profile.features["plan"], CategoricalCounts)
    assert profile.registry_key() == registry_key("churn", "3") == b'["churn","3"]'
    assert json.loads(profile.model_dump_json()) == PROFILE


def test_a_profile_needs_no_correlations():
    data = {k: v for k, v in PROFILE.items() if "correlation" not in k}
    profile = ReferenceProfile.model_validate_json(json.dumps(data))
    assert (profile.correlation, profile.correlation_features) == (None, [])
    assert profile.serial_correlation == {}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"correlation": None}, "correlation_features are given but the correlation is not"),
        ({"correlation": [[1.0, 0.2], [0.25, 1.0]]}, "not symmetric: spend with tenure"),
        ({"correlation": [[1.0, 0.25], [0.25, 0.9]]}, "correlation of spend with itself is 0.9"),
        ({"correlation": [[1.0, 0.25]]}, "must be 2 by 2"),
        ({"correlation": [[1.0, 1.5], [1.5, 1.0]]}, "less than or equal to 1"),
        ({"correlation_features": ["tenure", "plan"]}, "not numeric features of the profile: plan"),
        ({"correlation_features": ["tenure", "tenure"]}, "more than once"),
        ({"serial_correlation": {"plan": 0.1}}, "not numeric features of the profile: plan"),
        ({"serial_correlation": {"tenure": -1.5}}, "greater than or equal to -1"),
        ({"schema_version": 2}, "Input should be 1"),
        ({"event_count": 0}, "greater than 0"),
        ({"source": ""}, "at least 1 character"),
        (
            {"features": {"x": {**SKETCH, "kind": "histogram"}}},
            "does not match any of the expected",
        ),
        ({"features": {"x": {k: v for k, v in SKETCH.items() if k != "kind"}}}, "'kind'"),
    ],
)
def test_an_inconsistent_profile_is_refused(changes, message):
    assert message in refusal(ReferenceProfile, with_(PROFILE, **changes))


def test_near_symmetry_within_a_billionth_is_accepted():
    data = with_(PROFILE, correlation=[[1.0, 0.25], [0.25 + 1e-12, 1.0 - 1e-12]])
    assert ReferenceProfile.model_validate_json(json.dumps(data)).correlation is not None


def test_a_profile_is_frozen():
    profile = ReferenceProfile.model_validate_json(json.dumps(PROFILE))
    with pytest.raises(ValidationError, match="frozen"):
        profile.event_count = 3  # type: ignore[misc]


def test_the_json_schema_accepts_a_profile():
    schema = ReferenceProfile.model_json_schema()
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(PROFILE)
    assert not Draft202012Validator(schema).is_valid(with_(PROFILE, event_count="10"))
