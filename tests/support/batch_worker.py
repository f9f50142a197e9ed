"""A worker that reads the predictions topic with take_batches and copies each record out.

Run as a script by tests/streams/test_batching.py, with the worker's
``DRIFTLINE_*`` environment: for every record of a batch it sends
``"<partition>:<offset>:<value>"`` to the alerts topic, after a pause
(``--pause`` seconds per batch) that makes a kill land mid-batch, and awaits
every send before asking for the next batch. With a small ``--buffer`` the
feed fills up again and again, so its partitions are held back and released.
With ``--target-seconds`` batches are sized to take about that long, and
``--sizes`` gets the size of each batch, a line each. With ``--neighbour``
another task keeps the event loop busy that many seconds during each
batch's pause, as another agent would, timed on the same loop's clock.
With ``--defer``, batches are acked only by a checkpoint (as the worker's
state saves ack them), which runs only when faust waits for the streams to
be done: before a rebalance or a stop commits.
"""

import argparse
import asyncio
import time
from typing import Any

import faust

from driftline.streams import create_app, load_settings
from driftline.streams.batching import DeferredAcks, take_batches
from driftline.streams.busy import LoopTime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--max-records", type=int, default=100)
    parser.add_argument("--buffer", type=int, default=None, help="faust's stream_buffer_maxsize")
    parser.add_argument("--target-seconds", type=float, default=None)
    parser.add_argument("--sizes", default=None, help="a file to append each batch's size to")
    parser.add_argument("--neighbour", type=float, default=None, help="seconds it blocks at a time")
    parser.add_argument(
        "--within", type=float, default=0.1, help="seconds a batch waits to fill once begun"
    )
    parser.add_argument("--defer", action="store_true", help="ack only at checkpoints")
    args = parser.parse_args()
    dapp = create_app(load_settings())
    if args.buffer is not None:  # a feed holds max(this, 2 * max-records) records
        dapp.app.conf.stream_buffer_maxsize = args.buffer
    # A killed member holds its partitions until its session times out:
    # the broker's shortest, so a restart takes over within seconds.
    dapp.app.conf.broker_session_timeout = 6.0
    dapp.app.conf.broker_heartbeat_interval = 1.0
    output = dapp.alerts
    acks = DeferredAcks(dapp.app) if args.defer else None
    if acks is not None:

        async def checkpoint() -> None:
            assert acks is not None
            acks.ack(acks.take())

        acks.checkpoint = checkpoint
    loop_time = LoopTime()
    clock = loop_time.clock()

    paused = asyncio.Event()

    if args.neighbour is not None:
        neighbour = loop_time.clock()

        @dapp.app.task  # type: ignore[untyped-decorator]
        async def keep_the_loop_busy() -> None:
            while True:
                await paused.wait()
                paused.clear()
                with neighbour:
                    time.sleep(args.neighbour)  # blocking, as a busy agent does

    @dapp.app.agent(dapp.predictions)  # type: ignore[untyped-decorator]
    async def copy(stream: faust.StreamT[Any]) -> None:
        async for batch in take_batches(
            stream,
            max_records=args.max_records,
            within=args.within,
            target_seconds=args.target_seconds,
            clock=clock,
            acks=acks,
        ):
            if args.sizes:
                with open(args.sizes, "a") as sizes:
                    sizes.write(f"{len(batch)}\n")
            paused.set()
            await asyncio.sleep(args.pause)
            sent = [
                await output.send(value=f"{m.partition}:{m.offset}:".encode() + m.value)
                for m in batch
            ]
            await asyncio.gather(*sent)

    faust.Worker(dapp.app, loglevel="info").execute_from_commandline()


if __name__ == "__main__":
    main()
