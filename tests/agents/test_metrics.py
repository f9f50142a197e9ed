"""The Prometheus page reads the intake's own counts and the performance monitors."""

from datetime import timedelta
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.metrics import WorkerCollector
from driftline.agents.registry import ModelRegistry, Registration
from driftline.schemas import KafkaPosition, LabelEvent
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings


def scrape(intake: Intake) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(WorkerCollector(SimpleNamespace(intake=intake)))  # type: ignore[arg-type]
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
