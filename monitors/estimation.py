"""Performance before the labels: accuracy and F1 estimated from calibrated probabilities.

A classifier publishes class probabilities with each prediction; labels come
much later, or never. If the probabilities were calibrated, a prediction
made with confidence ``p`` would be right with probability ``p``, and the
mean confidence of a window would estimate its accuracy. Models are rarely
calibrated, so a calibration map is first learned on labelled reference
predictions, and the window's estimate is the mean of the calibrated values
(confidence-based performance estimation, CBPE, as in NannyML; here one
prediction at a time).

Why it works, and when it does not: the calibration map learns P(right |
score). A covariate shift moves the inputs (say toward the decision
boundary, where the model is less sure) but leaves P(label | inputs), hence
P(right | score), unchanged: the scores move and the estimate follows them.
A concept shift changes P(label | inputs) itself; the scores do not see it,
and no estimate made from them can. Keep watching the realized metrics once
labels land.

The map is an isotonic regression (:class:`IsotonicCalibrator`): monotone,
otherwise free of assumptions about the model's miscalibration. In a binary
task it goes from the positive class's probability, so that a shift toward
the decision boundary lands in the middle of its range, where it is well
estimated, not at its edge; otherwise from the confidence in the predicted
class, with a map for each class the reference predicts often enough, since
models are often miscalibrated differently for each class (see
:class:`ConfidenceEstimator`).

>>> rng = np.random.default_rng(0)
>>> def predictions(count, shift):
...     z = rng.choice([-1.0, 1.0], count) * shift + rng.normal(0.0, 0.5, count)
...     truth = 1 / (1 + np.exp(-3 * z))                 # P(label "yes" | inputs)
...     labels = np.where(rng.random(count) < truth, "yes", "no")
...     scores = 1 / (1 + np.exp(-7 * z))                 # an overconfident model
...     return [({"no": 1 - p, "yes": p}, "yes" if p >= 0.5 else "no", label)
...             for p, label in zip(scores, labels)]
>>> estimator = ConfidenceEstimator(["no", "yes"], positive_class="yes")
>>> for probabilities, prediction, label in predictions(2_000, shift=1.0):
...     estimator.learn(probabilities, prediction, label)
>>> estimator.fit()
>>> round(estimator.reference_accuracy, 3), round(estimator.reference_estimate, 3)
(0.914, 0.916)

The inputs then move toward the boundary: accuracy falls, and the estimate
with it, without a single label.

>>> window, raw, right = EstimatedWindow(), 0.0, 0
>>> shifted = predictions(5_000, shift=0.3)
>>> for probabilities, prediction, label in shifted:
...     window.add(estimator.expect(probabilities, prediction))
...     raw += probabilities[prediction]
...     right += prediction == label
>>> round(right / len(shifted), 3)                       # realized
0.76
>>> round(window.accuracy, 3), round(window.accuracy_standard_error, 3)
(0.771, 0.006)
>>> round(float(raw) / len(shifted), 3)                  # the model's own confidence
0.876
"""

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from scipy.optimize import isotonic_regression

from driftline.monitors.state import (
    State,
    Stateful,
    check_header,
    header,
    integer_field,
    number_field,
    numbers_field,
)
from driftline.schemas.summaries import SCORE_BINS, ScoreBins

MIN_REFERENCE = 50
"""The fewest labelled reference predictions :meth:`ConfidenceEstimator.fit` takes."""

MIN_CLASS_REFERENCE = 200
"""The fewest reference predictions of a class for it to get a map of its own."""

_TOLERANCE = 1e-9
"""How far outside [0, 1] a probability may stray by rounding; it is clipped."""


