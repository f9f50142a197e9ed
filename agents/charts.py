"""Small charts as inline SVG, drawn on the server: no script, no font, no network.

The status page and ``driftline report`` embed these strings as they are,
so both work on a machine with no internet and need no build step. Each
chart is a few hundred bytes to a few KB. Elements carry classes a test (or
a style sheet) can find: ``threshold`` for the line at 1, ``mark open`` and
``mark resolve`` for alert changes, ``partial`` for a performance window
whose estimate covers only part of its predictions.

>>> svg = pressure_chart([10, 20, 30], [0.2, 0.6, 1.4], [], title="x")
>>> svg.startswith("<svg") and 'class="threshold"' in svg and 'data-crossed="true"' in svg
True
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from driftline.schemas import PerformanceReport

WIDTH = 420
HEIGHT = 140
MARGIN_LEFT = 40
MARGIN_RIGHT = 10
MARGIN_TOP = 18
MARGIN_BOTTOM = 22

COLOURS = {
    "series": "#2563eb",
    "threshold": "#dc2626",
    "open": "#dc2626",
    "update": "#f59e0b",
    "resolve": "#16a34a",
    "reference": "#6b7280",
    "current": "#ea580c",
    "band": "#bfdbfe",
    "realized": "#111827",
}


@dataclass(frozen=True, slots=True)
class Mark:
    """An alert change to draw on a chart, at ``events``."""

    events: int
    status: str
    """``open``, ``update`` or ``resolve``."""
    label: str


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps data to the drawing area of one chart."""

    x_low: float
    x_high: float
    y_low: float
    y_high: float
    width: int = WIDTH
    height: int = HEIGHT

    def x(self, value: float) -> float:
        span = (self.x_high - self.x_low) or 1.0
        inner = self.width - MARGIN_LEFT - MARGIN_RIGHT
        return round(MARGIN_LEFT + (value - self.x_low) / span * inner, 1)

    def y(self, value: float) -> float:
        span = (self.y_high - self.y_low) or 1.0
        inner = self.height - MARGIN_TOP - MARGIN_BOTTOM
        clipped = min(max(value, self.y_low), self.y_high)
        return round(self.height - MARGIN_BOTTOM - (clipped - self.y_low) / span * inner, 1)


