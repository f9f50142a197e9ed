"""Data quality: how often each feature breaks its spec, checked window by window.

Every feature value is classified against its :class:`FeatureSpec` (missing,
wrong type, out of range, unseen category). Each check of each feature is a
stream of yes/no outcomes whose violation count per window is compared with
what the spec tolerates, at a fixed false-alarm probability per window.
"""

import json
import math
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from operator import itemgetter
from typing import Any

import numpy as np
from scipy.stats import binom

from driftline.monitors.feature_rows import FeatureMatrix, matrix_rows
from driftline.monitors.state import State
from driftline.schemas import FeatureKind, FeatureSpec, ModelSpec, QualityCheck
from driftline.schemas.events import FeatureValue

MAX_EXAMPLES = 5
"""Distinct offending values a check keeps per window."""

EXAMPLE_LENGTH = 100
"""Characters of JSON text kept per example; an adversarial value can be huge."""


@dataclass(frozen=True, slots=True)
class ValueCheck:
    """What one feature value is, judged against its spec.

    ``numeric`` is what drift detectors may use: the number of a valid
    numeric value (out of range included: it is still a real value), 1.0 or
    0.0 for a valid boolean, None otherwise. It is always finite.
    ``category`` is the text of a valid categorical value, seen or not.
    """

    missing: bool = False
    type_violation: bool = False
    out_of_range: bool = False
    unseen_category: bool = False
    numeric: float | None = None
    category: str | None = None

    def violates(self, check: QualityCheck) -> bool:
        """Whether this value fails ``check``."""
        return {
            QualityCheck.MISSING: self.missing,
            QualityCheck.TYPE_VIOLATION: self.type_violation,
            QualityCheck.OUT_OF_RANGE: self.out_of_range,
            QualityCheck.UNSEEN_CATEGORY: self.unseen_category,
        }[check]


def classify_value(spec: FeatureSpec, value: FeatureValue, present: bool) -> ValueCheck:
    """Classify one value of a feature; ``present`` says whether the event had it at all.

    ``bool`` is a subclass of ``int`` in Python, so ``True`` is refused as a
    number explicitly. Non-finite numbers are type violations: the wire
    schema refuses them, and this keeps them from any detector should a
    caller bypass it.

    >>> age = FeatureSpec(name="age", kind=FeatureKind.NUMERIC, minimum=0)
    >>> below = classify_value(age, -3.0, True)
    >>> below.out_of_range, below.numeric
    (True, -3.0)
    >>> classify_value(age, True, True).type_violation
    True
    """
    return _classify(spec, value, present, spec.categories)


def _classify(
    spec: FeatureSpec, value: object, present: bool, categories: Container[str] | None
) -> ValueCheck:
    """:func:`classify_value`, with the categories as any container (a set is faster)."""
    if not present or value is None:
        return ValueCheck(missing=True)
    if spec.kind is FeatureKind.NUMERIC:
        number = _finite_number(value)
        if number is None:
            return ValueCheck(type_violation=True)
        below = spec.minimum is not None and number < spec.minimum
        above = spec.maximum is not None and number > spec.maximum
        return ValueCheck(out_of_range=below or above, numeric=number)
    if spec.kind is FeatureKind.BOOLEAN:
        if not isinstance(value, bool):
            return ValueCheck(type_violation=True)
        return ValueCheck(numeric=1.0 if value else 0.0)
    if not isinstance(value, str):
        return ValueCheck(type_violation=True)
    unseen = categories is not None and value not in categories
    return ValueCheck(unseen_category=unseen, category=value)


def _finite_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return float(binom.sf(k - 1, n, p))


@lru_cache(maxsize=1024)
def _threshold(window: int, tolerated_rate: float, alpha: float) -> int:
    """The smallest count k >= 1 with P(X >= k) <= alpha, or window + 1 if none.

    The tail shrinks as k grows, so a bisection finds it in a few dozen
    evaluations even for a window of a million.
    """
    low, high = 1, window + 1
    while low < high:
        middle = (low + high) // 2
        if _tail(middle, window, tolerated_rate) <= alpha:
            high = middle
        else:
            low = middle + 1
    return low


