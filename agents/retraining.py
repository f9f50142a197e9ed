"""Retraining triggers: one per change, with the evidence and where to start training.

:class:`RetrainDecider` watches one model version's alerts as
:class:`~driftline.agents.lifecycle.AlertLifecycle` sends them, and
decides, by the spec's :class:`~driftline.schemas.RetrainPolicy`, when the
version should be retrained:

* a model-level drift alert still open ``drift_sustained_events`` after it
  opened (a passing blip is no reason to retrain);
* a realized-performance alert (``on_performance``), an estimated one
  (``on_estimated_performance``) or a critical data-quality one
  (``on_data_quality``), as soon as it opens.

A trigger carries its reasons with their evidence, a training window from
the earliest estimated change on (event time and Kafka positions), and an
idempotency key derived from the model, version and the alert that started
the change: a replay, or another worker seeing the same change, yields the
same key, and a consumer acts once per key. After a trigger the version
sends none for ``cooldown_events``. Time is counted in the version's events.
"""

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftline.schemas import (
    Alert,
    AlertKind,
    AlertStatus,
    DataQualityEvidence,
    DriftEvidence,
    GroupEvidence,
    KafkaPosition,
    ModelSpec,
    PerformanceEvidence,
    RetrainTrigger,
    Severity,
    TrainingWindow,
    TriggerReason,
)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


class RetrainDecider:
    """Decides when one model version should be retrained, from its alerts."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.policy = spec.retraining
        self._group: Alert | None = None
        self._group_opened_at = 0
        self._members: dict[str, Alert] = {}
        self._last_trigger_at: int | None = None
        self._triggered_for: set[str] = set()

    @property
    def due_at(self) -> int | None:
        """The clock from which time alone may lead to a trigger; None: no time will.

        Before it, :meth:`observe` of no alerts returns nothing and changes
        nothing, so a caller may skip it for a quiet event; only new alerts
        move it. A model-level drift alert stays open through a long drift,
        but it is due once: when it has lasted ``drift_sustained_events``,
        and not within ``cooldown_events`` of the last trigger. After its
        trigger it is due no more.

        >>> from driftline.schemas import ModelSpec
        >>> spec = ModelSpec(model_id="m", model_version="1", task="regression", features=[])
        >>> RetrainDecider(spec).due_at is None
        True
        """
        group = self._group
        if group is None or not self.policy.enabled or group.alert_id in self._triggered_for:
            return None
        due = self._group_opened_at + self.policy.drift_sustained_events
        if self._last_trigger_at is not None:
            due = max(due, self._last_trigger_at + self.policy.cooldown_events)
        return due

    def observe(self, alerts: list[Alert], now: int) -> list[RetrainTrigger]:
        """Take the alerts just sent; the triggers they (and the time passed) lead to."""
        triggers: list[RetrainTrigger] = []
        for alert in alerts:
            if alert.kind is AlertKind.DRIFT and isinstance(alert.evidence, GroupEvidence):
                if alert.status is AlertStatus.OPEN:
                    self._group, self._group_opened_at = alert, now
                elif alert.status is AlertStatus.RESOLVE:
                    self._group = None
                elif self._group is not None:
                    self._group = alert
            elif alert.group_id is not None:
                self._members[alert.alert_id] = alert
            elif alert.status is AlertStatus.OPEN and self._immediate(alert):
                triggers += self._trigger([alert], alert, now)
        return triggers + self.tick(now)

    def tick(self, now: int) -> list[RetrainTrigger]:
        """Triggers due by time alone: a model-level drift sustained long enough."""
        group = self._group
        if group is None or now - self._group_opened_at < self.policy.drift_sustained_events:
            return []
        evidence = group.evidence
        assert isinstance(evidence, GroupEvidence)
        members = [self._members[m] for m in evidence.members if m in self._members]
        return self._trigger([group, *members], group, now)

    def to_state(self) -> dict[str, Any]:
        """What the decider remembers, as JSON-ready data."""
        return {
            "group": None if self._group is None else self._group.model_dump_json(),
            "group_opened_at": self._group_opened_at,
            "members": {key: alert.model_dump_json() for key, alert in self._members.items()},
            "last_trigger_at": self._last_trigger_at,
            "triggered_for": sorted(self._triggered_for),
        }

    @classmethod
    def from_state(cls, spec: ModelSpec, state: Mapping[str, Any]) -> "RetrainDecider":
        """The decider :meth:`to_state` described."""
        decider = cls(spec)
        group = state["group"]
        decider._group = None if group is None else Alert.model_validate_json(group)
        decider._group_opened_at = int(state["group_opened_at"])
        decider._members = {k: Alert.model_validate_json(v) for k, v in state["members"].items()}
        last = state["last_trigger_at"]
        decider._last_trigger_at = None if last is None else int(last)
        decider._triggered_for = set(state["triggered_for"])
        return decider

    def _immediate(self, alert: Alert) -> bool:
        policy = self.policy
        if alert.kind is AlertKind.PERFORMANCE:
            return policy.on_performance
        if alert.kind is AlertKind.ESTIMATED_PERFORMANCE:
            return policy.on_estimated_performance
        if alert.kind is AlertKind.DATA_QUALITY:
            return policy.on_data_quality and alert.severity is Severity.CRITICAL
        return False

    def _trigger(self, reasons: list[Alert], cause: Alert, now: int) -> list[RetrainTrigger]:
        if not self.policy.enabled or cause.alert_id in self._triggered_for:
            return []
        last = self._last_trigger_at
        if last is not None and now - last < self.policy.cooldown_events:
            return []
        self._triggered_for.add(cause.alert_id)
        self._last_trigger_at = now
        spec = self.spec
        key = _digest("retrain", spec.model_id, spec.model_version, cause.alert_id)
        return [
            RetrainTrigger(
                trigger_id=_digest("trigger", key),
                idempotency_key=key,
                model_id=spec.model_id,
                model_version=spec.model_version,
                event_time=cause.event_time,
                reasons=[
                    TriggerReason(
                        kind=alert.kind,
                        alert_id=alert.alert_id,
                        summary=alert.summary,
                        evidence=alert.evidence,
                    )
                    for alert in reasons
                ],
                training_window=training_window(reasons),
            )
        ]


def training_window(alerts: list[Alert]) -> TrainingWindow | None:
    """From the earliest estimated change among the alerts on, with its Kafka positions.

    Per partition, the earliest change position any alert gives.
    """
    times: list[datetime] = []
    positions: dict[tuple[str, int], KafkaPosition] = {}
    for alert in alerts:
        evidence = alert.evidence
        if isinstance(evidence, DriftEvidence | GroupEvidence | PerformanceEvidence):
            if evidence.change_event_time is not None:
                times.append(evidence.change_event_time)
            for position in evidence.change_positions:
                where = (position.topic, position.partition)
                if where not in positions or position.offset < positions[where].offset:
                    positions[where] = position
        elif isinstance(evidence, DataQualityEvidence):
            times.append(alert.event_time)
    if not times:
        return None
    return TrainingWindow(
        start_event_time=min(times),
        start_positions=sorted(positions.values(), key=lambda p: (p.topic, p.partition)),
    )
