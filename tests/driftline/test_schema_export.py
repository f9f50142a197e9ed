import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from driftline.schema_export import JSON_SCHEMA_DIALECT, export_json_schemas, schema_text
from driftline.schemas import WIRE_MODELS

SNAPSHOTS = Path(__file__).resolve().parents[1] / "schemas" / "snapshots"
REGENERATE = "python -m driftline schemas export tests/schemas/snapshots"

PREDICTION = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "e-1",
    "event_time": "2026-01-01T12:00:00+02:00",
    "features": {"tenure": 14, "spend": 9.5, "plan": "pro", "trial": False, "referrer": None},
    "prediction": "stays",
    "probabilities": {"stays": 0.8, "leaves": 0.2},
}
FEATURES = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "f-1",
    "prediction_id": "e-1",
    "event_time": "2026-01-01T10:00:00Z",
    "features": {"tenure": 14},
}
LABEL = {
    "model_id": "churn",
    "event_id": "l-1",
    "prediction_id": "e-1",
    "event_time": "2026-01-02T10:00:00Z",
    "label": "leaves",
}
SPEC = {
    "model_id": "churn",
    "model_version": "3",
    "task": "classification",
    "classes": ["stays", "leaves"],
    "features": [
        {"name": "tenure", "kind": "numeric", "minimum": 0},
        {"name": "plan", "kind": "categorical", "categories": ["free", "pro"]},
    ],
}
ALERT = {
    "alert_id": "a-1",
    "kind": "data_quality",
    "model_id": "churn",
    "model_version": "3",
    "feature": "tenure",
    "summary": "tenure: 31 of 400 values out of range (tolerated 1%)",
    "event_id": "e-400",
    "event_time": "2026-01-01T10:00:00Z",
    "evidence": {
        "kind": "data_quality",
        "check": "out_of_range",
        "window": 1000,
        "window_index": 0,
        "observations": 400,
        "violations": 31,
        "rate": 0.0775,
        "tolerated_rate": 0.01,
        "threshold": 25,
        "alpha": 0.0001,
        "p_value": 1e-9,
        "examples": ["-1.0"],
    },
    "source": {"topic": "driftline.predictions", "partition": 2, "offset": 399},
}
TRIGGER = {
    "trigger_id": "t-1",
    "idempotency_key": "churn/3/1",
    "model_id": "churn",
    "model_version": "3",
    "event_time": "2026-01-01T10:00:00Z",
    "reasons": [{"kind": "drift", "alert_id": "a-1", "summary": "tenure moved"}],
    "training_window": {"start_event_time": "2026-01-01T09:00:00Z"},
}
DEAD_LETTER = {
    "reason": "empty",
    "message": "a message with no value",
    "source": {"topic": "driftline.predictions", "partition": 0, "offset": 7},
    "key": "churn",
    "original": None,
}
PROFILE = {
    "model_id": "churn",
    "model_version": "3",
    "source": "file:train.csv",
    "event_count": 10,
    "features": {
        "tenure": {
            "kind": "numeric",
            "count": 10,
            "values": [1.0, 4.0, 9.0],
            "cdf_below": [0.0, 0.4, 0.9],
            "cdf_at": [0.1, 0.6, 1.0],
        },
        "plan": {"kind": "categorical", "count": 10, "counts": {"free": 6, "pro": 3}, "other": 1},
    },
}
REPORT = {
    "report_id": "9f2c",
    "model_id": "churn",
    "model_version": "3",
    "window": 4,
    "stage": "settled",
    "first_event_time": "2026-01-01T10:00:00Z",
    "last_event_time": "2026-01-01T11:00:00Z",
    "predictions": 1000,
    "labelled": 950,
    "expired": 50,
    "label_coverage": 0.95,
    "label_delay_seconds": {"mean": 3600.0, "p50": 3000.0, "p90": 7000.0, "max": 9000.0},
    "estimated_predictions": 1000,
    "estimated": {"accuracy": 0.81, "f1": 0.7},
    "estimated_standard_error": 0.012,
    "realized": {"accuracy": 0.79, "f1": 0.68, "roc_auc": 0.84},
    "estimation_error": {"accuracy": 0.02, "f1": 0.02},
    "since_reference": {"accuracy": 0.85},
    "uncertainty": {"margin_mean": 0.4, "margin_p10": 0.05},
}
SAMPLES = {
    "prediction-event": PREDICTION,
    "feature-event": FEATURES,
    "label-event": LABEL,
    "model-spec": SPEC,
    "reference-profile": PROFILE,
    "alert": ALERT,
    "retrain-trigger": TRIGGER,
    "dead-letter": DEAD_LETTER,
    "performance-report": REPORT,
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    paths = export_json_schemas(tmp_path_factory.mktemp("schemas"))
    return {path.name.removesuffix(".schema.json"): path for path in paths}


@pytest.fixture(scope="module")
def validators(exported) -> dict[str, Draft202012Validator]:
    return {
        name: Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))
        for name, path in exported.items()
    }


def test_every_wire_model_has_a_schema_file(exported):
    assert sorted(exported) == sorted(WIRE_MODELS)
    assert sorted(SAMPLES) == sorted(WIRE_MODELS)


