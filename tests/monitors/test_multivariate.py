import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def _distances_summed_in_order(z: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``sum_j sum_k z_j P_jk z_k`` row by row, each sum from the first feature on."""
    weighted = z[:, 0:1] * precision[0]
    for feature in range(1, precision.shape[0]):
        weighted += z[:, feature : feature + 1] * precision[feature]
    total = weighted[:, 0] * z[:, 0]
    for feature in range(1, precision.shape[0]):
        total += weighted[:, feature] * z[:, feature]
    return total


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=2, max_value=30),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_rows_distance_is_the_same_to_the_bit_alone_or_in_any_batch(features, rows, seed):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(features, features))
    covariance = mixing @ mixing.T + np.eye(features)
    scale = np.sqrt(np.diag(covariance))
    correlation = covariance / np.outer(scale, scale)
    detector = MultivariateDrift([f"f{i}" for i in range(features)], correlation, arl=1e6)
    z = rng.standard_t(3, size=(rows, features)) * 10.0 ** rng.integers(-3, 4)
    together = detector.distances(z)
    expected = _distances_summed_in_order(z, detector._precision)
    assert together.view(np.int64).tolist() == expected.view(np.int64).tolist()
    for row in rng.choice(rows, size=min(rows, 5), replace=False) if rows else []:
        alone = detector.distances(z[row : row + 1])
        assert alone.view(np.int64).tolist() == together[row : row + 1].view(np.int64).tolist()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_correlation_estimated_from_a_short_warm_up_raises_no_false_alarm(seed):
    # Twenty features' correlation from 300 events: distances out of that sample run 8 %
    # above a chi-square's mean. Unscaled, every such run of 20,000 events alarmed.
    rng = np.random.default_rng(seed)
    dimension, warmup = 20, 300
    reference = rng.normal(size=(warmup, dimension))
    estimated = np.corrcoef(reference, rowvar=False)
    names = [f"f{i}" for i in range(dimension)]
    live = rng.normal(size=(20_000, dimension))

    def alarms(reference_size):
        detector = MultivariateDrift(
            names, estimated, arl=1e6, inflation=1.2, reference_size=reference_size
        )
        return detector.cusum.update_many(detector.distances(live))

    assert alarms(warmup) is None
    assert alarms(None) is not None  # the same test, its distances left as they come


def test_the_estimation_scale_survives_a_state_round_trip():
    detector = MultivariateDrift(["a", "b"], np.eye(2), arl=1e6, reference_size=50)
    again = MultivariateDrift.from_state(detector.to_state())
    assert again.reference_size == 50
    z = np.array([[1.0, -2.0]])
    assert again.distances(z)[0] == detector.distances(z)[0] == pytest.approx(5.0 * 46 / 49)
