"""Turn what the statistics core found into alert messages for the wire."""

import hashlib

from driftline.monitors.model import FeatureDrift
from driftline.schemas import DriftAlert, DriftEvidence, KafkaPosition


def drift_alert_id(model_id: str, model_version: str, feature: str, observation: int) -> str:
    """A stable id for one drift: the same stream replayed yields the same id.

    >>> drift_alert_id("churn", "3", "x", 1024) == drift_alert_id("churn", "3", "x", 1024)
    True
    >>> len(drift_alert_id("churn", "3", "x", 1024))
    32
    """
    text = "\x1f".join(["drift", model_id, model_version, feature, str(observation)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def drift_alert(
    model_id: str, model_version: str, drift: FeatureDrift, source: KafkaPosition | None
) -> DriftAlert:
    """The alert for one feature drift, with the detector's evidence."""
    finding = drift.finding
    return DriftAlert(
        alert_id=drift_alert_id(model_id, model_version, drift.feature, finding.observation),
        model_id=model_id,
        model_version=model_version,
        feature=drift.feature,
        event_id=drift.event_id,
        event_time=drift.event_time,
        evidence=DriftEvidence(
            detector="adwin",
            delta=finding.delta,
            observations=finding.observation,
            change_observation=finding.change_observation,
            mean_before=finding.mean_before,
            mean_after=finding.mean_after,
            values_before=finding.values_before,
            values_after=finding.values_after,
        ),
        source=source,
    )
