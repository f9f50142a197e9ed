import contextlib
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from driftline.monitors import sequential
from driftline.monitors.sequential import (
    P_MIN,
    BernoulliCusum,
    ChiSquareCusum,
    LocationCusum,
    ScaleCusum,
    SerialDependence,
    advance_groups,
    advance_groups_on_features,
    location_threshold,
    lorden_threshold,
)

# What one feature of a single-feature model gets under a budget of one false
# alarm per 1e6 events split over 4 one-sided tests.
ARL = 4e6
LOCATION_THRESHOLD = location_threshold(ARL, 0.5)
LORDEN_THRESHOLD = lorden_threshold(ARL)


def alarms(detector, values, reset=True) -> list[int]:
    """The indices of the alarms, by update_many, resetting after each unless told not to."""
    found = []
    start = 0
    while start < len(values):
        index = detector.update_many(values[start:])
        if index is None:
            break
        found.append(start + index)
        start += index + 1
        if reset:
            detector.reset()
    return found


def alarms_one_by_one(detector, values, reset=True) -> list[int]:
    """:func:`alarms`, by update."""
    found = []
    for i, value in enumerate(values):
        detector.update(value)
        if detector.drift_detected:
            found.append(i)
            if reset:
                detector.reset()
    return found


def ar1(rng, n, rho):
    """N(0, 1) values with lag-1 autocorrelation ``rho``."""
    return lfilter([math.sqrt(1 - rho**2)], [1.0, -rho], rng.normal(0, 1, n))


def delays(make, before, after, seeds=50, pre=1_000, post=2_000):
    """Detection delays (values from the change to the alarm, the alarming one included)
    of ``seeds`` streams of ``pre`` values from ``before`` then ``post`` from ``after``,
    and how many streams went undetected."""
    found, misses = [], 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        values = np.concatenate([before(rng, pre), after(rng, post)])
        late = [i for i in alarms(make(), values) if i >= pre]
        if late:
            found.append(late[0] - pre + 1)
        else:
            misses += 1
    return found, misses


def run_length(detector, values) -> float:
    """Mean values per alarm, restarting after each: the ARL0 on a stationary stream."""
    return len(values) / max(1, len(alarms(detector, values)))


# Thresholds


def siegmund(h, shift):
    b = h + 1.166 * shift
    return (math.exp(b) - b - 1) / (shift**2 / 2)


