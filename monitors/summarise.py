"""The first stage of a two-stage worker: a batch of one version's events in, one summary out.

A hot model's events, keyed by event id, spread over every partition; each
worker summarises the batches of its own partitions
(:class:`VersionSummariser`) and a second stage, one per model version,
runs the tests on the summaries
(:class:`~driftline.monitors.summary_monitor.SummaryMonitor`). What grows
with events is done here: data-quality classification, normal scores
against the version's reference, category groups, the joint test's
distances. Only sums leave (:class:`~driftline.schemas.summaries.VersionSummary`).

The summariser keeps nothing from one batch to the next but its reference,
so a batch read again after a restart gives the same summary: ties are
broken with uniforms drawn from each event's own id, not from a counter.

>>> from datetime import UTC, datetime
>>> import numpy as np
>>> from driftline.schemas import FeatureSpec, ModelSpec, PredictionEvent
>>> from driftline.monitors.reference import build_reference
>>> spec = ModelSpec(model_id="m", model_version="1", task="regression",
...                  features=[FeatureSpec(name="x", kind="numeric")])
>>> rng = np.random.default_rng(1)
>>> reference = build_reference(spec, {"x": rng.normal(0, 1, 2_000)}, source="train",
...                             ordered=False)
>>> summariser = VersionSummariser(spec, reference=reference)
>>> events = [PredictionEvent(model_id="m", model_version="1", event_id=f"e{i}",
...                           event_time=datetime(2026, 1, 1, tzinfo=UTC),
...                           features={"x": float(rng.normal(0, 1))}) for i in range(500)]
>>> summary = summariser.summarise(events, [None] * 500, partition=("predictions", 3))
>>> sums = summary.numeric["x"]
>>> sums.count, abs(sums.total / sums.count) < 0.2, abs(sums.squares / sums.count - 1) < 0.2
(500, True, True)
"""

import hashlib
import math
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from driftline.monitors.feature_drift import CategoricalDrift, NumericDrift
from driftline.monitors.findings import PREDICTION, UNCERTAINTY, prediction_value
from driftline.monitors.model import ModelMonitor
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.positions import Located
from driftline.monitors.quality import DataQualityMonitor, QualityTally
from driftline.monitors.sequential import MAX_SQUARED_DIFFERENCE
from driftline.monitors.uncertainty import uncertainty_of
from driftline.schemas import (
    FeatureEvent,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
    ReferenceProfile,
)
from driftline.schemas.summaries import (
    MAX_SAMPLE,
    MAX_WARMUP_ROWS,
    CategorySums,
    JointSums,
    NumericSums,
    Outcome,
    QualityCounts,
    ScoreBins,
    VersionSummary,
    WarmupRow,
    WindowCount,
)


class Joined(NamedTuple):
    """What a partition's label join found for one version over a batch: its predictions
    counted per performance window, the predictions joined to their labels, those left
    unlabelled per window, and the scores of its predictions by window (see
    :class:`~driftline.schemas.summaries.VersionSummary`)."""

    predicted: list[WindowCount]
    outcomes: list[Outcome]
    unlabelled: list[WindowCount]
    scored: list[ScoreBins]
    """The predictions' scores, for the estimated performance."""

    def __bool__(self) -> bool:
        return bool(self.predicted or self.outcomes or self.unlabelled)


NOTHING_JOINED = Joined([], [], [], [])


SAMPLE = 16
"""Raw values a summary carries per subject for an alert's evidence, spread over the batch."""

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def reference_digest(profile: ReferenceProfile) -> str:
    """A short name for a reference profile, the same in every process that reads it.

    Summaries carry the digest of the reference their scores were taken
    against, so the second stage takes only scores against its own.

    >>> profile = ReferenceProfile(model_id="m", model_version="1", source="s",
    ...                            event_count=1, features={})
    >>> digest = reference_digest(profile)
    >>> digest == reference_digest(profile.model_copy()), len(digest)
    (True, 16)
    """
    return hashlib.blake2b(profile.model_dump_json().encode(), digest_size=8).hexdigest()


def event_keys(event_ids: Sequence[str]) -> np.ndarray:
    """A 32-bit key of each event id (its CRC-32), what :func:`event_uniforms` draws from."""
    return np.fromiter(
        (zlib.crc32(event_id.encode()) for event_id in event_ids),
        dtype=np.uint64,
        count=len(event_ids),
    )


