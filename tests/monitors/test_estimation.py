"""Confidence-based performance estimation: calibration, estimates under shift, state.

The synthetic models here know their truth: P(label | inputs) is given, labels
are drawn from it, and the model publishes a (possibly miscalibrated) function
of it. Tolerances are derived from the sampling error of the figures compared,
not read off a run.
"""

import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, softmax

from driftline.monitors.estimation import (
    ConfidenceEstimator,
    EstimatedWindow,
    Expectation,
    IsotonicCalibrator,
    prediction_score,
    score_bins,
)
from driftline.schemas.summaries import SCORE_BINS

# -- synthetic models ------------------------------------------------------------------


def binary_predictions(rng, count, *, shift=1.0, scale=1.0, offset=0.0, share=0.5, spread=0.5):
    """A binary task on one input z = +-shift + spread * N(0, 1): P(yes | z) = sigmoid(3 z).

    The sign is + with probability ``share``. The model's logit is
    ``scale * 3 z + offset`` (``scale`` > 1: overconfident); it predicts its
    more probable class. A smaller ``shift`` moves the inputs toward the
    decision boundary, leaving P(yes | z) as it is: a covariate shift.
    """
    side = np.where(rng.random(count) < share, 1.0, -1.0)
    z = side * shift + rng.normal(0.0, spread, count)
    truth = expit(3.0 * z)
    positive = rng.random(count) < truth
    p = expit(scale * 3.0 * z + offset)
    rows = []
    for p_yes, is_yes in zip(p.tolist(), positive.tolist(), strict=True):
        prediction = "yes" if p_yes >= 0.5 else "no"
        rows.append(({"no": 1.0 - p_yes, "yes": p_yes}, prediction, "yes" if is_yes else "no"))
    return rows


UNITS = np.column_stack([np.cos(np.deg2rad([90, 210, 330])), np.sin(np.deg2rad([90, 210, 330]))])