@pytest.mark.parametrize("shift", [0.25, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("arl", [100.0, 2_000.0, 4e6, 1e12])
def test_the_location_threshold_solves_siegmunds_approximation(arl, shift):
    assert siegmund(location_threshold(arl, shift), shift) == pytest.approx(arl, rel=1e-9)
    both = location_threshold(arl, shift, sides=2)
    assert siegmund(both, shift) == pytest.approx(2 * arl, rel=1e-9)


def test_the_thresholds_at_the_per_test_budget():
    assert round(LOCATION_THRESHOLD, 3) == 12.539
    assert math.log(4e6) == LORDEN_THRESHOLD
    assert lorden_threshold(4e6, sides=2) == pytest.approx(math.log(8e6))


def test_a_tiny_arl_gives_a_zero_location_threshold():
    assert location_threshold(1.1, 0.5) == 0.0


@pytest.mark.parametrize(
    ("arl", "shift", "sides"), [(1.0, 0.5, 1), (math.inf, 0.5, 1), (100, 0.0, 1), (100, 0.5, 0)]
)
def test_invalid_threshold_arguments_are_refused(arl, shift, sides):
    with pytest.raises(ValueError, match="must be"):
        location_threshold(arl, shift, sides=sides)


def test_the_location_threshold_gives_the_target_arl_by_simulation():
    rng = np.random.default_rng(7)
    both = run_length(
        LocationCusum(location_threshold(2_000, 0.5, sides=2)), rng.normal(0, 1, 10**6)
    )
    assert 1_000 <= both <= 4_000
    assert round(both) == 1965
    # Per side (the default), the two sides together alarm twice as often.
    each = run_length(LocationCusum(location_threshold(2_000, 0.5)), rng.normal(0, 1, 10**6))
    assert 500 <= each <= 2_000
    assert round(each) == 1001


@pytest.mark.parametrize(
    ("make", "draw"),
    [
        (lambda h: ScaleCusum(h), lambda rng, n: rng.normal(0, 1, n)),
        (lambda h: ScaleCusum(h, ratio=1.3), lambda rng, n: rng.normal(0, 1, n)),
        (lambda h: BernoulliCusum(0.2, h), lambda rng, n: rng.random(n) < 0.2),
        (lambda h: BernoulliCusum(0.9, h, ratio=1.05), lambda rng, n: rng.random(n) < 0.9),
    ],
)
def test_e_to_the_h_bounds_the_arl_of_the_two_sided_detectors(make, draw):
    rng = np.random.default_rng(8)
    assert run_length(make(lorden_threshold(500, sides=2)), draw(rng, 10**6)) >= 500


@pytest.mark.parametrize("dim", [1, 3, 10])
def test_e_to_the_h_bounds_the_arl_of_the_chi_square_cusum(dim):
    rng = np.random.default_rng(9)
    detector = ChiSquareCusum(dim, lorden_threshold(500), inflation=1.3)
    assert run_length(detector, rng.chisquare(dim, 10**6)) >= 500


# Detection and false alarms at the per-test budget


def normal(mean=0.0, sd=1.0):
    return lambda rng, n: rng.normal(mean, sd, n)


@pytest.mark.parametrize(("shift", "bound", "median"), [(1.0, 45, 32.5), (0.5, 130, 91.5)])
def test_the_location_cusum_detects_mean_shifts_quickly(shift, bound, median):
    found, misses = delays(lambda: LocationCusum(LOCATION_THRESHOLD), normal(), normal(shift))
    assert misses == 0
    assert np.median(found) <= bound
    assert np.median(found) == median


def test_the_location_cusum_detects_a_fall_as_a_fall():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(-1, 1, 1_000)])
    detector = LocationCusum(LOCATION_THRESHOLD)
    assert alarms(detector, values, reset=False)[:1] == [1_019]
    assert detector.direction == -1
    assert detector.change_observation == 993, "the estimate of the change at 1,001"


def test_the_scale_cusum_detects_a_doubled_variance():
    found, misses = delays(lambda: ScaleCusum(LORDEN_THRESHOLD), normal(), normal(sd=2**0.5))
    assert misses == 0
    assert np.median(found) <= 150
    assert np.median(found) == 91.5


def test_the_scale_cusum_detects_a_halved_variance_as_a_fall():
    found, misses = delays(lambda: ScaleCusum(LORDEN_THRESHOLD), normal(), normal(sd=0.5**0.5))
    assert misses == 0
    assert np.median(found) <= 150


def test_the_bernoulli_cusum_detects_a_share_rising_from_20_to_35_percent():
    found, misses = delays(
        lambda: BernoulliCusum(0.2, LORDEN_THRESHOLD),
        lambda rng, n: rng.random(n) < 0.2,
        lambda rng, n: rng.random(n) < 0.35,
    )
    assert misses <= 2, "95% of 50 streams detected within 2,000 values"
    assert misses == 0
    assert np.median(found) == 253.5


@pytest.mark.parametrize(
    ("make", "draw", "most"),
    [
        (lambda: LocationCusum(LOCATION_THRESHOLD), normal(), 1),
        (lambda: ScaleCusum(LORDEN_THRESHOLD), normal(), 0),
        (lambda: BernoulliCusum(0.2, LORDEN_THRESHOLD), lambda rng, n: rng.random(n) < 0.2, 0),
        (lambda: ChiSquareCusum(3, LORDEN_THRESHOLD), lambda rng, n: rng.chisquare(3, n), 0),
    ],
)
def test_stationary_streams_raise_next_to_no_false_alarms(make, draw, most):
    total = sum(
        len(alarms(make(), draw(np.random.default_rng(1_000 + seed), 100_000)))
        for seed in range(20)
    )
    assert total <= most


