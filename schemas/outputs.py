"""Output messages: alerts, retraining triggers and dead letters.

Consumers subscribe to these topics; every alert parses back into
:class:`Alert`, every trigger into :class:`RetrainTrigger`, every unusable
input message into :class:`DeadLetter`.
"""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, NonNegativeInt, PositiveInt

from driftline.schemas._base import Choice, WireModel
from driftline.schemas.events import Identifier
from driftline.schemas.registry import Rate


class KafkaPosition(WireModel):
    """Where a message sits on Kafka, so it can be found and replayed."""

    topic: str
    partition: NonNegativeInt
    offset: NonNegativeInt


class AlertKind(StrEnum):
    """What an alert is about."""

    DRIFT = "drift"
    """A feature's distribution moved."""
    DATA_QUALITY = "data_quality"
    """A feature's values broke its spec more often than tolerated."""
    UNCERTAINTY = "uncertainty"
    """The model grew less (or more) sure of its predictions than in its reference."""
    PERFORMANCE = "performance"
    """The model's realized performance, measured on labels, fell below its reference."""
    ESTIMATED_PERFORMANCE = "estimated_performance"
    """The performance estimated from the model's probabilities fell, before labels confirm it."""


class AlertStatus(StrEnum):
    """Where an alert is in its life."""

    OPEN = "open"
    UPDATE = "update"
    RESOLVE = "resolve"


class Severity(StrEnum):
    """How urgently someone should look."""

    WARNING = "warning"
    CRITICAL = "critical"


class DistributionSummary(WireModel):
    """A distribution in a few numbers: quantiles of a numeric one, shares of a categorical one."""

    count: NonNegativeInt
    quantiles: dict[str, float] | None = Field(
        default=None, description='Quantiles by probability ("0.05", "0.5", ...), numeric only.'
    )
    shares: dict[str, Rate] | None = Field(
        default=None, description="Share of each category (the largest ones), categorical only."
    )


class DriftEvidence(WireModel):
    """Why a drift test says a feature (or the model's inputs together) moved, and where.

    ``test`` fired because its ``statistic`` reached ``threshold``, the
    threshold that gives this test ``expected_events_between_false_alarms``
    when nothing changes (its share of the model's false-alarm budget).
    Observations are counted per model version and subject, from 1:
    ``observations`` is the one that raised the alert, ``change_observation``
    the estimated first one after the change, seen at ``change_event_time``
    and at ``change_positions`` on Kafka (so the drifted data can be read
    again). ``reference`` summarises the reference distribution, ``current``
    the values from the change on; ``distances`` gives distribution distances
    between the two (Kolmogorov-Smirnov, PSI, Wasserstein, Jensen-Shannon)
    where they apply.
    """

    kind: Literal["drift"] = "drift"
    test: str = Field(description='The test that fired, such as "location_cusum".')
    direction: str | None = Field(
        default=None, description='"up" or "down", or the category whose share moved.'
    )
    statistic: float
    threshold: float
    p_value: Rate | None = None
    expected_events_between_false_alarms: float = Field(gt=0)
    observations: NonNegativeInt
    change_observation: NonNegativeInt
    change_event_time: AwareDatetime | None = None
    change_positions: list[KafkaPosition] = Field(default_factory=list)
    reference: DistributionSummary
    current: DistributionSummary
    distances: dict[str, float] = Field(default_factory=dict)


class QualityCheck(StrEnum):
    """One data-quality check of a feature against its spec."""

    MISSING = "missing"
    """The value is null or absent."""
    OUT_OF_RANGE = "out_of_range"
    """A number below the feature's minimum or above its maximum."""
    UNSEEN_CATEGORY = "unseen_category"
    """A category the feature's spec does not list."""
    TYPE_VIOLATION = "type_violation"
    """A value of the wrong JSON type for the feature's kind (``"0.5"`` for a number)."""


