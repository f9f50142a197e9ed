"""Soak run: a worker at half its capacity for a long while, its memory and lag over time.

A leak shows only over time: a worker that holds 250 MiB after a million
events may hold 400 after ten. This starts a local Kafka broker (unless
``--bootstrap-servers`` names one) and a real ``driftline worker`` process,
measures the worker's capacity on the same mix of traffic with a short
saturating run (unless ``--rate`` is given), then publishes at half of it,
paced, for ``--minutes``:

- ``--models`` models of 20 numeric features, whose feature f0 moves by
  2 sd part-way (``--drift-after-minutes``, default half the run), with event
  times of the wall clock;
- a label for each prediction, ``--label-delay`` seconds later, so the label
  join holds the predictions of that span (``--unlabelled-share`` of them
  never get one);
- a little bad input: every ``--bad-every``-th prediction is published cut
  short (dead-lettered) and another one twice (a duplicate).

Every ``--every`` seconds one line: elapsed time, predictions published and
processed (the worker's ``/status``), lag (the worker's committed offsets
against the end offsets of its input topics), the worker's resident memory
(``VmRSS``), the entries of its label join and its CPU use. At the end, the
resident memory when the warm-up ended, its growth after it (least-squares
slope, in % of that memory per 10 minutes), the largest lag, and whether the
growth stayed under 5 % per 10 minutes. See benchmarks/README.md.

    python benchmarks/soak.py --minutes 3 --warmup-minutes 1 --every 15
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script. The project keeps its root off sys.path (PYTHONSAFEPATH=1);
    # append it, after the installed packages, so `benchmarks` can be imported.
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from benchmarks.probes import (
    GroupProbe,
    cpu_seconds,
    free_port,
    resident_bytes,
    worker_status,
)
from benchmarks.throughput import kafka, layout_settings, progress
from benchmarks.throughput_paths import watch_worker_run, worker_path_run
from benchmarks.traffic import (
    BROKEN_CUT_BYTES,
    Layout,
    label_for,
    model_specs,
    partition_of,
    prediction_events,
    publish_events,
    publish_specs,
    with_decimals,
)
from driftline.schemas import ModelSpec, PredictionEvent
from driftline.simulate import simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import end_offsets, ensure_topics
from driftline.worker_process import WorkerProcess

GROWTH_LIMIT_PERCENT = 5.0
"""The requirement: resident memory grows less than this, per 10 minutes, after the warm-up."""
KEPT_UP_SECONDS = 10.0
"""A worker whose lag at the end is at most this many seconds of traffic kept up; one further
behind holds a backlog, and its memory grows with it whether it leaks or not."""
DRIFT_SD = 2.0
"""How far feature f0 moves, in standard deviations, once the drift starts."""
TICK_SECONDS = 0.01
"""How often the publisher wakes: the events due since go out together, per partition."""
MAX_CATCH_UP_SECONDS = 0.5
"""At most this many seconds of events are made in one wake-up when the publisher is behind,
so that a slow moment never builds one huge batch."""
MIB = 2**20


@dataclass(frozen=True, slots=True)
class Options:
    """What to run, and for how long."""

    minutes: float = 30.0
    every: float = 30.0
    warmup_minutes: float = 5.0
    rate: float | None = None
    """Predictions per second; None: half of the capacity measured first."""
    models: int = 10
    label_delay: float = 30.0
    unlabelled_share: float = 0.0
    drift_after_minutes: float | None = None
    """None: half-way through the run."""
    bad_every: int = 1_000
    capacity_events: int = 100_000
    warmup_events: int | None = None
    """The specs' drift warm-up; None keeps the spec's default (what a new user gets)."""

    @property
    def seconds(self) -> float:
        return 60.0 * self.minutes

    @property
    def drift_after_seconds(self) -> float:
        minutes = self.minutes / 2 if self.drift_after_minutes is None else self.drift_after_minutes
        return 60.0 * minutes


# The figures: pure, so that they can be tested without Kafka.


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the running worker."""

    elapsed_seconds: float
    published: int
    """Predictions published so far (bad ones and repeats not counted)."""
    processed: int | None
    """Predictions the worker processed (None while its status page does not answer)."""
    labels_published: int
    labels_processed: int | None
    dead_lettered: int | None
    duplicates: int | None
    lag: int | None
    """Messages of the input topics past the worker's committed offsets."""
    lag_by_topic: dict[str, int] = field(default_factory=dict)
    resident_bytes: int = 0
    waiting_in_join: int | None = None
    cpu_seconds: float = 0.0
    """The worker's CPU time so far (user and system)."""
    cpu_percent: float | None = None
    """The worker's CPU use since the sample before, in % of one core: with the lag, it tells a
    worker that is slow from one that the machine starves."""
    load_average: float | None = None
    """The machine's 1-minute load average: other work on it slows the worker."""


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The slope of the least-squares line through ``(x, y)`` points; None under two x values.

    A slope over every sample, not the last minus the first, so that one
    sample taken during a collection or a burst does not set the verdict.
    """
    if len({x for x, _ in points}) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    variance = sum((x - mean_x) ** 2 for x, _ in points)
    return covariance / variance


def warmup_end_sample(samples: Sequence[Sample], warmup_seconds: float) -> Sample | None:
    """The sample taken nearest to the end of the warm-up (the earlier one of a tie).

    Nearest, not the last before it: a sample falls due at the end of the
    warm-up and is taken a moment after.
    """
    if not samples:
        return None
    return min(samples, key=lambda sample: abs(sample.elapsed_seconds - warmup_seconds))


def growth_per_10_minutes(samples: Sequence[Sample], warmup_seconds: float) -> float | None:
    """Resident memory growth after the warm-up, in % of the memory at its end, per 10 minutes.

    The slope runs over the samples from the end of the warm-up on; None when
    fewer than two were taken.
    """
    start = warmup_end_sample(samples, warmup_seconds)
    if start is None or start.resident_bytes <= 0:
        return None
    after = [s for s in samples if s.elapsed_seconds >= start.elapsed_seconds]
    slope = least_squares_slope([(s.elapsed_seconds, float(s.resident_bytes)) for s in after])
    if slope is None:
        return None
    return 100.0 * slope * 600.0 / start.resident_bytes


def lag(committed: dict[int, int], ends: dict[int, int]) -> int:
    """Messages past the committed offset, over every partition (a partition never committed
    lags by all it holds)."""
    return sum(max(end - committed.get(partition, 0), 0) for partition, end in ends.items())


def lag_seconds(sample: Sample) -> float | None:
    """The sample's lag in seconds of the traffic published so far (predictions and labels)."""
    messages = sample.published + sample.labels_published
    if sample.lag is None or messages == 0 or sample.elapsed_seconds <= 0:
        return None
    return sample.lag / (messages / sample.elapsed_seconds)


