"""Summaries of batches: what the first stage of a two-stage worker hands to the second.

When a hot model's events are keyed by event id, they spread over every
partition of the input topics, and no single worker sees them all. Each
worker then does the work that grows with events (decoding, validation,
repeats, data-quality checks, normal scores against the version's
reference) for its own partitions, and sends one :class:`VersionSummary`
per batch and model version to an internal topic, keyed by the version.
The worker that owns the version's partition there runs the sequential
tests on the summaries, the alerts' lifecycle and the triggers; its work
grows with batches, not with events.

A summary holds only sufficient statistics of the tests: counts, sums of
scores and of squared scores, group counts of categories, the sum of the
joint test's distances, data-quality violation counts. Each list it
carries (samples for an alert's evidence, warm-up rows, examples) is
bounded, so a summary's size does not grow with its batch.

>>> from datetime import UTC, datetime
>>> walk = Walk(total=-3.0, highest=1.5, lowest=-4.0, climb=2.5)
>>> summary = VersionSummary(
...     model_id="churn", model_version="3",
...     source=KafkaPosition(topic="predictions", partition=5, offset=1200), last_offset=1699,
...     events=500, checked=500,
...     first_event_time=datetime(2026, 1, 1, tzinfo=UTC),
...     last_event_time=datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC), last_event_id="e-1699",
...     reference="a1b2c3d4",
...     numeric={"x": NumericSums(count=500, total=12.5, squares=488.0,
...                               differences=499, squared_differences=1003.1,
...                               location=(walk, walk), scale=(walk, walk))},
... )
>>> VersionSummary.model_validate_json(summary.model_dump_json()) == summary
True
"""

from collections.abc import Iterable
from typing import Annotated, Literal, NamedTuple, Self