def pressure_chart(
    events: Sequence[int],
    pressures: Sequence[float],
    marks: Sequence[Mark],
    *,
    title: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """A subject's statistic ÷ threshold over events, the threshold at 1, alert changes marked.

    The scale goes a little past the larger of 1.25 and the series' peak (at
    most 10: a drift far past its threshold is drawn flat at the top, and
    its peak is written in the title).
    """
    peak = max(pressures, default=0.0)
    top = min(max(1.25, peak * 1.1), 10.0)
    first = min([*events[:1], *(mark.events for mark in marks)], default=0)
    last = max([*events[-1:], *(mark.events for mark in marks)], default=1)
    frame = _Frame(first, max(last, first + 1), 0.0, top, width, height)
    crossed = any(pressure >= 1.0 for pressure in pressures)
    parts = [
        _open_svg("pressure", title, width, height, {"data-crossed": str(crossed).lower()}),
        _title(f"{title}: peak {peak:.2f}x the threshold"),
        _axes(frame, f"{first:,}", f"{last:,} events", "0", f"{top:.2g}"),
        _line(frame, first, 1.0, last, 1.0, "threshold", COLOURS["threshold"], dash=True),
    ]
    if events:
        parts.append(_polyline(frame, events, pressures, "series", COLOURS["series"]))
    for mark in marks:
        colour = COLOURS.get(mark.status, COLOURS["update"])
        x = frame.x(mark.events)
        parts.append(
            f'<line class="mark {escape(mark.status)}" x1="{x}" y1="{MARGIN_TOP}" x2="{x}" '
            f'y2="{height - MARGIN_BOTTOM}" stroke="{colour}" stroke-width="1.5">'
            f"<title>{escape(mark.label)}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


def performance_chart(
    reports: Sequence[PerformanceReport],
    *,
    metric: str = "accuracy",
    title: str = "accuracy per window",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Estimated against realized ``metric`` per window, with the estimate's 95 % band.

    A window whose estimate rests on only some of its predictions (the
    others came before calibration was ready) is drawn hollow, class
    ``partial``; a window with no estimate has no estimated point.
    """
    windows = sorted(reports, key=lambda report: report.window)
    values = [
        value
        for report in windows
        for value in (report.estimated.get(metric), report.realized.get(metric))
        if value is not None
    ]
    low = min(values, default=0.0)
    high = max(values, default=1.0)
    pad = max((high - low) * 0.15, 0.02)
    first = windows[0].window if windows else 0
    last = windows[-1].window if windows else 1
    frame = _Frame(first, max(last, first + 1), low - pad, high + pad, width, height)
    parts = [
        _open_svg("performance", title, width, height, {}),
        _title(title),
        _axes(frame, f"window {first}", f"window {last}", f"{low - pad:.3g}", f"{high + pad:.3g}"),
    ]
    estimated = [(r.window, r.estimated[metric], r) for r in windows if metric in r.estimated]
    band = [
        (window, value, 1.96 * report.estimated_standard_error)
        for window, value, report in estimated
        if report.estimated_standard_error is not None and metric == "accuracy"
    ]
    if len(band) > 1:
        upper = [f"{frame.x(w)},{frame.y(v + s)}" for w, v, s in band]
        lower = [f"{frame.x(w)},{frame.y(v - s)}" for w, v, s in reversed(band)]
        parts.append(
            f'<polygon class="band" points="{" ".join(upper + lower)}" '
            f'fill="{COLOURS["band"]}" opacity="0.7"/>'
        )
    if estimated:
        parts.append(
            _polyline(
                frame,
                [w for w, _, _ in estimated],
                [v for _, v, _ in estimated],
                "estimated",
                COLOURS["series"],
            )
        )
    for window, value, report in estimated:
        partial = report.partially_estimated
        parts.append(
            _dot(
                frame,
                window,
                value,
                "estimated partial" if partial else "estimated",
                COLOURS["series"],
                hollow=partial,
                label=_window_label(report, metric),
            )
        )
    for report in windows:
        realized = report.realized.get(metric)
        if realized is not None:
            parts.append(
                _dot(
                    frame,
                    report.window,
                    realized,
                    "realized",
                    COLOURS["realized"],
                    hollow=False,
                    label=_window_label(report, metric),
                    square=True,
                )
            )
    parts.append(
        _legend([("estimated", COLOURS["series"]), ("realized", COLOURS["realized"])], width)
    )
    parts.append("</svg>")
    return "".join(parts)


def quantile_chart(
    reference: Mapping[str, float],
    current: Mapping[str, float],
    *,
    title: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """Reference and current quantiles (by probability), one line each."""
    probabilities = sorted({*reference, *current}, key=float)
    values = [*reference.values(), *current.values()]
    finite = [v for v in values if math.isfinite(v)]
    low, high = min(finite, default=0.0), max(finite, default=1.0)
    pad = max((high - low) * 0.05, 1e-9)
    frame = _Frame(0.0, 1.0, low - pad, high + pad, width, height)
    parts = [
        _open_svg("quantiles", title, width, height, {}),
        _title(title),
        _axes(frame, "p 0", "p 1", f"{low:.3g}", f"{high:.3g}"),
    ]
    for name, quantiles in (("reference", reference), ("current", current)):
        points = [(float(p), quantiles[p]) for p in probabilities if p in quantiles]
        points = [(p, v) for p, v in points if math.isfinite(v)]
        if points:
            parts.append(
                _polyline(
                    frame, [p for p, _ in points], [v for _, v in points], name, COLOURS[name]
                )
            )
    parts.append(
        _legend([("reference", COLOURS["reference"]), ("current", COLOURS["current"])], width)
    )
    parts.append("</svg>")
    return "".join(parts)


def shares_chart(
    reference: Mapping[str, float],
    current: Mapping[str, float],
    *,
    title: str,
    width: int = WIDTH,
    most: int = 8,
) -> str:
    """Each category's share in the reference and now, side by side (the ``most`` largest)."""
    categories = sorted(
        {*reference, *current},
        key=lambda c: -max(reference.get(c, 0.0), current.get(c, 0.0)),
    )[:most]
    row = 18
    height = MARGIN_TOP + row * len(categories) + MARGIN_BOTTOM
    inner = width - 2 * MARGIN_LEFT - MARGIN_RIGHT
    parts = [_open_svg("shares", title, width, height, {}), _title(title)]
    for index, category in enumerate(categories):
        y = MARGIN_TOP + index * row
        parts.append(
            f'<text x="{2 * MARGIN_LEFT - 4}" y="{y + 12}" font-size="10" '
            f'text-anchor="end">{escape(category[:14])}</text>'
        )
        for offset, (name, shares) in enumerate((("reference", reference), ("current", current))):
            share = shares.get(category, 0.0)
            parts.append(
                f'<rect class="{name}" x="{2 * MARGIN_LEFT}" y="{y + 2 + offset * 7}" '
                f'width="{round(share * inner, 1)}" height="6" fill="{COLOURS[name]}">'
                f"<title>{escape(category)} {name} {share:.1%}</title></rect>"
            )
    parts.append(
        _legend([("reference", COLOURS["reference"]), ("current", COLOURS["current"])], width)
    )
    parts.append("</svg>")
    return "".join(parts)


def _window_label(report: PerformanceReport, metric: str) -> str:
    estimated = report.estimated.get(metric)
    realized = report.realized.get(metric)
    parts = [f"window {report.window} ({report.stage.value}): {report.predictions} predictions"]
    if estimated is not None:
        parts.append(f"estimated {estimated:.3f} from {report.estimated_predictions}")
    if realized is not None:
        parts.append(f"realized {realized:.3f} from {report.labelled}")
    return ", ".join(parts)


def _open_svg(kind: str, title: str, width: int, height: int, data: Mapping[str, str]) -> str:
    attributes = "".join(f' {name}="{escape(value)}"' for name, value in data.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" '
        f'data-subject="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"{attributes}>'
    )


def _title(text: str) -> str:
    return f'<text x="{MARGIN_LEFT}" y="12" font-size="11" font-weight="bold">{escape(text)}</text>'


def _axes(frame: _Frame, x_low: str, x_high: str, y_low: str, y_high: str) -> str:
    bottom = frame.height - MARGIN_BOTTOM
    right = frame.width - MARGIN_RIGHT
    return (
        f'<g class="axes" stroke="#9ca3af" font-size="9" fill="#374151">'
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{bottom}"/>'
        f'<line x1="{MARGIN_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
        f'<text stroke="none" x="{MARGIN_LEFT}" y="{bottom + 14}">{escape(x_low)}</text>'
        f'<text stroke="none" x="{right}" y="{bottom + 14}" text-anchor="end">'
        f"{escape(x_high)}</text>"
        f'<text stroke="none" x="{MARGIN_LEFT - 3}" y="{bottom}" text-anchor="end">'
        f"{escape(y_low)}</text>"
        f'<text stroke="none" x="{MARGIN_LEFT - 3}" y="{MARGIN_TOP + 8}" text-anchor="end">'
        f"{escape(y_high)}</text></g>"
    )


def _line(
    frame: _Frame,
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    kind: str,
    colour: str,
    *,
    dash: bool = False,
) -> str:
    dashes = ' stroke-dasharray="4 3"' if dash else ""
    return (
        f'<line class="{kind}" x1="{frame.x(x1)}" y1="{frame.y(y1)}" x2="{frame.x(x2)}" '
        f'y2="{frame.y(y2)}" stroke="{colour}" stroke-width="1.2"{dashes}/>'
    )


def _polyline(
    frame: _Frame, xs: Sequence[float], ys: Sequence[float], kind: str, colour: str
) -> str:
    points = " ".join(f"{frame.x(x)},{frame.y(y)}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<polyline class="{kind}" points="{points}" fill="none" stroke="{colour}" '
        f'stroke-width="1.5"/>'
    )


def _dot(
    frame: _Frame,
    x: float,
    y: float,
    kind: str,
    colour: str,
    *,
    hollow: bool,
    label: str,
    square: bool = False,
) -> str:
    fill = "white" if hollow else colour
    cx, cy = frame.x(x), frame.y(y)
    tip = f"<title>{escape(label)}</title>"
    if square:
        return (
            f'<rect class="{kind}" x="{cx - 2.5}" y="{cy - 2.5}" width="5" height="5" '
            f'fill="{fill}" stroke="{colour}">{tip}</rect>'
        )
    return (
        f'<circle class="{kind}" cx="{cx}" cy="{cy}" r="3" fill="{fill}" stroke="{colour}">'
        f"{tip}</circle>"
    )


def _legend(entries: Sequence[tuple[str, str]], width: int) -> str:
    parts = []
    x = width - MARGIN_RIGHT - 80 * len(entries)
    for index, (name, colour) in enumerate(entries):
        left = x + 80 * index
        parts.append(
            f'<rect x="{left}" y="4" width="8" height="8" fill="{colour}"/>'
            f'<text x="{left + 11}" y="12" font-size="9">{escape(name)}</text>'
        )
    return f'<g class="legend">{"".join(parts)}</g>'
