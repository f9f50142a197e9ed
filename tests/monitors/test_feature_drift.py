import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.monitors.feature_drift import (
    CategoricalDrift,
    NumericDrift,
    _uniform,
    _uniforms,
    _uniforms_of_streams,
    ks_uniform,
)
from driftline.schemas.summaries import CategorySums, NumericSums

ARL = 1e6


def reference(rng: np.random.Generator, sampler, size: int = 2_000) -> np.ndarray:
    return np.asarray(sampler(rng, size), dtype=np.float64)


def normal(rng, size):
    return rng.normal(0.0, 1.0, size)


def test_the_counter_uniforms_agree_one_by_one_and_in_bulk():
    bulk = _uniforms(10, 1_000, seed=7)
    assert bulk.tolist() == [_uniform(10 + i, 7) for i in range(1_000)]
    assert bulk.min() >= 0.0
    assert bulk.max() < 1.0
    assert abs(bulk.mean() - 0.5) < 0.03


@pytest.mark.parametrize(
    "sampler",
    [
        normal,
        lambda rng, n: rng.standard_t(3, n),
        lambda rng, n: rng.lognormal(0.0, 1.0, n),
        lambda rng, n: rng.poisson(3, n).astype(float),
        lambda rng, n: np.where(rng.random(n) < 0.3, rng.normal(-3, 0.5, n), rng.normal(2, 1, n)),
    ],
    ids=["normal", "student-t3", "lognormal", "poisson-ties", "mixture"],
)
def test_no_alarm_on_long_stationary_streams_of_any_shape(sampler):
    alarms = 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        detector = NumericDrift.from_reference_values(reference(rng, sampler), arl=ARL, seed=seed)
        alarms += len(detector.update_many(reference(rng, sampler, 50_000)))
    assert alarms == 0


@pytest.mark.parametrize(("shift", "most"), [(1.0, 60), (0.5, 150)])
def test_mean_shifts_are_found_within_the_target_delay(shift, most):
    delays = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        detector = NumericDrift.from_reference_values(normal(rng, 2_000), arl=ARL, seed=seed)
        stream = np.concatenate([normal(rng, 3_000), normal(rng, 2_000) + shift])
        after = [i - 3_000 for i in detector.update_many(stream) if i >= 3_000]
        assert after, f"seed {seed}: missed"
        delays.append(after[0])
    assert np.median(delays) <= most


def test_a_doubled_variance_is_found_by_the_scale_test():
    delays = []
    for seed in range(20):
        rng = np.random.default_rng(200 + seed)
        detector = NumericDrift.from_reference_values(normal(rng, 2_000), arl=ARL, seed=seed)
        stream = np.concatenate([normal(rng, 3_000), normal(rng, 2_000) * np.sqrt(2.0)])
        alarms = detector.update_many(stream)
        assert alarms, f"seed {seed}: missed"
        assert alarms[0] >= 3_000, f"seed {seed}: false alarm at {alarms[0]}"
        delays.append(alarms[0] - 3_000)
        assert detector.last_alarm is not None
    assert np.median(delays) <= 200


def test_an_alarm_says_which_test_fired_and_where_the_change_began():
    rng = np.random.default_rng(9)
    detector = NumericDrift.from_reference_values(normal(rng, 2_000), arl=ARL)
    stream = np.concatenate([normal(rng, 1_000), normal(rng, 500) + 2.0])
    first = next(i for i, x in enumerate(stream) if detector.update(float(x)))
    assert first >= 1_000
    alarm = detector.last_alarm
    assert alarm is not None
    assert (alarm.test, alarm.direction) == ("location_cusum", "up")
    assert alarm.statistic >= alarm.threshold
    assert abs(alarm.change_observation - 1_001) <= 10
    assert len(alarm.current) == alarm.observation - alarm.change_observation + 1
    distances = detector.distances(alarm.current)
    assert distances["ks"] > 0.5
    assert distances["wasserstein"] > 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=900))
