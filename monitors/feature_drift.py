"""Drift of one feature against its reference: sequential tests on reference-relative scores.

A numeric value is first turned into its normal score against the
feature's reference (the probability integral transform, then the standard
normal quantile), so that with no change the scores are N(0, 1) whatever
the feature's own shape: heavy tails, skew, ties or mixtures no longer
matter. Two-sided CUSUMs then watch the scores' location and scale. A
categorical value feeds one Bernoulli CUSUM per tracked category (and one
for all others, unseen ones included). Each test's threshold comes from its
share of the false-alarm budget (``arl``: expected events between false
alarms of this feature when nothing changes), so the tests together keep it.

Ties are broken with a deterministic sequence of uniforms (splitmix64 on a
counter), so the same stream always gives the same alarms.
"""

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from driftline.monitors.packing import pack_floats, unpack_floats
from driftline.monitors.reference import CategoricalReference, NumericReference
from driftline.monitors.rings import FloatRing
from driftline.monitors.scoring import ReferenceStack, pieces
from driftline.monitors.sequential import (
    MAX_RHO,
    SERIAL_HALFLIFE,
    BernoulliCusum,
    GroupSide,
    LocationCusum,
    ScaleCusum,
    SerialDependence,
    advance_groups_on_features,
    advance_together,
    location_threshold,
    lorden_threshold,
)
from driftline.monitors.state import State, Stateful
from driftline.schemas import CategoricalCounts, NumericSketch
from driftline.schemas.summaries import CategorySums, NumericSums, Sides, Walk

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantiles that summarise a numeric distribution in alert evidence."""

VARIANCE_FACTOR_EVERY = 256
"""Observations between updates of the serial-dependence correction.

