import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.schemas import FeatureKind, FeatureSpec, ModelSpec, TaskType, registry_key

SPEC = {
    "model_id": "churn",
    "model_version": "3",
    "task": "classification",
    "classes": ["stays", "leaves"],
    "features": [
        {"name": "tenure", "kind": "numeric", "minimum": 0, "maximum": 600},
        {"name": "plan", "kind": "categorical", "categories": ["free", "pro"]},
        {"name": "trial", "kind": "boolean", "nullable": True},
    ],
}


def spec_with(**changes) -> str:
    return json.dumps({**SPEC, **changes})


def feature(**fields) -> str:
    return json.dumps({"name": "f", "kind": "numeric", **fields})


def messages(error: ValidationError) -> list[str]:
    return [e["msg"] for e in error.errors()]


def test_a_valid_spec_parses_with_its_defaults():
    spec = ModelSpec.model_validate_json(spec_with())
    assert spec.task is TaskType.CLASSIFICATION
    assert spec.feature("plan").kind is FeatureKind.CATEGORICAL
    assert spec.feature("tenure").minimum == 0.0
    assert spec.quality_window == 1000
    assert spec.schema_version == 1
    with pytest.raises(KeyError):
        spec.feature("age")
    assert ModelSpec.model_validate_json(spec.model_dump_json()) == spec


def test_missing_values_are_tolerated_at_1_percent_unless_a_feature_is_nullable():
    spec = ModelSpec.model_validate_json(spec_with())
    assert spec.feature("tenure").tolerated_missing_rate == 0.01
    assert spec.feature("trial").tolerated_missing_rate is None
    nullable = FeatureSpec.model_validate_json(feature(nullable=True, max_missing_rate=0.2))
    assert nullable.tolerated_missing_rate == 0.2


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"name": "plan", "kind": "categorical", "minimum": 0},
            "feature 'plan' is categorical: minimum and maximum apply to numeric features only",
        ),
        (
            {"name": "trial", "kind": "boolean", "maximum": 1},
            "feature 'trial' is boolean: minimum and maximum apply to numeric features only",
        ),
        (
            {"name": "age", "kind": "numeric", "categories": ["young"]},
            "feature 'age' is numeric: categories apply to categorical features only",
        ),
        (
            {"name": "trial", "kind": "boolean", "categories": ["yes"]},
            "feature 'trial' is boolean: categories apply to categorical features only",
        ),
        (
            {"name": "age", "kind": "numeric", "minimum": 10, "maximum": 1},
            "feature 'age': minimum 10.0 is above maximum 1.0",
        ),
        (
            {"name": "plan", "kind": "categorical", "categories": ["a", "b", "a"]},
            "feature 'plan': categories are listed more than once",
        ),
    ],
)
def test_inconsistent_features_are_refused_naming_the_feature(fields, expected):
    with pytest.raises(ValidationError) as caught:
        FeatureSpec.model_validate_json(json.dumps(fields))
    assert messages(caught.value) == [f"Value error, {expected}"]


