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
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
from river import metrics as river_metrics
from river.metrics.base import MeanMetric

from driftline.monitors.packing import pack_floats, unpack_float_array
from driftline.monitors.state import (
    State,
    Stateful,
    check_header,
    header,
    integer_field,
    is_integer,
    number_field,
)

metrics: Any = river_metrics  # River's metric constructors are untyped

PENDING_LABELS = 4_096
"""A classifier's labelled predictions that wait to go to River's metrics together, at most."""

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
        self._pending: list[tuple[str | float, str | float | None, Mapping[str, float] | None]] = []
        """A classifier's labelled predictions not yet given to the metrics (:meth:`_flush`)."""
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
        """Count one labelled prediction; probability metrics only when probabilities came.

        A classifier's labelled predictions wait in a list, and go to River's
        metrics together when the metrics are read or saved (or the list is
        long): see :meth:`_flush`.
        """
        self.count += 1
        if self._regression:
            if isinstance(label, float) and isinstance(prediction, float):
                self._metrics["mae"].update(label, prediction)
                self._metrics["rmse"].update(label, prediction)
            return
        pending = self._pending
        pending.append((label, prediction, probabilities))
        if len(pending) >= PENDING_LABELS:
            self._flush()

    def update_many(
        self,
        rows: Sequence[tuple[str | float, str | float | None, Mapping[str, float] | None]],
    ) -> None:
        """:meth:`update` on each (label, prediction, probabilities) in turn."""
        if self._regression:
            for label, prediction, probabilities in rows:
                self.update(label, prediction, probabilities)
            return
        self.count += len(rows)
        self._pending.extend(rows)
        if len(self._pending) >= PENDING_LABELS:
            self._flush()

    def _flush(self) -> None:
        """Give River's metrics the labelled predictions waiting, as one at a time would.

        A confusion matrix only adds up weights: the predictions of each
        (label, prediction) pair go to it in one update, weighted by their
        count, the pairs in the order each first came, so the matrix holds
        its rows, columns and cells in the order one at a time gives them,
        and the same sums (whole numbers, exact in floating point); only its
        count of updates is set right after. ROC AUC's matrices see a
        probability only through which of their thresholds it passes, so the
        probabilities passing the same ones go together too. A log loss is a
        running mean, taken value by value in order, as River's ``Mean`` takes
        them. The metrics then hold what one update per prediction gives,
        bit for bit, at a fraction of its cost (one update per prediction
        costs 11 to 14 updates of a matrix).
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        metrics = self._metrics
        positive = self.positive_class
        predicted = [
            (label, prediction) for label, prediction, _ in pending if prediction is not None
        ]
        pairs = Counter(predicted)
        _update_weighted(metrics["accuracy"], pairs)
        if positive is None:
            for name in ("precision", "recall", "f1"):
                _update_weighted(metrics[name], pairs)
            log_loss = metrics["log_loss"]
            _take_means(
                log_loss._mean,
                [
                    log_loss._eval(label, dict(probabilities))
                    for label, _, probabilities in pending
                    if probabilities is not None
                ],
            )
            return
        hits: Counter[tuple[bool, bool]] = Counter()
        for (label, prediction), count in pairs.items():  # in the order each first came
            hits[(label == positive, prediction == positive)] += count
        for name in ("precision", "recall", "f1"):
            _update_weighted(metrics[name], hits)
        scored = [
            (label == positive, probabilities.get(positive, 0.0))
            for label, _, probabilities in pending
            if probabilities is not None
        ]
        if not scored:
            return
        truths = np.array([truth for truth, _ in scored], dtype=bool)
        chances = np.clip(np.array([p for _, p in scored], dtype=np.float64), 1e-15, 1 - 1e-15)
        log = math.log
        _take_means(
            metrics["log_loss"]._mean,
            [-log(p) for p in np.where(truths, chances, 1 - chances).tolist()],
        )
        roc = metrics["roc_auc"]
        # The thresholds each probability is above: those before its place among them.
        passed = np.searchsorted(roc.thresholds, chances, side="left")
        keys = passed * 2 + truths
        _, first, counts = np.unique(keys, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")
        _update_weighted(
            roc,
            Counter(
                {
                    (bool(truths[at]), float(chances[at])): int(count)
                    for at, count in zip(first[order].tolist(), counts[order].tolist(), strict=True)
                }
            ),
        )

    def values(self) -> dict[str, float]:
        """Each metric that has seen data, by name."""
        if self.count == 0:
            return {}
        self._flush()
        values = {name: float(metric.get()) for name, metric in self._metrics.items()}
        return {name: value for name, value in values.items() if math.isfinite(value)}

    # State as plain data (see :mod:`driftline.monitors.state`).

    def to_state(self) -> State:
        """What River's metrics have counted, as JSON-ready data.

        Each metric is what it sums: a confusion matrix (accuracy, precision,
        recall, F1), a running mean (log loss, cross-entropy, MAE, RMSE), or
        ROC AUC's confusion matrices at its thresholds. A matrix keeps its
        classes in the order they came (:func:`_matrix_state`): the macro
        averages add the classes up in the order of a set built from them,
        and floating-point sums depend on their order. The classes and the
        positive class come from the constructor (the spec), not the state.

        >>> metrics = RealizedMetrics(classes=["a", "b"])
        >>> metrics.update("a", "b", {"a": 0.4, "b": 0.6})
        >>> copy = RealizedMetrics(classes=["a", "b"])
        >>> copy.load_state(metrics.to_state())
        >>> copy.values() == metrics.values()
        True
        """
        self._flush()
        return {
            **header(type(self).__name__),
            "count": self.count,
            "metrics": {name: _metric_state(metric) for name, metric in self._metrics.items()},
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take up what :meth:`to_state` gave, for metrics made with the same parameters.

        ValueError (naming the field) if ``state`` is not such a state; the
        metrics are then in no defined state.
        """
        check_header(state, type(self).__name__)
        count = integer_field(state, "count")
        saved = state.get("metrics")
        if not isinstance(saved, Mapping) or list(saved) != list(self._metrics):
            raise ValueError(
                f"state: metrics must be a mapping of {list(self._metrics)}, got {saved!r}"
            )
        for name, metric in self._metrics.items():
            _load_metric(metric, saved[name], f"metrics.{name}")
        self.count = count
        self._pending = []


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

    _COUNTS = ("count", "right", "true_positives", "false_positives", "false_negatives")

    def to_state(self) -> State:
        """The counts, as JSON-ready data (the positive class comes from the constructor).

        >>> hits = HitCounts("yes")
        >>> hits.update("yes", "no")
        >>> hits.to_state()["false_negatives"]
        1
        """
        state = header(type(self).__name__)
        for name in self._COUNTS:
            state[name] = int(getattr(self, name))
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Take up the counts :meth:`to_state` gave; ValueError (naming the field) if
        ``state`` is not such a state."""
        check_header(state, type(self).__name__)
        counts = {name: integer_field(state, name) for name in self._COUNTS}
        count = counts["count"]
        if counts["right"] > count:
            raise ValueError("state: right must be at most count")
        if self.positive_class is None and any(counts[name] for name in self._COUNTS[2:]):
            raise ValueError("state: counts of a positive class, without one")
        if counts["true_positives"] + counts["false_positives"] + counts["false_negatives"] > count:
            raise ValueError("state: more true and false positives and negatives than count")
        for name, value in counts.items():
            setattr(self, name, value)


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

    def to_state(self) -> State:
        """The values kept (packed exactly, as base64 of doubles) or the sealed summary.

        >>> summary = UncertaintySummary()
        >>> summary.update({"margin": 0.25})
        >>> UncertaintySummary.from_state(summary.to_state()).values() == summary.values()
        True
        """
        return {
            **header(type(self).__name__),
            "values": {name: pack_floats(kept) for name, kept in self._values.items()},
            "seen": dict(self._seen),
            "strides": dict(self._strides),
            "sealed": None if self._sealed is None else dict(self._sealed),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """The summary :meth:`to_state` described; ValueError (naming the field) if
        ``state`` is not one."""
        check_header(state, cls.__name__)
        values, seen, strides = (_mapping(state, key) for key in ("values", "seen", "strides"))
        sealed = state.get("sealed")
        if not (set(values) == set(seen) == set(strides)):
            raise ValueError("state: values, seen and strides must name the same measures")
        summary = cls()
        for name, packed in values.items():
            kept = array("d", unpack_float_array(packed, f"values.{name}").tobytes())
            count, stride = integer_field(seen, name), integer_field(strides, name, minimum=1)
            if stride & (stride - 1) or len(kept) > UNCERTAINTY_SAMPLE:
                raise ValueError(f"state: strides.{name} must be a power of 2, with few values")
            if len(kept) != -(-count // stride):
                raise ValueError(f"state: values.{name} must hold every {stride}th of {count}")
            summary._values[name], summary._seen[name], summary._strides[name] = (
                kept,
                count,
                stride,
            )
        if sealed is not None:
            if not isinstance(sealed, Mapping) or values:
                raise ValueError(
                    "state: sealed must be a mapping, and a sealed summary keeps no values"
                )
            summary._sealed = {str(name): number_field(sealed, name) for name in sealed}
        return summary


UNCERTAINTY_SAMPLE = 65_536
"""Values of a measure a summary keeps; past it, a systematic sample of them."""

_MEASURES = ("margin", "entropy", "least_confidence", "interval_width")
"""The order in which measures are summarised (any other after them, by name)."""


def _measure_order(name: str) -> tuple[int, str]:
    return (_MEASURES.index(name) if name in _MEASURES else len(_MEASURES), name)


# State helpers: River's metrics, and arrays of doubles.

Key = str | bool | int | float
"""What a confusion matrix is indexed by: a class (or a label as it came), or a boolean."""


def _update_weighted(metric: Any, counts: Counter[tuple[Any, Any]]) -> None:
    """Give ``metric`` each ``(truth, prediction)`` once, weighted by its count, in the order
    of ``counts``; then set its matrices' counts of updates to one per prediction."""
    if not counts:
        return
    for (truth, prediction), count in counts.items():
        metric.update(truth, prediction, w=float(count))
    more = counts.total() - len(counts)
    for matrix in metric.cms if isinstance(metric, river_metrics.ROCAUC) else [metric.cm]:
        matrix.n_samples += more


