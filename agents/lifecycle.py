"""Alerts in their life: opened, updated and resolved, grouped, cooled down, graded.

The statistics core says when a test alarms, alarms again while a change
goes on, and when a subject is back under its exit threshold (see
:class:`~driftline.monitors.model.ModelMonitor`). :class:`AlertLifecycle`
turns that into the messages a person wants, for one model version:

* one ``open`` alert per change of a subject, under an id derived from the
  change, so a replay yields the same id;
* ``update`` messages while the change goes on, at most one per
  ``spec.alerts.update_every_events``;
* a ``resolve`` message once the subject is back;
* no new ``open`` for a subject within ``spec.alerts.cooldown_events`` of its
  last one, however its statistic flaps (such alarms update the open alert,
  or are counted as suppressed);
* one model-level alert that groups the drift alerts of subjects drifting
  together: opened with the first, updated as others join or resolve,
  resolved with the last;
* a severity, ``critical`` for a large drift (PSI at least
  ``spec.alerts.critical_psi``), a data-quality violation rate many times
  the tolerated one, or a realized fall in performance; else ``warning``.

Time is counted in the version's events, never by a clock.
"""

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftline.agents.alerts import alert_id, drift_alert, quality_alert
from driftline.monitors.findings import Moment
from driftline.monitors.model import DriftFinding, ModelFindings
from driftline.monitors.quality import QualityFinding
from driftline.schemas import (
    Alert,
    AlertKind,
    AlertStatus,
    DriftEvidence,
    GroupEvidence,
    KafkaPosition,
    ModelSpec,
    QualityCheck,
    Severity,
)

log = logging.getLogger(__name__)

MODEL_LEVEL = "(model)"
"""The subject of a model-level alert, in its id."""


@dataclass
class _Life:
    """One subject's latest alert and when it last opened, was updated and alarmed."""

    alert: Alert
    opened_at: int
    updated_at: int
    open: bool = True
    alarmed_at: int | None = None
    restored_at: int | None = None
    """When the alert was read back from saved state (a restart or a rebalance): the
    monitor behind it started afresh, so only a new alarm or enough quiet tells its fate."""

    def to_state(self) -> dict[str, Any]:
        return {
            "alert": self.alert.model_dump_json(),
            "opened_at": self.opened_at,
            "updated_at": self.updated_at,
            "open": self.open,
            "alarmed_at": self.alarmed_at if self.alarmed_at is not None else self.updated_at,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], clock: int) -> "_Life":
        return cls(
            alert=Alert.model_validate_json(state["alert"]),
            opened_at=int(state["opened_at"]),
            updated_at=int(state["updated_at"]),
            open=bool(state["open"]),
            alarmed_at=int(state["alarmed_at"]),
            restored_at=clock,
        )


@dataclass
class _Group:
    """The model-level alert while any of its members is open."""

    alert: Alert
    members: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    open_members: list[str] = field(default_factory=list)
    opened_at: int = 0


QualityAlarming = Callable[[str, QualityCheck], bool]
"""Whether a feature's data-quality check is still alarming (no clean window since)."""


