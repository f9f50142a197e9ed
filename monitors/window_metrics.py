"""Realized metrics and uncertainty summaries over a set of predictions.

:class:`RealizedMetrics` compares predictions with their labels: accuracy,
precision, recall, F1, log loss and ROC AUC for a classifier (the last four
of a binary one's positive class; macro averages and cross-entropy for more
classes), MAE and RMSE for a regressor, with River's ``metrics``, so one
instance per window (or one since the reference) costs a few small objects.
:class:`HitCounts` counts accuracy and F1 alone, the metrics the estimator
estimates, for the labelled predictions of a window that it estimated.
:class:`UncertaintySummary` keeps means and quantiles of how sure the model
was, from the values themselves, so that it takes them in arrays as well as
one by one.

>>> metrics = RealizedMetrics(classes=["stays", "leaves"], positive_class="leaves")
>>> metrics.update("leaves", "leaves", {"stays": 0.2, "leaves": 0.8})
>>> metrics.update("stays", "leaves", {"stays": 0.4, "leaves": 0.6})
>>> {name: round(value, 3) for name, value in metrics.values().items()}
{'accuracy': 0.5, 'precision': 0.5, 'recall': 1.0, 'f1': 0.667, 'log_loss': 0.57, 'roc_auc': 1.0}
"""

import math
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from river import metrics as river_metrics

metrics: Any = river_metrics  # River's metric constructors are untyped

UNCERTAINTY_QUANTILES = (0.1, 0.5, 0.9)
"""Quantiles of the margin (or interval width) reported per window."""


class RealizedMetrics:
    """Performance of labelled predictions, by River's metrics.

    Parameters
    ----------
    classes
        The classes of a classifier; None for a regressor.
    positive_class
        For a binary classifier, the class precision, recall, F1, log loss
        and ROC AUC are about.
    """

    def __init__(self, classes: Sequence[str] | None, positive_class: str | None = None) -> None:
        self.classes = classes
        self.positive_class = positive_class
        self.count = 0
        self._regression = classes is None
        self._metrics: dict[str, Any] = {}
        if self._regression:
            self._metrics = {"mae": metrics.MAE(), "rmse": metrics.RMSE()}
        elif positive_class is not None:
            self._metrics = {
                "accuracy": metrics.Accuracy(),
                "precision": metrics.Precision(),
                "recall": metrics.Recall(),
                "f1": metrics.F1(),
                "log_loss": metrics.LogLoss(),
                "roc_auc": metrics.ROCAUC(),
            }
        else:
            self._metrics = {
                "accuracy": metrics.Accuracy(),
                "precision": metrics.MacroPrecision(),
                "recall": metrics.MacroRecall(),
                "f1": metrics.MacroF1(),
                "log_loss": metrics.CrossEntropy(),
            }

    def update(
        self,
        label: str | float,
        prediction: str | float | None,
        probabilities: Mapping[str, float] | None = None,
    ) -> None:
        """Count one labelled prediction; probability metrics only when probabilities came."""
        self.count += 1
        if self._regression:
            if isinstance(label, float) and isinstance(prediction, float):
                self._metrics["mae"].update(label, prediction)
                self._metrics["rmse"].update(label, prediction)
            return
        if prediction is not None:
            self._metrics["accuracy"].update(label, prediction)
        positive = self.positive_class
        if positive is not None:
            truth = label == positive
            if prediction is not None:
                for name in ("precision", "recall", "f1"):
                    self._metrics[name].update(truth, prediction == positive)
            if probabilities is not None:
                p = min(max(probabilities.get(positive, 0.0), 1e-15), 1 - 1e-15)
                self._metrics["log_loss"].update(truth, p)
                self._metrics["roc_auc"].update(truth, p)
            return
        if prediction is not None:
            for name in ("precision", "recall", "f1"):
                self._metrics[name].update(label, prediction)
        if probabilities is not None:
            self._metrics["log_loss"].update(label, dict(probabilities))

    def values(self) -> dict[str, float]:
        """Each metric that has seen data, by name."""
        if self.count == 0:
            return {}
        values = {name: float(metric.get()) for name, metric in self._metrics.items()}
        return {name: value for name, value in values.items() if math.isfinite(value)}


