"""The model registry: what each model version takes in and gives out.

A :class:`ModelSpec` is registered per model id and version before that
version's events are published. The worker refuses events of unregistered
versions (it never creates state on demand), checks every event against its
version's spec, and watches the data quality the spec describes.

Specs travel on a compacted topic keyed by :meth:`ModelSpec.registry_key`,
so the topic always holds the latest spec of every registered version; a
null value (tombstone) under a key unregisters that version.
"""

import json
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, PositiveInt, model_validator

from driftline.schemas._base import Choice, WireModel
from driftline.schemas.events import ClassLabel, Identifier

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
"""A share of observations, from 0 to 1."""

DEFAULT_TOLERATED_RATE = 0.01
"""Share of violations a data-quality check tolerates unless the spec says otherwise."""


class FeatureKind(StrEnum):
    """What values a feature takes, and so which JSON type carries it."""

    NUMERIC = "numeric"
    """A JSON number."""
    CATEGORICAL = "categorical"
    """A JSON string, one of a set of categories."""
    BOOLEAN = "boolean"
    """A JSON ``true`` or ``false``."""


class TaskType(StrEnum):
    """What a model predicts."""

    CLASSIFICATION = "classification"
    """A class label (a string), optionally with class probabilities."""
    REGRESSION = "regression"
    """A number, optionally with a prediction interval."""


class FeatureSpec(WireModel):
    """One input feature of a model version: its kind, its valid values, its checks.

    The ``max_*_rate`` fields are the share of a data-quality window's
    observations that may violate a check before the worker alerts. A feature
    that is not ``nullable`` tolerates 1% missing values by default; for a
    ``nullable`` one missing values are only checked when
    ``max_missing_rate`` is given.

    >>> age = FeatureSpec(name="age", kind=FeatureKind.NUMERIC, minimum=0, maximum=130)
    >>> age.tolerated_missing_rate
    0.01
    >>> FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL, minimum=0)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for FeatureSpec
      Value error, feature 'plan' is categorical: minimum and maximum apply to numeric ...
    """

    name: Identifier
    kind: Choice[FeatureKind]
    nullable: bool = Field(default=False, description="Whether null or absent is a valid value.")
    minimum: float | None = Field(default=None, description="Smallest valid value (numeric).")
    maximum: float | None = Field(default=None, description="Largest valid value (numeric).")
    categories: Annotated[list[ClassLabel], Field(min_length=1, max_length=10_000)] | None = Field(
        default=None,
        description="The valid categories (categorical); others count as unseen categories.",
    )
    monitor: bool = Field(default=True, description="Whether to watch this feature for drift.")
    max_missing_rate: Rate | None = None
    max_out_of_range_rate: Rate = DEFAULT_TOLERATED_RATE
    max_unseen_category_rate: Rate = DEFAULT_TOLERATED_RATE
    max_type_violation_rate: Rate = DEFAULT_TOLERATED_RATE

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        numeric = self.kind is FeatureKind.NUMERIC
        if not numeric and (self.minimum is not None or self.maximum is not None):
            raise ValueError(
                f"feature {self.name!r} is {self.kind.value}: "
                "minimum and maximum apply to numeric features only"
            )
        if self.kind is not FeatureKind.CATEGORICAL and self.categories is not None:
            raise ValueError(
                f"feature {self.name!r} is {self.kind.value}: "
                "categories apply to categorical features only"
            )
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(
                f"feature {self.name!r}: minimum {self.minimum} is above maximum {self.maximum}"
            )
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"feature {self.name!r}: categories are listed more than once")
        return self

    @property
    def tolerated_missing_rate(self) -> float | None:
        """The missing-value share tolerated, or None when missing values are not checked."""
        if self.max_missing_rate is not None:
            return self.max_missing_rate
        return None if self.nullable else DEFAULT_TOLERATED_RATE


