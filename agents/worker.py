"""``driftline worker``: the long-lived process, with a bounded shutdown."""

import logging
import os
import threading
from typing import Any, NoReturn

import faust
from kafka.errors import KafkaError

from driftline.agents.health import register_health_pages
from driftline.agents.metrics import register_metrics_page
from driftline.agents.status import register_status_page
from driftline.agents.wiring import Monitoring, register_agents
from driftline.streams import DriftlineApp, Settings, create_app, ensure_topics
from driftline.streams.runtime import (
    MEMORY_RELEASE_SECONDS,
    fix_mmap_threshold,
    keep_heap_top,
    limit_malloc_arenas,
    release_free_memory,
    tune_garbage_collector,
)
from driftline.streams.security import credentials_refused, refusal_hint

log = logging.getLogger(__name__)

EXIT_SHUTDOWN_TIMEOUT = 75
"""Exit code when a worker had to be stopped hard after the shutdown timeout."""


def build_worker_app(settings: Settings) -> tuple[DriftlineApp, Monitoring]:
    """The faust app with every driftline agent registered on it."""
    dapp = create_app(settings)
    monitoring = register_agents(dapp)
    register_status_page(dapp.app, monitoring, settings)
    register_metrics_page(dapp.app, monitoring, settings)
    register_health_pages(dapp.app, monitoring, settings)
    return dapp, monitoring


class BoundedShutdownWorker(faust.Worker):
    """A faust worker that exits at the latest ``shutdown_timeout`` after a signal.

    faust stops gracefully on SIGTERM (committing offsets), but a consumer
    stuck in a group join can keep it alive for minutes; an orchestrator
    waiting on the process deserves a bound. Past it the process exits with
    code 75 so the hard stop shows.
    """

    def __init__(self, *args: Any, shutdown_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_timeout = shutdown_timeout
        self._watchdog: threading.Timer | None = None

    def _arm_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Timer(self.shutdown_timeout, self._force_exit)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _force_exit(self) -> None:
        log.error(
            "worker did not stop within %.1f s of the signal; exiting hard", self.shutdown_timeout
        )
        logging.shutdown()
        os._exit(EXIT_SHUTDOWN_TIMEOUT)

    def _on_sigterm(self) -> None:
        self._arm_watchdog()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm_watchdog()
        super()._on_sigint()


class WorkerStartupError(RuntimeError):
    """The worker cannot start; the message says what to fix."""


def run_worker(settings: Settings) -> NoReturn:
    """Create missing topics, then run the worker until a signal stops it."""
    try:
        ensure_topics(settings)
    except KafkaError as error:
        refusal = credentials_refused(settings, timeout=min(settings.startup_timeout_seconds, 10))
        raise WorkerStartupError(
            f"cannot reach Kafka at {settings.bootstrap_servers} to create the topics "
            f"({error}); {refusal_hint(settings, refusal)}"
        ) from error
    dapp, monitoring = build_worker_app(settings)

    @dapp.app.timer(interval=30.0)  # type: ignore[untyped-decorator]
    async def report_counters() -> None:
        counters = monitoring.intake.counters
        for topic, counts in counters.topics.items():
            if counts.consumed:
                log.info("%s: %s", topic.value, counts)
        registered = len(monitoring.registry)
        log.info("alerts: %s; models registered: %d", dict(counters.alerts), registered)

    @dapp.app.timer(interval=MEMORY_RELEASE_SECONDS)  # type: ignore[untyped-decorator]
    async def release_memory() -> None:
        release_free_memory()

    tune_garbage_collector()
    limit_malloc_arenas()  # before the worker starts Kafka's fetch thread
    fix_mmap_threshold()
    keep_heap_top()  # handed back each second all the same (release_memory)
    worker = BoundedShutdownWorker(
        dapp.app,
        loglevel=settings.log_level,
        shutdown_timeout=settings.shutdown_timeout_seconds,
    )
    worker.execute_from_commandline()
