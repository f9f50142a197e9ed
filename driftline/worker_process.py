"""Run ``driftline worker`` as a child process, as a user's service manager would."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

from driftline.streams.settings import Settings, to_environment


class WorkerProcess:
    """A ``driftline worker`` subprocess with these settings, its output in a log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Start the worker; it creates its topics and joins its group by itself."""
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("DRIFTLINE_")
        }
        environment.update(to_environment(self.settings))
        environment["PYTHONSAFEPATH"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "driftline", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
            )
        return self

    @property
    def pid(self) -> int:
        """The worker's process id."""
        if self._process is None:
            raise RuntimeError("the worker is not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        """Whether the worker process is alive."""
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the worker and wait; SIGKILL it after ``timeout``. Returns its exit code."""
        if self._process is None:
            raise RuntimeError("the worker is not started")
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def kill(self) -> int:
        """SIGKILL the worker, as a crash or a lost machine ends it, and wait; its exit code."""
        if self._process is None:
            raise RuntimeError("the worker is not started")
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        return self._process.returncode

    def log_text(self) -> str:
        """Everything the worker has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self.stop()
