"""Realized metrics and uncertainty summaries over a set of predictions, with River.

:class:`RealizedMetrics` compares predictions with their labels: accuracy,
precision, recall, F1, log loss and ROC AUC for a classifier (the last four
of a binary one's positive class; macro averages and cross-entropy for more
classes), MAE and RMSE for a regressor. :class:`UncertaintySummary` keeps
means and quantiles of how sure the model was. Both are River ``metrics``
and ``stats`` under the hood, so one instance per window (or one since the
reference) costs a few small objects.

>>> metrics = RealizedMetrics(classes=["stays", "leaves"], positive_class="leaves")
>>> metrics.update("leaves", "leaves", {"stays": 0.2, "leaves": 0.8})
>>> metrics.update("stays", "leaves", {"stays": 0.4, "leaves": 0.6})
>>> {name: round(value, 3) for name, value in metrics.values().items()}
{'accuracy': 0.5, 'precision': 0.5, 'recall': 1.0, 'f1': 0.667, 'log_loss': 0.57, 'roc_auc': 1.0}
"""

import math
from collections.abc import Mapping, Sequence
from typing import Any

from river import metrics as river_metrics
from river import stats

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


class UncertaintySummary:
    """Means and quantiles of how sure a model was over a set of predictions."""

    def __init__(self) -> None:
        self._means: dict[str, stats.Mean] = {}
        self._quantiles: dict[str, list[stats.Quantile]] = {}

    def update(self, measures: Mapping[str, float]) -> None:
        """Add one prediction's measures (``margin``, ``entropy``, ... by name)."""
        for name, value in measures.items():
            if name not in self._means:
                self._means[name] = stats.Mean()
                self._quantiles[name] = [stats.Quantile(q) for q in UNCERTAINTY_QUANTILES]
            self._means[name].update(value)
            for quantile in self._quantiles[name]:
                quantile.update(value)

    def values(self) -> dict[str, float]:
        """``<measure>_mean`` and ``<measure>_p10`` (p50, p90) for each measure seen."""
        out: dict[str, float] = {}
        for name, mean in self._means.items():
            out[f"{name}_mean"] = float(mean.get())
            for q, quantile in zip(UNCERTAINTY_QUANTILES, self._quantiles[name], strict=True):
                value = quantile.get()
                if value is not None:
                    out[f"{name}_p{round(q * 100)}"] = float(value)
        return out