def softmax_predictions(
    rng, count, *, temperature=0.7, bias=(0.0, 0.0, 0.0), weights=(1, 1, 1, 0), spread=0.6
):
    """Three classes in the plane, P(k | x) = softmax(2.5 x . u_k), x from a mixture.

    The mixture has clusters at 1.2 u_k and one at the origin, where the three
    classes meet, with ``weights``. The model's logits are the true ones over
    ``temperature`` plus ``bias``.
    """
    names = ["a", "b", "c"]
    centres = np.vstack([1.2 * UNITS, np.zeros((1, 2))])
    w = np.asarray(weights, dtype=float)
    cluster = rng.choice(4, size=count, p=w / w.sum())
    x = centres[cluster] + spread * rng.standard_normal((count, 2))
    logits = 2.5 * x @ UNITS.T
    truth = softmax(logits, axis=1)
    model = softmax(logits / temperature + np.asarray(bias), axis=1)
    labels = (rng.random(count)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    labels = np.minimum(labels, 2)
    rows = []
    for probabilities, label in zip(model.tolist(), labels.tolist(), strict=True):
        prediction = names[int(np.argmax(probabilities))]
        rows.append((dict(zip(names, probabilities, strict=True)), prediction, names[label]))
    return rows


def fitted(rows, classes=None, positive_class=None, **options):
    estimator = ConfidenceEstimator(classes, positive_class, **options)
    for probabilities, prediction, label in rows:
        estimator.learn(probabilities, prediction, label)
    estimator.fit()
    return estimator


def estimate(estimator, rows):
    window = EstimatedWindow()
    for probabilities, prediction, _ in rows:
        window.add(estimator.expect(probabilities, prediction))
    return window


def realized_accuracy(rows):
    return sum(prediction == label for _, prediction, label in rows) / len(rows)


def realized_f1(rows, positive="yes"):
    tp = sum(p == positive and y == positive for _, p, y in rows)
    fp = sum(p == positive and y != positive for _, p, y in rows)
    fn = sum(p != positive and y == positive for _, p, y in rows)
    return 2 * tp / (2 * tp + fp + fn)


def mean_confidence(rows):
    return sum(probabilities[prediction] for probabilities, prediction, _ in rows) / len(rows)


def tolerance(estimator, window, sigmas=3.0):
    """``sigmas`` standard errors of estimate minus realized.

    Two independent errors: the calibration's, which for the mean is about a
    binomial standard error on the reference, and the window's realized
    accuracy as a draw around its expectation.
    """
    p = estimator.reference_accuracy
    calibration = math.sqrt(max(p * (1 - p), 0.01) / estimator.reference_count)
    return sigmas * math.hypot(calibration, window.accuracy_standard_error)


BINARY = [pytest.param(None, id="confidence-map"), pytest.param("yes", id="positive-map")]


# -- estimates -------------------------------------------------------------------------


@pytest.mark.parametrize("positive_class", BINARY)
def test_a_calibrated_model_is_estimated_within_sampling_error(positive_class):
    rng = np.random.default_rng(1)
    estimator = fitted(binary_predictions(rng, 2_000), ["no", "yes"], positive_class)
    rows = binary_predictions(rng, 20_000)
    window = estimate(estimator, rows)
    assert abs(window.accuracy - realized_accuracy(rows)) <= tolerance(estimator, window)


@pytest.mark.parametrize("positive_class", BINARY)
def test_calibration_corrects_an_overconfident_model(positive_class):
    rng = np.random.default_rng(2)
    estimator = fitted(binary_predictions(rng, 2_000, scale=2.5), ["no", "yes"], positive_class)
    rows = binary_predictions(rng, 20_000, scale=2.5)
    realized = realized_accuracy(rows)
    # The premise: the model's own confidence is far off.
    assert mean_confidence(rows) - realized > 0.05
    window = estimate(estimator, rows)
    assert abs(window.accuracy - realized) <= 0.02
    assert abs(estimator.reference_estimate - estimator.reference_accuracy) <= 0.01


@pytest.mark.parametrize("positive_class", BINARY)
def test_windows_track_accuracy_as_inputs_move_toward_the_boundary(positive_class):
    # After the shift the inputs crowd near the boundary, where the reference
    # has few: there the calibration is looser than the reference's size
    # suggests. With 10,000 reference predictions and windows of 10,000, the
    # error after the shift varies by about 0.9 points from seed to seed: 3
    # points is over 3 standard deviations.
    rng = np.random.default_rng(3)
    estimator = fitted(binary_predictions(rng, 10_000, scale=2.0), ["no", "yes"], positive_class)
    before = [binary_predictions(rng, 10_000, scale=2.0) for _ in range(2)]
    after = [binary_predictions(rng, 10_000, shift=0.3, scale=2.0) for _ in range(4)]
    realized = [realized_accuracy(rows) for rows in before + after]
    # The premise: about 90% before, about 75% after.
    assert min(realized[:2]) > 0.88
    assert max(realized[2:]) < 0.78
    # Confidence maps put the boundary at their low edge, where an isotonic
    # fit leans low (about half a point here) and is looser: 3.5 points for them.
    limit = 0.03 if positive_class else 0.035
    for rows, accuracy in zip(before + after, realized, strict=True):
        assert abs(estimate(estimator, rows).accuracy - accuracy) <= limit


def test_a_model_leaning_to_one_class_needs_the_sides_kept_apart():
    # Underconfident and leaning toward "no": the two sides of the boundary are
    # miscalibrated differently. A shift that also moves the class mix (to 70%
    # "yes" inputs) changes how one confidence map for both would mix them;
    # the positive probability's map, or one confidence map per predicted
    # class, keeps them apart.
    rng = np.random.default_rng(4)
    model = {"scale": 0.6, "offset": -0.8}
    reference = binary_predictions(rng, 5_000, **model)
    rows = binary_predictions(rng, 20_000, shift=0.3, share=0.7, **model)
    realized = realized_accuracy(rows)
    positive = estimate(fitted(reference, ["no", "yes"], "yes"), rows)
    per_class = estimate(fitted(reference, ["no", "yes"]), rows)
    shared = estimate(fitted(reference, ["no", "yes"], min_class_reference=10**6), rows)
    # Few reference inputs lie where the shifted ones crowd, near the
    # boundary: the calibration is looser there than the reference's size
    # suggests (about 1 point, seed to seed), hence 3 points.
    assert abs(positive.accuracy - realized) <= 0.03
    assert abs(per_class.accuracy - realized) <= 0.03
    assert abs(shared.accuracy - realized) > 0.08


def test_binary_f1_is_estimated():
    # As above: after the shift the F1 estimate's error varies by about 0.75
    # points from seed to seed with 10,000 reference predictions.
    rng = np.random.default_rng(5)
    reference = binary_predictions(rng, 10_000, scale=2.0)
    estimator = fitted(reference, ["no", "yes"], "yes")
    assert estimator.reference_f1 == pytest.approx(realized_f1(reference), abs=1e-12)
    for shift in (1.0, 0.3):
        rows = binary_predictions(rng, 20_000, shift=shift, scale=2.0)
        window = estimate(estimator, rows)
        assert abs(window.f1 - realized_f1(rows)) <= 0.025


def test_three_classes_are_estimated_with_and_without_a_mixture_shift():
    rng = np.random.default_rng(6)
    estimator = fitted(softmax_predictions(rng, 3_000), ["a", "b", "c"])
    assert set(estimator.class_calibrators) == {"a", "b", "c"}
    steady = softmax_predictions(rng, 20_000)
    shifted = softmax_predictions(rng, 20_000, weights=(0.1, 0.15, 0.25, 0.5))
    assert realized_accuracy(steady) - realized_accuracy(shifted) > 0.05
    for rows in (steady, shifted):
        realized = realized_accuracy(rows)
        assert mean_confidence(rows) - realized > 0.03  # overconfident
        assert abs(estimate(estimator, rows).accuracy - realized) <= 0.02


def test_each_class_gets_its_own_map_when_the_model_leans_to_one():
    rng = np.random.default_rng(7)
    model = {"temperature": 1.6, "bias": (1.5, 0.0, 0.0)}
    reference = softmax_predictions(rng, 10_000, **model)
    rows = softmax_predictions(rng, 20_000, weights=(0.49, 0.105, 0.105, 0.3), **model)
    realized = realized_accuracy(rows)
    by_class = estimate(fitted(reference, ["a", "b", "c"]), rows)
    shared = estimate(fitted(reference, ["a", "b", "c"], min_class_reference=10**6), rows)
    assert abs(by_class.accuracy - realized) <= 0.02
    assert abs(shared.accuracy - realized) > 0.04


def test_reference_figures_agree_with_expect_on_the_reference():
    rng = np.random.default_rng(8)
    for classes, positive, rows in (
        (["no", "yes"], "yes", binary_predictions(rng, 1_000, scale=2.0)),
        (["a", "b", "c"], None, softmax_predictions(rng, 1_000)),
    ):
        estimator = fitted(rows, classes, positive)
        p = np.array([estimator.expect(q, prediction).p_correct for q, prediction, _ in rows])
        assert estimator.reference_count == len(rows)
        assert estimator.reference_accuracy == pytest.approx(realized_accuracy(rows), abs=1e-12)
        assert estimator.reference_estimate == pytest.approx(p.mean(), abs=1e-12)
        assert estimator.reference_spread == pytest.approx(p.std(), abs=1e-12)


def test_the_standard_error_is_the_spread_of_realized_accuracy():
    rng = np.random.default_rng(9)
    p = rng.beta(5, 1.5, 400)
    window = EstimatedWindow()
    for value in p:
        window.add(Expectation(float(value)))
    realized = (rng.random((20_000, len(p))) < p).mean(axis=1)
    assert realized.mean() == pytest.approx(window.accuracy, abs=0.001)
    # 20,000 draws: the sample standard deviation is within 1% (3 sd: 2.1%).
    assert realized.std() == pytest.approx(window.accuracy_standard_error, rel=0.03)


def test_window_counts_expected_true_false_positives_and_negatives():
    window = EstimatedWindow()
    window.add_many(
        [
            Expectation(0.9, 0.9, True),
            Expectation(0.6, 0.6, True),
            Expectation(0.8, 0.2, False),
            Expectation(0.7, 0.3, False),
        ]
    )
    assert window.expected_true_positives == pytest.approx(1.5)
    assert window.expected_false_positives == pytest.approx(0.5)
    assert window.expected_false_negatives == pytest.approx(0.5)
    assert window.f1 == pytest.approx(3.0 / 4.0)
    assert window.accuracy == pytest.approx(0.75)
    window.reset()
    assert window.count == 0
    assert window.accuracy is None


# -- edge cases ------------------------------------------------------------------------


def test_too_few_labels_are_refused_clearly():
    rng = np.random.default_rng(10)
    estimator = ConfidenceEstimator(["no", "yes"], "yes")
    for probabilities, prediction, label in binary_predictions(rng, 49):
        estimator.learn(probabilities, prediction, label)
    with pytest.raises(ValueError, match=r"at least 50 labelled reference predictions .*, got 49"):
        estimator.fit()
    assert not estimator.ready
    with pytest.raises(RuntimeError, match="not fitted"):
        estimator.expect({"no": 0.3, "yes": 0.7}, "yes")
    estimator.learn({"no": 0.3, "yes": 0.7}, "yes", "yes")
    estimator.fit()
    assert estimator.ready
    with pytest.raises(RuntimeError, match="fitted"):
        estimator.learn({"no": 0.3, "yes": 0.7}, "yes", "yes")


def test_an_empty_window_has_no_figures():
    window = EstimatedWindow()
    assert (window.count, window.accuracy, window.f1, window.accuracy_standard_error) == (
        0,
        None,
        None,
        None,
    )


def test_f1_is_undefined_without_positives_and_absent_without_a_positive_class():
    window = EstimatedWindow()
    window.add(Expectation(1.0, 0.0, False))
    assert window.accuracy == 1.0
    assert window.f1 is None
    multiclass = EstimatedWindow()
    multiclass.add(Expectation(0.8))
    assert multiclass.f1 is None
    assert multiclass.expected_true_positives is None
    with pytest.raises(ValueError, match="not both"):
        multiclass.add(Expectation(0.8, 0.8, True))


@pytest.mark.parametrize("outcome", [0, 1])
def test_constant_outcomes_give_a_constant_map(outcome):
    calibrator = IsotonicCalibrator().fit([0.1, 0.5, 0.5, 0.9, 0.99], [outcome] * 5)
    assert calibrator.calibrate_many([0.0, 0.3, 0.5, 0.95, 1.0]).tolist() == [float(outcome)] * 5


def test_a_reference_that_was_always_right_expects_every_prediction_right():
    estimator = ConfidenceEstimator(min_reference=4)
    for p in (0.6, 0.7, 0.8, 0.9):
        estimator.learn({"a": p, "b": 1 - p}, "a", "a")
    estimator.fit()
    assert estimator.reference_accuracy == 1.0
    assert estimator.expect({"a": 0.5, "b": 0.5}, "b").p_correct == 1.0


def test_tied_scores_pool_before_the_fit():
    calibrator = IsotonicCalibrator().fit([0.2, 0.8, 0.2, 0.8], [0, 1, 1, 1])
    # 0.2 holds one right of two, 0.8 two of two: knots at both, linear between.
    assert calibrator.knots == (0.2, 0.8)
    assert calibrator.calibrate_many([0.0, 0.2, 0.5, 0.8, 1.0]).tolist() == pytest.approx(
        [0.5, 0.5, 0.75, 1.0, 1.0]
    )
    # One distinct score: the mean outcome everywhere.
    single = IsotonicCalibrator().fit([0.4] * 4, [1, 0, 0, 0])
    assert single.calibrate_many([0.0, 0.4, 1.0]).tolist() == [0.25] * 3
    assert IsotonicCalibrator().fit([0.3], [True]).calibrate(0.9) == 1.0


def test_a_violation_pools_neighbours():
    # 0.5 at 0.3 then 0 at 0.6 violate monotonicity: they pool to 1/3.
    calibrator = IsotonicCalibrator().fit([0.1, 0.3, 0.3, 0.6, 0.9], [0, 0, 1, 0, 1])
    assert calibrator.knots == (0.1, 0.3, 0.6, 0.9)
    assert calibrator.values == pytest.approx((0.0, 1 / 3, 1 / 3, 1.0))
    assert calibrator.count == 5


@pytest.mark.parametrize(
    ("scores", "outcomes", "message"),
    [
        ([0.1, 0.2], [0], "2 scores but 1 outcomes"),
        ([], [], "no scores"),
        ([0.1, 1.2], [0, 1], r"in \[0, 1\]"),
        ([0.1, float("nan")], [0, 1], r"in \[0, 1\]"),
        ([0.1, 0.2], [0, 2], "0 or 1"),
    ],
)
def test_the_calibrator_refuses_bad_input(scores, outcomes, message):
    with pytest.raises(ValueError, match=message):
        IsotonicCalibrator().fit(scores, outcomes)


def test_an_unfitted_calibrator_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        IsotonicCalibrator().calibrate(0.5)
    with pytest.raises(ValueError, match="finite"):
        IsotonicCalibrator().fit([0.1, 0.9], [0, 1]).calibrate(float("nan"))


def test_a_binary_model_may_publish_one_probability():
    rng = np.random.default_rng(11)
    estimator = fitted(binary_predictions(rng, 500), ["no", "yes"], "yes")
    for p_yes in (0.1, 0.45, 0.8):
        both = estimator.expect({"no": 1 - p_yes, "yes": p_yes}, "yes" if p_yes > 0.5 else "no")
        only_no = estimator.expect({"no": 1 - p_yes}, "yes" if p_yes > 0.5 else "no")
        assert only_no.p_positive == pytest.approx(both.p_positive, abs=1e-9)
        assert only_no.predicted_positive == both.predicted_positive


@pytest.mark.parametrize(
    ("classes", "positive"),
    [(["a", "b", "c"], "a"), (["a", "b"], "c"), (["a", "a"], None), (["a"], None)],
)
def test_inconsistent_parameters_are_refused(classes, positive):
    with pytest.raises(ValueError, match="classes"):
        ConfidenceEstimator(classes, positive)


def test_names_and_probabilities_are_checked():
    estimator = ConfidenceEstimator(["no", "yes"], "yes")
    with pytest.raises(ValueError, match="label 'maybe' is not one of the classes"):
        estimator.learn({"no": 0.4, "yes": 0.6}, "yes", "maybe")
    with pytest.raises(ValueError, match="unknown classes"):
        estimator.learn({"no": 0.4, "maybe": 0.6}, "no", "no")
    with pytest.raises(ValueError, match="probability"):
        estimator.learn({"no": -0.4, "yes": 1.4}, "yes", "yes")
    with pytest.raises(ValueError, match="probability"):
        estimator.learn({"no": float("nan"), "yes": float("nan")}, "yes", "yes")
    with pytest.raises(ValueError, match="empty"):
        estimator.learn({}, "yes", "yes")
    assert estimator.collected == 0
    # Rounding just past 1 is clipped, not refused.
    estimator.learn({"no": 0.0, "yes": 1.0 + 1e-12}, "yes", "yes")
    assert estimator.collected == 1


def test_a_positive_class_without_classes_refuses_a_third_class():
    estimator = ConfidenceEstimator(positive_class="yes", min_reference=2)
    estimator.learn({"no": 0.7, "yes": 0.3}, "no", "no")
    with pytest.raises(ValueError, match="binary tasks"):
        estimator.learn({"no": 0.2, "yes": 0.3, "maybe": 0.5}, "maybe", "no")
    estimator.learn({"no": 0.2, "yes": 0.8}, "yes", "no")
    estimator.fit()
    with pytest.raises(ValueError, match="third class"):
        estimator.expect({"maybe": 0.9}, "maybe")


# -- properties ------------------------------------------------------------------------

probability = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
# Coarse scores too, so that ties are common.
score = st.one_of(probability, st.integers(0, 10).map(lambda k: k / 10))
points = st.lists(st.tuples(score, st.booleans()), min_size=1, max_size=120)


def pava(scores, outcomes):
    """The isotonic fit at each distinct score, by the textbook pool-adjacent-violators."""
    groups = {}
    for s, y in zip(scores, outcomes, strict=True):
        total, count = groups.get(s, (0.0, 0))
        groups[s] = (total + y, count + 1)
    blocks = []  # [sum, weight, distinct scores]
    for s in sorted(groups):
        total, count = groups[s]
        blocks.append([total, count, [s]])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1][0] += last[0]
            blocks[-1][1] += last[1]
            blocks[-1][2] += last[2]
    return {s: total / weight for total, weight, members in blocks for s in members}


