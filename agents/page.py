"""The worker's status page as HTML: one self-contained document, charts inline.

``GET /`` serves it (see :mod:`driftline.agents.status`). It reloads itself
every ten seconds with a ``<meta>`` refresh, so it needs no script, and it
loads nothing from anywhere: styles and charts (:mod:`driftline.agents.charts`)
are in the document.

Per model version it shows the events processed, the dead letters of events
naming it (by reason), the last event's time and partition with that
partition's lag, open alerts (severity, kind, subject,
age in event time: from the event that opened the alert to the version's
last event), the recent retraining triggers, a chart per drift subject
(drifted ones first, class ``drifted``) and, for a classifier with
performance windows, estimated against realized accuracy. The worker's
counts per input topic, dead letters by reason, head the page.
"""

from collections.abc import Mapping, Sequence
from datetime import timedelta
from html import escape
from typing import Any

from driftline.agents.charts import Mark, performance_chart, pressure_chart
from driftline.agents.history import AlertMark, ModelKey, StatusHistory, VersionHistory

MAX_CHARTS_PER_VERSION = 12
"""Drift subjects drawn per version: those with open alerts, then the closest to alarming."""

REFRESH_SECONDS = 10

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #111827; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 0.2em 0.6em; text-align: left; }
.badge { border-radius: 0.3em; padding: 0 0.4em; font-size: 0.8em; color: white; }
.badge.drifted, .badge.critical { background: #dc2626; }
.badge.warning { background: #f59e0b; } .badge.info { background: #2563eb; }
.badge.warming { background: #6b7280; }
.charts { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; border: 1px solid #e5e7eb; padding: 0.3em; }
figure.drifted { border-color: #dc2626; }
figcaption { font-size: 0.8em; }
.muted { color: #6b7280; font-size: 0.85em; }
"""


def status_page(
    history: StatusHistory,
    report: Mapping[str, Any],
    lags: Mapping[tuple[str, int], int],
    *,
    title: str = "driftline worker",
    refresh: bool = True,
) -> str:
    """The whole page: ``report`` is :func:`~driftline.agents.status.status_report`'s,
    ``lags`` each input partition's messages not yet taken, by (topic, partition)."""
    head = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if refresh else ""
    versions = [
        version_section(key, version, lags) for key, version in sorted(history.versions.items())
    ]
    return (
        "<!DOCTYPE html>"
        f'<html lang="en"><head><meta charset="utf-8">{head}'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"{topics_table(report)}"
        + ("".join(versions) or '<p class="muted">No model version has events yet.</p>')
        + _left_out(history)
        + "</body></html>"
    )


def topics_table(report: Mapping[str, Any]) -> str:
    """Per input topic: consumed, processed, dead-lettered (by reason), duplicates, waiting."""
    rows = []
    for topic, counts in report.get("topics", {}).items():
        reasons = ", ".join(f"{n} {r}" for r, n in counts.get("dead_letter_reasons", {}).items())
        rows.append(
            f"<tr><td>{escape(topic)}</td><td>{counts['consumed']:,}</td>"
            f"<td>{counts['processed']:,}</td><td>{counts['dead_lettered']:,}</td>"
            f"<td>{escape(reasons)}</td><td>{counts['duplicates']:,}</td>"
            f"<td>{counts['waiting']:,}</td></tr>"
        )
    return (
        '<table class="topics"><tr><th>input topic</th><th>consumed</th><th>processed</th>'
        "<th>dead letters</th><th>by reason</th><th>duplicates</th><th>waiting</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def version_section(
    key: ModelKey, version: VersionHistory, lags: Mapping[tuple[str, int], int]
) -> str:
    """One model version: its figures, open alerts, triggers and charts."""
    model_id, model_version = key
    position = version.last_position
    where = ""
    if position is not None:
        lag = lags.get((position.topic, position.partition))
        where = f", partition {position.partition} of {escape(position.topic)}" + (
            f", lag {lag:,}" if lag is not None else ""
        )
    last = version.last_event_time.isoformat() if version.last_event_time else "none yet"
    refused = ", ".join(f"{n:,} {reason}" for reason, n in sorted(version.dead_letters.items()))
    dead = f"; dead letters: {escape(refused)}" if refused else "; no dead letters"
    warming = ' <span class="badge warming">warming up</span>' if version.warming_up else ""
    return (
        f'<section class="version" data-model="{escape(model_id)}" '
        f'data-version="{escape(model_version)}">'
        f"<h2>{escape(model_id)} version {escape(model_version)}{warming}</h2>"
        f'<p class="figures">{version.events:,} events{dead}; last event at {escape(last)}'
        f"{where}</p>"
        f"{alerts_table(version)}{triggers_list(version)}"
        f'<div class="charts">{"".join(subject_figures(version))}'
        f"{performance_figure(version)}</div></section>"
    )


def alerts_table(version: VersionHistory) -> str:
    """The version's open alerts, most severe first."""
    if not version.open_alerts:
        return '<p class="muted">No open alerts.</p>'
    order = {"critical": 0, "warning": 1, "info": 2}
    rows = []
    for mark in sorted(version.open_alerts.values(), key=lambda m: order.get(m.severity, 3)):
        rows.append(
            f'<tr class="alert open" data-subject="{escape(mark.subject)}">'
            f'<td><span class="badge {escape(mark.severity)}">{escape(mark.severity)}</span></td>'
            f"<td>{escape(mark.kind)}</td><td>{escape(mark.subject)}</td>"
            f"<td>{escape(_age(version, mark))}</td><td>{escape(mark.summary)}</td></tr>"
        )
    return (
        '<table class="alerts"><tr><th>severity</th><th>kind</th><th>subject</th>'
        "<th>open for (event time)</th><th>summary</th></tr>" + "".join(rows) + "</table>"
    )


def triggers_list(version: VersionHistory) -> str:
    """The version's recent retraining triggers, newest first."""
    if not version.triggers:
        return ""
    items = []
    for trigger in reversed(version.triggers):
        reasons = "; ".join(reason.summary for reason in trigger.reasons)
        start = trigger.training_window.start_event_time if trigger.training_window else None
        since = f", retrain on data from {start.isoformat()}" if start else ""
        items.append(
            f'<li class="trigger">{escape(trigger.event_time.isoformat())}: '
            f"{escape(reasons)}{escape(since)}</li>"
        )
    return f'<h3>Retraining triggers</h3><ul class="triggers">{"".join(items)}</ul>'


DRIFT_KINDS = frozenset({"drift", "uncertainty"})
"""Alert kinds about a drift subject's distribution (uncertainty is the model's sureness)."""


def drifted_subjects(version: VersionHistory) -> set[str]:
    """Subjects with an open drift (or uncertainty) alert."""
    return {mark.subject for mark in version.open_alerts.values() if mark.kind in DRIFT_KINDS}


def subject_figures(version: VersionHistory, most: int = MAX_CHARTS_PER_VERSION) -> list[str]:
    """A chart per drift subject, drifted ones first, then by peak; at most ``most``."""
    drifted = drifted_subjects(version)
    alerted = {mark.subject for mark in version.marks}
    chosen = sorted(
        version.series.items(),
        key=lambda item: (item[0] not in drifted, item[0] not in alerted, -item[1].peak),
    )
    figures = []
    for subject, series in chosen[:most]:
        marks = chart_marks(version.marks, subject)
        flag = subject in drifted
        badge = ' <span class="badge drifted">drifted</span>' if flag else ""
        figures.append(
            f'<figure class="subject{" drifted" if flag else ""}" '
            f'data-subject="{escape(subject)}">'
            f"{pressure_chart(series.events, series.pressures, marks, title=subject)}"
            f"<figcaption>{escape(subject)}: statistic / threshold{badge}</figcaption></figure>"
        )
    if len(chosen) > most:
        figures.append(f'<p class="muted">{len(chosen) - most} more subjects, all quieter.</p>')
    return figures


def chart_marks(marks: Sequence[AlertMark], subject: str) -> list[Mark]:
    """The alert opens and resolves of one subject, as chart marks (updates left out)."""
    return [
        Mark(mark.events, mark.status.value, f"{mark.status.value}: {mark.summary}")
        for mark in marks
        if mark.subject == subject and mark.status.value != "update"
    ]


def performance_figure(version: VersionHistory) -> str:
    """Estimated against realized accuracy per window, when the version has any."""
    reports = [r for r in version.windows.values() if "accuracy" in r.estimated | r.realized]
    if not reports:
        return ""
    partial = sum(1 for r in reports if r.partially_estimated)
    note = f"; hollow: {partial} partly estimated" if partial else ""
    return (
        '<figure class="performance">'
        f"{performance_chart(reports)}"
        f"<figcaption>estimated (band: 95 %) against realized accuracy{note}</figcaption>"
        "</figure>"
    )


def _age(version: VersionHistory, mark: AlertMark) -> str:
    """How long the alert has been open, in event time."""
    if version.last_event_time is None:
        return ""
    age = max(version.last_event_time - mark.event_time, timedelta(0))
    seconds = int(age.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _left_out(history: StatusHistory) -> str:
    """A line on the model versions monitored but not kept for the page, if any."""
    if not history.left_out:
        return ""
    return (
        f'<p class="muted left-out">{len(history.left_out):,} more model versions are monitored '
        f"but not drawn: the page keeps {history.max_versions:,}.</p>"
    )
