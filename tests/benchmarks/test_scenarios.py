"""The detection benchmark's streams and scoring: seeded, with the changes where they say."""

import sys
from pathlib import Path

import numpy as np
import pytest

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import detection, scenarios
finally:
    sys.path.remove(ROOT)

SYNTHETIC_CHANGES = [
    s.name for s in scenarios.SCENARIOS if s.group in {"issue", "real-looking"} and not s.stationary
]


def generate(name, seed=0):
    return scenarios.BY_NAME[name].generate(seed)


@pytest.mark.parametrize("name", [*SYNTHETIC_CHANGES, "sea-label", "cpd-run-log"])
def test_a_seed_always_gives_the_same_stream(name):
    first, again = generate(name, seed=7), generate(name, seed=7)
    assert first.change_points == again.change_points
    for a, b in zip(first.features, again.features, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
        if a.reference is not None:
            np.testing.assert_array_equal(a.reference, b.reference)


@pytest.mark.parametrize("name", [*SYNTHETIC_CHANGES, "sea-label"])
def test_other_seeds_give_other_streams_and_references(name):
    one, two = generate(name, seed=1), generate(name, seed=2)
    assert not np.array_equal(one.features[0].values, two.features[0].values)
    reference = one.features[0].reference
    assert reference is not None
    assert len(reference) == scenarios.REFERENCE_SIZE
    assert not np.array_equal(reference[: one.n_events], one.features[0].values)


@pytest.mark.parametrize("name", [*SYNTHETIC_CHANGES, "sea-inputs", "sea-label"])
def test_change_scenarios_have_5000_events_either_side_of_one_change(name):
    stream = generate(name)
    assert stream.change_points == (scenarios.N_BEFORE,) == (5_000,)
    assert stream.n_events == scenarios.N_BEFORE + scenarios.N_AFTER
    assert stream.warmup == 2_000
    assert all(len(f.values) == stream.n_events for f in stream.features)


def test_stationary_scenarios_are_100000_events_without_a_change():
    stationary = [s for s in scenarios.SCENARIOS if s.stationary]
    assert len(stationary) == 6
    for scenario in stationary:
        stream = scenario.generate(0)
        assert stream.change_points == ()
        assert stream.n_events == 100_000


def halves(name, seed=0):
    stream = generate(name, seed)
    values = stream.features[0].values
    cp = stream.change_points[0]
    return values[:cp], values[cp:]


@pytest.mark.parametrize(
    ("name", "before", "after"),
    [("mean-shift-0.5sd", 0.0, 0.5), ("mean-shift-1sd", 0.0, 1.0), ("mean-shift-2sd", 0.0, 2.0)],
)
def test_mean_shifts_happen_at_the_change_point(name, before, after):
    head, tail = halves(name)
    assert head.mean() == pytest.approx(before, abs=0.05)
    assert tail.mean() == pytest.approx(after, abs=0.05)
    assert head[-500:].mean() == pytest.approx(before, abs=0.15)
    assert tail[:500].mean() == pytest.approx(after, abs=0.15)


def test_the_variance_doubles_at_the_change_point():
    head, tail = halves("variance-x2")
    assert head.var() == pytest.approx(1.0, rel=0.06)
    assert tail.var() == pytest.approx(2.0, rel=0.06)


def test_the_gradual_drift_ramps_to_one_sd_over_2000_events():
    head, tail = halves("gradual-1sd-2000")
    assert head.mean() == pytest.approx(0.0, abs=0.05)
    assert tail[:400].mean() == pytest.approx(0.1, abs=0.1)
    assert tail[800:1200].mean() == pytest.approx(0.5, abs=0.1)
    assert tail[2000:].mean() == pytest.approx(1.0, abs=0.05)


def test_the_tracked_category_goes_from_20_to_35_percent_and_the_others_shrink_alike():
    head, tail = halves("category-share-20-35")
    assert np.mean(head == "a") == pytest.approx(0.20, abs=0.02)
    assert np.mean(tail == "a") == pytest.approx(0.35, abs=0.02)
    assert np.mean(tail == "b") / np.mean(head == "b") == pytest.approx(0.65 / 0.80, abs=0.08)
    assert scenarios.shifted_shares([0.2, 0.5, 0.3], 0, 0.35) == pytest.approx(
        [0.35, 0.40625, 0.24375]
    )


@pytest.mark.parametrize(
    "name", ["student-t3-shift-1sd", "lognormal-shift-1sd", "poisson3-shift-1sd", "ar1-shift-1sd"]
)
def test_the_real_looking_changes_move_the_mean_by_one_sd(name):
    pooled_head, pooled_tail = [], []
    for seed in range(8):
        head, tail = halves(name, seed)
        pooled_head.append(head)
        pooled_tail.append(tail)
    head, tail = np.concatenate(pooled_head), np.concatenate(pooled_tail)
    assert (tail.mean() - head.mean()) / head.std() == pytest.approx(1.0, abs=0.15)


def test_the_poisson_stream_is_integers_with_many_ties():
    values = generate("poisson3-stationary").features[0].values
    assert np.array_equal(values, np.round(values))
    assert len(np.unique(values)) < 25


def test_the_ar1_stream_has_lag_one_autocorrelation_one_half_and_unit_variance():
    values = generate("ar1-stationary").features[0].values
    assert np.corrcoef(values[:-1], values[1:])[0, 1] == pytest.approx(0.5, abs=0.02)
    assert values.var() == pytest.approx(1.0, abs=0.03)


def test_the_mixture_share_moves_from_30_to_50_percent():
    head, tail = halves("mixture-share-30-50")
    assert head.mean() == pytest.approx(0.3 * 4, abs=0.1)
    assert tail.mean() == pytest.approx(0.5 * 4, abs=0.1)


def test_sea_changes_the_label_shares_but_not_the_inputs():
    head, tail = halves("sea-label")
    assert np.mean(head == "True") == pytest.approx(0.68, abs=0.03)
    assert np.mean(tail == "True") == pytest.approx(0.595, abs=0.03)
    inputs = generate("sea-inputs")
    assert len(inputs.features) == 3
    assert not scenarios.BY_NAME["sea-inputs"].monitored_change
    for feature in inputs.features:
        before, after = feature.values[:5000], feature.values[5000:]
        assert before.mean() == pytest.approx(after.mean(), abs=0.25)


def test_consensus_change_points_need_more_than_half_the_annotators():
    annotations = {"1": [10, 50], "2": [12, 80], "3": [], "4": [14, 51]}
    # 10, 12, 14 chain within 5 events: one change point, at the earliest mark.
    assert scenarios.consensus_change_points(annotations) == [10]
    assert scenarios.consensus_change_points({"1": [5], "2": [5], "3": []}) == [5]
    assert scenarios.consensus_change_points({"1": [5], "2": [], "3": []}) == []


@pytest.mark.parametrize("series", scenarios.CHANGEPOINT_SERIES, ids=lambda s: s.name)
def test_recorded_series_have_their_labels_inside_them(series):
    stream = scenarios.load_change_point_series(series)
    assert stream.change_points == tuple(sorted(stream.change_points))
    assert stream.change_points[0] > 0
    assert stream.change_points[-1] < stream.n_events
    assert 0 < stream.warmup <= stream.change_points[0] // 2
    assert all(f.reference is None for f in stream.features)
    if series.name == "cpd-brent":
        assert stream.n_events == 500


def test_truncation_keeps_the_change_points_inside():
    stream = generate("stationary-normal").truncated(20_000)
    assert stream.n_events == 20_000
    assert stream.change_points == ()


# -- scoring -----------------------------------------------------------------------


def test_alarms_before_the_change_are_false_and_the_first_after_it_gives_the_delay():
    result = detection.score([[100, 4999, 5000, 5100]], [5000], 10_000)
    assert result == detection.Score(false_alarms=2, monitored=5_000, delays=(1,))


def test_the_warm_up_is_not_monitored():
    result = detection.score([[5049]], [5000], 10_000, monitor_start=2_000)
    assert result == detection.Score(false_alarms=0, monitored=3_000, delays=(50,))
    with pytest.raises(ValueError, match="warm-up"):
        detection.score([[]], [100], 1_000, monitor_start=200)


def test_no_alarm_after_the_change_is_a_miss():
    assert detection.score([[10]], [5000], 10_000).delays == (None,)
    assert detection.score([[]], [5000], 10_000) == detection.Score(0, 5_000, (None,))


def test_the_first_alarm_on_any_feature_counts_and_false_alarms_are_per_feature():
    result = detection.score([[7, 5100], [8, 9, 5050]], [5000], 10_000)
    assert result == detection.Score(false_alarms=3, monitored=10_000, delays=(51,))


def test_each_change_point_is_detected_before_the_next_one_or_missed():
    assert detection.score([[150, 250, 260]], [100, 200], 300).delays == (51, 51)
    assert detection.score([[150, 160]], [100, 200], 300).delays == (51, None)
    assert detection.score([[250]], [100, 200], 300).delays == (None, 51)


def test_in_a_stationary_stream_every_monitored_alarm_is_false():
    result = detection.score([[1_000, 50_000]], [], 100_000, monitor_start=2_000)
    assert result == detection.Score(false_alarms=1, monitored=98_000, delays=())


def run(seed, delays, false_alarms=0, monitored=3_000, error=None):
    return detection.Run(
        scenario="s",
        detector="d",
        seed=seed,
        n_events=10_000,
        n_features=1,
        change_points=(5_000,),
        monitor_start=2_000,
        false_alarms=false_alarms,
        monitored=monitored,
        delays=delays,
        seconds=0.01,
        updates=8_000,
        error=error,
    )


def test_summaries_pool_the_seeds():
    runs = [
        run(0, (10,), false_alarms=1),
        run(1, (30,)),
        run(2, (2_500,)),
        run(3, (None,)),
        run(4, (), error="ValueError: too small", monitored=0),
    ]
    summary = detection.summarize(runs)
    assert summary.seeds == 4
    assert summary.change_points == 4
    assert summary.median_delay == 30
    assert summary.mean_delay == pytest.approx((10 + 30 + 2_500) / 3)
    assert summary.miss_rate == 0.25
    assert summary.detected_within_2000 == 0.5
    assert summary.false_alarms_per_1000 == pytest.approx(1000 * 1 / 12_000)
    assert summary.us_per_event == pytest.approx(1e6 * 0.04 / 32_000)
    assert summary.errors == ["ValueError: too small"]


def test_stationary_summaries_have_no_delays():
    summary = detection.summarize([run(0, (), false_alarms=2, monitored=98_000)])
    assert summary.median_delay is None
    assert summary.miss_rate is None
    assert summary.false_alarms_per_1000 == pytest.approx(2000 / 98_000)


def test_a_river_run_on_a_2_sd_shift_detects_it():
    stream = generate("mean-shift-2sd")
    result = detection.run_detector(detection.DETECTORS["adwin"], "x", stream, 0, 1e6)
    assert result is not None
    assert result.monitor_start == 0
    assert result.delays[0] is not None
    assert result.delays[0] < 200


def test_a_categorical_feature_reaches_river_as_the_tracked_category_indicator():
    feature = scenarios.Feature(
        "c", "categorical", np.array(["a", "b"] * 50 + ["a"] * 400), None, "a"
    )
    assert detection.run_river("page-hinkley", feature, 0) != []


def test_recorded_data_has_no_registered_reference():
    stream = generate("cpd-uk-coal")
    config = detection.DETECTORS["ours-registered"]
    assert detection.run_detector(config, "cpd-uk-coal", stream, 0, 1e6) is None


def test_kswin_gets_at_most_10_seeds():
    tasks = detection.plan(["mean-shift-1sd"], ["adwin", "kswin"], 12, 1e6)
    assert [t.detectors for t in sorted(tasks, key=lambda t: t.seed)] == (
        [("adwin", "kswin")] * 10 + [("adwin",)] * 2
    )