def test_the_exported_schemas_match_the_snapshots(exported):
    snapshots = {path.name for path in SNAPSHOTS.glob("*.schema.json")}
    written = {path.name for path in exported.values()}
    assert snapshots == written, (
        f"the snapshots in {SNAPSHOTS} are not the exported schema files "
        f"(missing: {sorted(written - snapshots)}, stale: {sorted(snapshots - written)}). "
        f"If the schemas changed on purpose, delete the stale files, run `{REGENERATE}` "
        "and commit the snapshots with the change."
    )
    for path in exported.values():
        assert path.read_bytes() == (SNAPSHOTS / path.name).read_bytes(), (
            f"{path.name} differs from its snapshot: a wire schema changed. Producers in other "
            "languages validate against these files, so a change must be deliberate. If it is, "
            f"run `{REGENERATE}` and commit the snapshots with the change."
        )


def test_the_text_is_stable_sorted_and_ends_with_a_newline(exported, tmp_path):
    again = {path.name: path.read_bytes() for path in export_json_schemas(tmp_path)}
    for name, path in exported.items():
        text = path.read_text(encoding="utf-8")
        assert again[path.name] == path.read_bytes()
        assert text == schema_text(WIRE_MODELS[name])
        assert text.endswith("}\n")
        assert not text.endswith("\n\n")
        assert "\r" not in text
        schema = json.loads(text)
        assert text == json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert schema["$schema"] == JSON_SCHEMA_DIALECT
        assert "$id" not in text


def test_each_schema_is_valid_draft_2020_12(exported):
    for path in exported.values():
        Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_valid_message_passes_its_schema_and_the_model(validators, name):
    validators[name].validate(SAMPLES[name])
    WIRE_MODELS[name].model_validate_json(json.dumps(SAMPLES[name]))


def test_what_the_models_write_passes_the_schemas(validators):
    for name, payload in SAMPLES.items():
        written = WIRE_MODELS[name].model_validate_json(json.dumps(payload)).model_dump_json()
        validators[name].validate(json.loads(written))


INVALID = [
    (
        "prediction-event",
        {"probabilities": {"stays": "0.8", "leaves": 0.2}},
        "number given as a string",
    ),
    ("prediction-event", {"features": {"tenure": [14]}}, "feature value a list"),
    ("prediction-event", {"model_id": ""}, "empty id"),
    ("prediction-event", {"model_version": 3}, "version as a number"),
    ("prediction-event", {"prediction": True}, "boolean prediction"),
    ("prediction-event", {"probabilities": {"stays": 1.5, "leaves": -0.5}}, "probability above 1"),
    ("prediction-event", {"schema_version": 2}, "unknown schema version"),
    ("prediction-event", {"featurs": {}}, "misspelt field"),
    ("prediction-event", {"event_time": None}, "no event time"),
    ("feature-event", {"features": None}, "no features"),
    ("label-event", {"label": None}, "no label"),
    ("model-spec", {"task": "ranking"}, "unknown task"),
    ("model-spec", {"classes": ["only"]}, "one class"),
    ("model-spec", {"quality_window": 0}, "empty window"),
    ("model-spec", {"features": [{"name": "x", "kind": "text"}]}, "unknown feature kind"),
    ("model-spec", {"features": [{"name": "x", "kind": "numeric", "nullable": "no"}]}, "bool"),
    ("alert", {"kind": "latency"}, "unknown alert kind"),
    ("alert", {"evidence": {**ALERT["evidence"], "kind": "drift"}}, "evidence of another kind"),
    ("alert", {"evidence": {k: v for k, v in ALERT["evidence"].items() if k != "kind"}}, "no tag"),
    ("alert", {"evidence": {**ALERT["evidence"], "rate": 2.0}}, "rate above 1"),
    ("retrain-trigger", {"reasons": []}, "no reason"),
    ("dead-letter", {"reason": "lost"}, "unknown reason"),
    ("dead-letter", {"source": {"topic": "t", "partition": -1, "offset": 0}}, "negative partition"),
    ("performance-report", {"estimated_predictions": -1}, "negative estimated predictions"),
]


@pytest.mark.parametrize(("name", "change", "why"), INVALID, ids=[why for *_, why in INVALID])
def test_an_invalid_message_fails_its_schema_as_it_fails_the_model(validators, name, change, why):
    payload = {**SAMPLES[name], **change}
    assert list(validators[name].iter_errors(payload)), f"the schema let through: {why}"
    with pytest.raises(ValidationError):
        WIRE_MODELS[name].model_validate_json(json.dumps(payload))


def test_a_missing_required_field_fails_the_schema(validators):
    for name, payload in SAMPLES.items():
        required = validators[name].schema["required"]
        for field in required:
            without = {k: v for k, v in payload.items() if k != field}
            assert not validators[name].is_valid(without), (name, field)


BEYOND_JSON_SCHEMA = [
    ("prediction-event", {"probabilities": {"stays": 0.5, "leaves": 0.2}}, "sum to 1"),
    ("prediction-event", {"interval": {"lower": 2.0, "upper": 1.0}}, "is above upper"),
    (
        "model-spec",
        {"features": [{"name": "plan", "kind": "categorical", "minimum": 0}]},
        "apply to numeric features only",
    ),
    (
        "model-spec",
        {"features": [{"name": "x", "kind": "numeric"}, {"name": "x", "kind": "numeric"}]},
        "features listed more than once",
    ),
    ("model-spec", {"task": "regression"}, "a regression model has no classes"),
]


@pytest.mark.parametrize(("name", "change", "message"), BEYOND_JSON_SCHEMA)
def test_rules_the_schemas_cannot_express_are_left_to_the_worker(validators, name, change, message):
    # Listed in the schema_export module's docstring: schema-valid, refused on the wire.
    payload = {**SAMPLES[name], **change}
    validators[name].validate(payload)
    with pytest.raises(ValidationError, match=message):
        WIRE_MODELS[name].model_validate_json(json.dumps(payload))
