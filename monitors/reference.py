"""Reference distributions of features, and where live values fall in them.

Drift is measured relative to a reference: each live numeric value ``x`` is
turned into its *normal score* ``z = Phi^-1(F(x))``, where ``F`` is the
feature's reference CDF (the probability integral transform, PIT, then the
standard normal quantile). While nothing changes, ``z`` is standard normal
whatever the feature's shape (heavy tails, skew, mixtures), so one set of
detectors fits every numeric feature. Where ``F`` jumps (integer values, a
point mass at 0) the PIT is randomized, ``u = F(x-) + v (F(x) - F(x-))``
with ``v`` uniform on [0, 1], which keeps ``u`` exactly uniform.

References are small and mergeable: a numeric reference is a CDF sketch of a
few hundred support points, a categorical one the counts of its top
categories; two references merge into one of the pooled data. Nothing here
draws random numbers of its own: callers pass ``v``, or a seed.
"""

import functools
import math
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from driftline.schemas.reference import (
    MAX_CATEGORIES,
    MAX_CATEGORY_LENGTH,
    MAX_CORRELATED_FEATURES,
    CategoricalCounts,
    NumericSketch,
    ReferenceProfile,
)
from driftline.schemas.registry import FeatureKind, ModelSpec

Floats = NDArray[np.float64]

DEFAULT_RESOLUTION = 512
"""Evenly spaced quantiles a numeric sketch keeps: its CDF is within about 1/512 everywhere."""

MAX_RESOLUTION = 1_000
"""The largest resolution, so that a sketch always fits the wire's limit on support points."""

DEFAULT_MAX_CATEGORIES = 100
"""Categories a categorical reference lists by name; the rest are counted together."""

MIN_PAIRS = 3
"""Pairs of values a correlation needs; with fewer it is taken as 0."""

_ATOM_TOLERANCE = 1e-9
"""Relative slack in the point-mass test, for shares computed in floating point."""

SHARE_DECIMALS = 12
"""Decimals a sketch keeps of each share: ample for a trillion values, and short in JSON."""

SCORE_BATCH = 65_536
"""Values of a feature a profile scores at a time: scoring takes temporary arrays several
times the size of what it scores, some 170 MB for a million values scored at once."""