def test_a_feature_refused_inside_a_spec_is_named_with_its_place():
    features = [*SPEC["features"], {"name": "plan2", "kind": "boolean", "minimum": 0}]
    with pytest.raises(ValidationError) as caught:
        ModelSpec.model_validate_json(spec_with(features=features))
    [error] = caught.value.errors()
    assert error["loc"] == ("features", 3)
    assert "feature 'plan2' is boolean" in error["msg"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "NUMERIC"}, "kind"),
        ({"kind": "number"}, "kind"),
        ({"kind": 1}, "kind"),
        ({"name": ""}, "name"),
        ({"name": "n" * 257}, "name"),
        ({"name": 5}, "name"),
        ({"nullable": "yes"}, "nullable"),
        ({"nullable": 1}, "nullable"),
        ({"monitor": "false"}, "monitor"),
        ({"minimum": "0"}, "minimum"),
        ({"minimum": True}, "minimum"),
        ({"maximum": float("inf")}, "maximum"),
        ({"max_missing_rate": 1.5}, "max_missing_rate"),
        ({"max_out_of_range_rate": -0.1}, "max_out_of_range_rate"),
        ({"max_unseen_category_rate": "0.1"}, "max_unseen_category_rate"),
        ({"max_type_violation_rate": None}, "max_type_violation_rate"),
        ({"kind": "categorical", "categories": []}, "categories"),
        ({"kind": "categorical", "categories": [""]}, "categories"),
        ({"kind": "categorical", "categories": [1, 2]}, "categories"),
        ({"kind": "categorical", "categories": "free"}, "categories"),
        ({"description": "a feature"}, "description"),
    ],
)
def test_feature_fields_are_strict_and_refused_by_name(fields, field):
    with pytest.raises(ValidationError) as caught:
        FeatureSpec.model_validate_json(feature(**fields))
    assert {e["loc"][0] for e in caught.value.errors()} == {field}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"task": "regression", "classes": ["a", "b"]},
            "a regression model has no classes",
        ),
        ({"classes": ["stays", "leaves", "stays"]}, "classes are listed more than once"),
        (
            {
                "features": [
                    {"name": "x", "kind": "numeric"},
                    {"name": "y", "kind": "numeric"},
                    {"name": "x", "kind": "boolean"},
                    {"name": "y", "kind": "numeric"},
                ]
            },
            "features listed more than once: x, y",
        ),
    ],
)
def test_inconsistent_specs_are_refused_saying_why(changes, expected):
    with pytest.raises(ValidationError) as caught:
        ModelSpec.model_validate_json(spec_with(**changes))
    assert messages(caught.value) == [f"Value error, {expected}"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"task": "ranking"}, "task"),
        ({"task": "Classification"}, "task"),
        ({"model_version": 3}, "model_version"),
        ({"model_id": ""}, "model_id"),
        ({"classes": ["only"]}, "classes"),
        ({"classes": ["a", 1]}, "classes"),
        ({"quality_window": 0}, "quality_window"),
        ({"quality_window": 1_000_001}, "quality_window"),
        ({"quality_window": 10.0}, "quality_window"),
        ({"quality_window": "1000"}, "quality_window"),
        ({"features": {"x": "numeric"}}, "features"),
        ({"features": [{"name": "x"}]}, "features"),
        ({"schema_version": 2}, "schema_version"),
        ({"owner": "team-a"}, "owner"),
    ],
)
def test_spec_fields_are_strict_and_refused_by_name(changes, field):
    with pytest.raises(ValidationError) as caught:
        ModelSpec.model_validate_json(spec_with(**changes))
    assert {e["loc"][0] for e in caught.value.errors()} == {field}


def test_a_spec_needs_its_identity_task_and_features():
    with pytest.raises(ValidationError) as caught:
        ModelSpec.model_validate_json("{}")
    missing = {e["loc"][0] for e in caught.value.errors() if e["type"] == "missing"}
    assert missing == {"model_id", "model_version", "task", "features"}


def test_a_regression_spec_may_have_no_features_and_no_classes():
    spec = ModelSpec.model_validate_json(
        json.dumps(
            {"model_id": "price", "model_version": "1", "task": "regression", "features": []}
        )
    )
    assert (spec.classes, spec.features) == (None, [])


def test_specs_are_frozen():
    spec = ModelSpec.model_validate_json(spec_with())
    with pytest.raises(ValidationError):
        spec.model_version = "4"


def test_the_registry_key_is_the_json_array_of_id_and_version():
    spec = ModelSpec.model_validate_json(spec_with())
    assert spec.registry_key() == registry_key("churn", "3") == b'["churn","3"]'
    # Compaction keeps one message per key byte string, so the text is the contract:
    # compact UTF-8 JSON with non-ASCII unescaped, as JavaScript's JSON.stringify writes it.
    assert registry_key("é", "1 / a") == '["é","1 / a"]'.encode()


@given(
    first=st.tuples(st.text(min_size=1), st.text(min_size=1)),
    second=st.tuples(st.text(min_size=1), st.text(min_size=1)),
)
def test_registry_keys_are_unambiguous(first, second):
    key = registry_key(*first)
    assert tuple(json.loads(key.decode("utf-8"))) == first
    assert (key == registry_key(*second)) == (first == second)


@pytest.mark.parametrize(
    ("first", "second"),
    [(("a/b", "c"), ("a", "b/c")), (("a,b", "c"), ("a", "b,c")), (('a"', "b"), ("a", '"b'))],
)
def test_ids_with_separators_get_keys_of_their_own(first, second):
    assert registry_key(*first) != registry_key(*second)