def test_the_variance_factor_keeps_autocorrelated_streams_calibrated():
    calibrated = uncorrected = 0
    scale_calibrated = scale_uncorrected = 0
    for seed in range(20):
        z = ar1(np.random.default_rng(3_000 + seed), 52_000, 0.5)
        dependence = SerialDependence()
        dependence.update_many(z[:2_000])  # a warm-up window, as a reference gives
        z = z[2_000:]
        location, scale = LocationCusum(LOCATION_THRESHOLD), ScaleCusum(LORDEN_THRESHOLD)
        for start in range(0, len(z), 1_000):
            chunk = z[start : start + 1_000]
            location.variance_factor = dependence.variance_factor
            scale.variance_factor = (1 + dependence.rho**2) / (1 - dependence.rho**2)
            calibrated += len(alarms(location, chunk))
            scale_calibrated += len(alarms(scale, chunk))
            dependence.update_many(chunk)
        uncorrected += len(alarms(LocationCusum(LOCATION_THRESHOLD), z))
        scale_uncorrected += len(alarms(ScaleCusum(LORDEN_THRESHOLD), z))
    assert calibrated <= 1
    assert scale_calibrated <= 1
    assert uncorrected >= 100, "without the factor an AR(1) stream alarms again and again"
    assert (calibrated, uncorrected, scale_calibrated, scale_uncorrected) == (0, 676, 0, 13)


# Semantics


def test_an_alarm_is_a_crossing_so_a_lasting_change_alarms_once_without_reset():
    # Each 1.0 adds 0.5 * 1.0 - 0.125 = 0.375: the 14th value crosses 5.
    detector = LocationCusum(threshold=5.0)
    assert alarms_one_by_one(detector, [1.0] * 40, reset=False) == [13]
    assert detector.statistic == pytest.approx(40 * 0.375)
    assert (detector.direction, detector.change_observation) == (1, 1)
    detector.reset()
    assert (detector.statistic, detector.direction, detector.change_observation) == (0.0, 0, 0)
    assert not detector.drift_detected
    assert detector.observations == 40, "reset keeps counting observations"
    assert alarms_one_by_one(detector, [1.0] * 40, reset=False) == [13]
    assert detector.change_observation == 41
    detector.reset()
    assert alarms_one_by_one(detector, [1.0] * 40) == [13, 27]


def test_a_clear_step_is_placed_exactly():
    detector = LocationCusum(threshold=10.0, shift=1.0)
    values = [0.0] * 50 + [-1.0] * 3 + [0.0] * 20 + [4.0] * 10
    assert alarms_one_by_one(detector, values, reset=False) == [75]
    assert (detector.direction, detector.change_observation, detector.observations) == (1, 74, 83)


def test_the_statistic_is_the_larger_side_in_units_of_log_likelihood_ratio():
    detector = LocationCusum(threshold=100.0, shift=0.5)
    detector.update(2.0)
    assert detector.statistic == pytest.approx(0.5 * 2.0 - 0.125, abs=1e-9)
    detector.update(-2.0)
    assert detector.statistic == pytest.approx(0.875, abs=1e-9), "down side: 0 + 0.875"


def test_the_variance_factor_divides_the_increments():
    plain, divided = LocationCusum(100.0), LocationCusum(100.0, variance_factor=3.0)
    for value in (1.0, 2.5, 0.3):
        plain.update(value)
        divided.update(value)
    assert divided.statistic == pytest.approx(plain.statistic / 3, abs=1e-9)


@pytest.mark.parametrize(
    ("make", "bad"),
    [
        (lambda: LocationCusum(5.0), math.nan),
        (lambda: ScaleCusum(5.0), math.inf),
        (lambda: BernoulliCusum(0.3, 5.0), 0.5),
        (lambda: BernoulliCusum(0.3, 5.0), 2),
        (lambda: ChiSquareCusum(2, 5.0), -1.0),
    ],
)
def test_invalid_values_are_refused_and_leave_the_detector_untouched(make, bad):
    detector = make()
    detector.update(1)
    before = detector.to_state()
    with pytest.raises(ValueError, match=r"take|never"):
        detector.update(bad)
    with pytest.raises(ValueError, match=r"take|never"):
        detector.update_many(np.array([1.0, 0.0, bad, 1.0]))
    assert detector.to_state() == before


