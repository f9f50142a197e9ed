"""Simulated prediction traffic with a known drift, for the demo and tests."""

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from driftline.schemas import (
    FeatureKind,
    FeatureSpec,
    LabelEvent,
    ModelSpec,
    PerformancePolicy,
    PredictionEvent,
    TaskType,
)
from driftline.schemas.events import FeatureValue

START = datetime(2026, 1, 1, tzinfo=UTC)


def simulated_predictions(
    count: int,
    *,
    shift_at: int,
    shift: float = 3.0,
    drifting: str = "x",
    stable: tuple[str, ...] = ("y",),
    model_id: str = "demo-model",
    model_version: str = "1",
    seed: int = 0,
    start: datetime = START,
    interval: timedelta = timedelta(milliseconds=100),
    missing_from: int | None = None,
    missing_rate: float = 0.3,
) -> Iterator[PredictionEvent]:
    """Events whose feature ``drifting`` moves from N(0, 1) to N(shift, 1) at ``shift_at``.

    The ``stable`` features stay N(0, 1) throughout; event times advance by
    ``interval`` per event from ``start``, so the stream is reproducible.
    From event ``missing_from`` on (never when None), each ``stable``
    feature is null with probability ``missing_rate``: a data-quality fault.

    >>> events = list(simulated_predictions(4, shift_at=2, shift=100.0))
    >>> [e.features["x"] > 50 for e in events]
    [False, False, True, True]
    >>> events[0].event_id, events[3].event_time.isoformat()
    ('demo-model-1-0', '2026-01-01T00:00:00.300000+00:00')
    """
    rng = random.Random(seed)
    for index in range(count):
        values = {drifting: rng.gauss(shift if index >= shift_at else 0.0, 1.0)}
        values.update({name: rng.gauss(0.0, 1.0) for name in stable})
        score = 1.0 / (1.0 + math.exp(-0.8 * sum(values.values())))
        features: dict[str, FeatureValue] = dict(values)
        if missing_from is not None and index >= missing_from:
            for name in stable:
                if rng.random() < missing_rate:
                    features[name] = None
        yield PredictionEvent(
            model_id=model_id,
            model_version=model_version,
            event_id=f"{model_id}-{model_version}-{index}",
            event_time=start + index * interval,
            features=features,
            prediction=score,
        )


def simulated_model_spec(
    *,
    drifting: str = "x",
    stable: tuple[str, ...] = ("y",),
    model_id: str = "demo-model",
    model_version: str = "1",
) -> ModelSpec:
    """The spec of the model :func:`simulated_predictions` stands for: a scorer.

    >>> [feature.name for feature in simulated_model_spec().features]
    ['x', 'y']
    """
    return ModelSpec(
        model_id=model_id,
        model_version=model_version,
        task=TaskType.REGRESSION,
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in (drifting, *stable)],
        description="A simulated scorer: its prediction is a logistic score of its features.",
    )


def simulated_classifier_spec(
    *,
    model_id: str = "demo-classifier",
    model_version: str = "1",
    window: int = 500,
    reference_labels: int = 1_000,
) -> ModelSpec:
    """The spec of the classifier :func:`simulated_classifier_traffic` stands for.

    >>> spec = simulated_classifier_spec()
    >>> spec.classes, spec.performance.window
    (['repaid', 'defaulted'], 500)
    """
    return ModelSpec(
        model_id=model_id,
        model_version=model_version,
        task=TaskType.CLASSIFICATION,
        classes=["repaid", "defaulted"],
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in ("x", "y")],
        performance=PerformancePolicy(window=window, reference_labels=reference_labels),
        description="A simulated loan classifier whose world changes under it.",
    )


def simulated_classifier_traffic(
    count: int,
    *,
    shift_at: int,
    shift: float = 1.5,
    label_delay: int = 200,
    model_id: str = "demo-classifier",
    model_version: str = "1",
    seed: int = 0,
    start: datetime = START,
    interval: timedelta = timedelta(milliseconds=100),
) -> Iterator[PredictionEvent | LabelEvent]:
    """A classifier's predictions and, ``label_delay`` events later, their labels, in the
    order they would be published.

    The model predicts ``defaulted`` with probability logistic(1.5 x + y), and is
    right about the world until ``shift_at``. From there on feature ``x``
    moves from N(0, 1) to N(``shift``, 1) and stops mattering (the truth
    becomes logistic(y)), so the model grows surer of itself while its
    realized accuracy falls: the case for watching both.

    >>> traffic = list(simulated_classifier_traffic(300, shift_at=200, label_delay=100))
    >>> [type(e).__name__ for e in traffic[100:103]]
    ['PredictionEvent', 'LabelEvent', 'PredictionEvent']
    >>> sum(isinstance(e, LabelEvent) for e in traffic)
    300
    """
    rng = random.Random(seed)
    labels: list[LabelEvent] = []
    for index in range(count):
        changed = index >= shift_at
        x = rng.gauss(shift if changed else 0.0, 1.0)
        y = rng.gauss(0.0, 1.0)
        believed = _logistic(1.5 * x + y)
        truth = _logistic(y) if changed else believed
        time = start + index * interval
        event_id = f"{model_id}-{model_version}-{index}"
        yield PredictionEvent(
            model_id=model_id,
            model_version=model_version,
            event_id=event_id,
            event_time=time,
            features={"x": x, "y": y},
            prediction="defaulted" if believed >= 0.5 else "repaid",
            probabilities={"repaid": 1.0 - believed, "defaulted": believed},
        )
        labels.append(
            LabelEvent(
                model_id=model_id,
                event_id=f"label-{event_id}",
                prediction_id=event_id,
                event_time=time + label_delay * interval,
                label="defaulted" if rng.random() < truth else "repaid",
            )
        )
        if index >= label_delay:
            yield labels[index - label_delay]
    yield from labels[max(count - label_delay, 0) :]


def _logistic(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))