class DriftPolicy(WireModel):
    """How a model version is watched for drift, and how many false alarms it may raise.

    ``expected_events_between_false_alarms`` is the whole model's budget: the
    worker splits it across the model's features and tests (a test's share
    of the false-alarm rate is the rate divided by the number of tests), so a
    model with more features raises no more false alarms in total.
    """

    expected_events_between_false_alarms: float = Field(
        default=1_000_000.0,
        ge=1_000.0,
        description="Events of this model version between two false drift alarms, on average "
        "at least, when nothing changes.",
    )
    warmup_events: PositiveInt = Field(
        default=2_000,
        ge=100,
        le=100_000,
        description="Without a registered reference profile, the first this many events of the "
        "version become its reference (they are checked for data quality, not for drift).",
    )
    multivariate: bool = Field(
        default=True,
        description="Also watch the numeric features together (their joint distribution).",
    )
    prediction: bool = Field(
        default=True, description="Also watch the predictions (scores or classes) for drift."
    )
    uncertainty: bool = Field(
        default=True,
        description="Also watch how sure the model is: a classifier's margin between its two "
        "most probable classes, a regressor's interval width.",
    )
    location_shift: float = Field(
        default=0.5,
        gt=0.0,
        le=5.0,
        description="The mean shift, in reference standard deviations, numeric tests are tuned "
        "to: smaller finds small shifts sooner and large ones later.",
    )
    scale_ratio: float = Field(
        default=2.0,
        gt=1.0,
        le=10.0,
        description="The variance ratio (up or down) numeric scale tests are tuned to.",
    )
    category_ratio: float = Field(
        default=1.5,
        gt=1.0,
        le=10.0,
        description="The change of a category's share (times or divided by) categorical tests "
        "are tuned to.",
    )
    tracked_categories: PositiveInt = Field(
        default=20,
        le=200,
        description="Categories of a feature watched one by one; the rest are watched as one.",
    )


class PerformancePolicy(WireModel):
    """How a model version's performance is measured on labels, and estimated before them.

    The first ``reference_labels`` labelled predictions of a version are its
    reference: they set the error rate the realized-performance test
    compares against and calibrate the estimator that turns class
    probabilities into expected accuracy. They should come from a time the
    model was known to perform as intended.
    """

    window: PositiveInt = Field(
        default=1_000,
        ge=50,
        le=1_000_000,
        description="Predictions per performance window: estimated and realized performance, "
        "label coverage and uncertainty are reported per window of this many predictions.",
    )
    reference_labels: PositiveInt = Field(
        default=2_000,
        ge=100,
        le=1_000_000,
        description="Labelled predictions that set the reference performance and calibrate "
        "the estimator, counted from the version's first label.",
    )
    positive_class: ClassLabel | None = Field(
        default=None,
        description="For a binary classifier, the class precision, recall and F1 are about; "
        "by default the second of its two classes.",
    )
    error_ratio: float = Field(
        default=1.5,
        gt=1.0,
        le=10.0,
        description="The rise of the error rate (times the reference's) the realized-performance "
        "test is tuned to; larger rises are found sooner still.",
    )
    accuracy_tolerance: Rate = Field(
        default=0.02,
        description="How far the estimated accuracy of a window may fall below the reference "
        "before an estimated-performance alert, beyond the window's own sampling spread.",
    )


class AlertPolicy(WireModel):
    """How alerts of a model version open, update, resolve and rest.

    An alert opens when a test crosses its threshold (the enter threshold).
    While the test keeps alarming the alert is updated, at most once per
    ``update_every_events``. It resolves once the test has not alarmed for
    ``resolve_after_events`` events and its statistic is under
    ``exit_fraction`` of the threshold (hysteresis: a statistic hovering at
    the threshold does not open and resolve by turns). After an alert of a
    subject opens, that subject opens no new alert for ``cooldown_events``.
    """

    resolve_after_events: PositiveInt = Field(
        default=2_000,
        ge=10,
        le=10_000_000,
        description="Events of the version without an alarm after which an alert resolves, "
        "once its test's statistic is also under the exit threshold.",
    )
    exit_fraction: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="The exit threshold as a share of the alarm threshold.",
    )
    cooldown_events: PositiveInt = Field(
        default=10_000,
        le=100_000_000,
        description="After an alert of a subject opens, alarms of that subject within this many "
        "events open no new alert: they update the open one, or are counted as suppressed.",
    )
    update_every_events: PositiveInt = Field(
        default=1_000,
        le=100_000_000,
        description="An open alert whose test keeps alarming is updated at most once per this "
        "many events.",
    )
    critical_psi: float = Field(
        default=0.25,
        gt=0.0,
        description="A drift whose population stability index reaches this is critical "
        "(0.25 is the customary mark of a major shift); below it, a warning.",
    )
    critical_rate_ratio: float = Field(
        default=5.0,
        gt=1.0,
        description="A data-quality violation rate this many times the tolerated rate is "
        "critical; below it, a warning.",
    )


