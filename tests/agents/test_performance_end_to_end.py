"""Delayed labels through a real worker: a classifier's accuracy falls from 90% to 70%.

Labels arrive up to 500 events after their prediction (events are one
second apart in event time), 5% never arrive, and a few labels name
predictions that never existed. The worker must raise one realized
performance alert after the fall and none before, report per window exactly
the label coverage and delays that were sent, and dead-letter the orphans.
"""

import random
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka_helpers import free_port, read_all, wait_for_worker

from driftline.schemas import (
    Alert,
    DeadLetter,
    LabelEvent,
    ModelSpec,
    PerformanceReport,
    PredictionEvent,
    ReportStage,
)
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

MODEL, VERSION = "loans", "4"
PREDICTIONS, FALL = 10_000, 5_000
MAX_DELAY, NEVER = 500, 0.05
ORPHANS = 30
RETENTION = 1_200
WINDOW = 1_000
START = datetime(2026, 4, 1, tzinfo=UTC)


def metrics_text(settings: Settings) -> str:
    url = f"http://127.0.0.1:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_accuracy_falling_from_90_to_70_percent_with_delayed_and_missing_labels(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(
        update={
            "web_enabled": True,
            "web_port": free_port(),
            "label_retention_seconds": float(RETENTION),
        }
    )
    ensure_topics(settings)
    spec = ModelSpec(
        model_id=MODEL,
        model_version=VERSION,
        task="classification",
        classes=["repaid", "defaulted"],
        features=[],
        performance={"window": WINDOW},
    )
    rng = random.Random(5)
    due: dict[int, list[LabelEvent]] = defaultdict(list)
    sent_delays: dict[int, list[float]] = defaultdict(list)  # by window
    labelled = 0
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    ).get(timeout=30)

    def send(topic: str, event: PredictionEvent | LabelEvent) -> None:
        producer.send(topic, key=MODEL.encode(), value=event.model_dump_json().encode())

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        for i in range(PREDICTIONS):
            time_i = START + timedelta(seconds=i)
            confident = rng.uniform(0.55, 0.97)
            predicted = rng.choice(spec.classes or [])
            other = next(c for c in spec.classes or [] if c != predicted)
            send(
                settings.predictions_topic,
                PredictionEvent(
                    model_id=MODEL,
                    model_version=VERSION,
                    event_id=f"p{i}",
                    event_time=time_i,
                    prediction=predicted,
                    probabilities={predicted: confident, other: 1 - confident},
                ),
            )
            right = rng.random() < (0.9 if i < FALL else 0.7)
            if rng.random() >= NEVER:
                delay = rng.randint(0, MAX_DELAY)
                labelled += 1
                sent_delays[i // WINDOW].append(float(delay))
                due[i + delay].append(
                    LabelEvent(
                        model_id=MODEL,
                        event_id=f"l{i}",
                        prediction_id=f"p{i}",
                        event_time=time_i + timedelta(seconds=delay),
                        label=predicted if right else other,
                    )
                )
            if i % 300 == 0 and i // 300 < ORPHANS:
                due[i].append(
                    LabelEvent(
                        model_id=MODEL,
                        event_id=f"orphan{i}",
                        prediction_id=f"never-predicted-{i}",
                        event_time=time_i,
                        label="repaid",
                    )
                )
            for label in due.pop(i, []):
                send(settings.labels_topic, label)
        for step in sorted(due):
            for label in due[step]:
                send(settings.labels_topic, label)
        producer.flush()
        producer.close()

        expected_labels = labelled + ORPHANS
        report = wait_for_worker(
            settings.web_port,
            worker,
            lambda r: (
                r["topics"]["predictions"]["consumed"] >= PREDICTIONS
                and r["topics"]["labels"]["consumed"] >= expected_labels
            ),
            timeout=240,
        )
        text = metrics_text(settings)

    predictions = report["topics"]["predictions"]
    assert (predictions["processed"], predictions["dead_lettered"]) == (PREDICTIONS, 0), report
    labels = report["topics"]["labels"]
    assert labels["consumed"] == expected_labels
    assert (
        labels["processed"] + labels["dead_lettered"] + labels["duplicates"] + labels["waiting"]
        == expected_labels
    )
    assert labels["dead_letter_reasons"] == {"orphan_label": ORPHANS}
    assert labels["processed"] == labelled
    # Each agent's own work is timed, that of the summaries' agent (idle here) at nothing.
    assert predictions["cpu_seconds"] > 0
    assert labels["cpu_seconds"] > 0
    assert report["topics"]["summaries"]["cpu_seconds"] == 0

    [performance] = report["performance"]
    assert performance["predictions"] == PREDICTIONS
    assert performance["labelled"] == labelled
    assert performance["label_coverage"] == pytest.approx(labelled / PREDICTIONS)
    series = f'driftline_predictions_labelled_total{{model_id="{MODEL}",model_version="{VERSION}"}}'
    assert f"{series} {float(labelled)}" in text

    letters = [
        DeadLetter.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.dead_letters_topic)
    ]
    assert len(letters) == ORPHANS
    assert {letter.reason.value for letter in letters} == {"orphan_label"}
    assert all(letter.source.topic == settings.labels_topic for letter in letters)

    alerts = [
        Alert.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    realized = [alert for alert in alerts if alert.kind.value == "performance"]
    assert len(realized) == 1, [alert.summary for alert in alerts]
    [alert] = realized
    fall_time = START + timedelta(seconds=FALL)
    assert alert.event_time >= fall_time, "a performance alert before the fall"
    evidence = alert.evidence
    assert evidence.kind == "performance"
    assert evidence.statistic >= evidence.threshold
    assert evidence.reference == pytest.approx(0.1, abs=0.02)
    assert evidence.current > 0.2
    assert evidence.change_event_time is not None
    assert abs((evidence.change_event_time - fall_time).total_seconds()) < 600
    assert not [alert for alert in alerts if alert.kind.value == "estimated_performance"]

    reports = [
        PerformanceReport.model_validate_json(v or b"")
        for v in read_all(settings.bootstrap_servers, settings.performance_topic)
    ]
    settled = {r.window: r for r in reports if r.stage is ReportStage.SETTLED}
    closed = {r.window: r for r in reports if r.stage is ReportStage.CLOSED}
    assert set(closed) == set(range(PREDICTIONS // WINDOW))
    assert len(settled) >= 7, sorted(settled)
    for window, settled_report in settled.items():
        delays = sent_delays[window]
        assert settled_report.labelled == len(delays)
        assert settled_report.expired == WINDOW - len(delays)
        assert settled_report.label_delay_seconds["max"] == max(delays)
        assert settled_report.label_delay_seconds["mean"] == pytest.approx(
            sum(delays) / len(delays)
        )
        accuracy = settled_report.realized["accuracy"]
        assert accuracy == pytest.approx(0.9 if window < FALL // WINDOW else 0.7, abs=0.05)
