"""``/livez`` and ``/readyz`` of a real worker, its agent stalled on purpose, and the token rule.

The worker runs as a subprocess against the session's broker. To stall
its predictions agent the way a hung send would, a ``sitecustomize``
module on its ``PYTHONPATH`` holds every send while a flag file exists:
the event loop stays free, so the endpoints answer, but no batch ends.
"""

import base64
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafka_helpers import committed_offsets, free_port, wait_until_caught_up
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from driftline.client import Publisher
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings, to_environment
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

TOKEN = "a-test-token-of-some-length"
STALL_SECONDS = 3.0

STALLING_SITECUSTOMIZE = """
import asyncio
import os

import driftline.blas  # as the command does: before numpy loads
from driftline.agents import wiring

_hand_over = wiring.OutputSender.hand_over
FLAG = os.environ["TEST_STALL_FLAG"]


async def hand_over(self, outputs):
    while os.path.exists(FLAG):
        await asyncio.sleep(0.05)
    return await _hand_over(self, outputs)


wiring.OutputSender.hand_over = hand_over
"""


def get(port: int, path: str, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of ``GET path`` on the worker's web server."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def page(port: int, basic: tuple[str, str] | None) -> tuple[int, str, str]:
    """The status code, the challenge and the body of the status page, with basic
    authentication as a browser sends it (none: no Authorization header)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/")
    if basic is not None:
        pair = base64.b64encode(":".join(basic).encode()).decode()
        request.add_header("Authorization", f"Basic {pair}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, "", response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("WWW-Authenticate", ""), error.read().decode()


def get_status(port: int, path: str) -> int:
    """The status code of ``GET path`` without a token, whatever the body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def wait_for(
    worker: WorkerProcess, probe: Any, wanted: Any, *, timeout: float = 120.0
) -> tuple[int, dict[str, Any]]:
    """Call ``probe()`` until ``wanted(answer)``; that answer."""
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        assert worker.running, worker.log_text()
        try:
            answer = probe()
        except OSError:  # the web server is not up yet
            answer = None
        if answer is not None and wanted(answer):
            return answer  # type: ignore[no-any-return]
        time.sleep(0.25)
    raise AssertionError(f"never got there: {answer}\n{worker.log_text()[-3000:]}")


def publish(settings: Settings, start: int, count: int) -> None:
    with Publisher(
        settings.bootstrap_servers,
        predictions_topic=settings.predictions_topic,
        models_topic=settings.models_topic,
    ) as publisher:
        if start == 0:
            publisher.register(simulated_model_spec())
        events = list(simulated_predictions(start + count, shift_at=10**9, seed=5))[start:]
        for event in events:
            publisher.publish(event)
        publisher.flush()


def probe(settings: Settings, endpoint: str) -> subprocess.CompletedProcess[str]:
    """``driftline probe ENDPOINT`` with the worker's own environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "driftline", "probe", endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment | to_environment(settings) | {"PYTHONSAFEPATH": "1"},
        check=False,
    )


def processed(port: int) -> int:
    return int(get(port, "/status")[1]["topics"]["predictions"]["processed"])


def test_livez_fails_while_an_agent_is_stalled_and_recovers_after(
    worker_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STALLING_SITECUSTOMIZE)
    flag = tmp_path / "stall"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("TEST_STALL_FLAG", str(flag))
    port = free_port()
    settings = worker_settings.model_copy(
        update={
            "web_enabled": True,
            "web_port": port,
            "web_token": SecretStr(TOKEN),
            "stall_seconds": STALL_SECONDS,
        }
    )
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        _, ready = wait_for(worker, lambda: get(port, "/readyz"), lambda a: a[0] == 200)
        assert ready == {"ready": True, "waiting_for": [], "broker": {"reachable": True}}
        assert get(port, "/livez") == (
            200,
            {"live": True, "problems": [], "broker": {"reachable": True}},
        )
        assert probe(settings, "readyz").returncode == 0

        publish(settings, 0, 500)
        wait_for(worker, lambda: processed(port), lambda n: n == 500)
        flag.touch()  # the next batch stalls before its outputs are sent
        publish(settings, 500, 500)
        _, report = wait_for(worker, lambda: get(port, "/livez"), lambda a: a[0] == 503)
        assert report["live"] is False
        [problem] = report["problems"]
        assert problem.startswith(f"{settings.predictions_topic}[")
        assert "has had messages waiting" in problem
        assert "DRIFTLINE_STALL_SECONDS=3" in problem
        probed = probe(settings, "livez")  # as a container's healthcheck asks
        assert probed.returncode == 1
        assert "has had messages waiting" in probed.stdout
        group, topic = settings.app_id, settings.predictions_topic
        assert sum(committed_offsets(settings.bootstrap_servers, group, topic).values()) <= 500

        flag.unlink()
        wait_for(worker, lambda: get(port, "/livez"), lambda a: a[0] == 200)
        assert probe(settings, "livez").returncode == 0
        wait_until_caught_up(settings.bootstrap_servers, group, topic)


def test_every_endpoint_needs_the_token_and_the_metrics_count_what_was_sent(
    worker_settings: Settings, tmp_path: Path
):
    port = free_port()
    settings = worker_settings.model_copy(
        update={"web_enabled": True, "web_port": port, "web_token": SecretStr(TOKEN)}
    )
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        wait_for(worker, lambda: get(port, "/readyz"), lambda a: a[0] == 200)
        for path in ("/livez", "/readyz", "/status", "/metrics"):
            for token in (None, "a-wrong-token-of-some-length", TOKEN[:-1]):
                status, body = get(port, path, token)
                assert status == 401, (path, token)
                assert "Authorization: Bearer" in body["error"]
        assert page(port, None)[:2] == (401, 'Basic realm="driftline", charset="UTF-8"')
        assert page(port, ("anyone", TOKEN[:-1]))[0] == 401
        status, _, document = page(port, ("anyone", TOKEN))  # as a browser sends it
        assert status == 200
        assert "<h1>driftline: " in document
        for faust_view in ("/router/", "/stats/", "/assignments/", "/table/"):
            assert get_status(port, faust_view) == 404, faust_view
        publish(settings, 0, 300)
        wait_for(worker, lambda: processed(port), lambda n: n == 300)
        samples = scrape(port)
        predictions = (("topic", "predictions"),)
        assert samples[("driftline_messages_consumed_total", predictions)] == 300
        assert samples[("driftline_messages_processed_total", predictions)] == 300
        assert samples[("driftline_batch_seconds_count", predictions)] >= 1
        lags = {
            labels: value
            for (name, labels), value in samples.items()
            if name == "driftline_consumer_lag_messages"
        }
        assert {dict(labels)["topic"] for labels in lags} <= set(settings.input_topics)
        assert any(dict(labels)["topic"] == settings.predictions_topic for labels in lags)
        assert set(lags.values()) == {0.0}  # all taken
        [(labels, one)] = [(k[1], v) for k, v in samples.items() if k[0] == "driftline_build_info"]
        assert one == 1.0
        assert dict(labels)["version"] == importlib.metadata.version("driftline")
        assert samples[("process_resident_memory_bytes", ())] > 0
    assert TOKEN not in worker.log_text()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the worker's ``/metrics``, by name and labels."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