class NumericReference:
    """The reference distribution of one numeric feature, as a CDF sketch.

    Built from values with :meth:`from_values`, or from a sketch received
    on the wire with :meth:`from_sketch`. The sketch keeps every *point
    mass* (a value seen at least twice and making up at least
    ``1/resolution`` of all values) exactly, with its own ``F(v-)`` and
    ``F(v)``, and otherwise the values at ``resolution`` evenly spaced
    probabilities, plus a few more in each tail, at probabilities halving
    from below ``1/resolution`` down to ``1/(2 count)``: the normal score
    magnifies the tails, so they are kept finer. Support points are always
    values that were seen, never interpolated ones. Between two support
    points the CDF rises linearly.

    Values are placed by the continuity-corrected empirical CDF: each value
    seen once sits at its mid-rank (``(k - 0.5) / n`` for the ``k``-th of
    ``n``), so a fresh value from the same distribution falls below the
    smallest seen with probability about ``1/(2n)``, not 0. The PIT is kept
    within ``[0.5/count, 1 - 0.5/count]``, so a value beyond everything seen
    scores ``|z|`` of about 4 for a reference of 20,000 values, never an
    infinite one.

    Parameters
    ----------
    sketch
        The CDF sketch.
    resolution
        The number of evenly spaced quantiles kept when this reference is
        merged with another (from 2 to 1,000).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reference = NumericReference.from_values(rng.lognormal(size=20_000))
    >>> reference.count, len(reference.to_sketch().values)
    (20000, 522)

    The median of a lognormal(0, 1) is 1, so its PIT is about a half:

    >>> round(reference.pit(1.0, v=0.5), 3), round(reference.normal_score(1.0, v=0.5), 3)
    (0.502, 0.005)

    Integer values are point masses, and ``v`` places a value within its own:

    >>> counts = NumericReference.from_values(rng.poisson(3.0, size=20_000))
    >>> [round(counts.pit(2.0, v), 3) for v in (0.0, 0.5, 1.0)]
    [0.202, 0.316, 0.43]
    """

    def __init__(self, sketch: NumericSketch, resolution: int = DEFAULT_RESOLUTION) -> None:
        _check_resolution(resolution)
        self.resolution = resolution
        # Not the sketch: its lists hold a Python float per point (32 bytes
        # with its slot), these arrays 8 bytes. :meth:`pit` bisects them in
        # Python, the vectorised methods read the same memory through numpy.
        self._adopt(
            sketch.count,
            array("d", sketch.values),
            array("d", sketch.cdf_below),
            array("d", sketch.cdf_at),
        )

    @classmethod
    def _of_support(
        cls, support: tuple[Floats, Floats, Floats], count: int, resolution: int
    ) -> "NumericReference":
        """The reference of a support :func:`_reduce` made: valid by construction, not checked."""
        reference = cls.__new__(cls)
        reference.resolution = resolution
        points, below, at = (array("d", column.tobytes()) for column in support)
        reference._adopt(count, points, below, at)
        return reference

    def _adopt(
        self, count: int, points: "array[float]", below: "array[float]", at: "array[float]"
    ) -> None:
        self._count = count
        self._points = points
        self._points_below = below
        # A continuous feature has no point masses: F(x) equals F(x-) at every
        # point, and one array serves both (a third of the reference's memory).
        self._points_at = below if at == below else at
        self._values = np.frombuffer(self._points, dtype=np.float64)
        self._below = np.frombuffer(self._points_below, dtype=np.float64)
        self._at = np.frombuffer(self._points_at, dtype=np.float64)
        for view in (self._values, self._below, self._at):
            view.flags.writeable = False  # shared: see :attr:`support`
        self._floor = 0.5 / count
        self._ceiling = 1.0 - self._floor

    @classmethod
    def from_values(
        cls, values: ArrayLike, *, resolution: int = DEFAULT_RESOLUTION
    ) -> "NumericReference":
        """The reference of these values; NaN and infinities are left out.

        Raises ``ValueError`` when no finite value is left.
        """
        _check_resolution(resolution)
        data = np.asarray(values, dtype=np.float64).ravel()
        data = data[np.isfinite(data)]
        if data.size == 0:
            raise ValueError("no finite values to build a numeric reference from")
        n = int(data.size)
        # Values already in order (a warm-up's, sorted once for its scores too) need no sort.
        ordered = data if bool((data[1:] >= data[:-1]).all()) else np.sort(data)
        first = np.empty(n, dtype=np.bool_)  # the first copy of each distinct value
        first[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
        if first.all():  # no value repeats, as usual for a continuous feature
            keep, shares = _distinct_support(n, resolution)
            reference = cls.__new__(cls)
            reference.resolution = resolution
            # The shares depend on n alone: references of as many values share one array.
            reference._adopt(n, array("d", ordered[keep].tobytes()), shares, shares)
            return reference
        starts = np.flatnonzero(first)
        distinct, counts = ordered[starts], np.diff(np.append(starts, n))
        below_count = starts
        atom = (counts >= 2) & (counts * resolution >= n)
        # A point mass sits exactly at its own share; any other value gives
        # half of each copy but one to the gaps on either side of it.
        half = np.where(atom, 0.0, 0.5)
        below = (below_count + half) / n
        at = (below_count + counts - half) / n
        # In [0, 1], and never lower than the share before: no clipping needed.
        support = _reduce_ordered(distinct, below, at, n, resolution)
        return cls._of_support(support, n, resolution)

    @classmethod
    def from_sketch(
        cls, sketch: NumericSketch, *, resolution: int = DEFAULT_RESOLUTION
    ) -> "NumericReference":
        """The reference a sketch describes; ``resolution`` applies to later merges."""
        return cls(sketch, resolution)

    def to_sketch(self) -> NumericSketch:
        """The sketch, for the wire: ``from_sketch(to_sketch())`` behaves exactly alike.

        Built anew at each call, equal to the sketch the reference was made from.
        That sketch was validated, so this copy of its numbers is not again.
        """
        return NumericSketch.model_construct(
            count=self._count,
            values=self._points.tolist(),
            cdf_below=self._points_below.tolist(),
            cdf_at=self._points_at.tolist(),
        )

    @property
    def sketch(self) -> NumericSketch:
        """The sketch (see :meth:`to_sketch`)."""
        return self.to_sketch()

    @property
    def count(self) -> int:
        """How many values the reference summarises."""
        return self._count

    @property
    def support(self) -> tuple[Floats, Floats, Floats]:
        """The support points, and ``F(x-)`` and ``F(x)`` at each (shared arrays: read only)."""
        return self._values, self._below, self._at

    @property
    def floor(self) -> float:
        """The smallest PIT given, ``0.5 / count`` (the largest is ``1 - floor``)."""
        return self._floor

    @property
    def minimum(self) -> float:
        """The smallest value seen."""
        return self._points[0]

    @property
    def maximum(self) -> float:
        """The largest value seen."""
        return self._points[-1]

    def pit(self, x: float, v: float) -> float:
        """The randomized PIT of ``x``: ``F(x-) + v (F(x) - F(x-))``, within (0, 1).

        ``v`` is a uniform draw from [0, 1]; it only matters where ``F``
        jumps, or beyond the values seen, where ``x`` is spread over the
        share of the reference that lies beyond them. Infinities count as
        beyond everything seen; NaN is refused with ``ValueError``.
        """
        x = float(x)
        if math.isnan(x):
            raise ValueError("the PIT of NaN is undefined")
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"v must be in [0, 1], got {v!r}")
        values, below, at = self._points, self._points_below, self._points_at
        i = bisect_left(values, x)
        if i < len(values) and values[i] == x:
            low, high = below[i], at[i]
        elif i == 0:
            low, high = 0.0, below[0]
        elif i == len(values):
            low, high = at[-1], 1.0
        else:
            x0, x1, f0, f1 = values[i - 1], values[i], at[i - 1], below[i]
            width = x1 - x0
            if math.isinf(width):  # the gap spans more than the largest float
                fraction = (x * 0.5 - x0 * 0.5) / (x1 * 0.5 - x0 * 0.5)
            else:
                fraction = (x - x0) / width
            fraction = min(max(fraction, 0.0), 1.0)
            low = high = min(f0 + fraction * (f1 - f0), f1)
        u = low + v * (high - low)
        return min(max(u, self._floor), self._ceiling)

    def pit_many(self, xs: ArrayLike, vs: ArrayLike) -> Floats:
        """:meth:`pit` of many values at once, equal to it value by value."""
        x = np.asarray(xs, dtype=np.float64)
        v = np.asarray(vs, dtype=np.float64)
        if x.shape != v.shape:
            raise ValueError(f"xs and vs must have one shape, got {x.shape} and {v.shape}")
        if np.isnan(x).any():
            raise ValueError("the PIT of NaN is undefined")
        if not ((v >= 0.0) & (v <= 1.0)).all():
            raise ValueError("every v must be in [0, 1]")
        low, high = self._bounds(x, beyond=True)
        return np.clip(low + v * (high - low), self._floor, self._ceiling)

    def normal_score(self, x: float, v: float) -> float:
        """The normal score of ``x``: ``Phi^-1`` of its randomized PIT."""
        return float(ndtri(self.pit(x, v)))

    def normal_scores(self, xs: ArrayLike, vs: ArrayLike) -> Floats:
        """:meth:`normal_score` of many values at once, equal to it value by value."""
        return np.asarray(ndtri(self.pit_many(xs, vs)), dtype=np.float64)

    def quantiles(self, probs: ArrayLike) -> list[float]:
        """The smallest value ``x`` with ``F(x) >= p``, for each ``p`` in [0, 1].

        Where ``F`` rises linearly the quantile is interpolated; a
        probability within a point mass gives that value. Probabilities
        beyond the values seen give the smallest or largest value seen.
        """
        p = np.asarray(probs, dtype=np.float64).ravel()
        if not ((p >= 0.0) & (p <= 1.0)).all():
            raise ValueError("probabilities must be in [0, 1]")
        # The CDF as a polyline: each support point is two knots, F(v-) and F(v).
        knots = np.column_stack([self._below, self._at]).ravel()
        places = np.repeat(self._values, 2)
        last = knots.size - 1
        i = np.searchsorted(knots, p, side="left")
        lower, upper = np.clip(i - 1, 0, last), np.clip(i, 0, last)
        f0, f1, x0, x1 = knots[lower], knots[upper], places[lower], places[upper]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.clip(np.where(f1 > f0, (p - f0) / (f1 - f0), 1.0), 0.0, 1.0)
            x = np.clip(x0 * (1.0 - t) + x1 * t, x0, x1)
        x = np.where(i == 0, self._values[0], x)
        x = np.where(i > last, self._values[-1], x)
        return [float(q) for q in x]

    def merge(self, other: "NumericReference") -> "NumericReference":
        """The reference of both references' values together.

        The pooled CDF, the two CDFs weighted by their counts, is exact at
        every support point of either (both rise linearly between them), and
        is then reduced to this reference's ``resolution``. A share of one
        reference lying beyond its values seen is spread over the gap to the
        other's nearest value.
        """
        if not isinstance(other, NumericReference):
            raise TypeError(f"a numeric reference merges with another, not {type(other).__name__}")
        points = np.union1d(self._values, other._values)
        count = self.count + other.count
        a_below, a_at = self._bounds(points, beyond=False)
        b_below, b_at = other._bounds(points, beyond=False)
        below = (self.count * a_below + other.count * b_below) / count
        at = (self.count * a_at + other.count * b_at) / count
        return NumericReference._of_support(
            _reduce(points, below, at, count, self.resolution), count, self.resolution
        )

    def _bounds(self, x: Floats, *, beyond: bool) -> tuple[Floats, Floats]:
        """``F(x-)`` and ``F(x)`` at each ``x``, vectorised exactly as :meth:`pit` computes them.

        Beyond the values seen, they are the share of the reference beyond
        them when ``beyond`` (the PIT spreads ``x`` over it), else 0 and 1.
        """
        places = np.searchsorted(self._values, x, side="left")
        last = self._values.size - 1
        return cdf_bounds(self.support, x, places, 0, last, beyond=beyond)

    def __repr__(self) -> str:
        return (
            f"NumericReference(count={self.count}, points={self._values.size}, "
            f"resolution={self.resolution})"
        )


