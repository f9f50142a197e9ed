import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.monitors.reference import (
    DEFAULT_RESOLUTION,
    CategoricalReference,
    ModelReference,
    NumericReference,
    _reduce,
    build_reference,
    merge_profiles,
)
from driftline.schemas.reference import (
    CategoricalCounts,
    NumericSketch,
    ReferenceProfile,
)
from driftline.schemas.registry import FeatureKind, FeatureSpec, ModelSpec, TaskType

KIB = 1024


def mixture(rng: np.random.Generator, n: int) -> np.ndarray:
    first = rng.random(n) < 0.3
    return np.where(first, rng.normal(-3.0, 0.5, n), rng.normal(2.0, 1.5, n))


CONTINUOUS = {
    "normal": lambda rng, n: rng.normal(size=n),
    "lognormal": lambda rng, n: rng.lognormal(size=n),
    "student-t-2": lambda rng, n: rng.standard_t(2, size=n),
    "mixture": mixture,
}
DISCRETE = {
    "poisson-3": lambda rng, n: rng.poisson(3.0, size=n).astype(float),
    "three-valued": lambda rng, n: rng.choice([0.0, 1.0, 5.0], size=n, p=[0.2, 0.5, 0.3]),
    "zero-inflated": lambda rng, n: np.where(rng.random(n) < 0.4, 0.0, rng.exponential(size=n)),
}
DISTRIBUTIONS = {**CONTINUOUS, **DISCRETE}

REFERENCE_SIZE = 200_000
"""Values of a reference in the uniformity tests.

The PIT is taken under the reference's *empirical* CDF, so a one-sample
test of it also sees the reference's own sampling error: with a reference
as small as the fresh sample, p < 0.001 comes about 4% of the time although
nothing is wrong. Ten times more reference values bring that down to the
test's own level.
"""


def spec(*features: FeatureSpec) -> ModelSpec:
    return ModelSpec(
        model_id="m", model_version="1", task=TaskType.REGRESSION, features=list(features)
    )


def numeric(name: str, **fields) -> FeatureSpec:
    return FeatureSpec(name=name, kind=FeatureKind.NUMERIC, **fields)


def grid_over(values: np.ndarray) -> np.ndarray:
    """Points across and beyond the data, its quantiles included."""
    inside = np.quantile(values, np.linspace(0.0, 1.0, 1001))
    span = values.max() - values.min()
    around = np.linspace(values.min() - span, values.max() + span, 1001)
    return np.concatenate([inside, around, np.unique(values)[:200]])


# The probability integral transform


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_the_pit_of_fresh_values_is_uniform_and_their_normal_scores_standard(name, seed):
    draw = DISTRIBUTIONS[name]
    rng = np.random.default_rng(seed)
    reference = NumericReference.from_values(draw(rng, REFERENCE_SIZE))
    fresh = draw(rng, 20_000)
    u = reference.pit_many(fresh, rng.random(fresh.size))
    assert stats.kstest(u, "uniform").pvalue > 0.001
    z = reference.normal_scores(fresh, rng.random(fresh.size))
    assert abs(z.mean()) < 0.03
    assert abs(z.std() - 1.0) < 0.03


@pytest.mark.parametrize(
    ("name", "cdf"),
    [
        ("normal", stats.norm.cdf),
        ("student-t-2", stats.t(2).cdf),
        ("lognormal", stats.lognorm(1).cdf),
    ],
)
def test_the_sketch_follows_the_true_cdf(name, cdf):
    rng = np.random.default_rng(3)
    values = DISTRIBUTIONS[name](rng, REFERENCE_SIZE)
    reference = NumericReference.from_values(values)
    points = np.quantile(values, np.linspace(0.0005, 0.9995, 4001))
    u = reference.pit_many(points, np.full(points.size, 0.5))
    assert np.abs(u - cdf(points)).max() < 0.01


