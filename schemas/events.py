"""Input events: what a model saw, what it said, and what turned out true.

Producers in any language publish these as JSON, one event per message,
keyed by ``model_id`` so that a model's events reach one partition in order.
Field names and meaning are part of the public contract; ``schema_version``
(1 when absent) lets it evolve.
"""

from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from driftline.schemas._base import WireModel

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A model id, model version, event id or feature name: non-empty, bounded."""

ClassLabel = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A class of a classifier, or a category of a categorical feature."""

FeatureValue = float | bool | str | None
"""One feature value as JSON gives it: a number, a boolean, a string or null.

Which of these a feature must be is declared in the model's
:class:`~driftline.schemas.ModelSpec`; a value of another type is counted as
a data-quality violation of that feature, ``null`` as a missing value.
Numbers are strict and finite: ``"0.5"`` is a string, never a number.
"""

Features = Annotated[dict[Identifier, FeatureValue], Field(max_length=10_000)]
"""Feature values by feature name, at most 10,000 of them."""

Prediction = float | ClassLabel
"""A score or regression value (a number), or a class label (a string)."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]

PROBABILITY_SUM_TOLERANCE = 1e-3
"""How far from 1 the class probabilities of one prediction may sum."""


class PredictionInterval(WireModel):
    """A regressor's prediction interval, when it gives one."""

    lower: float
    upper: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) is above upper ({self.upper})")
        return self


class PredictionEvent(WireModel):
    """One prediction made by one model version, with the inputs it saw.

    ``features`` may be left out when the inputs are published separately as
    :class:`FeatureEvent` messages that name this event's ``event_id``.

    >>> event = PredictionEvent.model_validate_json(
    ...     b'{"model_id": "churn", "model_version": "3", "event_id": "e-1",'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"tenure": 7, "plan": "pro"},'
    ...     b' "prediction": "stays", "probabilities": {"stays": 0.8, "leaves": 0.2}}'
    ... )
    >>> event.features["plan"], event.probabilities["stays"]
    ('pro', 0.8)

    A number sent as a string is refused where only a number may go:

    >>> PredictionEvent.model_validate_json(
    ...     b'{"model_id": "m", "model_version": "1", "event_id": "e",'
    ...     b' "event_time": "2026-01-01T00:00:00Z", "probabilities": {"a": "0.5", "b": 0.5}}'
    ... )
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for PredictionEvent
    probabilities.a
      Input should be a valid number [type=float_type, input_value='0.5', input_type=str]
    ...
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    model_version: Identifier
    event_id: Identifier
    event_time: AwareDatetime
    features: Features | None = None
    prediction: Prediction | None = None
    probabilities: Annotated[dict[ClassLabel, Probability], Field(max_length=10_000)] | None = None
    interval: PredictionInterval | None = None

    @field_validator("probabilities")
    @classmethod
    def _probabilities_sum_to_one(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value:
            total = sum(value.values())
            if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
                raise ValueError(
                    f"class probabilities sum to {total:.6g}; they must sum to 1 "
                    f"(within {PROBABILITY_SUM_TOLERANCE})"
                )
        return value


class FeatureEvent(WireModel):
    """The inputs of one prediction, published apart from the prediction itself.

    ``prediction_id`` is the ``event_id`` of the :class:`PredictionEvent`
    these features belong to; ``event_id`` identifies this message itself.
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    model_version: Identifier
    event_id: Identifier
    prediction_id: Identifier
    event_time: AwareDatetime
    features: Features


class LabelEvent(WireModel):
    """The ground truth for one prediction, known later than the prediction.

    ``prediction_id`` is the ``event_id`` of the prediction it labels;
    ``label`` is a class label for a classifier, a number for a regressor.
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    event_id: Identifier
    prediction_id: Identifier
    event_time: AwareDatetime
    label: Prediction