def summarize(samples: Sequence[Sample], options: Options, rate: float) -> dict[str, Any]:
    """The run's verdict: memory when the warm-up ended, its growth after, the largest lag."""
    warmup_seconds = 60.0 * options.warmup_minutes
    start = warmup_end_sample(samples, warmup_seconds)
    growth = growth_per_10_minutes(samples, warmup_seconds)
    lags = [sample.lag for sample in samples if sample.lag is not None]
    last = samples[-1] if samples else None
    end_lag = lag_seconds(last) if last else None
    return {
        "rate_predictions_per_second": rate,
        "samples": len(samples),
        "warmup_seconds": warmup_seconds,
        "warmup_end_seconds": start.elapsed_seconds if start else None,
        "warmup_end_resident_bytes": start.resident_bytes if start else None,
        "end_resident_bytes": last.resident_bytes if last else None,
        "peak_resident_bytes": max((s.resident_bytes for s in samples), default=None),
        "growth_percent_per_10_minutes": growth,
        "growth_limit_percent_per_10_minutes": GROWTH_LIMIT_PERCENT,
        "growth_within_limit": growth is not None and growth < GROWTH_LIMIT_PERCENT,
        "max_lag": max(lags, default=None),
        "end_lag": last.lag if last else None,
        "end_lag_seconds": end_lag,
        "kept_up": end_lag is not None and end_lag <= KEPT_UP_SECONDS,
        "published": last.published if last else 0,
        "processed": last.processed if last else None,
        "achieved_rate": last.published / last.elapsed_seconds
        if last and last.elapsed_seconds > 0
        else None,
    }


