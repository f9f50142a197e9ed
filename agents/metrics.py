"""Prometheus metrics of a worker, read from its counters and monitors at each scrape.

``GET /metrics`` (with ``DRIFTLINE_WEB_ENABLED``) answers in Prometheus's
text format. Nothing is counted twice: the collector reads the same counts
the status page shows, when Prometheus asks, so the figures always agree.
"""

import importlib.metadata
import platform
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from faust.web import Request, Response, View
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from driftline.agents.health import refusal
from driftline.agents.intake import InputTopic
from driftline.agents.progress import input_lags
from driftline.agents.status import delay_quantiles
from driftline.agents.wiring import Monitoring
from driftline.schemas import AlertKind, Severity
from driftline.streams.settings import Settings


class WorkerCollector(Collector):
    """The worker's counts per topic, alerts by kind, per model version performance, and the
    lag of its input partitions."""

    def __init__(self, monitoring: Monitoring, app: Any = None, topics: Iterable[str] = ()) -> None:
        self.monitoring = monitoring
        self.app = app
        """The faust app whose consumer gives the lag of ``topics`` (none without one)."""
        self.topics = frozenset(topics)

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
        cpu = CounterMetricFamily(
            "driftline_agent_cpu_seconds",
            "CPU time of each input topic's agent: decoding, monitoring and encoding its "
            "outputs (for a model keyed by event id, predictions are its first stage and "
            "summaries its second).",
            labels=["topic"],
        )
        for topic, clock in self.monitoring.work.items():
            cpu.add_metric([topic.value], clock.cpu_seconds)
        yield from outcomes.values()
        yield dead
        yield waiting
        yield cpu
        alerts = CounterMetricFamily("driftline_alerts", "Alerts raised, by kind.", labels=["kind"])
        for kind, count in sorted(intake.counters.alerts.items()):
            alerts.add_metric([kind], count)
        yield alerts
        yield from self._open_alerts()
        yield from self._pressures()
        yield from self._performance()
        yield from self._lag()

    def _open_alerts(self) -> Iterator[Metric]:
        """Open alerts by kind and severity, every pair given (0 for none): alert rules
        then find the series before the first alert."""
        opened = GaugeMetricFamily(
            "driftline_open_alerts",
            "Alerts open now, by kind and severity (model-level drift alerts included).",
            labels=["kind", "severity"],
        )
        counts = Counter(
            (alert.kind.value, alert.severity.value)
            for lifecycle in self.monitoring.intake.books.lifecycles()
            for alert in lifecycle.open_alerts
        )
        for kind in AlertKind:
            for severity in Severity:
                opened.add_metric([kind.value, severity.value], counts[kind.value, severity.value])
        yield opened

    def _pressures(self) -> Iterator[Metric]:
        pressure = GaugeMetricFamily(
            "driftline_drift_pressure_ratio",
            "How close each drift subject's tests are to alarming: the largest statistic over "
            f"its threshold (1 alarms). The first {PRESSURE_SUBJECTS_PER_VERSION} subjects of "
            "each model version.",
            labels=["model_id", "model_version", "subject"],
        )
        for (model_id, version), monitor in sorted(self.monitoring.intake.monitors.items()):
            pressures = monitor.pressures
            # The model's own subjects ("(prediction)", "(multivariate)", ...) first.
            subjects = sorted(pressures, key=lambda name: not name.startswith("("))
            for subject in subjects[:PRESSURE_SUBJECTS_PER_VERSION]:
                pressure.add_metric([model_id, version, subject], pressures[subject])
        yield pressure

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
            "driftline_estimated_accuracy_ratio",
            "Accuracy estimated from probabilities over the last closed window.",
            labels=labels,
        )
        realized: dict[str, GaugeMetricFamily] = {}
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
                family = realized.get(metric)
                if family is None:
                    name, help_text = REALIZED_METRICS.get(
                        metric, (f"driftline_realized_{metric}", f"Realized {metric}.")
                    )
                    family = realized[metric] = GaugeMetricFamily(
                        name, f"{help_text} Over the last settled window.", labels=labels
                    )
                family.add_metric(key, value)
        yield from (predictions, labelled, coverage, delay, estimated)
        yield from (realized[metric] for metric in sorted(realized))

    def _lag(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "driftline_consumer_lag_messages",
            "Messages of an assigned input partition not yet taken by its agent: on the "
            "broker past what was read, and fetched but waiting.",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in input_lags(self.app, self.topics).items():
            lag.add_metric([topic, str(partition)], behind)
        yield lag


PRESSURE_SUBJECTS_PER_VERSION = 50
"""The most drift subjects of a model version whose pressure is exported: the model's own
(the prediction, its uncertainty, the features together), then the features in the spec's
order. A bound on the series a model with thousands of features would make."""

REALIZED_METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("driftline_realized_accuracy_ratio", "Share of predictions that were right."),
    "precision": ("driftline_realized_precision_ratio", "Precision (macro for many classes)."),
    "recall": ("driftline_realized_recall_ratio", "Recall (macro for many classes)."),
    "f1": ("driftline_realized_f1_ratio", "F1 score (macro for many classes)."),
    "log_loss": ("driftline_realized_log_loss_nats", "Mean log loss, in nats."),
    "mae": ("driftline_realized_mae", "Mean absolute error, in the target's own unit."),
    "rmse": ("driftline_realized_rmse", "Root mean squared error, in the target's own unit."),
}
"""Each realized metric as a metric of its own: one unit to a name, as Prometheus has it."""


def build_info() -> dict[str, str]:
    """The versions a worker runs: driftline's, Python's and its Kafka stack's."""
    return {
        "version": _version("driftline"),
        "python": platform.python_version(),
        "faust": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
    }


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def worker_registry(monitoring: Monitoring, app: Any, settings: Settings) -> CollectorRegistry:
    """Every metric a worker serves: its own collector, batch times, the process, build info.

    ``app`` (None in a test) gives the consumer for the lag.
    """
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WorkerCollector(monitoring, app, settings.input_topics))
    registry.register(monitoring.batch_seconds)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info("driftline_build", "The versions this worker runs.", registry=registry).info(build_info())
    return registry


def register_metrics_page(
    app: Any, monitoring: Monitoring, settings: Settings
) -> CollectorRegistry:
    """Serve the worker's metrics at ``/metrics``; returns the registry they live in."""
    registry = worker_registry(monitoring, app, settings)

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def metrics(web: View, request: Request) -> Response:
        refused = refusal(web, request, settings)
        if refused is not None:  # a response is a mapping: empty, it is false
            return refused
        return web.bytes(generate_latest(registry), content_type="text/plain; version=0.0.4")

    return registry
