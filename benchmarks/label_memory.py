"""Memory of the label join per prediction waiting for its label.

Feeds one labelled classifier (two classes, probabilities, a Kafka position
per prediction) 100,000 predictions whose labels never come, through the
worker's :class:`~driftline.agents.labelling.LabelDesk` with a dict as the
join's store, and measures with tracemalloc what stays allocated:

- the join: what the label join's store and indexes hold (allocations made
  in ``monitors/labels.py``, ``monitors/waiting.py`` and ``monitors/held.py``),
  per waiting prediction;
- the desk: everything the desk holds after the predictions (the join, the
  performance monitor's open windows), per prediction.

A model that never had a label holds none of its predictions in the join;
the run shows it as a second model.

    python benchmarks/label_memory.py [--predictions N]
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftline.agents.counters import TopicCounters
from driftline.agents.labelling import LabelDesk, LabelMessage
from driftline.agents.outputs import Output
from driftline.agents.registry import ModelRegistry, Registration
from driftline.schemas import KafkaPosition, LabelEvent, ModelSpec, PredictionEvent
from driftline.streams import Rejection
from driftline.streams.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ["repaid", "defaulted"]
JOIN_FILES = [str(Path("monitors") / name) for name in ("labels.py", "waiting.py", "held.py")]


def spec(model_id: str) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        model_version="4",
        task="classification",
        classes=CLASSES,
        features=[],
        performance={"window": 1_000},
    )


def desk_for(models: list[ModelSpec], predictions: int) -> LabelDesk:
    registry = ModelRegistry()
    for model in models:
        registry.apply(Registration(model))

    def dead_letter(message: LabelMessage, rejection: Rejection) -> Output:
        raise AssertionError(f"no label is dead-lettered here: {rejection}")

    return LabelDesk(
        Settings(label_retention_seconds=10 * predictions, max_pending_labels=10 * predictions),
        registry,
        TopicCounters(),
        dead_letter=dead_letter,
        alert=lambda alert: [],
        resolve=lambda spec, back, source: [],
    )


def first_label(desk: LabelDesk, model: ModelSpec) -> None:
    """A label for a prediction not sent yet: the model has had a label."""
    label = LabelEvent(
        model_id=model.model_id,
        event_id="first-label",
        prediction_id="not-yet",
        event_time=START,
        label=CLASSES[0],
    )
    source = KafkaPosition(topic="driftline.labels", partition=0, offset=0)
    desk.label(label, LabelMessage(label.model_dump_json().encode(), b"m", source))


def predict(desk: LabelDesk, model: ModelSpec, count: int) -> None:
    for i in range(count):
        confident = 0.55 + (i % 40) / 100
        predicted, other = CLASSES[i % 2], CLASSES[1 - i % 2]
        event = PredictionEvent(
            model_id=model.model_id,
            model_version=model.model_version,
            event_id=f"prediction-{i:08d}",
            event_time=START + timedelta(seconds=i),
            prediction=predicted,
            probabilities={predicted: confident, other: 1 - confident},
        )
        position = KafkaPosition(topic="driftline.predictions", partition=3, offset=1_000_000 + i)
        desk.prediction(model, event, position)


def measure(predictions: int, labelled: bool) -> tuple[float, float, int]:
    """Bytes per prediction held by the join and by the whole desk; predictions waiting."""
    model = spec("labelled" if labelled else "never-labelled")
    desk = desk_for([model], predictions)
    if labelled:
        first_label(desk, model)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    predict(desk, model, predictions)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    in_join = [tracemalloc.Filter(True, f"*{name}") for name in JOIN_FILES]
    join = after.filter_traces(in_join)
    join_before = before.filter_traces(in_join)
    join_bytes = _total(join) - _total(join_before)
    desk_bytes = _total(after) - _total(before)
    return join_bytes / predictions, desk_bytes / predictions, desk.join.pending_predictions


def _total(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=100_000)
    args = parser.parse_args()
    print(f"{args.predictions:,} predictions of one classifier, no label for any of them")
    print(f"{'model':<16} {'waiting':>9} {'join B/prediction':>18} {'desk B/prediction':>18}")
    for labelled in (True, False):
        join, desk, waiting = measure(args.predictions, labelled)
        name = "labelled" if labelled else "never labelled"
        print(f"{name:<16} {waiting:>9,} {join:>18,.0f} {desk:>18,.0f}")


if __name__ == "__main__":
    main()