def cdf_bounds(
    support: tuple[Floats, Floats, Floats],
    x: Floats,
    places: NDArray[np.intp],
    start: int | NDArray[np.int64],
    last: int | NDArray[np.int64],
    *,
    beyond: bool,
) -> tuple[Floats, Floats]:
    """``F(x-)`` and ``F(x)`` of each ``x`` under its CDF, as :meth:`NumericReference.pit` has them.

    ``support`` holds one CDF's points, ``F(x-)`` and ``F(x)`` (or several
    CDFs end to end); the points of each ``x``'s own CDF run from index
    ``start`` to ``last`` (numbers, or one each), and ``places`` is where
    ``x`` falls among them (``searchsorted``, left). Beyond the values seen,
    the bounds are the share beyond them when ``beyond``, else 0 and 1.

    Most values fall strictly between two points, where both bounds are the
    interpolated CDF: that is computed for all of them in place, and the few
    at a point or beyond the values seen are then set by their indices
    (about half the time of choosing between the cases value by value with
    ``np.where``). When none is, both bounds are one array.
    """
    values, below, at = support
    i = start + places
    right = np.minimum(i, last)
    left = np.maximum(i - 1, start)
    x0, x1, f0, f1 = values[left], values[right], at[left], below[right]
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        width = x1 - x0
        fraction = x - x0
        fraction /= width
        wide = np.isinf(width)  # a gap wider than the largest float: rare, so looked for first
        if wide.any():
            fraction = np.where(wide, (x * 0.5 - x0 * 0.5) / (x1 * 0.5 - x0 * 0.5), fraction)
        np.clip(fraction, 0.0, 1.0, out=fraction)
        inside = f1 - f0
        inside *= fraction
        inside += f0
        np.minimum(inside, f1, out=inside)
    exact = (x1 == x) & (i <= last)
    under = (places == 0) & ~exact
    over = i > last
    if not (exact.any() or under.any() or over.any()):
        return inside, inside
    low, high = inside, inside.copy()
    at_point = np.flatnonzero(exact)
    low[at_point] = below[right[at_point]]
    high[at_point] = at[right[at_point]]
    first = np.flatnonzero(under)
    low[first] = 0.0
    high[first] = below[_of(start, first)] if beyond else 0.0
    past = np.flatnonzero(over)
    low[past] = at[_of(last, past)] if beyond else 1.0
    high[past] = 1.0
    return low, high


