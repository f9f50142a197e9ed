"""River's metrics as driftline reports them, checked against direct computation."""

import math
from unittest.mock import patch

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors import window_metrics
from driftline.monitors.window_metrics import HitCounts, RealizedMetrics, UncertaintySummary


def test_binary_metrics_match_their_definitions():
    rng = np.random.default_rng(3)
    p_yes = rng.random(2_000)
    truth = rng.random(2_000) < p_yes
    predicted = p_yes >= 0.5
    metrics = RealizedMetrics(classes=["no", "yes"], positive_class="yes")
    for p, t, q in zip(p_yes, truth, predicted, strict=True):
        metrics.update("yes" if t else "no", "yes" if q else "no", {"yes": p, "no": 1 - p})
    values = metrics.values()
    tp = int(np.sum(truth & predicted))
    fp = int(np.sum(~truth & predicted))
    fn = int(np.sum(truth & ~predicted))
    assert values["accuracy"] == pytest.approx(np.mean(truth == predicted))
    assert values["precision"] == pytest.approx(tp / (tp + fp))
    assert values["recall"] == pytest.approx(tp / (tp + fn))
    assert values["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    log_loss = -np.mean(np.where(truth, np.log(p_yes), np.log(1 - p_yes)))
    assert values["log_loss"] == pytest.approx(log_loss)
    assert 0.6 < values["roc_auc"] < 0.95  # River's ROC AUC is approximate


def test_regression_metrics_and_an_empty_window():
    metrics = RealizedMetrics(classes=None)
    assert metrics.values() == {}
    for label, prediction in [(1.0, 2.0), (0.0, -3.0), (2.0, 2.0)]:
        metrics.update(label, prediction)
    assert metrics.values() == pytest.approx({"mae": 4 / 3, "rmse": (10 / 3) ** 0.5})


def test_multiclass_metrics_are_macro_averages_and_cross_entropy():
    metrics = RealizedMetrics(classes=["a", "b", "c"])
    metrics.update("a", "a", {"a": 0.5, "b": 0.25, "c": 0.25})
    metrics.update("b", "c", {"a": 0.25, "b": 0.25, "c": 0.5})
    values = metrics.values()
    assert values["accuracy"] == 0.5
    assert values["log_loss"] == pytest.approx(-(np.log(0.5) + np.log(0.25)) / 2)
    assert "roc_auc" not in values


def test_uncertainty_summary_means_and_quantiles():
    summary = UncertaintySummary()
    for value in np.linspace(0.0, 1.0, 1_001):
        summary.update({"margin": float(value)})
    values = summary.values()
    assert values["margin_mean"] == pytest.approx(0.5)
    assert values["margin_p10"] == pytest.approx(0.1, abs=0.02)
    assert values["margin_p90"] == pytest.approx(0.9, abs=0.02)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=300),
    st.lists(st.integers(min_value=1, max_value=80), max_size=20),
    st.sampled_from([4, 16, 65_536]),
)
def test_a_summary_does_not_depend_on_how_its_values_came(values, cuts, sample):
    one_by_one, in_arrays = UncertaintySummary(), UncertaintySummary()
    with patch.object(window_metrics, "UNCERTAINTY_SAMPLE", sample):
        for value in values:
            one_by_one.update({"margin": value})
        start = 0
        for size in [*cuts, len(values)]:
            in_arrays.update_many("margin", np.asarray(values[start : start + size]))
            start += size
    assert in_arrays.values() == one_by_one.values()
    kept = values[:: 1 << max(0, math.ceil(math.log2(len(values) / sample)))]
    assert in_arrays.values()["margin_mean"] == pytest.approx(float(np.mean(kept)))
    one_by_one.seal()
    assert one_by_one.values() == in_arrays.values()
    with pytest.raises(ValueError, match="sealed"):
        one_by_one.update({"margin": 0.0})


@pytest.mark.parametrize(("classes", "positive"), [(["no", "yes"], "yes"), (["a", "b", "c"], None)])
def test_hit_counts_give_the_accuracy_and_f1_river_gives(classes, positive):
    rng = np.random.default_rng(9)
    hits, metrics = HitCounts(positive), RealizedMetrics(classes, positive)
    assert (hits.accuracy, hits.f1) == (None, None)
    for _ in range(500):
        label, prediction = rng.choice(classes), rng.choice(classes)
        hits.update(str(label), str(prediction))
        metrics.update(str(label), str(prediction))
    values = metrics.values()
    assert hits.count == 500
    assert hits.accuracy == values["accuracy"]
    if positive is None:
        assert hits.f1 is None  # the estimator estimates no macro F1
    else:
        assert hits.f1 == pytest.approx(values["f1"], abs=1e-12)


