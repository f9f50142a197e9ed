import numpy as np

from driftline.simulate import simulated_predictions


def test_the_drifting_feature_moves_at_the_shift_and_the_stable_one_does_not():
    events = list(simulated_predictions(4_000, shift_at=2_000, shift=3.0, seed=1))
    x = np.array([event.features["x"] for event in events])
    y = np.array([event.features["y"] for event in events])
    assert abs(x[:2_000].mean()) < 0.1
    assert abs(x[2_000:].mean() - 3.0) < 0.1
    assert abs(y[2_000:].mean() - y[:2_000].mean()) < 0.1
    assert len({event.event_id for event in events}) == 4_000
    assert all(0.0 <= event.prediction <= 1.0 for event in events)  # type: ignore[operator]


def test_the_same_seed_gives_the_same_stream():
    first = list(simulated_predictions(50, shift_at=25, seed=9))
    assert first == list(simulated_predictions(50, shift_at=25, seed=9))
    assert first != list(simulated_predictions(50, shift_at=25, seed=10))