def count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def clock(seconds: float) -> str:
    """Elapsed time as minutes:seconds."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


HEADER = (
    f"{'elapsed':>8} {'published':>12} {'processed':>12} {'lag':>9} {'RSS MiB':>9} "
    f"{'join':>10} {'CPU %':>6}"
)
"""The column titles above the sample lines; ``join``: the label join's entries; ``CPU %``: the
worker's since the sample before, in % of one core."""


def sample_line(sample: Sample) -> str:
    """One sample as a line under :data:`HEADER`."""
    return (
        f"{clock(sample.elapsed_seconds):>8} {count(sample.published):>12} "
        f"{count(sample.processed):>12} {count(sample.lag):>9} "
        f"{sample.resident_bytes / MIB:>9.1f} {count(sample.waiting_in_join):>10} "
        f"{'-' if sample.cpu_percent is None else f'{sample.cpu_percent:.0f}':>6}"
    )


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The verdict as a person reads it."""
    growth = summary["growth_percent_per_10_minutes"]
    start = summary["warmup_end_resident_bytes"]
    verdict = "yes" if summary["growth_within_limit"] else "NO"
    achieved = summary["achieved_rate"]
    return [
        f"rate: {summary['rate_predictions_per_second']:,.0f} predictions/s asked, "
        + (f"{achieved:,.0f} published" if achieved is not None else "none published"),
        f"RSS at the end of the warm-up ({clock(summary['warmup_end_seconds'] or 0)}): "
        + (f"{start / MIB:,.1f} MiB" if start else "-")
        + f"; at the end {mib_or_dash(summary['end_resident_bytes'])}, "
        f"peak {mib_or_dash(summary['peak_resident_bytes'])}",
        "growth after the warm-up: "
        + ("- (fewer than two samples)" if growth is None else f"{growth:+.2f} % per 10 min"),
        f"max lag: {count(summary['max_lag'])} messages; at the end {count(summary['end_lag'])}"
        + (
            ""
            if summary["end_lag_seconds"] is None
            else f", {summary['end_lag_seconds']:,.1f} s of traffic"
        )
        + ("" if summary["kept_up"] else ": the worker fell behind, its memory holds the backlog"),
        f"growth < {summary['growth_limit_percent_per_10_minutes']:g} % per 10 min: {verdict}",
    ]


def mib_or_dash(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.1f} MiB"


# Traffic: events of the wall clock, made as they fall due.


@dataclass(slots=True)
class Tally:
    """What the publisher has sent; written by its thread, read by the sampler."""

    predictions: int = 0
    labels: int = 0
    broken: int = 0
    duplicates: int = 0
    error: BaseException | None = None


class SoakTraffic:
    """The predictions of every model in turn, their labels and a little bad input, encoded.

    Each model's events come from :func:`driftline.simulate.simulated_predictions`
    with event times from now on, one model's apart by ``models / rate``, so
    they keep to the wall clock while the publisher keeps to its schedule.
    """

    def __init__(self, specs: list[ModelSpec], rate: float, options: Options) -> None:
        per_model = rate / len(specs)
        start = datetime.now(UTC)
        shift_at = int(options.drift_after_seconds * per_model)
        self._streams = itertools.cycle(
            [
                simulated_predictions(
                    2**62,  # endless: the publisher stops taking
                    shift_at=shift_at,
                    shift=DRIFT_SD,
                    drifting=spec.features[0].name,
                    stable=tuple(feature.name for feature in spec.features[1:]),
                    model_id=spec.model_id,
                    model_version=spec.model_version,
                    seed=index,
                    start=start,
                    interval=timedelta(seconds=1 / per_model),
                )
                for index, spec in enumerate(specs)
            ]
        )
        self.options = options

    def next_prediction(self) -> tuple[PredictionEvent, bytes, bytes]:
        """The next prediction, its key and its JSON value."""
        event = with_decimals(next(next(self._streams)))
        return event, event.model_id.encode(), event.model_dump_json().encode()

    def labelled(self, number: int) -> bool:
        """Whether the ``number``-th prediction gets a label: all but ``unlabelled_share``."""
        share = self.options.unlabelled_share
        return int(number * share) == int((number - 1) * share)

    def label_value(self, event: PredictionEvent) -> bytes:
        """The prediction's label, its event time ``label_delay`` after the prediction's."""
        delay = timedelta(seconds=self.options.label_delay)
        label = label_for(event).model_copy(update={"event_time": event.event_time + delay})
        return label.model_dump_json().encode()


class Publisher(threading.Thread):
    """Publishes the soak's traffic at ``rate`` predictions per second, until stopped.

    An aiokafka producer on a loop of its own, the events due at a wake-up
    sent as one batch per partition, so that the load generator takes as
    little as it can of the CPU the worker shares with it.
    """

    def __init__(self, settings: Settings, traffic: SoakTraffic, rate: float) -> None:
        super().__init__(name="soak-publisher", daemon=True)
        self.settings = settings
        self.traffic = traffic
        self.rate = rate
        self.tally = Tally()
        self.started_at = 0.0
        self._stopping = threading.Event()
        self._ready = threading.Event()

    def start_and_wait(self) -> None:
        """Start publishing; return once the clock of the run has started."""
        self.start()
        if not self._ready.wait(60):
            raise RuntimeError("the publisher did not start")
        if self.tally.error is not None:
            raise RuntimeError(f"the publisher failed: {self.tally.error!r}")

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as error:  # the sampler reports it
            self.tally.error = error
        finally:
            self._ready.set()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=60)

    async def _publish(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, acks="all", linger_ms=5
        )
        await producer.start()
        try:
            partitions = {
                topic: len(await producer.partitions_for(topic))
                for topic in (self.settings.predictions_topic, self.settings.labels_topic)
            }
            self.started_at = time.monotonic()
            self._ready.set()
            await self._loop(producer, partitions)
        finally:
            await producer.stop()

    async def _loop(self, producer: AIOKafkaProducer, partitions: dict[str, int]) -> None:
        labels: deque[tuple[float, bytes, bytes]] = deque()
        deliveries: list[asyncio.Future[Any]] = []
        made = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            due = int((now - self.started_at) * self.rate)
            take = max(0, min(due - made, max(1, int(self.rate * MAX_CATCH_UP_SECONDS))))
            messages = self._predictions(made, take, now, labels)
            made += take
            while labels and labels[0][0] <= now:
                _, key, value = labels.popleft()
                messages.append((self.settings.labels_topic, key, value))
                self.tally.labels += 1
            for delivery in deliveries:
                if delivery.done():
                    delivery.result()  # raises what failed a delivery
            deliveries = [delivery for delivery in deliveries if not delivery.done()]
            deliveries += await self._send(producer, partitions, messages)
            await asyncio.sleep(TICK_SECONDS)
        await asyncio.gather(*deliveries)

    def _predictions(
        self, made: int, take: int, now: float, labels: deque[tuple[float, bytes, bytes]]
    ) -> list[tuple[str, bytes, bytes]]:
        """The next ``take`` predictions as messages; their labels queued for later."""
        topic = self.settings.predictions_topic
        bad_every = self.traffic.options.bad_every
        messages = []
        for number in range(made + 1, made + take + 1):
            event, key, value = self.traffic.next_prediction()
            if bad_every and number % bad_every == 0:  # cut short: dead-lettered
                messages.append((topic, key, value[:-BROKEN_CUT_BYTES]))
                self.tally.broken += 1
                continue
            messages.append((topic, key, value))
            self.tally.predictions += 1
            if bad_every and number % bad_every == bad_every // 2:  # sent twice: a duplicate
                messages.append((topic, key, value))
                self.tally.duplicates += 1
            if self.traffic.labelled(number):
                label = self.traffic.label_value(event)
                labels.append((now + self.traffic.options.label_delay, key, label))
        return messages

    async def _send(
        self,
        producer: AIOKafkaProducer,
        partitions: dict[str, int],
        messages: list[tuple[str, bytes, bytes]],
    ) -> list[asyncio.Future[Any]]:
        """Hand the messages over, one batch per topic and partition (more when one fills)."""
        batches: dict[tuple[str, int], Any] = {}
        deliveries = []
        for topic, key, value in messages:
            partition = partition_of(key.decode(), partitions[topic])
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[topic, partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[topic, partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        for (topic, partition), batch in batches.items():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        return deliveries


# Looking at the worker.


class LagProbe:
    """The worker group's lag on its input topics, over connections kept for the run."""

    def __init__(self, settings: Settings, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        self._group = GroupProbe(settings.bootstrap_servers, settings.app_id)
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
        )

    def lag_by_topic(self) -> dict[str, int]:
        """Messages past the committed offsets, per input topic."""
        lags = {}
        for topic in self.topics:
            partitions = self._consumer.partitions_for_topic(topic) or set()
            ends = self._consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            by_partition = {tp.partition: offset for tp, offset in ends.items()}
            lags[topic] = lag(self._group.committed(topic), by_partition)
        return lags

    def close(self) -> None:
        self._group.close()
        self._consumer.close()


