import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.feature_drift import NumericDrift
from driftline.monitors.reference import NumericReference
from driftline.monitors.scoring import (
    BUCKETS_PER_POINT,
    MOST_STEPS,
    ReferenceStack,
    pieces,
    places_among,
)

SHAPES = {
    "normal": lambda rng, n: rng.normal(size=n),
    "heavy-tailed": lambda rng, n: rng.standard_t(1.5, size=n),
    "counts": lambda rng, n: rng.poisson(2.0, size=n).astype(float),
    "zero-inflated": lambda rng, n: np.where(rng.random(n) < 0.4, 0.0, rng.exponential(size=n)),
    "one value": lambda rng, n: np.full(n, 3.0),
    "huge gaps": lambda rng, n: rng.choice([-1e308, 0.0, 1e308], size=n),
}

values = st.one_of(
    st.floats(allow_nan=False),  # infinities too: beyond everything seen
    st.sampled_from([0.0, 1.0, 2.0, 3.0, -1e308, 1e308]),  # exactly on support points
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shapes=st.lists(st.sampled_from(sorted(SHAPES)), min_size=1, max_size=6),
    data=st.data(),
)
def test_the_stack_scores_each_value_as_its_own_reference_does(seed, shapes, data):
    rng = np.random.default_rng(seed)
    references = [
        NumericReference.from_values(SHAPES[shape](rng, int(rng.integers(1, 3_000))))
        for shape in shapes
    ]
    xs = [np.array(data.draw(st.lists(values, max_size=12)), dtype=float) for _ in shapes]
    vs = [rng.random(len(x)) for x in xs]
    together = ReferenceStack(references).normal_scores(xs, vs)
    for reference, x, v, scores in zip(references, xs, vs, together, strict=True):
        assert scores.tolist() == reference.normal_scores(x, v).tolist()


def test_the_stack_refuses_what_a_reference_refuses():
    rng = np.random.default_rng(0)
    stack = ReferenceStack([NumericReference.from_values(rng.normal(size=100))] * 2)
    fine = [np.zeros(2), np.zeros(1)]
    with pytest.raises(ValueError, match="NaN"):
        stack.normal_scores([np.array([np.nan]), np.zeros(1)], [np.zeros(1), np.zeros(1)])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stack.normal_scores(fine, [np.full(2, 1.5), np.zeros(1)])
    with pytest.raises(ValueError, match="own length"):
        stack.normal_scores(fine, [np.zeros(1), np.zeros(1)])
    with pytest.raises(ValueError, match="2 references, 1 value arrays"):
        stack.normal_scores([np.zeros(1)], [np.zeros(1)])
    with pytest.raises(ValueError, match="at least one"):
        ReferenceStack([])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    already=st.lists(st.integers(0, 5_000), min_size=1, max_size=5),
    counts=st.lists(st.integers(0, 20), min_size=5, max_size=5),
)
def test_scores_ahead_together_equal_each_detectors_own(seed, already, counts):
    rng = np.random.default_rng(seed)
    detectors = []
    for number, taken in enumerate(already):
        detector = NumericDrift(
            NumericReference.from_values(rng.normal(size=500)), arl=1e6, seed=seed + number
        )
        detector.update_many(rng.normal(size=taken))
        detectors.append(detector)
    columns = [rng.normal(size=count) for count in counts[: len(detectors)]]
    stack = ReferenceStack([detector.reference for detector in detectors])
    together = NumericDrift.scores_ahead_together(detectors, columns, stack)
    for detector, column, scores in zip(detectors, columns, together, strict=True):
        assert scores.tolist() == detector.scores_ahead(column).tolist()


def test_scores_ahead_together_needs_the_detectors_own_references():
    rng = np.random.default_rng(1)
    detector = NumericDrift(NumericReference.from_values(rng.normal(size=500)), arl=1e6)
    other = ReferenceStack([NumericReference.from_values(rng.normal(size=500))])
    with pytest.raises(ValueError, match="own references"):
        NumericDrift.scores_ahead_together([detector], [np.zeros(3)], other)


@given(counts=st.lists(st.integers(0, 30), max_size=25))
def test_pieces_are_the_splits_at_the_running_sums(counts):
    array = np.arange(float(sum(counts)))
    expected = np.split(array, np.cumsum(counts)[:-1]) if counts else []
    got = pieces(array, counts)
    assert [piece.tolist() for piece in got] == [piece.tolist() for piece in expected]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300)
@given(
    st.one_of(
        st.lists(finite, min_size=1, max_size=60, unique=True),
        st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=60, unique=True),
    ),
    st.lists(st.one_of(finite, st.sampled_from([np.inf, -np.inf, np.nan])), max_size=80),
    st.integers(min_value=0, max_value=3),
)
def test_places_among_sorted_values_are_searchsorteds(points, others, copies):
    """Exact for any values: the points themselves and their neighbours, far ones and
    infinities, on spans from tiny to the whole float range."""
    values = np.sort(np.asarray(points, dtype=np.float64))
    with np.errstate(over="ignore"):
        near = np.concatenate([values, np.nextafter(values, np.inf), np.nextafter(values, -np.inf)])
    x = np.concatenate([np.asarray(others, dtype=np.float64), np.tile(near, copies + 1)])
    assert places_among(values, x).tolist() == values.searchsorted(x, side="left").tolist()


def test_places_among_a_reference_take_the_bucket_table():
    """A reference's support spreads evenly enough over its buckets: no bucket is crowded,
    so the table places the values (which the check above holds to searchsorted's)."""
    rng = np.random.default_rng(5)
    samples = (rng.normal(size=3_000), rng.lognormal(size=3_000), rng.integers(0, 9, 999))
    for sample in samples:
        points = NumericReference.from_values(sample.astype(np.float64)).support[0]
        span = points[-1] - points[0]
        owners = ((points - points[0]) * (BUCKETS_PER_POINT * points.size / span)).astype(np.intp)
        assert np.bincount(owners).max() <= MOST_STEPS
        x = rng.normal(size=5_000) * sample.std() + sample.mean()
        assert (places_among(points, x) == points.searchsorted(x)).all()
