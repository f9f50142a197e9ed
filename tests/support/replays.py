"""Replays run for their outputs and counts, to compare one process with several."""

import json
from collections.abc import Sequence

from driftline.agents.intake import IntakeCounters
from driftline.replay import Replay
from driftline.schemas import ModelSpec
from driftline.streams.settings import Settings


def replayed(
    lines: list[bytes],
    processes: int,
    specs: Sequence[ModelSpec],
    *,
    batch_size: int = 1_000,
    settings: Settings | None = None,
) -> tuple[list[str], IntakeCounters, Replay]:
    """The outputs (as JSON) and counters of a replay of ``lines``, and the replay."""
    run = Replay(list(specs), batch_size=batch_size, processes=processes, settings=settings)
    outputs = [output.model_dump_json() for output in run.feed(lines)]
    return outputs, run.intake.counters, run


def refused_lines(good: bytes) -> list[bytes]:
    """Lines a worker refuses, made from a good one: each a reason of its own."""
    event = json.loads(good)
    return [
        b"not json",
        json.dumps({**event, "model_id": "nobody"}).encode(),
        json.dumps({**event, "prediction": "high", "event_id": "x-1"}).encode(),
        json.dumps({**event, "model_version": "9", "event_id": "x-2"}).encode(),
    ]