def _probability(value: object, what: str) -> float:
    """``value`` as a probability in [0, 1], or ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        p = float(value)
    except OverflowError:  # an integer too large for a float
        p = math.inf
    if not (math.isfinite(p) and -_TOLERANCE <= p <= 1.0 + _TOLERANCE):
        raise ValueError(f"{what} must be a probability in [0, 1], got {value!r}")
    return min(max(p, 0.0), 1.0)


def prediction_score(
    probabilities: Mapping[str, float], prediction: str, positive_class: str | None
) -> float:
    """What the calibration map takes of one prediction: the positive class's probability in
    a binary task (one less the others' when it is missing), else the probability of the
    class predicted (0 when missing). ValueError for empty probabilities or one that is not
    in [0, 1].

    >>> prediction_score({"no": 0.3, "yes": 0.7}, "yes", "yes"), prediction_score(
    ...     {"no": 0.3}, "yes", "yes"), prediction_score({"a": 0.2, "b": 0.8}, "a", None)
    (0.7, 0.7, 0.2)
    """
    if not probabilities:
        raise ValueError("probabilities are empty")
    if positive_class is None:
        p = probabilities.get(prediction)
        return 0.0 if p is None else _probability(p, f"probability of {prediction!r}")
    if positive_class in probabilities:
        return _probability(probabilities[positive_class], f"probability of {positive_class!r}")
    others = sum(_probability(p, f"probability of {c!r}") for c, p in probabilities.items())
    return min(max(1.0 - others, 0.0), 1.0)


def score_bins(
    windows: Sequence[int],
    predictions: Sequence[object],
    probabilities: Sequence[Mapping[str, float] | None],
    positive_class: str | None,
) -> list[ScoreBins]:
    """A batch's predictions counted by window, class predicted and score bin
    (:class:`~driftline.schemas.summaries.ScoreBins`), in that order.

    What the first stage of a spread model sends for the estimated
    performance: the second stage, which holds the calibration, reads each
    bin at its middle (:func:`bin_scores`). Only predictions of a class with
    probabilities are counted, as the estimator takes only those;
    probabilities that are not scores (see :func:`prediction_score`) leave
    their prediction out.

    >>> for bins in score_bins([0, 0, 0, 1], ["yes", "yes", "no", "yes"],
    ...                        [{"yes": 0.91}, {"yes": 0.918}, {"yes": 0.2}, None], "yes"):
    ...     print(bins)
    ScoreBins(window=0, prediction='no', first=40, counts=[1])
    ScoreBins(window=0, prediction='yes', first=182, counts=[1, 1])
    """
    kept: list[tuple[int, str]] = []
    scores: list[float] = []
    for window, prediction, chances in zip(windows, predictions, probabilities, strict=True):
        if not chances or not isinstance(prediction, str):
            continue
        score = chances.get(prediction if positive_class is None else positive_class)
        if score is None or not 0.0 <= score <= 1.0:  # missing, or to be checked (and clipped)
            try:
                score = prediction_score(chances, prediction, positive_class)
            except ValueError:
                continue
        kept.append((window, prediction))
        scores.append(score)
    if not kept:
        return []
    groups = sorted(set(kept))
    code = {group: number for number, group in enumerate(groups)}
    places = np.minimum((np.asarray(scores) * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
    keys = np.array([code[group] for group in kept], dtype=np.int64) * SCORE_BINS + places
    found, counts = np.unique(keys, return_counts=True)
    found_groups = found // SCORE_BINS
    bounds = np.flatnonzero(np.diff(found_groups)) + 1
    runs = []
    for taken, numbers in zip(
        np.split(found % SCORE_BINS, bounds), np.split(counts, bounds), strict=True
    ):
        first = int(taken[0])
        run = np.zeros(int(taken[-1]) - first + 1, dtype=np.int64)
        run[taken - first] = numbers
        runs.append((first, run.tolist()))
    return [
        ScoreBins(window, prediction, first, run)
        for (window, prediction), (first, run) in zip(
            [groups[int(g)] for g in found_groups[np.r_[0, bounds]]], runs, strict=True
        )
    ]


def bin_scores(places: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The scores bins are read at: their middles.

    >>> bin_scores([0, SCORE_BINS - 1]).tolist()
    [0.0025, 0.9975]
    """
    return (np.asarray(places, dtype=np.float64) + 0.5) / SCORE_BINS


# -- calibration ---------------------------------------------------------------------


class IsotonicCalibrator:
    """A monotone map from scores in [0, 1] to the probability of an outcome.

    :meth:`fit` runs an isotonic regression of the 0/1 outcomes on the scores
    (pool adjacent violators, tied scores pooled first): the non-decreasing
    step function closest to the outcomes in squared error. It makes no other
    assumption about how the model is miscalibrated. Each block of the fit, a
    run of neighbouring scores, maps to its mean outcome; between two blocks
    the map goes linearly from one value to the next, and beyond the lowest
    and highest scores fitted it holds the end values. Every score fitted
    thus maps to its block's mean, so that the mean of the mapped scores is
    the mean outcome. (Interpolating between the blocks' mean scores instead
    follows a smooth curve more closely, but leaned toward optimism by a few
    tenths of a point in our benchmark.)

    Scores that are all tied, or outcomes that are all equal, give a
    constant map: the mean outcome.

    >>> calibrator = IsotonicCalibrator().fit([0.1, 0.2, 0.2, 0.6, 0.7, 0.9], [0, 0, 1, 0, 1, 1])
    >>> calibrator.knots
    (0.1, 0.2, 0.6, 0.7, 0.9)
    >>> [round(v, 3) for v in calibrator.values]
    [0.0, 0.333, 0.333, 1.0, 1.0]
    >>> [round(calibrator.calibrate(s), 3) for s in (0.0, 0.15, 0.4, 0.65, 1.0)]
    [0.0, 0.167, 0.333, 0.667, 1.0]

    The scores 0.2, 0.2 and 0.6 hold one right outcome of three: they pool
    into one block, with the value 1/3, lower than the 1/2 of 0.2 alone,
    which would otherwise sit above the 0 of 0.6. The outcomes at 0.7 and
    0.9 pool into a block of 1.
    """

    def __init__(self) -> None:
        self._knots: npt.NDArray[np.float64] = np.empty(0)
        self._values: npt.NDArray[np.float64] = np.empty(0)
        self._count = 0

    def fit(self, scores: npt.ArrayLike, outcomes: npt.ArrayLike) -> Self:
        """Learn the map from scores in [0, 1] and their 0/1 (or boolean) outcomes."""
        x = np.asarray(scores, dtype=np.float64).ravel()
        y = np.asarray(outcomes, dtype=np.float64).ravel()
        if len(x) != len(y):
            raise ValueError(f"{len(x)} scores but {len(y)} outcomes")
        if len(x) == 0:
            raise ValueError("nothing to fit: no scores")
        if not np.all((x >= 0.0) & (x <= 1.0)):  # NaN fails too
            raise ValueError("scores must be numbers in [0, 1]")
        if not np.all((y == 0.0) | (y == 1.0)):
            raise ValueError("outcomes must be 0 or 1")
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        unique, starts, counts = np.unique(x, return_index=True, return_counts=True)
        hits = np.add.reduceat(y, starts)
        weights = counts.astype(np.float64)
        blocks = isotonic_regression(hits / weights, weights=weights).blocks
        knots, values = [], []
        for start, stop in itertools.pairwise(int(b) for b in blocks):
            # Counts of 0/1 outcomes and of scores are exact: so is the mean.
            value = float(hits[start:stop].sum()) / float(weights[start:stop].sum())
            knots.append(float(unique[start]))
            values.append(value)
            if stop - 1 > start:
                knots.append(float(unique[stop - 1]))
                values.append(value)
        self._knots = np.asarray(knots, dtype=np.float64)
        # Pooled means are non-decreasing; the accumulate only guards the rounding.
        self._values = np.clip(np.maximum.accumulate(np.asarray(values)), 0.0, 1.0)
        self._count = len(x)
        return self

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called."""
        return len(self._knots) > 0

    @property
    def count(self) -> int:
        """How many points the map was fitted on."""
        return self._count

    @property
    def knots(self) -> tuple[float, ...]:
        """The lowest and highest score of each block, increasing."""
        return tuple(float(k) for k in self._knots)

    @property
    def values(self) -> tuple[float, ...]:
        """The map's value at each knot, its block's mean outcome: non-decreasing."""
        return tuple(float(v) for v in self._values)

    def calibrate(self, score: float) -> float:
        """The calibrated probability of one score."""
        return float(self.calibrate_many(np.asarray([score], dtype=np.float64))[0])

    def calibrate_many(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The calibrated probabilities of many scores, as :meth:`calibrate` gives each."""
        if not self.fitted:
            raise RuntimeError("the calibrator is not fitted: call fit() first")
        x = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("scores must be finite numbers")
        return np.asarray(np.interp(x, self._knots, self._values), dtype=np.float64)

    def to_state(self) -> State:
        """The fitted map, as JSON-ready lists of floats."""
        return {
            **header(type(self).__name__),
            "count": self._count,
            "knots": self._knots.tolist(),
            "values": self._values.tolist(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The calibrator :meth:`to_state` described; it maps exactly as the original."""
        check_header(state, cls.__name__)
        calibrator = cls()
        knots, values = (
            np.asarray(numbers_field(state, key), dtype=np.float64) for key in ("knots", "values")
        )
        count = integer_field(state, "count")
        if len(knots) != len(values):
            raise ValueError("state: knots and values must have the same length")
        if (count == 0) != (len(knots) == 0):
            raise ValueError("state: a fitted map has knots and a count, an unfitted one neither")
        if not (np.all((knots >= 0.0) & (knots <= 1.0)) and np.all(np.diff(knots) > 0.0)):
            raise ValueError("state: knots must increase within [0, 1]")
        if not (np.all((values >= 0.0) & (values <= 1.0)) and np.all(np.diff(values) >= 0.0)):
            raise ValueError("state: values must not decrease, within [0, 1]")
        calibrator._knots, calibrator._values, calibrator._count = knots, values, count
        return calibrator


# -- estimation ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expectation:
    """What one prediction is expected to score, before its label is known.

    ``p_correct`` is the probability that the prediction is right. In a
    binary task ``p_positive`` is the probability that the label is the
    positive class and ``predicted_positive`` whether the prediction is;
    both are None otherwise.
    """

    p_correct: float
    p_positive: float | None = None
    predicted_positive: bool | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_correct <= 1.0:
            raise ValueError(f"p_correct must be in [0, 1], got {self.p_correct!r}")
        if (self.p_positive is None) != (self.predicted_positive is None):
            raise ValueError("p_positive and predicted_positive go together")
        if self.p_positive is not None and not 0.0 <= self.p_positive <= 1.0:
            raise ValueError(f"p_positive must be in [0, 1], got {self.p_positive!r}")


class ConfidenceEstimator:
    """Expected correctness of predictions, calibrated on labelled reference predictions.

    Parameters
    ----------
    classes
        The model's classes, when known: predictions, labels and probability
        keys outside them are refused.
    positive_class
        For a binary task, the class whose F1 is estimated. It makes the
        task binary: with ``classes``, they must be two and include it;
        without, the reference may show at most one other class.
    min_reference
        The fewest labelled reference predictions :meth:`fit` takes. Fewer
        leave the calibration too loose to say anything useful.
    min_class_reference
        Without a positive class, the fewest reference predictions of a
        class for it to get a map of its own (see below).

    :meth:`learn` collects labelled reference predictions; :meth:`fit`
    learns the calibration; :meth:`expect` then gives each new prediction's
    :class:`Expectation`, for an :class:`EstimatedWindow` to add up.

    Without a positive class, a map goes from the confidence in the
    predicted class (its probability, 0 if missing) to whether the
    prediction was right. Each class predicted at least
    ``min_class_reference`` times in the reference gets a map of its own;
    the others share one fitted on the whole reference. A model is often
    miscalibrated differently for each class: one map for all would mix the
    classes in the reference's proportions, and lean whichever way the mix
    of predicted classes moves.

    In a binary task the map goes from the positive class's probability to
    whether the label is positive; a prediction is right with that
    probability, or its complement for a negative prediction. Both forms do
    for a calibrated model, but the confidence folds the decision boundary
    onto the lowest scores, the edge of the map where the isotonic fit is
    least reliable, whereas a shift toward the boundary is exactly what the
    estimate must follow; the positive probability keeps the boundary in
    the middle of the map's range, keeps apart the two sides of a model
    that leans toward one class, and gives the accuracy and F1 estimates
    from one map. A binary model may publish only one of its two
    probabilities: a missing positive probability is one less the other's.

    The scores are always calibrated, even a model's that are calibrated
    already. NannyML's CBPE leaves those raw when a test on the reference
    says calibrating does not help (the expected calibration error of
    held-out reference predictions, raw against calibrated); on a calibrated
    model the isotonic map only adds its own noise. Measured by
    ``benchmarks/calibration_choice.py`` (100 seeds, windows of 1,000
    predictions, mean absolute error of the window's estimated accuracy), no
    such test pays for itself. With 2,000 reference labels (the default),
    calibrating a calibrated model costs 0.15 to 0.33 points (1.17 against
    0.84 raw, inputs moving toward the boundary); NannyML's test wins back
    0.04 to 0.10 of them and a Hosmer-Lemeshow test (raw unless it rejects
    at 5%) 0.14 to 0.27, but the first loses 0.12 on a mildly overconfident
    model (logit x1.25) and 0.25 on an overconfident 3-class one, the second
    0.08 on a barely overconfident one (x1.1). With 500 reference labels
    both stakes grow: the gains reach 0.4 and 0.8 points, but NannyML's test
    loses up to 0.8 and Hosmer-Lemeshow, which misses a mildly
    underconfident model (x0.8) 93% of the time, 1.5 on it. A miscalibrated
    model left raw costs more than a calibrated one calibrated (up to 8
    points for an overconfident one), and no test told the two apart well
    enough to gain on the one without losing on the other.

    >>> estimator = ConfidenceEstimator(min_reference=4)
    >>> for p, prediction, label in [(0.9, "a", "a"), (0.8, "b", "b"), (0.6, "a", "b"),
    ...                              (0.7, "b", "a"), (0.95, "a", "a"), (0.55, "b", "b")]:
    ...     estimator.learn({prediction: p}, prediction, label)
    >>> estimator.fit()
    >>> estimator.ready, round(estimator.reference_accuracy, 3)
    (True, 0.667)
    >>> estimator.expect({"a": 0.9, "b": 0.1}, "a")
    Expectation(p_correct=1.0, p_positive=None, predicted_positive=None)
    >>> round(estimator.expect({"a": 0.35, "b": 0.65}, "b").p_correct, 3)
    0.333

    The three least confident reference predictions (0.55, 0.6 and 0.7) hold
    one right among them: they pool into one block worth 1/3, and the three
    most confident, all right, into one worth 1.
    """

    def __init__(
        self,
        classes: Sequence[str] | None = None,
        positive_class: str | None = None,
        *,
        min_reference: int = MIN_REFERENCE,
        min_class_reference: int = MIN_CLASS_REFERENCE,
    ) -> None:
        if classes is not None:
            classes = list(classes)
            if len(set(classes)) != len(classes) or len(classes) < 2:
                raise ValueError(f"classes must be two or more distinct names, got {classes!r}")
        if (
            positive_class is not None
            and classes is not None
            and (len(classes) != 2 or positive_class not in classes)
        ):
            raise ValueError(
                f"positive_class {positive_class!r} needs a binary task with it as one of "
                f"the two classes, got classes {classes!r}"
            )
        for name, value, least in (
            ("min_reference", min_reference, 2),
            ("min_class_reference", min_class_reference, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be a count of at least {least}, got {value!r}")
        self.classes = classes
        self.positive_class = positive_class
        self.min_reference = min_reference
        self.min_class_reference = min_class_reference
        self._allowed = frozenset(classes) if classes is not None else None
        self._seen: set[str] = set()
        self._scores: list[float] = []
        self._outcomes: list[bool] = []
        self._predictions: list[str] = []
        self._calibrator: IsotonicCalibrator | None = None
        self._class_calibrators: dict[str, IsotonicCalibrator] = {}
        self._reference: dict[str, float | int | None] = {}

    @property
    def binary(self) -> bool:
        """Whether the task is binary (a positive class is set)."""
        return self.positive_class is not None

    @property
    def ready(self) -> bool:
        """Whether :meth:`fit` has run, so that :meth:`expect` can answer."""
        return self._calibrator is not None

    @property
    def collected(self) -> int:
        """Labelled reference predictions collected (and fitted on, once fitted)."""
        if self._calibrator is not None:
            return int(self._reference["count"] or 0)
        return len(self._scores)

    @property
    def calibrator(self) -> IsotonicCalibrator | None:
        """The map from the positive probability (binary), or the one all classes share."""
        return self._calibrator

    @property
    def class_calibrators(self) -> Mapping[str, IsotonicCalibrator]:
        """The maps of the classes that have one of their own (never in a binary task)."""
        return dict(self._class_calibrators)

    def _check_name(self, name: object, what: str) -> str:
        if not isinstance(name, str):
            raise ValueError(f"{what} must be a class name, got {name!r}")
        if self._allowed is not None and name not in self._allowed:
            raise ValueError(f"{what} {name!r} is not one of the classes {sorted(self._allowed)}")
        return name

    def _score(self, probabilities: Mapping[str, float], prediction: str) -> float:
        """The map's input for one prediction (names already checked)."""
        if self._allowed is not None and not self._allowed.issuperset(probabilities):
            unknown = sorted(set(probabilities) - self._allowed)
            raise ValueError(f"probabilities of unknown classes {unknown}")
        return prediction_score(probabilities, prediction, self.positive_class)

    def learn(self, probabilities: Mapping[str, float], prediction: str, label: str) -> None:
        """Collect one labelled reference prediction (before :meth:`fit`)."""
        if self._calibrator is not None:
            raise RuntimeError("the estimator is fitted: it learns no more reference predictions")
        self._check_name(prediction, "prediction")
        self._check_name(label, "label")
        score = self._score(probabilities, prediction)
        positive = self.positive_class
        if self._allowed is None and positive is not None:
            seen = self._seen | {prediction, label, *probabilities}
            if len(seen | {positive}) > 2:
                raise ValueError(
                    f"positive_class {positive!r} is for binary tasks, but the reference "
                    f"brings more classes: {sorted(seen | {positive})}"
                )
            self._seen = seen
        self._scores.append(score)
        self._outcomes.append(prediction == label if positive is None else label == positive)
        self._predictions.append(prediction)

    def fit(self) -> None:
        """Learn the calibration from the collected reference predictions.

        Raises ValueError with fewer than ``min_reference`` of them, and
        RuntimeError if already fitted.
        """
        if self._calibrator is not None:
            raise RuntimeError("the estimator is already fitted")
        count = len(self._scores)
        if count < self.min_reference:
            raise ValueError(
                f"need at least {self.min_reference} labelled reference predictions with "
                f"probabilities to calibrate on, got {count}"
            )
        scores = np.asarray(self._scores, dtype=np.float64)
        outcomes = np.asarray(self._outcomes, dtype=bool)
        predictions = np.asarray(self._predictions, dtype=object)
        calibrator = IsotonicCalibrator().fit(scores, outcomes)
        window = EstimatedWindow()
        f1: float | None = None
        if self.positive_class is None:
            correct = outcomes
            by_class = {}
            p_correct = calibrator.calibrate_many(scores)
            names, counts = np.unique(predictions, return_counts=True)
            for name, size in zip(names.tolist(), counts.tolist(), strict=True):
                if size >= self.min_class_reference and size < count:
                    rows = predictions == name
                    by_class[name] = IsotonicCalibrator().fit(scores[rows], outcomes[rows])
                    p_correct[rows] = by_class[name].calibrate_many(scores[rows])
            window.add_many(Expectation(float(p)) for p in p_correct)
        else:
            by_class = {}
            predicted = predictions == self.positive_class
            correct = predicted == outcomes
            p_positive = calibrator.calibrate_many(scores)
            p_correct = np.where(predicted, p_positive, 1.0 - p_positive)
            window.add_many(
                Expectation(float(c), float(p), bool(flag))
                for c, p, flag in zip(p_correct, p_positive, predicted, strict=True)
            )
            true_positives = int(np.sum(predicted & outcomes))
            wrong = int(np.sum(~correct))
            if true_positives + wrong:
                f1 = 2 * true_positives / (2 * true_positives + wrong)
        self._reference = {
            "count": count,
            "accuracy": float(np.mean(correct)),
            "estimate": window.accuracy,
            "spread": float(np.std(p_correct)),
            "f1": f1,
            "f1_estimate": window.f1,
        }
        self._calibrator = calibrator
        self._class_calibrators = by_class
        self._scores, self._outcomes, self._predictions = [], [], []

    def _reference_value(self, key: str) -> float | None:
        if self._calibrator is None:
            raise RuntimeError("the estimator is not fitted: call fit() first")
        value = self._reference[key]
        return None if value is None else float(value)

    @property
    def reference_count(self) -> int:
        """How many labelled reference predictions the estimator was fitted on."""
        return int(self._reference_value("count") or 0)

    @property
    def reference_accuracy(self) -> float:
        """The realized accuracy of the reference predictions."""
        return self._reference_value("accuracy") or 0.0

    @property
    def reference_estimate(self) -> float:
        """The estimated accuracy of the reference: its mean calibrated ``p_correct``.

        Close to :attr:`reference_accuracy`: an isotonic fit keeps the mean
        outcome, and with a positive class only blocks of scores that
        straddle the decision threshold move it, slightly.
        """
        return self._reference_value("estimate") or 0.0

    @property
    def reference_spread(self) -> float:
        """The standard deviation of the calibrated ``p_correct`` over the reference.

        A window of ``n`` predictions drawn like the reference has an
        estimated accuracy that varies by about ``reference_spread /
        sqrt(n)`` from window to window.
        """
        return self._reference_value("spread") or 0.0

    @property
    def reference_f1(self) -> float | None:
        """The realized F1 of the positive class on the reference (binary; None if undefined)."""
        return self._reference_value("f1")

    @property
    def reference_f1_estimate(self) -> float | None:
        """The estimated F1 of the positive class on the reference (binary)."""
        return self._reference_value("f1_estimate")

    def expect(self, probabilities: Mapping[str, float], prediction: str) -> Expectation:
        """What one new prediction, with its probabilities, is expected to score."""
        calibrator = self._calibrator
        if calibrator is None:
            raise RuntimeError("the estimator is not fitted: call fit() first")
        self._check_name(prediction, "prediction")
        positive = self.positive_class
        if positive is not None:
            known = self._seen | {positive}
            if (
                self._allowed is None
                and len(known) == 2
                and not known.issuperset((prediction, *probabilities))
            ):
                raise ValueError(f"a third class in a binary task of classes {sorted(known)}")
        return self.expect_score(self._score(probabilities, prediction), prediction)

    def expect_score(self, score: float, prediction: str) -> Expectation:
        """What a prediction is expected to score, from its score (see
        :func:`prediction_score`) rather than its probabilities: the second
        stage of a spread model gets a window's scores in bins, not each
        prediction's probabilities."""
        p = self._calibrator_for(prediction).calibrate(score)
        positive = self.positive_class
        if positive is None:
            return Expectation(p)
        predicted = prediction == positive
        return Expectation(p if predicted else 1.0 - p, p, predicted)

    def expect_scores(
        self, scores: npt.ArrayLike, prediction: str
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
        """:meth:`expect_score` of many predictions of one class at once: their ``p_correct``,
        and in a binary task their ``p_positive`` (else None)."""
        p = self._calibrator_for(prediction).calibrate_many(scores)
        positive = self.positive_class
        if positive is None:
            return p, None
        return (p if prediction == positive else 1.0 - p), p

    def _calibrator_for(self, prediction: str) -> IsotonicCalibrator:
        """The map a prediction of this class is read on (RuntimeError before :meth:`fit`)."""
        calibrator = self._calibrator
        if calibrator is None:
            raise RuntimeError("the estimator is not fitted: call fit() first")
        self._check_name(prediction, "prediction")
        if self.positive_class is None:
            return self._class_calibrators.get(prediction, calibrator)
        return calibrator

    def to_state(self) -> State:
        """Everything the estimator knows, as JSON-ready data."""
        return {
            **header(type(self).__name__),
            "classes": self.classes,
            "positive_class": self.positive_class,
            "min_reference": self.min_reference,
            "min_class_reference": self.min_class_reference,
            "seen": sorted(self._seen),
            "scores": list(self._scores),
            "outcomes": list(self._outcomes),
            "predictions": list(self._predictions),
            "calibrator": None if self._calibrator is None else self._calibrator.to_state(),
            "class_calibrators": {
                name: calibrator.to_state() for name, calibrator in self._class_calibrators.items()
            },
            "reference": dict(self._reference),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The estimator :meth:`to_state` described; it answers exactly as the original."""
        check_header(state, cls.__name__)
        classes, positive = state.get("classes"), state.get("positive_class")
        if classes is not None and not (
            isinstance(classes, list) and all(isinstance(c, str) for c in classes)
        ):
            raise ValueError("state: classes must be a list of class names")
        if positive is not None and not isinstance(positive, str):
            raise ValueError("state: positive_class must be a class name")
        estimator = cls(
            classes,
            positive,
            min_reference=integer_field(state, "min_reference"),
            min_class_reference=integer_field(state, "min_class_reference"),
        )
        seen, scores = state.get("seen"), state.get("scores")
        outcomes, predictions = state.get("outcomes"), state.get("predictions")
        if not (isinstance(seen, list) and all(isinstance(s, str) for s in seen)):
            raise ValueError("state: seen must be a list of class names")
        if not (
            isinstance(scores, list)
            and isinstance(outcomes, list)
            and isinstance(predictions, list)
            and all(isinstance(b, bool) for b in outcomes)
            and all(isinstance(p, str) for p in predictions)
            and len(scores) == len(outcomes) == len(predictions)
        ):
            raise ValueError("state: scores, outcomes and predictions must be matching lists")
        estimator._seen = set(seen)
        estimator._scores = [_probability(s, "state: score") for s in scores]
        estimator._outcomes = list(outcomes)
        estimator._predictions = list(predictions)
        calibrator, by_class = state.get("calibrator"), state.get("class_calibrators")
        reference = state.get("reference")
        if not isinstance(by_class, Mapping):
            raise ValueError("state: class_calibrators must be a mapping")
        if calibrator is None:
            if reference or by_class:
                raise ValueError("state: reference figures or class maps without a calibrator")
            return estimator
        if scores:
            raise ValueError("state: a fitted estimator keeps no reference predictions")
        if by_class and positive is not None:
            raise ValueError("state: a binary task has no class maps")
        if not isinstance(reference, Mapping):
            raise ValueError("state: reference must be a mapping")
        figures: dict[str, float | int | None] = {"count": integer_field(reference, "count")}
        for key in ("accuracy", "estimate", "spread"):
            figures[key] = number_field(reference, key, minimum=0.0)
        for key in ("f1", "f1_estimate"):
            figures[key] = (
                None if reference.get(key) is None else number_field(reference, key, minimum=0.0)
            )
        estimator._calibrator = IsotonicCalibrator.from_state(calibrator)
        estimator._class_calibrators = {
            estimator._check_name(name, "state: class"): IsotonicCalibrator.from_state(map_)
            for name, map_ in by_class.items()
        }
        estimator._reference = figures
        return estimator


# -- windows -------------------------------------------------------------------------


class EstimatedWindow:
    """Expected accuracy (and, for a binary task, F1) of a window of predictions.

    Adds up the :class:`Expectation` of each prediction: the expected number
    of right predictions, and in a binary task the expected true positives
    ``E[TP]`` (the sum of ``p_positive`` over predicted positives), false
    positives ``E[FP]`` (of ``1 - p_positive`` over them) and false negatives
    ``E[FN]`` (of ``p_positive`` over predicted negatives). The F1 estimate is
    ``2 E[TP] / (2 E[TP] + E[FP] + E[FN])``, the ratio of the expectations
    (close to the expected ratio once a window holds a few hundred
    predictions).

    >>> window = EstimatedWindow()
    >>> for p, predicted in [(0.9, True), (0.8, True), (0.3, False), (0.1, False)]:
    ...     window.add(Expectation(p if predicted else 1 - p, p, predicted))
    >>> window.count, round(window.accuracy, 3), round(window.f1, 3)
    (4, 0.825, 0.829)
    >>> round(window.accuracy_standard_error, 3)
    0.185
    """

    def __init__(self) -> None:
        self._count = 0
        self._binary: bool | None = None
        self._correct = self._variance = 0.0
        self._true_positives = self._false_positives = self._false_negatives = 0.0

    def add(self, expectation: Expectation) -> None:
        """Count one prediction's expectation in."""
        binary = expectation.p_positive is not None
        if self._binary is not None and binary != self._binary:
            raise ValueError("a window takes binary expectations or others, not both")
        self._binary = binary
        p = expectation.p_correct
        self._count += 1
        self._correct += p
        self._variance += p * (1.0 - p)
        if expectation.p_positive is not None:
            if expectation.predicted_positive:
                self._true_positives += expectation.p_positive
                self._false_positives += 1.0 - expectation.p_positive
            else:
                self._false_negatives += expectation.p_positive

    def add_counts(
        self,
        counts: npt.ArrayLike,
        p_correct: npt.ArrayLike,
        p_positive: npt.ArrayLike | None = None,
        predicted_positive: bool | None = None,
    ) -> None:
        """Count in ``counts[i]`` predictions expected to score ``p_correct[i]`` (and, in a
        binary task, ``p_positive[i]``, all predicting the positive class or none of them):
        as many :meth:`add` calls would, the sums taken in another order.

        >>> window = EstimatedWindow()
        >>> window.add_counts([2, 1], [0.9, 0.6], [0.9, 0.6], True)
        >>> window.count, round(window.accuracy, 3), round(window.f1, 3)
        (3, 0.8, 0.889)
        """
        n = np.asarray(counts, dtype=np.float64)
        p = np.asarray(p_correct, dtype=np.float64)
        if n.shape != p.shape or np.any(n < 0) or not np.all((p >= 0.0) & (p <= 1.0)):
            raise ValueError("counts and p_correct must be as many, counts >= 0, p in [0, 1]")
        binary = p_positive is not None
        if binary == (predicted_positive is None):
            raise ValueError("p_positive and predicted_positive go together")
        if self._binary is not None and binary != self._binary:
            raise ValueError("a window takes binary expectations or others, not both")
        if not n.sum():
            return
        self._binary = binary
        self._count += int(n.sum())
        self._correct += float(n @ p)
        self._variance += float(n @ (p * (1.0 - p)))
        if p_positive is not None:
            q = np.asarray(p_positive, dtype=np.float64)
            if predicted_positive:
                self._true_positives += float(n @ q)
                self._false_positives += float(n @ (1.0 - q))
            else:
                self._false_negatives += float(n @ q)

    def add_many(self, expectations: Iterable[Expectation]) -> None:
        """Count several in, in order."""
        for expectation in expectations:
            self.add(expectation)

    def reset(self) -> None:
        """Start an empty window."""
        self._count = 0
        self._binary = None
        self._correct = self._variance = 0.0
        self._true_positives = self._false_positives = self._false_negatives = 0.0

    @property
    def count(self) -> int:
        """Predictions counted."""
        return self._count

    @property
    def expected_correct(self) -> float:
        """The expected number of right predictions."""
        return self._correct

    @property
    def expected_true_positives(self) -> float | None:
        """``E[TP]``; None unless binary."""
        return self._true_positives if self._binary else None

    @property
    def expected_false_positives(self) -> float | None:
        """``E[FP]``; None unless binary."""
        return self._false_positives if self._binary else None

    @property
    def expected_false_negatives(self) -> float | None:
        """``E[FN]``; None unless binary."""
        return self._false_negatives if self._binary else None

    @property
    def accuracy(self) -> float | None:
        """The estimated accuracy; None for an empty window."""
        return self._correct / self._count if self._count else None

    @property
    def accuracy_standard_error(self) -> float | None:
        """How far the realized accuracy may fall from the estimate by chance alone.

        ``sqrt(sum p (1 - p)) / n``: the standard deviation of the share of
        right predictions if each is right independently with its
        ``p_correct``. It leaves out the calibration's own error.
        """
        return math.sqrt(self._variance) / self._count if self._count else None

    @property
    def f1(self) -> float | None:
        """The estimated F1 of the positive class; None unless binary, or undefined."""
        if not self._binary:
            return None
        denominator = 2.0 * self._true_positives + self._false_positives + self._false_negatives
        return 2.0 * self._true_positives / denominator if denominator > 0.0 else None

    _SUMS = (
        "correct",
        "variance",
        "true_positives",
        "false_positives",
        "false_negatives",
    )

    def to_state(self) -> State:
        """The window's sums, as JSON-ready data."""
        state: State = {
            **header(type(self).__name__),
            "count": self._count,
            "binary": self._binary,
        }
        for name in self._SUMS:
            state[name] = getattr(self, f"_{name}")
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The window :meth:`to_state` described; it goes on exactly where it was."""
        check_header(state, cls.__name__)
        window = cls()
        window._count = integer_field(state, "count")
        binary = state.get("binary")
        if binary is not None and not isinstance(binary, bool):
            raise ValueError(f"state: binary must be true, false or null, got {binary!r}")
        if (binary is None) != (window._count == 0):
            raise ValueError("state: binary is null exactly when the window is empty")
        window._binary = binary
        for name in cls._SUMS:
            setattr(window, f"_{name}", number_field(state, name, minimum=0.0))
        if window._correct > window._count + 1e-6 * (window._count + 1):
            raise ValueError("state: more right predictions expected than counted")
        return window


_STATEFUL: tuple[type[Stateful], ...] = (IsotonicCalibrator, ConfidenceEstimator, EstimatedWindow)
"""The calibrator, estimator and window, held by the type checker to the state protocol."""
