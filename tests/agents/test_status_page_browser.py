"""The status page in a real browser: a worker with drifting traffic, read by headless Chromium.

The worker runs as a real process against the real broker; Chromium loads
``GET /`` from it as a person would and the test reads the DOM Chromium
built, then keeps a screenshot in the test artifacts (``status-page.png``).
"""

import time
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, dump_dom, png_size, screenshot
from html_elements import elements
from kafka import KafkaProducer
from kafka_helpers import free_port, wait_for_worker
from samples import CLASSIFIER_EVENTS, CLASSIFIER_SHIFT_AT

from driftline.schemas import LabelEvent
from driftline.simulate import simulated_classifier_spec, simulated_classifier_traffic
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka


def publish_traffic(settings: Settings, *, chunks: int = 40) -> None:
    """Register the simulated classifier, then send its predictions and delayed labels in the
    order they happen, in ``chunks`` with a pause between, as live traffic comes."""
    spec = simulated_classifier_spec()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    ).get(timeout=30)
    key = spec.model_id.encode()
    traffic = list(
        simulated_classifier_traffic(CLASSIFIER_EVENTS, shift_at=CLASSIFIER_SHIFT_AT, seed=3)
    )
    size = -(-len(traffic) // chunks)
    for start in range(0, len(traffic), size):
        for event in traffic[start : start + size]:
            labels = isinstance(event, LabelEvent)
            topic = settings.labels_topic if labels else settings.predictions_topic
            producer.send(topic, key=key, value=event.model_dump_json().encode())
        producer.flush(timeout=60)
        time.sleep(0.1)
    producer.close()


def all_taken(report: dict[str, Any]) -> bool:
    topics = report["topics"]
    return all(
        topics[topic]["processed"] + topics[topic]["dead_lettered"] == CLASSIFIER_EVENTS
        for topic in ("predictions", "labels")
    )


def test_the_status_page_shows_the_drift_in_a_browser(
    worker_settings: Settings, tmp_path: Path, artifacts: Path
):
    chromium()  # skipped (or failed, where a browser is required) before any work
    port = free_port()
    settings = worker_settings.model_copy(update={"web_enabled": True, "web_port": port})
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        wait_for_worker(port, worker, lambda report: True)  # up: traffic comes live
        publish_traffic(settings)
        wait_for_worker(port, worker, all_taken)
        url = f"http://127.0.0.1:{port}/"
        found = elements(dump_dom(url)).found
        shot = screenshot(url, artifacts / "status-page.png", height=1400)

    figures = {a["data-subject"]: a for tag, a in found if tag == "figure" and "data-subject" in a}
    assert "drifted" in figures["x"]["class"].split()
    assert "drifted" not in figures["y"]["class"].split()
    open_rows = {a["data-subject"] for tag, a in found if a.get("class") == "alert open"}
    assert "x" in open_rows
    charts = {a["data-subject"]: a for tag, a in found if tag == "svg" and "data-subject" in a}
    assert charts["x"]["data-crossed"] == "true"
    assert charts["y"]["data-crossed"] == "false"
    marks = [a for tag, a in found if tag == "line" and a.get("class") == "mark open"]
    assert marks  # the alert's open mark is drawn on its chart
    assert any(a.get("class") == "chart performance" for _, a in found)
    assert png_size(shot) == (1280, 1400)