def test_without_randomizing_ties_the_pit_of_integer_values_is_not_uniform():
    # The reason for v: F(x) alone piles integer values up on a few levels.
    rng = np.random.default_rng(4)
    reference = NumericReference.from_values(rng.poisson(3.0, REFERENCE_SIZE))
    fresh = rng.poisson(3.0, 20_000).astype(float)
    assert stats.kstest(reference.pit_many(fresh, np.ones(fresh.size)), "uniform").pvalue < 1e-10
    u = reference.pit_many(fresh, rng.random(fresh.size))
    assert stats.kstest(u, "uniform").pvalue > 0.001


def test_point_masses_keep_their_exact_shares():
    rng = np.random.default_rng(5)
    values = rng.poisson(3.0, 50_000)
    sketch = NumericReference.from_values(values).to_sketch()
    n = values.size
    for k in range(8):
        i = sketch.values.index(float(k))
        assert sketch.cdf_below[i] == pytest.approx((values < k).sum() / n, abs=1e-12)
        assert sketch.cdf_at[i] == pytest.approx((values <= k).sum() / n, abs=1e-12)


def test_a_point_mass_within_continuous_values_is_kept():
    rng = np.random.default_rng(6)
    values = np.concatenate([rng.exponential(size=9_000), np.full(1_000, 2.5)])
    reference = NumericReference.from_values(values)
    i = reference.sketch.values.index(2.5)
    jump = reference.sketch.cdf_at[i] - reference.sketch.cdf_below[i]
    assert jump == pytest.approx(0.1, abs=1e-12)
    low, high = reference.pit(2.5, 0.0), reference.pit(2.5, 1.0)
    assert high - low == pytest.approx(0.1, abs=1e-12)


def test_values_seen_once_are_never_point_masses():
    # A small reference of distinct values: every value's share is above
    # 1/resolution, but none was seen twice, so F rises between them.
    reference = NumericReference.from_values([1.0, 2.0, 3.0, 4.0])
    assert reference.sketch.cdf_below == reference.sketch.cdf_at == [0.125, 0.375, 0.625, 0.875]
    assert reference.pit(1.5, 0.0) == reference.pit(1.5, 1.0) == 0.25


def test_beyond_the_values_seen_the_pit_stops_half_a_value_short_of_0_and_1():
    rng = np.random.default_rng(7)
    reference = NumericReference.from_values(rng.normal(size=20_000))
    floor = 0.5 / 20_000
    for v in (0.0, 0.3, 1.0):
        assert reference.pit(reference.minimum - 1.0, v) == floor
        assert reference.pit(-math.inf, v) == floor
        assert reference.pit(reference.maximum + 1.0, v) == 1.0 - floor
        assert reference.pit(math.inf, v) == 1.0 - floor
    assert reference.normal_score(1e300, 0.5) == pytest.approx(stats.norm.ppf(1.0 - floor))


def test_a_reference_of_one_value_places_everything_in_the_middle():
    reference = NumericReference.from_values([3.0])
    assert {reference.pit(x, v) for x in (-1.0, 3.0, 5.0) for v in (0.0, 1.0)} == {0.5}
    assert reference.normal_score(3.0, 0.7) == 0.0


def test_pit_many_equals_pit_value_by_value():
    rng = np.random.default_rng(8)
    for values in (
        rng.standard_t(2, 20_000),
        rng.poisson(3.0, 20_000).astype(float),
        np.where(rng.random(20_000) < 0.4, 0.0, rng.exponential(size=20_000)),
        np.array([-1e308, 0.0, 1e308]),
    ):
        reference = NumericReference.from_values(values)
        xs = np.concatenate([grid_over(values[np.abs(values) < 1e300]), [-np.inf, np.inf, 5e307]])
        vs = rng.random(xs.size)
        vs[:3] = [0.0, 1.0, 0.5]
        many = reference.pit_many(xs, vs)
        assert many.tolist() == [reference.pit(x, v) for x, v in zip(xs, vs, strict=True)]
        scores = reference.normal_scores(xs, vs)
        assert scores.tolist() == [
            reference.normal_score(x, v) for x, v in zip(xs, vs, strict=True)
        ]