class DataQualityEvidence(WireModel):
    """Why a data-quality check of a feature failed.

    Within one window of ``window`` observations, ``violations`` of the
    ``observations`` seen so far broke the check. Under the tolerated rate,
    reaching ``threshold`` violations in one window has probability at most
    ``alpha``; ``p_value`` is that probability for the count seen.
    ``examples`` shows a few offending values, as JSON text.
    """

    kind: Literal["data_quality"] = "data_quality"
    check: Choice[QualityCheck]
    window: PositiveInt
    window_index: NonNegativeInt = Field(description="Which window of the feature, from 0.")
    observations: PositiveInt
    violations: PositiveInt
    rate: Rate
    tolerated_rate: Rate
    threshold: PositiveInt
    alpha: float = Field(gt=0, lt=1)
    p_value: Rate
    examples: Annotated[list[str], Field(max_length=10)] = Field(default_factory=list)


class PerformanceBasis(StrEnum):
    """What a performance figure rests on."""

    REALIZED = "realized"
    """Predictions compared with their labels."""
    ESTIMATED = "estimated"
    """Calibrated class probabilities, before (or without) labels."""


class PerformanceEvidence(WireModel):
    """Why the model's performance is said to have fallen.

    For the realized basis, ``test`` is a CUSUM on each labelled
    prediction's error (wrong or right for a classifier, the absolute error
    for a regressor) against the reference's, and ``statistic`` reached
    ``threshold``, set for ``expected_events_between_false_alarms``. For the
    estimated basis, ``current`` is one window's estimated accuracy and
    ``threshold`` the floor it fell under: the reference minus the
    policy's tolerance and the window's sampling spread.
    """

    kind: Literal["performance"] = "performance"
    basis: Choice[PerformanceBasis]
    metric: str = Field(description='What is measured: "accuracy", "error_rate" or "mae".')
    reference: float = Field(description="The metric on the reference.")
    current: float = Field(description="The metric since the estimated change, or in the window.")
    test: str
    statistic: float
    threshold: float
    expected_events_between_false_alarms: float = Field(gt=0)
    observations: NonNegativeInt = Field(
        description="Labelled predictions (realized) or predictions in the window (estimated)."
    )
    change_observation: NonNegativeInt | None = None
    change_event_time: AwareDatetime | None = None
    change_positions: list[KafkaPosition] = Field(default_factory=list)


class GroupEvidence(WireModel):
    """What a model-level alert groups: the alerts of subjects that drifted together.

    ``members`` lists the alert ids of the per-subject alerts, in the order
    they opened, and ``subjects`` their features (or ``(prediction)``,
    ``(uncertainty)``, ``(multivariate)``); ``open_members`` those still
    open. The change began at ``change_event_time``, the earliest of the
    members', at ``change_positions`` on Kafka.
    """

    kind: Literal["group"] = "group"
    members: list[str]
    subjects: list[str]
    open_members: list[str] = Field(default_factory=list)
    change_event_time: AwareDatetime | None = None
    change_positions: list[KafkaPosition] = Field(default_factory=list)


Evidence = Annotated[
    DriftEvidence | DataQualityEvidence | PerformanceEvidence | GroupEvidence,
    Field(discriminator="kind"),
]
"""The evidence of an alert; its ``kind`` says which."""


class Alert(WireModel):
    """Something about one model version needs a person's attention.

    An alert is sent when it opens, when it is updated (the problem goes on,
    or grows), and when it resolves, always under the same ``alert_id``:
    derived from the model, version, kind, subject and the observation at
    which the problem began, so a replay of the same stream yields the same
    ids. A consumer keyed on ``(alert_id, status)`` sees each change once.
    Drift alerts of subjects that drifted together share a ``group_id``: the
    id of the model-level alert (no ``feature``, ``group`` evidence) that
    summarises them.
    """

    schema_version: Literal[1] = 1
    alert_id: str
    kind: Choice[AlertKind]
    status: Choice[AlertStatus] = AlertStatus.OPEN
    severity: Choice[Severity] = Severity.WARNING
    model_id: Identifier
    model_version: Identifier
    feature: Identifier | None = None
    summary: str = Field(description="One line for a person: what happened, in numbers.")
    event_id: Identifier = Field(description="The event at which the problem was seen.")
    event_time: AwareDatetime
    evidence: Evidence
    source: KafkaPosition | None = None
    group_id: str | None = Field(
        default=None, description="The model-level alert this alert belongs to, if any."
    )


