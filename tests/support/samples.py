"""Sample objects for tests that need one drift or one alert, built one way."""

from datetime import UTC, datetime
from pathlib import Path

from driftline.agents.alerts import drift_alert
from driftline.monitors.feature_drift import DriftAlarm
from driftline.monitors.model import DriftFinding
from driftline.schemas import Alert, DistributionSummary, KafkaPosition, LabelEvent
from driftline.simulate import simulated_classifier_traffic

TIME = datetime(2026, 1, 1, tzinfo=UTC)

LABEL_DOCUMENT = {
    "model_id": "churn",
    "event_id": "l-1",
    "prediction_id": "e-1",
    "event_time": "2026-01-02T00:00:00Z",
    "label": "leaves",
}
"""A valid label event as JSON data: model churn's prediction e-1 turned out "leaves"."""


def a_feature_drift(feature: str = "x", observation: int = 100) -> DriftFinding:
    """Feature ``feature``'s median moved from 0.1 to 2.9; the change began 30 values back."""
    return DriftFinding(
        subject=feature,
        alarm=DriftAlarm(
            test="location_cusum",
            direction="up",
            statistic=16.2,
            threshold=15.1,
            arl=4e6,
            observation=observation,
            change_observation=observation - 29,
            current=tuple(2.9 for _ in range(30)),
        ),
        event_id=f"e-{observation}",
        event_time=TIME,
        change_event_time=TIME,
        change_position=KafkaPosition(topic="p", partition=3, offset=observation - 30),
        evidence=(
            DistributionSummary(count=2000, quantiles={"0.5": 0.1}),
            DistributionSummary(count=30, quantiles={"0.5": 2.9}),
            {"ks": 0.9},
        ),
    )


def an_alert(source: KafkaPosition | None = None) -> Alert:
    """The alert of :func:`a_feature_drift` for model ``m`` version ``1``."""
    return drift_alert("m", "1", a_feature_drift(), source)


CLASSIFIER_EVENTS, CLASSIFIER_SHIFT_AT = 8_000, 5_000
"""The simulated classifier's traffic in tests: its feature x drifts at event 5,000."""


def write_classifier_traffic(folder: Path, *, seed: int = 3) -> tuple[Path, Path]:
    """The simulated classifier's predictions and labels, as two JSON Lines files."""
    events, labels = folder / "events.jsonl", folder / "labels.jsonl"
    traffic = simulated_classifier_traffic(
        CLASSIFIER_EVENTS, shift_at=CLASSIFIER_SHIFT_AT, seed=seed
    )
    with events.open("w") as predictions, labels.open("w") as truths:
        for event in traffic:
            out = truths if isinstance(event, LabelEvent) else predictions
            out.write(event.model_dump_json() + "\n")
    return events, labels