def test_hit_counts_have_no_f1_without_a_positive_label_or_prediction():
    hits = HitCounts("yes")
    hits.update("no", "no")
    assert (hits.accuracy, hits.f1) == (1.0, None)
    hits.update("yes", "no")
    assert (hits.accuracy, hits.f1) == (0.5, 0.0)


def one_at_a_time(classes: list[str], positive: str | None, labelled, reads=()) -> dict:
    """River's metrics given each labelled prediction as it comes, and read before those at
    ``reads`` (a read fills in River's empty rows and columns): what the waiting list and its
    weighted updates must give, state and all."""
    river = window_metrics.metrics
    if positive is not None:
        named = {
            "accuracy": river.Accuracy(),
            "precision": river.Precision(),
            "recall": river.Recall(),
            "f1": river.F1(),
            "log_loss": river.LogLoss(),
            "roc_auc": river.ROCAUC(),
        }
    else:
        named = {
            "accuracy": river.Accuracy(),
            "precision": river.MacroPrecision(),
            "recall": river.MacroRecall(),
            "f1": river.MacroF1(),
            "log_loss": river.CrossEntropy(),
        }
    for number, (label, prediction, probabilities) in enumerate(labelled):
        if number in reads and number > 0:
            for metric in named.values():
                metric.get()
        if prediction is not None:
            named["accuracy"].update(label, prediction)
        if positive is not None:
            truth = label == positive
            if prediction is not None:
                for name in ("precision", "recall", "f1"):
                    named[name].update(truth, prediction == positive)
            if probabilities is not None:
                p = min(max(probabilities.get(positive, 0.0), 1e-15), 1 - 1e-15)
                named["log_loss"].update(truth, p)
                named["roc_auc"].update(truth, p)
            continue
        if prediction is not None:
            for name in ("precision", "recall", "f1"):
                named[name].update(label, prediction)
        if probabilities is not None:
            named["log_loss"].update(label, dict(probabilities))
    return {name: window_metrics._metric_state(metric) for name, metric in named.items()}


@st.composite
def labelled_predictions(draw, classes: list[str]):
    count = draw(st.integers(0, 60))
    chances = st.one_of(
        st.sampled_from([0.0, 1e-17, 0.25, 0.5, 1 / 3, 0.75, 1.0]), st.floats(0.0, 1.0)
    )
    labelled = []
    for _ in range(count):
        label = draw(st.sampled_from(classes))
        prediction = draw(st.one_of(st.none(), st.sampled_from(classes)))
        shares = draw(
            st.one_of(st.none(), st.lists(chances, min_size=len(classes), max_size=len(classes)))
        )
        labelled.append(
            (label, prediction, None if shares is None else dict(zip(classes, shares, strict=True)))
        )
    return labelled


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    binary=st.booleans(),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_labels_taken_together_give_river_s_metrics_of_one_at_a_time_bit_for_bit(
    data, binary: bool, cuts: list[int]
):
    classes, positive = (["no", "yes"], "yes") if binary else (["a", "b", "c"], None)
    labelled = data.draw(labelled_predictions(classes))
    metrics = RealizedMetrics(classes, positive)
    for number, (label, prediction, probabilities) in enumerate(labelled):
        if number in cuts:
            metrics.values()  # read midway: what waited goes to the metrics then
        metrics.update(label, prediction, probabilities)
    state = metrics.to_state()
    assert state["count"] == len(labelled)
    assert state["metrics"] == one_at_a_time(classes, positive, labelled, cuts)
    copy = RealizedMetrics(classes, positive)
    copy.load_state(state)
    assert copy.to_state() == state


def test_a_long_wait_goes_to_the_metrics_without_being_read():
    metrics = RealizedMetrics(["no", "yes"], "yes")
    for number in range(window_metrics.PENDING_LABELS + 5):
        metrics.update("yes", "no" if number % 3 else "yes", {"no": 0.4, "yes": 0.6})
    assert len(metrics._pending) == 5
    assert metrics.values()["accuracy"] == pytest.approx(1 / 3, abs=1e-3)