def test_the_pit_refuses_nan_and_v_outside_0_1():
    reference = NumericReference.from_values([1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        reference.pit(math.nan, 0.5)
    with pytest.raises(ValueError, match="v must be in"):
        reference.pit(1.0, 1.5)
    with pytest.raises(ValueError, match="NaN"):
        reference.pit_many(np.array([math.nan]), np.array([0.5]))
    with pytest.raises(ValueError, match="every v"):
        reference.pit_many(np.array([1.0]), np.array([-0.1]))
    with pytest.raises(ValueError, match="one shape"):
        reference.pit_many(np.array([1.0, 2.0]), np.array([0.5]))


# Building


def test_from_values_leaves_out_nan_and_infinities():
    reference = NumericReference.from_values([1.0, math.nan, math.inf, 2.0, -math.inf])
    assert reference.count == 2
    assert (reference.minimum, reference.maximum) == (1.0, 2.0)


@pytest.mark.parametrize("values", [[], [math.nan, math.inf]])
def test_from_values_refuses_no_finite_values(values):
    with pytest.raises(ValueError, match="no finite values"):
        NumericReference.from_values(values)


@pytest.mark.parametrize("resolution", [0, 1, 1_001])
def test_the_resolution_is_bounded(resolution):
    with pytest.raises(ValueError, match="resolution must be from 2 to 1000"):
        NumericReference.from_values([1.0], resolution=resolution)


def test_support_points_are_values_seen():
    rng = np.random.default_rng(9)
    values = rng.normal(size=10_000)
    sketch = NumericReference.from_values(values).to_sketch()
    assert set(sketch.values) <= set(values.tolist())
    assert (sketch.minimum, sketch.maximum) == (values.min(), values.max())


@pytest.mark.parametrize("size", [20_000, 1_000_000])
@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_the_sketch_stays_small(name, size):
    rng = np.random.default_rng(10)
    reference = NumericReference.from_values(DISTRIBUTIONS[name](rng, size))
    sketch = reference.to_sketch()
    assert len(sketch.values) <= DEFAULT_RESOLUTION + 50
    assert len(sketch.model_dump_json()) < 30 * KIB


def test_a_lower_resolution_keeps_fewer_points():
    rng = np.random.default_rng(11)
    values = rng.normal(size=20_000)
    coarse = NumericReference.from_values(values, resolution=64)
    assert len(coarse.to_sketch().values) < 90
    u = coarse.pit_many(values[:2_000], np.full(2_000, 0.5))
    assert np.abs(u - stats.norm.cdf(values[:2_000])).max() < 0.03


def test_many_point_masses_are_all_kept():
    values = np.repeat(np.arange(400, dtype=float), 3)
    sketch = NumericReference.from_values(values).to_sketch()
    assert sketch.values == np.arange(400, dtype=float).tolist()
    assert sketch.cdf_at[-1] == 1.0


# Round trips


def test_a_sketch_round_trips_through_json_with_the_same_behaviour():
    rng = np.random.default_rng(12)
    values = np.where(rng.random(20_000) < 0.3, 0.0, rng.lognormal(size=20_000))
    reference = NumericReference.from_values(values)
    text = reference.to_sketch().model_dump_json()
    again = NumericReference.from_sketch(NumericSketch.model_validate_json(text))
    assert again.to_sketch() == reference.to_sketch()
    xs = grid_over(values)
    vs = rng.random(xs.size)
    assert again.pit_many(xs, vs).tolist() == reference.pit_many(xs, vs).tolist()
    assert again.quantiles([0.1, 0.5, 0.9]) == reference.quantiles([0.1, 0.5, 0.9])


# Quantiles


def test_quantiles_follow_the_true_ones():
    rng = np.random.default_rng(13)
    reference = NumericReference.from_values(rng.normal(size=REFERENCE_SIZE))
    probs = np.linspace(0.01, 0.99, 99)
    assert np.abs(np.array(reference.quantiles(probs)) - stats.norm.ppf(probs)).max() < 0.02


def test_quantiles_invert_the_cdf():
    rng = np.random.default_rng(14)
    reference = NumericReference.from_values(rng.lognormal(size=20_000))
    xs = np.array(reference.quantiles(np.linspace(0.01, 0.99, 50)))
    assert np.allclose(reference.pit_many(xs, np.full(xs.size, 0.5)), np.linspace(0.01, 0.99, 50))


def test_quantiles_of_point_masses_and_the_ends():
    rng = np.random.default_rng(15)
    values = rng.poisson(3.0, 20_000)
    reference = NumericReference.from_values(values)
    assert reference.quantiles([0.0, 0.5, 1.0]) == [0.0, 3.0, float(values.max())]
    with pytest.raises(ValueError, match="probabilities"):
        reference.quantiles([1.5])


# Merging


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_merging_two_halves_gives_the_reference_of_the_whole(name):
    rng = np.random.default_rng(16)
    values = DISTRIBUTIONS[name](rng, 40_000)
    whole = NumericReference.from_values(values)
    halves = NumericReference.from_values(values[:20_000]).merge(
        NumericReference.from_values(values[20_000:])
    )
    assert halves.count == whole.count
    xs = grid_over(values)
    for v in (0.0, 0.5, 1.0):
        vs = np.full(xs.size, v)
        assert np.abs(halves.pit_many(xs, vs) - whole.pit_many(xs, vs)).max() < 0.01
    assert len(halves.to_sketch().model_dump_json()) < 30 * KIB


def test_merging_many_shards_stays_close_to_the_whole():
    rng = np.random.default_rng(17)
    values = rng.standard_t(2, 50_000)
    shards = [NumericReference.from_values(part) for part in np.array_split(values, 10)]
    merged = shards[0]
    for shard in shards[1:]:
        merged = merged.merge(shard)
    whole = NumericReference.from_values(values)
    xs = grid_over(values)
    half = np.full(xs.size, 0.5)
    assert np.abs(merged.pit_many(xs, half) - whole.pit_many(xs, half)).max() < 0.01


def test_merging_references_apart_weighs_them_by_count():
    low = NumericReference.from_values(np.linspace(0.0, 1.0, 3_000))
    high = NumericReference.from_values(np.linspace(10.0, 11.0, 1_000))
    merged = low.merge(high)
    assert merged.count == 4_000
    assert merged.pit(5.0, 0.5) == pytest.approx(0.75, abs=1e-3)
    assert merged.pit(0.5, 0.5) == pytest.approx(0.375, abs=1e-3)


def test_a_merge_keeps_point_masses_of_both():
    a = NumericReference.from_values([0.0] * 600 + [1.0] * 400)
    b = NumericReference.from_values([1.0] * 500 + [2.0] * 500)
    merged = a.merge(b).to_sketch()
    assert merged.values == [0.0, 1.0, 2.0]
    assert merged.cdf_below == [0.0, 0.3, 0.75]
    assert merged.cdf_at == [0.3, 0.75, 1.0]


def test_numeric_references_merge_only_with_numeric_ones():
    with pytest.raises(TypeError, match="merges with another"):
        NumericReference.from_values([1.0]).merge(CategoricalReference.from_values(["a"]))


# Properties over any data

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(finite, min_size=1, max_size=300), resolution=st.integers(2, 64))
def test_any_finite_values_give_a_valid_sketch(values, resolution):
    reference = NumericReference.from_values(values, resolution=resolution)
    sketch = reference.to_sketch()
    assert NumericSketch.model_validate_json(sketch.model_dump_json()) == sketch
    assert sketch.count == len(values)
    assert (sketch.minimum, sketch.maximum) == (min(values), max(values))


def support_the_direct_way(values: list[float], resolution: int) -> tuple[np.ndarray, ...]:
    """The support as :meth:`NumericReference.from_values` defines it, computed the plain way:
    counts of the distinct values, their shares, then the general reduction."""
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    distinct, counts = np.unique(data, return_counts=True)
    n = data.size
    below_count = np.cumsum(counts) - counts
    half = np.where((counts >= 2) & (counts * resolution >= n), 0.0, 0.5)
    below, at = (below_count + half) / n, (below_count + counts - half) / n
    return _reduce(distinct, below, at, n, resolution)


@settings(max_examples=300, deadline=None)
@given(
    values=st.one_of(
        st.lists(finite, min_size=1, max_size=400, unique=True),
        st.lists(st.one_of(finite, st.sampled_from([0.0, -1.5, 3.0])), min_size=1, max_size=400),
    ),
    resolution=st.one_of(st.integers(2, 64), st.just(DEFAULT_RESOLUTION)),
)
def test_from_values_gives_the_support_computed_the_direct_way(values, resolution):
    """Its shortcuts (values seen once, shares known to be in order) change nothing."""
    reference = NumericReference.from_values(values, resolution=resolution)
    expected = support_the_direct_way(values, resolution)
    for got, want in zip(reference.support, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(finite, min_size=1, max_size=100),
    xs=st.lists(st.floats(allow_nan=False), min_size=1, max_size=20),
    v=st.floats(0.0, 1.0),
)
def test_the_pit_is_always_strictly_between_0_and_1(values, xs, v):
    reference = NumericReference.from_values(values)
    for x in xs:
        u = reference.pit(x, v)
        assert 0.0 < u < 1.0
        assert math.isfinite(reference.normal_score(x, v))
    many = reference.pit_many(np.array(xs), np.full(len(xs), v))
    assert many.tolist() == [reference.pit(x, v) for x in xs]


@settings(max_examples=200, deadline=None)
@given(
    a=st.lists(finite, min_size=1, max_size=100),
    b=st.lists(finite, min_size=1, max_size=100),
    probs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=10),
)
def test_any_two_references_merge_into_a_valid_one(a, b, probs):
    merged = NumericReference.from_values(a, resolution=16).merge(
        NumericReference.from_values(b, resolution=16)
    )
    sketch = merged.to_sketch()
    assert NumericSketch.model_validate_json(sketch.model_dump_json()) == sketch
    assert sketch.count == len(a) + len(b)
    assert (sketch.minimum, sketch.maximum) == (min(a + b), max(a + b))
    quantiles = merged.quantiles(probs)
    assert all(sketch.minimum <= q <= sketch.maximum for q in quantiles)


