"""The four ways the throughput benchmark reads the same pre-produced predictions.

(a) a bare aiokafka consumer, (b) a faust agent that only decodes (and (b')
the same through the project's batch consumption), (c) ``driftline worker``
as a real process, (d) replay as the command runs it (one process per CPU)
and (d1) in one process. Each returns a
:class:`PathRun`: how many events it consumed, and the wall and CPU time of
its processing, timed from its first event, with start-up apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from benchmarks.probes import GroupProbe, cpu_seconds, free_port, resident_bytes, settled
from benchmarks.probes import worker_status as read_status
from driftline.schemas import ModelSpec
from driftline.streams.runtime import tune_garbage_collector
from driftline.streams.settings import Settings, to_environment
from driftline.worker_process import WorkerProcess

DECODE_AGENT = Path(__file__).with_name("decode_agent.py")
REPLAY_PROCESS = Path(__file__).with_name("replay_process.py")
POLL_SECONDS = 0.2
"""How often a running worker's progress is read (its /status page, its group's commits)."""


@dataclass(frozen=True, slots=True)
class Bench:
    """One pre-produced predictions topic, and what every path needs to read it."""

    settings: Settings
    """The topics' settings; each run takes them with an app id (consumer group) of its own."""
    specs: list[ModelSpec]
    lines: list[bytes]
    """The events' values as published, in publishing order, for replay."""
    ends: dict[int, int]
    """The end offset of each partition of the predictions topic."""
    workdir: Path
    timeout: float

    @property
    def events(self) -> int:
        return sum(self.ends.values())

    def fresh_group(self, tag: str, **update: Any) -> Settings:
        """The settings with a consumer group and data folder never used before."""
        return self.settings.model_copy(
            update={
                "app_id": f"{self.settings.app_id}-{tag}",
                "data_dir": self.workdir / tag,
                **update,
            }
        )


@dataclass(slots=True)
class PathRun:
    """One run of one path: what it consumed and what its processing cost."""

    path: str
    events: int
    """Events the path consumed: every event of the topic, when all went well."""
    timed_events: int
    """Events processed within the timed span (from the first progress seen to the last event)."""
    seconds: float
    cpu_seconds: float
    startup_seconds: float | None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.timed_events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.cpu_seconds / self.timed_events if self.timed_events else float("nan")

    def figures(self) -> dict[str, Any]:
        """The run as plain data, its rates included."""
        return {
            "path": self.path,
            "events": self.events,
            "timed_events": self.timed_events,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "startup_seconds": self.startup_seconds,
            "events_per_second": self.events_per_second,
            "cpu_us_per_event": self.cpu_us_per_event,
            **self.details,
        }


def median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


# (a) The ceiling: a bare aiokafka consumer that decodes every value.


def run_bare_consumer(bench: Bench, tag: str) -> PathRun:
    """(a) ``getmany`` from the beginning of every partition, ``orjson.loads`` of every value."""
    return asyncio.run(_consume_bare(bench))


async def _consume_bare(bench: Bench) -> PathRun:
    created = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bench.settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(bench.settings.predictions_topic, p) for p in bench.ends]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        decoded, first = 0, None
        deadline = time.monotonic() + bench.timeout
        while decoded < bench.events and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            if batches and first is None:
                first = (time.perf_counter(), time.process_time())
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value or b"null")
                    decoded += 1
        last = (time.perf_counter(), time.process_time())
    finally:
        await consumer.stop()
    first = first or last
    return PathRun(
        path="a",
        events=decoded,
        timed_events=decoded,
        seconds=last[0] - first[0],
        cpu_seconds=last[1] - first[1],
        startup_seconds=first[0] - created,
    )


# (b) The framework's ceiling: a faust agent on the worker's app settings that only decodes.