Fixed blocks keep :meth:`NumericDrift.update_many` exactly equal to
calling :meth:`NumericDrift.update` value by value.
"""

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _uniform(counter: int, seed: int) -> float:
    """The ``counter``-th uniform in [0, 1) of stream ``seed`` (splitmix64)."""
    z = (seed + (counter + 1) * _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return (z >> 11) * 2.0**-53


def _uniforms(start: int, count: int, seed: int) -> np.ndarray:
    """``count`` uniforms from ``start`` on, equal to :func:`_uniform` one by one."""
    counters = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + counters * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return np.asarray((z >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def _uniforms_of_streams(
    starts: Sequence[int], counts: Sequence[int], seeds: Sequence[int]
) -> np.ndarray:
    """:func:`_uniforms` of several streams at once, end to end: ``counts[k]`` uniforms of
    stream ``seeds[k]`` from ``starts[k]`` on, each equal to :func:`_uniform`."""
    total = int(sum(counts))
    offsets = np.repeat(np.cumsum([0, *counts[:-1]]) - np.asarray(starts, dtype=np.int64), counts)
    counters = (np.arange(1, total + 1, dtype=np.int64) - offsets).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = np.repeat(np.asarray(seeds, dtype=np.uint64), counts) + counters * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return np.asarray((z >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def ks_uniform(u: ArrayLike) -> tuple[float, float]:
    """The two-sided Kolmogorov-Smirnov test of values against Uniform(0, 1).

    The statistic and p-value of ``scipy.stats.kstest(u, "uniform")``, equal
    to the last bit (the same distances, and its exact p-value), without its
    generic wrapping, which costs several times as much on the few hundred
    values of an alert's evidence.

    >>> rng = np.random.default_rng(3)
    >>> u = rng.random(40)
    >>> result = stats.kstest(u, "uniform")
    >>> ks_uniform(u) == (float(result.statistic), float(result.pvalue))
    True
    """
    cdf = np.clip(np.sort(np.asarray(u, dtype=np.float64)), 0.0, 1.0)
    n = len(cdf)
    if n == 0:
        raise ValueError("the Kolmogorov-Smirnov test needs at least one value")
    above = float((np.arange(1.0, n + 1) / n - cdf).max())
    below = float((cdf - np.arange(0.0, n) / n).max())
    statistic = above if above > below else below
    p_value = float(np.clip(stats.kstwo.sf(statistic, n), 0.0, 1.0))
    return statistic, p_value


def reference_margin(count: int, shift: float) -> float:
    """How much to raise a location threshold for a reference of ``count`` values.

    Scores are measured against an estimated reference, whose own error
    moves their mean by about ``1 / sqrt(count)`` for good; a bias ``b``
    adds ``shift * b`` to every CUSUM increment and cuts the in-control run
    length roughly by ``exp(-2 b h / shift)``. Raising the threshold by
    ``1 / (1 - 2 b / shift)`` with ``b = 1 / sqrt(count)`` (one standard
    error) keeps the false-alarm budget for most references at a small cost
    in delay (about 9% for a 2,000-value warm-up, 4% for 10,000 values).

    >>> round(reference_margin(2_000, 0.5), 3)
    1.098
    """
    bias = 1.0 / math.sqrt(max(count, 1))
    return 1.0 / max(1.0 - 2.0 * bias / shift, 0.5)


@dataclass(frozen=True, slots=True)
class DriftAlarm:
    """One test of one feature crossing its threshold.

    ``observation`` counts the feature's values from 1 (the alarming one
    included); ``change_observation`` is the estimated first value after the
    change. ``current`` holds the values from the change on (at most the
    detector's ``history``), for the evidence.
    """

    test: str
    direction: str
    statistic: float
    threshold: float
    arl: float
    observation: int
    change_observation: int
    current: tuple[Any, ...]


class NumericDrift:
    """Location and scale drift of one numeric feature, on normal scores.

    Parameters
    ----------
    reference
        The feature's reference distribution.
    arl
        Expected values between false alarms of this feature when nothing
        changes; each of its four one-sided tests gets a quarter of the rate.
    shift
        The location change, in reference standard deviations, the location
        CUSUM is tuned to (it detects any, fastest near this one).
    ratio
        The variance ratio the scale CUSUM is tuned to (both ways).
    serial_rho
        Lag-1 autocorrelation of the scores known from the reference (an
        ordered warm-up window); refined online from the stream.
    seed
        Seeds the uniforms that break ties.
    history
        Recent values kept to summarise the distribution after a change.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> detector = NumericDrift.from_reference_values(rng.normal(0, 1, 2_000), arl=1e6)
    >>> stream = np.concatenate([rng.normal(0, 1, 5_000), rng.normal(1, 1, 1_000)])
    >>> detector.update_many(stream)[:3]
    [5038, 5074, 5129]

    The mean moved at index 5,000: the first alarm comes 38 values later,
    and alarms keep coming while the stream stays away from the reference.
    """

    TESTS = 4

    def __init__(
        self,
        reference: NumericReference,
        *,
        arl: float,
        shift: float = 0.5,
        ratio: float = 2.0,
        serial_rho: float = 0.0,
        seed: int = 0,
        history: int = 512,
    ) -> None:
        self.reference = reference
        self.arl = arl
        self.shift = shift
        self.ratio = ratio
        self.serial_rho = serial_rho
        self.seed = seed
        self.history = history
        test_arl = arl * self.TESTS
        threshold = location_threshold(test_arl, shift) * reference_margin(reference.count, shift)
        self.location = LocationCusum(threshold, shift=shift)
        self.scale = ScaleCusum(lorden_threshold(test_arl), ratio=ratio)
        self.serial = SerialDependence(prior_rho=serial_rho)
        self._apply_variance_factor()
        self._observations = 0
        self._recent = FloatRing(history)
        self.last_score: float | None = None
        self.last_alarm: DriftAlarm | None = None

    @classmethod
    def from_reference_values(
        cls, values: ArrayLike, *, arl: float, seed: int = 0, ordered: bool = False, **options: Any
    ) -> "NumericDrift":
        """A detector whose reference is these values (a warm-up window or training data).

        With ``ordered``, the values are a stream in time order (a warm-up
        window), and their lag-1 autocorrelation starts the serial-dependence
        correction, as the worker does.
        """
        array = np.asarray(values, dtype=np.float64)
        reference = NumericReference.from_values(array)
        if ordered and "serial_rho" not in options:
            finite = array[np.isfinite(array)]
            scores = reference.normal_scores(finite, _uniforms(0, len(finite), seed ^ 0x5EED))
            if len(scores) > 30:
                rho = float(np.corrcoef(scores[:-1], scores[1:])[0, 1])
                options["serial_rho"] = min(max(rho, 0.0), 0.95) if np.isfinite(rho) else 0.0
        return cls(reference, arl=arl, seed=seed, **options)

    @property
    def pressure(self) -> float:
        """How close the tests are to alarming: the largest statistic over its threshold.

        0 when quiet, 1 at the alarm threshold; alerts resolve only once it stays
        under an exit fraction (hysteresis).
        """
        return max(
            self.location.statistic / self.location.threshold,
            self.scale.statistic / self.scale.threshold,
        )

    @property
    def observations(self) -> int:
        """Values seen so far."""
        return self._observations

    def update(self, x: float) -> bool:
        """Watch one value; True when it raises an alarm (the tests then start afresh)."""
        score = self.reference.normal_score(x, _uniform(self._observations, self.seed))
        self._observations += 1
        self._recent.append(x)
        self.last_score = score
        self.serial.update(score)
        self.location.update(score)
        self.scale.update(score)
        alarmed = self._check()
        if self._observations % VARIANCE_FACTOR_EVERY == 0:
            self._apply_variance_factor()
        return alarmed

    def update_summary(self, sums: NumericSums, spread: int = 1) -> bool:
        """Watch a batch of values known by the sums of their scores; True on an alarm.

        The grouped form of :meth:`update` for a stream that comes as summaries
        (a two-stage worker's second stage): each test's sides take the walks
        of their increments over the batch in one step (see
        :meth:`~driftline.monitors.sequential.LocationCusum.update_sides`), and
        the serial estimate the summary's differences. An alarm comes at the
        end of the batch in which a test crossed its threshold; the change
        point is the first value of the batch in which the alarming test left
        zero. The summary's sample of raw values stands for the batch in the
        alarm's evidence.

        ``spread`` is how many partitions the stream's values are spread over
        at random (its events keyed by event id), one of which the summary's
        come from, in order: neighbours there are ``spread`` values apart on
        average, so their correlation is weaker than the stream's, and the
        serial correction takes the stream's (:func:`stream_rho`).

        >>> rng = np.random.default_rng(3)
        >>> detector = NumericDrift.from_reference_values(rng.normal(0, 1, 2_000), arl=1e6)
        >>> def summary(shift):
        ...     z = rng.normal(shift, 1, 100)
        ...     return NumericSums(count=100, total=z.sum(), squares=(z * z).sum(),
        ...                        differences=99, squared_differences=(np.diff(z) ** 2).sum(),
        ...                        location=detector.location_walks(z),
        ...                        scale=detector.scale_walks(z), sample=z[:8].tolist())
        >>> [detector.update_summary(summary(0.0)) for _ in range(50)].count(True)
        0
        >>> next(i for i in range(20) if detector.update_summary(summary(1.0)))
        0
        >>> detector.last_alarm.observation, detector.last_alarm.change_observation
        (5100, 5001)
        """
        halflife = SERIAL_HALFLIFE * spread
        if self.serial.observations == 0 and self.serial.halflife != halflife:
            # Its differences are of a partition's neighbours, ``spread`` events apart on
            # average: the estimate is kept in those terms, and for as many events.
            self.serial = SerialDependence(
                halflife=halflife,
                prior_rho=partition_rho(self.serial_rho, spread),
                prior_weight=self.serial.prior_weight,
            )
        self.serial.update_group(sums.differences, sums.squared_differences)
        self._apply_variance_factor(spread)
        self.location.update_sides(sums.count, sums.location)
        self.scale.update_sides(sums.count, sums.scale)
        self._observations += sums.count
        self._recent.extend(sums.sample)
        self.last_score = None
        if not (self.location.drift_detected or self.scale.drift_detected):
            return False
        cusum = self.location if self.location.drift_detected else self.scale
        since = self._observations - cusum.change_observation + 1
        return self._check(math.ceil(since * len(sums.sample) / sums.count))

    def location_walks(self, scores: ArrayLike) -> Sides:
        """The walks of the location test's sides over a batch's scores (see
        :meth:`update_summary`)."""
        up, down = self.location.group_sides(scores)
        return walk_of(up), walk_of(down)

    def scale_walks(self, scores: ArrayLike) -> Sides:
        """The walks of the scale test's sides over a batch's scores."""
        up, down = self.scale.group_sides(scores)
        return walk_of(up), walk_of(down)

    def update_many(self, xs: ArrayLike) -> list[int]:
        """Watch values in order; the 0-based indices of the alarms among them.

        Gives exactly the alarms (and the state) of calling :meth:`update` on
        each value, but computes the scores and the CUSUMs with numpy.
        """
        values = np.asarray(xs, dtype=np.float64)
        scores = self.scores_ahead(values)
        alarms: list[int] = []
        start = 0
        while start < len(values):
            hit = self.take_until_alarm(values[start:], scores[start:])
            if hit is None:
                break
            alarms.append(start + hit)
            start += hit + 1
        return alarms

    def scores_ahead(self, values: np.ndarray) -> np.ndarray:
        """The normal scores the next ``len(values)`` values will get, changing nothing.

        A value's score depends on its position in the stream (its tie-break
        uniform), never on alarms, so a batch can be scored once up front.
        """
        return self.reference.normal_scores(
            values, _uniforms(self._observations, len(values), self.seed)
        )

    @staticmethod
    def scores_ahead_together(
        detectors: Sequence["NumericDrift"], values: Sequence[np.ndarray], stack: ReferenceStack
    ) -> list[np.ndarray]:
        """:meth:`scores_ahead` of each detector on its own values, in one pass.

        ``stack`` holds the detectors' references in the same order (the
        caller builds it, and may keep it for as long as the references stay).
        """
        if any(a.reference is not b for a, b in zip(detectors, stack.references, strict=True)):
            raise ValueError("the stack must hold the detectors' own references, in order")
        counts = [len(column) for column in values]
        uniforms = _uniforms_of_streams(
            [detector._observations for detector in detectors],
            counts,
            [detector.seed for detector in detectors],
        )
        return stack.normal_scores(values, pieces(uniforms, counts))

    def take_until_alarm(self, values: np.ndarray, scores: np.ndarray) -> int | None:
        """Feed values (scored by :meth:`scores_ahead`) up to the first alarm; its index.

        Without an alarm every value is taken. After an alarm at index ``i``
        the detector is exactly as :meth:`update` would leave it after
        ``values[i]``: ``last_alarm`` describes it and the caller goes on
        from ``i + 1``, scoring nothing again.
        """
        start = 0
        while start < len(values):
            block_end = VARIANCE_FACTOR_EVERY - self._observations % VARIANCE_FACTOR_EVERY
            end = min(len(values), start + block_end)
            alarm = self._run_block(values, scores, start, end)
            if alarm is not None:
                return alarm
            start = end
        return None

    @staticmethod
    def take_together(
        detectors: Sequence["NumericDrift"],
        values: Sequence[np.ndarray],
        scores: Sequence[np.ndarray],
    ) -> list[int | None]:
        """:meth:`take_until_alarm` of each detector on its own values, run side by side.

        Every detector's values advance in one 2-D computation, whatever their
        number and wherever each detector is in its variance-factor blocks:
        a round takes each detector up to the end of its block or of its
        values, the shorter rows padded. Each stops at its own first alarm, in
        exactly the state :meth:`take_until_alarm` would leave; those with
        values left after their block go on in the next round.
        """
        results: list[int | None] = [None] * len(detectors)
        taken_so_far = [0] * len(detectors)
        active = [number for number, column in enumerate(values) if len(column)]
        while active:
            takes = [
                min(
                    len(values[n]) - taken_so_far[n],
                    VARIANCE_FACTOR_EVERY - detectors[n]._observations % VARIANCE_FACTOR_EVERY,
                )
                for n in active
            ]
            width = max(takes)
            pieces = [
                scores[n][taken_so_far[n] : taken_so_far[n] + t]
                for n, t in zip(active, takes, strict=True)
            ]
            if all(t == width for t in takes):
                blocks = np.vstack(pieces)
                lengths = None
            else:
                blocks = np.zeros((len(active), width))
                blocks[np.arange(width) < np.array(takes)[:, np.newaxis]] = np.concatenate(pieces)
                lengths = takes
            if not np.isfinite(blocks).all():
                raise ValueError("sequential detectors take finite values only")
            with np.errstate(over="ignore"):
                # A location CUSUM takes the scores, a scale CUSUM their squares.
                features = np.stack([blocks, blocks * blocks], axis=1).reshape(-1, width)
            firsts = advance_groups_on_features(
                [[detectors[n].location, detectors[n].scale] for n in active], features, lengths
            )
            quiet = [row for row, first in enumerate(firsts) if first is None]
            if quiet:
                everyone = len(quiet) == len(active)
                SerialDependence.update_together(
                    [detectors[active[row]].serial for row in quiet],
                    blocks if everyone else blocks[quiet],
                    None if lengths is None else [takes[row] for row in quiet],
                )
            going = []
            for row, (number, first) in enumerate(zip(active, firsts, strict=True)):
                detector, start = detectors[number], taken_so_far[number]
                taken = takes[row] if first is None else first + 1
                if first is not None:
                    detector.serial.update_many(scores[number][start : start + taken])
                if detector._taken(values[number], scores[number], start, taken):
                    results[number] = start + taken - 1
                elif start + taken < len(values[number]):
                    going.append(number)
                taken_so_far[number] = start + taken
            active = going
        return results

    def _taken(self, values: np.ndarray, scores: np.ndarray, start: int, count: int) -> bool:
        """Count ``count`` values from ``start`` as taken (the tests and the serial estimate
        already took them); whether the last raised an alarm."""
        self._observations += count
        self._recent.extend(values[start : start + count])
        self.last_score = float(scores[start + count - 1])
        alarmed = self._check()
        if self._observations % VARIANCE_FACTOR_EVERY == 0:
            self._apply_variance_factor()
        return alarmed

    def _run_block(
        self, values: np.ndarray, scores: np.ndarray, start: int, end: int
    ) -> int | None:
        """Feed ``scores[start:end]``, all within one variance-factor block; stop at an alarm."""
        block = scores[start:end]
        first = advance_together([self.location, self.scale], [block, block])
        if first is not None:
            block = block[: first + 1]
        self.serial.update_many(block)
        alarmed = self._taken(values, scores, start, len(block))
        return start + len(block) - 1 if alarmed else None

    def _check(self, recent: int | None = None) -> bool:
        """Record an alarm if a test crossed; start both tests afresh after one.

        The alarm's evidence holds the values since the change point, or the
        last ``recent`` values kept when given.
        """
        fired: tuple[str, LocationCusum | ScaleCusum] | None = None
        if self.location.drift_detected:
            fired = ("location_cusum", self.location)
        elif self.scale.drift_detected:
            fired = ("scale_cusum", self.scale)
        if fired is None:
            return False
        test, cusum = fired
        since = max(1, self._observations - cusum.change_observation + 1)
        kept = self._recent.last(since if recent is None else max(recent, 1)).tolist()
        self.last_alarm = DriftAlarm(
            test=test,
            direction="up" if cusum.direction > 0 else "down",
            statistic=cusum.statistic,
            threshold=cusum.threshold,
            arl=self.arl * self.TESTS,
            observation=self._observations,
            change_observation=cusum.change_observation,
            current=tuple(kept),
        )
        self.location.reset()
        self.scale.reset()
        return True

    def to_state(self, *, with_reference: bool = True) -> State:
        """Everything the detector needs to go on, as plain JSON-ready data (no pickle).

        Without ``with_reference`` the reference sketch is left out, for an
        owner that keeps it anyway (a model monitor keeps its profile): give
        it back to :meth:`from_state`. Recent values are packed exactly
        (see :mod:`driftline.monitors.packing`).
        """
        state: State = {
            "arl": self.arl,
            "shift": self.shift,
            "ratio": self.ratio,
            "serial_rho": self.serial_rho,
            "seed": self.seed,
            "history": self.history,
            "location": self.location.to_state(),
            "scale": self.scale.to_state(),
            "serial": self.serial.to_state(),
            "observations": self._observations,
            "recent": pack_floats(self._recent.values()),
            "last_score": self.last_score,
        }
        if with_reference:
            state["reference"] = self.reference.to_sketch().model_dump(mode="json")
        return state

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], reference: NumericReference | None = None
    ) -> "NumericDrift":
        """The detector :meth:`to_state` described, going on exactly where it was.

        ``reference`` is the one the detector had, for a state written
        without it; by default the state's own.
        """
        if reference is None:
            reference = NumericReference.from_sketch(
                NumericSketch.model_validate(state["reference"])
            )
        detector = cls(
            reference,
            arl=state["arl"],
            shift=state["shift"],
            ratio=state["ratio"],
            serial_rho=state["serial_rho"],
            seed=state["seed"],
            history=state["history"],
        )
        detector.location = LocationCusum.from_state(state["location"])
        detector.scale = ScaleCusum.from_state(state["scale"])
        detector.serial = SerialDependence.from_state(state["serial"])
        detector._observations = int(state["observations"])
        detector._recent.extend(unpack_floats(state["recent"]))
        detector.last_score = state["last_score"]
        return detector

    def _apply_variance_factor(self, spread: int = 1) -> None:
        rho = stream_rho(self.serial.rho, spread)
        self.location.variance_factor = (1 + rho) / (1 - rho)
        self.scale.variance_factor = (1 + rho * rho) / (1 - rho * rho)

    def distances(self, current: ArrayLike) -> dict[str, float]:
        """How far ``current`` values lie from the reference: KS, PSI and Wasserstein.

        KS and PSI are computed on the values' reference CDF (uniform under no
        change; PSI over ten reference deciles), Wasserstein in the feature's
        own units from the quantile functions.
        """
        values = np.asarray(current, dtype=np.float64)
        if len(values) == 0:
            return {}
        u = self.reference.pit_many(values, np.full(len(values), 0.5))
        ks_statistic, ks_p_value = ks_uniform(u)
        shares = np.histogram(u, bins=10, range=(0.0, 1.0))[0] / len(u)
        shares = np.clip(shares, 1e-4, None)
        psi = float(np.sum((shares - 0.1) * np.log(shares / 0.1)))
        grid = (np.arange(100) + 0.5) / 100
        reference_quantiles = np.asarray(self.reference.quantiles(grid.tolist()))
        wasserstein = float(np.mean(np.abs(np.quantile(values, grid) - reference_quantiles)))
        return {
            "ks": ks_statistic,
            "ks_p_value": ks_p_value,
            "psi": psi,
            "wasserstein": wasserstein,
        }


class CategoricalDrift:
    """Drift of one categorical feature: a two-sided Bernoulli CUSUM per category.

    The ``max_tracked`` most common reference categories are tracked one by
    one; every other value, unseen categories included, counts for one
    more group, "(other)". Each group's share is watched for a rise by
    ``ratio`` and a fall by ``1 / ratio``; the ``2 * groups`` one-sided
    tests share the feature's false-alarm budget ``arl``.

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> names = ["a", "b", "c", "d", "e"]
    >>> before = [0.2, 0.2, 0.2, 0.2, 0.2]
    >>> after = [0.35, 0.1625, 0.1625, 0.1625, 0.1625]
    >>> reference = rng.choice(names, 2_000, p=before).tolist()
    >>> detector = CategoricalDrift.from_reference_values(reference, arl=1e6)
    >>> stream = rng.choice(names, 5_000, p=before).tolist() + rng.choice(
    ...     names, 3_000, p=after).tolist()
    >>> [i for i, value in enumerate(stream) if detector.update(value)][:1]
    [5286]
    >>> detector.last_alarm.direction
    'a up'
    """

    OTHER = "(other)"

    def __init__(
        self,
        reference: CategoricalReference,
        *,
        arl: float,
        ratio: float = 1.5,
        max_tracked: int = 20,
        history: int = 512,
    ) -> None:
        self.reference = reference
        self.arl = arl
        self.ratio = ratio
        self.max_tracked = max_tracked
        self.history = history
        shares = reference.shares
        tracked = sorted((c for c in shares if shares[c] > 0), key=lambda c: (-shares[c], c))
        self.tracked = tracked[:max_tracked]
        floor = 0.5 / max(reference.count, 1)
        other = max(1.0 - sum(shares[c] for c in self.tracked), floor)
        groups = [*self.tracked, self.OTHER]
        probabilities = [*(shares[c] for c in self.tracked), other]
        self.test_arl = arl * 2 * len(groups)
        threshold = lorden_threshold(self.test_arl)
        self.cusums = {
            group: BernoulliCusum(
                p0=min(max(p, floor), 1 - floor), threshold=threshold, ratio=ratio
            )
            for group, p in zip(groups, probabilities, strict=True)
        }
        self._tracked = frozenset(self.tracked)
        self._observations = 0
        self._recent: deque[str] = deque(maxlen=history)
        self.last_alarm: DriftAlarm | None = None

    @classmethod
    def from_reference_values(
        cls, values: list[str], *, arl: float, seed: int = 0, **options: Any
    ) -> "CategoricalDrift":
        """A detector whose reference is these values; ``seed`` is accepted for symmetry."""
        return cls(CategoricalReference.from_values(values), arl=arl, **options)

    @property
    def pressure(self) -> float:
        """The largest statistic over its threshold among the categories' tests."""
        return max((c.statistic / c.threshold for c in self.cusums.values()), default=0.0)

    @property
    def observations(self) -> int:
        """Values seen so far."""
        return self._observations

    def group_of(self, category: str) -> str:
        """The group a category counts in: itself when tracked, else "(other)"."""
        return category if category in self._tracked else self.OTHER

    def update(self, category: str) -> bool:
        """Watch one value; True when it raises an alarm (all groups then start afresh)."""
        self._observations += 1
        self._recent.append(category)
        group = self.group_of(category)
        fired: str | None = None
        for name, cusum in self.cusums.items():
            cusum.update(1 if name == group else 0)
            if fired is None and cusum.drift_detected:
                fired = name
        if fired is None:
            return False
        self._fire(fired)
        return True

    def update_counts(self, sums: CategorySums) -> bool:
        """Watch a batch of values known by their groups' counts; True on an alarm.

        The grouped form of :meth:`update` (see
        :meth:`NumericDrift.update_summary`): each group's test takes its count
        among the batch's values in one step. Groups are this detector's
        (:meth:`group_of`); a count of any other is refused.

        >>> rng = np.random.default_rng(4)
        >>> reference = rng.choice(["a", "b"], 2_000, p=[0.8, 0.2]).tolist()
        >>> detector = CategoricalDrift.from_reference_values(reference, arl=1e6)
        >>> def summary(share):
        ...     values = rng.choice(["a", "b"], 100, p=[1 - share, share]).tolist()
        ...     return CategorySums(counts={"a": values.count("a"), "b": values.count("b")},
        ...                         walks=detector.walks(values))
        >>> [detector.update_counts(summary(0.2)) for _ in range(50)].count(True)
        0
        >>> next(i for i in range(20) if detector.update_counts(summary(0.4)))
        0
        >>> detector.last_alarm.direction, detector.last_alarm.change_observation
        ('a down', 5001)
        """
        unknown = sums.counts.keys() - self.cusums.keys()
        if unknown:
            raise ValueError(f"counts of groups this detector does not have: {sorted(unknown)}")
        if sums.walks.keys() != self.cusums.keys():
            raise ValueError("the walks of every group's test are needed")
        count = sums.count
        if count == 0:
            return False
        fired: str | None = None
        best = 0.0
        for name, cusum in self.cusums.items():
            cusum.update_sides(count, sums.walks[name])
            if cusum.drift_detected and cusum.statistic / cusum.threshold > best:
                fired, best = name, cusum.statistic / cusum.threshold
        self._observations += count
        self._recent.extend(sums.sample)
        if fired is None:
            return False
        since = self._observations - self.cusums[fired].change_observation + 1
        self._fire(fired, math.ceil(since * len(sums.sample) / count))
        return True

    def walks(self, categories: Sequence[str]) -> dict[str, Sides]:
        """The walks of every group's test over a batch's values (see :meth:`update_counts`)."""
        codes = self._group_codes(categories)
        found = {}
        for number, (group, cusum) in enumerate(self.cusums.items()):
            up, down = cusum.group_sides(codes == number)
            found[group] = (walk_of(up), walk_of(down))
        return found

    def _group_codes(self, categories: Sequence[str]) -> np.ndarray:
        """Each value's group, by its place in ``cusums``."""
        index = {group: number for number, group in enumerate(self.cusums)}
        other = index[self.OTHER]
        return np.fromiter(
            (index[c] if c in self._tracked else other for c in categories),
            dtype=np.int64,
            count=len(categories),
        )

    def take_until_alarm(self, categories: Sequence[str]) -> int | None:
        """Feed values in order up to the first alarm; its index, or None if all were taken.

        Exactly what :meth:`update` value by value does, with each group's
        CUSUM run on its column of 0/1 indicators by numpy: the group that
        alarms first (the earlier one in ``cusums`` on a tie) wins, the others
        are rewound to that value, and all then start afresh.
        """
        if not categories:
            return None
        codes = self._group_codes(categories)
        groups = list(self.cusums.values())
        first = advance_together(groups, [codes == number for number in range(len(groups))])
        if first is None:
            self._observations += len(codes)
            self._recent.extend(categories)
            return None
        fired = next(name for name, cusum in self.cusums.items() if cusum.drift_detected)
        self._observations += first + 1
        self._recent.extend(categories[: first + 1])
        self._fire(fired)
        return first

    def _fire(self, name: str, recent: int | None = None) -> None:
        """Record the alarm of group ``name``'s CUSUM; start every group afresh.

        The evidence holds the values since the change point, or the last
        ``recent`` values kept when given.
        """
        cusum = self.cusums[name]
        since = max(1, self._observations - cusum.change_observation + 1)
        if recent is not None:
            since = max(recent, 1)
        self.last_alarm = DriftAlarm(
            test="category_cusum",
            direction=f"{name} {'up' if cusum.direction > 0 else 'down'}",
            statistic=cusum.statistic,
            threshold=cusum.threshold,
            arl=self.test_arl,
            observation=self._observations,
            change_observation=cusum.change_observation,
            current=tuple(list(self._recent)[-since:]),
        )
        for each in self.cusums.values():
            each.reset()

    def to_state(self, *, with_reference: bool = True) -> State:
        """Everything the detector needs to go on, as plain JSON-ready data (no pickle).

        Without ``with_reference`` the reference counts are left out, for an
        owner that keeps them anyway: give them back to :meth:`from_state`.
        """
        state: State = {
            "arl": self.arl,
            "ratio": self.ratio,
            "max_tracked": self.max_tracked,
            "history": self.history,
            "cusums": {group: cusum.to_state() for group, cusum in self.cusums.items()},
            "observations": self._observations,
            "recent": list(self._recent),
        }
        if with_reference:
            state["reference"] = self.reference.to_counts().model_dump(mode="json")
        return state

    @classmethod
    def from_state(
        cls, state: Mapping[str, Any], reference: CategoricalReference | None = None
    ) -> "CategoricalDrift":
        """The detector :meth:`to_state` described, going on exactly where it was.

        ``reference`` is the one the detector had, for a state written
        without it; by default the state's own.
        """
        if reference is None:
            reference = CategoricalReference.from_counts(
                CategoricalCounts.model_validate(state["reference"])
            )
        detector = cls(
            reference,
            arl=state["arl"],
            ratio=state["ratio"],
            max_tracked=state["max_tracked"],
            history=state["history"],
        )
        detector.cusums = {
            group: BernoulliCusum.from_state(cusum) for group, cusum in state["cusums"].items()
        }
        detector._observations = int(state["observations"])
        detector._recent.extend(str(c) for c in state["recent"])
        return detector

    def current_shares(self, current: tuple[Any, ...]) -> dict[str, float]:
        """The share of each group among ``current`` values."""
        counts: dict[str, int] = {}
        for category in current:
            group = self.group_of(str(category))
            counts[group] = counts.get(group, 0) + 1
        total = max(len(current), 1)
        return {group: counts.get(group, 0) / total for group in self.cusums}

    def reference_shares(self) -> dict[str, float]:
        """The reference share of each group."""
        shares = self.reference.shares
        tracked = {c: shares[c] for c in self.tracked}
        return {**tracked, self.OTHER: max(0.0, 1.0 - sum(tracked.values()))}

    def distances(self, current: tuple[Any, ...]) -> dict[str, float]:
        """PSI, Jensen-Shannon distance and chi-square p-value of ``current`` vs the reference."""
        if not current:
            return {}
        expected = np.clip(np.array(list(self.reference_shares().values())), 1e-4, None)
        expected = expected / expected.sum()
        observed_shares = np.array(list(self.current_shares(current).values()))
        observed = np.clip(observed_shares, 1e-4, None)
        psi = float(np.sum((observed - expected) * np.log(observed / expected)))
        mixture = (observed + expected) / 2
        js = float(
            np.sqrt(
                0.5 * np.sum(observed * np.log2(observed / mixture))
                + 0.5 * np.sum(expected * np.log2(expected / mixture))
            )
        )
        counts = observed_shares * len(current)
        chi2 = stats.chisquare(counts, expected * counts.sum())
        return {"psi": psi, "jensen_shannon": js, "chi2_p_value": float(chi2.pvalue)}