def _of(bound: int | NDArray[np.int64], indices: NDArray[np.intp]) -> int | NDArray[np.int64]:
    """The bound of the values at ``indices``: the one bound, or each value's own."""
    return bound[indices] if isinstance(bound, np.ndarray) else bound


def _check_resolution(resolution: int) -> None:
    if not 2 <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must be from 2 to {MAX_RESOLUTION}, got {resolution!r}")


def _probability_grid(resolution: int, count: int) -> Floats:
    """Evenly spaced probabilities, and finer ones in both tails down to 1/(2 ``count``)."""
    bulk = np.arange(resolution + 1, dtype=np.float64) / resolution
    first = math.floor(math.log2(resolution)) + 1
    deepest = math.ceil(math.log2(2 * count))
    tails = 2.0 ** -np.arange(first, deepest + 1, dtype=np.float64)
    return np.concatenate([bulk, tails, 1.0 - tails])


def _reduce(
    values: Floats, below: Floats, at: Floats, count: int, resolution: int
) -> tuple[Floats, Floats, Floats]:
    """The support of a CDF given at many support points, keeping only some of them.

    Kept are the point masses, the first point at or past each probability
    of the grid, and the smallest and largest values; the CDF at a kept
    point is unchanged, so reducing never moves ``F`` at a support point.

    What a :class:`NumericSketch` requires holds by construction: ``values``
    increase strictly (they are distinct and sorted), ``F(v-)`` and ``F(v)``
    never decrease along them and stay in [0, 1] (clipped, accumulated,
    rounded in order), and at most ``resolution`` point masses (each at
    least ``1 / resolution``) and the grid's ``resolution + 1`` and tail
    probabilities are kept, well within ``MAX_SKETCH_POINTS``. The sketch
    made of it is validated where it goes out (a reference profile).
    """
    # Floating point may leave a share a hair outside [0, 1] or a hair lower
    # than the one before; the wire refuses both.
    knots = np.maximum.accumulate(np.clip(np.column_stack([below, at]).ravel(), 0.0, 1.0))
    return _reduce_ordered(values, knots[0::2], knots[1::2], count, resolution)


def _reduce_ordered(
    values: Floats, below: Floats, at: Floats, count: int, resolution: int
) -> tuple[Floats, Floats, Floats]:
    """:func:`_reduce` of shares known to lie in [0, 1] and never to decrease along ``F(v-)``,
    ``F(v)``, as the counts of sorted values give them: the clipping and the running maximum
    would change nothing, and are skipped."""
    below = np.round(below, SHARE_DECIMALS)  # rounding keeps the order
    at = np.round(at, SHARE_DECIMALS)
    last = values.size - 1
    atoms = np.flatnonzero((at - below) * resolution >= 1.0 - _ATOM_TOLERANCE)
    picked = np.minimum(np.searchsorted(at, _probability_grid(resolution, count)), last)
    keep = np.unique(np.concatenate([atoms, picked, [0, last]]))
    return values[keep], below[keep], at[keep]


@functools.lru_cache(maxsize=32)
def _distinct_support(count: int, resolution: int) -> tuple[NDArray[np.intp], "array[float]"]:
    """What :func:`_reduce` keeps of ``count`` distinct values, each seen once: their places in
    sorted order (read only), and their shares (not to be changed: every reference of
    ``count`` distinct values holds this one array).

    Each value then sits at its rounded mid-rank, ``F(v-)`` equal to ``F(v)``;
    so which values are kept, and at which shares, depends on nothing but
    ``count`` and ``resolution``. Worked out once, it spares each reference
    of a continuous feature most of its cost (a warm-up's end builds a
    model's at once, and a worker's models tend to end theirs together).
    """
    places = np.arange(count)
    below = at = (places + 0.5) / count
    values = places.astype(np.float64)  # stands in for the sorted values: only places matter
    kept_places, kept_below, _ = _reduce(values, below, at, count, resolution)
    keep = kept_places.astype(np.intp)
    keep.flags.writeable = False
    return keep, array("d", kept_below.tobytes())


