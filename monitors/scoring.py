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
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri

from driftline.monitors.reference import Floats, NumericReference, cdf_bounds

__all__ = ["ReferenceStack", "pieces"]


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
            [  # the method, not np.searchsorted: its wrapper costs ~1 µs a feature
                reference.support[0].searchsorted(values, side="left")
                for reference, values in zip(self.references, xs, strict=True)
            ]
        )
        supports = (self._values, self._below, self._at)
        starts, lasts = self._starts[owner], self._lasts[owner]
        low, high = cdf_bounds(supports, x, places, starts, lasts, beyond=True)
        u = np.clip(low + v * (high - low), self._floors[owner], self._ceilings[owner])
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
