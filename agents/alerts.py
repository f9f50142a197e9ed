"""Turn what the statistics core found into alert messages for the wire."""

import hashlib
from datetime import datetime

from driftline.monitors.model import FeatureDrift
from driftline.monitors.quality import QualityFinding
from driftline.schemas import Alert, AlertKind, DataQualityEvidence, DriftEvidence, KafkaPosition


def alert_id(kind: AlertKind, model_id: str, model_version: str, *subject: str) -> str:
    """A stable id for one finding: the same stream replayed yields the same id.

    >>> alert_id(AlertKind.DRIFT, "churn", "3", "x", "1024") == alert_id(
    ...     AlertKind.DRIFT, "churn", "3", "x", "1024")
    True
    >>> len(alert_id(AlertKind.DRIFT, "churn", "3", "x", "1024"))
    32
    """
    text = "\x1f".join([kind.value, model_id, model_version, *subject])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def drift_alert(
    model_id: str, model_version: str, drift: FeatureDrift, source: KafkaPosition | None
) -> Alert:
    """The alert for one feature drift, with the detector's evidence."""
    finding = drift.finding
    return Alert(
        alert_id=alert_id(
            AlertKind.DRIFT, model_id, model_version, drift.feature, str(finding.observation)
        ),
        kind=AlertKind.DRIFT,
        model_id=model_id,
        model_version=model_version,
        feature=drift.feature,
        summary=(
            f"{drift.feature}: mean moved from {finding.mean_before:+.3g} to "
            f"{finding.mean_after:+.3g} at observation {finding.change_observation}"
        ),
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


def quality_alert(
    model_id: str,
    model_version: str,
    finding: QualityFinding,
    *,
    event_id: str,
    event_time: datetime,
    source: KafkaPosition | None,
) -> Alert:
    """The alert for one failed data-quality check, with the window's counts."""
    evidence = DataQualityEvidence(
        check=finding.check,
        window=finding.window,
        window_index=finding.window_index,
        observations=finding.observations,
        violations=finding.violations,
        rate=finding.rate,
        tolerated_rate=finding.tolerated_rate,
        threshold=finding.threshold,
        alpha=finding.alpha,
        p_value=finding.p_value,
        examples=list(finding.examples),
    )
    check = finding.check.value.replace("_", " ")
    return Alert(
        alert_id=alert_id(
            AlertKind.DATA_QUALITY,
            model_id,
            model_version,
            finding.feature,
            finding.check.value,
            str(finding.window_index),
        ),
        kind=AlertKind.DATA_QUALITY,
        model_id=model_id,
        model_version=model_version,
        feature=finding.feature,
        summary=(
            f"{finding.feature}: {check} in {finding.violations} of {finding.observations} "
            f"values ({finding.rate:.1%}) of window {finding.window_index}, "
            f"tolerated {finding.tolerated_rate:.1%}"
        ),
        event_id=event_id,
        event_time=event_time,
        evidence=evidence,
        source=source,
    )