class CategoricalReference:
    """The reference distribution of one categorical feature: counts of its top categories.

    The ``max_categories`` most common categories are counted by name (ties
    go to the category first in sorted order); all others, and values longer
    than 256 characters, are counted together as *other*.

    Parameters
    ----------
    counts
        The category counts.
    max_categories
        How many categories are listed by name when this reference is merged
        with another (from 1 to 1,000).

    Examples
    --------
    >>> reference = CategoricalReference.from_values(
    ...     ["free"] * 6 + ["pro"] * 3 + ["team"], max_categories=2
    ... )
    >>> reference.shares, reference.other_share
    ({'free': 0.6, 'pro': 0.3}, 0.1)
    >>> reference.share("team"), reference.share("enterprise")
    (0.0, 0.0)
    """

    def __init__(
        self, counts: CategoricalCounts, max_categories: int = DEFAULT_MAX_CATEGORIES
    ) -> None:
        _check_max_categories(max_categories)
        self.counts = counts
        self.max_categories = max_categories

    @classmethod
    def from_values(
        cls, values: Iterable[str], *, max_categories: int = DEFAULT_MAX_CATEGORIES
    ) -> "CategoricalReference":
        """The reference of these values; ``ValueError`` if there are none."""
        _check_max_categories(max_categories)
        tally = Counter(values)
        if not tally:
            raise ValueError("no values to build a categorical reference from")
        return cls(_top_categories(tally, 0, max_categories), max_categories)

    @classmethod
    def from_counts(
        cls, counts: CategoricalCounts, *, max_categories: int = DEFAULT_MAX_CATEGORIES
    ) -> "CategoricalReference":
        """The reference given by counts; ``max_categories`` applies to later merges."""
        return cls(counts, max_categories)

    def to_counts(self) -> CategoricalCounts:
        """The counts, for the wire."""
        return self.counts

    @property
    def count(self) -> int:
        """How many values the reference summarises."""
        return self.counts.count

    @property
    def shares(self) -> dict[str, float]:
        """The share of each listed category, most common first; ``other`` is not included."""
        return {category: n / self.count for category, n in self.counts.counts.items()}

    @property
    def other_share(self) -> float:
        """The share of values of no listed category."""
        return self.counts.other / self.count

    def share(self, category: str) -> float:
        """The share of one category; 0.0 for any category that is not listed.

        A category that was seen but counted under *other* cannot be told
        from one never seen: both get 0.0 (their pooled share is
        :attr:`other_share`).
        """
        return self.counts.counts.get(category, 0) / self.count

    def merge(self, other: "CategoricalReference") -> "CategoricalReference":
        """The reference of both references' values together.

        Counts of the same category are added. A category one reference
        counted only under *other* adds nothing to the other's count of it,
        so the merged counts are exact when neither reference had more
        categories than it could list, and never too high otherwise.
        """
        if not isinstance(other, CategoricalReference):
            raise TypeError(
                f"a categorical reference merges with another, not {type(other).__name__}"
            )
        tally = Counter(self.counts.counts)
        tally.update(other.counts.counts)
        lumped = self.counts.other + other.counts.other
        return CategoricalReference(
            _top_categories(tally, lumped, self.max_categories), self.max_categories
        )

    def __repr__(self) -> str:
        return (
            f"CategoricalReference(count={self.count}, categories={len(self.counts.counts)}, "
            f"max_categories={self.max_categories})"
        )


def _check_max_categories(max_categories: int) -> None:
    if not 1 <= max_categories <= MAX_CATEGORIES:
        raise ValueError(
            f"max_categories must be from 1 to {MAX_CATEGORIES}, got {max_categories!r}"
        )


def _top_categories(tally: Mapping[str, int], other: int, limit: int) -> CategoricalCounts:
    listable = sorted(
        (c for c in tally if len(c) <= MAX_CATEGORY_LENGTH), key=lambda c: (-tally[c], c)
    )
    listed = {category: tally[category] for category in listable[:limit]}
    total = sum(tally.values()) + other
    return CategoricalCounts(count=total, counts=listed, other=total - sum(listed.values()))


