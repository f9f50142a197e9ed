"""What a worker (or a replay) decided lately, kept small enough to draw.

The status page and ``driftline report`` draw the same things: each drift
subject's statistic over its threshold as events go by, the alerts that
opened and resolved on the way, the retraining triggers, and each
performance window's estimated and realized accuracy. :class:`StatusHistory`
keeps them per model version, bounded whatever the stream's length:

- a subject's series holds at most ``max_points`` points
  (:data:`DEFAULT_MAX_POINTS`). When it is full, neighbouring points are
  merged in pairs, each pair into its later event count and its *larger*
  pressure, so the series always spans the whole stream at a coarser step and
  a crossing of the threshold never disappears from it;
- the last ``max_marks`` alert changes (:data:`DEFAULT_MAX_MARKS`), the last
  ``max_triggers`` triggers and the last ``max_windows`` performance windows.

Points are taken after a batch, once a version has moved
:data:`DEFAULT_POINT_EVENTS` events since its last (or has alerted), so
their step is the batch's or a little more. With 50 subjects, about 50 by
240 points and a few hundred marks: well under 1 MB a model version.

>>> from driftline.schemas import PerformanceReport
>>> history = StatusHistory(max_points=4)
>>> for events in range(1, 11):
...     history.record_pressures(("m", "1"), events, {"x": events / 10})
>>> series = history.versions[("m", "1")].series["x"]
>>> series.events, series.pressures
([4, 8, 10], [0.4, 0.8, 1.0])
"""

import base64
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson

from driftline.monitors import ModelMonitor
from driftline.schemas import (
    Alert,
    AlertStatus,
    DeadLetter,
    DriftEvidence,
    KafkaPosition,
    PerformanceEvidence,
    PerformanceReport,
    ReportStage,
    RetrainTrigger,
)

ModelKey = tuple[str, str]

DEFAULT_MAX_POINTS = 240
"""Points kept per drift subject (see the module's docstring)."""
DEFAULT_MAX_MARKS = 200
"""Alert changes kept per model version."""
DEFAULT_MAX_TRIGGERS = 10
"""Retraining triggers kept per model version."""
DEFAULT_MAX_WINDOWS = 60
"""Performance windows kept per model version."""
DEFAULT_POINT_EVENTS = 100
"""Events a version moves, at least, between two points of its series (unless it alerts)."""
MAX_VERSIONS = 200
"""Model versions kept. Past it, new versions are left out (and counted) until a kept one
stops being monitored: evicting an active version for another would let a worker of many
versions lose every series again and again."""

MODEL_SUBJECT = "(model)"
"""The subject of a model-level alert (one with no feature)."""


class PressureSeries:
    """One subject's statistic over its threshold, as events went by (1 is the threshold).

    Each kept point stands for ``stride`` points added (1 at first): the
    last one's event count, and the largest of their pressures. When
    ``max_points`` (rounded down to even) are kept, neighbours merge in pairs
    and the stride doubles, so the points stay evenly spaced. The points
    added since the last kept one show as one more, at the end.
    """

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.max_points = max_points
        self.stride = 1
        self._events: list[int] = []
        self._pressures: list[float] = []
        self._pending: tuple[int, float] | None = None
        self._pending_count = 0

    def add(self, events: int, pressure: float) -> None:
        """Add a point at the version's event count ``events``."""
        if self._pending is not None:
            pressure = max(pressure, self._pending[1])
        self._pending_count += 1
        if self._pending_count < self.stride:
            self._pending = (events, pressure)
            return
        self._pending, self._pending_count = None, 0
        self._events.append(events)
        self._pressures.append(pressure)
        if len(self._events) >= max(2, self.max_points - self.max_points % 2):
            self._events = self._events[1::2]
            self._pressures = [
                max(pair) for pair in zip(self._pressures[::2], self._pressures[1::2], strict=True)
            ]
            self.stride *= 2

    def raise_last(self, pressure: float) -> None:
        """Make the last point at least ``pressure``: the statistic an alarm reached inside a
        batch, which a test that restarts on alarming no longer shows at the batch's end."""
        if self._pending is not None:
            self._pending = (self._pending[0], max(self._pending[1], pressure))
        elif self._pressures:
            self._pressures[-1] = max(self._pressures[-1], pressure)

    @property
    def events(self) -> list[int]:
        """The version's event count at each point."""
        return self._events + ([self._pending[0]] if self._pending is not None else [])

    @property
    def pressures(self) -> list[float]:
        """The largest pressure since the point before, at each point."""
        return self._pressures + ([self._pending[1]] if self._pending is not None else [])

    @property
    def peak(self) -> float:
        """The largest pressure of the series (0 when empty)."""
        return max(self.pressures, default=0.0)