# Categorical references


def test_categorical_shares_and_other():
    values = ["free"] * 50 + ["pro"] * 30 + ["team"] * 15 + ["x"] * 5
    reference = CategoricalReference.from_values(values, max_categories=2)
    assert reference.count == 100
    assert reference.shares == {"free": 0.5, "pro": 0.3}
    assert reference.other_share == 0.2
    assert reference.share("pro") == 0.3
    assert reference.share("team") == reference.share("never seen") == 0.0
    assert reference.to_counts() == CategoricalCounts(
        count=100, counts={"free": 50, "pro": 30}, other=20
    )


def test_categories_of_equal_counts_are_listed_in_sorted_order():
    reference = CategoricalReference.from_values(["b", "c", "a", "b", "c", "a"], max_categories=2)
    assert list(reference.shares) == ["a", "b"]


def test_overlong_categories_count_as_other():
    reference = CategoricalReference.from_values(["a" * 257, "short"])
    assert reference.shares == {"short": 0.5}
    assert reference.other_share == 0.5


def test_categorical_references_need_values_and_a_sane_limit():
    with pytest.raises(ValueError, match="no values"):
        CategoricalReference.from_values([])
    with pytest.raises(ValueError, match="max_categories must be from 1 to 1000"):
        CategoricalReference.from_values(["a"], max_categories=0)


