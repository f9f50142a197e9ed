"""Alert latency: from the produce of the event an alert names to the alert's arrival.

A worker runs on topics of its own; predictions are published at a steady
rate (half of what the worker was measured to process), and every model's
feature f0 moves by 2 sd after its warm-up. A consumer on the alerts topic
notes when each alert arrives; the latency of an alert is that time minus
the time its ``event_id`` was about to be handed to the producer. Both
clocks are this process's wall clock.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition

from benchmarks.probes import GroupProbe, free_port, own_topics, settled, worker_status
from benchmarks.traffic import partition_of, prediction_events, publish_specs
from driftline.schemas import ModelSpec, PredictionEvent
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

SHIFT_SD = 2.0
PACING_SLEEP_SECONDS = 0.001
"""Shorter waits for an event's turn are skipped: the next sleep makes up for them."""
SETTLE_SECONDS = 2.0
"""How long to keep listening for alerts once the worker has settled every event."""


class AlertListener(threading.Thread):
    """Reads the alerts topic from its beginning and notes each alert's arrival time."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        super().__init__(name="alert-listener", daemon=True)
        self.arrivals: list[tuple[float, bytes]] = []
        self._stopping = threading.Event()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        partitions = self._consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in partitions]
        self._consumer.assign(assigned)
        self._consumer.seek_to_beginning(*assigned)

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                batches = self._consumer.poll(timeout_ms=100)
                arrived = time.time()
                for records in batches.values():
                    self.arrivals.extend((arrived, record.value) for record in records)
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


def encoded(events: Iterable[PredictionEvent]) -> list[tuple[str, bytes, bytes]]:
    """Each event's id, key and JSON value, made before the clock starts."""
    return [
        (event.event_id, event.model_id.encode(), event.model_dump_json().encode())
        for event in events
    ]


def publish_paced(
    settings: Settings, messages: list[tuple[str, bytes, bytes]], rate: float
) -> dict[str, float]:
    """Publish encoded events at ``rate`` per second; the wall time each was handed over, by id.

    The load generator shares the machine with the worker and the broker,
    so it is kept lean: the values are encoded beforehand, and an aiokafka
    producer sends them (kafka-python's pure-Python sender alone would take
    most of a core at these rates, and slow the worker it measures).
    """
    return asyncio.run(
        _publish_paced(settings.bootstrap_servers, settings.predictions_topic, messages, rate)
    )


async def _publish_paced(
    bootstrap_servers: str,
    topic: str,
    messages: list[tuple[str, bytes, bytes]],
    rate: float,
) -> dict[str, float]:
    """Hand the events over as they fall due, those due together as one batch per partition.

    The events of a partition due at one wake-up go out as one batch built
    by hand. Each is stamped as its wake-up starts, just before it is handed
    over, so a wait of the producer for room (a partition's batch lingers
    up to 5 ms) counts in its alerts' latency, never against it. 30,000
    events at 7,800 events/s took 0.71-0.74 s of this process's CPU,
    against 1.13-1.25 s with a ``send()`` per event (a future, a partition
    lookup and an append each), which also fell behind its schedule by 5 %.
    """
    produced: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topic))
        deliveries = []
        start = time.monotonic()
        index = 0
        while index < len(messages):
            delay = start + index / rate - time.monotonic()
            if delay > PACING_SLEEP_SECONDS:
                await asyncio.sleep(delay)
            due = min(len(messages), int((time.monotonic() - start) * rate) + 1)
            batches: dict[int, Any] = {}
            now = time.time()
            for event_id, key, value in messages[index:due]:
                partition = partition_of(key.decode(), partitions)
                batch = batches.get(partition)
                if batch is None:
                    batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = batches[partition] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                produced[event_id] = now
            for partition, batch in batches.items():
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
            index = due
        await asyncio.gather(*deliveries)  # every event is on the broker
    finally:
        await producer.stop()
    return produced


def latencies(
    arrivals: list[tuple[float, bytes]], produced: dict[str, float]
) -> list[dict[str, Any]]:
    """Each alert whose named event was published here, with its latency, in arrival order."""
    found = []
    for arrived, value in arrivals:
        alert = orjson.loads(value)
        event_id = alert.get("event_id")
        if event_id in produced:
            found.append(
                {
                    "event_id": event_id,
                    "feature": alert.get("feature"),
                    "status": alert.get("status"),
                    "latency_seconds": arrived - produced[event_id],
                }
            )
    return found


