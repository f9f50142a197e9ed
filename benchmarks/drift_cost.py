"""What a drift costs the worker's decisions, against a quiet stretch, in replay.

The alert-latency run of ``throughput.py`` sends each model's warm-up and
then shifts one feature of every model at once, so its alerts all come while
the ten warm-ups end and the drift begins: how fast the worker decides there
is what the latency shows. This replays the same traffic (the same events,
encoded the same way) through :class:`driftline.replay.Replay`, in batches
of ``--batch`` events (340 by default, about what a worker takes of 10 models
at 6,000 events/s with its 50 ms wait), once with the shift and once without,
and prints the process time per event of each phase:

- ``warm-up``: the batches before the first warm-up ends;
- ``warm-ups end``: the batches in which they end (the references are built);
- ``onset``: the next ``--onset-events`` events (the first alarms and alerts);
- ``later``: the rest, a drift that goes on (or a quiet stretch, without the shift).

Process time, not wall time, so that the rest of the machine counts less;
each phase's figure is the median over ``--runs`` runs, which alternate.

    python benchmarks/drift_cost.py                      # 10 models, about a minute
    python benchmarks/drift_cost.py --batch 2000 --runs 3
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: the project keeps its root off sys.path (see throughput.py).
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.alert_latency import SHIFT_SD, encoded
from benchmarks.throughput_paths import replay_garbage_collector
from benchmarks.traffic import LAYOUTS, model_specs, prediction_events
from driftline.replay import Replay
from driftline.schemas import ModelSpec

PHASES = ("warm-up", "warm-ups end", "onset", "later")


@dataclass(frozen=True)
class Options:
    """What to replay: the layout, each model's warm-up and shifted events, the batches."""

    layout: str = "10-models"
    warmup_events: int | None = None
    """Each model's warm-up; None: the spec's default."""
    shifted_events: int = 1_000
    """Events per model after its warm-up (shifted, in the drift run)."""
    batch: int = 340
    onset_events: int = 3_000
    runs: int = 3
    seed: int = 1_000


def phase_of(start: int, end: int, warmups_end: tuple[int, int], onset_events: int) -> str:
    """The phase of the batch of events ``start`` to ``end`` (excluded).

    ``warmups_end`` is the span of events in which the models' warm-ups end
    (each model's last warm-up event is in it).

    >>> [phase_of(s, s + 10, (40, 50), 20) for s in (0, 30, 40, 50, 60, 70)]
    ['warm-up', 'warm-up', 'warm-ups end', 'onset', 'onset', 'later']
    """
    first, last = warmups_end
    if end <= first:
        return "warm-up"
    if start < last:
        return "warm-ups end"
    if start < last + onset_events:
        return "onset"
    return "later"


def traffic(options: Options, *, shifted: bool) -> tuple[list[ModelSpec], list[bytes]]:
    """The latency run's specs and encoded events, with the shift or without."""
    specs = model_specs(LAYOUTS[options.layout], 4, options.warmup_events)
    warmup = specs[0].drift.warmup_events
    count = len(specs) * (warmup + options.shifted_events)
    events = prediction_events(
        specs, count, shift_at=warmup, shift=SHIFT_SD if shifted else 0.0, seed=options.seed
    )
    return specs, [value for _, _, value in encoded(events)]


def replay_costs(
    options: Options, specs: list[ModelSpec], lines: list[bytes]
) -> dict[str, tuple[int, float]]:
    """One replay of :func:`traffic`: each phase's events and process seconds."""
    warmup = specs[0].drift.warmup_events
    warmups_end = (len(specs) * (warmup - 1), len(specs) * warmup)
    costs = {phase: (0, 0.0) for phase in PHASES}
    with replay_garbage_collector():
        replay = Replay(specs, batch_size=options.batch)
        for start in range(0, len(lines), options.batch):
            batch = lines[start : start + options.batch]
            began = time.process_time()
            for _ in replay.feed(batch):
                pass
            spent = time.process_time() - began
            phase = phase_of(start, start + len(batch), warmups_end, options.onset_events)
            events_so_far, seconds = costs[phase]
            costs[phase] = (events_so_far + len(batch), seconds + spent)
    return costs


def measure(options: Options) -> dict[str, dict[str, float | None]]:
    """Median µs per event of each phase, with the shift (``drift``) and without (``quiet``)."""
    kinds = {kind: traffic(options, shifted=kind == "drift") for kind in ("drift", "quiet")}
    runs: dict[str, dict[str, list[float]]] = {
        kind: {phase: [] for phase in PHASES} for kind in kinds
    }
    for _ in range(options.runs):
        for kind, (specs, lines) in kinds.items():
            for phase, (events, seconds) in replay_costs(options, specs, lines).items():
                if events:
                    runs[kind][phase].append(seconds / events * 1e6)
    return {
        kind: {
            phase: statistics.median(values) if values else None for phase, values in phases.items()
        }
        for kind, phases in runs.items()
    }


def lines(figures: dict[str, dict[str, float | None]], options: Options) -> list[str]:
    """The figures as a table."""
    header = f"{'phase':<14}{'drift µs/event':>16}{'quiet µs/event':>16}"
    rows = [
        f"{options.layout}, batches of {options.batch}, medians of {options.runs} runs",
        header,
    ]
    for phase in PHASES:
        cells = [figures[kind][phase] for kind in ("drift", "quiet")]
        rows.append(
            f"{phase:<14}" + "".join(f"{'-' if c is None else f'{c:.1f}':>16}" for c in cells)
        )
    return rows


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=Options.layout)
    parser.add_argument("--warmup-events", type=int, default=None)
    parser.add_argument("--shifted-events", type=int, default=Options.shifted_events)
    parser.add_argument("--batch", type=int, default=Options.batch)
    parser.add_argument("--onset-events", type=int, default=Options.onset_events)
    parser.add_argument("--runs", type=int, default=Options.runs)
    args = parser.parse_args(argv)
    if args.batch < 1 or args.runs < 1:
        parser.error("--batch and --runs must be at least 1")
    return Options(
        layout=args.layout,
        warmup_events=args.warmup_events,
        shifted_events=args.shifted_events,
        batch=args.batch,
        onset_events=args.onset_events,
        runs=args.runs,
    )


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_options(argv)
    logging.getLogger("driftline").setLevel(logging.WARNING)  # not every alert replayed
    print("\n".join(lines(measure(options), options)))


if __name__ == "__main__":
    main()