def _take_means(mean: Any, values: Sequence[float]) -> None:
    """Add ``values`` in order to a River ``stats.Mean``, as its ``update`` does one by one."""
    n, running = mean.n, mean._mean
    for value in values:
        n += 1.0
        running += (1.0 / n) * (value - running)
    mean.n, mean._mean = n, running


def _metric_state(metric: Any) -> State:
    """What one of River's metrics has counted (see :meth:`RealizedMetrics.to_state`)."""
    if isinstance(metric, MeanMetric):
        mean = metric._mean
        return {"mean": [mean.n, mean._mean]}
    if isinstance(metric, river_metrics.ROCAUC):
        return {"matrices": [_matrix_state(matrix) for matrix in metric.cms]}
    return {"matrix": _matrix_state(metric.cm)}


def _load_metric(metric: Any, state: object, field: str) -> None:
    """Put what :func:`_metric_state` wrote back into ``metric``, made as the one that wrote it."""
    if not isinstance(state, Mapping):
        raise ValueError(f"state: {field} must be a mapping, got {state!r}")
    if isinstance(metric, MeanMetric):
        mean = state.get("mean")
        if not (isinstance(mean, list) and len(mean) == 2):
            raise ValueError(f"state: {field}.mean must be [weight, mean], got {mean!r}")
        pair = {"weight": mean[0], "mean": mean[1]}
        metric._mean.n = number_field(pair, "weight", minimum=0.0)
        metric._mean._mean = number_field(pair, "mean")
    elif isinstance(metric, river_metrics.ROCAUC):
        matrices = state.get("matrices")
        if not (isinstance(matrices, list) and len(matrices) == len(metric.cms)):
            raise ValueError(f"state: {field}.matrices must be {len(metric.cms)} matrices")
        for number, (matrix, saved) in enumerate(zip(metric.cms, matrices, strict=True)):
            _load_matrix(matrix, saved, f"{field}.matrices[{number}]")
    else:
        # In place: F1 shares its matrix with its precision and recall.
        _load_matrix(metric.cm, state.get("matrix"), f"{field}.matrix")