class TrainingWindow(WireModel):
    """Where the data to retrain on starts: from the estimated change on."""

    start_event_time: AwareDatetime
    start_positions: list[KafkaPosition] = Field(default_factory=list)


class TriggerReason(WireModel):
    """One signal that led to a retraining trigger."""

    kind: Choice[AlertKind]
    alert_id: str
    summary: str
    evidence: Evidence | None = None


class RetrainTrigger(WireModel):
    """A model version should be retrained; acted on once per ``idempotency_key``.

    ``idempotency_key`` is derived from the model, version and the alert that
    started the change, so a replay, or a second worker that sees the same
    change, yields the same key. ``training_window`` starts at the estimated
    change: train on data from there on.
    """

    schema_version: Literal[1] = 1
    trigger_id: str
    idempotency_key: str
    model_id: Identifier
    model_version: Identifier
    event_time: AwareDatetime = Field(description="Event time at which the trigger was decided.")
    reasons: Annotated[list[TriggerReason], Field(min_length=1)]
    training_window: TrainingWindow | None = None


class ReportStage(StrEnum):
    """When a window's performance report was written."""

    CLOSED = "closed"
    """The window has all its predictions: estimates, and the labels that landed so far."""
    SETTLED = "settled"
    """Every prediction of the window is labelled or waited out the label retention."""


class PerformanceReport(WireModel):
    """A model version's performance over one window of predictions.

    Each window is reported twice: when its last prediction arrives
    (``closed``: the estimate, before most labels) and when its labels have
    all landed or waited out the retention (``settled``: realized next to
    estimated, and the estimate's error). Metrics are keyed by name:
    ``accuracy``, ``precision``, ``recall``, ``f1``, ``log_loss``, ``roc_auc``
    for classifiers (the last four for binary ones), ``mae`` and ``rmse`` for
    regressors. ``report_id`` is stable across replays.

    Only predictions counted once the estimator was calibrated (on the
    version's reference labels) are estimated, and only those with class
    probabilities: ``estimated_predictions`` says how many. A window with
    some but not all of its predictions estimated (the one in which the
    calibration became ready) is partial: its estimate speaks for those
    predictions alone, and its estimation error is measured on them.
    """

    schema_version: Literal[1] = 1
    report_id: str
    model_id: Identifier
    model_version: Identifier
    window: NonNegativeInt = Field(description="Which window of the version, from 0.")
    stage: Choice[ReportStage]
    first_event_time: AwareDatetime
    last_event_time: AwareDatetime
    predictions: PositiveInt
    labelled: NonNegativeInt
    expired: NonNegativeInt = Field(
        default=0, description="Predictions whose labels never came within the retention."
    )
    label_coverage: Rate = Field(description="Share of the window's predictions labelled so far.")
    label_delay_seconds: dict[str, float] = Field(
        default_factory=dict,
        description='Event-time delay of the labels that landed: "mean", "p50", "p90", "max".',
    )
    estimated_predictions: NonNegativeInt = Field(
        default=0,
        description="How many of the window's predictions were estimated: those with class "
        "probabilities counted once the estimator was calibrated. More than 0 and fewer than "
        "predictions: a partial window, whose estimate covers these alone.",
    )
    estimated: dict[str, float] = Field(
        default_factory=dict,
        description="Estimated from class probabilities over the estimated predictions: "
        '"accuracy", and "f1" of the positive class for a binary classifier.',
    )
    estimated_standard_error: float | None = Field(
        default=None,
        description="Sampling spread of the estimated predictions' accuracy, given the estimate.",
    )
    realized: dict[str, float] = Field(
        default_factory=dict, description="Over the window's labelled predictions."
    )
    estimation_error: dict[str, float] = Field(
        default_factory=dict,
        description='Settled windows only: each estimated metric ("accuracy", "f1") minus the '
        "same metric realized over the same predictions, those both estimated and labelled "
        "(fewer than realized's in a partial window). Absent when none of them was labelled, "
        "or their F1 is undefined.",
    )
    since_reference: dict[str, float] = Field(
        default_factory=dict,
        description="Realized over every labelled prediction after the reference.",
    )
    uncertainty: dict[str, float] = Field(
        default_factory=dict,
        description='Summaries of how sure the model was: "margin_mean", "margin_p10", '
        '"entropy_mean", "least_confidence_mean", "interval_width_mean", ...',
    )

    @property
    def partially_estimated(self) -> bool:
        """Whether some, but not all, of the window's predictions were estimated."""
        return 0 < self.estimated_predictions < self.predictions


