"""A faust worker whose only agent decodes predictions: the framework's own ceiling.

Path (b) of the throughput benchmark. The app is built by
:func:`driftline.streams.create_app` from the same ``DRIFTLINE_*`` settings
a ``driftline worker`` reads, so it consumes exactly as the worker does,
minus driftline's decisions. With ``--batches`` the agent consumes through
``driftline.streams.batching.take_batches`` (path (b')), up to
``--max-records`` a batch; a shorter batch waits ``--within`` seconds for more.

When it has decoded ``--expected`` events it writes its timings, taken
inside the process (wall time and the process's own CPU time at the first
and the last event), to ``--result`` as JSON, and runs on until stopped.

    python benchmarks/decode_agent.py --expected 100000 --result out.json [--batches]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import StreamT

from driftline.streams import create_app, load_settings


class Tally:
    """Counts decoded events and notes when the first and the expected-th were decoded."""

    def __init__(self, expected: int, result: Path) -> None:
        self.expected = expected
        self.result = result
        self.decoded = 0
        self.first: tuple[float, float] | None = None

    def decode(self, value: bytes | None) -> None:
        orjson.loads(value or b"null")
        self.decoded += 1
        if self.first is None:
            self.first = (time.time(), time.process_time())
        if self.decoded == self.expected:
            self.write({"events": self.decoded})

    def fail(self, error: BaseException) -> None:
        self.write({"events": self.decoded, "error": repr(error)})

    def write(self, figures: dict[str, Any]) -> None:
        first_wall, first_cpu = self.first or (time.time(), time.process_time())
        figures |= {
            "first_event_wall": first_wall,
            "first_event_cpu": first_cpu,
            "last_event_wall": time.time(),
            "last_event_cpu": time.process_time(),
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        scratch = self.result.with_suffix(".partial")
        scratch.write_bytes(orjson.dumps(figures))
        os.replace(scratch, self.result)


async def decode_events(stream: StreamT[bytes], tally: Tally) -> None:
    """Per event, as the worker's agents iterate: ``stream.events()``."""
    async for event in stream.events():
        tally.decode(event.message.value)


async def decode_batches(
    stream: StreamT[bytes], tally: Tally, *, max_records: int, within: float
) -> None:
    """Through the project's batch consumption (imported here: it may not exist yet)."""
    from driftline.streams.batching import take_batches

    async for batch in take_batches(stream, max_records=max_records, within=within):
        for message in batch:
            tally.decode(message.value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--batches", action="store_true", help="read through take_batches")
    parser.add_argument("--max-records", type=int, default=1_000, help="per batch")
    parser.add_argument(
        "--within", type=float, default=1.0, help="seconds a short batch waits for more"
    )
    args = parser.parse_args()

    settings = load_settings()
    dapp = create_app(settings)
    tally = Tally(args.expected, args.result)

    async def agent(stream: StreamT[bytes]) -> None:
        try:
            if args.batches:
                await decode_batches(
                    stream, tally, max_records=args.max_records, within=args.within
                )
            else:
                await decode_events(stream, tally)
        except Exception as error:  # the parent reads why, instead of waiting for nothing
            tally.fail(error)
            raise

    dapp.app.agent(dapp.predictions, name="benchmark.decode", concurrency=1)(agent)
    faust.Worker(dapp.app, loglevel=settings.log_level).execute_from_commandline()


if __name__ == "__main__":
    main()