def test_update_many_equals_updating_value_by_value(seed, split):
    rng = np.random.default_rng(seed)
    ref = np.round(normal(rng, 500), 1)  # ties on purpose
    stream = np.round(np.concatenate([normal(rng, 600), normal(rng, 400) + 1.5]), 1)
    one = NumericDrift.from_reference_values(ref, arl=1e4, seed=seed)
    bulk = NumericDrift.from_reference_values(ref, arl=1e4, seed=seed)
    one_by_one = [i for i, x in enumerate(stream) if one.update(float(x))]
    in_bulk = bulk.update_many(stream[:split]) + [
        split + i for i in bulk.update_many(stream[split:])
    ]
    assert in_bulk == one_by_one
    assert json.dumps(bulk.to_state()) == json.dumps(one.to_state())


@settings(max_examples=25, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000),
    st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=5),
)
def test_detectors_taken_together_stop_where_each_alone_would(seed, already):
    rng = np.random.default_rng(seed)
    ref = np.round(normal(rng, 500), 1)  # ties on purpose

    def detector() -> NumericDrift:
        return NumericDrift.from_reference_values(ref, arl=1e4, seed=seed)

    together, alone = [detector() for _ in already], [detector() for _ in already]
    for count, a, b in zip(already, together, alone, strict=True):
        past = normal(rng, count)  # detectors at different points of their blocks
        a.update_many(past)
        b.update_many(past)
    streams = [  # of different lengths, some shorter than a block, one maybe empty
        np.round(
            np.concatenate(
                [
                    normal(rng, rng.integers(0, 700)),
                    normal(rng, rng.integers(0, 300)) + rng.uniform(0, 2),
                ]
            ),
            1,
        )
        for _ in already
    ]
    scores = [d.scores_ahead(x) for d, x in zip(together, streams, strict=True)]
    hits = NumericDrift.take_together(together, streams, scores)
    assert hits == [
        d.take_until_alarm(x, d.scores_ahead(x)) for d, x in zip(alone, streams, strict=True)
    ]
    for a, b in zip(together, alone, strict=True):
        assert json.dumps(a.to_state()) == json.dumps(b.to_state())


def test_detector_state_is_plain_json():
    rng = np.random.default_rng(1)
    detector = NumericDrift.from_reference_values(normal(rng, 2_000), arl=ARL)
    detector.update_many(normal(rng, 300))
    for part in (detector.location, detector.scale):
        assert json.loads(json.dumps(part.to_state())) == part.to_state()


def categories(rng: np.random.Generator, shares: list[float], size: int) -> list[str]:
    return rng.choice(list("abcde"), size, p=shares).tolist()


BEFORE = [0.2, 0.2, 0.2, 0.2, 0.2]
AFTER = [0.35, 0.1625, 0.1625, 0.1625, 0.1625]


def test_a_category_share_moving_from_20_to_35_percent_is_found_within_2000_events():
    found = 0
    for seed in range(20):
        rng = np.random.default_rng(300 + seed)
        detector = CategoricalDrift.from_reference_values(categories(rng, BEFORE, 2_000), arl=ARL)
        stream = categories(rng, BEFORE, 3_000) + categories(rng, AFTER, 2_000)
        alarms = [i for i, value in enumerate(stream) if detector.update(value)]
        assert not [i for i in alarms if i < 3_000], f"seed {seed}: false alarm"
        found += bool(alarms)
    assert found >= 19


def test_no_categorical_alarm_on_a_long_stationary_stream_and_unseen_values_count_as_other():
    rng = np.random.default_rng(4)
    detector = CategoricalDrift.from_reference_values(categories(rng, BEFORE, 2_000), arl=ARL)
    assert not any(detector.update(value) for value in categories(rng, BEFORE, 50_000))
    assert detector.group_of("never-seen") == CategoricalDrift.OTHER
    alarms = [i for i in range(3_000) if detector.update("never-seen" if i % 10 == 0 else "a")]
    assert alarms
    assert detector.last_alarm is not None
    assert detector.last_alarm.test == "category_cusum"
    assert set(detector.distances(detector.last_alarm.current)) == {
        "psi",
        "jensen_shannon",
        "chi2_p_value",
    }