@pytest.mark.parametrize(
    "make",
    [
        lambda: LocationCusum(0.0),
        lambda: LocationCusum(5.0, shift=0.0),
        lambda: LocationCusum(5.0, variance_factor=0.5),
        lambda: ScaleCusum(5.0, ratio=1.0),
        lambda: BernoulliCusum(1.5, 5.0),
        lambda: BernoulliCusum(0.2, 5.0, ratio=0.9),
        lambda: ChiSquareCusum(0, 5.0),
        lambda: ChiSquareCusum(2, 5.0, inflation=1.0),
        lambda: SerialDependence(halflife=0.0),
        lambda: SerialDependence(prior_rho=0.99),
    ],
)
def test_invalid_parameters_are_refused(make):
    with pytest.raises(ValueError, match="must be"):
        make()


def test_an_empty_batch_changes_nothing():
    detector = LocationCusum(5.0)
    detector.update(1.0)
    before = detector.to_state()
    assert detector.update_many(np.array([])) is None
    assert detector.to_state() == before


def test_bernoulli_shares_at_the_edges_are_clamped():
    never = BernoulliCusum(0.0, LORDEN_THRESHOLD)
    # A category the reference never showed alarms after about h / log(ratio) appearances.
    assert alarms_one_by_one(never, [0] * 1_000 + [1] * 50, reset=False) == [1_037]
    assert never.direction == 1
    # Down from a share of (nearly) 1 is to 1 / ratio: two zeros in a row suffice.
    always = BernoulliCusum(1.0, LORDEN_THRESHOLD)
    assert alarms_one_by_one(always, [1] * 1_000 + [0] * 50, reset=False)[:1] == [1_001]
    assert always.direction == -1
    for p0 in (0.5, 0.9, 0.998, 0.9995, 1.0 - P_MIN, 1.0):
        up, down = BernoulliCusum(p0, 10.0).alternatives
        assert down < min(max(p0, P_MIN), 1 - P_MIN) < up < 1.0
    assert BernoulliCusum(0.2, 10.0).alternatives == pytest.approx((0.3, 0.2 / 1.5))
    assert BernoulliCusum(0.9, 10.0).alternatives[0] == 0.999


def test_the_chi_square_cusum_detects_a_joint_shift():
    rng = np.random.default_rng(2)
    before = rng.normal(0, 1, (1_000, 3))
    after = rng.normal(0, 1, (1_000, 3)) + np.array([1.0, -1.0, 0.0])
    s = (np.concatenate([before, after]) ** 2).sum(axis=1)
    detector = ChiSquareCusum(dim=3, threshold=LORDEN_THRESHOLD)
    assert alarms_one_by_one(detector, s, reset=False)[:1] == [1_029]
    assert (detector.direction, detector.change_observation) == (1, 990)


# The docstring examples, one value at a time


def test_the_docstring_detections_are_the_same_one_value_at_a_time():
    rng = np.random.default_rng(5)
    z = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(1, 1, 1_000)])
    location = LocationCusum(LOCATION_THRESHOLD)
    assert alarms_one_by_one(location, z, reset=False)[:1] == [1_025]
    assert location.change_observation == 1_001

    rng = np.random.default_rng(11)
    z = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(0, 2**0.5, 1_000)])
    scale = ScaleCusum(LORDEN_THRESHOLD)
    assert alarms_one_by_one(scale, z, reset=False)[:1] == [1_022]
    assert scale.change_observation == 1_009

    rng = np.random.default_rng(3)
    ones = np.concatenate([rng.random(2_000) < 0.2, rng.random(2_000) < 0.35])
    share = BernoulliCusum(0.2, LORDEN_THRESHOLD)
    assert alarms_one_by_one(share, ones, reset=False)[:1] == [2_218]
    assert share.change_observation == 1_628


# update_many is update, exactly

finite = st.floats(min_value=-50, max_value=50, allow_nan=False)
huge = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)
thresholds = st.floats(min_value=0.05, max_value=3.0)
factors = st.floats(min_value=1.0, max_value=5.0)


