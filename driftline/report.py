"""``driftline report``: what the monitor saw, as one self-contained HTML file (and PNGs).

A report is drawn from a :class:`~driftline.agents.history.StatusHistory`,
filled either by a replay (``driftline replay ... --report out.html``: every
subject's statistic over its threshold, batch by batch) or from the alerts,
triggers and performance topics of a running system
(:func:`history_from_outputs`: the statistic at each alert change only, since
nothing else goes on those topics). Per model version it shows:

- every alert change, in order;
- per drift subject, its statistic over its threshold against events, the
  threshold at 1, and the alerts' open and resolve marks;
- for each drifted subject, its reference against its current distribution
  (quantiles for a number, category shares for a category), from the
  latest alert's evidence;
- per performance window, estimated against realized accuracy with the
  estimate's 95 % band, the label coverage and delay, and which windows'
  estimates rest on part of their predictions only.

The HTML has no script and loads nothing: charts are inline SVG
(:mod:`driftline.agents.charts`). PNGs (``--png FOLDER``) are drawn with
matplotlib, from the optional extra ``driftline[report]``.
"""

import re
from collections.abc import Iterable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from driftline.agents.charts import (
    performance_chart,
    pressure_chart,
    quantile_chart,
    shares_chart,
)
from driftline.agents.history import MODEL_SUBJECT, ModelKey, StatusHistory, VersionHistory
from driftline.agents.page import DRIFT_KINDS, STYLE, chart_marks
from driftline.schemas import (
    Alert,
    DriftEvidence,
    PerformanceEvidence,
    PerformanceReport,
    RetrainTrigger,
)

PNG_SIZE_INCHES = (6.4, 2.4)
PNG_DPI = 100
"""PNGs are 640 by 240 pixels."""

MAX_SUBJECT_CHARTS = 24
"""Drift subjects drawn per version: those that alerted, then the closest to alarming."""


class ReportError(RuntimeError):
    """A report cannot be written; the message says what to fix.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     try:
    ...         written = write_pngs(StatusHistory(), Path(folder))
    ...     except ReportError as error:  # matplotlib, of driftline[report], is missing
    ...         print(f"no PNGs: {error}")
    """


