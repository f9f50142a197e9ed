"""The worker's status pages: a page to look at, and what became of every message.

On the worker's web server (``DRIFTLINE_WEB_ENABLED``, bound to 127.0.0.1 by
default), with the same token rule as every endpoint:

- ``GET /`` is the status page a person reads (:mod:`driftline.agents.page`):
  model versions, open alerts, triggers, and charts of each drift subject
  and of performance, drawn from the worker's own memory
  (:class:`~driftline.agents.history.StatusHistory`, bounded);
- ``GET /status`` answers with JSON counts per input topic, so an operator,
  or a test, can check that every consumed message was processed,
  dead-lettered or counted as a duplicate.
"""

from typing import Any

import numpy as np
from faust.web import Request, Response, View

from driftline.agents.health import refusal
from driftline.agents.intake import InputTopic
from driftline.agents.page import status_page
from driftline.agents.progress import input_lags
from driftline.agents.wiring import Monitoring
from driftline.streams.settings import Settings


def status_report(monitoring: Monitoring) -> dict[str, Any]:
    """The counts the status page shows, as plain JSON-ready data."""
    counters = monitoring.intake.counters
    return {
        "topics": {
            topic.value: {
                "consumed": counts.consumed,
                "processed": counts.processed,
                "dead_lettered": counts.dead_lettered,
                "duplicates": counts.duplicates,
                "waiting": counts.waiting,
                "dead_letter_reasons": dict(sorted(counts.dead_letter_reasons.items())),
                "cpu_seconds": _cpu_seconds(monitoring, topic),
            }
            for topic, counts in counters.topics.items()
        },
        "alerts": dict(sorted(counters.alerts.items())),
        "labels": {
            "orphaned": monitoring.intake.labels.counts.orphaned,
            "predictions_unlabelled": monitoring.intake.labels.counts.predictions_unlabelled,
            "waiting_in_join": len(monitoring.intake.labels.join),
        },
        "performance": [
            {
                "model_id": model_id,
                "model_version": version,
                "predictions": monitor.predictions,
                "labelled": monitor.labelled_predictions,
                "label_coverage": monitor.label_coverage,
                "label_delay_seconds": delay_quantiles(monitor.label_delays),
                "reference_ready": monitor.reference_ready,
                "estimated": monitor.last_estimate,
                "realized": monitor.last_realized,
            }
            for (model_id, version), monitor in sorted(monitoring.intake.labels.monitors.items())
        ],
        "models_registered": len(monitoring.registry),
        "models_monitored": monitoring.intake.monitor_count,
    }


def _cpu_seconds(monitoring: Monitoring, topic: InputTopic) -> float:
    """The CPU time of the topic's agent so far: its decoding, deciding and encoding."""
    clock = monitoring.work.get(topic)
    return clock.cpu_seconds if clock is not None else 0.0


def delay_quantiles(delays: list[float]) -> dict[str, float]:
    """Median, 90th percentile and largest of some label delays; empty without any."""
    if not delays:
        return {}
    values = np.asarray(delays, dtype=np.float64)
    return {
        "p50": float(np.quantile(values, 0.5)),
        "p90": float(np.quantile(values, 0.9)),
        "max": float(values.max()),
    }


FAUST_INDEX = "faust.web.apps.production_index:blueprint"
"""faust's own index at ``/`` (``{"status": "OK"}``), which the status page replaces."""


def register_status_page(app: Any, monitoring: Monitoring, settings: Settings) -> None:
    """Serve the status page at ``/`` and :func:`status_report` at ``/status`` when the web
    server is on.

    faust mounts its index at ``/`` too, from a blueprint applied when the
    server starts; it is taken off the list first, since a path has one page.
    """
    blueprints = app.web.blueprints
    blueprints._enabled = [entry for entry in blueprints._enabled if entry[1] != FAUST_INDEX]

    @app.page("/", name="status_page")  # type: ignore[untyped-decorator]
    async def page(web: View, request: Request) -> Response:
        refused = refusal(web, request, settings, browser=True)
        if refused is not None:  # a response is a mapping: empty, it is false
            return refused
        lags = input_lags(app, settings.input_topics)
        document = status_page(
            monitoring.history, status_report(monitoring), lags, title=f"driftline: {app.conf.id}"
        )
        return web.html(document)

    @app.page("/status")  # type: ignore[untyped-decorator]
    async def status(web: View, request: Request) -> Response:
        refused = refusal(web, request, settings)
        if refused is not None:  # a response is a mapping: empty, it is false
            return refused
        return web.json(status_report(monitoring))