@st.composite
def detectors_and_values(draw):
    kind = draw(st.sampled_from(["location", "scale", "bernoulli", "chi2"]))
    h = draw(thresholds)
    n = st.integers(min_value=0, max_value=300)
    if kind == "location":
        make = (LocationCusum, h, draw(st.floats(0.1, 2.0)), draw(factors))
        values = draw(st.lists(st.one_of(finite, huge), max_size=300))
    elif kind == "scale":
        make = (ScaleCusum, h, draw(st.floats(1.05, 4.0)), draw(factors))
        values = draw(st.lists(st.one_of(finite, huge), max_size=300))
    elif kind == "bernoulli":
        make = (BernoulliCusum, draw(st.floats(0.0, 1.0)), h, draw(st.floats(1.05, 4.0)))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        values = (rng.random(draw(n)) < draw(st.floats(0.0, 1.0))).tolist()
    else:
        dim = draw(st.integers(1, 6))
        make = (ChiSquareCusum, dim, h, draw(st.floats(1.05, 4.0)), draw(factors))
        values = draw(st.lists(st.floats(0.0, 60.0), max_size=300))
    cuts = sorted(draw(st.lists(n, max_size=4)))
    reset = draw(st.booleans())
    return make, np.array(values, dtype=float), cuts, reset


def build(make):
    cls, *parameters = make
    return cls(*parameters)


@settings(max_examples=300, deadline=None)
@given(detectors_and_values())
def test_update_many_gives_exactly_the_alarms_and_state_of_update(case):
    make, values, cuts, reset = case
    one, many = build(make), build(make)
    expected = alarms_one_by_one(one, values, reset=reset)
    # Feed update_many in arbitrary pieces, as a caller's batches would come.
    found = []
    for begin, end in zip([0, *cuts], [*cuts, len(values)], strict=True):
        found += [begin + i for i in alarms(many, values[begin:end], reset=reset)]
    assert found == expected
    assert many.to_state() == one.to_state()
    assert many.statistic == one.statistic


def test_long_batches_cross_the_block_boundaries_exactly():
    rng = np.random.default_rng(4)
    values = rng.normal(0.02, 1.1, 200_000)
    one, many = LocationCusum(9.0), LocationCusum(9.0)
    assert alarms(many, values) == alarms_one_by_one(one, values)
    assert many.to_state() == one.to_state()


def test_a_saturated_statistic_stays_exact():
    # Without a reset, a lasting enormous change saturates the statistic; the
    # vectorised path then steps one value at a time, exactly as update does.
    one, many = LocationCusum(5.0), LocationCusum(5.0)
    values = np.concatenate([np.full(300_000, 1e6), np.full(1_000, -1e6)])
    assert alarms(many, values, reset=False) == alarms_one_by_one(one, values, reset=False)
    assert many.to_state() == one.to_state()
    # Saturated at 2**28, then 1,000 steps down by the largest step, 2**10.
    assert one.statistic == 2**28 - 1_000 * 2**10


# State


def round_trip(state):
    return json.loads(json.dumps(state))


@pytest.mark.parametrize(
    ("make", "draw"),
    [
        (lambda: LocationCusum(3.0, shift=0.7, variance_factor=1.3), normal(0.1)),
        (lambda: ScaleCusum(3.0, ratio=1.7, variance_factor=1.1), normal(sd=1.1)),
        (lambda: BernoulliCusum(0.2, 3.0, ratio=1.3), lambda rng, n: rng.random(n) < 0.25),
        (lambda: ChiSquareCusum(4, 3.0, inflation=1.2), lambda rng, n: rng.chisquare(4, n) * 1.1),
    ],
)
def test_a_state_round_trip_mid_stream_gives_the_same_future(make, draw):
    values = draw(np.random.default_rng(6), 20_000)
    original = make()
    first = alarms(original, values[:7_001], reset=False)
    assert first, "the round trip is taken part way through a detection"
    restored = type(original).from_state(round_trip(original.to_state()))
    assert restored.to_state() == original.to_state()
    assert (restored.drift_detected, restored.direction, restored.change_observation) == (
        original.drift_detected,
        original.direction,
        original.change_observation,
    )
    rest = values[7_001:]
    assert alarms(restored, rest) == alarms(original, rest)
    assert restored.to_state() == original.to_state()


def test_a_serial_dependence_round_trip_gives_the_same_future():
    z = ar1(np.random.default_rng(6), 10_000, 0.3)
    original = SerialDependence(halflife=300.0, prior_rho=0.2)
    original.update_many(z[:5_000])
    restored = SerialDependence.from_state(round_trip(original.to_state()))
    original.update_many(z[5_000:])
    for value in z[5_000:]:
        restored.update(float(value))
    assert restored.to_state() == original.to_state()
    assert restored.rho == original.rho