def test_every_detector_goes_on_identically_after_a_json_round_trip_of_its_state():
    rng = np.random.default_rng(12)
    numeric = NumericDrift.from_reference_values(np.round(normal(rng, 2_000), 1), arl=1e4)
    numbers = np.round(np.concatenate([normal(rng, 3_000), normal(rng, 3_000) + 1.0]), 1)
    numeric.update_many(numbers[:2_500])
    copy = NumericDrift.from_state(json.loads(json.dumps(numeric.to_state())))
    assert copy.update_many(numbers[2_500:]) == numeric.update_many(numbers[2_500:])

    categorical = CategoricalDrift.from_reference_values(categories(rng, BEFORE, 2_000), arl=1e4)
    values = categories(rng, BEFORE, 2_000) + categories(rng, AFTER, 3_000)
    for value in values[:2_500]:
        categorical.update(value)
    twin = CategoricalDrift.from_state(json.loads(json.dumps(categorical.to_state())))
    rest = values[2_500:]
    assert [twin.update(v) for v in rest] == [categorical.update(v) for v in rest]


def test_a_state_without_its_reference_goes_on_identically_given_the_reference_back():
    rng = np.random.default_rng(13)
    numeric = NumericDrift.from_reference_values(normal(rng, 2_000), arl=1e4)
    numbers = np.concatenate([normal(rng, 3_000), normal(rng, 3_000) + 1.0])
    numeric.update_many(numbers[:2_500])
    state = json.loads(json.dumps(numeric.to_state(with_reference=False)))
    assert "reference" not in state
    copy = NumericDrift.from_state(state, numeric.reference)
    assert copy.update_many(numbers[2_500:]) == numeric.update_many(numbers[2_500:])
    assert copy.to_state() == numeric.to_state()

    categorical = CategoricalDrift.from_reference_values(categories(rng, BEFORE, 2_000), arl=1e4)
    values = categories(rng, BEFORE, 2_000) + categories(rng, AFTER, 3_000)
    for value in values[:2_500]:
        categorical.update(value)
    state = json.loads(json.dumps(categorical.to_state(with_reference=False)))
    assert "reference" not in state
    twin = CategoricalDrift.from_state(state, categorical.reference)
    rest = values[2_500:]
    assert [twin.update(v) for v in rest] == [categorical.update(v) for v in rest]


def test_uniforms_of_several_streams_are_each_streams_own():
    starts, counts, seeds = [0, 10, 2**40, 5], [3, 0, 7, 1], [1, 2, 2**63 + 5, 0]
    together = _uniforms_of_streams(starts, counts, seeds).tolist()
    expected = [
        _uniform(start + i, seed)
        for start, count, seed in zip(starts, counts, seeds, strict=True)
        for i in range(count)
    ]
    assert together == expected


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=600),
    st.booleans(),
)
def test_the_ks_test_of_evidence_is_scipys_to_the_last_bit(values, tied):
    u = np.round(values, 2) if tied else np.asarray(values)
    result = stats.kstest(u, "uniform")
    assert ks_uniform(u) == (float(result.statistic), float(result.pvalue))


def test_the_ks_test_of_evidence_needs_a_value():
    with pytest.raises(ValueError, match="at least one value"):
        ks_uniform(np.zeros(0))


# Summaries: a stream that comes as sums over batches (a two-stage worker's second stage).