class HitCounts:
    """Accuracy, and a binary classifier's F1, of labelled predictions, from counts alone.

    The realized side of what the estimator estimates, for a subset of a
    window's labelled predictions (those it estimated): an estimate is
    checked against the same predictions, not against the whole window. A few
    integers, where a second :class:`RealizedMetrics` would run six of
    River's metrics on each label. F1 is that of ``positive_class``,
    ``2 TP / (2 TP + FP + FN)``, the ratio the estimator estimates.

    Parameters
    ----------
    positive_class
        For a binary classifier, the class whose F1 is counted; None otherwise.

    >>> hits = HitCounts(positive_class="leaves")
    >>> for label, prediction in [("leaves", "leaves"), ("stays", "leaves"), ("stays", "stays")]:
    ...     hits.update(label, prediction)
    >>> hits.count, round(hits.accuracy, 3), round(hits.f1, 3)
    (3, 0.667, 0.667)
    """

    def __init__(self, positive_class: str | None = None) -> None:
        self.positive_class = positive_class
        self.count = 0
        self.right = 0
        self.true_positives = self.false_positives = self.false_negatives = 0

    def update(self, label: str | float, prediction: str | float | None) -> None:
        """Count one labelled prediction."""
        self.count += 1
        self.right += label == prediction
        positive = self.positive_class
        if positive is None:
            return
        truth, predicted = label == positive, prediction == positive
        self.true_positives += truth and predicted
        self.false_positives += predicted and not truth
        self.false_negatives += truth and not predicted

    @property
    def accuracy(self) -> float | None:
        """The share of right predictions; None before any."""
        return self.right / self.count if self.count else None

    @property
    def f1(self) -> float | None:
        """F1 of the positive class; None without one, or with no positive label nor prediction."""
        if self.positive_class is None:
            return None
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else None


class UncertaintySummary:
    """Means and quantiles of how sure a model was over a set of predictions.

    The values themselves are kept, and summarised (exact means, linearly
    interpolated quantiles, with numpy) when read, so the summary depends
    only on the values and their order, never on whether they came one by
    one (:meth:`update`) or in arrays (:meth:`update_many`). Past
    ``UNCERTAINTY_SAMPLE`` values of a measure, a systematic sample of them
    is kept instead (every 2nd, then every 4th, ... value), which bounds the
    memory of a large window. :meth:`seal` summarises once and lets the
    values go: a window waiting for its labels keeps only its summary.
    """

    def __init__(self) -> None:
        self._values: dict[str, array[float]] = {}
        self._seen: dict[str, int] = {}
        self._strides: dict[str, int] = {}
        self._sealed: dict[str, float] | None = None

    def update(self, measures: Mapping[str, float]) -> None:
        """Add one prediction's measures (``margin``, ``entropy``, ... by name)."""
        for name, value in measures.items():
            kept = self._values.get(name)
            if kept is None or self._strides[name] > 1 or self._sealed is not None:
                self.update_many(name, np.array([value], dtype=np.float64))
                continue
            kept.append(value)
            self._seen[name] += 1
            if len(kept) > UNCERTAINTY_SAMPLE:
                self._thin(name)

    def update_many(self, name: str, values: npt.NDArray[np.float64]) -> None:
        """Add one measure of several predictions, in their order."""
        if self._sealed is not None:
            raise ValueError("a sealed summary takes no more values")
        if not len(values):
            return
        kept = self._values.get(name)
        if kept is None:
            kept = self._values[name] = array("d")
            self._seen[name], self._strides[name] = 0, 1
        seen, stride = self._seen[name], self._strides[name]
        kept.frombytes(np.ascontiguousarray(values[(-seen) % stride :: stride]).tobytes())
        self._seen[name] = seen + len(values)
        while len(kept) > UNCERTAINTY_SAMPLE:
            kept = self._thin(name)

    def _thin(self, name: str) -> "array[float]":
        """Keep every other value kept so far (those at multiples of twice the stride)."""
        kept = self._values[name] = self._values[name][::2]
        self._strides[name] *= 2
        return kept

    def values(self) -> dict[str, float]:
        """``<measure>_mean`` and ``<measure>_p10`` (p50, p90) for each measure seen."""
        if self._sealed is not None:
            return dict(self._sealed)
        out: dict[str, float] = {}
        for name in sorted(self._values, key=_measure_order):
            kept = np.frombuffer(self._values[name], dtype=np.float64)
            out[f"{name}_mean"] = float(kept.mean())
            quantiles = np.quantile(kept, UNCERTAINTY_QUANTILES)
            for q, value in zip(UNCERTAINTY_QUANTILES, quantiles, strict=True):
                out[f"{name}_p{round(q * 100)}"] = float(value)
        return out

    def seal(self) -> None:
        """Summarise now and drop the values: no more will come."""
        if self._sealed is None:
            self._sealed = self.values()
            self._values, self._seen, self._strides = {}, {}, {}


UNCERTAINTY_SAMPLE = 65_536
"""Values of a measure a summary keeps; past it, a systematic sample of them."""

_MEASURES = ("margin", "entropy", "least_confidence", "interval_width")
"""The order in which measures are summarised (any other after them, by name)."""


def _measure_order(name: str) -> tuple[int, str]:
    return (_MEASURES.index(name) if name in _MEASURES else len(_MEASURES), name)
