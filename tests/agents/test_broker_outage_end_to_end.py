"""A worker whose broker is paused (SIGSTOP) under steady traffic, then resumed.

The test starts a broker of its own: the session's is shared, and pausing it
would stall every other test. A paused broker is the outage a client sees
worst: its connections stay open and the kernel even accepts new ones, but
no request is ever answered. One worker goes through pauses of 30 s, 75 s
and 180 s in turn (past the session timeout, past the stall timeout, past
every client's request timeout); after each, it must go on by itself (the
same process, never stopped) and process everything published, and its
probes must have shown the outage while it lasted (``/livez`` 200, so that
an orchestrator does not restart it for nothing, ``/readyz`` 503) and not
after. A worker sent SIGTERM during an outage must exit within its shutdown
timeout, with the code that says it was ended hard.

The figures each phase took are printed (``pytest -s`` shows them).
"""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from kafka_helpers import free_port, named_after

from driftline.agents.worker import EXIT_SHUTDOWN_TIMEOUT
from driftline.broker import LocalKafkaBroker
from driftline.client import Publisher
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.broker_contact import UNANSWERED_SECONDS
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

PAUSES = (30.0, 75.0, 180.0)
"""Seconds the broker is paused, one outage after the other."""

BETWEEN_PAUSES = 15.0
"""Seconds of steady traffic after the worker caught up, before the next pause: commits go
through again, as between real outages."""

EVENTS_PER_SECOND = 100
SHUTDOWN_TIMEOUT = 10.0
SHUTDOWN_SLACK = 5.0
"""Beyond the shutdown timeout, for the process to end and the test to notice it."""

Answer = tuple[int, dict[str, Any]]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafkaBroker]:
    """A broker for this test alone, resumed before it is stopped whatever happened."""
    with LocalKafkaBroker(data_dir=tmp_path / "kafka") as broker:
        try:
            yield broker
        finally:
            resume(broker)


def resume(broker: LocalKafkaBroker) -> None:
    if broker.pid is not None:
        os.kill(broker.pid, signal.SIGCONT)


@contextmanager
def paused(broker: LocalKafkaBroker) -> Iterator[None]:
    """The broker stopped (SIGSTOP) for the block: alive, its sockets open, answering nothing."""
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        resume(broker)


def outage_settings(broker: LocalKafkaBroker, tmp_path: Path, **update: Any) -> Settings:
    settings = Settings(
        bootstrap_servers=broker.bootstrap_servers,
        topic_partitions=4,
        data_dir=tmp_path / "worker",
        log_level="info",
        web_enabled=True,
        web_port=free_port(),
        **named_after(uuid.uuid4().hex[:10]),
    )
    return settings.model_copy(update=update)


class SteadyPublisher:
    """Publishes predictions at a steady rate from a thread, the broker up or not.

    Its producer keeps what it cannot deliver for ten minutes, so events
    published during an outage reach the broker after it; ``handed`` counts
    the events handed to it so far, all of which the worker must process.
    """

    def __init__(self, settings: Settings, rate: float) -> None:
        self.settings = settings
        self.rate = rate
        self.handed = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-publisher", daemon=True)

    def _run(self) -> None:
        try:
            with Publisher(
                self.settings.bootstrap_servers,
                predictions_topic=self.settings.predictions_topic,
                models_topic=self.settings.models_topic,
                delivery_timeout_ms=600_000,
                max_block_ms=600_000,
            ) as publisher:
                publisher.register(simulated_model_spec())
                started = time.monotonic()
                events = simulated_predictions(10**7, shift_at=10**9, seed=3)
                while not self._stop.is_set():
                    publisher.publish(next(events))
                    self.handed += 1
                    self._stop.wait(max(0.0, started + self.handed / self.rate - time.monotonic()))
                publisher.flush(timeout=300)
        except BaseException as error:  # reported by stop(): a thread's error is otherwise lost
            self.failure = error

    def stop(self) -> int:
        """Stop publishing and wait until the broker has acknowledged everything; how many."""
        self._stop.set()
        self._thread.join(timeout=330)
        assert not self._thread.is_alive(), "the publisher did not finish"
        assert self.failure is None, f"the test's publisher failed: {self.failure!r}"
        return self.handed

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()


