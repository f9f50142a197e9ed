"""The worker's bounded shutdown, without a broker."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import faust
from faust.exceptions import ProducerSendError

from driftline.agents.worker import EXIT_SHUTDOWN_TIMEOUT, BoundedShutdownWorker


def test_a_worker_that_does_not_stop_in_time_is_ended_with_its_own_exit_code():
    # The worker's event loop never runs here, so the graceful stop that
    # SIGTERM schedules never happens: only the watchdog can end the process.
    script = textwrap.dedent(
        """
        import time
        import faust
        from driftline.agents.worker import BoundedShutdownWorker

        app = faust.App("watchdog-test", broker="kafka://127.0.0.1:1", autodiscover=False)
        worker = BoundedShutdownWorker(app, shutdown_timeout=0.5, loglevel="error")
        worker._on_sigterm()
        time.sleep(30)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        check=False,
    )
    assert result.returncode == EXIT_SHUTDOWN_TIMEOUT, result.stderr
    assert "did not stop within 0.5 s" in result.stderr


def test_a_crash_arms_the_watchdog_with_the_hard_exit_code():
    # The call faust makes when a send fails at commit (Consumer._commit_tps):
    # mode's Service.crash marks every service up the tree crashed, the worker too.
    exits: list[int] = []
    app = faust.App("crash-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    worker = BoundedShutdownWorker(
        app, shutdown_timeout=0.2, loglevel="error", exit=exits.append, override_logging=False
    )
    for service in worker.on_init_dependencies():  # as the worker's start does: app under worker
        worker.add_dependency(service)
    error = ProducerSendError("Error while sending: KafkaTimeoutError()")
    asyncio.run(app.crash(error))
    assert worker.crashed
    assert worker.crash_reason is error
    assert worker.stopped_itself
    deadline = time.monotonic() + 30
    while not exits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exits == [EXIT_SHUTDOWN_TIMEOUT]


def test_a_signal_is_not_a_stop_of_its_own():
    app = faust.App("signal-test", broker="kafka://127.0.0.1:1", autodiscover=False)
    worker = BoundedShutdownWorker(
        app, shutdown_timeout=60, loglevel="error", exit=lambda code: None, override_logging=False
    )
    worker.signalled = True  # as _on_sigterm does, without scheduling a stop on no loop
    worker.on_worker_shutdown()
    assert not worker.stopped_itself