class AlertLifecycle:
    """The alerts of one model version, from its monitor's findings.

    Examples
    --------
    >>> import random
    >>> from datetime import UTC, datetime, timedelta
    >>> from driftline.monitors import ModelMonitor
    >>> from driftline.schemas import FeatureSpec, PredictionEvent
    >>> spec = ModelSpec(model_id="m", model_version="1", task="regression",
    ...                  features=[FeatureSpec(name="x", kind="numeric")],
    ...                  drift={"multivariate": False, "prediction": False})
    >>> monitor, life, rng = ModelMonitor(spec), AlertLifecycle(spec), random.Random(3)
    >>> sent = []
    >>> for i in range(12_000):
    ...     x = rng.gauss(1.0 if 4_000 <= i < 6_000 else 0.0, 1.0)
    ...     event = PredictionEvent(model_id="m", model_version="1", event_id=f"e{i}",
    ...                             event_time=datetime(2026, 1, 1, tzinfo=UTC), features={"x": x})
    ...     alerts = life.update(monitor.update(event), monitor.events, event, None)
    ...     sent += [(a.feature or "(model)", a.status.value, a.event_id) for a in alerts]
    >>> sent  # doctest: +NORMALIZE_WHITESPACE
    [('x', 'open', 'e4039'), ('(model)', 'open', 'e4039'),
     ('x', 'update', 'e5061'), ('x', 'resolve', 'e7976'), ('(model)', 'resolve', 'e7976')]
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.policy = spec.alerts
        self.suppressed: Counter[str] = Counter()
        """Alarms that opened no alert because their subject was cooling down, by subject."""
        self._drifts: dict[str, _Life] = {}
        self._quality: dict[tuple[str, QualityCheck], _Life] = {}
        self._others: dict[tuple[AlertKind, str], _Life] = {}
        self._group: _Group | None = None
        self.clock = 0
        """Events of the version seen by this lifecycle (kept across restarts in its state)."""

    def advance(self, events: int = 1) -> int:
        """Count one more event of the version (or ``events`` more: a summary's); the new
        clock."""
        self.clock += events
        return self.clock

    def update(
        self,
        findings: ModelFindings,
        now: int,
        event: Moment,
        source: KafkaPosition | None,
        quality_alarming: QualityAlarming | None = None,
    ) -> list[Alert]:
        """The alert messages one event's findings lead to; ``now`` is the version's event count."""
        sent: list[Alert] = []
        for finding in findings.drifts:
            sent += self._drift(finding, now, source, repeat=False)
        for finding in findings.repeats:
            sent += self._drift(finding, now, source, repeat=True)
        for resolution in findings.resolved:
            life = self._drifts.get(resolution.subject)
            if life is not None and life.open:
                life.open = False
                sent.append(
                    self._restate(
                        life,
                        AlertStatus.RESOLVE,
                        f"{resolution.subject}: no alarm for "
                        f"{self.policy.resolve_after_events} events, and back under its exit "
                        "threshold",
                        event,
                        source,
                    )
                )
                sent += self._leave_group(life.alert.alert_id, event, source)
        for quality in findings.quality:
            sent += self._data_quality(quality, now, event, source)
        if quality_alarming is not None:
            sent += self._quality_recoveries(quality_alarming, now, event, source)
        sent += self._restored_quiet(now, event, source)
        return sent

    @property
    def watching(self) -> bool:
        """Whether an event without findings may still lead to a message.

        It may while a data-quality alert is open (it resolves when its check
        stops alarming) or a drift alert read back from saved state is open
        (it resolves after enough quiet events); otherwise :meth:`update`
        of an event without findings sends nothing, and a batch can skip it.
        """
        return any(life.open for life in self._quality.values()) or any(
            life.open and life.restored_at is not None for life in self._drifts.values()
        )

    def carry_on(self) -> None:
        """The monitor behind the drift and data-quality alerts read back was restored too.

        It goes on where it was, so its own findings (an alarm, a return under
        its exit threshold, a clean window) decide those alerts, as if there
        had been no restart.
        """
        for life in [*self._drifts.values(), *self._quality.values()]:
            life.restored_at = None

    def not_quiet_until(self, clock: int) -> None:
        """Count no quiet for drift alerts read back before the version's event ``clock``.

        A monitor that starts afresh without a registered reference collects
        a warm-up reference first, and cannot alarm during it: its events say
        nothing about whether the change is still there, so they must not
        resolve the alerts it raised before.
        """
        for life in self._drifts.values():
            if life.restored_at is not None:
                life.restored_at = max(life.restored_at, clock)

    def _restored_quiet(self, now: int, event: Moment, source: KafkaPosition | None) -> list[Alert]:
        """Resolve drift alerts read back from saved state whose subject stayed quiet since."""
        sent: list[Alert] = []
        for subject, life in self._drifts.items():
            if not life.open or life.restored_at is None:
                continue
            last = max(life.alarmed_at or 0, life.restored_at)
            if now - last < self.policy.resolve_after_events:
                continue
            life.open = False
            sent.append(
                self._restate(
                    life,
                    AlertStatus.RESOLVE,
                    f"{subject}: no alarm for {self.policy.resolve_after_events} events",
                    event,
                    source,
                )
            )
            sent += self._leave_group(life.alert.alert_id, event, source)
        return sent

    def other(self, alert: Alert, now: int, subject: str) -> list[Alert]:
        """An alert of another kind (performance): opened unless its subject cools down."""
        key = (alert.kind, subject)
        life = self._others.get(key)
        if life is not None and life.open:
            return []  # the monitor latches; a second open would be a bug upstream
        if life is not None and now - life.opened_at < self.policy.cooldown_events:
            self.suppressed[f"{alert.kind.value}:{subject}"] += 1
            return []
        self._others[key] = _Life(alert, now, now)
        return [alert]

    def resolve_other(
        self,
        kind: AlertKind,
        subject: str,
        *,
        event_id: str,
        event_time: datetime,
        source: KafkaPosition | None,
        summary: str,
    ) -> list[Alert]:
        """The resolve message of an open alert of another kind (performance), if one is open."""
        life = self._others.get((kind, subject))
        if life is None or not life.open:
            return []
        life.open = False
        life.alert = life.alert.model_copy(
            update={
                "status": AlertStatus.RESOLVE,
                "summary": summary,
                "event_id": event_id,
                "event_time": event_time,
                "source": source,
            }
        )
        return [life.alert]

    @property
    def open_alerts(self) -> list[Alert]:
        """The alerts open now (the latest message of each), model-level one first."""
        group = [self._group.alert] if self._group is not None else []
        lives = [*self._drifts.values(), *self._quality.values(), *self._others.values()]
        return group + [life.alert for life in lives if life.open]

    # State as plain data, kept across restarts and rebalances.

    def to_state(self) -> dict[str, Any]:
        """The open alerts, cooldowns and clock, as JSON-ready data."""
        group = self._group
        return {
            "clock": self.clock,
            "drifts": {subject: life.to_state() for subject, life in self._drifts.items()},
            "quality": [
                [feature, check.value, life.to_state()]
                for (feature, check), life in self._quality.items()
            ],
            "others": [
                [kind.value, subject, life.to_state()]
                for (kind, subject), life in self._others.items()
            ],
            "group": None
            if group is None
            else {
                "alert": group.alert.model_dump_json(),
                "members": group.members,
                "subjects": group.subjects,
                "open_members": group.open_members,
                "opened_at": group.opened_at,
            },
            "suppressed": dict(self.suppressed),
        }

    @classmethod
    def from_state(cls, spec: ModelSpec, state: Mapping[str, Any]) -> "AlertLifecycle":
        """The lifecycle :meth:`to_state` described, its alerts marked as read back."""
        life = cls(spec)
        clock = life.clock = int(state["clock"])
        life._drifts = {s: _Life.from_state(v, clock) for s, v in state["drifts"].items()}
        life._quality = {
            (feature, QualityCheck(check)): _Life.from_state(v, clock)
            for feature, check, v in state["quality"]
        }
        life._others = {
            (AlertKind(kind), subject): _Life.from_state(v, clock)
            for kind, subject, v in state["others"]
        }
        group = state["group"]
        if group is not None:
            life._group = _Group(
                alert=Alert.model_validate_json(group["alert"]),
                members=list(group["members"]),
                subjects=list(group["subjects"]),
                open_members=list(group["open_members"]),
                opened_at=int(group["opened_at"]),
            )
        life.suppressed = Counter(state["suppressed"])
        return life

    # Drift.

    def _drift(
        self, finding: DriftFinding, now: int, source: KafkaPosition | None, *, repeat: bool
    ) -> list[Alert]:
        life = self._drifts.get(finding.subject)
        if life is not None and life.open:
            life.alarmed_at, life.restored_at = now, None
            if now - life.updated_at < self.policy.update_every_events:
                return []
            fresh = self._fresh(finding, source)
            life.updated_at = now
            life.alert = fresh.model_copy(
                update={
                    "alert_id": life.alert.alert_id,
                    "status": AlertStatus.UPDATE,
                    "group_id": life.alert.group_id,
                }
            )
            return [life.alert, *self._group_update(life.alert, fresh.event_id, source)]
        if repeat or (life is not None and now - life.opened_at < self.policy.cooldown_events):
            self.suppressed[finding.subject] += 1
            log.info(
                "%s: alarm within the cooldown of its last alert; no new alert", finding.subject
            )
            return []
        fresh = self._fresh(finding, source)
        group = self._group
        opened_group = group is None
        if group is None:
            group = self._group = self._open_group(fresh, now)
        alert = fresh.model_copy(update={"group_id": group.alert.alert_id})
        self._drifts[finding.subject] = _Life(alert, now, now, alarmed_at=now)
        group.members.append(alert.alert_id)
        group.subjects.append(finding.subject)
        group.open_members.append(alert.alert_id)
        status = AlertStatus.OPEN if opened_group else AlertStatus.UPDATE
        return [alert, self._group_message(status, alert.event_id, alert.event_time, source)]

    def _fresh(self, finding: DriftFinding, source: KafkaPosition | None) -> Alert:
        """The alert a drift finding makes, graded (built only when it is to be sent)."""
        spec = self.spec
        fresh = drift_alert(spec.model_id, spec.model_version, finding, source)
        return fresh.model_copy(update={"severity": self._drift_severity(fresh)})

    def _drift_severity(self, alert: Alert) -> Severity:
        evidence = alert.evidence
        if not isinstance(evidence, DriftEvidence):
            return Severity.WARNING
        psi = evidence.distances.get("psi")
        mean, expected = (
            evidence.distances.get("mean_distance"),
            evidence.distances.get("expected_mean"),
        )
        large = (psi is not None and psi >= self.policy.critical_psi) or (
            mean is not None and expected is not None and mean >= 2 * expected
        )
        return Severity.CRITICAL if large else Severity.WARNING

    # The model-level alert.

    def _open_group(self, first: Alert, now: int) -> _Group:
        spec = self.spec
        group_id = alert_id(
            AlertKind.DRIFT, spec.model_id, spec.model_version, MODEL_LEVEL, first.alert_id
        )
        placeholder = first.model_copy(update={"alert_id": group_id, "feature": None})
        return _Group(alert=placeholder, opened_at=now)

    def _group_message(
        self,
        status: AlertStatus,
        event_id: str,
        event_time: datetime,
        source: KafkaPosition | None,
    ) -> Alert:
        group = self._group
        assert group is not None
        members = [
            life.alert for life in self._drifts.values() if life.alert.alert_id in group.members
        ]
        starts = [
            (m.evidence.change_event_time, m.evidence.change_positions)
            for m in members
            if isinstance(m.evidence, DriftEvidence) and m.evidence.change_event_time is not None
        ]
        start_time, start_positions = min(starts, key=lambda s: s[0]) if starts else (None, [])
        severity = (
            Severity.CRITICAL
            if any(
                m.severity is Severity.CRITICAL for m in members if m.alert_id in group.open_members
            )
            else Severity.WARNING
        )
        open_subjects = [
            subject
            for subject, member in zip(group.subjects, group.members, strict=True)
            if member in group.open_members
        ]
        verb = "resolved" if status is AlertStatus.RESOLVE else f"{len(open_subjects)} drifting"
        group.alert = group.alert.model_copy(
            update={
                "status": status,
                "severity": severity,
                "summary": f"{len(group.subjects)} subjects drifted together "
                f"({', '.join(group.subjects)}); {verb}",
                "event_id": event_id,
                "event_time": event_time,
                "evidence": GroupEvidence(
                    members=list(group.members),
                    subjects=list(group.subjects),
                    open_members=list(group.open_members),
                    change_event_time=start_time,
                    change_positions=list(start_positions),
                ),
                "source": source,
                "group_id": None,
            }
        )
        return group.alert

    def _group_update(
        self, member: Alert, event_id: str, source: KafkaPosition | None
    ) -> list[Alert]:
        """Refresh the group's severity when a member's grows; no message otherwise."""
        group = self._group
        if group is None or member.severity is group.alert.severity:
            return []
        if member.severity is not Severity.CRITICAL:
            return []
        return [self._group_message(AlertStatus.UPDATE, event_id, member.event_time, source)]

    def _leave_group(
        self, member_id: str, event: Moment, source: KafkaPosition | None
    ) -> list[Alert]:
        group = self._group
        if group is None or member_id not in group.open_members:
            return []
        group.open_members.remove(member_id)
        if group.open_members:
            return [
                self._group_message(AlertStatus.UPDATE, event.event_id, event.event_time, source)
            ]
        message = self._group_message(AlertStatus.RESOLVE, event.event_id, event.event_time, source)
        self._group = None
        return [message]

    # Data quality.

    def _data_quality(
        self,
        finding: QualityFinding,
        now: int,
        event: Moment,
        source: KafkaPosition | None,
    ) -> list[Alert]:
        spec = self.spec
        key = (finding.feature, finding.check)
        fresh = quality_alert(
            spec.model_id,
            spec.model_version,
            finding,
            event_id=event.event_id,
            event_time=event.event_time,
            source=source,
        )
        critical = finding.rate >= self.policy.critical_rate_ratio * finding.tolerated_rate
        fresh = fresh.model_copy(
            update={"severity": Severity.CRITICAL if critical else Severity.WARNING}
        )
        life = self._quality.get(key)
        if life is not None and life.open:
            life.updated_at, life.restored_at = now, None
            life.alert = fresh.model_copy(
                update={"alert_id": life.alert.alert_id, "status": AlertStatus.UPDATE}
            )
            return [life.alert]
        if life is not None and now - life.opened_at < self.policy.cooldown_events:
            self.suppressed[f"{finding.feature}:{finding.check.value}"] += 1
            return []
        self._quality[key] = _Life(fresh, now, now)
        return [fresh]

    def _quality_recoveries(
        self,
        alarming: QualityAlarming,
        now: int,
        event: Moment,
        source: KafkaPosition | None,
    ) -> list[Alert]:
        sent = []
        for (feature, check), life in self._quality.items():
            if life.restored_at is not None and now - life.restored_at <= self.spec.quality_window:
                continue  # a fresh check must see a whole window before it can say it is clean
            if life.open and not alarming(feature, check):
                life.open = False
                sent.append(
                    self._restate(
                        life,
                        AlertStatus.RESOLVE,
                        f"{feature}: {check.value.replace('_', ' ')} back within the tolerated "
                        "rate for a whole window",
                        event,
                        source,
                    )
                )
        return sent

    def _restate(
        self,
        life: _Life,
        status: AlertStatus,
        summary: str,
        event: Moment,
        source: KafkaPosition | None,
    ) -> Alert:
        life.alert = life.alert.model_copy(
            update={
                "status": status,
                "summary": summary,
                "event_id": event.event_id,
                "event_time": event.event_time,
                "source": source,
            }
        )
        return life.alert
