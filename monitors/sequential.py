"""Sequential change detectors: likelihood-ratio CUSUMs on normal scores.

Live feature values arrive here as normal scores ``z``: independent N(0, 1)
values as long as nothing changed. Each detector runs one-sided CUSUMs
(Page, 1954), two or one, of the log-likelihood ratio of an alternative
against that null: a shift of the mean (:class:`LocationCusum`), of the variance
(:class:`ScaleCusum`), of a category's share (:class:`BernoulliCusum`), or an
inflation of a chi-squared statistic of several features at once
(:class:`ChiSquareCusum`). A side's statistic ``S`` follows

    S_t = max(0, S_{t-1} + l_t)

where ``l_t`` is the log-likelihood ratio of the t-th value, and alarms when
it rises above the threshold ``h``. Thresholds come from the in-control
average run length ARL0 wanted, the expected number of values between false
alarms: :func:`location_threshold` for :class:`LocationCusum` (Siegmund's
approximation), :func:`lorden_threshold` for the others (a bound). Positive
serial correlation of the scores shortens the run length;
:class:`SerialDependence` estimates it, and its ``variance_factor`` restores
the calibration.

Arithmetic is exact. Each increment is rounded to a multiple of 2**-32 (far
below any statistical effect) and the statistics are kept as integer counts
of that unit, so sums do not depend on the order in which they are formed:
``update_many`` (vectorised) and ``update`` (one value at a time) agree to the
bit, and a state restored from JSON continues exactly where it stopped.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from itertools import chain, repeat
from math import isfinite
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from driftline.monitors.state import (
    State,
    Stateful,
    check_header,
    header,
    integer_field,
    is_integer,
    number_field,
)

_UNIT = 2**32
"""Integer ticks per unit of log-likelihood ratio."""

_STEP_LIMIT = 2.0**10
"""Largest increment, in absolute value, one value can make (ticks stay bounded)."""

_CEILING = 2**28 * _UNIT
"""Largest statistic, in ticks: it saturates there, far above any threshold."""

_BLOCK = 2**15
"""Values per vectorised block: |cumulative sums| stay below 2**57 ticks."""

_FIRST_BLOCK = 2**10
"""Values in the first block; blocks double up to ``_BLOCK``, so an early alarm is cheap."""

MAX_THRESHOLD = 1e6
"""Largest threshold a detector takes."""

MAX_RHO = 0.95
"""Largest lag-1 autocorrelation :class:`SerialDependence` reports."""

SERIAL_HALFLIFE = 1000.0
"""Values after which a difference weighs half as much in :class:`SerialDependence`, unless told."""

MAX_SQUARED_DIFFERENCE = 64.0
"""Squared differences :class:`SerialDependence` caps (|difference| 8, 5.7 sd under no change)."""

_SIEGMUND = 1.166
"""Siegmund's correction for the overshoot of a Gaussian random walk over a barrier."""


@lru_cache(maxsize=256)
def location_threshold(arl: float, shift: float, *, sides: int = 1) -> float:
    """The threshold ``h`` of a Gaussian CUSUM with in-control average run length ``arl``.

    The CUSUM sums the log-likelihood ratios ``shift * z - shift**2 / 2`` of
    N(``shift``, 1) against N(0, 1). Siegmund's corrected Brownian-motion
    approximation of its ARL0,

        ARL0 = (exp(h + 1.166 shift) - h - 1.166 shift - 1) / (shift**2 / 2),

    is solved for ``h`` (Siegmund, 1985), once for each set of arguments
    (a model's features share theirs); simulated, it is within 5% for
    shifts of 0.25 to 1 at an ARL0 of 2,000. ``sides`` one-sided CUSUMs that alarm
    together (two in :class:`LocationCusum`) alarm about ``sides`` times as
    often as one, so each gets ``sides * arl``.

    >>> round(location_threshold(4e6, 0.5), 3)
    12.539
    >>> round(location_threshold(4e6, 0.5, sides=2), 3)
    13.233
    """
    _check_arl(arl, sides)
    if not (math.isfinite(shift) and shift > 0.0):
        raise ValueError(f"shift must be a positive number, got {shift!r}")
    target = arl * sides
    correction = _SIEGMUND * shift

    def excess(h: float) -> float:
        b = h + correction
        return (math.expm1(b) - b) / (shift**2 / 2.0) - target

    if excess(0.0) >= 0.0:
        return 0.0
    high = 1.0
    while excess(high) < 0.0:
        high *= 2.0
    return float(brentq(excess, 0.0, high, xtol=1e-12, rtol=4 * np.finfo(float).eps))


def lorden_threshold(arl: float, *, sides: int = 1) -> float:
    """The threshold ``h = log(sides * arl)`` that guarantees an ARL0 of at least ``arl``.

    For a CUSUM of exact log-likelihood ratios of independent values, the
    likelihood ratio is a martingale under no change, so the Shiryaev-Roberts
    statistic less the time is one too; the CUSUM crossing ``h`` implies it
    crossed ``e**h``, hence ARL0 >= e**h (Lorden, 1971). For ``sides``
    CUSUMs alarming together the same argument on the sum of their statistics
    gives ARL0 >= e**h / ``sides``. Increments divided by a variance factor
    of 1 or more keep the bound (by Jensen's inequality). The true ARL0 is
    larger, often several times: the bound ignores the overshoot over ``h``.

    >>> round(lorden_threshold(4e6, sides=2), 3)
    15.895
    """
    _check_arl(arl, sides)
    return math.log(arl) + math.log(sides)


def _check_arl(arl: float, sides: int) -> None:
    if not (math.isfinite(arl) and arl > 1.0):
        raise ValueError(f"arl must be a finite number of values above 1, got {arl!r}")
    if sides < 1:
        raise ValueError(f"sides must be a positive count, got {sides!r}")


class GroupSide(NamedTuple):
    """The walk of one CUSUM side's increments over a group of values: ``C_k``, the sum of
    the first ``k`` (``C_0 = 0``).

    ``total`` is ``C_n``, ``highest`` the largest ``C_k`` (``k >= 1``), ``lowest``
    the smallest ``C_k`` with ``C_0`` among them (never above 0), and ``climb``
    the largest rise ``C_k - C_j`` with ``j <= k`` (never below 0).
    """

    total: float
    highest: float
    lowest: float
    climb: float


