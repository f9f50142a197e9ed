import math
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.uncertainty import entropy, least_confidence, margin, uncertainty_of
from driftline.schemas import FeatureEvent, ModelSpec, PredictionEvent

TIME = datetime(2026, 1, 1, tzinfo=UTC)
CLASSIFIER = ModelSpec(model_id="m", model_version="1", task="classification", features=[])
REGRESSOR = ModelSpec(model_id="m", model_version="1", task="regression", features=[])


def prediction(**fields) -> PredictionEvent:
    return PredictionEvent(model_id="m", model_version="1", event_id="e", event_time=TIME, **fields)


def test_the_measures_of_a_sure_and_an_unsure_prediction():
    assert margin({"a": 1.0, "b": 0.0}) == 1.0
    assert margin({"a": 0.5, "b": 0.5}) == 0.0
    assert margin({"a": 1.0}) is None
    assert entropy({"a": 1.0, "b": 0.0}) == 0.0
    assert math.isclose(entropy({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}), math.log(4))
    assert least_confidence({"a": 0.25, "b": 0.75}) == 0.25


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=20))
def test_margin_and_least_confidence_stay_within_0_and_1(weights):
    total = sum(weights)
    if total == 0:
        return
    probabilities = {f"c{i}": w / total for i, w in enumerate(weights)}
    assert 0.0 <= margin(probabilities) <= 1.0 + 1e-12
    assert 0.0 <= least_confidence(probabilities) <= 1.0
    assert entropy(probabilities) >= 0.0


def test_what_is_watched_depends_on_the_task_and_what_the_event_carries():
    assert (
        uncertainty_of(CLASSIFIER, prediction(probabilities={"a": 0.8, "b": 0.2}))
        == 0.6000000000000001
    )
    assert uncertainty_of(CLASSIFIER, prediction(prediction="a")) is None
    assert uncertainty_of(REGRESSOR, prediction(interval={"lower": 1.0, "upper": 3.5})) == 2.5
    assert uncertainty_of(REGRESSOR, prediction(prediction=1.0)) is None
    features = FeatureEvent(
        model_id="m",
        model_version="1",
        event_id="f",
        prediction_id="e",
        event_time=TIME,
        features={},
    )
    assert uncertainty_of(CLASSIFIER, features) is None
