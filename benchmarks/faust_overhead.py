"""faust's own cost per event: a decode-only agent under several app configurations.

Pre-produces ``--events`` prediction-like events (about 500 bytes of JSON,
20 numeric features) to a fresh topic on a local broker, then runs, each in
a fresh process, a faust app whose only agent decodes every value with
orjson, until it has seen every event. Reported per configuration: events/s
and CPU µs per event, both from the first event the agent sees to the last
(start-up and the group join are left out).

Configurations (``--configs``, comma-separated):

- ``defaults``: ``faust.App`` with faust's defaults (only the broker, an
  in-memory store, earliest offsets and no web server are set);
- ``tuned``: the app of ``driftline.streams.create_app``, reading event by
  event (``async for event in stream.events()``);
- ``take``: the tuned app with faust's ``stream.take_events(1000, within=1)``;
- ``batches``: the tuned app with ``driftline.streams.batching.take_batches``.

``--profile`` runs each configuration under cProfile (started at the first
event) and prints the functions with the most own time: expect the figures
of a profiled run to be slower.

    python benchmarks/faust_overhead.py [--events 100000] [--partitions 1]
        [--configs defaults,tuned,take,batches] [--profile] [--bootstrap-servers HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import faust
import orjson

CONFIGS = ("defaults", "tuned", "take", "batches")
FEATURES = 20
BATCH_RECORDS = 1_000
BATCH_WITHIN = 1.0


def event_bytes(index: int, rng: random.Random) -> bytes:
    """One prediction event as the worker reads it, about 500 bytes of JSON."""
    return orjson.dumps(
        {
            "model_id": "bench-model",
            "model_version": "1",
            "event_id": f"bench-model-1-{index}",
            "event_time": f"2026-01-01T00:{index // 60_000 % 60:02d}:{index // 1000 % 60:02d}Z",
            "features": {f"f{k:02d}": round(rng.gauss(0.0, 1.0), 6) for k in range(FEATURES)},
            "prediction": round(rng.random(), 6),
        }
    )


async def produce(bootstrap_servers: str, topic: str, partitions: int, count: int) -> int:
    """Create ``topic`` and write ``count`` events to it; returns the mean event size."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, linger_ms=20, max_batch_size=1 << 20, acks="all"
    )
    await producer.start()
    rng = random.Random(7)
    total = 0
    try:
        pending = []
        for index in range(count):
            value = event_bytes(index, rng)
            total += len(value)
            key = f"bench-model-{index % partitions}".encode()
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return total // max(count, 1)


class Meter:
    """Counts events and measures wall and CPU time from the first to the last."""

    def __init__(self, expected: int, result_path: Path, profile: bool) -> None:
        self.expected = expected
        self.result_path = result_path
        self.seen = 0
        self.started_wall = 0.0
        self.started_cpu = 0.0
        self.profiler = cProfile.Profile() if profile else None

    def count(self, events: int) -> None:
        if self.seen == 0:
            self.started_wall = time.perf_counter()
            self.started_cpu = time.process_time()
            if self.profiler is not None:
                self.profiler.enable()
        self.seen += events
        if self.seen >= self.expected:
            self.finish()

    def finish(self) -> None:
        wall = time.perf_counter() - self.started_wall
        cpu = time.process_time() - self.started_cpu
        result: dict[str, Any] = {
            "events": self.seen,
            "seconds": wall,
            "events_per_second": self.seen / wall,
            "cpu_us_per_event": cpu / self.seen * 1e6,
        }
        if self.profiler is not None:
            self.profiler.disable()
            text = io.StringIO()
            pstats.Stats(self.profiler, stream=text).sort_stats("tottime").print_stats(35)
            result["profile"] = text.getvalue()
        self.result_path.write_text(json.dumps(result))
        self.expected = sys.maxsize  # report once
        os.kill(os.getpid(), signal.SIGTERM)  # faust's worker stops gracefully on it


def child_app(config: str, bootstrap_servers: str, topic: str, data_dir: Path) -> Any:
    """The app and input topic of one configuration."""
    app_id = f"bench-{config}-{uuid.uuid4().hex[:8]}"
    if config == "defaults":
        app = faust.App(
            app_id,
            broker=f"kafka://{bootstrap_servers}",
            store="memory://",
            datadir=str(data_dir),
            autodiscover=False,
            web_enabled=False,
            consumer_auto_offset_reset="earliest",
        )
        source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")
        return app, source
    from driftline.streams import Settings, create_app

    settings = Settings(
        bootstrap_servers=bootstrap_servers,
        app_id=app_id,
        predictions_topic=topic,
        data_dir=data_dir,
        web_enabled=False,
    )
    dapp = create_app(settings)
    return dapp.app, dapp.predictions