@dataclass(frozen=True, slots=True)
class AlertMark:
    """One alert change, placed at the version's event count when it was sent."""

    alert_id: str
    status: AlertStatus
    subject: str
    kind: str
    severity: str
    events: int
    """The version's event count when the change was sent (the end of its batch)."""
    event_time: datetime
    summary: str
    statistic: float | None
    """The evidence's statistic over its threshold, when it has both."""


@dataclass(slots=True)
class VersionHistory:
    """Everything kept about one model version."""

    max_points: int = DEFAULT_MAX_POINTS
    events: int = 0
    """Events (with features or a prediction) the version's monitor processed."""
    pointed: int = 0
    """The version's events at its last point."""
    warming_up: bool = True
    last_event_time: datetime | None = None
    last_position: KafkaPosition | None = None
    series: dict[str, PressureSeries] = field(default_factory=dict)
    marks: deque[AlertMark] = field(default_factory=lambda: deque(maxlen=DEFAULT_MAX_MARKS))
    open_alerts: dict[str, AlertMark] = field(default_factory=dict)
    """The alerts open now, by id, as last changed."""
    triggers: deque[RetrainTrigger] = field(
        default_factory=lambda: deque(maxlen=DEFAULT_MAX_TRIGGERS)
    )
    windows: dict[int, PerformanceReport] = field(default_factory=dict)
    """The latest report of each recent window (settled replaces closed), by window."""
    dead_letters: dict[str, int] = field(default_factory=dict)
    """Dead letters of events naming this version, by reason."""
    drift_evidence: dict[str, DriftEvidence] = field(default_factory=dict)
    """Each subject's latest drift evidence: its reference and current distributions."""

    def pressure_series(self, subject: str) -> PressureSeries:
        """The subject's series, made empty on first use."""
        series = self.series.get(subject)
        if series is None:
            series = self.series[subject] = PressureSeries(self.max_points)
        return series