class ModelReference:
    """A model version's reference profile, with each feature's reference ready to use.

    ``made`` gives numeric references already made, by feature, from which
    the profile's sketches of those features were taken
    (:func:`build_reference_made`); the others are made from the sketches.

    Examples
    --------
    >>> from driftline.schemas.registry import FeatureSpec, TaskType
    >>> spec = ModelSpec(
    ...     model_id="churn", model_version="3", task=TaskType.REGRESSION,
    ...     features=[FeatureSpec(name="tenure", kind=FeatureKind.NUMERIC),
    ...               FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL)],
    ... )
    >>> profile = build_reference(
    ...     spec, {"tenure": [1.0, 5.0, 2.0, 9.0], "plan": ["free", "pro", "free", None]},
    ...     source="file:train.csv", ordered=False,
    ... )
    >>> reference = ModelReference(profile)
    >>> reference.numeric["tenure"].maximum, reference.categorical["plan"].shares
    (9.0, {'free': 0.6666666666666666, 'pro': 0.3333333333333333})
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        resolution: int = DEFAULT_RESOLUTION,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        *,
        made: Mapping[str, NumericReference] | None = None,
    ) -> None:
        self.profile = profile
        self.resolution = resolution
        self.max_categories = max_categories
        self.numeric: dict[str, NumericReference] = {}
        self.categorical: dict[str, CategoricalReference] = {}
        made = made or {}
        for name, summary in profile.features.items():
            if isinstance(summary, NumericSketch):
                # The reference a sketch was made from is that sketch's, and the end of a
                # warm-up is spared reading twenty sketches back (~1 ms a model).
                ready = made.get(name)
                self.numeric[name] = (
                    ready if ready is not None else NumericReference(summary, resolution)
                )
            else:
                self.categorical[name] = CategoricalReference(summary, max_categories)


class CompactProfile:
    """A model version's reference profile kept for later, its numeric sketches as arrays.

    A profile's numeric sketches hold a Python float per support point in
    three lists each, about 50 KB a feature. A model monitor needs its
    profile again only to write its state, so it keeps each numeric sketch
    as the :class:`NumericReference` its detector uses anyway (8 bytes a
    point), the rest as it is, and :attr:`profile` builds the profile again,
    equal to the one given.

    >>> from driftline.schemas.registry import FeatureSpec, TaskType
    >>> spec = ModelSpec(
    ...     model_id="churn", model_version="3", task=TaskType.REGRESSION,
    ...     features=[FeatureSpec(name="tenure", kind=FeatureKind.NUMERIC),
    ...               FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL)],
    ... )
    >>> profile = build_reference(
    ...     spec, {"tenure": [1.0, 5.0, 2.0, 9.0], "plan": ["free", "pro", "free", None]},
    ...     source="file:train.csv", ordered=False,
    ... )
    >>> CompactProfile(ModelReference(profile)).profile == profile
    True
    """

    def __init__(self, ready: ModelReference) -> None:
        profile = ready.profile
        self._features: dict[str, NumericReference | CategoricalCounts] = {
            name: ready.numeric[name] if isinstance(summary, NumericSketch) else summary
            for name, summary in profile.features.items()
        }
        self._others = {name: value for name, value in profile if name != "features"}
        """Every other field of the profile."""
        self._fields_set = set(profile.model_fields_set)

    @property
    def profile(self) -> ReferenceProfile:
        """The profile, built again (each time) from its pieces."""
        features = {
            name: kept.to_sketch() if isinstance(kept, NumericReference) else kept
            for name, kept in self._features.items()
        }
        # Every piece was validated as part of the profile given.
        return ReferenceProfile.model_construct(self._fields_set, features=features, **self._others)


def build_reference(
    spec: ModelSpec,
    columns: Mapping[str, Sequence[object] | Floats],
    *,
    source: str,
    ordered: bool,
    resolution: int = DEFAULT_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    validate: bool = True,
) -> ReferenceProfile:
    """The reference profile of a model version from its data, one column per feature.

    Every column holds one value per row (event); all columns are equally
    long. Each feature of the spec that is watched for drift (``monitor``)
    and has a column gets a summary, from the values the live checks would
    pass on to drift detectors: finite numbers (not booleans) for a numeric
    feature, ``True`` and ``False`` as 1.0 and 0.0 for a boolean one (a
    numeric sketch), strings for a categorical one. Missing values and
    values of the wrong type are skipped; a feature with no value left is
    left out of the profile. A column may also be a float array of numbers as
    detectors take them, NaN where there is none (as a warm-up keeps them).

    The correlation matrix covers the first 50 numeric and boolean features
    of the spec that have a summary, when there are at least two: the
    correlation of their normal scores over the rows where both are present
    (0 for a pair with fewer than three such rows). With ``ordered`` (the
    rows are a stream, in order), the lag-1 autocorrelation of each such
    feature's normal scores, over its values in row order, is kept too. The
    normal scores use randomized PITs drawn from a generator seeded with
    ``seed``, so the same data always give the same profile.

    Everything in the profile holds by construction (a hypothesis test
    checks it); ``validate`` checks it again where it is built, as a profile
    that goes out should be. A warm-up's reference never leaves its monitor,
    and is built without: checking twenty sketches turns their arrays into
    lists and back, about a millisecond a model, at the end of warm-ups that
    hold back every event behind them.

    Raises ``ValueError`` when there are no rows or the columns differ in length.
    """
    profile, _ = build_reference_made(
        spec,
        columns,
        source=source,
        ordered=ordered,
        resolution=resolution,
        max_categories=max_categories,
        seed=seed,
        validate=validate,
    )
    return profile


def build_reference_made(
    spec: ModelSpec,
    columns: Mapping[str, Sequence[object] | Floats],
    *,
    source: str,
    ordered: bool,
    resolution: int = DEFAULT_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    validate: bool = True,
) -> tuple[ReferenceProfile, dict[str, NumericReference]]:
    """:func:`build_reference`'s profile, and the numeric references its numeric sketches were
    taken from, by feature, for :class:`ModelReference` to use as they are.
    """
    lengths = {name: len(column) for name, column in columns.items()}
    rows = max(lengths.values(), default=0)
    uneven = sorted(name for name, length in lengths.items() if length != rows)
    if uneven:
        raise ValueError(
            f"every column must hold one value per row ({rows} rows); "
            f"these hold fewer: {', '.join(uneven)}"
        )
    if rows == 0:
        raise ValueError("no rows to build a reference profile from")
    summaries: dict[str, NumericSketch | CategoricalCounts] = {}
    numeric: dict[str, _Scored] = {}
    for feature in spec.features:
        column = columns.get(feature.name)
        if not feature.monitor or column is None:
            continue
        if feature.kind is FeatureKind.CATEGORICAL:
            texts = [value for value in column if isinstance(value, str)]
            if texts:
                reference = CategoricalReference.from_values(texts, max_categories=max_categories)
                summaries[feature.name] = reference.to_counts()
            continue
        numbers = detector_numbers(column, boolean=feature.kind is FeatureKind.BOOLEAN)
        present = numbers[~np.isnan(numbers)]
        if present.size:
            order = np.argsort(present)
            sketch = NumericReference.from_values(present[order], resolution=resolution)
            summaries[feature.name] = sketch.to_sketch()
            numeric[feature.name] = _Scored(sketch, numbers, order)
    scores = _normal_scores(numeric, np.random.default_rng(seed))
    correlated = list(scores)[:MAX_CORRELATED_FEATURES]
    if len(correlated) < 2:
        correlated = []
    correlation = (
        _correlation(np.column_stack([scores[name] for name in correlated])) if correlated else None
    )
    serial = _serial_correlations(scores) if ordered else {}
    build = ReferenceProfile if validate else ReferenceProfile.model_construct
    profile = build(
        model_id=spec.model_id,
        model_version=spec.model_version,
        source=source,
        event_count=rows,
        features=summaries,
        correlation=correlation,
        correlation_features=correlated,
        serial_correlation=serial,
    )
    return profile, {name: scored.reference for name, scored in numeric.items()}


def detector_numbers(column: Sequence[object] | Floats, *, boolean: bool) -> Floats:
    """One float per row as drift detectors would see it; NaN where there is none.

    A numeric value is a finite number (not a boolean), as a float; a
    boolean one is ``True`` or ``False``, as 1.0 or 0.0. A float array is
    taken as numbers already (its non-finite entries become NaN).

    >>> detector_numbers([1, 2.5, "3", None, True, float("inf")], boolean=False).tolist()
    [1.0, 2.5, nan, nan, nan, nan]
    >>> detector_numbers([True, False, 1], boolean=True).tolist()
    [1.0, 0.0, nan]
    """
    if isinstance(column, np.ndarray):  # numbers already
        numbers = np.array(column, dtype=np.float64)
        numbers[~np.isfinite(numbers)] = np.nan
        return numbers
    expected = bool if boolean else float
    if set(map(type, column)) <= {expected}:  # the common case, converted whole
        numbers = np.array(column, dtype=np.float64)
        if expected is float:
            numbers[~np.isfinite(numbers)] = np.nan
        return numbers
    numbers = np.full(len(column), np.nan)
    for row, value in enumerate(column):
        if boolean:
            if isinstance(value, bool):
                numbers[row] = 1.0 if value else 0.0
        elif isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond any float
                continue
            if math.isfinite(number):
                numbers[row] = number
    return numbers


class _Scored(NamedTuple):
    """A numeric feature's reference, its column (NaN: no value), and the order that sorts the
    column's values."""

    reference: NumericReference
    numbers: Floats
    order: NDArray[np.intp]


