"""The worker's status page: what became of every message it consumed.

``GET /status`` on the worker's web server (``DRIFTLINE_WEB_ENABLED``, bound
to 127.0.0.1 by default) answers with JSON counts per input topic, so an
operator, or a test, can check that every consumed message was processed,
dead-lettered or counted as a duplicate.
"""

from typing import Any

from faust.web import Request, Response, View

from driftline.agents.wiring import Monitoring


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
                "dead_letter_reasons": dict(sorted(counts.dead_letter_reasons.items())),
            }
            for topic, counts in counters.topics.items()
        },
        "alerts": dict(sorted(counters.alerts.items())),
        "labels_matched": counters.labels_matched,
        "models_registered": len(monitoring.registry),
        "models_monitored": monitoring.intake.monitor_count,
    }


def register_status_page(app: Any, monitoring: Monitoring) -> None:
    """Serve :func:`status_report` at ``/status`` when the web server is on."""

    @app.page("/status")  # type: ignore[untyped-decorator]
    async def status(web: View, request: Request) -> Response:
        return web.json(status_report(monitoring))
