"""Reference profiles: what each feature of a model version looked like when it was trusted.

The drift engine compares live feature values with a *reference*
distribution per feature. A profile holds small, mergeable summaries instead
of raw rows: a CDF sketch per numeric feature (booleans count as numeric 0
and 1), the counts of the top categories per categorical feature, and the
correlation of the numeric features' normal scores. Profiles of two halves of
the data merge into a profile of the whole, so they can be built in shards
or grown from a warm-up stream.

Profiles travel on a compacted topic keyed by :meth:`ReferenceProfile.registry_key`,
the same key as the model version's :class:`~driftline.schemas.ModelSpec`, so
the topic always holds the latest profile of every model version.
"""

import math
from collections.abc import Sequence
from typing import Annotated, Literal, Self

import numpy as np
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveInt,
    StringConstraints,
    model_validator,
)

from driftline.schemas._base import WireModel
from driftline.schemas.events import Identifier
from driftline.schemas.registry import registry_key

MAX_SKETCH_POINTS = 4_096
"""Support points a numeric sketch may hold; builders keep about 500 by default."""

MAX_CATEGORIES = 1_000
"""Categories whose counts a categorical summary may list."""

MAX_CATEGORY_LENGTH = 256
"""Characters of a listed category; longer values are counted as ``other``."""

MAX_CORRELATED_FEATURES = 50
"""Numeric features a profile's correlation matrix may cover."""