class _Cusum(ABC):
    """One-sided log-likelihood-ratio CUSUMs on one stream, alarming together.

    Subclasses give each side's increment as ``a * g(x) + b`` through
    ``_coefficients`` and ``_feature``/``_features`` (``g``), and the sign of
    each side's change in ``_DIRECTIONS``.
    """

    _DIRECTIONS: ClassVar[tuple[int, ...]]
    _PARAMETERS: ClassVar[tuple[str, ...]]

    def __init__(self, threshold: float) -> None:
        if not (math.isfinite(threshold) and 0.0 < threshold <= MAX_THRESHOLD):
            raise ValueError(f"threshold must be in (0, {MAX_THRESHOLD:g}], got {threshold!r}")
        self.threshold = threshold
        self._limit = math.floor(threshold * _UNIT)
        self._coefficients: tuple[tuple[float, float], ...] = ()
        sides = len(self._DIRECTIONS)
        self._sums: list[int] = [0] * sides
        self._starts: list[int | None] = [None] * sides
        self._observations = 0
        self._drift_detected = False
        self._direction = 0
        self._change_observation = 0

    @abstractmethod
    def _feature(self, x: float) -> float:
        """``g(x)`` of one value, refusing values the detector cannot take."""

    @abstractmethod
    def _features(self, xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``g`` of many values, as :meth:`_feature` computes it for each."""

    def update(self, x: float) -> None:
        """Feed one value; ``drift_detected`` then says whether it raised an alarm."""
        g = self._feature(x)
        ticks = []
        for a, b in self._coefficients:
            step = a * g + b
            step = min(max(step, -_STEP_LIMIT), _STEP_LIMIT)
            ticks.append(round(step * _UNIT))
        self._advance(ticks)

    @property
    def _raw_coefficients(self) -> tuple[tuple[float, float], ...]:
        """Each side's ``(a, b)`` before any division (see :class:`_DividedCusum`)."""
        return self._coefficients

    @property
    def _divisor(self) -> float:
        """What the raw increments are divided by (1 here; see :class:`_DividedCusum`)."""
        return 1.0

    def group_sides(self, g: npt.ArrayLike) -> list[GroupSide]:
        """How a group of values, by their ``g``, would move each side, in any state.

        The walk of a side's raw increments ``a * g + b`` over the group,
        known by four numbers (:class:`GroupSide`), is all a CUSUM needs to
        learn what the group does to it from wherever it starts (see
        :meth:`update_sides`). What a two-stage worker's first stage sends for
        each test; the detector's own statistics are left as they are.

        >>> cusum = LocationCusum(threshold=5.0, shift=1.0)
        >>> [tuple(map(float, side)) for side in cusum.group_sides([3.0, -2.0, 4.0])]
        [(3.5, 3.5, 0.0, 3.5), (-6.5, -2.0, -6.5, 1.5)]
        """
        values = self._features(g)
        if not values.size:
            raise ValueError("a group holds at least one value")
        sides = []
        with np.errstate(over="ignore", invalid="ignore"):
            for a, b in self._raw_coefficients:
                walk = np.cumsum(np.clip(a * values + b, -_STEP_LIMIT, _STEP_LIMIT))
                lows = np.minimum.accumulate(np.minimum(walk, 0.0))
                sides.append(
                    GroupSide(
                        total=float(walk[-1]),
                        highest=float(walk.max()),
                        lowest=float(lows[-1]),
                        climb=float((walk - lows).max()),
                    )
                )
        return sides

    def update_sides(self, count: int, sides: Sequence[Sequence[float]]) -> None:
        """Feed a group of ``count`` values known by :meth:`group_sides` (each side's
        walk as a :class:`GroupSide`, or any four numbers in its order, as a summary's
        walks come).

        Exactly what value by value would do to the sides' highs within the
        group: with ``S`` a side's statistic before it, the highest it reaches
        is ``max(S + highest, climb)`` and it ends at ``max(S + total, total -
        lowest)``. So the test alarms in the group in which it would have
        crossed value by value (it reports it at the group's end), and ends
        it where value by value would, unless it alarmed (the caller then
        starts afresh, as after any alarm). A side that left zero in the
        group is taken to have left it at the group's first value. Any
        division of the increments (a variance factor) applies here.

        >>> one, grouped = LocationCusum(5.0, shift=1.0), LocationCusum(5.0, shift=1.0)
        >>> for x in [0.5, 3.0, -2.0, 4.0]:
        ...     one.update(x)
        >>> grouped.update_sides(1, grouped.group_sides([0.5]))
        >>> grouped.update_sides(3, grouped.group_sides([3.0, -2.0, 4.0]))
        >>> (grouped.drift_detected, grouped.statistic) == (one.drift_detected, one.statistic)
        True
        """
        if not (is_integer(count) and count >= 1):
            raise ValueError(f"count must be a positive number of values, got {count!r}")
        if len(sides) != len(self._DIRECTIONS):
            raise ValueError(f"{len(sides)} sides given to a test of {len(self._DIRECTIONS)}")
        scale = 1.0 / self._divisor
        first = self._observations + 1
        alarm, best, limit = -1, 0.0, self._limit
        sums, starts = self._sums, self._starts
        changes: list[tuple[int, int, int | None]] = []
        for number, (total, highest, lowest, climb) in enumerate(sides):
            total, highest, lowest, climb = (
                total * scale,
                highest * scale,
                lowest * scale,
                climb * scale,
            )
            if not (isfinite(total) and isfinite(highest) and isfinite(lowest) and isfinite(climb)):
                raise ValueError(f"sequential detectors take finite values only, got {sides!r}")
            old = sums[number]
            start = old / _UNIT
            peak = round(max(start + highest, climb) * _UNIT)
            end = round(max(start + total, total - lowest) * _UNIT)
            if end <= 0:
                changes.append((number, 0, None))
            else:
                left_zero = not (old > 0 and start + total >= total - lowest)
                changes.append((number, min(end, _CEILING), first if left_zero else starts[number]))
            if old <= limit < peak and peak / limit > best:
                alarm, best = number, peak / limit
        for number, total_ticks, started in changes:  # every side checked before any moved
            sums[number], starts[number] = total_ticks, started
        self._observations += count
        self._record(alarm)

    def _advance(self, ticks: Sequence[int]) -> None:
        """One step of every side, by increments already in ticks."""
        self._observations += 1
        alarm = -1
        for side, tick in enumerate(ticks):
            old = self._sums[side]
            new = old + tick
            if new <= 0:
                new = 0
                self._starts[side] = None
            else:
                new = min(new, _CEILING)
                if old == 0:
                    self._starts[side] = self._observations
            self._sums[side] = new
            if alarm < 0 and old <= self._limit < new:
                alarm = side
        self._record(alarm)

    def _record(self, alarm: int) -> None:
        self._drift_detected = alarm >= 0
        if self._drift_detected:
            self._direction = self._DIRECTIONS[alarm]
            # A side above its threshold is above zero, so it has a start.
            self._change_observation = self._starts[alarm] or 0

    def update_many(self, xs: npt.ArrayLike) -> int | None:
        """Feed values in order up to the first alarm; return its index in ``xs``, if any.

        After an alarm at index ``i`` the detector is exactly as repeated
        :meth:`update` calls would leave it right after ``xs[i]``: the caller
        reads the alarm, may :meth:`reset`, and continues from ``xs[i + 1:]``.
        Without an alarm all values are taken. Values are all checked before
        any is taken.
        """
        g = self._features(xs)
        begin, size = 0, _FIRST_BLOCK
        while begin < len(g):
            index = self._block(g[begin : begin + size])
            if index is not None:
                return begin + index
            begin += size
            size = min(2 * size, _BLOCK)
        return None

    def _block(self, g: npt.NDArray[np.float64]) -> int | None:
        """:meth:`update_many` on at most ``_BLOCK`` values, by cumulative sums.

        With ``C`` the cumulative sum of a side's increments and ``S0`` its
        statistic before the block, the statistic after ``t`` values is
        ``C_t - min(-S0, min_{s<=t} C_s)``: it resets to zero exactly where
        ``C`` reaches a new low.
        """
        ticks = []
        with np.errstate(over="ignore", invalid="ignore"):
            for a, b in self._coefficients:
                steps = np.clip(a * g + b, -_STEP_LIMIT, _STEP_LIMIT)
                ticks.append(np.rint(steps * _UNIT).astype(np.int64))
        sums = []
        for side, tick in enumerate(ticks):
            cumulative = np.cumsum(tick)
            low = np.minimum.accumulate(cumulative)
            np.minimum(low, -self._sums[side], out=low)
            sums.append(cumulative - low)
        if any(int(s.max()) > _CEILING for s in sums):
            return self._stepwise(ticks)
        first, alarm = len(g), -1
        for side, s in enumerate(sums):
            above = s > self._limit
            crossed = above.copy()
            crossed[0] &= self._sums[side] <= self._limit
            crossed[1:] &= ~above[:-1]
            hits = np.flatnonzero(crossed[:first])
            if hits.size:
                first, alarm = int(hits[0]), side
        last = first if alarm >= 0 else len(g) - 1
        before = self._observations
        for side, s in enumerate(sums):
            now = int(s[last])
            if now == 0:
                self._starts[side] = None
            else:
                zeros = np.flatnonzero(s[:last] == 0)
                if zeros.size:
                    self._starts[side] = before + int(zeros[-1]) + 2
                elif self._sums[side] == 0:
                    self._starts[side] = before + 1
            self._sums[side] = now
        self._observations = before + last + 1
        self._record(alarm)
        return first if alarm >= 0 else None

    def _stepwise(self, ticks: list[npt.NDArray[np.int64]]) -> int | None:
        """The block one value at a time: a statistic reached the ceiling."""
        for index, step in enumerate(zip(*(t.tolist() for t in ticks), strict=True)):
            self._advance(step)
            if self._drift_detected:
                return index
        return None

    def reset(self) -> None:
        """Restart every side from zero, as after an alarm; ``observations`` keeps counting."""
        self._sums = [0] * len(self._sums)
        self._starts = [None] * len(self._starts)
        self._drift_detected = False
        self._direction = 0
        self._change_observation = 0

    @property
    def drift_detected(self) -> bool:
        """Whether the last update took a side from at or below the threshold to above it.

        A caller that resets after each alarm sees one alarm per crossing; one
        that does not sees a lasting change once, until its side falls back.
        """
        return self._drift_detected

    @property
    def direction(self) -> int:
        """+1 if the latest alarm was of an increase, -1 of a decrease, 0 before any."""
        return self._direction

    @property
    def statistic(self) -> float:
        """The largest side's statistic, in units of log-likelihood ratio."""
        return max(self._sums) / _UNIT

    @property
    def observations(self) -> int:
        """How many values this detector has taken."""
        return self._observations

    @property
    def change_observation(self) -> int:
        """The estimated first observation after the change, from the latest alarm.

        It is the (1-based) observation at which the alarming side last left
        zero: the maximum-likelihood change point under the alternative the
        side tests. 0 before any alarm, and after :meth:`reset`.
        """
        return self._change_observation

    def to_state(self) -> State:
        """Everything that decides future alarms, as JSON-serialisable values."""
        state = header(type(self).__name__)
        for name in self._PARAMETERS:
            state[name] = getattr(self, name)
        state.update(
            sums=list(self._sums),
            starts=list(self._starts),
            observations=self._observations,
            drift_detected=self._drift_detected,
            direction=self._direction,
            change_observation=self._change_observation,
        )
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The detector :meth:`to_state` described; it behaves exactly as the original."""
        check_header(state, cls.__name__)
        parameters: dict[str, Any] = {name: state.get(name) for name in cls._PARAMETERS}
        try:
            detector = cls(**parameters)
        except (TypeError, OverflowError) as error:
            # The constructor refuses bad values itself (ValueError); values of the
            # wrong type, or integers too large for a float, fail in its arithmetic.
            raise ValueError(f"state: invalid parameters {parameters!r}") from error
        sides = len(cls._DIRECTIONS)
        sums, starts = state.get("sums"), state.get("starts")
        observations = integer_field(state, "observations")
        if not (isinstance(sums, list) and isinstance(starts, list)):
            raise ValueError("state: sums and starts must be lists")
        if len(sums) != sides or len(starts) != sides:
            raise ValueError(f"state: sums and starts must have {sides} entries")
        for value, start in zip(sums, starts, strict=True):
            if not (is_integer(value) and 0 <= value <= _CEILING):
                raise ValueError(f"state: statistic out of range: {value!r}")
            valid_start = is_integer(start) and 1 <= start <= observations
            if (start is None) != (value == 0) or not (start is None or valid_start):
                raise ValueError(f"state: start {start!r} does not fit statistic {value!r}")
        direction = integer_field(state, "direction", minimum=-1)
        if direction not in (0, *cls._DIRECTIONS):
            raise ValueError(f"state: direction must be 0 or a side's sign, got {direction!r}")
        change = integer_field(state, "change_observation")
        if change > observations or (change == 0) != (direction == 0):
            raise ValueError(f"state: change_observation {change!r} does not fit the alarm")
        drift_detected = state.get("drift_detected")
        if not isinstance(drift_detected, bool):
            raise ValueError("state: drift_detected must be true or false")
        detector._sums = [int(value) for value in sums]
        detector._starts = [None if start is None else int(start) for start in starts]
        detector._observations = observations
        detector._drift_detected = drift_detected
        detector._direction = direction
        detector._change_observation = change
        return detector


def advance_together(cusums: Sequence[_Cusum], values: Sequence[npt.ArrayLike]) -> int | None:
    """Feed several CUSUMs the same observations up to the first alarm of any of them.

    ``values[i]`` holds what ``cusums[i]`` takes of each observation, as its
    :meth:`~_Cusum.update_many` would. Returns the index of the first
    observation at which a side of any CUSUM crossed its threshold, or None
    once all are taken. Every CUSUM is then exactly as :meth:`~_Cusum.update`,
    observation by observation up to and including that one, leaves it (so
    more than one may report ``drift_detected``). All sides run as one 2-D
    numpy computation: the cost of one CUSUM, not of each.

    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> z = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 1000)])
    >>> location = LocationCusum(threshold=location_threshold(4e6, 0.5))
    >>> scale = ScaleCusum(threshold=lorden_threshold(4e6))
    >>> advance_together([location, scale], [z, z])
    1025
    >>> location.drift_detected, scale.drift_detected, scale.observations
    (True, False, 1026)
    """
    arrays = [np.asarray(v) for v in values]
    size = len(arrays[0]) if arrays else 0
    if any(len(v) != size for v in arrays):
        raise ValueError("advance_together takes the same number of observations for each CUSUM")
    begin = 0
    while begin < size:
        end = min(size, begin + _BLOCK)
        hit = advance_groups([cusums], [[v[begin:end] for v in arrays]])[0]
        if hit is not None:
            return begin + hit
        begin = end
    return None


def advance_groups(
    groups: Sequence[Sequence[_Cusum]], values: Sequence[Sequence[npt.ArrayLike]]
) -> list[int | None]:
    """:func:`advance_together` for several groups of CUSUMs at once, each on its own values.

    Each group stops at its own first alarm, exactly as
    :func:`advance_together` of that group alone would (the groups are
    independent; a block of at most ``_BLOCK`` observations, of the same
    length for all). One 2-D numpy computation serves every side of every
    group: many features' tests cost about what one feature's do.
    """
    features = np.vstack(
        [
            cusum._features(raw)
            for cusums, taken in zip(groups, values, strict=True)
            for cusum, raw in zip(cusums, taken, strict=True)
        ]
    )
    return advance_groups_on_features(groups, features)


def advance_groups_on_features(
    groups: Sequence[Sequence[_Cusum]],
    features: npt.NDArray[np.float64],
    lengths: Sequence[int] | None = None,
) -> list[int | None]:
    """:func:`advance_groups` given each CUSUM's ``g`` already: one row per CUSUM, in order.

    For callers that can compute the rows of many CUSUMs in one step (the
    scores and their squares of many features, say) instead of one
    ``_features`` call per CUSUM. With ``lengths``, group ``k`` takes only
    the first ``lengths[k]`` columns of its rows (at least one), the rest
    being padding: groups with different numbers of values, in one step.
    """
    cusums = [cusum for members in groups for cusum in members]
    sides = [len(cusum._coefficients) for cusum in cusums]
    if features.shape[0] != len(sides):
        raise ValueError(f"{len(sides)} CUSUMs but {features.shape[0]} rows of features")
    pairs = chain.from_iterable(cusum._coefficients for cusum in cusums)
    count = 2 * sum(sides)  # flat, read faster than a list of pairs
    coefficients = np.fromiter(chain.from_iterable(pairs), np.float64, count).reshape(-1, 2)
    # In ticks already: _UNIT is a power of two, so (a g + b) _UNIT, clipped, is
    # a _UNIT g + b _UNIT clipped at _STEP_LIMIT _UNIT, bit for bit. Each step is
    # taken in place in one array: the arrays of ten models' batch are over a MiB,
    # each new one fresh pages from the system in a worker.
    coefficients *= _UNIT
    even = len(set(sides)) == 1
    steps = np.repeat(np.asarray(features, dtype=np.float64), sides[0] if even else sides, axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        steps *= coefficients[:, :1]
        steps += coefficients[:, 1:]
    np.clip(steps, -_STEP_LIMIT * _UNIT, _STEP_LIMIT * _UNIT, out=steps)
    ticks = np.rint(steps, out=steps).astype(np.int64)
    del steps
    rows, size = ticks.shape
    per_group = [sum(len(cusum._coefficients) for cusum in members) for members in groups]
    owner_rows = np.repeat(np.arange(len(groups)), per_group)
    if lengths is None:
        ends_at = np.full(len(groups), size - 1, dtype=np.int64)
    else:
        ends_at = np.asarray(lengths, dtype=np.int64) - 1
        if ends_at.shape != (len(groups),) or not ((ends_at >= 0) & (ends_at < size)).all():
            raise ValueError(f"{len(groups)} lengths from 1 to {size} needed, got {lengths}")
        # Padding moves no statistic: a zero increment leaves every sum, its low and
        # every crossing where the group's own values left them.
        ticks[np.arange(size) > ends_at[owner_rows][:, np.newaxis]] = 0
    before = np.fromiter(
        (total for cusum in cusums for total in cusum._sums), dtype=np.int64, count=rows
    )
    limit_of = np.fromiter((cusum._limit for cusum in cusums), np.int64, len(cusums))
    limits = np.repeat(limit_of, sides)
    cumulative = np.cumsum(ticks, axis=1)
    low = np.minimum.accumulate(cumulative, axis=1)
    np.minimum(low, -before[:, np.newaxis], out=low)
    sums = np.subtract(cumulative, low, out=low)
    del cumulative
    if int(sums.max()) > _CEILING:
        first_rows = np.cumsum([0, *per_group])
        return [
            _advance_stepwise(
                members,
                ticks[first_rows[number] : first_rows[number + 1], : int(ends_at[number]) + 1],
            )
            for number, members in enumerate(groups)
        ]
    above = sums > limits[:, np.newaxis]
    crossed = above.copy()
    crossed[:, 0] &= before <= limits
    crossed[:, 1:] &= ~above[:, :-1]
    starts = np.cumsum([0, *per_group[:-1]])
    anywhere = np.add.reduceat(crossed, starts, axis=0) > 0
    hit: npt.NDArray[np.bool_] = np.any(anywhere, axis=1)
    firsts = np.where(hit, np.argmax(anywhere, axis=1), -1)
    group_lasts = np.where(hit, firsts, ends_at)
    lasts = group_lasts[owner_rows]
    ends = sums[np.arange(rows), lasts]
    zeros = (sums == 0) & (np.arange(size) < lasts[:, np.newaxis])
    last_zeros = np.where(zeros.any(axis=1), size - 1 - np.argmax(zeros[:, ::-1], axis=1), -1)
    # Where each side's run above zero began, observation numbers relative to the
    # block's start (-1: at zero now, -2: as before, unless it was at zero before).
    begun = np.where(ends == 0, -1, np.where(last_zeros >= 0, last_zeros + 2, -2)).tolist()
    crossings = crossed[np.arange(rows), lasts] & hit[owner_rows]
    ends_list, crossing_list = ends.tolist(), crossings.tolist()
    row = 0
    results: list[int | None] = []
    for members, found, last in zip(groups, firsts.tolist(), group_lasts.tolist(), strict=True):
        for cusum in members:
            alarm = -1
            observed = cusum._observations
            totals, opened = cusum._sums, cusum._starts
            for side in range(len(totals)):
                since = begun[row]
                if since == -1:
                    opened[side] = None
                elif since >= 0:
                    opened[side] = observed + since
                elif totals[side] == 0:
                    opened[side] = observed + 1
                totals[side] = ends_list[row]
                if alarm < 0 and crossing_list[row]:
                    alarm = side
                row += 1
            cusum._observations = observed + last + 1
            cusum._record(alarm)
        results.append(found if found >= 0 else None)
    return results


def _advance_stepwise(cusums: Sequence[_Cusum], ticks: npt.NDArray[np.int64]) -> int | None:
    """The block one observation at a time: a statistic reached the ceiling."""
    for index, column in enumerate(ticks.T.tolist()):
        row, alarmed = 0, False
        for cusum in cusums:
            sides = len(cusum._coefficients)
            cusum._advance(column[row : row + sides])
            alarmed = alarmed or cusum.drift_detected
            row += sides
        if alarmed:
            return index
    return None


def _finite(x: float) -> float:
    value = float(x)
    if not math.isfinite(value):
        raise ValueError(f"sequential detectors take finite values only, got {x!r}")
    return value


def _finite_array(xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
    values = np.asarray(xs, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"update_many takes a one-dimensional array, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("sequential detectors take finite values only")
    return values


def _finite_matrix(xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
    values = np.asarray(xs, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("sequential detectors take finite values only")
    return values


class _DividedCusum(_Cusum):
    """CUSUMs whose increments are divided by a long-run variance factor.

    ``sides`` holds each side's ``(a, b)`` for independent values; the
    coefficients used are ``(a / variance_factor, b / variance_factor)``.
    """

    def __init__(
        self, threshold: float, sides: tuple[tuple[float, float], ...], variance_factor: float
    ) -> None:
        super().__init__(threshold)
        self._sides = sides
        self.variance_factor = variance_factor

    @property
    def variance_factor(self) -> float:
        """What the increments are divided by; it may be set again between updates."""
        return self._variance_factor

    @variance_factor.setter
    def variance_factor(self, value: float) -> None:
        if not (math.isfinite(value) and value >= 1.0):
            raise ValueError(f"variance_factor must be a number >= 1, got {value!r}")
        self._variance_factor = value
        self._coefficients = tuple((a / value, b / value) for a, b in self._sides)

    @property
    def _raw_coefficients(self) -> tuple[tuple[float, float], ...]:
        return self._sides

    @property
    def _divisor(self) -> float:
        return self._variance_factor


class LocationCusum(_DividedCusum):
    """Two Gaussian CUSUMs for a shift of the mean of normal scores, up and down.

    Each side sums the log-likelihood ratio of N(+-``shift``, 1) against
    N(0, 1), ``+-shift * z - shift**2 / 2``, divided by ``variance_factor``.
    It is the quickest detector of a shift of exactly ``shift``, in Lorden's
    worst-case sense (Moustakides, 1986), and detects larger ones sooner. ``threshold`` comes from
    :func:`location_threshold`: each side then has about the ARL0 asked for,
    and the two together alarm twice as often (``sides=2`` gives the pair
    the ARL0 asked for instead).

    ``variance_factor`` keeps the false-alarm rate calibrated when the scores
    are positively autocorrelated (but still N(0, 1) each). The run length to
    a false alarm is set by the ratio ``2 |mean| / variance`` of the
    increments, with the variance the long-run one, ``var(sum of n
    increments) / n``: for independent scores the increments have mean
    ``-shift**2 / 2`` and variance ``shift**2``, a ratio of 1, which the
    thresholds assume. Autocorrelation multiplies the long-run variance by
    ``(1 + rho) / (1 - rho)`` for an AR(1) with lag-1 correlation ``rho``
    (:attr:`SerialDependence.variance_factor`); dividing the increments by
    that factor divides their mean by it and their variance by its square,
    which brings the ratio back to 1 (and slows the drift to zero, which
    only lengthens the run). The price is a delay about that factor longer.

    Parameters
    ----------
    threshold
        Alarm when a side's statistic rises above it.
    shift
        The shift of the mean, in standard deviations, the detector is tuned to.
    variance_factor
        Long-run variance factor of the scores; 1 for independent scores.
        It may be set again between updates, as its estimate improves.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> z = np.concatenate([rng.normal(0, 1, 1000), rng.normal(1, 1, 1000)])
    >>> cusum = LocationCusum(threshold=location_threshold(4e6, 0.5))
    >>> cusum.update_many(z)
    1025
    >>> cusum.drift_detected, cusum.direction, cusum.observations, cusum.change_observation
    (True, 1, 1026, 1001)
    >>> round(cusum.statistic, 3)
    13.042
    """

    _DIRECTIONS = (1, -1)
    _PARAMETERS = ("threshold", "shift", "variance_factor")

    def __init__(self, threshold: float, shift: float = 0.5, variance_factor: float = 1.0) -> None:
        if not (math.isfinite(shift) and 0.0 < shift <= 10.0):
            raise ValueError(f"shift must be in (0, 10], got {shift!r}")
        b = -(shift**2) / 2.0
        super().__init__(threshold, ((shift, b), (-shift, b)), variance_factor)
        self.shift = shift

    def _feature(self, x: float) -> float:
        return _finite(x)

    def _features(self, xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return _finite_array(xs)


class ScaleCusum(_DividedCusum):
    """Two Gaussian CUSUMs for the variance of normal scores multiplied or divided by ``ratio``.

    For a variance multiplied by ``c`` (``ratio`` on one side, ``1 / ratio``
    on the other) a side sums the log-likelihood ratio of N(0, c) against
    N(0, 1), ``z**2 / 2 * (1 - 1 / c) - log(c) / 2``. ``threshold`` comes
    from :func:`lorden_threshold`, per side as for :class:`LocationCusum`.

    ``variance_factor`` divides the increments, as in :class:`LocationCusum`,
    and must be the long-run variance factor of the squares ``z**2``, not of
    the scores: for Gaussian scores the squares are correlated at ``rho**2``
    where the scores are at ``rho``, so for AR(1)-like scores it is
    ``(1 + rho**2) / (1 - rho**2)`` with ``rho`` from
    :attr:`SerialDependence.rho` (1.67 where the scores' factor is 3).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(11)
    >>> z = np.concatenate([rng.normal(0, 1, 1000), rng.normal(0, 2**0.5, 1000)])
    >>> cusum = ScaleCusum(threshold=lorden_threshold(4e6))
    >>> cusum.update_many(z)
    1022
    >>> cusum.direction, cusum.change_observation
    (1, 1009)
    """

    _DIRECTIONS = (1, -1)
    _PARAMETERS = ("threshold", "ratio", "variance_factor")

    def __init__(self, threshold: float, ratio: float = 2.0, variance_factor: float = 1.0) -> None:
        if not (math.isfinite(ratio) and 1.0 < ratio <= 100.0):
            raise ValueError(f"ratio must be in (1, 100], got {ratio!r}")
        sides = tuple(((1.0 - 1.0 / c) / 2.0, -math.log(c) / 2.0) for c in (ratio, 1.0 / ratio))
        super().__init__(threshold, sides, variance_factor)
        self.ratio = ratio

    def _feature(self, x: float) -> float:
        z = _finite(x)
        return z * z

    def _features(self, xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
        z = _finite_array(xs)
        with np.errstate(over="ignore"):
            return z * z


P_MIN = 1e-6
"""Reference shares are clamped to [P_MIN, 1 - P_MIN] (see :class:`BernoulliCusum`)."""

P_CAP = 0.999
"""The share the upward alternative of :class:`BernoulliCusum` is capped at."""


class BernoulliCusum(_Cusum):
    """Two CUSUMs for the share of ones in a 0/1 stream rising or falling from ``p0``.

    The sides sum the log-likelihood ratios of a Bernoulli share ``p1``
    against ``p0``: ``log(p1 / p0)`` for a one, ``log((1 - p1) / (1 - p0))``
    for a zero, with ``p1 = min(p0 * ratio, 0.999)`` up and ``p0 / ratio``
    down (kept in ``alternatives``). ``threshold`` comes from
    :func:`lorden_threshold`, per side as for :class:`LocationCusum`.

    Shares at the edges are clamped. ``p0`` is taken as at least ``P_MIN``
    (1e-6) and at most ``1 - P_MIN``, so that a category never seen in the
    reference adds ``log(ratio)`` per appearance instead of an infinite
    ratio: it alarms after about ``threshold / log(ratio)`` appearances. The
    upward alternative is capped at 0.999, or at ``(1 + p0) / 2`` when that
    is higher, so that for ``p0`` near 1 it still tests the rest halving
    rather than a share no higher than ``p0``. Near 1 the downward
    alternative ``p0 / ratio`` is a large rise of the rest, so a rare rest
    alarms after a few close occurrences; a smaller rise of the rest is for
    a detector of the rest's own share. Values are taken as independent.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> ones = np.concatenate([rng.random(2000) < 0.2, rng.random(2000) < 0.35])
    >>> cusum = BernoulliCusum(p0=0.2, threshold=lorden_threshold(4e6))
    >>> cusum.update_many(ones)
    2218
    >>> cusum.direction, cusum.change_observation
    (1, 1628)
    """

    _DIRECTIONS = (1, -1)
    _PARAMETERS = ("p0", "threshold", "ratio")

    def __init__(self, p0: float, threshold: float, ratio: float = 1.5) -> None:
        if not (math.isfinite(p0) and 0.0 <= p0 <= 1.0):
            raise ValueError(f"p0 must be a share in [0, 1], got {p0!r}")
        if not (math.isfinite(ratio) and 1.0 < ratio <= 100.0):
            raise ValueError(f"ratio must be in (1, 100], got {ratio!r}")
        super().__init__(threshold)
        self.p0 = p0
        self.ratio = ratio
        p = min(max(p0, P_MIN), 1.0 - P_MIN)
        up = min(p * ratio, max(P_CAP, (1.0 + p) / 2.0))
        down = p / ratio
        sides = []
        for p1 in (up, down):
            zero = math.log((1.0 - p1) / (1.0 - p))
            sides.append((math.log(p1 / p) - zero, zero))
        self._coefficients = tuple(sides)
        self.alternatives = (up, down)

    def _feature(self, x: float) -> float:
        if x not in (0, 1):
            raise ValueError(f"BernoulliCusum takes 0 or 1 (or a bool), got {x!r}")
        return 1.0 if x else 0.0

    def _features(self, xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
        values = np.asarray(xs)
        if values.ndim != 1:
            raise ValueError(f"update_many takes a one-dimensional array, got shape {values.shape}")
        if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
            raise ValueError("BernoulliCusum takes 0 or 1 (or a bool) only")
        return values.astype(np.float64)


class ChiSquareCusum(_DividedCusum):
    """An upward CUSUM for a chi-squared statistic inflating by ``inflation``.

    Meant for a Hotelling-type statistic ``s = z' R^-1 z`` of ``dim``
    features' scores ``z`` with correlation ``R``: chi-squared with ``dim``
    degrees of freedom when nothing changed, and larger when the features
    drift, apart or together, in ways no single feature may show. It sums
    the log-likelihood ratio of ``inflation`` times a chi-squared against a
    chi-squared (a change of a gamma scale),
    ``s / 2 * (1 - 1 / inflation) - dim / 2 * log(inflation)``. Its only side
    is upward: ``direction`` is +1 at every alarm. Get ``threshold`` from
    :func:`lorden_threshold`.

    ``variance_factor`` divides the increments, as in :class:`ScaleCusum`:
    for scores autocorrelated at ``rho`` (each feature alike) the statistic
    is a sum of squares autocorrelated at ``rho**2``, so it is
    ``(1 + rho**2) / (1 - rho**2)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> before = rng.normal(0, 1, (1000, 3))
    >>> after = rng.normal(0, 1, (1000, 3)) + [1.0, -1.0, 0.0]
    >>> s = (np.concatenate([before, after]) ** 2).sum(axis=1)
    >>> cusum = ChiSquareCusum(dim=3, threshold=lorden_threshold(4e6))
    >>> cusum.update_many(s)
    1029
    >>> cusum.change_observation
    990
    """

    _DIRECTIONS = (1,)
    _PARAMETERS = ("dim", "threshold", "inflation", "variance_factor")

    def __init__(
        self, dim: int, threshold: float, inflation: float = 1.5, variance_factor: float = 1.0
    ) -> None:
        if not (is_integer(dim) and dim >= 1):
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if not (math.isfinite(inflation) and 1.0 < inflation <= 100.0):
            raise ValueError(f"inflation must be in (1, 100], got {inflation!r}")
        a = (1.0 - 1.0 / inflation) / 2.0
        b = -dim / 2.0 * math.log(inflation)
        super().__init__(threshold, ((a, b),), variance_factor)
        self.dim = dim
        self.inflation = inflation

    def _feature(self, x: float) -> float:
        s = _finite(x)
        if s < 0.0:
            raise ValueError(f"a chi-squared statistic is never negative, got {x!r}")
        return s

    def _features(self, xs: npt.ArrayLike) -> npt.NDArray[np.float64]:
        s = _finite_array(xs)
        if (s < 0.0).any():
            raise ValueError("a chi-squared statistic is never negative")
        return s


class SerialDependence:
    """Online estimate of the lag-1 autocorrelation of scores that are N(0, 1) each.

    For such scores ``E[(z_t - z_{t-1})**2] = 2 (1 - rho)``, so ``rho`` is
    estimated as one less half an exponentially weighted mean of squared
    differences. Differences ignore the level: a shift of the mean changes
    one difference only, so the estimate survives the very changes the
    detectors look for. Each squared difference is capped at 64 (a chance
    of about 1e-8 under no change), so that one wild value moves the
    estimate by at most a few hundredths. The estimate is clipped to
    [0, 0.95]: negative correlation only makes the detectors more
    conservative, and beyond 0.95 little information is left anyway.

    Parameters
    ----------
    halflife
        Differences this many values old weigh half as much as the newest.
    prior_rho
        The estimate before any data.
    prior_weight
        How many differences the prior is worth; it fades with the same half-life.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import lfilter
    >>> rng = np.random.default_rng(0)
    >>> z = lfilter([0.75**0.5], [1.0, -0.5], rng.normal(0, 1, 20_000))
    >>> dependence = SerialDependence()
    >>> dependence.update_many(z)
    >>> round(dependence.rho, 3), round(dependence.variance_factor, 3)
    (0.502, 3.017)
    """

    def __init__(
        self,
        halflife: float = SERIAL_HALFLIFE,
        prior_rho: float = 0.0,
        prior_weight: float = 200.0,
    ) -> None:
        if not (math.isfinite(halflife) and halflife > 0.0):
            raise ValueError(f"halflife must be a positive number of values, got {halflife!r}")
        if not (math.isfinite(prior_rho) and 0.0 <= prior_rho <= MAX_RHO):
            raise ValueError(f"prior_rho must be in [0, {MAX_RHO}], got {prior_rho!r}")
        if not (math.isfinite(prior_weight) and prior_weight >= 0.0):
            raise ValueError(f"prior_weight must be a number >= 0, got {prior_weight!r}")
        self.halflife = halflife
        self.prior_rho = prior_rho
        self.prior_weight = prior_weight
        self._decay = 0.5 ** (1.0 / halflife)
        self._weight = prior_weight
        self._total = prior_weight * 2.0 * (1.0 - prior_rho)
        self._last: float | None = None
        self._observations = 0

    def update(self, z: float) -> None:
        """Take one score."""
        value = _finite(z)
        if self._last is not None:
            difference = value - self._last
            square = min(difference * difference, MAX_SQUARED_DIFFERENCE)
            self._total = self._decay * self._total + square
            self._weight = self._decay * self._weight + 1.0
        self._last = value
        self._observations += 1

    def update_many(self, zs: npt.ArrayLike) -> None:
        """Take scores in order, exactly as repeated :meth:`update` calls would."""
        values = _finite_array(zs)
        if not values.size:
            return
        if self._last is not None:
            values = np.concatenate([[self._last], values])
            taken = len(values) - 1
        else:
            taken = len(values)
        with np.errstate(over="ignore", invalid="ignore"):
            differences = np.diff(values)
            squares = np.minimum(differences * differences, MAX_SQUARED_DIFFERENCE)
        if differences.size:
            self._total = _decayed_rows([self._total], squares[None, :], self._decay)[0]
            self._weight = _decayed(self._weight, repeat(1.0, differences.size), self._decay)
        self._last = float(values[-1])
        self._observations += taken

    def update_group(self, differences: int, squares: float) -> None:
        """Take ``differences`` consecutive differences at once, known by the sum of their
        squares (each capped at ``MAX_SQUARED_DIFFERENCE``, as :meth:`update` caps them).

        They weigh as that many equal squares would: the grouped estimate of a stream that
        comes as summaries. The last score is left as it was: a summary's first difference
        is its own business.

        >>> dependence = SerialDependence(prior_weight=0.0)
        >>> dependence.update_group(1_000, 1_000.0)  # squares averaging 1: rho = 1 - 1/2
        >>> round(dependence.rho, 6)
        0.5
        """
        if not (is_integer(differences) and differences >= 0):
            raise ValueError(f"differences must be a count, got {differences!r}")
        squares = _finite(squares)
        if not 0.0 <= squares <= MAX_SQUARED_DIFFERENCE * differences:
            raise ValueError(f"{differences} capped squared differences cannot sum to {squares!r}")
        if not differences:
            return
        kept = self._decay**differences
        added = (1.0 - kept) / (1.0 - self._decay)
        self._total = kept * self._total + squares / differences * added
        self._weight = kept * self._weight + added
        self._observations += differences

    @staticmethod
    def update_together(
        estimates: Sequence["SerialDependence"],
        zs: npt.ArrayLike,
        lengths: Sequence[int] | None = None,
    ) -> None:
        """:meth:`update_many` of each estimate on its row of ``zs``.

        The estimates must share one half-life and have taken a score before
        (each continues from its own last one); any other goes on its own.
        With ``lengths``, estimate ``k`` takes only the first ``lengths[k]``
        scores of its row (the rest is padding). The differences of all rows
        are formed at once; estimates with the same weight and length (a
        model's features, as a rule) share one weight recursion.
        """
        rows = np.asarray(zs, dtype=np.float64)
        counts = [rows.shape[1]] * len(estimates) if lengths is None else list(lengths)
        if len(counts) != len(estimates) or any(not 0 <= n <= rows.shape[1] for n in counts):
            raise ValueError(
                f"{len(estimates)} lengths up to {rows.shape[1]} needed, got {lengths}"
            )
        joint = [
            number
            for number, estimate in enumerate(estimates)
            if estimate._last is not None
            and estimate.halflife == estimates[0].halflife
            and counts[number] > 0
        ]
        alone = set(range(len(estimates))) - set(joint)
        for number in sorted(alone):
            estimates[number].update_many(rows[number, : counts[number]])
        if not joint or rows.shape[1] == 0:
            return
        lasts = np.array([estimates[number]._last for number in joint], dtype=np.float64)
        values: npt.NDArray[np.float64] = np.column_stack([lasts, _finite_matrix(rows[joint])])
        with np.errstate(over="ignore", invalid="ignore"):
            differences = np.diff(values, axis=1)
            squares = np.minimum(differences * differences, MAX_SQUARED_DIFFERENCE)
        decay = estimates[joint[0]]._decay
        whole = [row for row, number in enumerate(joint) if counts[number] == rows.shape[1]]
        totals = [estimates[joint[row]]._total for row in whole]
        taken = dict(zip(whole, _decayed_rows(totals, squares[whole], decay), strict=True))
        weights: dict[tuple[float, int], float] = {}
        for row, number in enumerate(joint):
            estimate, count = estimates[number], counts[number]
            total = taken.get(row)
            if total is None:  # a row shorter than the others
                total = _decayed(estimate._total, squares[row, :count].tolist(), decay)
            estimate._total = total
            key = (estimate._weight, count)
            if key not in weights:
                weights[key] = _decayed(estimate._weight, repeat(1.0, count), decay)
            estimate._weight = weights[key]
            estimate._last = float(values[row, count])
            estimate._observations += count

    @property
    def rho(self) -> float:
        """The estimated lag-1 autocorrelation, in [0, 0.95]."""
        if self._weight == 0.0:
            return self.prior_rho
        estimate = 1.0 - self._total / self._weight / 2.0
        return min(max(estimate, 0.0), MAX_RHO)

    @property
    def variance_factor(self) -> float:
        """``(1 + rho) / (1 - rho)``: the long-run variance of the scores' sums, per value."""
        rho = self.rho
        return (1.0 + rho) / (1.0 - rho)

    @property
    def observations(self) -> int:
        """How many scores this estimate has taken."""
        return self._observations

    def to_state(self) -> State:
        """Everything that decides future estimates, as JSON-serialisable values."""
        return {
            **header(type(self).__name__),
            "halflife": self.halflife,
            "prior_rho": self.prior_rho,
            "prior_weight": self.prior_weight,
            "weight": self._weight,
            "total": self._total,
            "last": self._last,
            "observations": self._observations,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The estimator :meth:`to_state` described; it continues exactly as the original."""
        check_header(state, cls.__name__)
        estimator = cls(
            halflife=number_field(state, "halflife"),
            prior_rho=number_field(state, "prior_rho"),
            prior_weight=number_field(state, "prior_weight"),
        )
        weight, total = number_field(state, "weight"), number_field(state, "total")
        if weight < 0.0 or total < 0.0:
            raise ValueError("state: weight and total must be non-negative")
        last = state.get("last")
        estimator._weight, estimator._total = weight, total
        estimator._last = None if last is None else number_field(state, "last")
        estimator._observations = integer_field(state, "observations")
        return estimator


_RECURSIVE_FILTER: list[Any] = []
"""scipy.signal's ``lfilter``, once :func:`use_recursive_filter` has loaded it."""


def use_recursive_filter() -> None:
    """Take the decayed sums of :class:`SerialDependence` with scipy.signal's ``lfilter`` from
    now on, in this process: the same bits as the loop of :func:`_decayed`, about twenty
    times faster for a model's features side by side (33 against 620 µs for 22 rows of 225
    values), but loading scipy.signal costs about 4 MiB and 0.08 s.

    Replay, which runs as fast as it can, loads it (and the processes it
    forks inherit it); a worker, whose memory bounds how many models it
    watches, keeps the loop. Either way every estimate is the same.
    """
    if not _RECURSIVE_FILTER:
        from scipy.signal import lfilter

        _RECURSIVE_FILTER.append(lfilter)


def _decayed_rows(
    totals: Sequence[float], rows: npt.NDArray[np.float64], decay: float
) -> list[float]:
    """:func:`_decayed` of each total over its row of ``rows``, all rows side by side.

    With :func:`use_recursive_filter`, one call of ``lfilter`` with the
    filter ``y[n] = x[n] + decay * y[n - 1]`` started at ``decay * total``:
    each step is the loop's own, ``decay * total + value`` (one product and
    one sum, the sum's operands in either order), so the bits are the same.

    >>> _decayed_rows([1.0, 2.0], np.array([[1.0, 2.0], [0.0, 0.0]]), 0.5)
    [2.75, 0.5]
    """
    if not _RECURSIVE_FILTER or not rows.size:
        return [
            _decayed(total, row, decay) for total, row in zip(totals, rows.tolist(), strict=True)
        ]
    starts = decay * np.asarray(totals, dtype=np.float64)
    filtered, _ = _RECURSIVE_FILTER[0]([1.0], [1.0, -decay], rows, axis=1, zi=starts[:, None])
    return [float(total) for total in filtered[:, -1]]


def _decayed(total: float, values: Iterable[float], decay: float) -> float:
    """``total`` with each value folded in as ``decay * total + value``, in order.

    One float step per value, exactly as :meth:`SerialDependence.update`
    takes it, so any split of the values gives the same bits. A plain loop:
    the one recursive filter that keeps the bits is scipy.signal's, which a
    worker does not load (see :func:`use_recursive_filter`).

    >>> _decayed(1.0, [1.0, 2.0], 0.5)
    2.75
    """
    for value in values:
        total = decay * total + value
    return total


_STATEFUL: tuple[type[Stateful], ...] = (
    LocationCusum,
    ScaleCusum,
    BernoulliCusum,
    ChiSquareCusum,
    SerialDependence,
)
"""The detectors here, held by the type checker to the state protocol (:class:`Stateful`)."""
