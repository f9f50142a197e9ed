"""Prediction traffic for the throughput benchmark: layouts, models, events, labels.

Every event comes from :func:`driftline.simulate.simulated_predictions`
(numeric features f0..f19, a logistic score as a regression prediction), so
the benchmark measures the traffic the demo and the tests use, about 500
bytes of JSON per event, keyed by model id as a producer publishes it.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from driftline.client import Publisher
from driftline.schemas import KeyedBy, LabelEvent, ModelSpec, PredictionEvent
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings

DRIFTING_FEATURE = "f0"
"""The feature the latency run shifts; the others stay N(0, 1)."""

DECIMALS = 6
"""Decimals of the published numbers: 20 features then make events of about 500 bytes."""

BROKEN_CUT_BYTES = 20
"""How much of each event's JSON a broken event lacks (its last features and the rest)."""

LABEL_DELAY = timedelta(seconds=1)
"""How long after its prediction (in event time) a label is published."""


@dataclass(frozen=True, slots=True)
class Layout:
    """How many models share the predictions topic, each with ``features`` numeric features."""

    name: str
    title: str
    models: int
    features: int = 20
    keyed_by: KeyedBy = KeyedBy.MODEL_ID
    """How the models' events are keyed: by model id (one partition each), or spread."""

    @property
    def feature_names(self) -> list[str]:
        return [f"f{index}" for index in range(self.features)]


LAYOUTS = {
    "1-model": Layout("1-model", "1 model x 20 numeric features", models=1),
    "10-models": Layout("10-models", "10 models across 4 partitions", models=10),
}
SCALING = Layout("100-models", "100 models x 20 numeric features", models=100)
HOT_MODEL = Layout(
    "hot-model", "1 model x 20 numeric features, keyed by event id", 1, keyed_by=KeyedBy.EVENT_ID
)
"""One busy model spread over every partition: watched in two stages."""


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (the client's too) gives this key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def model_ids(layout: Layout, partitions: int) -> list[str]:
    """Model ids spread as evenly as keys allow over ``partitions`` partitions."""
    most_per_partition = math.ceil(layout.models / partitions)
    taken: Counter[int] = Counter()
    chosen: list[str] = []
    for index in itertools.count():
        if len(chosen) == layout.models:
            return chosen
        candidate = f"model-{index}"
        partition = partition_of(candidate, partitions)
        if taken[partition] < most_per_partition:
            taken[partition] += 1
            chosen.append(candidate)
    raise AssertionError("unreachable")


def model_specs(
    layout: Layout, partitions: int, warmup_events: int | None = None
) -> list[ModelSpec]:
    """One regression spec per model, with the default drift policy unless told otherwise."""
    names = layout.feature_names
    specs = [
        simulated_model_spec(
            drifting=names[0], stable=tuple(names[1:]), model_id=model_id
        ).model_copy(update={"keyed_by": layout.keyed_by})
        for model_id in model_ids(layout, partitions)
    ]
    if warmup_events is None:
        return specs
    return [
        spec.model_copy(
            update={"drift": spec.drift.model_copy(update={"warmup_events": warmup_events})}
        )
        for spec in specs
    ]


def prediction_events(
    specs: list[ModelSpec],
    count: int,
    *,
    shift_at: int | None = None,
    shift: float = 2.0,
    seed: int = 0,
) -> Iterator[PredictionEvent]:
    """``count`` events over all models, taking turns; each model's own stream stays in order.

    Each model's feature f0 moves by ``shift`` sd from its ``shift_at``-th
    event on (never when None).
    """
    share, extra = divmod(count, len(specs))
    streams = []
    for index, spec in enumerate(specs):
        names = [feature.name for feature in spec.features]
        own = share + (1 if index < extra else 0)
        streams.append(
            simulated_predictions(
                own,
                shift_at=own if shift_at is None else shift_at,
                shift=shift,
                drifting=names[0],
                stable=tuple(names[1:]),
                model_id=spec.model_id,
                model_version=spec.model_version,
                seed=seed + index,
            )
        )
    for turn in itertools.zip_longest(*streams):
        yield from (with_decimals(event) for event in turn if event is not None)


def with_decimals(event: PredictionEvent, decimals: int = DECIMALS) -> PredictionEvent:
    """The event with its numbers rounded, as a producer that formats its floats sends them."""
    features = {
        name: round(value, decimals) if isinstance(value, float) else value
        for name, value in (event.features or {}).items()
    }
    prediction = event.prediction
    if isinstance(prediction, float):
        prediction = round(prediction, decimals)
    return event.model_copy(update={"features": features, "prediction": prediction})


def label_for(event: PredictionEvent) -> LabelEvent:
    """The ground truth of one prediction, published a second (in event time) after it."""
    assert isinstance(event.prediction, float)
    return LabelEvent(
        model_id=event.model_id,
        event_id=f"{event.event_id}-label",
        prediction_id=event.event_id,
        event_time=event.event_time + LABEL_DELAY,
        label=float(round(event.prediction)),
    )


def publisher_for(settings: Settings, keyed_by: KeyedBy = KeyedBy.MODEL_ID) -> Publisher:
    """A publisher to the topics of these settings, keying events as ``keyed_by`` says."""
    return Publisher(
        settings.bootstrap_servers,
        keyed_by=keyed_by,
        predictions_topic=settings.predictions_topic,
        labels_topic=settings.labels_topic,
        models_topic=settings.models_topic,
        references_topic=settings.references_topic,
    )


def publish_specs(settings: Settings, specs: Iterable[ModelSpec]) -> None:
    """Register the model versions the workers will read from the registry topic."""
    with publisher_for(settings) as publisher:
        for spec in specs:
            publisher.register(spec)


def publish_broken(
    settings: Settings, events: Iterable[PredictionEvent], *, cut: int = BROKEN_CUT_BYTES
) -> int:
    """Publish each event with its JSON cut short by ``cut`` bytes, keyed by its model id, as a
    producer with a bug in its encoder would; how many were published.

    A worker dead-letters every one (``invalid_json``), each carrying the broken bytes.
    """
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5)
    count = 0
    try:
        for event in events:
            value = event.model_dump_json().encode()[:-cut]
            producer.send(settings.predictions_topic, key=event.model_id.encode(), value=value)
            count += 1
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return count


def publish_events(
    settings: Settings,
    events: Iterable[PredictionEvent],
    *,
    labelled: int = 0,
    keep: bool = False,
    flush_every: int = 50_000,
    keyed_by: KeyedBy = KeyedBy.MODEL_ID,
) -> list[bytes]:
    """Publish the events (and a label for every ``labelled``-th one, when not 0), keyed as
    ``keyed_by`` says.

    Returns the events' JSON values as published when ``keep``, for replay.
    """
    kept: list[bytes] = []
    with publisher_for(settings, keyed_by) as publisher:
        for index, event in enumerate(events, start=1):
            publisher.publish(event)
            if keep:
                kept.append(event.model_dump_json().encode())
            if labelled and index % labelled == 0:
                publisher.publish(label_for(event))
            if index % flush_every == 0:
                publisher.flush(timeout=120)
    return kept
