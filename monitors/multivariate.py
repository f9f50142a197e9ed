"""Drift of a model's numeric features together: a CUSUM on their Mahalanobis distance.

Per-feature tests miss changes that move no single feature far: a broken
correlation, or small shifts in many features at once. Under the reference,
the normal scores z of the numeric features have correlation matrix R, so
``s = z' R^-1 z`` is chi-square with as many degrees of freedom as features
(exactly, if their joint distribution is Gaussian in normal scores; close
to it otherwise). A CUSUM watches ``s`` for inflation: any shift of the
mean, rise of a variance or change of correlation makes ``s`` larger.
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from driftline.monitors.feature_drift import DriftAlarm, walk_of
from driftline.monitors.packing import pack_floats, unpack_floats
from driftline.monitors.rings import FloatRing
from driftline.monitors.sequential import ChiSquareCusum, lorden_threshold
from driftline.monitors.state import State, Stateful
from driftline.schemas.summaries import JointSums, Walk

DISTANCE_ROWS = 128
"""Rows whose distances :meth:`MultivariateDrift.distances` computes at once (a block takes
``rows x features**2`` products: 400 KB for twenty features)."""

RIDGE = 1e-3
"""Added to R's diagonal before inverting, so nearly collinear features stay stable."""


class MultivariateDrift:
    """A CUSUM on ``z' R^-1 z`` of several features' normal scores.

    Parameters
    ----------
    features
        The features watched together, in the order of ``correlation``.
    correlation
        Their normal scores' correlation matrix under the reference.
    arl
        Expected events between false alarms of this test when nothing changes.
    inflation
        The inflation of ``s`` the CUSUM is tuned to.
    variance_factor
        Long-run variance factor of ``s`` when the scores are autocorrelated.
    reference_size
        How many events the correlation matrix was estimated from, when known.
        Out of that sample, ``z' R^-1 z`` with an estimated ``R`` is larger than
        with the true one, by ``(n - 1) / (n - d - 2)`` on average (Hotelling's
        T² of one new observation): 8 % for 21 features from 300 events, 2 %
        from 1,000. The CUSUM, tuned to a chi-square's mean, took that for
        drift and alarmed on stationary data (every run of 20,000 events with a
        300-event warm-up, one in six with 1,000), so the distances are scaled
        back by it.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> detector = MultivariateDrift(["a", "b"], np.array([[1.0, 0.8], [0.8, 1.0]]), arl=1e6)
    >>> together = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 3_000)
    >>> apart = rng.multivariate_normal([0, 0], [[1, -0.8], [-0.8, 1]], 1_000)
    >>> [i for i, (a, b) in enumerate(np.vstack([together, apart]))
    ...  if detector.update({"a": a, "b": b})][:1]
    [3003]
    """

    def __init__(
        self,
        features: Sequence[str],
        correlation: np.ndarray,
        *,
        arl: float,
        inflation: float = 1.5,
        variance_factor: float = 1.0,
        history: int = 512,
        reference_size: int | None = None,
    ) -> None:
        self.features = list(features)
        self.reference_size = reference_size
        self.correlation = np.asarray(correlation, dtype=np.float64)
        self.arl = arl
        self.inflation = inflation
        self.history = history
        dimension = len(self.features)
        if self.correlation.shape != (dimension, dimension):
            raise ValueError(
                f"correlation is {self.correlation.shape}, not {dimension}x{dimension} "
                "for the features given"
            )
        ridged = self.correlation + RIDGE * np.eye(dimension)
        self._precision = np.linalg.inv(ridged / (1 + RIDGE)) * estimation_scale(
            reference_size, dimension
        )
        self.cusum = ChiSquareCusum(dimension, lorden_threshold(arl), inflation=inflation)
        self.cusum.variance_factor = variance_factor
        self._observations = 0
        self._recent = FloatRing(history)
        self.last_alarm: DriftAlarm | None = None

    def to_state(self, *, with_reference: bool = True) -> State:
        """Everything the detector needs to go on, as plain JSON-ready data (no pickle).

        Without ``with_reference`` the correlation matrix is left out, for an
        owner that keeps it anyway (a model monitor's reference profile):
        give it back to :meth:`from_state`. Recent distances are packed
        exactly (see :mod:`driftline.monitors.packing`).
        """
        state: State = {
            "features": self.features,
            "arl": self.arl,
            "inflation": self.inflation,
            "history": self.history,
            "reference_size": self.reference_size,
            "cusum": self.cusum.to_state(),
            "observations": self._observations,
            "recent": pack_floats(self._recent.values()),
        }
        if with_reference:
            state["correlation"] = self.correlation.tolist()
        return state

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], correlation: ArrayLike | None = None
    ) -> "MultivariateDrift":
        """The detector :meth:`to_state` described, going on exactly where it was.

        ``correlation`` is the matrix the detector was built with, for a
        state written without it; by default the state's own.
        """
        detector = cls(
            state["features"],
            np.asarray(
                state["correlation"] if correlation is None else correlation, dtype=np.float64
            ),
            arl=state["arl"],
            inflation=state["inflation"],
            history=state["history"],
            reference_size=state.get("reference_size"),  # None in states saved before it
        )
        detector.cusum = ChiSquareCusum.from_state(state["cusum"])
        detector._observations = int(state["observations"])
        detector._recent.extend(unpack_floats(state["recent"]))
        return detector

    @property
    def pressure(self) -> float:
        """The test's statistic over its threshold: 1 at the alarm threshold."""
        return self.cusum.statistic / self.cusum.threshold

    @property
    def observations(self) -> int:
        """Events with a score for every feature seen so far."""
        return self._observations

    def distance(self, scores: Mapping[str, float]) -> float | None:
        """``z' R^-1 z`` of one event, or None when a feature has no score."""
        try:
            z = np.fromiter((scores[name] for name in self.features), np.float64)
        except KeyError:
            return None
        return float(self.distances(z[np.newaxis, :])[0])

    def distances(self, z: np.ndarray) -> np.ndarray:
        """``z' R^-1 z`` of each row of ``z`` (one column per feature, in ``features`` order).

        Summed in a fixed order, feature by feature (``sum_j sum_k z_j P_jk
        z_k``, each sum from the first feature on), so a row's distance is
        the same to the bit whatever else is in the batch: a matrix product
        would not promise that. The products of up to :data:`DISTANCE_ROWS`
        rows are laid out features first, and numpy sums along a leading
        axis one slice after another, in order: four numpy calls a block,
        where a loop over the features took two per feature (~60 µs a
        model and batch with twenty features, most of it for few rows).
        A lone row is doubled first, or numpy would sum its length-one
        layout pairwise.
        """
        rows = len(z)
        distances = np.empty(rows)
        precision = self._precision[:, :, np.newaxis]
        for start in range(0, rows, DISTANCE_ROWS):
            block = z[start : start + DISTANCE_ROWS]
            count = len(block)
            if count == 1:
                block = np.concatenate([block, block])
            columns = np.ascontiguousarray(block.T)  # a feature's scores per row
            weighted = (precision * columns[:, np.newaxis, :]).sum(axis=0)
            distances[start : start + count] = (weighted * columns).sum(axis=0)[:count]
        return distances

    def update(self, scores: Mapping[str, float]) -> bool:
        """Watch one event's scores; True on an alarm. Events missing a score are skipped."""
        distance = self.distance(scores)
        if distance is None:
            return False
        return self.take_until_alarm(np.array([distance])) == 0

    def update_summary(self, sums: JointSums) -> bool:
        """Watch a batch of events known by the sum of their distances; True on an alarm.

        The grouped form of :meth:`update` (see
        :meth:`~driftline.monitors.feature_drift.NumericDrift.update_summary`):
        the test takes the walk of its increments over the batch in one
        step, and its sample of distances stands for the batch in the
        evidence.
        """
        self.cusum.update_sides(sums.count, [sums.walk])
        self._observations += sums.count
        self._recent.extend(sums.sample)
        if not self.cusum.drift_detected:
            return False
        since = self._observations - self.cusum.change_observation + 1
        self._alarm(math.ceil(since * len(sums.sample) / sums.count))
        return True

    def walk(self, distances: np.ndarray) -> Walk:
        """The walk of the test's side over a batch's distances (see :meth:`update_summary`)."""
        (side,) = self.cusum.group_sides(distances)
        return walk_of(side)

    def take_until_alarm(self, distances: np.ndarray) -> int | None:
        """Feed events' distances in order up to the first alarm; its index, or None."""
        hit = self.cusum.update_many(distances)
        taken = len(distances) if hit is None else hit + 1
        self._observations += taken
        self._recent.extend(distances[:taken])
        if hit is None:
            return None
        self._alarm(self._observations - self.cusum.change_observation + 1)
        return hit

    def _alarm(self, recent: int) -> None:
        """Record the test's alarm, with the last ``recent`` distances kept; start it afresh."""
        self.last_alarm = DriftAlarm(
            test="multivariate_cusum",
            direction="up",
            statistic=self.cusum.statistic,
            threshold=self.cusum.threshold,
            arl=self.arl,
            observation=self._observations,
            change_observation=self.cusum.change_observation,
            current=tuple(self._recent.last(max(recent, 1)).tolist()),
        )
        self.cusum.reset()


_STATEFUL: tuple[type[Stateful], ...] = (MultivariateDrift,)
"""The drift detector here, held by the type checker to the state protocol (:class:`Stateful`)."""


def estimation_scale(reference_size: int | None, dimension: int) -> float:
    """What ``z' R^-1 z`` is multiplied by so that its mean out of the reference sample is
    ``dimension``, with ``R`` estimated from ``reference_size`` events: ``(n - d - 2) / (n -
    1)`` (1 when the size is not known; at least ``1 / (n - 1)`` for a sample too small to
    say, where any estimate of ``R`` is poor).

    >>> round(estimation_scale(300, 21), 4), round(estimation_scale(2_000, 21), 4)
    (0.9264, 0.989)
    >>> estimation_scale(None, 21)
    1.0
    """
    if reference_size is None:
        return 1.0
    n = max(int(reference_size), 2)
    return max(n - dimension - 2, 1) / (n - 1)
