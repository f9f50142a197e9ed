"""Normal scores of many numeric features' values in one pass.

A batch of a model's events brings a few values of each of its numeric
features. Scoring each feature on its own costs some twenty numpy calls a
feature, whatever the number of values: with 20 features and 8 events that
fixed cost is most of the batch. :class:`ReferenceStack` lays the features'
references end to end, so that after one binary search per feature the
PIT and the normal quantile of every value are a single vectorised
computation, equal value by value to
:meth:`~driftline.monitors.reference.NumericReference.normal_scores`.

>>> import numpy as np
>>> from driftline.monitors.reference import NumericReference
>>> rng = np.random.default_rng(0)
>>> references = [NumericReference.from_values(rng.normal(size=500)) for _ in range(3)]
>>> stack = ReferenceStack(references)
>>> xs = [rng.normal(size=4) for _ in range(3)]
>>> vs = [rng.random(4) for _ in range(3)]
>>> together = stack.normal_scores(xs, vs)
>>> all((z == r.normal_scores(x, v)).all() for z, r, x, v in zip(together, references, xs, vs))
True
"""

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from driftline.monitors.reference import Floats, NumericReference, cdf_bounds

__all__ = ["ReferenceStack", "pieces", "places_among"]


class ReferenceStack:
    """Several numeric references side by side, each value scored against its own."""

    def __init__(self, references: Sequence[NumericReference]) -> None:
        if not references:
            raise ValueError("a reference stack needs at least one reference")
        self.references = list(references)
        supports = [reference.support for reference in self.references]
        sizes = np.array([values.size for values, _, _ in supports], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._lasts = self._starts + sizes - 1
        self._values = np.concatenate([values for values, _, _ in supports])
        self._below = np.concatenate([below for _, below, _ in supports])
        self._at = np.concatenate([at for _, _, at in supports])
        self._floors = np.array([reference.floor for reference in self.references])
        self._ceilings = 1.0 - self._floors

    def normal_scores(self, xs: Sequence[Floats], vs: Sequence[Floats]) -> list[Floats]:
        """The normal scores of ``xs[k]`` (tie-broken by ``vs[k]``) against reference ``k``.

        Raises ``ValueError`` on NaN, on a ``v`` outside [0, 1], or when the
        lists do not match the references one for one.
        """
        if not len(xs) == len(vs) == len(self.references):
            raise ValueError(
                f"{len(self.references)} references, {len(xs)} value arrays, {len(vs)} v arrays"
            )
        counts = [len(x) for x in xs]
        if any(len(v) != count for v, count in zip(vs, counts, strict=True)):
            raise ValueError("each value array needs a v array of its own length")
        x = np.concatenate(xs).astype(np.float64, copy=False)
        v = np.concatenate(vs).astype(np.float64, copy=False)
        if np.isnan(x).any():
            raise ValueError("the PIT of NaN is undefined")
        if not ((v >= 0.0) & (v <= 1.0)).all():
            raise ValueError("every v must be in [0, 1]")
        owner = np.repeat(np.arange(len(counts)), counts)
        places = np.concatenate(
            [
                places_among(reference.support[0], values)
                for reference, values in zip(self.references, xs, strict=True)
            ]
        )
        supports = (self._values, self._below, self._at)
        starts, lasts = self._starts[owner], self._lasts[owner]
        low, high = cdf_bounds(supports, x, places, starts, lasts, beyond=True)
        # low + v (high - low), in place; where no value needs a draw, low itself.
        u = low
        if high is not low:
            u = high - low
            u *= v
            u += low
        floors = self._floors
        if (floors == floors[0]).all():  # references of one size, as warm-ups make them
            np.clip(u, floors[0], self._ceilings[0], out=u)
        else:
            np.clip(u, floors[owner], self._ceilings[owner], out=u)
        scores = np.asarray(ndtri(u), dtype=np.float64)
        return pieces(scores, counts)


def pieces(array: Floats, counts: Sequence[int]) -> list[Floats]:
    """``array`` cut into consecutive pieces of ``counts`` values (views), as ``np.split`` at
    their running sums gives them, without its cost of a few microseconds a piece (two
    splits of twenty features a model and batch).

    >>> [piece.tolist() for piece in pieces(np.arange(5.0), [2, 0, 3])]
    [[0.0, 1.0], [], [2.0, 3.0, 4.0]]
    """
    ends = list(itertools.accumulate(counts))
    return [array[end - count : end] for count, end in zip(counts, ends, strict=True)]


BUCKETS_PER_POINT = 8
"""Buckets of :func:`places_among` for each sorted value: most hold one value or none.

The most a bucket holds among a reference's ~500 points, with 8 buckets a
point: 1 for normal data, 3 for Student's t(3) or a mixture of two
normals, 4 exponential, 5 lognormal, 84 Cauchy (4 buckets a point: 2, 5,
5, 7, 155).
"""

MOST_STEPS = 6
"""The most values in one bucket :func:`places_among` steps over, before it searches instead:
each step costs ~3 ns a value, a binary search ~55."""


def places_among(sorted_values: Floats, x: Floats) -> NDArray[np.intp]:
    """Where each ``x`` goes among ``sorted_values`` (increasing, distinct), as the method
    ``searchsorted`` puts it (``side="left"``): the number of values below it.

    A binary search mispredicts a branch at most of its steps: ~55 ns a
    value among the ~500 points of a reference, most of the time of
    scoring a large batch. With many values to place, here they go to one
    of ``BUCKETS_PER_POINT`` evenly wide buckets for each sorted value,
    where a table gives how many values lie in the buckets before, and a
    few steps over the bucket's own values (at most ``MOST_STEPS``) end it:
    ~10 ns a value. The bucket of a number is monotone in it, so the place
    is exact. Few values to place (the table would cost more than it
    saves), a crowded bucket (heavy tails) or a span too wide for a float
    go to ``searchsorted``, and so does NaN (placed last).

    >>> import numpy as np
    >>> points = np.array([-1.0, 0.0, 0.5, 2.0])
    >>> x = np.array([-5.0, -1.0, 0.25, 2.0, 9.0, np.inf, -np.inf] * 3)
    >>> bool((places_among(points, x) == points.searchsorted(x)).all())
    True
    """
    count = sorted_values.size
    if x.size < 2 * count or count < 2 or np.isnan(x).any():
        return sorted_values.searchsorted(x, side="left")
    lowest, buckets = float(sorted_values[0]), BUCKETS_PER_POINT * count
    with np.errstate(over="ignore"):
        scale = buckets / (float(sorted_values[-1]) - lowest)
    if not math.isfinite(scale) or scale <= 0.0:
        return sorted_values.searchsorted(x, side="left")
    owners = _buckets(sorted_values, lowest, scale, buckets)
    sizes = np.bincount(owners, minlength=buckets)
    steps = int(sizes.max())
    if steps > MOST_STEPS:
        return sorted_values.searchsorted(x, side="left")
    before = np.zeros(buckets, dtype=np.intp)
    np.cumsum(sizes[:-1], out=before[1:])
    places = before[_buckets(x, lowest, scale, buckets)]
    padded = np.append(sorted_values, np.inf)  # a value past the last is never below x
    for _ in range(steps):
        places += padded[places] < x
    return places


def _buckets(x: Floats, lowest: float, scale: float, buckets: int) -> NDArray[np.intp]:
    """The bucket of each ``x``: monotone in ``x``, from 0 to ``buckets - 1``."""
    with np.errstate(over="ignore", invalid="ignore"):
        where = (x - lowest) * scale
    np.clip(where, 0.0, buckets - 1, out=where)
    return where.astype(np.intp)
