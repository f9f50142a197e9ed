import math
import random
from datetime import UTC, datetime
from typing import ClassVar

import pytest

from driftline.monitors.drift import AdwinDriftDetector
from driftline.monitors.model import ModelMonitor
from driftline.schemas import FeatureEvent, FeatureKind, FeatureSpec, ModelSpec, PredictionEvent

TIME = datetime(2026, 1, 1, tzinfo=UTC)


def spec(*features: FeatureSpec) -> ModelSpec:
    return ModelSpec(model_id="m", model_version="1", task="regression", features=list(features))


def numeric(name: str, **options: object) -> FeatureSpec:
    return FeatureSpec(name=name, kind=FeatureKind.NUMERIC, **options)


def event(features: dict | None, index: int = 0, model: str = "m") -> PredictionEvent:
    return PredictionEvent(
        model_id=model, model_version="1", event_id=f"e{index}", event_time=TIME, features=features
    )


class RecordingDetector(AdwinDriftDetector):
    seen: ClassVar[list[float]] = []

    def update(self, value: float) -> None:
        RecordingDetector.seen.append(value)
        super().update(value)


def test_only_the_drifting_feature_is_reported():
    rng = random.Random(5)
    monitor = ModelMonitor(spec(numeric("x"), numeric("y")))
    drifts = []
    for index in range(4_000):
        x = rng.gauss(0 if index < 2_000 else 3, 1)
        drifts += monitor.update(event({"x": x, "y": rng.gauss(0, 1)}, index)).drifts
    assert {drift.feature for drift in drifts} == {"x"}
    assert all(int(drift.event_id[1:]) >= 2_000 for drift in drifts)
    assert monitor.events == 4_000
    assert monitor.monitored_features == ["x", "y"]


def test_a_boolean_feature_is_watched_as_the_share_of_true():
    rng = random.Random(2)
    monitor = ModelMonitor(spec(FeatureSpec(name="flag", kind=FeatureKind.BOOLEAN)))
    drifts = []
    for index in range(6_000):
        flag = rng.random() < (0.2 if index < 3_000 else 0.6)
        drifts += monitor.update(event({"flag": flag}, index)).drifts
    assert drifts
    assert all(int(drift.event_id[1:]) >= 3_000 for drift in drifts)


def test_unmonitored_categorical_and_past_the_limit_features_get_no_detector():
    monitor = ModelMonitor(
        spec(
            numeric("a"),
            numeric("b", monitor=False),
            FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL),
            numeric("d"),
            numeric("e"),
        ),
        max_monitored_features=2,
    )
    assert monitor.monitored_features == ["a", "d"]
    assert monitor.features_unmonitored == 1


def test_values_that_fail_their_checks_never_reach_a_detector():
    # Values past the wire's checks too (model_construct skips validation).
    monitor = ModelMonitor(spec(numeric("x")), detector_factory=RecordingDetector)
    for index, value in enumerate([None, "0.5", True, math.inf, math.nan, 2.5]):
        unchecked = PredictionEvent.model_construct(
            model_id="m",
            model_version="1",
            event_id=f"e{index}",
            event_time=TIME,
            features={"x": value},
        )
        monitor.update(unchecked)
    assert RecordingDetector.seen == [2.5]
    assert monitor.events == 6


def test_names_outside_the_spec_are_counted_not_watched():
    monitor = ModelMonitor(spec(numeric("x")))
    monitor.update(event({"x": 1.0, "surprise": 2.0, "another": "a"}))
    assert monitor.unexpected_features == 2
    assert monitor.monitored_features == ["x"]


def test_an_event_without_features_changes_nothing():
    monitor = ModelMonitor(spec(numeric("x")))
    assert monitor.update(event(None)).quality == []
    assert monitor.events == 0


def test_feature_events_are_monitored_like_inline_features():
    monitor = ModelMonitor(spec(numeric("x", maximum=1.0)))
    features = FeatureEvent(
        model_id="m",
        model_version="1",
        event_id="f",
        prediction_id="e",
        event_time=TIME,
        features={"x": 5.0},
    )
    assert monitor.update(features).drifts == []
    assert monitor.events == 1


def test_an_event_of_another_model_is_refused():
    with pytest.raises(ValueError, match="fed to the monitor of m/1"):
        ModelMonitor(spec(numeric("x"))).update(event({"x": 1.0}, model="other"))