def history_from_outputs(
    messages: Iterable[object],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StatusHistory:
    """A history from alerts, triggers and performance reports read back, within a time range.

    Messages are kept when their event time (a report's last event time) is
    in ``[since, until)``. Each drift or performance alert change adds a
    point to its subject's series, at the observation its evidence names,
    with its statistic over its threshold.

    Here a replay's outputs stand for the messages read back from the topics:

    >>> from datetime import UTC
    >>> from driftline.replay import Replay
    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> lines = (event.model_dump_json().encode() for event in events)
    >>> outputs = Replay([simulated_model_spec()]).feed(lines)
    >>> history = history_from_outputs(outputs, since=datetime(2026, 1, 1, 0, 6, tzinfo=UTC))
    >>> [(mark.status.value, mark.subject) for mark in history.versions["demo-model", "1"].marks]
    [('update', 'x'), ('update', '(prediction)'), ('update', '(multivariate)')]
    """
    # One report, once: bounds for a picture, not for a long-lived worker.
    history = StatusHistory(
        max_points=10_000, max_marks=10_000, max_windows=10_000, max_versions=10_000
    )
    for message in messages:
        time = _event_time(message)
        if time is None or (since and time < since) or (until and time >= until):
            continue
        if isinstance(message, Alert):
            evidence = message.evidence
            if isinstance(evidence, DriftEvidence | PerformanceEvidence) and evidence.threshold:
                where = evidence.observations
                version = history.version((message.model_id, message.model_version))
                version.events = max(version.events, where)
                version.last_event_time = max(
                    version.last_event_time or message.event_time, message.event_time
                )
                subject = message.feature or MODEL_SUBJECT
                version.pressure_series(subject).add(where, evidence.statistic / evidence.threshold)
                version.warming_up = False
                history.record_alert(message, events=where)
            else:
                history.record_alert(message)
        else:
            history.record(message)
    return history


def report_html(history: StatusHistory, *, title: str, note: str = "") -> str:
    """The report as one HTML document.

    A replay fills a history batch by batch, as ``driftline replay ... --report`` does:

    >>> from driftline.replay import Replay
    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> history = StatusHistory()
    >>> run = Replay([simulated_model_spec()], history=history, batch_size=250)
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> outputs = list(run.feed(e.model_dump_json().encode() for e in events))
    >>> html = report_html(history, title="demo-model, replayed", note="Simulated traffic.")
    >>> re.search(r'<p class="figures">([^<]*)', html)[1]
    '5,000 events; 4 alerts opened, 0 resolved; 0 retraining triggers'
    """
    sections = [version_report(key, version) for key, version in sorted(history.versions.items())]
    return (
        "<!DOCTYPE html>"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
        + (f'<p class="muted">{escape(note)}</p>' if note else "")
        + ("".join(sections) or '<p class="muted">Nothing to report.</p>')
        + "</body></html>"
    )


def version_report(key: ModelKey, version: VersionHistory) -> str:
    """One model version's part of the report.

    For a page of one's own, one version at a time:

    >>> from driftline.replay import Replay
    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> lines = (event.model_dump_json().encode() for event in events)
    >>> history = history_from_outputs(Replay([simulated_model_spec()]).feed(lines))
    >>> section = version_report(("demo-model", "1"), history.versions["demo-model", "1"])
    >>> section.startswith('<section class="version" data-model="demo-model" data-version="1">')
    True
    """
    model_id, model_version = key
    opened = sum(1 for mark in version.marks if mark.status.value == "open")
    resolved = sum(1 for mark in version.marks if mark.status.value == "resolve")
    return (
        f'<section class="version" data-model="{escape(model_id)}" '
        f'data-version="{escape(model_version)}">'
        f"<h2>{escape(model_id)} version {escape(model_version)}</h2>"
        f'<p class="figures">{version.events:,} events; {opened} alerts opened, '
        f"{resolved} resolved; {len(version.triggers)} retraining triggers</p>"
        f'<h3>Drift: statistic / threshold</h3><div class="charts">{_subject_charts(version)}'
        f"</div>{_distributions(version)}{_performance(version)}{_alert_changes(version)}"
        "</section>"
    )


def drifted(version: VersionHistory) -> list[str]:
    """Subjects with a drift (or uncertainty) alert in the history, in the order they first
    alerted.

    >>> from driftline.replay import Replay
    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> lines = (event.model_dump_json().encode() for event in events)
    >>> history = history_from_outputs(Replay([simulated_model_spec()]).feed(lines))
    >>> drifted(history.versions["demo-model", "1"])
    ['x', '(model)', '(prediction)', '(multivariate)']
    """
    return list(dict.fromkeys(mark.subject for mark in version.marks if mark.kind in DRIFT_KINDS))


def charted_subjects(version: VersionHistory, most: int = MAX_SUBJECT_CHARTS) -> list[str]:
    """The subjects drawn: those that alerted, then the others by peak; at most ``most``.

    >>> from driftline.replay import Replay
    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> lines = (event.model_dump_json().encode() for event in events)
    >>> history = history_from_outputs(Replay([simulated_model_spec()]).feed(lines))
    >>> charted_subjects(history.versions["demo-model", "1"], most=2)
    ['(prediction)', 'x']
    """
    alerted = {mark.subject for mark in version.marks}
    return sorted(
        version.series,
        key=lambda subject: (subject not in alerted, -version.series[subject].peak),
    )[:most]


def _alert_changes(version: VersionHistory) -> str:
    if not version.marks:
        return '<p class="muted">No alerts.</p>'
    rows = [
        f'<tr class="alert {mark.status.value}" data-subject="{escape(mark.subject)}">'
        f"<td>{escape(mark.status.value)}</td><td>{escape(mark.severity)}</td>"
        f"<td>{escape(mark.kind)}</td><td>{escape(mark.subject)}</td>"
        f"<td>{escape(mark.event_time.isoformat())}</td><td>{mark.events:,}</td>"
        f"<td>{escape(mark.summary)}</td></tr>"
        for mark in version.marks
    ]
    return (
        '<h3>Alerts</h3><table class="alerts"><tr><th>change</th><th>severity</th>'
        "<th>kind</th><th>subject</th><th>event time</th><th>at event</th><th>summary</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _subject_charts(version: VersionHistory) -> str:
    figures = []
    changed = set(drifted(version))
    for subject in charted_subjects(version):
        series = version.series[subject]
        chart = pressure_chart(
            series.events, series.pressures, chart_marks(version.marks, subject), title=subject
        )
        flag = " drifted" if subject in changed else ""
        figures.append(
            f'<figure class="subject{flag}" data-subject="{escape(subject)}">{chart}'
            f"<figcaption>{escape(subject)}</figcaption></figure>"
        )
    return "".join(figures) or '<p class="muted">No drift subject yet (warming up).</p>'


def _distributions(version: VersionHistory) -> str:
    figures = []
    for subject in drifted(version):
        evidence = version.drift_evidence.get(subject)
        if evidence is None:
            continue
        chart = _distribution_chart(subject, evidence)
        if chart is None:
            continue
        distances = ", ".join(f"{name} {value:.3g}" for name, value in evidence.distances.items())
        figures.append(
            f'<figure class="distribution" data-subject="{escape(subject)}">{chart}'
            f"<figcaption>{escape(subject)}: reference against current"
            f"{': ' + escape(distances) if distances else ''}</figcaption></figure>"
        )
    if not figures:
        return ""
    return (
        "<h3>Distributions of the drifted subjects</h3>"
        f'<div class="charts">{"".join(figures)}</div>'
    )


def _distribution_chart(subject: str, evidence: DriftEvidence) -> str | None:
    reference, current = evidence.reference, evidence.current
    if reference.quantiles and current.quantiles:
        return quantile_chart(reference.quantiles, current.quantiles, title=f"{subject} quantiles")
    if reference.shares and current.shares:
        return shares_chart(reference.shares, current.shares, title=f"{subject} shares")
    return None


def _performance(version: VersionHistory) -> str:
    reports = sorted(version.windows.values(), key=lambda report: report.window)
    if not reports:
        return ""
    chart = ""
    if any("accuracy" in report.estimated | report.realized for report in reports):
        chart = f'<figure class="performance">{performance_chart(reports)}</figure>'
    rows = [_window_row(report) for report in reports]
    return (
        f"<h3>Performance per window</h3>{chart}"
        '<table class="windows"><tr><th>window</th><th>stage</th><th>predictions</th>'
        "<th>estimated accuracy</th><th>from</th><th>realized accuracy</th>"
        "<th>labelled</th><th>label delay p50 / p90 (s)</th><th>estimation error</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _window_row(report: PerformanceReport) -> str:
    estimated_from = report.estimated_predictions
    partial = report.partially_estimated
    delay = report.label_delay_seconds
    delays = f"{delay['p50']:.0f} / {delay['p90']:.0f}" if "p50" in delay else ""
    return (
        f'<tr class="window{" partial" if partial else ""}">'
        f"<td>{report.window}</td><td>{report.stage.value}</td><td>{report.predictions}</td>"
        f"<td>{_number(report.estimated.get('accuracy'))}</td>"
        f"<td>{estimated_from}{' (partial)' if partial else ''}</td>"
        f"<td>{_number(report.realized.get('accuracy'))}</td>"
        f"<td>{report.labelled} ({report.label_coverage:.0%})</td><td>{delays}</td>"
        f"<td>{_number(report.estimation_error.get('accuracy'))}</td></tr>"
    )


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _event_time(message: object) -> datetime | None:
    if isinstance(message, Alert | RetrainTrigger):
        return message.event_time
    if isinstance(message, PerformanceReport):
        return message.last_event_time
    return None


# PNGs, with matplotlib.


def write_pngs(history: StatusHistory, folder: Path) -> list[Path]:
    """Draw the report's charts as PNGs of :data:`PNG_SIZE_INCHES` at :data:`PNG_DPI` into
    ``folder``; the files written, in order.

    Raises :class:`ReportError` when matplotlib, of the extra ``driftline[report]``, is missing.

    >>> import tempfile
    >>> from driftline.replay import Replay
    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> events = simulated_predictions(5_000, shift_at=3_000, shift=1.0, seed=2)
    >>> lines = (event.model_dump_json().encode() for event in events)
    >>> history = history_from_outputs(Replay([simulated_model_spec()]).feed(lines))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     [path.name for path in write_pngs(history, Path(folder))][:4]
    ['demo-model-1-drift-prediction.png', 'demo-model-1-drift-x.png',
     'demo-model-1-drift-multivariate.png', 'demo-model-1-distribution-x.png']
    """
    pyplot = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for (model_id, model_version), version in sorted(history.versions.items()):
        stem = f"{_slug(model_id)}-{_slug(model_version)}"
        for subject in charted_subjects(version):
            figure = _pressure_figure(pyplot, version, subject)
            written.append(_save(pyplot, figure, folder / f"{stem}-drift-{_slug(subject)}.png"))
        for subject in drifted(version):
            evidence = version.drift_evidence.get(subject)
            figure = None if evidence is None else _distribution_figure(pyplot, subject, evidence)
            if figure is not None:
                path = folder / f"{stem}-distribution-{_slug(subject)}.png"
                written.append(_save(pyplot, figure, path))
        reports = sorted(version.windows.values(), key=lambda report: report.window)
        if any("accuracy" in r.estimated | r.realized for r in reports):
            figure = _performance_figure(pyplot, reports)
            written.append(_save(pyplot, figure, folder / f"{stem}-performance.png"))
    return written


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ReportError(
            "PNGs are drawn with matplotlib: install it with pip install 'driftline[report]'"
        ) from None
    return pyplot


def _pressure_figure(pyplot: Any, version: VersionHistory, subject: str) -> Any:
    series = version.series[subject]
    figure, axes = pyplot.subplots(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI)
    axes.plot(series.events, series.pressures, color="#2563eb", label="statistic / threshold")
    axes.axhline(1.0, color="#dc2626", linestyle="--", linewidth=1, label="threshold")
    for mark in chart_marks(version.marks, subject):
        colour = "#dc2626" if mark.status == "open" else "#16a34a"
        axes.axvline(mark.events, color=colour, linewidth=1)
    axes.set_title(f"{subject}: statistic / threshold", fontsize=9)
    axes.set_xlabel("events", fontsize=8)
    axes.legend(fontsize=7, loc="upper left")
    return figure


def _distribution_figure(pyplot: Any, subject: str, evidence: DriftEvidence) -> Any:
    reference, current = evidence.reference, evidence.current
    figure, axes = pyplot.subplots(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI)
    if reference.quantiles and current.quantiles:
        for name, quantiles, colour in (
            ("reference", reference.quantiles, "#6b7280"),
            ("current", current.quantiles, "#ea580c"),
        ):
            probabilities = sorted(quantiles, key=float)
            axes.plot(
                [float(p) for p in probabilities],
                [quantiles[p] for p in probabilities],
                color=colour,
                label=name,
            )
        axes.set_xlabel("probability", fontsize=8)
    elif reference.shares and current.shares:
        categories = sorted({*reference.shares, *current.shares})[:12]
        positions = range(len(categories))
        axes.bar(
            [p - 0.2 for p in positions],
            [reference.shares.get(c, 0.0) for c in categories],
            width=0.4,
            color="#6b7280",
            label="reference",
        )
        axes.bar(
            [p + 0.2 for p in positions],
            [current.shares.get(c, 0.0) for c in categories],
            width=0.4,
            color="#ea580c",
            label="current",
        )
        axes.set_xticks(list(positions), categories, fontsize=7)
    else:
        pyplot.close(figure)
        return None
    axes.set_title(f"{subject}: reference against current", fontsize=9)
    axes.legend(fontsize=7)
    return figure


def _performance_figure(pyplot: Any, reports: list[PerformanceReport]) -> Any:
    figure, axes = pyplot.subplots(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI)
    estimated = [r for r in reports if "accuracy" in r.estimated]
    if estimated:
        windows = [r.window for r in estimated]
        values = [r.estimated["accuracy"] for r in estimated]
        axes.plot(windows, values, color="#2563eb", marker="o", label="estimated")
        spread = [1.96 * (r.estimated_standard_error or 0.0) for r in estimated]
        axes.fill_between(
            windows,
            [v - s for v, s in zip(values, spread, strict=True)],
            [v + s for v, s in zip(values, spread, strict=True)],
            color="#bfdbfe",
            alpha=0.7,
        )
        partial = [r for r in estimated if r.partially_estimated]
        if partial:
            axes.scatter(
                [r.window for r in partial],
                [r.estimated["accuracy"] for r in partial],
                facecolors="white",
                edgecolors="#2563eb",
                zorder=3,
                label="partial estimate",
            )
    realized = [r for r in reports if "accuracy" in r.realized]
    if realized:
        axes.plot(
            [r.window for r in realized],
            [r.realized["accuracy"] for r in realized],
            color="#111827",
            marker="s",
            linestyle="none",
            label="realized",
        )
    axes.set_title("accuracy per window", fontsize=9)
    axes.set_xlabel("window", fontsize=8)
    axes.legend(fontsize=7)
    return figure


def _save(pyplot: Any, figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=PNG_DPI)
    pyplot.close(figure)
    return path


def _slug(text: str) -> str:
    """A name safe in a file name: ``(prediction)`` becomes ``prediction``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "subject"