@pytest.mark.parametrize(
    "corrupt",
    [
        {"kind": "ScaleCusum"},
        {"version": 99},
        {"sums": [0, 0]},
        {"sums": [-5, 0], "starts": [None, None]},
        {"starts": [None]},
        {"direction": 7},
        {"threshold": "high"},
        {"shift": -1.0},
    ],
)
def test_a_corrupt_state_is_refused(corrupt):
    detector = LocationCusum(5.0)
    detector.update_many(np.full(3, 0.5))
    with pytest.raises(ValueError, match=r"state|must be"):
        LocationCusum.from_state({**detector.to_state(), **corrupt})


# Serial dependence


@pytest.mark.parametrize("seed", range(5))
def test_serial_dependence_finds_an_ar1_correlation(seed):
    dependence = SerialDependence()
    dependence.update_many(ar1(np.random.default_rng(seed), 20_000, 0.5))
    assert dependence.rho == pytest.approx(0.5, abs=0.05)
    assert dependence.variance_factor == pytest.approx(3.0, abs=0.5)


@pytest.mark.parametrize("seed", range(5))
def test_serial_dependence_of_independent_scores_is_about_zero(seed):
    dependence = SerialDependence()
    dependence.update_many(np.random.default_rng(seed).normal(0, 1, 20_000))
    assert 0.0 <= dependence.rho <= 0.05
    assert dependence.variance_factor <= 1.1


def test_a_mean_shift_barely_moves_the_serial_dependence():
    z = ar1(np.random.default_rng(12), 20_000, 0.5)
    steady, shifted = SerialDependence(), SerialDependence()
    steady.update_many(z[:10_000])
    shifted.update_many(z[:10_000])
    gap = 0.0
    for value in z[10_000:12_000]:
        steady.update(float(value))
        shifted.update(float(value) + 1.0)
        gap = max(gap, abs(steady.rho - shifted.rho))
    assert gap < 0.002


def test_one_wild_value_barely_moves_the_serial_dependence():
    z = ar1(np.random.default_rng(13), 10_000, 0.5)
    dependence = SerialDependence()
    dependence.update_many(z)
    before = dependence.rho
    dependence.update_many(np.array([1e300, 0.0]))
    assert before - 0.05 < dependence.rho < before
    assert json.loads(json.dumps(dependence.to_state())) == dependence.to_state()


def test_serial_dependence_is_clipped_and_starts_at_its_prior():
    assert SerialDependence(prior_rho=0.3).rho == pytest.approx(0.3)
    assert SerialDependence(prior_rho=0.3, prior_weight=0.0).rho == 0.3
    near_unit = SerialDependence()
    near_unit.update_many(ar1(np.random.default_rng(0), 20_000, 0.999))
    assert near_unit.rho == 0.95
    assert near_unit.variance_factor == pytest.approx(39.0)
    anti = SerialDependence()
    anti.update_many(ar1(np.random.default_rng(0), 20_000, -0.5))
    assert anti.rho == 0.0
    assert anti.variance_factor == 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-10, 10), st.floats(-1e308, 1e308)), max_size=200),
    st.lists(st.integers(0, 200), max_size=4),
    st.floats(1.0, 5_000.0),
)
def test_serial_dependence_update_many_is_update_exactly(values, cuts, halflife):
    one, many = SerialDependence(halflife=halflife), SerialDependence(halflife=halflife)
    for value in values:
        one.update(value)
    cuts = sorted(cuts)
    for begin, end in zip([0, *cuts], [*cuts, len(values)], strict=True):
        many.update_many(np.array(values[begin:end], dtype=float))
    assert many.to_state() == one.to_state()


