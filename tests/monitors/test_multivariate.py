import numpy as np
import pytest

from driftline.monitors.multivariate import MultivariateDrift

CORRELATION = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 1.0]])
NAMES = ["a", "b", "c"]


def rows(rng: np.random.Generator, covariance: np.ndarray, size: int) -> list[dict[str, float]]:
    data = rng.multivariate_normal(np.zeros(3), covariance, size)
    return [dict(zip(NAMES, row.tolist(), strict=True)) for row in data]


def test_no_alarm_while_the_joint_distribution_holds():
    rng = np.random.default_rng(1)
    detector = MultivariateDrift(NAMES, CORRELATION, arl=1e6)
    assert not any(detector.update(row) for row in rows(rng, CORRELATION, 50_000))


def test_a_broken_correlation_that_moves_no_single_feature_is_found():
    rng = np.random.default_rng(2)
    detector = MultivariateDrift(NAMES, CORRELATION, arl=1e6)
    broken = CORRELATION.copy()
    broken[0, 1] = broken[1, 0] = -0.8
    stream = rows(rng, CORRELATION, 3_000) + rows(rng, broken, 2_000)
    alarms = [i for i, row in enumerate(stream) if detector.update(row)]
    assert alarms
    assert 3_000 <= alarms[0] < 3_300
    assert detector.last_alarm is not None
    assert detector.last_alarm.test == "multivariate_cusum"


def test_events_missing_a_feature_are_skipped():
    detector = MultivariateDrift(NAMES, CORRELATION, arl=1e6)
    assert not detector.update({"a": 50.0, "b": 50.0})
    assert detector.observations == 0


def test_a_correlation_matrix_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="not 2x2"):
        MultivariateDrift(["a", "b"], CORRELATION, arl=1e6)


def test_the_state_round_trips_through_json_and_goes_on_identically():
    import json

    rng = np.random.default_rng(6)
    broken = CORRELATION.copy()
    broken[0, 1] = broken[1, 0] = -0.8
    stream = rows(rng, CORRELATION, 2_000) + rows(rng, broken, 2_000)
    detector = MultivariateDrift(NAMES, CORRELATION, arl=1e4)
    for row in stream[:1_500]:
        detector.update(row)
    twin = MultivariateDrift.from_state(json.loads(json.dumps(detector.to_state())))
    rest = stream[1_500:]
    assert [twin.update(row) for row in rest] == [detector.update(row) for row in rest]
    assert any(twin.update(row) for row in rows(rng, broken, 2_000))


def test_a_state_without_its_correlation_goes_on_identically_given_it_back():
    import json

    rng = np.random.default_rng(7)
    broken = CORRELATION.copy()
    broken[0, 1] = broken[1, 0] = -0.8
    stream = rows(rng, CORRELATION, 2_000) + rows(rng, broken, 2_000)
    detector = MultivariateDrift(NAMES, CORRELATION, arl=1e4)
    for row in stream[:1_500]:
        detector.update(row)
    state = json.loads(json.dumps(detector.to_state(with_reference=False)))
    assert "correlation" not in state
    twin = MultivariateDrift.from_state(state, CORRELATION)
    rest = stream[1_500:]
    assert [twin.update(row) for row in rest] == [detector.update(row) for row in rest]
    assert twin.to_state() == detector.to_state()