def test_categorical_merge_adds_counts():
    a = CategoricalReference.from_values(["x"] * 6 + ["y"] * 4)
    b = CategoricalReference.from_values(["y"] * 5 + ["z"] * 5)
    merged = a.merge(b).to_counts()
    assert merged == CategoricalCounts(count=20, counts={"y": 9, "x": 6, "z": 5}, other=0)


def test_categorical_merge_with_lumped_categories_keeps_the_total():
    a = CategoricalReference.from_values(["x"] * 6 + ["y"] * 3 + ["z"], max_categories=2)
    b = CategoricalReference.from_values(["z"] * 8 + ["x"] * 2, max_categories=2)
    merged = a.merge(b).to_counts()
    # a counted its one z under other, so the merged count of z is a lower bound.
    assert merged == CategoricalCounts(count=20, counts={"x": 8, "z": 8}, other=4)


def test_categorical_counts_round_trip_through_json():
    reference = CategoricalReference.from_values(["a", "b", "b", "é"])
    text = reference.to_counts().model_dump_json()
    again = CategoricalReference.from_counts(CategoricalCounts.model_validate_json(text))
    assert again.shares == reference.shares
    assert again.other_share == reference.other_share


# Whole model versions


def correlated_pair(rng: np.random.Generator, n: int, rho: float) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=n)
    y = rho * x + math.sqrt(1 - rho * rho) * rng.normal(size=n)
    return x, y


