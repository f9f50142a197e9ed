"""``driftline worker``: the long-lived process, with a bounded shutdown."""

import logging
import os
import threading
from collections.abc import Callable
from typing import Any, NoReturn

import faust
from kafka.errors import KafkaError

from driftline.agents.health import register_health_pages
from driftline.agents.metrics import register_metrics_page
from driftline.agents.status import register_status_page
from driftline.agents.wiring import Monitoring, register_agents
from driftline.streams import DriftlineApp, Settings, create_app, ensure_topics
from driftline.streams.batching import BatchingConsumer
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
"""Exit code when a worker had to be ended hard: its stop took longer than the shutdown timeout."""

EXIT_STOPPED_ITSELF = 70
"""Exit code when a worker stopped without being asked by a signal (faust crashed or stopped
the app, after a fatal Kafka error say) and its stop completed in time: a service manager
should restart it."""


def build_worker_app(settings: Settings) -> tuple[DriftlineApp, Monitoring]:
    """The faust app with every driftline agent registered on it."""
    dapp = create_app(settings)
    monitoring = register_agents(dapp)
    register_status_page(dapp.app, monitoring, settings)
    register_metrics_page(dapp.app, monitoring, settings)
    register_health_pages(dapp.app, monitoring, settings)
    return dapp, monitoring


class BoundedShutdownWorker(faust.Worker):
    """A faust worker whose process ends at the latest ``shutdown_timeout`` after it begins
    to stop, with an exit code that says why.

    faust stops gracefully on SIGTERM (committing offsets), but a consumer
    stuck in a group join, or a producer waiting on an unreachable broker,
    can keep it alive for minutes; an orchestrator waiting on the process
    deserves a bound. faust also stops by itself: a service that crashes
    (a fatal producer error, a failed rebalance) crashes the whole tree of
    services (mode's ``Service.crash``), and a worker left "Stopping..." with
    its web server up would consume nothing, alive, forever. So a watchdog
    thread is armed when a signal arrives, when the worker crashes
    (:meth:`_crash`) and whenever the worker's run ends (:meth:`on_worker_shutdown`,
    which mode calls however it ends); past the timeout it ends the process
    with :data:`EXIT_SHUTDOWN_TIMEOUT`. A stop that completes in time exits 0
    after a signal and :data:`EXIT_STOPPED_ITSELF` otherwise, so a service
    manager restarts the worker.

    ``exit`` ends the process (``os._exit``: the watchdog runs in a thread, and
    the event loop may be the thing that is stuck); a test may pass its own.
    """

    def __init__(
        self,
        *args: Any,
        shutdown_timeout: float,
        exit: Callable[[int], object] = os._exit,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown_timeout = shutdown_timeout
        self._exit = exit
        self._watchdog: threading.Timer | None = None
        self._stop_cause: str | None = None
        """Why the worker began to stop: "the signal", or what stopped it by itself."""
        self.signalled = False
        """Whether a signal (SIGTERM, SIGINT) asked the worker to stop."""

    @property
    def stopped_itself(self) -> bool:
        """Whether the worker began to stop without a signal asking it to."""
        return self._stop_cause is not None and not self.signalled

    def _arm_watchdog(self, cause: str) -> None:
        if self._stop_cause is None:
            self._stop_cause = cause
        if self._watchdog is None:
            self._watchdog = threading.Timer(self.shutdown_timeout, self._force_exit)
            self._watchdog.daemon = True
            self._watchdog.start()

    def _force_exit(self) -> None:
        log.error(
            "worker did not stop within %.1f s of %s; exiting hard",
            self.shutdown_timeout,
            self._stop_cause,
        )
        logging.shutdown()
        self._exit(EXIT_SHUTDOWN_TIMEOUT)

    def _on_sigterm(self) -> None:
        self.signalled = True
        self._arm_watchdog("the signal")
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self.signalled = True
        self._arm_watchdog("the signal")
        super()._on_sigint()

    def _crash(self, reason: BaseException) -> None:
        # mode's Service.crash marks every service up the tree as crashed, the
        # worker (the root) included, whichever service crashed: the earliest
        # moment the worker knows it is going down.
        super()._crash(reason)
        self._arm_watchdog(f"crashing ({reason!r})")

    async def on_started(self) -> None:
        # mode's Worker waits here until the worker stops or crashes; wait for the
        # app's stop too, or a worker whose app stopped by itself would wait forever.
        if self.daemon:
            await self.wait(self.app.wait_until_stopped())

    def on_worker_shutdown(self) -> None:
        # Called by mode's Worker.execute_from_commandline when the worker's run
        # ends, however it ends, before it stops the services.
        if not self.signalled:
            app = self.app
            if app.crash_reason is not None or self.crash_reason is not None:
                cause = f"crashing ({self.crash_reason or app.crash_reason!r})"
            else:
                cause = f"stopping by itself (the app is {app.state})"
            self._arm_watchdog(cause)
            log.error("the worker is %s, without a signal; it exits to be restarted", cause)
        super().on_worker_shutdown()

    def execute_from_commandline(self) -> NoReturn:
        """Run the worker until it stops; exit non-zero unless a signal asked for the stop."""
        try:
            super().execute_from_commandline()
        except SystemExit as exit:
            if self.stopped_itself and exit.code != EXIT_SHUTDOWN_TIMEOUT:
                raise SystemExit(EXIT_STOPPED_ITSELF) from None
            raise


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
        consumer = dapp.app.consumer
        if isinstance(consumer, BatchingConsumer):
            for line in consumer.behind(settings.input_topics):
                log.info("input partition %s", line)

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
