"""Turn what the statistics core found into alert messages for the wire."""

import hashlib
from datetime import datetime

from driftline.monitors.model import UNCERTAINTY, DriftFinding
from driftline.monitors.performance import PerformanceFinding
from driftline.monitors.quality import QualityFinding
from driftline.schemas import (
    Alert,
    AlertKind,
    DataQualityEvidence,
    DriftEvidence,
    KafkaPosition,
    PerformanceBasis,
    PerformanceEvidence,
    Severity,
)


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
    model_id: str, model_version: str, drift: DriftFinding, source: KafkaPosition | None
) -> Alert:
    """The alert for one drift, with the test's evidence and where the change began."""
    alarm = drift.alarm
    subject = drift.subject
    kind = AlertKind.UNCERTAINTY if subject == UNCERTAINTY else AlertKind.DRIFT
    evidence = DriftEvidence(
        test=alarm.test,
        direction=alarm.direction,
        statistic=alarm.statistic,
        threshold=alarm.threshold,
        expected_events_between_false_alarms=alarm.arl,
        observations=alarm.observation,
        change_observation=alarm.change_observation,
        change_event_time=drift.change_event_time,
        change_positions=[] if drift.change_position is None else [drift.change_position],
        reference=drift.reference,
        current=drift.current,
        distances=drift.distances,
    )
    since = f" since {drift.change_event_time.isoformat()}" if drift.change_event_time else ""
    return Alert(
        alert_id=alert_id(kind, model_id, model_version, subject, str(alarm.change_observation)),
        kind=kind,
        model_id=model_id,
        model_version=model_version,
        feature=subject,
        summary=(
            f"{subject}: {alarm.test} {alarm.direction}{since} "
            f"(statistic {alarm.statistic:.1f} over threshold {alarm.threshold:.1f}; "
            f"{_moved(drift)})"
        ),
        event_id=drift.event_id,
        event_time=drift.event_time,
        evidence=evidence,
        source=source,
    )


def _moved(drift: DriftFinding) -> str:
    """The move in words: the median for numbers, the shares for categories."""
    before, after = drift.reference, drift.current
    if before.quantiles and after.quantiles and "0.5" in before.quantiles:
        return f"median {before.quantiles['0.5']:.3g} -> {after.quantiles.get('0.5', 0.0):.3g}"
    if before.shares and after.shares:
        old, new = before.shares, after.shares
        moved = max(new, key=lambda c: abs(new[c] - old.get(c, 0.0)))
        return f"share of {moved} {old.get(moved, 0.0):.1%} -> {new[moved]:.1%}"
    return f"{after.count} values since the change"


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


def performance_alert(
    model_id: str, model_version: str, finding: PerformanceFinding, source: KafkaPosition | None
) -> Alert:
    """The alert for a fall in performance: realized on labels, or estimated before them.

    A realized fall is critical (labels confirm it); an estimated one is a
    warning that labels have yet to confirm.
    """
    realized = finding.basis is PerformanceBasis.REALIZED
    kind = AlertKind.PERFORMANCE if realized else AlertKind.ESTIMATED_PERFORMANCE
    evidence = PerformanceEvidence(
        basis=finding.basis,
        metric=finding.metric,
        reference=finding.reference,
        current=finding.current,
        test=finding.test,
        statistic=finding.statistic,
        threshold=finding.threshold,
        expected_events_between_false_alarms=finding.arl,
        observations=finding.observations,
        change_observation=finding.change_observation,
        change_event_time=finding.change_event_time,
        change_positions=[] if finding.change_position is None else [finding.change_position],
    )
    since = f" since {finding.change_event_time.isoformat()}" if finding.change_event_time else ""
    if realized:
        what = (
            f"{finding.metric.replace('_', ' ')} {finding.reference:.3g} -> "
            f"{finding.current:.3g}{since} on labels ({finding.test} "
            f"{finding.statistic:.1f} over {finding.threshold:.1f})"
        )
        # The alarm's number, not its change point: a worker that goes on from an earlier
        # saved state (the second stage of a model keyed by event id, whose summaries it may
        # take in another order) raises the same alarm under the same id.
        anchor = str(finding.change_observation) if finding.alarm is None else f"#{finding.alarm}"
    else:
        what = (
            f"estimated {finding.metric} {finding.current:.1%} in window {finding.window}, "
            f"under the floor {finding.threshold:.1%} (reference {finding.reference:.1%}); "
            "labels have yet to confirm it"
        )
        anchor = str(finding.window)
    return Alert(
        alert_id=alert_id(kind, model_id, model_version, finding.metric, anchor),
        kind=kind,
        severity=Severity.CRITICAL if realized else Severity.WARNING,
        model_id=model_id,
        model_version=model_version,
        summary=f"performance: {what}",
        event_id=finding.event_id,
        event_time=finding.event_time,
        evidence=evidence,
        source=source,
    )