@pytest.mark.parametrize("seed", range(3))
def test_advancing_on_given_features_is_advancing_on_the_values(seed):
    rng = np.random.default_rng(seed)
    blocks = rng.normal(0.8, 1.3, size=(3, 200))

    def groups():
        return [[LocationCusum(4.0), ScaleCusum(3.0)] for _ in range(3)]

    by_values, by_features = groups(), groups()
    firsts = advance_groups(by_values, [[block, block] for block in blocks])
    features = np.stack([blocks, blocks * blocks], axis=1).reshape(-1, 200)
    assert advance_groups_on_features(by_features, features) == firsts
    assert any(first is not None for first in firsts)
    for one, other in zip(by_values, by_features, strict=True):
        assert [c.to_state() for c in one] == [c.to_state() for c in other]
    with pytest.raises(ValueError, match="6 CUSUMs but 5 rows"):
        advance_groups_on_features(groups(), features[:5])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(1, 120), min_size=1, max_size=5))
def test_groups_of_different_lengths_advance_as_each_alone(seed, lengths):
    # Padding past a group's own values must move none of its statistics.
    rng = np.random.default_rng(seed)
    width = max(lengths)
    blocks = rng.normal(rng.uniform(0, 1.5), 1.3, size=(len(lengths), width))

    def groups():
        return [[LocationCusum(4.0), ScaleCusum(3.0)] for _ in lengths]

    alone, together = groups(), groups()
    expected = [
        advance_groups([group], [[block[:n], block[:n]]])[0]
        for group, block, n in zip(alone, blocks, lengths, strict=True)
    ]
    features = np.stack([blocks, blocks * blocks], axis=1).reshape(-1, width)
    assert advance_groups_on_features(together, features, lengths) == expected
    for one, other in zip(alone, together, strict=True):
        assert [c.to_state() for c in one] == [c.to_state() for c in other]
    with pytest.raises(ValueError, match="lengths from 1"):
        advance_groups_on_features(groups(), features, [0] * len(lengths))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.lists(st.integers(0, 80), min_size=1, max_size=5))
def test_serial_estimates_of_different_lengths_update_as_each_alone(seed, lengths):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(len(lengths), max(lengths) + 1))
    alone = [SerialDependence() for _ in lengths]
    together = [SerialDependence() for _ in lengths]
    for a, b in zip(alone, together, strict=True):  # each has a last score of its own
        start = rng.normal(size=3)
        a.update_many(start)
        b.update_many(start)
    for estimate, row, n in zip(alone, rows, lengths, strict=True):
        estimate.update_many(row[:n])
    SerialDependence.update_together(together, rows, lengths)
    assert [e.to_state() for e in together] == [e.to_state() for e in alone]


@contextlib.contextmanager
def recursive_filter(used: bool):
    """Within the block, the decayed sums are taken by scipy.signal's filter (or by the loop)."""
    saved = list(sequential._RECURSIVE_FILTER)
    sequential._RECURSIVE_FILTER[:] = [lfilter] if used else []
    try:
        yield
    finally:
        sequential._RECURSIVE_FILTER[:] = saved


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 10_000),
    st.lists(st.integers(0, 120), min_size=1, max_size=6),
    st.floats(1.0, 5_000.0),
    st.booleans(),
)
def test_the_recursive_filter_takes_the_loops_decayed_sums_bit_for_bit(
    seed, lengths, halflife, wild
):
    rng = np.random.default_rng(seed)
    rows = rng.standard_t(2, size=(len(lengths), max(lengths) + 1)) * (1e150 if wild else 1.0)
    starts = rng.normal(size=(len(lengths), 3))
    states = []
    for used in (False, True):
        with recursive_filter(used):
            together = [SerialDependence(halflife=halflife) for _ in lengths]
            alone = [SerialDependence(halflife=halflife) for _ in lengths]
            for a, b, start in zip(together, alone, starts, strict=True):
                a.update_many(start)
                b.update_many(start)
            SerialDependence.update_together(together, rows, lengths)
            SerialDependence.update_together(together, rows)  # every row whole
            for estimate, row, n in zip(alone, rows, lengths, strict=True):
                estimate.update_many(row[:n])
                estimate.update_many(row)
        states.append([e.to_state() for e in together + alone])
    assert states[0] == states[1]
    assert states[0][: len(lengths)] == states[0][len(lengths) :]


# Groups of values known by their walks: a stream that comes as summaries of batches.