def _normal_scores(numeric: Mapping[str, _Scored], rng: np.random.Generator) -> dict[str, Floats]:
    """Each feature's normal scores (NaN where it has no value), its draws taken in row order.

    The values are scored in ascending order and put back: a warm-up's end
    scores some twenty columns of thousands of values, and in order their
    binary searches and look-ups follow each other (about twice as fast, the
    scores the same value by value).
    """
    scores: dict[str, Floats] = {}
    for name, (reference, numbers, order) in numeric.items():
        present = ~np.isnan(numbers)
        draws = rng.random(order.size)
        ranked = np.empty(order.size)
        values, ranked_draws = numbers[present][order], draws[order]
        # A batch at a time: each score is its value's alone, so the scores are the same.
        for start in range(0, order.size, SCORE_BATCH):
            batch = slice(start, start + SCORE_BATCH)
            ranked[order[batch]] = reference.normal_scores(values[batch], ranked_draws[batch])
        z = np.full(numbers.size, np.nan)
        z[present] = ranked
        scores[name] = z
    return scores


def _correlation(z: Floats) -> list[list[float]]:
    """Pearson correlations of the columns of ``z`` over pairwise complete rows (NaN: missing)."""
    present = (~np.isnan(z)).astype(np.float64)
    filled = np.where(np.isnan(z), 0.0, z)
    pairs = present.T @ present
    with np.errstate(divide="ignore", invalid="ignore"):
        # sums[i, j]: the sum of column i over the rows where column j is present too.
        means = (filled.T @ present) / pairs
        squares = ((filled * filled).T @ present) / pairs
        covariance = (filled.T @ filled) / pairs - means * means.T
        variance = squares - means * means
        r = covariance / np.sqrt(variance * variance.T)
    usable = (pairs >= MIN_PAIRS) & np.isfinite(r) & (variance > 0) & (variance.T > 0)
    r = np.clip(np.where(usable, r, 0.0), -1.0, 1.0)
    r = (r + r.T) / 2
    np.fill_diagonal(r, 1.0)
    return [[float(c) for c in row] for row in r]