class RateCheck:
    """One yes/no stream checked in tumbling windows against a tolerated rate.

    Under the tolerated rate a window's violation count ``X`` is
    Binomial(``window``, ``tolerated_rate``); the check alarms when a window
    reaches ``threshold`` violations, the smallest count ``k`` with
    ``P(X >= k) <= alpha``. It alarms on the update at which the count
    reaches the threshold, without waiting for the window to end: counts only
    grow within a window, so reaching it early is the same event as ending
    at or above it, and the false-alarm probability per window is the same.
    If not even a full window of violations is that unlikely (a tolerated
    rate of 1, say), ``threshold`` is ``window + 1`` and the check never alarms.

    After an alarm the check is ``alarming`` and stays quiet until a whole
    window ends below the threshold, so a lasting problem alarms once, not
    once per window; a recurrence after a clean window alarms again.

    Examples
    --------
    >>> check = RateCheck(window=100, tolerated_rate=0.01, alpha=0.001)
    >>> check.threshold
    6
    >>> for i in range(100):
    ...     check.update(i % 10 == 0, example=str(i))
    ...     if check.alarm:
    ...         break
    >>> check.observations, check.violations, check.examples
    (51, 6, ('0', '10', '20', '30', '40'))
    >>> round(check.p_value, 5)
    0.00053
    """

    def __init__(self, window: int, tolerated_rate: float, alpha: float) -> None:
        if window < 1:
            raise ValueError(f"window must be a positive number of observations, got {window!r}")
        if not 0.0 <= tolerated_rate <= 1.0:
            raise ValueError(f"tolerated_rate must be in [0, 1], got {tolerated_rate!r}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        self.window = window
        self.tolerated_rate = tolerated_rate
        self.alpha = alpha
        self.threshold = _threshold(window, tolerated_rate, alpha)
        self._window_index = 0
        self._observations = 0
        self._violations = 0
        self._examples: list[str] = []
        self._alarm = False
        self._alarming = False

    _STATE = ("_window_index", "_observations", "_violations", "_examples", "_alarming")

    def to_state(self) -> State:
        """The counts of the current window, as plain JSON-ready data."""
        return {name.lstrip("_"): getattr(self, name) for name in self._STATE}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take up the counts :meth:`to_state` gave (parameters come from the constructor)."""
        for name in self._STATE:
            value = state[name.lstrip("_")]
            setattr(self, name, list(value) if isinstance(value, list) else value)
        self._alarm = False

    def update(self, violated: bool, example: str | None = None) -> None:
        """Count one observation; ``example`` shows the offending value when ``violated``."""
        if self._observations == self.window:
            # The previous window is over; it stays readable until now so
            # that an alarm on its last observation reports it whole.
            if self._violations < self.threshold:
                self._alarming = False
            self._window_index += 1
            self._observations = self._violations = 0
            self._examples.clear()
        self._observations += 1
        self._alarm = False
        if not violated:
            return
        self._violations += 1
        room = len(self._examples) < MAX_EXAMPLES
        if example is not None and room and example not in self._examples:
            self._examples.append(example)
        if self._violations >= self.threshold and not self._alarming:
            self._alarm = self._alarming = True

    def update_many(
        self, violated: np.ndarray, example: Callable[[int], str | None]
    ) -> list[tuple[int, "RateCheck | None"]]:
        """:meth:`update` for each of a batch of outcomes, in order, at the cost of its violations.

        Clean outcomes only move the counts (and close windows), so they are
        taken in runs; each violation goes through :meth:`update`
        (``example(i)`` shows the i-th value). Returns what happened, in
        order: ``(i, copy)`` for an alarm on the i-th outcome, with a copy of
        the check as :meth:`update` left it then, and ``(i, None)`` where the
        i-th outcome closed a window that ended the alarming state.
        """
        marks: list[tuple[int, RateCheck | None]] = []
        taken = 0
        for hit in np.flatnonzero(violated).tolist():
            self._take_clean(hit - taken, taken, marks)
            was_alarming = self._alarming
            self.update(True, example(hit))
            if self._alarm:
                marks.append((hit, self._copy()))
            elif was_alarming and not self._alarming:
                marks.append((hit, None))
            taken = hit + 1
        self._take_clean(len(violated) - taken, taken, marks)
        return marks

    def take_clean(self, count: int) -> list[tuple[int, "RateCheck | None"]]:
        """:meth:`update_many` for ``count`` outcomes none of which is a violation.

        As a rule they fit in the window without closing it (a window closes
        at the outcome after its last): then they only count. A model's
        batch takes some sixty clean checks, one per feature and check.
        """
        if 0 < count <= self.window - self._observations:
            self._observations += count
            self._alarm = False
            return []
        marks: list[tuple[int, RateCheck | None]] = []
        self._take_clean(count, 0, marks)
        return marks

    def _copy(self) -> "RateCheck":
        copy = object.__new__(RateCheck)
        copy.__dict__.update(self.__dict__)
        copy._examples = list(self._examples)
        return copy

    def _take_clean(
        self, count: int, first: int, marks: list[tuple[int, "RateCheck | None"]]
    ) -> None:
        """``count`` clean outcomes, the first of them the batch's ``first``-th."""
        at = first
        while count > 0:
            if self._observations == self.window:
                if self._violations < self.threshold and self._alarming:
                    self._alarming = False
                    marks.append((at, None))
                self._window_index += 1
                self._observations = self._violations = 0
                self._examples.clear()
            step = min(self.window - self._observations, count)
            self._observations += step
            self._alarm = False
            count -= step
            at += step

    @property
    def alarm(self) -> bool:
        """Whether the last update raised an alarm."""
        return self._alarm

    @property
    def alarming(self) -> bool:
        """Whether an alarm was raised and no window has ended clean since."""
        return self._alarming

    @property
    def window_index(self) -> int:
        """Which window the current one is, from 0."""
        return self._window_index

    @property
    def observations(self) -> int:
        """Observations in the current window."""
        return self._observations

    @property
    def violations(self) -> int:
        """Violations in the current window."""
        return self._violations

    @property
    def rate(self) -> float:
        """Share of the current window's observations that were violations."""
        return self._violations / self._observations if self._observations else 0.0

    @property
    def p_value(self) -> float:
        """P(X >= violations) for a whole window at the tolerated rate."""
        return min(1.0, max(0.0, _tail(self._violations, self.window, self.tolerated_rate)))

    @property
    def examples(self) -> tuple[str, ...]:
        """Up to five distinct offending values of the current window, in order seen."""
        return tuple(self._examples)


@dataclass(frozen=True, slots=True)
class QualityFinding:
    """A failed data-quality check of one feature: the evidence of one alarm.

    Apart from ``feature`` the fields are those of
    :class:`~driftline.schemas.DataQualityEvidence`, under the same names.
    """

    feature: str
    check: QualityCheck
    window: int
    window_index: int
    observations: int
    violations: int
    rate: float
    tolerated_rate: float
    threshold: int
    alpha: float
    p_value: float
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QualityUpdate:
    """What one event showed: the alarms it raised and every spec feature's value, classified.

    ``values`` holds one :class:`ValueCheck` per feature of the spec, so the
    caller can feed the ``numeric`` values to drift detectors without
    classifying again.
    """

    findings: list[QualityFinding]
    values: dict[str, ValueCheck]


@dataclass(frozen=True, slots=True)
class QualityBatch:
    """What a batch of events showed, for :meth:`DataQualityMonitor.update_many`.

    ``findings`` maps an event's index in the batch to its alarms (in the
    order :meth:`DataQualityMonitor.update` gives them). ``numeric`` holds a
    column per numeric or boolean feature (NaN where the value is not a
    valid number), ``categories`` a list per categorical feature (None where
    the value is not a valid category): what drift detectors may use.
    """

    findings: dict[int, list[QualityFinding]]
    numeric: dict[str, "np.ndarray"]
    categories: dict[str, list[str | None]]
    clears: dict[tuple[str, QualityCheck], list[int]]
    """Per check, the batch indices at which a window closed that ended its alarming state."""
    alarms: dict[tuple[str, QualityCheck], list[int]]
    """Per check, the batch indices at which it alarmed (it is alarming from there on)."""
    whole: frozenset[str] = frozenset()
    """Numeric features with a valid number in every event: no NaN in their ``numeric`` column
    (some others may have none either)."""

    def alarming_after(self, before: bool, feature: str, check: QualityCheck, index: int) -> bool:
        """Whether a check is alarming after the ``index``-th event, given it was ``before``.

        An alarm and a clear at the same event mean the window closed clean,
        then the event's violation alarmed anew: alarming.
        """
        key = (feature, check)
        alarmed = max((i for i in self.alarms.get(key, ()) if i <= index), default=-1)
        cleared = max((i for i in self.clears.get(key, ()) if i <= index), default=-1)
        if alarmed < 0 and cleared < 0:
            return before
        return alarmed >= cleared


@dataclass(frozen=True, slots=True)
class QualityTally:
    """A batch's data-quality violations, counted (see :meth:`DataQualityMonitor.count_many`).

    ``counts`` maps a feature and check to its violations and up to
    ``MAX_EXAMPLES`` distinct offending values (checks without a violation
    are left out); ``numeric`` and ``categories`` hold the usable values, as
    in :class:`QualityBatch`.
    """

    events: int
    counts: dict[tuple[str, QualityCheck], tuple[int, list[str]]]
    unexpected: int
    numeric: dict[str, "np.ndarray"]
    categories: dict[str, list[str | None]]


@dataclass(frozen=True, slots=True)
class _Classified:
    """A batch's values, classified feature by feature (in the spec's order)."""

    columns: list[Sequence[object]]
    violations: dict[str, dict[QualityCheck, np.ndarray]]
    numeric: dict[str, np.ndarray]
    categories: dict[str, list[str | None]]
    whole: frozenset[str]
    unexpected: int


_ABSENT = object()
_FLOATS = {float}


class DataQualityMonitor:
    """The data-quality checks of every feature of one model version.

    Each feature gets a :class:`RateCheck` per check that applies to it:
    missing values (when the spec tolerates a missing rate), type violations
    (always), out of range (a numeric feature with bounds) and unseen
    categories (a categorical feature with categories), with windows of
    ``spec.quality_window`` events. With the default ``alpha``, a clean
    feature raises a false alarm about once in 10,000 windows per check.

    Feature names the spec does not know are counted in
    ``unexpected_features`` and never stored, so a producer sending ever new
    names cannot grow memory.

    Examples
    --------
    A feature's missing rate jumps from 0 to 30% at event 5,000:

    >>> import random
    >>> from driftline.schemas import TaskType
    >>> rng = random.Random(5)
    >>> spec = ModelSpec(
    ...     model_id="churn", model_version="3", task=TaskType.REGRESSION,
    ...     features=[FeatureSpec(name="tenure", kind=FeatureKind.NUMERIC, minimum=0)],
    ... )
    >>> monitor = DataQualityMonitor(spec)
    >>> for event in range(10_000):
    ...     missing = event >= 5_000 and rng.random() < 0.3
    ...     result = monitor.update({} if missing else {"tenure": rng.expovariate(0.1)})
    ...     if result.findings:
    ...         break
    >>> finding = result.findings[0]
    >>> event, finding.check.value, finding.violations, finding.threshold
    (5078, 'missing', 25, 25)
    """

    def __init__(self, spec: ModelSpec, alpha: float = 1e-4) -> None:
        self.spec = spec
        self.alpha = alpha
        self._features = {feature.name: feature for feature in spec.features}
        self._categories = {
            feature.name: frozenset(feature.categories)
            for feature in spec.features
            if feature.categories is not None
        }
        self._checks = {
            feature.name: {
                check: RateCheck(spec.quality_window, rate, alpha)
                for check, rate in _tolerated_rates(feature).items()
            }
            for feature in spec.features
        }
        self._observations = 0
        self._unexpected_features = 0
        self._names = tuple(self._features)
        numeric = [f for f in spec.features if f.kind is FeatureKind.NUMERIC]
        self._numeric_at = {self._names.index(f.name): row for row, f in enumerate(numeric)}
        """Each numeric feature's place among the spec's features, with its row among those."""
        self._bounds = (
            np.array([-math.inf if f.minimum is None else f.minimum for f in numeric]),
            np.array([math.inf if f.maximum is None else f.maximum for f in numeric]),
        )

    def to_state(self) -> State:
        """The counts of every check, as plain JSON-ready data (the spec is kept apart)."""
        return {
            "observations": self._observations,
            "unexpected_features": self._unexpected_features,
            "checks": {
                name: {check.value: rate.to_state() for check, rate in checks.items()}
                for name, checks in self._checks.items()
            },
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take up the counts :meth:`to_state` gave, for a monitor of the same spec."""
        self._observations = int(state["observations"])
        self._unexpected_features = int(state["unexpected_features"])
        for name, checks in state["checks"].items():
            for check, counts in checks.items():
                self._checks[name][QualityCheck(check)].load_state(counts)

    def update(self, features: Mapping[str, FeatureValue]) -> QualityUpdate:
        """Check the features of one event; absent spec features count as missing."""
        self._observations += 1
        self._unexpected_features += sum(name not in self._features for name in features)
        findings: list[QualityFinding] = []
        values: dict[str, ValueCheck] = {}
        for name, feature in self._features.items():
            present = name in features
            value = features.get(name)
            values[name] = classified = _classify(
                feature, value, present, self._categories.get(name)
            )
            for check, rate_check in self._checks[name].items():
                violated = classified.violates(check)
                example = _example(value) if violated and present and value is not None else None
                rate_check.update(violated, example)
                if rate_check.alarm:
                    findings.append(_finding(name, check, rate_check))
        return QualityUpdate(findings, values)

    def update_many(self, batch: Sequence[Mapping[str, FeatureValue]]) -> QualityBatch:
        """:meth:`update` for each event's features in order, feature by feature in columns.

        The same alarms, counts and values as :meth:`update` event by event;
        values of the common kinds (a float for a numeric feature, a string
        for a categorical one) are classified without a call per value.
        """
        self._observations += len(batch)
        found: list[tuple[int, int, int, QualityFinding]] = []
        clears: dict[tuple[str, QualityCheck], list[int]] = {}
        alarms: dict[tuple[str, QualityCheck], list[int]] = {}
        classified = self._classify_many(batch)
        self._unexpected_features += classified.unexpected
        for order, (name, column) in enumerate(
            zip(self._features, classified.columns, strict=True)
        ):
            violations = classified.violations[name]
            for rank, (check, rate_check) in enumerate(self._checks[name].items()):
                violated = violations.get(check)
                if violated is None:  # none in the batch
                    marks = rate_check.take_clean(len(batch))
                    if not marks:
                        continue
                else:
                    marks = rate_check.update_many(violated, partial(_column_example, column))
                for i, alarmed in marks:
                    if alarmed is None:
                        clears.setdefault((name, check), []).append(i)
                    else:
                        alarms.setdefault((name, check), []).append(i)
                        found.append((i, order, rank, _finding(name, check, alarmed)))
        findings: dict[int, list[QualityFinding]] = {}
        for i, _, _, finding in sorted(found, key=lambda item: item[:3]):
            findings.setdefault(i, []).append(finding)
        return QualityBatch(
            findings,
            classified.numeric,
            classified.categories,
            clears,
            alarms,
            classified.whole,
        )

    def count_many(self, batch: Sequence[Mapping[str, FeatureValue]]) -> "QualityTally":
        """Classify a batch's values and count each check's violations, changing nothing.

        What a two-stage worker's first stage sends on: the counts (with a few
        examples each) go to the worker that runs the checks
        (:meth:`update_counts`), the usable values to the drift scores.
        """
        classified = self._classify_many(batch)
        counts: dict[tuple[str, QualityCheck], tuple[int, list[str]]] = {}
        for name, column in zip(self._features, classified.columns, strict=True):
            violations = classified.violations[name]
            for check in self._checks[name]:
                violated = violations.get(check)
                if violated is None:
                    continue
                hits = np.flatnonzero(violated)
                if not hits.size:
                    continue
                examples: list[str] = []
                for index in hits.tolist():
                    example = _column_example(column, index)
                    if example is not None and example not in examples:
                        examples.append(example)
                        if len(examples) == MAX_EXAMPLES:
                            break
                counts[(name, check)] = (int(hits.size), examples)
        return QualityTally(
            events=len(batch),
            counts=counts,
            unexpected=classified.unexpected,
            numeric=classified.numeric,
            categories=classified.categories,
        )

    def update_counts(
        self,
        events: int,
        counts: Mapping[tuple[str, QualityCheck], tuple[int, Sequence[str]]],
        unexpected: int = 0,
    ) -> list[QualityFinding]:
        """Take a batch of ``events`` known only by each check's violation count; its alarms.

        ``counts`` maps a feature and check to its violations in the batch and
        a few offending values (checks left out had none; counts of checks
        that do not apply are refused). A batch's violations are taken as
        spread evenly over it, so a window that ends within the batch gets
        its share: a check alarms at the batch in which its window's count
        reached the threshold. Examples go with the first violations.
        """
        if events < 0 or unexpected < 0:
            raise ValueError("events and unexpected features are counts")
        for (name, check), (violations, _) in counts.items():
            if check not in self._checks.get(name, {}):
                raise ValueError(f"no {check.value} check for feature {name!r}")
            if not 0 <= violations <= events:
                raise ValueError(f"{violations} {check.value} violations of {name!r} in {events}")
        self._observations += events
        self._unexpected_features += unexpected
        findings: list[QualityFinding] = []
        for name, checks in self._checks.items():
            for check, rate_check in checks.items():
                violations, examples = counts.get((name, check), (0, ()))
                if not violations:
                    rate_check.take_clean(events)
                    continue
                spread = np.zeros(events, dtype=bool)
                spread[((np.arange(violations) + 0.5) * events / violations).astype(np.int64)] = (
                    True
                )
                numbered = {
                    int(at): example
                    for at, example in zip(np.flatnonzero(spread).tolist(), examples, strict=False)
                }
                marks = rate_check.update_many(spread, numbered.get)
                findings.extend(
                    _finding(name, check, alarmed) for _, alarmed in marks if alarmed is not None
                )
        return findings

    def _classify_many(self, batch: Sequence[Mapping[str, FeatureValue]]) -> "_Classified":
        """Every feature's values over a batch: columns, violations and usable values."""
        known = self._features.keys()
        numeric: dict[str, np.ndarray] = {}
        categories: dict[str, list[str | None]] = {}
        viewed = matrix_rows(batch)
        if viewed is not None:
            columns, plain = self._matrix_columns(viewed[0], viewed[1], numeric)
            unexpected = sum(name not in known for name in viewed[0].names) * len(batch)
        else:
            columns, complete = _columns(batch, self._names)
            if complete:  # every event gives every known feature: the others are unexpected
                unexpected = sum(map(len, batch)) - len(known) * len(batch)
            else:
                unexpected = sum(
                    len(features.keys() - known)
                    for features in batch
                    if not features.keys() <= known
                )
            plain = self._plain_numbers(columns, numeric)
        violations = {
            name: plain[name]
            if name in plain
            else self._classify_column(feature, column, numeric, categories)
            for (name, feature), column in zip(self._features.items(), columns, strict=True)
        }
        whole = frozenset(
            name for name, violated in plain.items() if QualityCheck.TYPE_VIOLATION not in violated
        )
        return _Classified(columns, violations, numeric, categories, whole, unexpected)

    def _plain_numbers(
        self, columns: Sequence[Sequence[object]], numeric: dict[str, np.ndarray]
    ) -> dict[str, dict[QualityCheck, np.ndarray]]:
        """The numeric features whose values are all floats, checked as one matrix.

        The common case, and the per-feature checks cost a dozen numpy calls
        each, most of a small batch's quality checks: here they are made once
        for all such features. Each gets its column in ``numeric`` and the
        checks it violated somewhere (NaN and infinities are type violations,
        values past the bounds are out of range); a check not listed has no
        violation in the batch.
        """
        plain = [at for at in self._numeric_at if set(map(type, columns[at])) == _FLOATS]
        if not plain:
            return {}
        return self._checked_numbers(
            plain, np.array([columns[at] for at in plain], dtype=np.float64), numeric
        )

    def _matrix_columns(
        self, matrix: FeatureMatrix, rows: np.ndarray, numeric: dict[str, np.ndarray]
    ) -> tuple[list[Sequence[object]], dict[str, dict[QualityCheck, np.ndarray]]]:
        """:func:`_columns` and :meth:`_plain_numbers` of a batch of rows of one matrix (see
        :mod:`~driftline.monitors.feature_rows`): every numeric feature it gives is plain,
        its column taken from the matrix at once."""
        count = len(rows)
        places = [matrix.column(name) for name in self._names]
        plain = [(at, place) for at in self._numeric_at if (place := places[at]) is not None]
        block = np.ascontiguousarray(matrix.values[rows].T)
        columns: list[Sequence[object]] = [
            [_ABSENT] * count
            if place is None
            else (block[place] if at in self._numeric_at else block[place].tolist())
            for at, place in enumerate(places)
        ]
        if not plain:
            return columns, {}
        checked = block[[place for _, place in plain]]
        return columns, self._checked_numbers([at for at, _ in plain], checked, numeric)

    def _checked_numbers(
        self, plain: list[int], matrix: np.ndarray, numeric: dict[str, np.ndarray]
    ) -> dict[str, dict[QualityCheck, np.ndarray]]:
        """The checks of the plain numeric features (by place among the spec's), their values
        a row each of ``matrix``; each one's column goes into ``numeric``."""
        numeric_at = self._numeric_at
        wrong = ~np.isfinite(matrix)
        any_wrong: list[bool] = np.any(wrong, axis=1).tolist()
        if True in any_wrong:
            matrix[wrong] = np.nan
        lowest, highest = self._bounds
        rows = [numeric_at[at] for at in plain]
        with np.errstate(invalid="ignore"):
            out = (matrix < lowest[rows, None]) | (matrix > highest[rows, None])
        any_out: list[bool] = np.any(out, axis=1).tolist()
        checked: dict[str, dict[QualityCheck, np.ndarray]] = {}
        for row, at in enumerate(plain):
            name = self._names[at]
            numeric[name] = matrix[row]
            violations = checked[name] = {}
            if any_wrong[row]:
                violations[QualityCheck.TYPE_VIOLATION] = wrong[row]
            if any_out[row]:
                violations[QualityCheck.OUT_OF_RANGE] = out[row]
        return checked

    def _classify_column(
        self,
        feature: FeatureSpec,
        column: Sequence[object],
        numeric: dict[str, np.ndarray],
        categories: dict[str, list[str | None]],
    ) -> dict[QualityCheck, np.ndarray]:
        """Each check's violations over one feature's column; its usable values into the maps."""
        size = len(column)
        missing = np.zeros(size, dtype=bool)
        wrong = np.zeros(size, dtype=bool)
        out = np.zeros(size, dtype=bool)
        unseen = np.zeros(size, dtype=bool)
        common = (
            float
            if feature.kind is FeatureKind.NUMERIC
            else (bool if feature.kind is FeatureKind.BOOLEAN else str)
        )
        kinds = set(map(type, column))
        odd = (
            [] if kinds <= {common} else [i for i, v in enumerate(column) if type(v) is not common]
        )
        if feature.kind is FeatureKind.CATEGORICAL:
            texts: list[str | None] = list(column)  # type: ignore[arg-type]
            allowed = self._categories.get(feature.name)
            if allowed is not None and not set(column) <= allowed:
                unseen[[i for i, v in enumerate(column) if type(v) is str and v not in allowed]] = (
                    True
                )
        elif not odd:
            numbers = np.array(column, dtype=np.float64)
        else:
            numbers = np.full(size, np.nan)
            if len(odd) < size:
                fine = np.ones(size, dtype=bool)
                fine[odd] = False
                kept = [column[i] for i in np.flatnonzero(fine).tolist()]
                numbers[fine] = np.array(kept, dtype=np.float64)
        for i in odd:
            checked = _classify(feature, column[i], column[i] is not _ABSENT, None)
            missing[i], wrong[i] = checked.missing, checked.type_violation
            if feature.kind is FeatureKind.CATEGORICAL:
                texts[i] = checked.category
                unseen[i] = checked.category is not None and (
                    allowed is not None and checked.category not in allowed
                )
            else:
                numbers[i] = np.nan if checked.numeric is None else checked.numeric
        if feature.kind is FeatureKind.CATEGORICAL:
            categories[feature.name] = texts
        else:
            if feature.kind is FeatureKind.NUMERIC:
                finite = np.isfinite(numbers)
                bad = ~finite & ~missing & ~wrong
                wrong |= bad
                numbers[bad] = np.nan
                with np.errstate(invalid="ignore"):
                    if feature.minimum is not None:
                        out |= numbers < feature.minimum
                    if feature.maximum is not None:
                        out |= numbers > feature.maximum
            numeric[feature.name] = numbers
        return {
            QualityCheck.MISSING: missing,
            QualityCheck.TYPE_VIOLATION: wrong,
            QualityCheck.OUT_OF_RANGE: out,
            QualityCheck.UNSEEN_CATEGORY: unseen,
        }

    def alarming_checks(self) -> dict[tuple[str, QualityCheck], bool]:
        """Whether each feature's each check is alarming now (no clean window since its alarm)."""
        return {
            (name, check): rate_check.alarming
            for name, checks in self._checks.items()
            for check, rate_check in checks.items()
        }

    def rate_check(self, feature: str, check: QualityCheck) -> RateCheck:
        """The check of one feature; ``KeyError`` if it does not apply to that feature."""
        return self._checks[feature][check]

    @property
    def observations(self) -> int:
        """How many events this monitor has checked."""
        return self._observations

    @property
    def unexpected_features(self) -> int:
        """Feature values seen under names the spec does not list (a count, not the names)."""
        return self._unexpected_features


def _tolerated_rates(feature: FeatureSpec) -> dict[QualityCheck, float]:
    rates: dict[QualityCheck, float] = {}
    if feature.tolerated_missing_rate is not None:
        rates[QualityCheck.MISSING] = feature.tolerated_missing_rate
    rates[QualityCheck.TYPE_VIOLATION] = feature.max_type_violation_rate
    if feature.minimum is not None or feature.maximum is not None:
        rates[QualityCheck.OUT_OF_RANGE] = feature.max_out_of_range_rate
    if feature.categories is not None:
        rates[QualityCheck.UNSEEN_CATEGORY] = feature.max_unseen_category_rate
    return rates


def _columns(
    batch: Sequence[Mapping[str, FeatureValue]], names: tuple[str, ...]
) -> tuple[list[Sequence[object]], bool]:
    """One column per name over the batch's events, ``_ABSENT`` where an event lacks it;
    and whether every event gives every name (when True; False may still be so)."""
    if len(names) < 2:
        columns: list[Sequence[object]] = [
            [features.get(name, _ABSENT) for features in batch] for name in names
        ]
        return columns, False
    getter = itemgetter(*names)

    def row(features: Mapping[str, FeatureValue]) -> tuple[object, ...]:
        try:
            return tuple(getter(features))
        except KeyError:
            return tuple(features.get(name, _ABSENT) for name in names)

    try:
        rows = list(map(getter, batch))  # every event has every feature: the common case
        complete = True
    except KeyError:
        rows = [row(features) for features in batch]
        complete = False
    if not rows:
        return [[] for _ in names], complete
    return list(zip(*rows, strict=True)), complete


def _column_example(column: Sequence[object], index: int) -> str | None:
    value = column[index]
    if isinstance(value, np.generic):  # a matrix's column (see _matrix_columns)
        value = value.item()
    return None if value is _ABSENT or value is None else _example(value)


def _example(value: object) -> str:
    return json.dumps(value)[:EXAMPLE_LENGTH]


def _finding(feature: str, check: QualityCheck, rate_check: RateCheck) -> QualityFinding:
    return QualityFinding(
        feature=feature,
        check=check,
        window=rate_check.window,
        window_index=rate_check.window_index,
        observations=rate_check.observations,
        violations=rate_check.violations,
        rate=rate_check.rate,
        tolerated_rate=rate_check.tolerated_rate,
        threshold=rate_check.threshold,
        alpha=rate_check.alpha,
        p_value=rate_check.p_value,
        examples=rate_check.examples,
    )