def run_faust_decoder(bench: Bench, tag: str, *, batches: bool = False) -> PathRun:
    """(b) per event, or (b') through ``take_batches``: a child process, timed inside it."""
    settings = bench.fresh_group(tag)
    result = bench.workdir / f"{tag}.json"
    result.unlink(missing_ok=True)
    log = bench.workdir / f"{tag}.log"
    command = [sys.executable, str(DECODE_AGENT), "--expected", str(bench.events)]
    command += ["--result", str(result), *(["--batches"] if batches else [])]
    started = time.time()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_environment(settings),
        )
    try:
        figures = _wait_for_result(result, process, log, bench.timeout)
    finally:
        _stop(process)
    if "error" in figures:
        raise RuntimeError(f"the decoding agent failed: {figures['error']} (log: {log})")
    return PathRun(
        path="b'" if batches else "b",
        events=int(figures["events"]),
        timed_events=int(figures["events"]) - 1,  # timed from the end of the first one
        seconds=figures["last_event_wall"] - figures["first_event_wall"],
        cpu_seconds=figures["last_event_cpu"] - figures["first_event_cpu"],
        startup_seconds=figures["first_event_wall"] - started,
        details={"max_rss_bytes": int(figures["max_rss_kb"]) * 1024},
    )


def child_environment(settings: Settings) -> dict[str, str]:
    """This environment, with ``DRIFTLINE_*`` replaced by exactly these settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return environment | to_environment(settings) | {"PYTHONSAFEPATH": "1"}


def _wait_for_result(
    result: Path, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not result.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the decoding agent exited with {process.returncode}: see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the decoding agent did not finish in {timeout:.0f} s: see {log}")
        time.sleep(0.05)
    return dict(orjson.loads(result.read_bytes()))


def _stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# (c) The worker, as a real process, from a fresh consumer group.


@dataclass(frozen=True, slots=True)
class Mark:
    """One look at a running worker: seconds since its start, events settled, CPU used."""

    at: float
    settled: int
    cpu: float


@dataclass(slots=True)
class WorkerWatch:
    """What was seen of one worker run."""

    idle: Mark
    """The last look before any progress."""
    first: Mark
    """The first look with progress."""
    done: Mark
    """The first look with every event settled."""
    committed_at: float
    """Seconds from the start until the committed offsets reached the end of every topic."""
    resident_bytes: int
    report: dict[str, Any] | None
    """The worker's last /status report (None if its status page never answered)."""


def run_worker(bench: Bench, tag: str) -> PathRun:
    """(c) ``driftline worker`` until its group's committed offsets reach the end of the topic."""
    settings = bench.fresh_group(tag, web_enabled=True, web_port=free_port())
    watch = watch_worker_run(
        settings,
        bench.workdir / f"{tag}.log",
        expected=bench.events,
        ends_by_topic={settings.predictions_topic: bench.ends},
        timeout=bench.timeout,
    )
    return worker_path_run(watch, bench.events)


def worker_path_run(watch: WorkerWatch, expected: int) -> PathRun:
    """The worker's run: timed from its first progress, or from its last idle look when the
    first look already saw everything done."""
    begin = watch.first if watch.first.settled < expected else watch.idle
    counts = (watch.report or {}).get("topics", {}).get("predictions", {})
    return PathRun(
        path="c",
        events=watch.done.settled,
        timed_events=watch.done.settled - begin.settled,
        seconds=watch.done.at - begin.at,
        cpu_seconds=watch.done.cpu - begin.cpu,
        startup_seconds=watch.first.at,
        details={
            "resident_bytes": watch.resident_bytes,
            "committed_after_seconds": watch.committed_at,
            "commit_tail_seconds": watch.committed_at - watch.done.at,
            "processed": counts.get("processed"),
            "dead_lettered": counts.get("dead_lettered"),
            "duplicates": counts.get("duplicates"),
        },
    )