class RetrainPolicy(WireModel):
    """When a model version should be retrained: one trigger per change, never two.

    A model-level drift alert still open after ``drift_sustained_events``, a
    realized-performance alert, and (when enabled) an estimated-performance or
    data-quality alert each trigger retraining; after a trigger the version
    triggers nothing for ``cooldown_events``.
    """

    enabled: bool = Field(default=True, description="Whether to send retraining triggers.")
    drift_sustained_events: PositiveInt = Field(
        default=5_000,
        le=100_000_000,
        description="A model-level drift alert still open after this many events of the "
        "version triggers retraining.",
    )
    on_performance: bool = Field(
        default=True, description="A realized-performance alert (on labels) triggers retraining."
    )
    on_estimated_performance: bool = Field(
        default=False,
        description="An estimated-performance alert triggers retraining before labels confirm it.",
    )
    on_data_quality: bool = Field(
        default=False,
        description="A critical data-quality alert triggers retraining (usually the pipeline "
        "needs fixing instead).",
    )
    cooldown_events: PositiveInt = Field(
        default=100_000,
        le=1_000_000_000,
        description="After a trigger, the version triggers nothing for this many events.",
    )


class KeyedBy(StrEnum):
    """How producers key a model version's events on Kafka, and so how it is monitored."""

    MODEL_ID = "model_id"
    """All of a model's events in one partition: one worker watches them event by event."""
    EVENT_ID = "event_id"
    """Spread over every partition (labels and feature events keyed by their prediction's
    event id): each worker summarises its partitions' batches, and one per version tests the
    summaries. For a model too busy for one worker."""


class ModelSpec(WireModel):
    """One model version as registered: its task, classes and features.

    >>> spec = ModelSpec.model_validate_json('''{
    ...   "model_id": "churn", "model_version": "3", "task": "classification",
    ...   "classes": ["stays", "leaves"],
    ...   "features": [{"name": "tenure", "kind": "numeric", "minimum": 0},
    ...                {"name": "plan", "kind": "categorical", "categories": ["free", "pro"]}]
    ... }''')
    >>> spec.feature("plan").categories
    ['free', 'pro']
    >>> spec.registry_key()
    b'["churn","3"]'
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    model_version: Identifier
    task: Choice[TaskType]
    classes: Annotated[list[ClassLabel], Field(min_length=2, max_length=10_000)] | None = Field(
        default=None,
        description="The classes a classifier predicts; other labels are refused.",
    )
    features: Annotated[list[FeatureSpec], Field(max_length=10_000)] = Field(
        description="The model's input features."
    )
    quality_window: PositiveInt = Field(
        default=1_000,
        le=1_000_000,
        description="Observations per data-quality window: rates are checked over this many.",
    )
    drift: DriftPolicy = Field(default_factory=DriftPolicy)
    performance: PerformancePolicy = Field(default_factory=PerformancePolicy)
    alerts: AlertPolicy = Field(default_factory=AlertPolicy)
    retraining: RetrainPolicy = Field(default_factory=RetrainPolicy)
    keyed_by: Choice[KeyedBy] = Field(
        default=KeyedBy.MODEL_ID,
        description="How producers key this version's events: by model id (in one partition, "
        "watched event by event on one worker), or by event id (spread over every partition "
        "for a model too busy for one worker: each worker summarises its partitions' batches, "
        "and one per version runs the tests on the summaries).",
    )
    description: Annotated[str, Field(max_length=10_000)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.task is TaskType.REGRESSION and self.classes is not None:
            raise ValueError("a regression model has no classes")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError("classes are listed more than once")
        positive = self.performance.positive_class
        if positive is not None and (self.classes is None or len(self.classes) != 2):
            raise ValueError(
                "performance.positive_class applies to binary classifiers: list exactly two classes"
            )
        if positive is not None and self.classes is not None and positive not in self.classes:
            raise ValueError(
                f"performance.positive_class {positive!r} is not one of the classes "
                f"{', '.join(map(repr, self.classes))}"
            )
        names = [feature.name for feature in self.features]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"features listed more than once: {', '.join(repeated)}")
        return self

    def feature(self, name: str) -> FeatureSpec:
        """The spec of one feature; ``KeyError`` if the model has none of that name."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def positive_class(self) -> str | None:
        """The class binary metrics are about (the policy's, else the second), if binary."""
        if self.classes is None or len(self.classes) != 2:
            return None
        return self.performance.positive_class or self.classes[1]

    def registry_key(self) -> bytes:
        """The Kafka key of this spec on the registry topic."""
        return registry_key(self.model_id, self.model_version)


def registry_key(model_id: str, model_version: str) -> bytes:
    """The registry topic's key for a model version: a JSON array, unambiguous in any language.

    Written as JavaScript's ``JSON.stringify`` writes it (no spaces, UTF-8,
    non-ASCII characters unescaped), so that keys built in other languages
    compact together with these. Workers compare keys by their parsed value.

    >>> registry_key("fraud/eu", "2")
    b'["fraud/eu","2"]'
    >>> registry_key("café", "1").decode()
    '["café","1"]'
    """
    text = json.dumps([model_id, model_version], separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")