def test_the_correlation_of_a_gaussian_pair_is_its_rho():
    rng = np.random.default_rng(20)
    x, y = correlated_pair(rng, 20_000, 0.7)
    profile = build_reference(
        spec(numeric("x"), numeric("y")),
        {"x": x.tolist(), "y": y.tolist()},
        source="test",
        ordered=False,
    )
    assert profile.correlation_features == ["x", "y"]
    assert profile.correlation is not None
    assert profile.correlation[0][0] == profile.correlation[1][1] == 1.0
    assert profile.correlation[0][1] == profile.correlation[1][0]
    assert profile.correlation[0][1] == pytest.approx(0.7, abs=0.02)
    assert profile.serial_correlation == {}


def test_the_correlation_of_normal_scores_ignores_monotone_transforms():
    rng = np.random.default_rng(21)
    x, y = correlated_pair(rng, 20_000, -0.5)
    profile = build_reference(
        spec(numeric("x"), numeric("y")),
        {"x": np.exp(3 * x).tolist(), "y": (y**3).tolist()},
        source="test",
        ordered=False,
    )
    assert profile.correlation is not None
    assert profile.correlation[0][1] == pytest.approx(-0.5, abs=0.02)


def test_the_correlation_uses_pairwise_complete_rows():
    rng = np.random.default_rng(22)
    x, y = correlated_pair(rng, 20_000, 0.6)
    xs: list[object] = x.tolist()
    ys: list[object] = y.tolist()
    for i in np.flatnonzero(rng.random(20_000) < 0.3):
        xs[i] = None
    for i in np.flatnonzero(rng.random(20_000) < 0.3):
        ys[i] = "oops"
    profile = build_reference(
        spec(numeric("x"), numeric("y")), {"x": xs, "y": ys}, source="test", ordered=False
    )
    assert profile.correlation is not None
    assert profile.correlation[0][1] == pytest.approx(0.6, abs=0.03)


def test_the_serial_correlation_of_an_ar1_stream_is_its_rho():
    rng = np.random.default_rng(23)
    x = np.empty(20_000)
    x[0] = rng.normal()
    for t in range(1, x.size):
        x[t] = 0.6 * x[t - 1] + math.sqrt(1 - 0.36) * rng.normal()
    columns = {"x": x.tolist(), "noise": rng.normal(size=x.size).tolist()}
    profile = build_reference(
        spec(numeric("x"), numeric("noise")), columns, source="warmup", ordered=True
    )
    assert profile.serial_correlation["x"] == pytest.approx(0.6, abs=0.03)
    assert profile.serial_correlation["noise"] == pytest.approx(0.0, abs=0.03)


def test_at_most_50_features_are_correlated():
    rng = np.random.default_rng(24)
    names = [f"f{i:02d}" for i in range(55)]
    columns = {name: rng.normal(size=100).tolist() for name in names}
    profile = build_reference(
        spec(*(numeric(name) for name in names)), columns, source="test", ordered=False
    )
    assert profile.correlation_features == names[:50]
    assert profile.correlation is not None
    assert len(profile.correlation) == 50


