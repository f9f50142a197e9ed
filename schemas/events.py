"""Input events: what a model saw and what it said.

Producers in any language publish these as JSON. Field names and meaning
are part of the public contract; ``schema_version`` lets it evolve.
"""

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from driftline.schemas._base import WireModel

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A model id, model version, event id or feature name: non-empty, bounded."""

FeatureValue = float
"""A numeric feature value; strict, finite (ints are accepted, bools are not)."""

Prediction = float | str
"""A regression value or score (a number), or a class label (a string)."""


class PredictionEvent(WireModel):
    """One prediction made by one model version, with the inputs it saw.

    Events of one model are keyed by ``model_id`` on Kafka so that they reach
    one partition, in order: detectors see each model's stream as it was.

    >>> PredictionEvent.model_validate_json(
    ...     b'{"model_id": "m", "model_version": "1", "event_id": "e",'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"x": "0.5"},'
    ...     b' "prediction": 0.2}'
    ... )
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for PredictionEvent
    features.x
      Input should be a valid number [type=float_type, input_value='0.5', input_type=str]
    ...
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    model_version: Identifier
    event_id: Identifier
    event_time: AwareDatetime
    features: dict[Identifier, FeatureValue] = Field(max_length=10_000)
    prediction: Prediction | None = None
