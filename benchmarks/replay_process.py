"""Replay of recorded events in a process of its own, set up as ``driftline replay`` sets it up.

Path (d) of the throughput benchmark. A fresh process, like the command:
no garbage of earlier runs, and the runtime settings of
:func:`driftline.replay.tune_replay_process` (which stay for the rest of a
process, and would change every path measured after them in the
benchmark's own). The events are read into memory first; the timing
covers :meth:`~driftline.replay.Replay.feed` alone, wall time and the
process's own CPU time (the other processes' too, with ``--processes``
above 1: the children's CPU time as their parent reaps them), and is
written to ``--result`` as JSON. ``--processes`` is the command's: 0 (the
default) for one per CPU, never more than the specs' models (two for one model,
one after the other).

    python benchmarks/replay_process.py --specs specs.json --events events.jsonl --result out.json
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import orjson

from driftline.parallel_replay import processes_wanted
from driftline.replay import Replay, tune_replay_process
from driftline.schemas import ModelSpec


def replay_timed(
    specs: list[ModelSpec], lines: list[bytes], processes: int = 1
) -> dict[str, float | int]:
    """Replay the lines with these specs; what became of them and how long it took."""
    replay = Replay(specs, processes=processes)
    started = (time.perf_counter(), cpu_seconds())
    outputs = sum(1 for _ in replay.feed(lines))
    ended = (time.perf_counter(), cpu_seconds())
    counters = replay.counters
    return {
        "events": counters.processed + counters.dead_lettered + counters.duplicates,
        "processed": counters.processed,
        "dead_lettered": counters.dead_lettered,
        "outputs": outputs,
        "seconds": ended[0] - started[0],
        "cpu_seconds": ended[1] - started[1],
        "processes": replay.processes,
    }


def cpu_seconds() -> float:
    """CPU time of this process and of its children reaped so far."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=Path, required=True, help="a JSON list of model specs")
    parser.add_argument("--events", type=Path, required=True, help="one JSON event per line")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument(
        "--processes", type=int, default=0, help="processes sharing the models (0: one per CPU)"
    )
    args = parser.parse_args()
    specs = [ModelSpec.model_validate(spec) for spec in orjson.loads(args.specs.read_bytes())]
    lines = args.events.read_bytes().splitlines()
    tune_replay_process()
    processes = processes_wanted(args.processes)
    args.result.write_bytes(orjson.dumps(replay_timed(specs, lines, processes)))


if __name__ == "__main__":
    main()