def _serial_correlations(scores: Mapping[str, Floats]) -> dict[str, float]:
    """The lag-1 correlation of each feature's scores (NaN: missing), over its values in order.

    Features without a missing value, the common case, are computed side by
    side; a feature with too few values has none.
    """
    whole = [name for name, z in scores.items() if not np.isnan(z).any()]
    serial: dict[str, float] = {}
    if whole and len(scores[whole[0]]) >= MIN_PAIRS + 1:
        z = np.column_stack([scores[name] for name in whole])
        x, y = z[:-1], z[1:]
        pairs = len(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_x, mean_y = x.sum(axis=0) / pairs, y.sum(axis=0) / pairs
            covariance = (x * y).sum(axis=0) / pairs - mean_x * mean_y
            variance_x = (x * x).sum(axis=0) / pairs - mean_x * mean_x
            variance_y = (y * y).sum(axis=0) / pairs - mean_y * mean_y
            r = covariance / np.sqrt(variance_x * variance_y)
        usable = np.isfinite(r) & (variance_x > 0) & (variance_y > 0)
        r = np.clip(np.where(usable, r, 0.0), -1.0, 1.0)
        serial.update(zip(whole, r.tolist(), strict=True))
    for name, z in scores.items():
        if name not in serial:
            rho = _serial_correlation(z[~np.isnan(z)])
            if rho is not None:
                serial[name] = rho
    return {name: serial[name] for name in scores if name in serial}


def _serial_correlation(z: Floats) -> float | None:
    """The correlation of consecutive values, or None with too few of them."""
    if z.size < MIN_PAIRS + 1:
        return None
    matrix = _correlation(np.column_stack([z[:-1], z[1:]]))
    return matrix[0][1]


def merge_profiles(
    a: ReferenceProfile,
    b: ReferenceProfile,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> ReferenceProfile:
    """The profile of two profiles' data together, such as two shards or two days.

    Both must be of the same model version, and a feature both summarise
    must be of one kind in both. A feature only one summarises is kept as
    it is. The correlation matrices are averaged, weighted by event counts,
    over the features both cover (a profile with none takes the other's);
    the serial correlations of features both have are averaged, weighted by
    the feature's value counts.
    """
    if (a.model_id, a.model_version) != (b.model_id, b.model_version):
        raise ValueError(
            f"profiles of different model versions do not merge: model {a.model_id} "
            f"version {a.model_version}, model {b.model_id} version {b.model_version}"
        )
    features: dict[str, NumericSketch | CategoricalCounts] = dict(a.features)
    for name, theirs in b.features.items():
        ours = features.get(name)
        if ours is None:
            features[name] = theirs
        elif isinstance(ours, NumericSketch) and isinstance(theirs, NumericSketch):
            merged = NumericReference(ours, resolution).merge(NumericReference(theirs, resolution))
            features[name] = merged.to_sketch()
        elif isinstance(ours, CategoricalCounts) and isinstance(theirs, CategoricalCounts):
            pooled = CategoricalReference(ours, max_categories).merge(
                CategoricalReference(theirs, max_categories)
            )
            features[name] = pooled.to_counts()
        else:
            raise ValueError(
                f"feature {name!r} is {ours.kind} in one profile, {theirs.kind} in the other"
            )
    correlation, correlated = _merged_correlation(a, b)
    serial = {
        name: (a.features[name].count * rho + b.features[name].count * b.serial_correlation[name])
        / (a.features[name].count + b.features[name].count)
        for name, rho in a.serial_correlation.items()
        if name in b.serial_correlation
    }
    return ReferenceProfile(
        model_id=a.model_id,
        model_version=a.model_version,
        source=_joined_sources(a.source, b.source),
        event_count=a.event_count + b.event_count,
        features=features,
        correlation=correlation,
        correlation_features=correlated,
        serial_correlation={name: min(max(rho, -1.0), 1.0) for name, rho in serial.items()},
    )


def _merged_correlation(
    a: ReferenceProfile, b: ReferenceProfile
) -> tuple[list[list[float]] | None, list[str]]:
    if a.correlation is None:
        return b.correlation, list(b.correlation_features)
    if b.correlation is None:
        return a.correlation, list(a.correlation_features)
    theirs = {name: i for i, name in enumerate(b.correlation_features)}
    common = [name for name in a.correlation_features if name in theirs]
    if len(common) < 2:
        return None, []
    ours = {name: i for i, name in enumerate(a.correlation_features)}
    a_rows = np.ix_([ours[n] for n in common], [ours[n] for n in common])
    b_rows = np.ix_([theirs[n] for n in common], [theirs[n] for n in common])
    matrix = (
        a.event_count * np.asarray(a.correlation)[a_rows]
        + b.event_count * np.asarray(b.correlation)[b_rows]
    ) / (a.event_count + b.event_count)
    matrix = np.clip(matrix, -1.0, 1.0)
    return [[float(c) for c in row] for row in matrix], common


def _joined_sources(a: str, b: str, limit: int = 1_000) -> str:
    joined = f"{a} + {b}"
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."