def take_sample(
    worker: WorkerProcess,
    settings: Settings,
    publisher: Publisher,
    probe: LagProbe,
    previous: Sample,
) -> Sample:
    """Look at the worker now: its /status, its group's lag, its resident memory, and its CPU
    use since ``previous``."""
    report = worker_status(settings.web_port)
    topics = (report or {}).get("topics", {})
    predictions, labels = topics.get("predictions", {}), topics.get("labels", {})
    try:
        lags: dict[str, int] | None = probe.lag_by_topic()
    except Exception as error:  # a lost look is a gap in the figures, not a broken run
        progress(f"could not read the lag: {error!r}")
        lags = None
    elapsed = time.monotonic() - publisher.started_at
    try:
        cpu, resident = cpu_seconds(worker.pid), resident_bytes(worker.pid)
    except OSError:  # /proc/<pid> is gone: the worker has just exited
        check_alive(worker, publisher)
        raise
    return Sample(
        elapsed_seconds=elapsed,
        published=publisher.tally.predictions,
        processed=predictions.get("processed") if report else None,
        labels_published=publisher.tally.labels,
        labels_processed=labels.get("processed") if report else None,
        dead_lettered=predictions.get("dead_lettered") if report else None,
        duplicates=predictions.get("duplicates") if report else None,
        lag=sum(lags.values()) if lags is not None else None,
        lag_by_topic=lags or {},
        resident_bytes=resident,
        waiting_in_join=(report or {}).get("labels", {}).get("waiting_in_join"),
        cpu_seconds=cpu,
        cpu_percent=100 * (cpu - previous.cpu_seconds) / (elapsed - previous.elapsed_seconds),
        load_average=os.getloadavg()[0],
    )


