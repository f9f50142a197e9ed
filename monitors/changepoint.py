"""Where, in a short run of values, the mean most likely changed."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MeanChange:
    """The most likely single change of the mean in a run of values.

    ``split`` is the index of the first value after the change; the means
    are those of the values before and from it.
    """

    split: int
    mean_before: float
    mean_after: float


def estimate_mean_change(values: Sequence[float]) -> MeanChange:
    """The split that maximises the standardised difference of the two means.

    This is the CUSUM (binary segmentation) estimate of one change point in
    the mean: for each split ``k`` it weighs ``|mean(x[:k]) - mean(x[k:])|``
    by ``sqrt(k (n - k) / n)``, so splits near either end need a larger
    difference to win. It is a least-squares estimate, exact for one step in
    the mean of independent noise.

    >>> change = estimate_mean_change([0.1, -0.2, 0.0, 0.1, 3.1, 2.9, 3.0])
    >>> change.split, round(change.mean_before, 2), round(change.mean_after, 2)
    (4, 0.0, 3.0)
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        mean = float(x.mean()) if n else 0.0
        return MeanChange(split=n, mean_before=mean, mean_after=mean)
    k = np.arange(1, n)
    prefix = np.cumsum(x)[:-1]
    before = prefix / k
    after = (x.sum() - prefix) / (n - k)
    score = np.abs(before - after) * np.sqrt(k * (n - k) / n)
    best = int(np.argmax(score))
    return MeanChange(
        split=best + 1, mean_before=float(before[best]), mean_after=float(after[best])
    )