def summary(timed: list[dict[str, Any]], alerts: int, rate: float, events: int) -> dict[str, Any]:
    """p50, p99 and max of the latencies, with what they were measured on, and each alert."""
    values = np.asarray([alert["latency_seconds"] for alert in timed], dtype=np.float64)
    quantile = (lambda q: float(np.quantile(values, q))) if len(values) else (lambda q: None)
    return {
        "rate_events_per_second": rate,
        "events": events,
        "alerts": alerts,
        "alerts_timed": len(values),
        "p50_seconds": quantile(0.5),
        "p99_seconds": quantile(0.99),
        "max_seconds": float(values.max()) if len(values) else None,
        "timed": timed,
    }


def pooled(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Several trials' figures as one: p50, p99 and max over every alert of every trial.

    A trial's p99 rests on a few dozen alerts, and on this shared machine
    trials at one rate spread by a factor of three; the pooled p99 is set by
    the worst trials, so it is the cautious reading. Each trial's own
    figures come along (``trials``, without their alerts), and each alert
    says which trial it came from.
    """
    if len(trials) == 1:
        return trials[0]
    timed = [
        {**alert, "trial": number}
        for number, trial in enumerate(trials)
        for alert in trial["timed"]
    ]
    figures = summary(
        timed,
        sum(trial["alerts"] for trial in trials),
        trials[0]["rate_events_per_second"],
        sum(trial["events"] for trial in trials),
    )
    figures["behind_at_end_seconds"] = max(trial["behind_at_end_seconds"] for trial in trials)
    figures["trials"] = [
        {key: value for key, value in trial.items() if key != "timed"} for trial in trials
    ]
    return figures


def measure_alert_latency(
    settings: Settings,
    specs: list[ModelSpec],
    *,
    rate: float,
    shifted_events: int,
    log: Path,
    timeout: float,
) -> dict[str, Any]:
    """Run a worker on ``settings``' own topics, publish drifting traffic at ``rate``, time alerts.

    Each model gets its warm-up (the spec's ``warmup_events``), then
    ``shifted_events`` events with f0 shifted by 2 sd.
    """
    ensure_topics(settings)
    publish_specs(settings, specs)
    warmup = specs[0].drift.warmup_events
    count = len(specs) * (warmup + shifted_events)
    messages = encoded(prediction_events(specs, count, shift_at=warmup, shift=SHIFT_SD, seed=1_000))
    listener = AlertListener(settings.bootstrap_servers, settings.alerts_topic)
    listener.start()
    try:
        with WorkerProcess(settings, log) as worker:
            _wait_until_assigned(worker, settings, timeout)
            produced = publish_paced(settings, messages, rate)
            last_produced = time.time()
            _wait_until_settled(worker, settings.web_port, count, timeout)
            behind = time.time() - last_produced
            time.sleep(SETTLE_SECONDS)
    finally:
        listener.stop()
    timed = latencies(listener.arrivals, produced)
    return summary(timed, len(listener.arrivals), rate, count) | {"behind_at_end_seconds": behind}


def _wait_until_assigned(worker: WorkerProcess, settings: Settings, timeout: float) -> None:
    """Wait until the worker holds every predictions partition, so none waits for it."""
    everything = set(range(settings.topic_partitions))
    deadline = time.monotonic() + timeout
    with GroupProbe(settings.bootstrap_servers, settings.app_id) as group:
        while group.holds(settings.predictions_topic) != everything:
            if not worker.running or time.monotonic() > deadline:
                raise RuntimeError(f"the worker never took its partitions ({worker.log_path})")
            time.sleep(0.2)


def _wait_until_settled(worker: WorkerProcess, web_port: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (settled(worker_status(web_port)) or 0) < count:
        if not worker.running or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not settle {count} events ({worker.log_path})")
        time.sleep(0.2)


def latency_settings(settings: Settings, workdir: Path, trial: int = 0) -> Settings:
    """``settings`` with topics and a group of the latency run's own, and the status page on.

    Each ``trial`` after the first gets topics and a group of its own too.
    """
    name = f"{settings.app_id}-latency" + (f"-{trial}" if trial else "")
    topics = own_topics(name)
    return settings.model_copy(
        update={
            **topics,
            "app_id": name,
            "data_dir": workdir / name,
            "web_enabled": True,
            "web_port": free_port(),
        }
    )