from pydantic import (
    AwareDatetime,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from driftline.schemas._base import Choice, WireModel
from driftline.schemas.events import FeatureValue, Identifier, Prediction
from driftline.schemas.outputs import KafkaPosition, QualityCheck
from driftline.schemas.registry import registry_key

MAX_SAMPLE = 64
"""Values a summary may carry per subject for an alert's evidence."""

MAX_WARMUP_ROWS = 10_000
"""Events a summary may forward for a reference still being built."""

MAX_EXAMPLES = 5
"""Offending values a summary may carry per data-quality check."""

MAX_EXAMPLE_LENGTH = 100
"""Characters of one offending value's JSON text."""

MAX_GROUPS = 10_001
"""Category groups a summary may count per subject: the tracked ones and the rest."""

MAX_OUTCOMES = 100_000
"""Labelled predictions a summary may carry: those its batch joined."""

MAX_WINDOWS = 1_000
"""Performance windows a summary may count predictions in, or unlabelled ones."""


class Walk(NamedTuple):
    """How one side of a sequential test moves over a batch: the walk ``C_k`` of its
    increments (the sum of the first ``k``, ``C_0 = 0``) by four numbers.

    ``total`` is the sum of all, ``highest`` the largest ``C_k`` (k >= 1),
    ``lowest`` the smallest with ``C_0`` among them and ``climb`` the largest
    rise ``C_k - C_j`` (j <= k). From these the second stage learns whether
    the test would have crossed its threshold within the batch, and where it
    ends, from any statistic it had before.

    On the wire a walk is the array of its four numbers, and the summary that
    carries it checks that they hold together (:func:`check_walks`): a walk
    takes a large share of a summary, and as an object with named members it
    took twice the bytes and a third of the second stage's decoding.
    """

    total: float
    highest: float
    lowest: float
    climb: float


def check_walks(walks: Iterable[Walk]) -> None:
    """Raise ``ValueError`` unless each walk's figures can be those of one walk.

    >>> check_walks([Walk(total=-3.0, highest=1.5, lowest=-4.0, climb=2.5)])
    >>> check_walks([Walk(total=2.0, highest=1.0, lowest=0.0, climb=2.0)])
    Traceback (most recent call last):
    ...
    ValueError: not the figures of one walk: Walk(total=2.0, highest=1.0, lowest=0.0, climb=2.0)
    """
    for walk in walks:
        total, highest, lowest, climb = walk
        if not (
            lowest <= min(total, 0.0) and highest >= total and climb >= max(highest, total - lowest)
        ):
            raise ValueError(f"not the figures of one walk: {walk}")


Sides = tuple[Walk, Walk]
"""A two-sided test's walks: up, then down."""


class NumericSums(WireModel):
    """One numeric subject's normal scores ``z`` over a batch, by their sums.

    ``location`` and ``scale`` are the walks of the two tests' sides over the
    batch; ``count``, ``total`` and ``squares`` are the scores' own sums, and
    ``differences`` (consecutive pairs in the partition's order) and their
    squares (each capped at 64 as the detectors cap them) feed the estimate
    of serial dependence. ``sample`` holds a few of the batch's raw values,
    spread over it, for an alert's evidence.
    """

    count: PositiveInt
    total: float
    squares: NonNegativeFloat
    differences: NonNegativeInt
    squared_differences: NonNegativeFloat
    location: Sides
    scale: Sides
    sample: list[float] = Field(default_factory=list, max_length=MAX_SAMPLE)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_walks((*self.location, *self.scale))
        if self.differences >= max(self.count, 1):
            raise ValueError(f"{self.count} scores have fewer than {self.differences} differences")
        if self.squared_differences > 64.0 * self.differences:
            raise ValueError("squared differences are capped at 64 each")
        if len(self.sample) > self.count:
            raise ValueError("a sample cannot hold more values than were counted")
        return self


class CategorySums(WireModel):
    """One categorical subject's values over a batch, counted by group.

    Groups are those of the subject's detector: the tracked categories of
    the reference one by one, every other value in ``"(other)"``. ``counts``
    lists the groups seen in the batch, ``walks`` every group's test.
    """

    counts: Annotated[dict[str, PositiveInt], Field(max_length=MAX_GROUPS)]
    walks: Annotated[dict[str, Sides], Field(max_length=MAX_GROUPS)]
    sample: list[str] = Field(default_factory=list, max_length=MAX_SAMPLE)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.counts.keys() <= self.walks.keys():
            raise ValueError("a group counted without its test's walks")
        for sides in self.walks.values():
            check_walks(sides)
        return self

    @property
    def count(self) -> int:
        """How many values were counted."""
        return sum(self.counts.values())


class JointSums(WireModel):
    """The joint test of the numeric features over a batch: events with every score, the
    sum of their distances ``z' R^-1 z`` (a few of them in ``sample``) and the walk of the
    test's one side."""

    count: PositiveInt
    total: NonNegativeFloat
    walk: Walk
    sample: list[NonNegativeFloat] = Field(default_factory=list, max_length=MAX_SAMPLE)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        check_walks([self.walk])
        return self


class QualityCounts(WireModel):
    """One data-quality check of one feature over a batch: how many values failed it."""

    feature: Identifier
    check: Choice[QualityCheck]
    violations: NonNegativeInt
    examples: list[Annotated[str, Field(max_length=MAX_EXAMPLE_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_EXAMPLES
    )


class WindowCount(NamedTuple):
    """How many of a batch's predictions fall in one performance window (or left it
    unlabelled). On the wire, the array of its two numbers."""

    window: NonNegativeInt
    predictions: PositiveInt


SCORE_BINS = 200
"""Equal bins of [0, 1] into which the first stage counts a batch's prediction scores."""

MAX_SCORE_BINS = 100_000
"""Runs of score bins a summary may carry (one per window and class predicted, each of at least
one prediction)."""


class ScoreBins(NamedTuple):
    """How many of a batch's predictions of one window, predicting one class, scored in each
    bin: what the second stage needs to estimate a window's performance before its labels
    (see :mod:`driftline.monitors.estimation`).

    A prediction's score is what the estimator calibrates: the positive class's
    probability in a binary task, else the probability of the class predicted.
    Bin ``b`` holds the scores in ``[b, b + 1) / SCORE_BINS`` (the last one
    holds 1 too), and the calibration map is read at its middle. ``counts``
    are those of the bins from ``first`` on, up to the last that holds one:
    a list of small numbers, quick to decode. On the wire, the array of its
    four members.
    """

    window: NonNegativeInt
    prediction: Annotated[str, Field(min_length=1, max_length=256)]
    first: Annotated[int, Field(ge=0, lt=SCORE_BINS)]
    counts: Annotated[list[NonNegativeInt], Field(min_length=1, max_length=SCORE_BINS)]


class Outcome(NamedTuple):
    """One prediction joined to its label by the first stage, for the second stage's
    performance monitor: what its realized metrics and error test take.

    ``window`` is the prediction's performance window as the first stage numbered it (see
    :class:`VersionSummary`), ``prediction_offset`` and ``label_offset`` the two messages'
    offsets in the summary's partition of the predictions and labels topics (a label is
    keyed by its prediction's id, so it lands in the partition of the same number). On the
    wire, the array of its nine members: a summary carries one for each label it joined.
    """

    window: NonNegativeInt
    prediction_time: AwareDatetime
    prediction: Prediction | None
    probabilities: dict[str, float] | None
    prediction_offset: NonNegativeInt
    label: Prediction
    label_id: Identifier
    label_time: AwareDatetime
    label_offset: NonNegativeInt


class WarmupRow(WireModel):
    """One event forwarded while the version's reference is being built: its time and raw
    values."""

    event_time: AwareDatetime
    features: dict[Identifier, FeatureValue] = Field(default_factory=dict, max_length=10_000)
    prediction: Prediction | None = None
    uncertainty: float | None = None


class VersionSummary(WireModel):
    """What one batch of one partition showed about one model version.

    ``source`` is the position of the batch's first event of this version and
    ``last_offset`` the offset of its last one: together they name the batch,
    so the second stage can tell a summary it already took (one sent again
    after a restart) and an alert can point at the events to read again.
    ``events`` counts the events with features, a prediction or an
    uncertainty (those the tests see), ``checked`` those whose features were
    checked for data quality. ``spread`` is how many partitions the version's
    events are spread over (its topic's, for events keyed by event id; 1 for
    events keyed by model id). ``reference`` names the reference the scores
    were taken against (a digest of its profile); None while the version has
    none, and the summary then forwards ``warmup`` rows instead of scores.

    Performance is counted in windows the first stage numbers: each partition
    numbers its own predictions, and the ``n``-th of a partition is in window
    ``n // ceil(window / spread)``, so that a window of the version holds about
    ``window`` predictions from all its partitions. ``predicted`` counts the
    batch's predictions per window, ``outcomes`` are the predictions the batch
    joined to their labels (a batch of labels, or of predictions whose labels
    came first), ``unlabelled`` the predictions whose labels did not come within
    the retention, per window. ``scored`` counts the predictions that came with class
    probabilities by window, class predicted and score (:class:`ScoreBins`), for the
    estimated performance. A summary of a batch of labels has no events:
    its source is the labels topic's partition, and its times those of the
    labels.
    """

    schema_version: Literal[1] = 1
    model_id: Identifier
    model_version: Identifier
    source: KafkaPosition
    last_offset: NonNegativeInt
    events: NonNegativeInt
    checked: NonNegativeInt
    first_event_time: AwareDatetime
    last_event_time: AwareDatetime
    last_event_id: Identifier
    spread: PositiveInt = 1
    reference: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    numeric: dict[Identifier, NumericSums] = Field(default_factory=dict, max_length=10_002)
    categorical: dict[Identifier, CategorySums] = Field(default_factory=dict, max_length=10_002)
    joint: JointSums | None = None
    quality: list[QualityCounts] = Field(default_factory=list, max_length=40_000)
    unexpected_features: NonNegativeInt = 0
    warmup: list[WarmupRow] = Field(default_factory=list, max_length=MAX_WARMUP_ROWS)
    predicted: list[WindowCount] = Field(default_factory=list, max_length=MAX_WINDOWS)
    outcomes: list[Outcome] = Field(default_factory=list, max_length=MAX_OUTCOMES)
    scored: list[ScoreBins] = Field(default_factory=list, max_length=MAX_SCORE_BINS)
    unlabelled: list[WindowCount] = Field(default_factory=list, max_length=MAX_WINDOWS)
    predictions_topic: Identifier = "predictions"
    labels_topic: Identifier = "labels"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if sum(counted for _, counted in self.predicted) > self.events:
            raise ValueError("more predictions counted in windows than events")
        if not (self.events or self.outcomes or self.unlabelled or self.of_labels):
            raise ValueError(
                "a summary without events is one of labels, or carries outcomes or unlabelled "
                "counts"
            )
        if self.last_offset < self.source.offset:
            raise ValueError("last_offset is before the source's offset")
        if self.last_event_time < self.first_event_time:
            raise ValueError("last_event_time is before first_event_time")
        if self.reference is None and (self.numeric or self.categorical or self.joint):
            raise ValueError("scores need the reference they were taken against")
        if self.reference is not None and self.warmup:
            raise ValueError("warm-up rows are for a version without a reference")
        if len(self.warmup) > self.events:
            raise ValueError("more warm-up rows than events")
        if sum(sum(bins.counts) for bins in self.scored) > self.events:
            raise ValueError("more predictions scored than events")
        for bins in self.scored:
            if bins.first + len(bins.counts) > SCORE_BINS:
                raise ValueError(f"score bins run past the last of {SCORE_BINS}")
        return self

    @property
    def of_labels(self) -> bool:
        """Whether it summarises a batch of labels (its source is on the labels topic): it
        carries what they joined, and how far in time the labels of its partition have come
        even when they joined nothing."""
        return self.source.topic == self.labels_topic

    def registry_key(self) -> bytes:
        """The summary's Kafka key: its model version's, as for specs and references."""
        return registry_key(self.model_id, self.model_version)
