import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.schemas import FeatureEvent, LabelEvent, PredictionEvent, PredictionInterval

VALID = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "e-1",
    "event_time": "2026-01-01T12:00:00+02:00",
    "features": {"x": 0.5, "n": 3, "plan": "pro", "trial": False, "referrer": None},
    "prediction": "yes",
    "probabilities": {"yes": 0.7, "no": 0.3},
}

FEATURES = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "f-1",
    "prediction_id": "e-1",
    "event_time": "2026-01-01T12:00:00Z",
    "features": {"x": 0.5},
}

LABEL = {
    "model_id": "churn",
    "event_id": "l-1",
    "prediction_id": "e-1",
    "event_time": "2026-01-02T12:00:00Z",
    "label": "no",
}


def as_json(payload: dict) -> str:
    return json.dumps(payload)


def locations(error: ValidationError) -> set[str]:
    return {".".join(map(str, e["loc"])) for e in error.errors()}


def test_a_valid_event_parses_with_its_timezone_and_every_kind_of_feature_value():
    event = PredictionEvent.model_validate_json(as_json(VALID))
    assert event.event_time == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert event.features == {"x": 0.5, "n": 3.0, "plan": "pro", "trial": False, "referrer": None}
    assert event.features is not None
    assert type(event.features["trial"]) is bool
    assert event.schema_version == 1
    assert PredictionEvent.model_validate_json(event.model_dump_json()) == event


def test_features_may_be_left_out_of_a_prediction():
    payload = {k: v for k, v in VALID.items() if k != "features"}
    assert PredictionEvent.model_validate_json(as_json(payload)).features is None


def test_only_the_identity_and_time_of_a_prediction_are_required():
    with pytest.raises(ValidationError) as caught:
        PredictionEvent.model_validate_json('{"model_id": "m"}')
    missing = {error["loc"][0] for error in caught.value.errors() if error["type"] == "missing"}
    assert missing == {"model_version", "event_id", "event_time"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": {"x": float("nan")}}, "features.x"),
        ({"features": {"x": float("inf")}}, "features.x"),
        ({"features": {"x": [1.0]}}, "features.x"),
        ({"features": {"x": {"y": 1.0}}}, "features.x"),
        ({"features": {"": 1.0}}, "features."),
        ({"features": {"x" * 257: 1.0}}, "features."),
        ({"features": [1.0]}, "features"),
        ({"model_id": ""}, "model_id"),
        ({"model_id": "m" * 257}, "model_id"),
        ({"model_id": 7}, "model_id"),
        ({"model_version": 3}, "model_version"),
        ({"event_time": "2026-01-01T12:00:00"}, "event_time"),
        ({"event_time": 1767225600}, "event_time"),
        ({"schema_version": 2}, "schema_version"),
        ({"prediction": True}, "prediction"),
        ({"prediction": ""}, "prediction"),
        ({"prediction": float("nan")}, "prediction"),
        ({"probabilities": {"yes": "0.7", "no": 0.3}}, "probabilities.yes"),
        ({"probabilities": {"yes": 1.2, "no": -0.2}}, "probabilities.yes"),
        ({"probabilities": {"yes": True, "no": 0.0}}, "probabilities.yes"),
        ({"interval": {"lower": 1.0}}, "interval.upper"),
        ({"interval": {"lower": 1.0, "upper": 2.0, "level": 0.9}}, "interval.level"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_fields_are_refused_by_name(change, field):
    with pytest.raises(ValidationError) as caught:
        PredictionEvent.model_validate_json(as_json({**VALID, **change}))
    assert any(location.startswith(field) for location in locations(caught.value)), locations(
        caught.value
    )


@pytest.mark.parametrize(
    "probabilities",
    [{"yes": 0.7, "no": 0.2}, {"yes": 0.7, "no": 0.302}, {"only": 0.5}],
)
def test_class_probabilities_must_sum_to_one(probabilities):
    with pytest.raises(ValidationError, match="sum to 1"):
        PredictionEvent.model_validate_json(as_json({**VALID, "probabilities": probabilities}))


@pytest.mark.parametrize(
    "probabilities",
    [{"yes": 0.7, "no": 0.3}, {"yes": 0.7, "no": 0.3005}, {"only": 1.0}, {}, None],
)
def test_probabilities_within_the_tolerance_or_absent_are_accepted(probabilities):
    PredictionEvent.model_validate_json(as_json({**VALID, "probabilities": probabilities}))


def test_a_prediction_interval_must_be_ordered():
    assert PredictionInterval(lower=1.0, upper=1.0).upper == 1.0
    with pytest.raises(ValidationError, match=r"lower \(2.0\) is above upper \(1.0\)"):
        PredictionInterval.model_validate_json('{"lower": 2.0, "upper": 1.0}')


def test_a_feature_event_names_the_prediction_it_belongs_to():
    event = FeatureEvent.model_validate_json(as_json(FEATURES))
    assert (event.prediction_id, event.features) == ("e-1", {"x": 0.5})
    with pytest.raises(ValidationError) as caught:
        FeatureEvent.model_validate_json(
            as_json({k: v for k, v in FEATURES.items() if k not in {"features", "prediction_id"}})
        )
    assert locations(caught.value) == {"features", "prediction_id"}


@pytest.mark.parametrize(("label", "expected"), [("no", "no"), (3, 3.0), (2.5, 2.5)])
def test_a_label_is_a_class_or_a_number(label, expected):
    assert LabelEvent.model_validate_json(as_json({**LABEL, "label": label})).label == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"label": True}, "label"),
        ({"label": None}, "label"),
        ({"label": ""}, "label"),
        ({"prediction_id": ""}, "prediction_id"),
        ({"model_version": "3"}, "model_version"),
        ({"event_time": "yesterday"}, "event_time"),
    ],
)
def test_invalid_labels_are_refused_by_name(change, field):
    with pytest.raises(ValidationError) as caught:
        LabelEvent.model_validate_json(as_json({**LABEL, **change}))
    assert any(location.startswith(field) for location in locations(caught.value))


