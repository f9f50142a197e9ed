"""Sample objects for tests that need one drift or one alert, built one way."""

from datetime import UTC, datetime

from driftline.agents.alerts import drift_alert
from driftline.monitors.drift import DriftFinding
from driftline.monitors.model import FeatureDrift
from driftline.schemas import Alert, KafkaPosition


def a_feature_drift(feature: str = "x", observation: int = 100) -> FeatureDrift:
    """Feature ``feature`` moved from mean 0.1 to 2.9; the change began 30 values back."""
    return FeatureDrift(
        feature=feature,
        event_id=f"e-{observation}",
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        finding=DriftFinding(
            observation=observation,
            change_observation=observation - 29,
            mean_before=0.1,
            mean_after=2.9,
            values_before=226,
            values_after=30,
            delta=0.002,
        ),
    )


def an_alert(source: KafkaPosition | None = None) -> Alert:
    """The alert of :func:`a_feature_drift` for model ``m`` version ``1``."""
    return drift_alert("m", "1", a_feature_drift(), source)
