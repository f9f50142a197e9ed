"""Simulated prediction traffic with a known drift, for the demo and tests."""

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from driftline.schemas import FeatureKind, FeatureSpec, ModelSpec, PredictionEvent, TaskType
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
