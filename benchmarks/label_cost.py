"""CPU time per prediction and per label of models whose labels come, in one process.

The throughput benchmark's traffic has no labels. Here each model version
gets its predictions in batches, and after each batch the labels of the
batch before (a second after their predictions, in event time), all through
the worker's :class:`~driftline.agents.intake.Intake` as a worker's agents
feed it batches, without Kafka. Predictions of a labelled model wait in the
label join; each label finds its prediction there and feeds the version's
performance monitor.

It prints, for each run, the CPU microseconds a prediction and a label
took, and the number and a digest of the outputs, so that two versions of
the code can be compared on the same traffic (the digest must not change).

    python benchmarks/label_cost.py [--layout 10-models] [--events 60000] [--batch 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script. The project keeps its root off sys.path (PYTHONSAFEPATH=1);
    # append it, after the installed packages, so `benchmarks` can be imported.
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import argparse
import gc
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.throughput_paths import replay_garbage_collector
from benchmarks.traffic import LAYOUTS, label_for, model_specs, prediction_events
from driftline.agents.intake import InputMessage, InputTopic
from driftline.agents.outputs import Output
from driftline.monitors.positions import Position
from driftline.replay import Replay
from driftline.schemas import ModelSpec

PARTITIONS = 4


@dataclass(frozen=True)  # no slots: the class attributes are the command's defaults
class Options:
    layout: str = "10-models"
    events: int = 60_000
    batch: int = 2_000
    runs: int = 3


@dataclass(frozen=True, slots=True)
class LabelRun:
    """One run's CPU time per prediction and per label (µs), and what came out."""

    prediction_us: float
    label_us: float
    labels_joined: int
    """Labels that found their prediction (all of them, as the traffic is made)."""
    outputs: int
    digest: str


def traffic(options: Options) -> tuple[list[ModelSpec], list[bytes], list[bytes]]:
    """The specs, and each prediction's bytes with its label's, in the same order."""
    specs = model_specs(LAYOUTS[options.layout], PARTITIONS)
    events = list(prediction_events(specs, options.events))
    predictions = [event.model_dump_json().encode() for event in events]
    labels = [label_for(event).model_dump_json().encode() for event in events]
    return specs, predictions, labels


def messages(topic: InputTopic, values: Sequence[bytes], first: int) -> list[InputMessage]:
    return [
        InputMessage(topic, value, None, Position(topic.value, 0, first + offset))
        for offset, value in enumerate(values)
    ]


def run(
    options: Options, specs: list[ModelSpec], predictions: list[bytes], labels: list[bytes]
) -> LabelRun:
    """Feed the batches; time the predictions' and the labels' apart."""
    digest = hashlib.sha256()
    count = 0
    spent = {InputTopic.PREDICTIONS: 0.0, InputTopic.LABELS: 0.0}
    intake = Replay(specs).intake

    def handle(topic: InputTopic, values: Sequence[bytes], first: int) -> None:
        nonlocal count
        batch = messages(topic, values, first)
        started = time.process_time()
        outputs: list[Output] = intake.handle_batch(batch)
        spent[topic] += time.process_time() - started
        count += len(outputs)
        for output in outputs:
            digest.update(output.message.model_dump_json().encode())

    size = options.batch
    with replay_garbage_collector():
        for first in range(0, len(predictions), size):
            handle(InputTopic.PREDICTIONS, predictions[first : first + size], first)
            if first >= size:  # the labels of the batch before
                handle(InputTopic.LABELS, labels[first - size : first], first - size)
    labelled = max(len(labels) - size, 1)
    return LabelRun(
        prediction_us=spent[InputTopic.PREDICTIONS] / len(predictions) * 1e6,
        label_us=spent[InputTopic.LABELS] / labelled * 1e6,
        labels_joined=intake.counters.topics[InputTopic.LABELS].processed,
        outputs=count,
        digest=digest.hexdigest()[:12],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=Options.layout)
    parser.add_argument("--events", type=int, default=Options.events)
    parser.add_argument("--batch", type=int, default=Options.batch)
    parser.add_argument("--runs", type=int, default=Options.runs)
    args = parser.parse_args()
    options = Options(args.layout, args.events, args.batch, args.runs)
    specs, predictions, labels = traffic(options)
    print(
        f"{options.layout}: {options.events:,} predictions and their labels, "
        f"{options.batch:,} a batch"
    )
    for number in range(1, options.runs + 1):
        gc.collect()
        one = run(options, specs, predictions, labels)
        print(
            f"run {number}: {one.prediction_us:.1f} µs a prediction, "
            f"{one.label_us:.1f} µs a label, {one.outputs} outputs (digest {one.digest})"
        )


if __name__ == "__main__":
    main()