GROUPED = [
    # Each detector, what it takes made from normal values, and g of what it takes.
    (lambda: LocationCusum(LOCATION_THRESHOLD), lambda z: z, lambda x: x),
    (lambda: LocationCusum(3.0, variance_factor=2.0), lambda z: z, lambda x: x),
    (lambda: ScaleCusum(LORDEN_THRESHOLD), lambda z: z, lambda x: x),
    (lambda: ChiSquareCusum(2, LORDEN_THRESHOLD), lambda z: z * z, lambda x: x),
    (lambda: BernoulliCusum(0.2, LORDEN_THRESHOLD), lambda z: (z > 0.8).astype(int), lambda x: x),
]


@pytest.mark.parametrize(("make", "taken", "feature"), GROUPED)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    shift=st.floats(0.0, 2.0),
)
def test_a_group_known_by_its_walk_crosses_and_ends_where_value_by_value_does(
    make, taken, feature, seed, sizes, shift
):
    rng = np.random.default_rng(seed)
    one, grouped = make(), make()
    for size in sizes:
        x = taken(rng.normal(shift, 1.0, size))
        crossed = False
        for value in x.tolist():
            one.update(value)
            crossed |= one.drift_detected
        grouped.update_sides(size, grouped.group_sides(x))
        assert grouped.drift_detected == crossed
        if crossed:  # the detectors start afresh after an alarm, at the group's end here
            one.reset()
            grouped.reset()
        # Rounding: one rounds each value's step, the other each group's figures.
        assert grouped.statistic == pytest.approx(one.statistic, abs=one.observations * 2**-31)
        assert (grouped.statistic == 0) == (one.statistic == 0) or min(
            grouped.statistic, one.statistic
        ) < one.observations * 2**-31
    assert grouped.observations == one.observations == sum(sizes)


def test_a_group_walk_places_the_change_at_the_first_value_of_the_group_it_began_in():
    rng = np.random.default_rng(8)
    z = np.concatenate([rng.normal(0, 1, 5_000), rng.normal(1, 1, 1_000)])
    one = LocationCusum(LOCATION_THRESHOLD)
    first = one.update_many(z)
    assert first is not None
    grouped = LocationCusum(LOCATION_THRESHOLD)
    size = 100
    for start in range(0, len(z), size):
        grouped.update_sides(size, grouped.group_sides(z[start : start + size]))
        if grouped.drift_detected:
            break
    # The group in which value by value crossed, reported at its end.
    assert grouped.observations == (first // size + 1) * size
    assert grouped.direction == one.direction == 1
    assert grouped.change_observation % size == 1
    assert one.change_observation - size < grouped.change_observation <= one.change_observation


@pytest.mark.parametrize("count", [0, -1, 1.5, True])
def test_a_group_needs_a_positive_count(count):
    cusum = LocationCusum(LOCATION_THRESHOLD)
    with pytest.raises(ValueError, match="count"):
        cusum.update_sides(count, cusum.group_sides([0.0]))


def test_a_group_needs_a_walk_per_side_and_finite_figures():
    cusum = LocationCusum(LOCATION_THRESHOLD)
    sides = cusum.group_sides([0.0, 1.0])
    with pytest.raises(ValueError, match="1 sides"):
        cusum.update_sides(2, sides[:1])
    with pytest.raises(ValueError, match="finite"):
        cusum.update_sides(2, [sides[0]._replace(total=math.inf), sides[1]])
    with pytest.raises(ValueError, match="at least one value"):
        cusum.group_sides([])
    assert cusum.observations == 0


def test_grouped_differences_estimate_as_equal_ones_would():
    rng = np.random.default_rng(2)
    z = lfilter([0.75**0.5], [1.0, -0.5], rng.normal(0, 1, 40_000))
    one, grouped = SerialDependence(), SerialDependence()
    one.update_many(z)
    squares = np.minimum(np.diff(z) ** 2, sequential.MAX_SQUARED_DIFFERENCE)
    for start in range(0, len(squares), 250):
        piece = squares[start : start + 250]
        grouped.update_group(len(piece), float(piece.sum()))
    assert grouped.rho == pytest.approx(one.rho, abs=0.02)
    assert grouped.rho == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("differences", "squares"), [(-1, 0.0), (2, -1.0), (2, 200.0), (1, math.nan)]
)
def test_impossible_grouped_differences_are_refused(differences, squares):
    with pytest.raises(ValueError, match=r"differences|finite"):
        SerialDependence().update_group(differences, squares)