@settings(max_examples=200, deadline=None)
@given(points, st.lists(probability, max_size=30))
def test_the_map_is_monotone_within_0_1_and_the_isotonic_fit(data, others):
    scores = [s for s, _ in data]
    outcomes = [int(y) for _, y in data]
    calibrator = IsotonicCalibrator().fit(scores, outcomes)
    grid = sorted({*scores, *others, 0.0, 1.0})
    mapped = calibrator.calibrate_many(grid)
    assert np.all((mapped >= 0.0) & (mapped <= 1.0))
    assert np.all(np.diff(mapped) >= 0.0)
    expected = pava(scores, outcomes)
    for s in set(scores):
        assert calibrator.calibrate(s) == pytest.approx(expected[s], abs=1e-9)
    # So the mapped scores keep the mean outcome.
    assert calibrator.calibrate_many(scores).mean() == pytest.approx(np.mean(outcomes), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(points, st.randoms(use_true_random=False))
def test_the_map_does_not_depend_on_the_order_of_the_points(data, random):
    shuffled = list(data)
    random.shuffle(shuffled)
    one = IsotonicCalibrator().fit(*zip(*data, strict=True))
    two = IsotonicCalibrator().fit(*zip(*shuffled, strict=True))
    assert one.to_state() == two.to_state()


@settings(max_examples=100, deadline=None)
@given(points, st.lists(probability, min_size=1, max_size=30))
def test_a_calibrator_state_round_trips_through_json(data, probes):
    calibrator = IsotonicCalibrator().fit(*zip(*data, strict=True))
    state = json.loads(json.dumps(calibrator.to_state()))
    copy = IsotonicCalibrator.from_state(state)
    assert copy.to_state() == calibrator.to_state()
    assert copy.calibrate_many(probes).tolist() == calibrator.calibrate_many(probes).tolist()


expectations = st.one_of(
    st.lists(probability.map(Expectation), max_size=40),
    st.lists(
        st.builds(
            lambda p, predicted: Expectation(p if predicted else 1 - p, p, predicted),
            probability,
            st.booleans(),
        ),
        max_size=40,
    ),
)


@settings(max_examples=100, deadline=None)
@given(expectations, st.integers(min_value=0, max_value=40))
def test_a_window_state_round_trips_and_goes_on_where_it_was(items, cut):
    cut = min(cut, len(items))
    whole, first = EstimatedWindow(), EstimatedWindow()
    whole.add_many(items)
    first.add_many(items[:cut])
    resumed = EstimatedWindow.from_state(json.loads(json.dumps(first.to_state())))
    resumed.add_many(items[cut:])
    assert resumed.to_state() == whole.to_state()
    assert (resumed.accuracy, resumed.f1, resumed.accuracy_standard_error) == (
        whole.accuracy,
        whole.f1,
        whole.accuracy_standard_error,
    )


@pytest.mark.parametrize("binary", [True, False])
def test_an_estimator_state_round_trips_before_and_after_fitting(binary):
    rng = np.random.default_rng(12)
    if binary:
        classes, positive = ["no", "yes"], "yes"
        rows, probes = binary_predictions(rng, 600), binary_predictions(rng, 200, shift=0.3)
    else:
        classes, positive = ["a", "b", "c"], None
        rows, probes = softmax_predictions(rng, 900), softmax_predictions(rng, 200)
    whole = fitted(rows, classes, positive)
    half = ConfidenceEstimator(classes, positive)
    for probabilities, prediction, label in rows[:300]:
        half.learn(probabilities, prediction, label)
    resumed = ConfidenceEstimator.from_state(json.loads(json.dumps(half.to_state())))
    for probabilities, prediction, label in rows[300:]:
        resumed.learn(probabilities, prediction, label)
    resumed.fit()
    copy = ConfidenceEstimator.from_state(json.loads(json.dumps(whole.to_state())))
    assert resumed.to_state() == whole.to_state() == copy.to_state()
    for probabilities, prediction, _ in probes:
        assert copy.expect(probabilities, prediction) == whole.expect(probabilities, prediction)


@pytest.mark.parametrize(
    "damage",
    [
        {"kind": "EstimatedWindow"},
        {"version": 99},
        {"knots": [0.5, 0.2], "values": [0.1, 0.2]},
        {"knots": [0.2, 0.5], "values": [0.3, 0.1]},
        {"knots": [0.2], "values": [0.3, 0.4]},
        {"values": [0.1, 1.5]},
        {"count": -1},
    ],
)
def test_a_damaged_calibrator_state_is_refused(damage):
    state = IsotonicCalibrator().fit([0.2, 0.5], [0, 1]).to_state()
    state.update(damage)
    with pytest.raises(ValueError, match="state"):
        IsotonicCalibrator.from_state(state)


@settings(max_examples=100, deadline=None)
@given(
    binary=st.booleans(),
    scores=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30),
    counts=st.lists(st.integers(0, 5), min_size=30, max_size=30),
    predicted=st.sampled_from(["a", "b", "c"]),
)
def test_predictions_counted_by_score_are_expected_as_one_by_one(
    binary: bool, scores: list[float], counts: list[int], predicted: str
) -> None:
    """Scores of one class in bulk, each counted some times (the second stage's bins): the
    same expectations as each prediction's own, and a window with the same sums."""
    classes = ["a", "b"] if binary else ["a", "b", "c"]
    if predicted not in classes:
        predicted = "a"
    estimator = ConfidenceEstimator(classes, "b" if binary else None, min_reference=4)
    rng = np.random.default_rng(len(scores))
    for p in rng.random(40):
        label = classes[int(rng.integers(len(classes)))]
        prediction = "b" if binary and p >= 0.5 else classes[int(rng.integers(len(classes)))]
        estimator.learn({"b": float(p)} if binary else {prediction: float(p)}, prediction, label)
    estimator.fit()
    counts = counts[: len(scores)]
    p_correct, p_positive = estimator.expect_scores(scores, predicted)
    one_by_one = EstimatedWindow()
    for index, (score, count, correct) in enumerate(zip(scores, counts, p_correct, strict=True)):
        expectation = estimator.expect_score(score, predicted)
        assert expectation.p_correct == pytest.approx(correct, abs=1e-12)
        if binary:
            assert p_positive is not None
            assert expectation.p_positive == pytest.approx(p_positive[index], abs=1e-12)
        for _ in range(count):
            one_by_one.add(expectation)
    together = EstimatedWindow()
    together.add_counts(counts, p_correct, p_positive, (predicted == "b") if binary else None)
    assert together.count == one_by_one.count
    for name in ("accuracy", "accuracy_standard_error", "f1"):
        mine, theirs = getattr(together, name), getattr(one_by_one, name)
        assert (mine is None) == (theirs is None), name
        if mine is not None:
            assert mine == pytest.approx(theirs, abs=1e-9), name