def event_uniforms(keys: np.ndarray, seed: int) -> np.ndarray:
    """One uniform in [0, 1) per event, drawn from its key (:func:`event_keys`) and ``seed``
    (splitmix64).

    What breaks ties among equal values here: it depends on the event alone,
    not on where it came in a partition, so any worker, and any batch read
    again, scores an event alike.

    >>> a = event_uniforms(event_keys(["e1", "e2"]), 7)
    >>> b = event_uniforms(event_keys(["e2"]), 7)
    >>> bool(a[1] == b[0]), bool(0 <= a.min() and a.max() < 1)
    (True, True)
    """
    with np.errstate(over="ignore"):
        z = np.uint64(seed & _MASK) + (keys + np.uint64(1)) * np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return np.asarray((z >> np.uint64(11)).astype(np.float64) * 2.0**-53)


class VersionSummariser:
    """Summarises batches of one model version's events, from one partition at a time.

    Parameters
    ----------
    spec
        The model version's spec.
    reference
        The reference its scores are taken against; without one, summaries
        forward warm-up rows instead, for the second stage to build it from.
    max_monitored_features
        At most this many features are watched for drift, as in
        :class:`~driftline.monitors.model.ModelMonitor`.
    quality_alpha
        Passed on to the data-quality classifier (it only counts here).
    sample
        Raw values kept per subject and summary, for alerts' evidence.
    warmup_rows
        Events a summary forwards at most while there is no reference.
    spread
        How many partitions the version's events are spread over: those of its
        topic when they are keyed by event id, 1 when keyed by model id.
    predictions_topic, labels_topic
        The topics the positions of joined labels and their predictions are on.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        reference: ReferenceProfile | None = None,
        max_monitored_features: int = 1_000,
        quality_alpha: float = 1e-4,
        sample: int = SAMPLE,
        warmup_rows: int = MAX_WARMUP_ROWS,
        spread: int = 1,
        predictions_topic: str = "predictions",
        labels_topic: str = "labels",
    ) -> None:
        if not 0 <= sample <= MAX_SAMPLE:
            raise ValueError(f"sample must be in [0, {MAX_SAMPLE}], got {sample!r}")
        if not 0 <= warmup_rows <= MAX_WARMUP_ROWS:
            raise ValueError(f"warmup_rows must be in [0, {MAX_WARMUP_ROWS}], got {warmup_rows!r}")
        self.spec = spec
        self.max_monitored_features = max_monitored_features
        self.quality_alpha = quality_alpha
        self.sample = sample
        self.warmup_rows = warmup_rows
        self.spread = spread
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic
        self._quality = DataQualityMonitor(spec, alpha=quality_alpha)
        self._plan: ModelMonitor | None = None
        self._digest: str | None = None
        if reference is not None:
            self.use_reference(reference)

    def use_reference(self, reference: ReferenceProfile) -> None:
        """Take scores against ``reference`` from now on (it was registered, or built by the
        second stage from the warm-up and published)."""
        if (reference.model_id, reference.model_version) != (
            self.spec.model_id,
            self.spec.model_version,
        ):
            raise ValueError("a reference of another model version")
        self._plan = ModelMonitor(
            self.spec,
            reference=reference,
            max_monitored_features=self.max_monitored_features,
            quality_alpha=self.quality_alpha,
        )
        self._digest = reference_digest(reference)

    @property
    def reference(self) -> str | None:
        """The digest of the reference scores are taken against; None before one is known."""
        return self._digest

    @property
    def warming_up(self) -> bool:
        """Whether the version has no reference yet: summaries forward rows, at most
        ``warmup_rows`` each, instead of scores."""
        return self._plan is None

    def summarise(
        self,
        events: Sequence[PredictionEvent | FeatureEvent],
        positions: Sequence[Located | None],
        *,
        partition: tuple[str, int],
        joined: Joined = NOTHING_JOINED,
    ) -> VersionSummary | None:
        """The summary of a batch of this version's events, all from ``partition`` (topic and
        number), in their order there, with what the partition's label join found over it
        (``joined``); None if nothing is to be watched."""
        if len(events) != len(positions):
            raise ValueError(f"{len(events)} events but {len(positions)} positions")
        for event in events:
            if (event.model_id, event.model_version) != (
                self.spec.model_id,
                self.spec.model_version,
            ):
                raise ValueError(
                    f"event of {event.model_id}/{event.model_version} given to the summariser "
                    f"of {self.spec.model_id}/{self.spec.model_version}"
                )
        predictions = [prediction_value(self.spec, event) for event in events]
        unsure = [uncertainty_of(self.spec, event) for event in events]
        kept = [
            i
            for i, event in enumerate(events)
            if event.features is not None or predictions[i] is not None or unsure[i] is not None
        ]
        if not kept:
            if not joined:
                return None
            topic, number = partition
            offsets = [position.offset for position in positions if position is not None]
            return self.joined_summary(
                joined,
                KafkaPosition(topic=topic, partition=number, offset=min(offsets, default=0)),
                max(offsets, default=0),
                [event.event_time for event in events],
                events[-1].event_id,
            )
        watched = [events[i] for i in kept]
        with_features = [event for event in watched if event.features is not None]
        tally = self._quality.count_many(
            [event.features for event in with_features if event.features is not None]
        )
        where = [positions[i] for i in kept]
        offsets = [position.offset for position in where if position is not None]
        topic, number = partition
        first = min(offsets, default=0)
        summary: dict[str, object] = {
            "model_id": self.spec.model_id,
            "model_version": self.spec.model_version,
            "source": KafkaPosition(topic=topic, partition=number, offset=first),
            "last_offset": max(offsets, default=first),
            "events": len(watched),
            "checked": len(with_features),
            "spread": self.spread,
            "first_event_time": min(event.event_time for event in watched),
            "last_event_time": max(event.event_time for event in watched),
            "last_event_id": watched[-1].event_id,
            "quality": [
                QualityCounts(feature=name, check=check, violations=count, examples=examples)
                for (name, check), (count, examples) in tally.counts.items()
            ],
            "unexpected_features": tally.unexpected,
            **self._joined_fields(joined),
        }
        if self._plan is None:
            summary["warmup"] = [
                WarmupRow(
                    event_time=events[i].event_time,
                    features=dict(events[i].features or {}),
                    prediction=predictions[i],  # type: ignore[arg-type]  # a number or a class
                    uncertainty=unsure[i],
                )
                for i in kept[: self.warmup_rows]
            ]
            return VersionSummary.model_validate(summary)
        summary["reference"] = self._digest
        summary.update(
            self._scores(
                watched,
                with_features,
                tally,
                [predictions[i] for i in kept],
                [unsure[i] for i in kept],
            )
        )
        return VersionSummary.model_validate(summary)

    def joined_summary(
        self,
        joined: Joined,
        source: KafkaPosition,
        last_offset: int,
        times: Sequence[datetime],
        last_event_id: str,
    ) -> VersionSummary:
        """The summary of what a partition's label join found over a batch without events of
        the version to watch (a batch of labels, as a rule): ``source`` and ``last_offset``
        name the batch, ``times`` are its messages' event times."""
        return VersionSummary(
            model_id=self.spec.model_id,
            model_version=self.spec.model_version,
            source=source,
            last_offset=last_offset,
            events=0,
            checked=0,
            first_event_time=min(times),
            last_event_time=max(times),
            last_event_id=last_event_id,
            spread=self.spread,
            reference=self._digest,
            **self._joined_fields(joined),
        )

    def _joined_fields(self, joined: Joined) -> dict[str, Any]:
        """A summary's fields for what the label join found."""
        return {
            "predicted": joined.predicted,
            "outcomes": joined.outcomes,
            "unlabelled": joined.unlabelled,
            "scored": joined.scored,
            "predictions_topic": self.predictions_topic,
            "labels_topic": self.labels_topic,
        }

    def _scores(
        self,
        watched: list[PredictionEvent | FeatureEvent],
        with_features: list[PredictionEvent | FeatureEvent],
        tally: QualityTally,
        predictions: list[object],
        unsure: list[float | None],
    ) -> dict[str, object]:
        """The sums of every drift subject over the batch's events."""
        assert self._plan is not None
        numeric: dict[str, NumericSums] = {}
        categorical: dict[str, CategorySums] = {}
        joint: JointSums | None = None
        scores: dict[str, np.ndarray] = {}
        """Each numeric feature's scores over the events with features (NaN where none)."""
        keys = event_keys([event.event_id for event in watched])
        keys_with_features = (
            keys
            if len(with_features) == len(watched)
            else event_keys([event.event_id for event in with_features])
        )
        for name, detector in self._plan.detectors.items():
            if isinstance(detector, MultivariateDrift):
                joint = self._joint(detector, scores, len(with_features))
                continue
            values: Sequence[object] | np.ndarray
            if name == PREDICTION:
                values, keyed = predictions, keys
            elif name == UNCERTAINTY:
                values, keyed = unsure, keys
            elif isinstance(detector, NumericDrift):
                values, keyed = tally.numeric[name], keys_with_features
            else:
                values, keyed = tally.categories[name], keys_with_features
            if isinstance(detector, NumericDrift):
                column = np.asarray(
                    values
                    if isinstance(values, np.ndarray)
                    else [math.nan if v is None else v for v in values],
                    dtype=np.float64,
                )
                sums, scored = self._numeric(detector, column, keyed)
                if sums is not None:
                    numeric[name] = sums
                if name not in (PREDICTION, UNCERTAINTY):
                    scores[name] = scored
            else:
                assert not isinstance(values, np.ndarray)  # a categorical subject's are a list
                counted = self._categorical(detector, values)
                if counted is not None:
                    categorical[name] = counted
        return {"numeric": numeric, "categorical": categorical, "joint": joint}

    def _numeric(
        self, detector: NumericDrift, column: np.ndarray, keys: np.ndarray
    ) -> tuple[NumericSums | None, np.ndarray]:
        """One numeric subject's sums (None without a value), and its scores in place of its
        values (NaN kept)."""
        finite = np.isfinite(column)
        values = column[finite]
        scores = np.full(len(column), np.nan)
        if not values.size:
            return None, scores
        uniforms = event_uniforms(keys if len(values) == len(keys) else keys[finite], detector.seed)
        z = detector.reference.normal_scores(values, uniforms)
        scores[finite] = z
        differences = np.diff(z)
        return (
            NumericSums(
                count=len(z),
                total=float(z.sum()),
                squares=float((z * z).sum()),
                differences=len(z) - 1,
                squared_differences=float(
                    np.minimum(differences * differences, MAX_SQUARED_DIFFERENCE).sum()
                ),
                location=detector.location_walks(z),
                scale=detector.scale_walks(z),
                sample=_spread(values, self.sample).tolist(),
            ),
            scores,
        )

    def _categorical(
        self, detector: CategoricalDrift, values: Sequence[object]
    ) -> CategorySums | None:
        """One categorical subject's group counts and walks; None without a value."""
        present = [str(value) for value in values if value is not None]
        if not present:
            return None
        counts: dict[str, int] = {}
        for value in present:
            group = detector.group_of(value)
            counts[group] = counts.get(group, 0) + 1
        return CategorySums(
            counts=counts,
            walks=detector.walks(present),
            sample=_spread_list(present, self.sample),
        )

    def _joint(
        self, detector: MultivariateDrift, scores: dict[str, np.ndarray], rows: int
    ) -> JointSums | None:
        """The joint test over the events with a score for every feature it watches; None
        without such an event."""
        if not rows or any(name not in scores for name in detector.features):
            return None
        matrix = np.column_stack([scores[name] for name in detector.features])
        complete = matrix[np.isfinite(matrix).all(axis=1)]
        if not len(complete):
            return None
        distances = detector.distances(complete)
        return JointSums(
            count=len(distances),
            total=float(distances.sum()),
            walk=detector.walk(distances),
            sample=_spread(distances, self.sample).tolist(),
        )


def _spread(values: np.ndarray, count: int) -> np.ndarray:
    """At most ``count`` of ``values``, evenly spread over them."""
    if len(values) <= count:
        return values
    return values[np.linspace(0, len(values) - 1, count).astype(np.int64)]


def _spread_list(values: list[str], count: int) -> list[str]:
    """At most ``count`` of ``values``, evenly spread over them."""
    if len(values) <= count:
        return values
    return [values[i] for i in np.linspace(0, len(values) - 1, count).astype(np.int64).tolist()]