class WorkerDiedError(RuntimeError):
    """The worker exited during the soak: the run is broken, whatever its figures."""


def check_alive(worker: WorkerProcess, publisher: Publisher) -> None:
    if not worker.running:
        raise WorkerDiedError(
            f"the worker exited; the end of its log:\n{worker.log_text()[-3000:]}"
        )
    if publisher.tally.error is not None:
        raise RuntimeError(f"the publisher failed: {publisher.tally.error!r}")


def wait_until_assigned(worker: WorkerProcess, settings: Settings, timeout: float = 120) -> None:
    """Wait until the worker holds every predictions partition, so no event waits for it."""
    everything = set(range(settings.topic_partitions))
    deadline = time.monotonic() + timeout
    with GroupProbe(settings.bootstrap_servers, settings.app_id) as group:
        while group.holds(settings.predictions_topic) != everything:
            if not worker.running:
                raise WorkerDiedError(f"the worker exited at start:\n{worker.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker never took its partitions ({worker.log_path})")
            time.sleep(0.2)


# The runs.


def soak_specs(settings: Settings, options: Options) -> list[ModelSpec]:
    """The models of the run, registered on its topics."""
    layout = Layout("soak", f"{options.models} models x 20 numeric features", options.models)
    specs = model_specs(layout, settings.topic_partitions, options.warmup_events)
    ensure_topics(settings)
    publish_specs(settings, specs)
    return specs


