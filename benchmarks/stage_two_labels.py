"""What a label costs the second stage of a model keyed by event id.

A classifier's predictions are spread over the partitions, and each
partition's labels come a batch after their predictions, in summaries of
labels as the first stages send them. The second stage's summary monitor
takes them in one process, without Kafka; the benchmark prints the time a
label took to decode (its share of the summaries' JSON) and to take (the
CPU time of the monitor's thread), and the bytes a label adds to a summary.

    .venv/bin/python benchmarks/stage_two_labels.py             # 40,000 predictions and labels
    .venv/bin/python benchmarks/stage_two_labels.py --events 10000 --partitions 8

Compare with the first stage's cost per event in ``hot_model.py`` and with a
label's cost in one process in ``label_cost.py``.
"""

import argparse
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil

from driftline.monitors.summary_monitor import SummaryMonitor
from driftline.schemas import KafkaPosition, ModelSpec, PerformancePolicy
from driftline.schemas.summaries import Outcome, VersionSummary, WindowCount
from driftline.streams.runtime import collector_paused, tune_garbage_collector

START = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = ModelSpec(
    model_id="hot",
    model_version="1",
    task="classification",
    classes=["no", "yes"],
    features=[],
    keyed_by="event_id",
    performance=PerformancePolicy(window=1_000, reference_labels=2_000),
)


@dataclass(frozen=True)
class Options:
    events: int = 40_000
    partitions: int = 8
    batch: int = 250
    """Events of one partition in one summary."""
    seed: int = 7


@dataclass(frozen=True)
class Result:
    summaries: int
    labels: int
    labelled: int
    decode_us: float
    take_us: float
    bytes_per_label: float


def summaries(options: Options) -> list[bytes]:
    """The summaries the first stages send, as JSON: per partition, each batch of predictions
    counted in its windows, then a summary of the batch's labels; in the order of their times."""
    rng = random.Random(options.seed)
    share = ceil(SPEC.performance.window / options.partitions)
    by_partition: dict[int, list[int]] = {p: [] for p in range(options.partitions)}
    for number in range(options.events):
        by_partition[rng.randrange(options.partitions)].append(number)
    made: list[VersionSummary] = []
    for partition, numbers in by_partition.items():
        for start in range(0, len(numbers), options.batch):
            batch = numbers[start : start + options.batch]
            times = [START + timedelta(seconds=n / 10) for n in batch]
            windows = Counter((start + k) // share for k in range(len(batch)))
            made.append(
                VersionSummary(
                    model_id="hot",
                    model_version="1",
                    source=KafkaPosition(topic="predictions", partition=partition, offset=start),
                    last_offset=start + len(batch) - 1,
                    events=len(batch),
                    checked=0,
                    first_event_time=min(times),
                    last_event_time=max(times),
                    last_event_id=f"e{batch[-1]}",
                    spread=options.partitions,
                    predicted=[WindowCount(w, c) for w, c in sorted(windows.items())],
                )
            )
            outcomes = []
            for k, (number, when) in enumerate(zip(batch, times, strict=True)):
                p = rng.random()
                predicted = "yes" if p > 0.5 else "no"
                right = rng.random() < max(p, 1 - p)
                label = predicted if right else ("no" if predicted == "yes" else "yes")
                outcomes.append(
                    Outcome(
                        (start + k) // share,
                        when,
                        predicted,
                        {"no": 1 - p, "yes": p},
                        start + k,
                        label,
                        f"l{number}",
                        when + timedelta(seconds=30),
                        start + k,
                    )
                )
            label_times = [outcome.label_time for outcome in outcomes]
            made.append(
                VersionSummary(
                    model_id="hot",
                    model_version="1",
                    source=KafkaPosition(topic="labels", partition=partition, offset=start),
                    last_offset=start + len(batch) - 1,
                    events=0,
                    checked=0,
                    first_event_time=min(label_times),
                    last_event_time=max(label_times),
                    last_event_id=f"l{batch[-1]}",
                    spread=options.partitions,
                    outcomes=outcomes,
                )
            )
    made.sort(key=lambda summary: summary.last_event_time)
    return [summary.model_dump_json().encode() for summary in made]


def run(options: Options, texts: list[bytes]) -> Result:
    """Decode and take every summary, timing both."""
    started = time.perf_counter()
    decoded = [VersionSummary.model_validate_json(text) for text in texts]
    decoding = time.perf_counter() - started
    labels = sum(len(summary.outcomes) for summary in decoded)
    monitor = SummaryMonitor(SPEC)
    started = time.thread_time()
    for summary in decoded:  # as the worker takes a batch: the collector held off
        with collector_paused():
            monitor.take(summary)
    monitor.flush()
    taking = time.thread_time() - started
    label_bytes = sum(len(text) for text, s in zip(texts, decoded, strict=True) if s.outcomes)
    return Result(
        summaries=len(texts),
        labels=labels,
        labelled=monitor.performance.labelled_predictions,
        decode_us=decoding / labels * 1e6,
        take_us=taking / labels * 1e6,
        bytes_per_label=label_bytes / labels,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=Options.events)
    parser.add_argument("--partitions", type=int, default=Options.partitions)
    parser.add_argument("--batch", type=int, default=Options.batch)
    parser.add_argument("--repeats", type=int, default=3, help="runs, each printed")
    args = parser.parse_args()
    options = Options(events=args.events, partitions=args.partitions, batch=args.batch)
    texts = summaries(options)
    tune_garbage_collector()  # as the worker does
    for _ in range(args.repeats):
        result = run(options, texts)
        print(
            f"{result.summaries} summaries, {result.labels} labels ({result.labelled} taken): "
            f"decoding {result.decode_us:.1f} µs a label, taking {result.take_us:.1f} µs a "
            f"label, {result.bytes_per_label:.0f} bytes a label"
        )


if __name__ == "__main__":
    main()