def test_values_of_the_wrong_type_and_missing_values_are_skipped():
    model = spec(
        numeric("tenure"),
        FeatureSpec(name="trial", kind=FeatureKind.BOOLEAN),
        FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL),
        FeatureSpec(name="empty", kind=FeatureKind.CATEGORICAL),
        numeric("unwatched", monitor=False),
        numeric("absent"),
    )
    columns = {
        "tenure": [1, 2.5, True, "3", None, math.nan, math.inf, 10**400, 7],
        "trial": [True, False, 1, 0.0, None, "true", True, True, False],
        "plan": ["pro", "free", 1, None, True, "pro", "pro", "", "free"],
        "empty": [None] * 9,
        "unwatched": [1.0] * 9,
    }
    profile = build_reference(model, columns, source="test", ordered=True)
    assert profile.event_count == 9
    assert sorted(profile.features) == ["plan", "tenure", "trial"]
    tenure = profile.features["tenure"]
    assert isinstance(tenure, NumericSketch)
    assert (tenure.count, tenure.values) == (3, [1.0, 2.5, 7.0])
    trial = profile.features["trial"]
    assert isinstance(trial, NumericSketch)
    assert (trial.count, trial.values, trial.cdf_at) == (5, [0.0, 1.0], [0.4, 1.0])
    plan = profile.features["plan"]
    assert isinstance(plan, CategoricalCounts)
    assert plan.counts == {"pro": 3, "free": 2, "": 1}
    assert profile.correlation_features == ["tenure", "trial"]


def test_building_is_deterministic_and_seeded():
    rng = np.random.default_rng(25)
    x, y = correlated_pair(rng, 2_000, 0.3)
    columns = {"x": x.round(1).tolist(), "y": y.round(1).tolist()}
    model = spec(numeric("x"), numeric("y"))
    first = build_reference(model, columns, source="test", ordered=True)
    assert build_reference(model, columns, source="test", ordered=True) == first
    other = build_reference(model, columns, source="test", ordered=True, seed=1)
    assert other.correlation != first.correlation


def test_columns_must_be_equally_long_and_not_empty():
    model = spec(numeric("x"), numeric("y"))
    with pytest.raises(ValueError, match="these hold fewer: y"):
        build_reference(model, {"x": [1.0, 2.0], "y": [1.0]}, source="test", ordered=False)
    with pytest.raises(ValueError, match="no rows"):
        build_reference(model, {"x": [], "y": []}, source="test", ordered=False)
    with pytest.raises(ValueError, match="no rows"):
        build_reference(model, {}, source="test", ordered=False)


def test_a_profile_round_trips_through_json():
    rng = np.random.default_rng(26)
    x, y = correlated_pair(rng, 5_000, 0.4)
    profile = build_reference(
        spec(numeric("x"), numeric("y"), FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL)),
        {"x": x.tolist(), "y": y.tolist(), "c": rng.choice(["a", "b"], 5_000).tolist()},
        source="warmup:5000 events",
        ordered=True,
    )
    assert ReferenceProfile.model_validate_json(profile.model_dump_json()) == profile