def partition_rho(rho: float, spread: int) -> float:
    """The lag-1 correlation within one of ``spread`` partitions a stream is spread over at
    random, for an AR(1)-like stream correlated at ``rho``: neighbours there are ``k`` apart
    with probability ``(1 - 1/spread)**(k - 1) / spread``, so it is ``(rho / spread) / (1 -
    rho (1 - 1/spread))``.

    >>> round(partition_rho(0.9, 8), 3), partition_rho(0.5, 1)
    (0.529, 0.5)
    """
    return (rho / spread) / (1.0 - rho * (1.0 - 1.0 / spread))


def stream_rho(rho: float, spread: int) -> float:
    """The stream's lag-1 correlation from one partition's (the inverse of
    :func:`partition_rho`), at most ``MAX_RHO``.

    >>> round(stream_rho(partition_rho(0.9, 8), 8), 6)
    0.9
    """
    return min(spread * rho / (1.0 + rho * (spread - 1)), MAX_RHO)


def walk_of(side: GroupSide) -> Walk:
    """A test side's walk over a batch, as a summary carries it."""
    return Walk(*side)


_STATEFUL: tuple[type[Stateful], ...] = (NumericDrift, CategoricalDrift)
"""The drift detectors here, held by the type checker to the state protocol (:class:`Stateful`)."""