def _matrix_state(matrix: Any) -> State:
    """A River ``ConfusionMatrix`` as JSON-ready data: its totals, and its row sums, column
    sums and cells as ``[key(s), weight]`` lists in the order the matrix holds them.

    The keys stay what they were (a string, or a boolean for a binary
    metric): JSON keeps their types in lists, not as the keys of an object.
    """
    return {
        "samples": matrix.n_samples,
        "weight": matrix.total_weight,
        "hits": matrix._total_true_positives,
        "rows": [[key, weight] for key, weight in matrix.sum_row.items()],
        "columns": [[key, weight] for key, weight in matrix.sum_col.items()],
        "cells": [
            [row, column, weight]
            for row, cells in matrix.data.items()
            for column, weight in cells.items()
        ],
    }


def _load_matrix(matrix: Any, state: object, field: str) -> None:
    """Fill a new River ``ConfusionMatrix`` with what :func:`_matrix_state` wrote."""
    if not isinstance(state, Mapping):
        raise ValueError(f"state: {field} must be a mapping, got {state!r}")
    samples = integer_field(state, "samples")
    weight: float = number_field(state, "weight", minimum=0.0)
    if is_integer(state["weight"]):
        weight = int(weight)  # a new matrix's 0, before its first float weight
    hits = number_field(state, "hits", minimum=0.0)
    rows = _weights(state.get("rows"), 1, f"{field}.rows")
    columns = _weights(state.get("columns"), 1, f"{field}.columns")
    cells = _weights(state.get("cells"), 2, f"{field}.cells")
    matrix.n_samples, matrix.total_weight, matrix._total_true_positives = samples, weight, hits
    for (key,), value in rows:
        matrix.sum_row[key] = value
    for (key,), value in columns:
        matrix.sum_col[key] = value
    for (row, column), value in cells:
        matrix.data[row][column] = value


def _weights(items: object, keys: int, field: str) -> list[tuple[tuple[Key, ...], float]]:
    """``[*keys, weight]`` lists of a matrix state, checked: ``keys`` keys and a number each."""
    if not isinstance(items, list):
        raise ValueError(f"state: {field} must be a list, got {items!r}")
    checked: list[tuple[tuple[Key, ...], float]] = []
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == keys + 1
            and all(_is_key(key) for key in item[:keys])
        ):
            raise ValueError(f"state: {field} must hold [{keys} key(s), weight], got {item!r}")
        checked.append((tuple(item[:keys]), number_field({field: item[keys]}, field)))
    return checked


def _mapping(state: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The field ``key``: a mapping."""
    value = state.get(key)
    if not isinstance(value, Mapping):
        raise ValueError(f"state: {key} must be a mapping, got {value!r}")
    return value


def _is_key(value: object) -> bool:
    return (
        isinstance(value, str | bool)
        or is_integer(value)
        or (isinstance(value, float) and math.isfinite(value))
    )


_STATEFUL: tuple[type[Stateful], ...] = (UncertaintySummary,)
"""The summary, held by the type checker to the state protocol (the metrics and counts take
their parameters from the constructor, and :meth:`~RealizedMetrics.load_state` their state)."""
