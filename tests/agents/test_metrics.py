"""The Prometheus page reads the intake's own counts and the performance monitors."""

from datetime import timedelta
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.agents import metrics
from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.metrics import WorkerCollector
from driftline.agents.registry import ModelRegistry, Registration
from driftline.schemas import AlertKind, KafkaPosition, LabelEvent, Severity
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.busy import AgentClock, LoopTime
from driftline.streams.settings import Settings


def scrape(
    intake: Intake, work: dict[InputTopic, AgentClock] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    monitoring = SimpleNamespace(intake=intake, work=work or {})
    registry.register(WorkerCollector(monitoring))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counts_coverage_and_delays_match_what_the_intake_saw():
    registry = ModelRegistry()
    spec = simulated_model_spec()
    registry.apply(Registration(spec))
    intake = Intake(Settings(), registry)
    events = list(simulated_predictions(10, shift_at=100))
    for offset, event in enumerate(events):
        source = KafkaPosition(topic="predictions", partition=0, offset=offset)
        intake.handle(
            InputMessage(InputTopic.PREDICTIONS, event.model_dump_json().encode(), b"k", source)
        )
    for offset, event in enumerate(events[:4]):
        label = LabelEvent(
            model_id=event.model_id,
            event_id=f"l{offset}",
            prediction_id=event.event_id,
            event_time=event.event_time + timedelta(seconds=10 * offset),
            label=0.0,
        )
        source = KafkaPosition(topic="labels", partition=0, offset=offset)
        intake.handle(
            InputMessage(InputTopic.LABELS, label.model_dump_json().encode(), b"k", source)
        )
    intake.handle(InputMessage(InputTopic.LABELS, b"{", b"k", source))

    samples = scrape(intake)
    model = (("model_id", spec.model_id), ("model_version", spec.model_version))
    assert samples[("driftline_messages_consumed_total", (("topic", "predictions"),))] == 10
    assert samples[("driftline_messages_consumed_total", (("topic", "labels"),))] == 5
    reason = (("reason", "invalid_json"), ("topic", "labels"))
    assert samples[("driftline_messages_dead_lettered_total", reason)] == 1
    assert samples[("driftline_predictions_total", model)] == 10
    assert samples[("driftline_predictions_labelled_total", model)] == 4
    assert samples[("driftline_label_coverage", model)] == 0.4
    assert samples[("driftline_label_delay_seconds", (*model, ("quantile", "max")))] == 30.0


def test_each_agents_cpu_time_is_exported_by_topic():
    loop = LoopTime()
    work = {InputTopic.PREDICTIONS: loop.clock(), InputTopic.SUMMARIES: loop.clock()}
    with work[InputTopic.PREDICTIONS]:
        sum(range(200_000))
    samples = scrape(Intake(Settings(), ModelRegistry()), work)
    first = samples[("driftline_agent_cpu_seconds_total", (("topic", "predictions"),))]
    assert first == work[InputTopic.PREDICTIONS].cpu_seconds > 0
    assert samples[("driftline_agent_cpu_seconds_total", (("topic", "summaries"),))] == 0


def performance_of(realized: dict[str, float], estimated: dict[str, float]) -> Intake:
    """An intake whose one performance monitor last found these figures."""
    monitor = SimpleNamespace(
        predictions=5,
        labelled_predictions=5,
        label_coverage=1.0,
        label_delays=[],
        last_estimate=estimated,
        last_realized=realized,
    )
    intake = Intake(Settings(), ModelRegistry())
    intake.labels.monitors[("m", "1")] = monitor  # type: ignore[assignment]
    return intake


def scrape_performance(intake: Intake) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(SimpleNamespace(intake=intake, work={})))  # type: ignore[arg-type]
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {
        sample.name: sample.value
        for family in families
        if family.name.startswith(("driftline_realized", "driftline_estimated"))
        for sample in family.samples
        if sample.labels == {"model_id": "m", "model_version": "1"}
    }


def test_each_realized_metric_is_a_metric_of_its_own_named_by_its_unit():
    realized = {"accuracy": 0.9, "f1": 0.8, "log_loss": 0.3, "precision": 0.7, "recall": 0.6}
    classifier = performance_of(realized, {"accuracy": 0.85})
    assert scrape_performance(classifier) == {
        "driftline_estimated_accuracy_ratio": 0.85,
        "driftline_realized_accuracy_ratio": 0.9,
        "driftline_realized_f1_ratio": 0.8,
        "driftline_realized_log_loss_nats": 0.3,
        "driftline_realized_precision_ratio": 0.7,
        "driftline_realized_recall_ratio": 0.6,
    }
    regressor = performance_of({"mae": 1.5, "rmse": 2.5}, {})
    assert scrape_performance(regressor) == {
        "driftline_realized_mae": 1.5,
        "driftline_realized_rmse": 2.5,
    }


def test_open_alerts_and_each_subjects_pressure_are_read_from_the_intake():
    registry = ModelRegistry()
    spec = simulated_model_spec()
    registry.apply(Registration(spec))
    intake = Intake(Settings(), registry)
    for offset, event in enumerate(simulated_predictions(4_000, shift_at=2_000, seed=4)):
        source = KafkaPosition(topic="predictions", partition=0, offset=offset)
        intake.handle(
            InputMessage(InputTopic.PREDICTIONS, event.model_dump_json().encode(), b"k", source)
        )
    samples = scrape(intake)
    [lifecycle] = intake.books.lifecycles()
    opened = {
        dict(labels)["kind"] + "/" + dict(labels)["severity"]: value
        for (name, labels), value in samples.items()
        if name == "driftline_open_alerts"
    }
    assert len(opened) == len(AlertKind) * len(Severity)  # every pair, zeros too
    assert sum(opened.values()) == len(lifecycle.open_alerts) > 0
    for alert in lifecycle.open_alerts:
        assert opened[f"{alert.kind.value}/{alert.severity.value}"] >= 1
    monitor = intake.monitors[(spec.model_id, spec.model_version)]
    model = (("model_id", spec.model_id), ("model_version", spec.model_version))
    pressures = {
        dict(labels)["subject"]: value
        for (name, labels), value in samples.items()
        if name == "driftline_drift_pressure_ratio" and labels[:1] == model[:1]
    }
    assert pressures == monitor.pressures
    assert set(pressures) == set(monitor.drift_subjects)
    assert all(value >= 0.0 for value in pressures.values())


def test_the_pressures_are_capped_per_version_the_models_own_subjects_first(monkeypatch):
    registry = ModelRegistry()
    spec = simulated_model_spec()
    registry.apply(Registration(spec))
    intake = Intake(Settings(), registry)
    for offset, event in enumerate(simulated_predictions(2_100, shift_at=10**9, seed=4)):
        source = KafkaPosition(topic="predictions", partition=0, offset=offset)
        intake.handle(
            InputMessage(InputTopic.PREDICTIONS, event.model_dump_json().encode(), b"k", source)
        )
    subjects = intake.monitors[(spec.model_id, spec.model_version)].drift_subjects
    own = [subject for subject in subjects if subject.startswith("(")]
    assert 0 < len(own) < len(subjects)
    monkeypatch.setattr(metrics, "PRESSURE_SUBJECTS_PER_VERSION", len(own) + 1)
    exported = [
        dict(labels)["subject"]
        for (name, labels) in scrape(intake)
        if name == "driftline_drift_pressure_ratio"
    ]
    first_feature = next(subject for subject in subjects if not subject.startswith("("))
    assert sorted(exported) == sorted([*own, first_feature])