def test_merging_profiles_of_two_halves_gives_the_profile_of_the_whole():
    rng = np.random.default_rng(27)
    n = 40_000
    x, y = correlated_pair(rng, n, 0.5)
    plan = rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]).tolist()
    model = spec(numeric("x"), numeric("y"), FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL))
    columns = {"x": x.tolist(), "y": y.tolist(), "plan": plan}
    whole = build_reference(model, columns, source="all", ordered=True)
    halves = [
        build_reference(
            model,
            {name: column[part] for name, column in columns.items()},
            source=f"half {i}",
            ordered=True,
        )
        for i, part in enumerate([slice(0, n // 2), slice(n // 2, n)])
    ]
    merged = merge_profiles(*halves)
    assert merged.event_count == n
    assert merged.source == "half 0 + half 1"
    assert merged.features["plan"] == whole.features["plan"]
    xs = grid_over(x)
    half = np.full(xs.size, 0.5)
    whole_x = NumericReference.from_sketch(whole.features["x"])
    merged_x = NumericReference.from_sketch(merged.features["x"])
    assert np.abs(whole_x.pit_many(xs, half) - merged_x.pit_many(xs, half)).max() < 0.01
    assert merged.correlation is not None
    assert whole.correlation is not None
    assert merged.correlation[0][1] == pytest.approx(whole.correlation[0][1], abs=0.02)
    assert merged.serial_correlation["x"] == pytest.approx(
        (halves[0].serial_correlation["x"] + halves[1].serial_correlation["x"]) / 2
    )


def test_merging_profiles_with_different_features():
    rng = np.random.default_rng(28)
    model = spec(numeric("x"), numeric("y"), numeric("z"))
    a = build_reference(
        model,
        {"x": rng.normal(size=100).tolist(), "y": rng.normal(size=100).tolist()},
        source="a",
        ordered=False,
    )
    b = build_reference(
        model,
        {"y": rng.normal(size=300).tolist(), "z": rng.normal(size=300).tolist()},
        source="b",
        ordered=False,
    )
    merged = merge_profiles(a, b)
    assert sorted(merged.features) == ["x", "y", "z"]
    assert merged.features["y"].count == 400
    # The two correlation matrices share one feature only: no matrix is left.
    assert (merged.correlation, merged.correlation_features) == (None, [])
    c = build_reference(model, {"z": rng.normal(size=50).tolist()}, source="c", ordered=False)
    assert merge_profiles(a, c).correlation == a.correlation


def test_profiles_of_different_versions_or_kinds_do_not_merge():
    a = build_reference(spec(numeric("x")), {"x": [1.0, 2.0]}, source="a", ordered=False)
    other = ModelSpec(
        model_id="m",
        model_version="2",
        task=TaskType.REGRESSION,
        features=[FeatureSpec(name="x", kind=FeatureKind.CATEGORICAL)],
    )
    b = build_reference(other, {"x": ["a"]}, source="b", ordered=False)
    with pytest.raises(ValueError, match="different model versions"):
        merge_profiles(a, b)
    b = b.model_copy(update={"model_version": "1"})
    with pytest.raises(ValueError, match="'x' is numeric in one profile, categorical"):
        merge_profiles(a, b)


def test_a_model_reference_holds_each_features_reference():
    model = spec(numeric("x"), FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL))
    profile = build_reference(
        model, {"x": [1.0, 2.0, 3.0], "c": ["a", "a", "b"]}, source="t", ordered=False
    )
    reference = ModelReference(profile)
    assert reference.numeric["x"].count == 3
    assert reference.categorical["c"].share("a") == pytest.approx(2 / 3)
    assert reference.profile is profile


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(0, 60),
    features=st.integers(1, 4),
    missing=st.sets(st.integers(0, 3), max_size=2),
    seed=st.integers(0, 2**32 - 1),
)
def test_serial_correlations_side_by_side_are_each_features_own(
    rows: int, features: int, missing: set[int], seed: int
) -> None:
    from driftline.monitors.reference import _serial_correlation, _serial_correlations

    rng = np.random.default_rng(seed)
    scores = {}
    for k in range(features):
        z = rng.normal(size=rows).cumsum() * 0.1 + rng.normal(size=rows)
        if k in missing and rows:
            z[rng.random(rows) < 0.3] = np.nan
        if k == 3:
            z[:] = 1.0  # a constant: no variance
        scores[f"f{k}"] = z
    together = _serial_correlations(scores)
    one_by_one = {
        name: rho
        for name, z in scores.items()
        if (rho := _serial_correlation(z[~np.isnan(z)])) is not None
    }
    assert list(together) == list(one_by_one)
    assert together == pytest.approx(one_by_one, abs=1e-12)