class StatusHistory:
    """Bounded recent history per model version, fed once a batch (see the module's docstring).

    ``observe`` takes the monitors after a batch and the messages the batch
    led to; ``record_*`` take one thing at a time (a report read back from
    the output topics has no monitors).
    """

    def __init__(
        self,
        *,
        max_points: int = DEFAULT_MAX_POINTS,
        max_marks: int = DEFAULT_MAX_MARKS,
        max_triggers: int = DEFAULT_MAX_TRIGGERS,
        max_windows: int = DEFAULT_MAX_WINDOWS,
        max_versions: int = MAX_VERSIONS,
        point_events: int = DEFAULT_POINT_EVENTS,
    ) -> None:
        if min(max_points, max_marks, max_triggers, max_windows, max_versions, point_events) < 1:
            raise ValueError("every bound of a status history must be at least 1")
        self.point_events = point_events
        self.max_points = max_points
        self.max_marks = max_marks
        self.max_triggers = max_triggers
        self.max_windows = max_windows
        self.max_versions = max_versions
        self.versions: dict[ModelKey, VersionHistory] = {}
        self.left_out: set[ModelKey] = set()
        """Versions not kept because ``max_versions`` were kept already."""

    def version(self, key: ModelKey) -> VersionHistory:
        """The version's history, made empty on first use; when ``max_versions`` are kept
        already, a history that is kept nowhere (and the version counted as left out)."""
        found = self.versions.get(key)
        if found is None:
            found = VersionHistory(
                max_points=self.max_points,
                marks=deque(maxlen=self.max_marks),
                triggers=deque(maxlen=self.max_triggers),
            )
            if len(self.versions) < self.max_versions:
                self.versions[key] = found
                self.left_out.discard(key)
            else:
                self.left_out.add(key)
        return found

    def forget_all_but(self, keys: Collection[ModelKey]) -> None:
        """Drop the versions not in ``keys`` (no longer monitored), making room for others."""
        for key in [key for key in self.versions if key not in keys]:
            del self.versions[key]
        self.left_out.intersection_update(keys)

    def observe(
        self, monitors: Mapping[ModelKey, ModelMonitor], messages: Iterable[object]
    ) -> None:
        """Take a point for each version whose monitor moved, then keep the batch's messages.

        A version gets a point once it has moved ``point_events`` events since
        its last one, when the batch sent one of its alerts (so the mark and
        the alarm's statistic land on a point), or when its warm-up ends.
        Each point costs about a microsecond a subject (27 µs for a version of
        22 subjects), so a worker of many small models does not take one
        for each model at every small batch.
        """
        sent = list(messages)
        alerted = {(m.model_id, m.model_version) for m in sent if isinstance(m, Alert)}
        if self.left_out or self.versions.keys() - monitors.keys():
            self.forget_all_but(monitors.keys())
        for key, monitor in monitors.items():
            events = monitor.events
            known = self.versions.get(key)
            if known is not None and known.events == events and key not in alerted:
                continue
            history = self.version(key) if known is None else known
            history.events = events
            last = monitor.last_event
            if last is not None:
                history.last_event_time, history.last_position = last
            due = known is None or key in alerted or events - known.pointed >= self.point_events
            if due or history.warming_up != monitor.warming_up:
                history.warming_up = monitor.warming_up
                self.record_pressures(key, events, monitor.pressures)
        for message in sent:
            self.record(message)

    def record_pressures(self, key: ModelKey, events: int, pressures: Mapping[str, float]) -> None:
        """Add a point at ``events`` to each subject's series."""
        history = self.version(key)
        history.events = history.pointed = events
        for subject, pressure in pressures.items():
            history.pressure_series(subject).add(events, pressure)

    def record(self, message: object) -> None:
        """Keep what a sent message says: alerts, triggers, performance reports, and the
        dead letters of the versions kept (:meth:`record_dead_letter`)."""
        if isinstance(message, Alert):
            self.record_alert(message)
        elif isinstance(message, RetrainTrigger):
            self.version((message.model_id, message.model_version)).triggers.append(message)
        elif isinstance(message, PerformanceReport):
            self.record_report(message)
        elif isinstance(message, DeadLetter):
            self.record_dead_letter(message)

    def record_dead_letter(self, dead_letter: DeadLetter) -> None:
        """Count a dead letter by reason for the model version its event names, when that
        version is kept here; others count only in the worker's totals by topic.

        Only the versions already kept: a stream of events for unknown models
        or versions must not push real ones out of the history.
        """
        key = _event_version(dead_letter.original)
        history = self.versions.get(key) if key is not None else None
        if history is not None:
            reason = dead_letter.reason.value
            history.dead_letters[reason] = history.dead_letters.get(reason, 0) + 1

    def record_alert(self, alert: Alert, events: int | None = None) -> AlertMark:
        """Mark an alert change at ``events``: by default the version's events so far (the
        end of the batch that sent it; a test's own observation count starts after its
        warm-up, so it cannot place the mark)."""
        history = self.version((alert.model_id, alert.model_version))
        evidence = alert.evidence
        ratio = None
        if isinstance(evidence, DriftEvidence | PerformanceEvidence) and evidence.threshold:
            ratio = evidence.statistic / evidence.threshold
        if events is None:
            events = history.events
        subject = alert.feature or MODEL_SUBJECT
        series = history.series.get(subject)
        if ratio is not None and series is not None:
            series.raise_last(ratio)
        mark = AlertMark(
            alert_id=alert.alert_id,
            status=alert.status,
            subject=subject,
            kind=alert.kind.value,
            severity=alert.severity.value,
            events=events,
            event_time=alert.event_time,
            summary=alert.summary,
            statistic=ratio,
        )
        history.marks.append(mark)
        if isinstance(evidence, DriftEvidence) and (
            mark.subject in history.drift_evidence or len(history.drift_evidence) < self.max_marks
        ):
            history.drift_evidence[mark.subject] = evidence
        if alert.status is AlertStatus.RESOLVE:
            history.open_alerts.pop(alert.alert_id, None)
        else:
            opened = history.open_alerts.get(alert.alert_id)
            # An update keeps the time the alert opened, for its age.
            kept = mark if opened is None else replace(mark, event_time=opened.event_time)
            history.open_alerts[alert.alert_id] = kept
            if len(history.open_alerts) > self.max_marks:
                del history.open_alerts[next(iter(history.open_alerts))]
        return mark

    def record_report(self, report: PerformanceReport) -> None:
        """Keep a window's latest report; a closed one never replaces a settled one."""
        history = self.version((report.model_id, report.model_version))
        kept = history.windows.get(report.window)
        if kept is not None and kept.stage is ReportStage.SETTLED:
            return
        history.windows[report.window] = report
        while len(history.windows) > self.max_windows:
            del history.windows[min(history.windows)]


def _event_version(original: str | None) -> ModelKey | None:
    """The model version a dead letter's original event names, if it is a JSON object with
    a text ``model_id`` and ``model_version``."""
    if original is None:
        return None
    try:
        event = orjson.loads(base64.b64decode(original, validate=True))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(event, dict):
        return None
    model_id, version = event.get("model_id"), event.get("model_version")
    if isinstance(model_id, str) and isinstance(version, str):
        return model_id, version
    return None