def get(port: int, path: str) -> Answer:
    """The status code and JSON body of ``GET path`` on the worker's web server."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for(
    worker: WorkerProcess,
    probe: Callable[[], Any],
    wanted: Callable[[Any], bool],
    *,
    timeout: float,
    what: str,
) -> Any:
    """Call ``probe()`` until ``wanted(answer)``; that answer. The worker must stay up."""
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        assert worker.running, worker.log_text()[-5000:]
        try:
            answer = probe()
        except OSError:  # the web server is not up yet, or slow to answer
            answer = None
        if answer is not None and wanted(answer):
            return answer
        time.sleep(0.5)
    raise AssertionError(f"never saw {what}: last {answer}\n{worker.log_text()[-5000:]}")


def predictions(port: int) -> dict[str, Any]:
    return dict(get(port, "/status")[1]["topics"]["predictions"])


def reachable(answer: Answer) -> bool:
    return bool(answer[1]["broker"]["reachable"])


def ride_out(
    worker: WorkerProcess, broker: LocalKafkaBroker, port: int, seconds: float
) -> dict[str, Any]:
    """Pause the broker for ``seconds``; check the probes all along; what they showed."""
    started = time.monotonic()
    with paused(broker):
        status, livez = wait_for(
            worker,
            lambda: get(port, "/livez"),
            lambda answer: not reachable(answer),
            timeout=seconds - 1.0,
            what="/livez report the outage",
        )
        seen_after = time.monotonic() - started
        assert status == 200, livez  # a restart would not cure it
        assert livez["live"] is True
        assert livez["broker"]["seconds"] >= UNANSWERED_SECONDS
        assert livez["broker"]["unanswered"] == [broker.bootstrap_servers]
        ready_status, readyz = get(port, "/readyz")
        assert ready_status == 503, readyz
        assert not readyz["broker"]["reachable"]
        assert any("an answer from the broker" in item for item in readyz["waiting_for"])
        while time.monotonic() - started < seconds:
            # past the session, stall and request timeouts: still live, never stopped
            status, livez = get(port, "/livez")
            assert (status, livez["live"], reachable((status, livez))) == (200, True, False), livez
            assert worker.running, worker.log_text()[-5000:]
            time.sleep(1.0)
        longest = livez["broker"]["seconds"]
    return {"outage_seen_after_s": round(seen_after, 1), "outage_reported_s": longest}


@pytest.mark.timeout(900)
def test_a_worker_rides_out_broker_pauses_of_30_75_and_180_seconds(
    own_broker: LocalKafkaBroker, tmp_path: Path
):
    settings = outage_settings(own_broker, tmp_path)
    port = settings.web_port
    ensure_topics(settings)
    log_path = tmp_path / "worker.log"
    with (
        WorkerProcess(settings, log_path) as worker,
        SteadyPublisher(settings, EVENTS_PER_SECOND) as publisher,
    ):
        wait_for(
            worker,
            lambda: get(port, "/readyz"),
            lambda answer: answer[0] == 200,
            timeout=180,
            what="the worker ready",
        )
        wait_for(
            worker,
            lambda: predictions(port)["processed"],
            lambda processed: processed >= 1_000,
            timeout=180,
            what="the traffic processed",
        )
        for seconds in PAUSES:
            figures = ride_out(worker, own_broker, port, seconds)
            resumed = time.monotonic()
            published = publisher.handed
            wait_for(
                worker,
                lambda: get(port, "/livez"),
                lambda answer: answer[0] == 200 and reachable(answer),
                timeout=120,
                what="/livez report the broker back",
            )
            figures["broker_back_after_s"] = round(time.monotonic() - resumed, 1)
            wait_for(
                worker,
                lambda: predictions(port)["processed"],
                lambda processed, published=published: processed >= published,
                timeout=300,
                what=f"the {published} events published before the resume processed",
            )
            figures["caught_up_after_s"] = round(time.monotonic() - resumed, 1)
            wait_for(
                worker,
                lambda: get(port, "/readyz"),
                lambda answer: answer[0] == 200,
                timeout=180,
                what="/readyz 200 again",
            )
            figures["ready_after_s"] = round(time.monotonic() - resumed, 1)
            print(f"pause of {seconds:.0f} s: {figures}")
            assert worker.running  # the same process all along: it never exited
            time.sleep(BETWEEN_PAUSES)

        published = publisher.stop()
        counts = wait_for(
            worker,
            lambda: predictions(port),
            lambda counts: counts["processed"] >= published and counts["waiting"] == 0,
            timeout=300,
            what=f"all {published} events processed",
        )
        print(f"published {published}, the worker's counts: {counts}")
        assert counts["processed"] == published
        assert counts["dead_lettered"] == 0
        assert worker.running
        log = worker.log_text()
        assert worker.stop(timeout=60) == 0, log[-5000:]
    assert "without a signal" not in log
    assert "they are lost" not in log  # no output nor state dropped after the send timeout


def test_sigterm_during_a_broker_outage_ends_the_worker_within_its_shutdown_timeout(
    own_broker: LocalKafkaBroker, tmp_path: Path
):
    settings = outage_settings(own_broker, tmp_path, shutdown_timeout_seconds=SHUTDOWN_TIMEOUT)
    port = settings.web_port
    ensure_topics(settings)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        wait_for(
            worker,
            lambda: get(port, "/readyz"),
            lambda answer: answer[0] == 200,
            timeout=180,
            what="the worker ready",
        )
        with SteadyPublisher(settings, EVENTS_PER_SECOND) as publisher:
            wait_for(
                worker,
                lambda: predictions(port)["processed"],
                lambda processed: processed >= 500,
                timeout=180,
                what="the traffic processed",
            )
            with paused(own_broker):
                wait_for(
                    worker,
                    lambda: get(port, "/livez"),
                    lambda answer: not reachable(answer),
                    timeout=60,
                    what="/livez report the outage",
                )
                signalled = time.monotonic()
                code = worker.stop(timeout=SHUTDOWN_TIMEOUT + 60)
                took = time.monotonic() - signalled
            publisher.stop()
    print(f"SIGTERM during an outage: exit code {code} after {took:.1f} s")
    log = worker.log_text()
    assert code == EXIT_SHUTDOWN_TIMEOUT, log[-5000:]
    assert took <= SHUTDOWN_TIMEOUT + SHUTDOWN_SLACK, log[-5000:]
    assert f"did not stop within {SHUTDOWN_TIMEOUT:.1f} s of the signal" in log