@pytest.mark.parametrize(
    ("model", "payload"),
    [(PredictionEvent, VALID), (FeatureEvent, FEATURES), (LabelEvent, LABEL)],
)
def test_events_are_frozen(model, payload):
    event = model.model_validate_json(as_json(payload))
    with pytest.raises(ValidationError):
        event.model_id = "other"


# Round trips: whatever valid event a producer makes, its JSON reads back the same.

identifiers = st.text(min_size=1, max_size=256)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
numbers = finite_floats | st.integers(-(2**53), 2**53)
feature_values = st.none() | st.booleans() | numbers | st.text()
features = st.dictionaries(identifiers, feature_values, max_size=10)
predictions = numbers | identifiers
event_times = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)


@st.composite
def probabilities(draw: st.DrawFn) -> dict[str, float]:
    weights = draw(st.dictionaries(identifiers, st.floats(0.01, 1.0), min_size=1, max_size=8))
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


@st.composite
def intervals(draw: st.DrawFn) -> PredictionInterval:
    lower, upper = sorted(draw(st.lists(finite_floats, min_size=2, max_size=2)))
    return PredictionInterval(lower=lower, upper=upper)


prediction_events = st.builds(
    PredictionEvent,
    model_id=identifiers,
    model_version=identifiers,
    event_id=identifiers,
    event_time=event_times,
    features=st.none() | features,
    prediction=st.none() | predictions,
    probabilities=st.none() | probabilities(),
    interval=st.none() | intervals(),
)
feature_events = st.builds(
    FeatureEvent,
    model_id=identifiers,
    model_version=identifiers,
    event_id=identifiers,
    prediction_id=identifiers,
    event_time=event_times,
    features=features,
)
label_events = st.builds(
    LabelEvent,
    model_id=identifiers,
    event_id=identifiers,
    prediction_id=identifiers,
    event_time=event_times,
    label=predictions,
)


@given(event=prediction_events | feature_events | label_events)
def test_any_valid_event_survives_a_json_round_trip(event):
    text = event.model_dump_json()
    parsed = type(event).model_validate_json(text)
    assert parsed == event
    assert parsed.model_dump_json() == text