def numeric_summary(detector: NumericDrift, values: np.ndarray, sample: int = 8) -> NumericSums:
    """The sums a first stage sends for these values, scored against the detector's reference."""
    z = detector.reference.normal_scores(values, np.full(len(values), 0.5))
    return NumericSums(
        count=len(z),
        total=float(z.sum()),
        squares=float((z * z).sum()),
        differences=len(z) - 1,
        squared_differences=float(np.minimum(np.diff(z) ** 2, 64.0).sum()),
        location=detector.location_walks(z),
        scale=detector.scale_walks(z),
        sample=values[:sample].tolist(),
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("size", [50, 400])
def test_summaries_of_a_stationary_stream_raise_no_alarm(seed, size):
    rng = np.random.default_rng(seed)
    detector = NumericDrift.from_reference_values(rng.standard_t(3, 5_000), arl=ARL)
    for _ in range(100_000 // size):
        assert not detector.update_summary(numeric_summary(detector, rng.standard_t(3, size)))
    assert detector.observations == 100_000 // size * size


@pytest.mark.parametrize(("shift", "scale"), [(1.0, 1.0), (-0.5, 1.0), (0.0, 2.0)])
@pytest.mark.parametrize("seed", range(3))
def test_summaries_alarm_no_sooner_and_at_most_a_batch_later_than_value_by_value(
    shift, scale, seed
):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 1, 4_000), rng.normal(shift, scale, 4_000)])
    reference_values = rng.normal(0, 1, 5_000)
    one = NumericDrift.from_reference_values(reference_values, arl=ARL)
    grouped = NumericDrift.from_reference_values(reference_values, arl=ARL)
    first = one.update_many(values)[0]
    size = 100
    for start in range(0, len(values), size):
        if grouped.update_summary(numeric_summary(grouped, values[start : start + size])):
            break
    alarm = grouped.last_alarm
    assert alarm is not None
    assert alarm.test == one.last_alarm.test or shift == 0.0
    # A little later for the grouped test's coarser variance estimate, never much.
    assert first < alarm.observation <= first + 2 * size + 0.25 * (first - 4_000)
    assert 3_900 < alarm.change_observation <= 4_001
    assert alarm.change_observation % size == 1
    assert set(alarm.current) <= set(values.tolist())


def test_category_counts_of_groups_the_detector_lacks_are_refused():
    detector = CategoricalDrift.from_reference_values(["a", "b", "a"], arl=ARL)
    walks = detector.walks(["a", "a", "a", "zz"])
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        detector.update_counts(
            CategorySums(counts={"a": 3, "zz": 1}, walks={**walks, "zz": walks["a"]})
        )
    with pytest.raises(ValueError, match="every group"):
        detector.update_counts(CategorySums(counts={"a": 3}, walks={"a": walks["a"]}))
    assert detector.observations == 0


@pytest.mark.parametrize("seed", range(3))
def test_category_counts_alarm_within_a_batch_of_value_by_value(seed):
    rng = np.random.default_rng(seed)
    names = ["a", "b", "c"]
    reference_values = rng.choice(names, 5_000, p=[0.5, 0.3, 0.2]).tolist()
    one = CategoricalDrift.from_reference_values(reference_values, arl=ARL)
    grouped = CategoricalDrift.from_reference_values(reference_values, arl=ARL)
    before = rng.choice(names, 20_000, p=[0.5, 0.3, 0.2]).tolist()
    after = rng.choice([*names, "new"], 5_000, p=[0.47, 0.3, 0.2, 0.03]).tolist()
    values = before + after
    first = one.take_until_alarm(values)
    assert first is not None
    assert first >= len(before)
    size = 100
    for start in range(0, len(values), size):
        batch = values[start : start + size]
        counts: dict[str, int] = {}
        for value in batch:
            counts[grouped.group_of(value)] = counts.get(grouped.group_of(value), 0) + 1
        summary = CategorySums(counts=counts, walks=grouped.walks(batch), sample=batch[:8])
        if grouped.update_counts(summary):
            break
    alarm = grouped.last_alarm
    assert alarm is not None
    assert alarm.direction == one.last_alarm.direction == "(other) up"
    assert first < alarm.observation <= first + size
    assert alarm.change_observation % size == 1


def test_summaries_of_one_value_each_keep_the_spread_serial_estimate_as_it_was_made():
    # A summary of one value has no difference: the estimate, made once for the spread,
    # must not be made again (its half-life grew eightfold at each summary, to infinity).
    rng = np.random.default_rng(4)
    detector = NumericDrift.from_reference_values(rng.normal(0, 1, 2_000), arl=ARL)
    for value in rng.normal(0, 1, 50):
        detector.update_summary(numeric_summary(detector, np.array([value])), spread=8)
    assert detector.serial.halflife == 8_000
    assert detector.observations == 50
