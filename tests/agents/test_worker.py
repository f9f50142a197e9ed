"""The worker's bounded shutdown, without a broker."""

import os
import subprocess
import sys
import textwrap

from driftline.agents.worker import EXIT_SHUTDOWN_TIMEOUT


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
