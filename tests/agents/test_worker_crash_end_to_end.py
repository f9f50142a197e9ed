"""A worker that faust stops by itself exits non-zero, within its shutdown timeout.

The worker runs as ``run_worker`` runs it for ``driftline worker``, in a
subprocess against the real broker. Once it has started, the script crashes
it the way faust does when a send fails at commit (``Consumer._commit_tps``
calls ``consumer.crash(ProducerSendError(...))``): nothing in the product is
changed for the test, only the trigger is added by the script.
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from driftline.agents.worker import EXIT_SHUTDOWN_TIMEOUT, EXIT_STOPPED_ITSELF
from driftline.streams.settings import Settings, to_environment
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys

    from faust.exceptions import ProducerSendError

    from driftline.agents import worker as worker_module
    from driftline.streams import Settings

    HANG = sys.argv[1] == "hang"
    started = worker_module.BoundedShutdownWorker.on_startup_finished


    async def never_returns(*args, **kwargs):
        await asyncio.Event().wait()


    async def crash(app):
        await asyncio.sleep(1.0)
        if HANG:  # as a flush against a broker that no longer answers
            app.producer.flush = never_returns
        print("CRASHING", flush=True)
        if sys.argv[1] == "app-stop":  # the app alone stopped, with no crash
            await app.stop()
        else:
            error = ProducerSendError("Error while sending: KafkaTimeoutError()")
            await app.consumer.crash(error)


    async def on_startup_finished(self):
        await started(self)
        asyncio.ensure_future(crash(self.app))


    worker_module.BoundedShutdownWorker.on_startup_finished = on_startup_finished
    worker_module.run_worker(Settings())
    """
)

SHUTDOWN_TIMEOUT = 4.0


def run_crashing_worker(settings: Settings, mode: str, log_path: Path) -> tuple[int, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("DRIFTLINE_")
    }
    environment.update(to_environment(settings))
    environment["PYTHONSAFEPATH"] = "1"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, mode],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
        )
        try:
            # Generous: the worker starts (topics, group join, recovery), then stops.
            code = process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return code, log_path.read_text(errors="replace")


@pytest.fixture
def crash_settings(worker_settings: Settings) -> Settings:
    return worker_settings.model_copy(update={"shutdown_timeout_seconds": SHUTDOWN_TIMEOUT})


@pytest.mark.parametrize(
    ("how", "exit_code", "said"),
    [
        # faust crashes the app, and the stop completes
        ("stop", EXIT_STOPPED_ITSELF, "without a signal"),
        # the app stops by itself, without a crash
        ("app-stop", EXIT_STOPPED_ITSELF, "stopping by itself (the app is"),
        # faust crashes the app, and the stop hangs (as on a paused broker)
        ("hang", EXIT_SHUTDOWN_TIMEOUT, "s of crashing (ProducerSendError"),
    ],
)
def test_a_worker_that_stops_without_a_signal_exits_non_zero_within_the_timeout(
    crash_settings: Settings, tmp_path: Path, how: str, exit_code: int, said: str
):
    code, log = run_crashing_worker(crash_settings, how, tmp_path / "worker.log")
    assert "CRASHING" in log, log
    assert code == exit_code, log
    assert said in log
    if how == "hang":
        assert f"did not stop within {SHUTDOWN_TIMEOUT:.1f} s of crashing" in log


def test_a_worker_stopped_by_sigterm_still_exits_zero(crash_settings: Settings, tmp_path: Path):
    with WorkerProcess(crash_settings, tmp_path / "worker.log") as worker:
        deadline = time.monotonic() + 120  # generous: topics, group join, recovery
        while "OK ^" not in worker.log_text() and "Ready" not in worker.log_text():
            assert worker.running, worker.log_text()
            assert time.monotonic() < deadline, worker.log_text()
            time.sleep(0.2)
        assert worker.stop(timeout=60) == 0, worker.log_text()
    assert "without a signal" not in worker.log_text()