def measure_capacity(servers: str, options: Options, workdir: Path) -> dict[str, Any]:
    """Predictions a second the worker settles with their labels, from a backlog.

    The same models, each prediction followed by its label, published
    beforehand on topics of their own; a fresh worker reads them to the end.
    The warm-ups are in the timed span, so the figure errs low: half of it
    is a load the worker carries.
    """
    settings = layout_settings(servers, "soak-capacity", workdir)
    specs = soak_specs(settings, options)
    events = options.capacity_events
    progress(f"capacity: publishing {events:,} predictions and their labels")
    publish_events(settings, prediction_events(specs, events), labelled=1)
    ends = {
        topic: end_offsets(servers, topic)
        for topic in (settings.predictions_topic, settings.labels_topic)
    }
    worker_settings = settings.model_copy(update={"web_enabled": True, "web_port": free_port()})
    progress("capacity: a worker reads them all")
    watch = watch_worker_run(
        worker_settings,
        workdir / "capacity.log",
        expected=events,
        ends_by_topic=ends,
        timeout=max(600.0, events / 50),
    )
    run = worker_path_run(watch, events)
    return {"events": events, **run.figures()}


def soak_settings(servers: str, workdir: Path) -> Settings:
    """Topics and a consumer group of the soak's own, and the worker's status page on."""
    settings = layout_settings(servers, "soak", workdir)
    return settings.model_copy(update={"web_enabled": True, "web_port": free_port()})


def sleep_until(moment: float, worker: WorkerProcess, publisher: Publisher) -> None:
    """Sleep until ``moment`` (monotonic), looking at the worker and the publisher each second."""
    while (left := moment - time.monotonic()) > 0:
        check_alive(worker, publisher)
        time.sleep(min(left, 1.0))
    check_alive(worker, publisher)


def run_soak(
    servers: str, options: Options, rate: float, workdir: Path
) -> tuple[list[Sample], str | None]:
    """Publish at ``rate`` for ``options.minutes``, printing a sample every ``options.every``
    seconds; the samples, and what broke the run (None when nothing did)."""
    settings = soak_settings(servers, workdir)
    specs = soak_specs(settings, options)
    samples: list[Sample] = []
    log = workdir / "soak-worker.log"
    with WorkerProcess(settings, log) as worker:
        try:
            wait_until_assigned(worker, settings)
            publisher = Publisher(settings, SoakTraffic(specs, rate, options), rate)
            probe = LagProbe(settings, [settings.predictions_topic, settings.labels_topic])
            try:
                publisher.start_and_wait()
                start = Sample(
                    0.0, 0, None, 0, None, None, None, None, cpu_seconds=cpu_seconds(worker.pid)
                )
                print(HEADER, flush=True)
                for number in itertools.count(1):
                    at = min(number * options.every, options.seconds)
                    sleep_until(publisher.started_at + at, worker, publisher)
                    previous = samples[-1] if samples else start
                    samples.append(take_sample(worker, settings, publisher, probe, previous))
                    print(sample_line(samples[-1]), flush=True)
                    if at >= options.seconds:
                        break
            finally:
                publisher.stop()
                probe.close()
        except WorkerDiedError as error:
            return samples, str(error)
    return samples, None


# The command line.


