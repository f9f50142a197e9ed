import random
from datetime import UTC, datetime

import pytest

from driftline.monitors.model import ModelMonitor
from driftline.schemas import PredictionEvent

TIME = datetime(2026, 1, 1, tzinfo=UTC)


def event(features: dict[str, float], index: int = 0, model: str = "m") -> PredictionEvent:
    return PredictionEvent(
        model_id=model,
        model_version="1",
        event_id=f"e{index}",
        event_time=TIME,
        features=features,
    )


def test_only_the_drifting_feature_is_reported():
    rng = random.Random(5)
    monitor = ModelMonitor("m", "1")
    drifts = []
    for index in range(4_000):
        x = rng.gauss(0 if index < 2_000 else 3, 1)
        drifts += monitor.update(event({"x": x, "y": rng.gauss(0, 1)}, index))
    assert {drift.feature for drift in drifts} == {"x"}
    assert all(int(drift.event_id[1:]) >= 2_000 for drift in drifts)
    assert monitor.events == 4_000
    assert monitor.features == ["x", "y"]


def test_features_beyond_the_limit_get_no_state():
    monitor = ModelMonitor("m", "1", max_features=2)
    monitor.update(event({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}))
    assert monitor.features == ["a", "b"]
    assert monitor.features_ignored == 2


def test_an_event_of_another_model_is_refused():
    with pytest.raises(ValueError, match="fed to the monitor of m/1"):
        ModelMonitor("m", "1").update(event({"x": 1.0}, model="other"))