SYMMETRY_TOLERANCE = 1e-9
"""How far a correlation matrix may stray from symmetry and from 1 on its diagonal."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Correlation = Annotated[float, Field(ge=-1.0, le=1.0)]
Category = Annotated[str, StringConstraints(max_length=MAX_CATEGORY_LENGTH)]


class NumericSketch(WireModel):
    """The CDF ``F`` of one numeric feature, at a few hundred support points.

    ``values`` are support points in strictly increasing order; for each,
    ``cdf_below`` is ``F(v-)``, the share of values below it, and ``cdf_at``
    is ``F(v)``, the share at or below it. A point with ``cdf_below <
    cdf_at`` is a point mass (a value seen many times, such as 0 in a
    zero-inflated feature); between two support points ``F`` rises linearly
    from one's ``cdf_at`` to the next's ``cdf_below``. Whatever share lies
    below the first point (``cdf_below[0]``) or above the last (``1 -
    cdf_at[-1]``) stands for values beyond those seen, so the smallest and
    largest seen values are ``values[0]`` and ``values[-1]``.

    >>> sketch = NumericSketch(
    ...     count=4, values=[0.0, 1.0, 3.0], cdf_below=[0.0, 0.5, 0.875], cdf_at=[0.5, 0.625, 0.875]
    ... )
    >>> sketch.minimum, sketch.maximum
    (0.0, 3.0)
    >>> NumericSketch(count=1, values=[0.0, 1.0], cdf_below=[0.0, 0.4], cdf_at=[0.5, 1.0])
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for NumericSketch
      Value error, the CDF decreases: cdf_below[1] = 0.4 is below cdf_at[0] = 0.5 ...
    """

    kind: Literal["numeric"] = "numeric"
    count: PositiveInt = Field(description="How many values the sketch summarises.")
    values: Annotated[list[float], Field(min_length=1, max_length=MAX_SKETCH_POINTS)] = Field(
        description="Support points, strictly increasing."
    )
    cdf_below: Annotated[list[Probability], Field(max_length=MAX_SKETCH_POINTS)] = Field(
        description="F(v-) at each support point: the share of values below it."
    )
    cdf_at: Annotated[list[Probability], Field(max_length=MAX_SKETCH_POINTS)] = Field(
        description="F(v) at each support point: the share of values at or below it."
    )

    @model_validator(mode="after")
    def _a_cdf(self) -> Self:
        size = len(self.values)
        if len(self.cdf_below) != size or len(self.cdf_at) != size:
            raise ValueError(
                f"values, cdf_below and cdf_at must be equally long, "
                f"got {size}, {len(self.cdf_below)} and {len(self.cdf_at)}"
            )
        values = np.array(self.values)
        knots = np.column_stack([self.cdf_below, self.cdf_at]).ravel()  # F(v0-), F(v0), F(v1-), ...
        if (values[1:] > values[:-1]).all() and (knots[1:] >= knots[:-1]).all():
            return self  # the common case, checked in numpy; else find the first fault
        for i in range(size):
            if i and not self.values[i] > self.values[i - 1]:
                raise ValueError(
                    f"values must increase strictly: values[{i}] = {self.values[i]} "
                    f"is not above values[{i - 1}] = {self.values[i - 1]}"
                )
            if self.cdf_below[i] > self.cdf_at[i]:
                raise ValueError(
                    f"the CDF decreases: cdf_below[{i}] = {self.cdf_below[i]} "
                    f"is above cdf_at[{i}] = {self.cdf_at[i]}"
                )
            if i and self.cdf_below[i] < self.cdf_at[i - 1]:
                raise ValueError(
                    f"the CDF decreases: cdf_below[{i}] = {self.cdf_below[i]} "
                    f"is below cdf_at[{i - 1}] = {self.cdf_at[i - 1]}"
                )
        return self

    @property
    def minimum(self) -> float:
        """The smallest value seen."""
        return self.values[0]

    @property
    def maximum(self) -> float:
        """The largest value seen."""
        return self.values[-1]


class CategoricalCounts(WireModel):
    """How often each of the most common categories of one feature was seen.

    ``counts`` lists the top categories; ``other`` counts the values of all
    the others, so the counts always add up to ``count``.

    >>> CategoricalCounts(count=10, counts={"free": 6, "pro": 3}, other=1).other
    1
    >>> CategoricalCounts(count=10, counts={"free": 6}, other=1)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for CategoricalCounts
      Value error, the counts (6) and other (1) add up to 7, not to count (10) ...
    """

    kind: Literal["categorical"] = "categorical"
    count: PositiveInt = Field(description="How many values the counts summarise.")
    counts: Annotated[dict[Category, PositiveInt], Field(max_length=MAX_CATEGORIES)] = Field(
        description="How often each listed category was seen."
    )
    other: NonNegativeInt = Field(description="How many values were of no listed category.")

    @model_validator(mode="after")
    def _adds_up(self) -> Self:
        listed = sum(self.counts.values())
        if listed + self.other != self.count:
            raise ValueError(
                f"the counts ({listed}) and other ({self.other}) add up to "
                f"{listed + self.other}, not to count ({self.count})"
            )
        return self


FeatureSummary = Annotated[NumericSketch | CategoricalCounts, Field(discriminator="kind")]
"""The reference of one feature, told apart by its ``kind``."""


class ReferenceProfile(WireModel):
    """The reference distribution of every watched feature of one model version.

    ``source`` says where the reference came from, for people (``file:train.csv``,
    ``warmup:2000 events``). ``correlation`` is the correlation matrix of the
    normal scores of the numeric features named in ``correlation_features``,
    in that order, for multivariate drift; ``serial_correlation`` is the
    lag-1 autocorrelation of each numeric feature's normal scores when the
    reference came from an ordered stream (empty otherwise), so that
    detectors can allow for values that are not independent.

    >>> profile = ReferenceProfile.model_validate_json('''{
    ...   "model_id": "churn", "model_version": "3", "source": "file:train.csv",
    ...   "event_count": 4,
    ...   "features": {
    ...     "plan": {"kind": "categorical", "count": 4, "counts": {"free": 3}, "other": 1},
    ...     "tenure": {"kind": "numeric", "count": 4, "values": [1.0, 9.0],
    ...                "cdf_below": [0.125, 0.875], "cdf_at": [0.125, 0.875]}
    ...   }
    ... }''')
    >>> profile.features["tenure"].maximum
    9.0
    >>> profile.registry_key()
    b'["churn","3"]'
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    model_version: Identifier
    source: Annotated[str, StringConstraints(min_length=1, max_length=1_000)] = Field(
        description="Where the reference data came from, for people."
    )
    event_count: PositiveInt = Field(description="How many events (rows) the profile summarises.")
    features: Annotated[dict[Identifier, FeatureSummary], Field(max_length=10_000)] = Field(
        description="The reference of each feature; features without values are left out."
    )
    correlation: (
        Annotated[
            list[Annotated[list[Correlation], Field(max_length=MAX_CORRELATED_FEATURES)]],
            Field(max_length=MAX_CORRELATED_FEATURES),
        ]
        | None
    ) = Field(
        default=None,
        description="Correlation matrix of the normal scores of correlation_features.",
    )
    correlation_features: Annotated[list[Identifier], Field(max_length=MAX_CORRELATED_FEATURES)] = (
        Field(default_factory=list, description="The numeric features of the correlation matrix.")
    )
    serial_correlation: Annotated[dict[Identifier, Correlation], Field(max_length=10_000)] = Field(
        default_factory=dict,
        description="Lag-1 autocorrelation of each numeric feature's normal scores.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        numeric = {name for name, f in self.features.items() if isinstance(f, NumericSketch)}
        names = self.correlation_features
        if self.correlation is None:
            if names:
                raise ValueError("correlation_features are given but the correlation is not")
        else:
            _check_correlation(self.correlation, names, numeric)
        strangers = sorted(set(self.serial_correlation) - numeric)
        if strangers:
            raise ValueError(
                f"serial_correlation names features that are not numeric features of the "
                f"profile: {', '.join(strangers)}"
            )
        return self

    def registry_key(self) -> bytes:
        """The Kafka key of this profile: that of its model version's spec."""
        return registry_key(self.model_id, self.model_version)


def _check_correlation(
    matrix: Sequence[Sequence[float]], names: Sequence[str], numeric: set[str]
) -> None:
    size = len(names)
    if len(set(names)) != size:
        raise ValueError("correlation_features lists a feature more than once")
    strangers = [name for name in names if name not in numeric]
    if strangers:
        raise ValueError(
            f"correlation_features names features that are not numeric features of the "
            f"profile: {', '.join(strangers)}"
        )
    if len(matrix) != size or any(len(row) != size for row in matrix):
        raise ValueError(
            f"the correlation matrix must be {size} by {size}, one row and column "
            f"per correlation feature"
        )
    for i in range(size):
        if not math.isclose(matrix[i][i], 1.0, rel_tol=0.0, abs_tol=SYMMETRY_TOLERANCE):
            raise ValueError(f"the correlation of {names[i]} with itself is {matrix[i][i]}, not 1")
        for j in range(i):
            if abs(matrix[i][j] - matrix[j][i]) > SYMMETRY_TOLERANCE:
                raise ValueError(
                    f"the correlation matrix is not symmetric: {names[i]} with {names[j]} "
                    f"is {matrix[i][j]} one way and {matrix[j][i]} the other"
                )