class DeadLetterReason(StrEnum):
    """Why a message could not be used; each names what the producer must fix."""

    EMPTY = "empty"
    """A message with no value (a tombstone) on an input topic."""
    TOO_LARGE = "too_large"
    """The message is over the configured size limit."""
    UNSUPPORTED_FRAMING = "unsupported_framing"
    """Confluent Schema Registry framing around a payload that is not JSON (Avro, Protobuf)."""
    INVALID_UTF8 = "invalid_utf8"
    """The value is not UTF-8 text."""
    INVALID_JSON = "invalid_json"
    """The value is not one well-formed JSON document (or is nested too deeply)."""
    DUPLICATE_KEY = "duplicate_key"
    """A JSON object names the same key twice, so its meaning is ambiguous."""
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    """A number too large to hold as a 64-bit float (such as ``1e400`` or a huge integer)."""
    NON_FINITE_NUMBER = "non_finite_number"
    """NaN or Infinity where a number belongs."""
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    """A ``schema_version`` this worker cannot read."""
    INVALID_EVENT = "invalid_event"
    """Well-formed JSON that does not match the event schema."""
    UNKNOWN_MODEL = "unknown_model"
    """No spec is registered for the event's model id and version."""
    SPEC_VIOLATION = "spec_violation"
    """The prediction does not fit the model's spec (a number from a classifier, say)."""
    FUTURE_EVENT_TIME = "future_event_time"
    """The event time is further ahead of the time Kafka recorded than allowed."""
    LATE_EVENT = "late_event"
    """The event is older than the window in which duplicates are recognised."""
    ORPHAN_LABEL = "orphan_label"
    """A label whose prediction did not arrive within the label retention (in event time)."""
    ALREADY_LABELLED = "already_labelled"
    """A second label, under another event id, for a prediction that already has one."""
    INVALID_SPEC = "invalid_spec"
    """A message on the model registry topic that is not a valid model spec."""
    INVALID_REFERENCE = "invalid_reference"
    """A message on the references topic that is not a valid reference profile."""
    MODEL_LIMIT = "model_limit"
    """The worker already watches as many model versions as it is allowed to."""
    PROCESSING_ERROR = "processing_error"
    """The worker failed on a valid-looking message: a bug in driftline, to be reported."""


class DeadLetter(WireModel):
    """An input message that could not be used, with the reason and the bytes.

    ``original`` holds the message value exactly as received, base64-encoded,
    so the producer can see what was sent and it can be replayed once fixed;
    a message too large to carry whole is carried cut (``original_truncated``),
    with the size and SHA-256 digest of the whole kept. Dead letters written
    before those fields (without them) still read.
    """

    schema_version: Literal[1] = 1
    reason: Choice[DeadLetterReason]
    message: str
    field_path: str | None = None
    source: KafkaPosition
    key: str | None = Field(
        default=None, description="The message key, if it was UTF-8 (and at most 2,048 bytes)."
    )
    original: str | None = Field(
        description="The message value as received, base64-encoded; null for a tombstone. "
        "A message whose value and key are over the worker's DRIFTLINE_MAX_MESSAGE_BYTES is "
        "carried cut, its first bytes only (`original_truncated`; `message` says where to read "
        "the whole). Before `original_truncated` existed, such a message was carried as null."
    )
    original_bytes: int | None = Field(
        default=None,
        ge=0,
        description="The size of the whole message value in bytes (before base64, and before "
        "any cut); null for a tombstone, and in dead letters written before this field.",
    )
    original_sha256: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="The SHA-256 digest of the whole message value (before base64, and before "
        "any cut), in lowercase hex; null for a tombstone, and in dead letters written before "
        "this field.",
    )
    original_truncated: bool = Field(
        default=False,
        description="Whether `original` holds only the first bytes of the value: the message "
        "was over the worker's DRIFTLINE_MAX_MESSAGE_BYTES (value and key together).",
    )