def watch_worker_run(
    settings: Settings,
    log: Path,
    *,
    expected: int,
    ends_by_topic: dict[str, dict[int, int]],
    timeout: float,
) -> WorkerWatch:
    """Start a worker, follow it until every topic is committed to its end, and stop it."""
    worker = WorkerProcess(settings, log)
    started = time.monotonic()
    worker.start()
    try:
        with GroupProbe(settings.bootstrap_servers, settings.app_id) as group:
            return _follow(worker, settings, group, expected, ends_by_topic, started, timeout)
    finally:
        worker.stop()


def _follow(
    worker: WorkerProcess,
    settings: Settings,
    group: GroupProbe,
    expected: int,
    ends_by_topic: dict[str, dict[int, int]],
    started: float,
    timeout: float,
) -> WorkerWatch:
    idle = Mark(0.0, 0, 0.0)
    first = done = None
    report = None
    while True:
        if not worker.running:
            raise RuntimeError(f"the worker exited: {worker.log_text()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the worker took over {timeout:.0f} s ({worker.log_path})")
        report = read_status(settings.web_port) or report
        seen_at, cpu = time.monotonic() - started, cpu_seconds(worker.pid)
        progress = settled(report)
        if progress is None:  # no status page: the commits are the only progress to see
            committed = group.committed(settings.predictions_topic)
            ends = ends_by_topic[settings.predictions_topic]
            progress = sum(min(committed.get(p, 0), end) for p, end in ends.items())
        mark = Mark(seen_at, progress, cpu)
        if progress == 0:
            idle = mark
        if first is None and progress > 0:
            first = mark
        if done is None and progress >= expected:
            done = mark
        if done is not None and all(group.caught_up(t, e) for t, e in ends_by_topic.items()):
            assert first is not None
            at = time.monotonic() - started
            return WorkerWatch(idle, first, done, at, resident_bytes(worker.pid), report)
        time.sleep(POLL_SECONDS)


# (d) Replay, offline, over the same bytes.


@contextlib.contextmanager
def replay_garbage_collector() -> Iterator[None]:
    """The garbage collector tuned as ``driftline replay`` tunes it, inside the block only.

    The garbage of earlier runs in this process (a replay's objects hold
    reference cycles) is collected first, as a fresh ``driftline replay``
    process has none: left, it was frozen with the live objects, and each
    of three runs in a row went ~2 % slower than the one before.
    """
    thresholds = gc.get_threshold()
    gc.collect()
    tune_garbage_collector()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def run_replay(bench: Bench, tag: str, *, processes: int = 0) -> PathRun:
    """(d) :class:`driftline.replay.Replay` over the published values, in a process of its own
    set up as ``driftline replay`` sets itself up (``benchmarks/replay_process.py``): with
    one process per CPU as the command (``processes`` 0), or (d1) in one."""
    specs, events = bench.workdir / "replay-specs.json", bench.workdir / "replay-events.jsonl"
    if not events.exists():  # once per layout: every run reads the same files
        bench.workdir.mkdir(parents=True, exist_ok=True)
        specs.write_bytes(orjson.dumps([spec.model_dump(mode="json") for spec in bench.specs]))
        events.write_bytes(b"\n".join(bench.lines) + b"\n")
    result = bench.workdir / f"{tag}.json"
    command = [sys.executable, str(REPLAY_PROCESS), "--specs", str(specs), "--events", str(events)]
    subprocess.run(
        [*command, "--result", str(result), "--processes", str(processes)],
        check=True,
        timeout=bench.timeout,
        env=os.environ | {"PYTHONSAFEPATH": "1"},
    )
    figures = orjson.loads(result.read_bytes())
    return PathRun(
        path="d" if processes != 1 else "d1",
        events=figures["events"],
        timed_events=len(bench.lines),
        seconds=figures["seconds"],
        cpu_seconds=figures["cpu_seconds"],
        startup_seconds=None,
        details={
            key: figures[key] for key in ("processed", "dead_lettered", "outputs", "processes")
        },
    )
