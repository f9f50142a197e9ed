import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.schemas import PredictionEvent

VALID = {
    "model_id": "churn",
    "model_version": "3",
    "event_id": "e-1",
    "event_time": "2026-01-01T12:00:00+02:00",
    "features": {"x": 0.5, "n": 3},
    "prediction": "yes",
}


def as_json(payload: dict) -> str:
    return json.dumps(payload)


def test_a_valid_event_parses_with_its_timezone():
    event = PredictionEvent.model_validate(
        {**VALID, "event_time": datetime(2026, 1, 1, 10, tzinfo=UTC)}
    )
    assert event.features == {"x": 0.5, "n": 3.0}
    assert event.schema_version == 1
    assert PredictionEvent.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"features": {"x": "0.5"}}, "features.x"),
        ({"features": {"x": True}}, "features.x"),
        ({"features": {"x": float("nan")}}, "features.x"),
        ({"features": {"x": float("inf")}}, "features.x"),
        ({"features": {"": 1.0}}, "features."),
        ({"model_id": ""}, "model_id"),
        ({"model_id": 7}, "model_id"),
        ({"event_time": "2026-01-01T12:00:00"}, "event_time"),
        ({"schema_version": 2}, "schema_version"),
        ({"prediction": True}, "prediction"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_fields_are_refused_by_name(change, field):
    with pytest.raises(ValidationError) as caught:
        PredictionEvent.model_validate_json(as_json({**VALID, **change}))
    locations = {".".join(map(str, error["loc"])) for error in caught.value.errors()}
    assert any(location.startswith(field) for location in locations), locations


def test_missing_required_fields_are_named():
    with pytest.raises(ValidationError) as caught:
        PredictionEvent.model_validate_json('{"model_id": "m"}')
    missing = {error["loc"][0] for error in caught.value.errors() if error["type"] == "missing"}
    assert missing == {"model_version", "event_id", "event_time", "features"}


def test_events_are_frozen():
    event = PredictionEvent.model_validate_json(as_json(VALID))
    with pytest.raises(ValidationError):
        event.model_id = "other"  # type: ignore[misc]


@given(
    features=st.dictionaries(
        st.text(min_size=1, max_size=20),
        st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
        max_size=10,
    ),
    prediction=st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    event_time=st.datetimes(timezones=st.just(UTC)),
)
def test_any_valid_event_survives_a_json_round_trip(features, prediction, event_time):
    event = PredictionEvent(
        model_id="m",
        model_version="1",
        event_id="e",
        event_time=event_time,
        features=features,
        prediction=prediction,
    )
    assert PredictionEvent.model_validate_json(event.model_dump_json()) == event
