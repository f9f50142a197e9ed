"""Prometheus metrics of a worker, read from its counters and monitors at each scrape.

``GET /metrics`` (with ``DRIFTLINE_WEB_ENABLED``) answers in Prometheus's
text format. Nothing is counted twice: the collector reads the same counts
the status page shows, when Prometheus asks, so the figures always agree.
"""

from collections.abc import Iterator
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from driftline.agents.health import refusal
from driftline.agents.intake import InputTopic
from driftline.agents.status import delay_quantiles
from driftline.agents.wiring import Monitoring
from driftline.streams.settings import Settings


class WorkerCollector(Collector):
    """The worker's counts per topic, alerts by kind, and per model version performance."""

    def __init__(self, monitoring: Monitoring) -> None:
        self.monitoring = monitoring

    def collect(self) -> Iterator[Metric]:
        intake = self.monitoring.intake
        outcomes = {
            "consumed": CounterMetricFamily(
                "driftline_messages_consumed",
                "Messages consumed, by input topic.",
                labels=["topic"],
            ),
            "processed": CounterMetricFamily(
                "driftline_messages_processed",
                "Messages processed, by input topic.",
                labels=["topic"],
            ),
            "duplicates": CounterMetricFamily(
                "driftline_messages_duplicate",
                "Repeated event ids skipped, by topic.",
                labels=["topic"],
            ),
        }
        dead = CounterMetricFamily(
            "driftline_messages_dead_lettered",
            "Messages dead-lettered, by input topic and reason.",
            labels=["topic", "reason"],
        )
        waiting = GaugeMetricFamily(
            "driftline_labels_waiting", "Labels waiting in the join for their prediction."
        )
        for topic, counts in intake.counters.topics.items():
            for name, family in outcomes.items():
                family.add_metric([topic.value], getattr(counts, name))
            for reason, count in sorted(counts.dead_letter_reasons.items()):
                dead.add_metric([topic.value, reason], count)
        waiting.add_metric([], intake.counters.topics[InputTopic.LABELS].waiting)
        yield from outcomes.values()
        yield dead
        yield waiting
        alerts = CounterMetricFamily("driftline_alerts", "Alerts raised, by kind.", labels=["kind"])
        for kind, count in sorted(intake.counters.alerts.items()):
            alerts.add_metric([kind], count)
        yield alerts
        yield from self._performance()

    def _performance(self) -> Iterator[Metric]:
        labels = ["model_id", "model_version"]
        predictions = CounterMetricFamily(
            "driftline_predictions", "Predictions counted for performance.", labels=labels
        )
        labelled = CounterMetricFamily(
            "driftline_predictions_labelled", "Predictions whose label landed.", labels=labels
        )
        coverage = GaugeMetricFamily(
            "driftline_label_coverage", "Share of predictions labelled so far.", labels=labels
        )
        delay = GaugeMetricFamily(
            "driftline_label_delay_seconds",
            "Event-time delay of the latest 1,000 labels, by quantile.",
            labels=[*labels, "quantile"],
        )
        estimated = GaugeMetricFamily(
            "driftline_estimated_accuracy",
            "Accuracy estimated from probabilities over the last closed window.",
            labels=labels,
        )
        realized = GaugeMetricFamily(
            "driftline_realized_performance",
            "Realized metrics over the last settled window.",
            labels=[*labels, "metric"],
        )
        for (model_id, version), monitor in sorted(self.monitoring.intake.labels.monitors.items()):
            key = [model_id, version]
            predictions.add_metric(key, monitor.predictions)
            labelled.add_metric(key, monitor.labelled_predictions)
            coverage.add_metric(key, monitor.label_coverage)
            for quantile, value in delay_quantiles(monitor.label_delays).items():
                delay.add_metric([*key, quantile], value)
            if "accuracy" in monitor.last_estimate:
                estimated.add_metric(key, monitor.last_estimate["accuracy"])
            for metric, value in sorted(monitor.last_realized.items()):
                realized.add_metric([*key, metric], value)
        yield from (predictions, labelled, coverage, delay, estimated, realized)


def register_metrics_page(
    app: Any, monitoring: Monitoring, settings: Settings
) -> CollectorRegistry:
    """Serve the worker's metrics at ``/metrics``; returns the registry they live in."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WorkerCollector(monitoring))

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics(web: View, request: Request) -> Response:
        refused = refusal(web, request, settings)
        if refused is not None:  # a response is a mapping: empty, it is false
            return refused
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    return registry