def parse_options(argv: Sequence[str] | None = None) -> tuple[Options, argparse.Namespace]:
    defaults = Options()
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="length of the run")
    parser.add_argument(
        "--every", type=float, default=defaults.every, help="seconds between two samples"
    )
    parser.add_argument(
        "--warmup-minutes",
        type=float,
        default=defaults.warmup_minutes,
        help="the start left out of the memory growth",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="predictions per second to publish (default: half the capacity measured first)",
    )
    parser.add_argument("--models", type=int, default=defaults.models, help="models publishing")
    parser.add_argument(
        "--label-delay",
        type=float,
        default=defaults.label_delay,
        help="seconds from a prediction to its label (the label join holds that many seconds)",
    )
    parser.add_argument(
        "--unlabelled-share",
        type=float,
        default=defaults.unlabelled_share,
        help="share of the predictions that never get a label; they wait in the label join "
        "until its cap (DRIFTLINE_MAX_PENDING_LABELS)",
    )
    parser.add_argument(
        "--drift-after-minutes",
        type=float,
        help="when feature f0 of every model moves by 2 sd (default: half-way)",
    )
    parser.add_argument(
        "--bad-every",
        type=int,
        default=defaults.bad_every,
        help="every N-th prediction is cut short and another sent twice (0: none)",
    )
    parser.add_argument(
        "--capacity-events",
        type=int,
        default=defaults.capacity_events,
        help="predictions (each with its label) of the capacity run, without --rate",
    )
    parser.add_argument("--warmup-events", type=int, help="the specs' drift warm-up")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--workdir", type=Path, help="keep the workers' logs and data here")
    parser.add_argument("--json", type=Path, help="also write every sample and the summary here")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.every <= 0 or args.warmup_minutes < 0:
        parser.error("--minutes and --every must be positive, --warmup-minutes not negative")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    if args.models < 1 or args.bad_every < 0 or not 0 <= args.unlabelled_share <= 1:
        parser.error("--models at least 1, --bad-every not negative, --unlabelled-share in [0, 1]")
    options = Options(
        minutes=args.minutes,
        every=args.every,
        warmup_minutes=args.warmup_minutes,
        rate=args.rate,
        models=args.models,
        label_delay=args.label_delay,
        unlabelled_share=args.unlabelled_share,
        drift_after_minutes=args.drift_after_minutes,
        bad_every=args.bad_every,
        capacity_events=args.capacity_events,
        warmup_events=args.warmup_events,
    )
    return options, args


@contextlib.contextmanager
def working_folder(kept: Path | None) -> Iterator[Path]:
    """The folder asked for (kept), or a scratch folder removed at the end."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        yield Path(scratch)


def exit_on_sigterm(signum: int, frame: object) -> None:
    """Leave through the context managers, so the worker and the broker stop."""
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    options, args = parse_options(argv)
    capacity = None
    with (
        tempfile.TemporaryDirectory(prefix="soak-broker-") as scratch,  # the broker's log: large
        working_folder(args.workdir) as workdir,
        kafka(args.bootstrap_servers, Path(scratch)) as servers,
    ):
        rate = options.rate
        if rate is None:
            capacity = measure_capacity(servers, options, workdir)
            rate = capacity["events_per_second"] / 2
            progress(
                f"capacity: {capacity['events_per_second']:,.0f} predictions/s with their "
                f"labels; the soak publishes {rate:,.0f}/s"
            )
        progress(f"soak: {options.minutes:g} min at {rate:,.0f} predictions/s")
        samples, broken = run_soak(servers, options, rate, workdir)
    summary = summarize(samples, options, rate)
    print("\n".join(summary_lines(summary)), flush=True)
    if broken:
        print(broken, file=sys.stderr)
    if args.json:
        figures = {
            "command": " ".join(["benchmarks/soak.py", *(argv or sys.argv[1:])]),
            "options": asdict(options),
            "capacity": capacity,
            "samples": [asdict(sample) for sample in samples],
            "summary": summary,
            "broken": broken,
        }
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 1 if broken else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    sys.exit(main())