def run_child(args: argparse.Namespace) -> None:
    """Run one configuration's decode-only agent until it has seen every event."""
    data_dir = Path(tempfile.mkdtemp(prefix="faust-bench-"))
    app, source = child_app(args.child, args.bootstrap_servers, args.topic, data_dir)
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        setattr(app.conf, name, json.loads(value))
    meter = Meter(args.events, Path(args.result), args.profile)
    loads = orjson.loads

    if args.child in ("defaults", "tuned"):

        @app.agent(source)  # type: ignore[untyped-decorator]
        async def decode(stream: Any) -> None:
            async for event in stream.events():
                loads(event.value)
                meter.count(1)

    elif args.child == "take":

        @app.agent(source)  # type: ignore[untyped-decorator]
        async def decode(stream: Any) -> None:
            async for events in stream.take_events(BATCH_RECORDS, within=BATCH_WITHIN):
                for event in events:
                    loads(event.value)
                meter.count(len(events))

    else:
        from driftline.streams.batching import take_batches

        @app.agent(source)  # type: ignore[untyped-decorator]
        async def decode(stream: Any) -> None:
            async for batch in take_batches(stream, max_records=BATCH_RECORDS, within=BATCH_WITHIN):
                for record in batch:
                    loads(record.value)
                meter.count(len(batch))

    worker = faust.Worker(app, loglevel="info", quiet=True)
    worker.execute_from_commandline()


def run_config(
    config: str, args: argparse.Namespace, bootstrap_servers: str, topic: str
) -> dict[str, Any]:
    """Run one configuration in a fresh process; its result."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "result.json"
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            config,
            "--bootstrap-servers",
            bootstrap_servers,
            "--topic",
            topic,
            "--events",
            str(args.events),
            "--result",
            str(result),
        ]
        if args.profile:
            command.append("--profile")
        for assignment in args.set:
            command += ["--set", assignment]
        started = time.monotonic()
        process = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
        if not result.is_file():
            raise RuntimeError(
                f"{config}: no result after {time.monotonic() - started:.0f} s "
                f"(exit {process.returncode}):\n{process.stdout[-3000:]}{process.stderr[-3000:]}"
            )
        return dict(json.loads(result.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="set a faust setting on the app of every configuration, e.g. "
        "stream_buffer_maxsize=65536 (for experiments)",
    )
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    configs = [name for name in args.configs.split(",") if name]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configurations: {sorted(unknown)}; known: {CONFIGS}")

    from driftline.broker import LocalKafkaBroker

    with tempfile.TemporaryDirectory(prefix="faust-bench-broker-") as broker_dir:
        broker = None
        bootstrap_servers = args.bootstrap_servers
        if bootstrap_servers is None:
            broker = LocalKafkaBroker(data_dir=Path(broker_dir)).start()
            bootstrap_servers = broker.bootstrap_servers
        try:
            topic = f"bench-{uuid.uuid4().hex[:8]}"
            size = asyncio.run(produce(bootstrap_servers, topic, args.partitions, args.events))
            print(
                f"{args.events:,} events of ~{size} bytes on {args.partitions} partition(s)",
                file=sys.stderr,
            )
            results = {}
            for config in configs:
                results[config] = run_config(config, args, bootstrap_servers, topic)
                print(
                    f"  {config}: {results[config]['events_per_second']:,.0f} events/s",
                    file=sys.stderr,
                )
        finally:
            if broker is not None:
                broker.stop()

    print(f"{'configuration':<14} {'events/s':>10} {'CPU µs/event':>13} {'x defaults':>11}")
    baseline = results.get("defaults", {}).get("events_per_second")
    for config, result in results.items():
        ratio = f"{result['events_per_second'] / baseline:.2f}" if baseline else "-"
        print(
            f"{config:<14} {result['events_per_second']:>10,.0f} "
            f"{result['cpu_us_per_event']:>13.1f} {ratio:>11}"
        )
    if args.profile:
        for config, result in results.items():
            print(f"\n== profile: {config} ==\n{result['profile']}")


if __name__ == "__main__":
    main()