@settings(max_examples=200, deadline=None)
@given(
    binary=st.booleans(),
    rows=st.lists(
        st.tuples(
            st.integers(0, 3),
            st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
            st.one_of(
                st.none(),
                st.dictionaries(
                    st.sampled_from(["a", "b", "c"]),
                    st.one_of(st.floats(-0.1, 1.1), st.sampled_from([0.0, 1.0, float("nan")])),
                    max_size=3,
                ),
            ),
        ),
        max_size=60,
    ),
)
def test_score_bins_count_each_prediction_in_the_bin_of_its_score(binary: bool, rows) -> None:
    """Whatever the probabilities (missing, out of range, not numbers): each prediction with a
    class and a score is counted once, in its window, class and bin; the others not at all."""
    positive = "b" if binary else None
    expected: Counter[tuple[int, str, int]] = Counter()
    for window, prediction, chances in rows:
        if not chances or prediction is None:
            continue
        try:
            score = prediction_score(chances, prediction, positive)
        except ValueError:
            continue
        expected[(window, prediction, min(int(score * SCORE_BINS), SCORE_BINS - 1))] += 1
    found = score_bins(*zip(*rows, strict=True), positive) if rows else []
    counted: Counter[tuple[int, str, int]] = Counter()
    for bins in found:
        assert bins.counts[0] > 0
        assert bins.counts[-1] > 0
        for place, count in enumerate(bins.counts, start=bins.first):
            if count:
                counted[(bins.window, bins.prediction, place)] += count
    assert counted == expected
    assert [(b.window, b.prediction) for b in found] == sorted({k[:2] for k in expected})
