"""Inline SVG charts: well-formed, the threshold where 1 is, marks and partial windows shown."""

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from driftline.agents.charts import (
    Mark,
    performance_chart,
    pressure_chart,
    quantile_chart,
    shares_chart,
)
from driftline.schemas import PerformanceReport

SVG = "{http://www.w3.org/2000/svg}"


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def of_class(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def test_the_threshold_line_sits_at_one_and_the_series_crosses_it():
    svg = pressure_chart(
        [100, 200, 300, 400],
        [0.2, 0.5, 1.5, 0.3],
        [Mark(300, "open", "opened"), Mark(400, "resolve", "resolved")],
        title="x <&> y",
    )
    root = parsed(svg)  # escaped titles keep it well-formed
    assert root.get("data-crossed") == "true"
    [threshold] = of_class(root, "threshold")
    [series] = of_class(root, "series")
    points = [tuple(map(float, p.split(","))) for p in series.get("points", "").split()]
    peak_y = min(y for _, y in points)  # SVG's y grows downwards
    assert peak_y < float(threshold.get("y1", "nan")) < max(y for _, y in points)
    [opened] = of_class(root, "open")
    [resolved] = of_class(root, "resolve")
    assert float(opened.get("x1", "nan")) == points[2][0]
    assert float(resolved.get("x1", "nan")) == points[3][0]


def test_a_quiet_series_is_not_marked_crossed():
    root = parsed(pressure_chart([1, 2], [0.1, 0.99], [], title="y"))
    assert root.get("data-crossed") == "false"


@given(st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=0, max_size=50))
def test_any_series_draws_a_well_formed_chart_inside_its_box(pressures):
    events = list(range(1, len(pressures) + 1))
    root = parsed(pressure_chart(events, pressures, [], title="z"))
    for line in of_class(root, "series"):
        for point in line.get("points", "").split():
            x, y = map(float, point.split(","))
            assert 0 <= x <= float(root.get("width", "0"))
            assert 0 <= y <= float(root.get("height", "0"))


def window(index: int, estimated: float, realized: float, estimated_from: int) -> PerformanceReport:
    time = datetime(2026, 1, 1, tzinfo=UTC)
    return PerformanceReport(
        report_id=f"r{index}",
        model_id="m",
        model_version="1",
        window=index,
        stage="settled",
        first_event_time=time,
        last_event_time=time,
        predictions=500,
        labelled=500,
        label_coverage=1.0,
        estimated={"accuracy": estimated},
        estimated_standard_error=0.02,
        realized={"accuracy": realized},
        estimated_predictions=estimated_from,
    )


def test_estimated_and_realized_windows_with_a_band():
    reports = [window(i, 0.9, 0.88 - 0.01 * i, 500) for i in range(5)]
    root = parsed(performance_chart(reports))
    assert len(of_class(root, "estimated")) == 1 + 5  # the line, then a dot a window
    assert len(of_class(root, "realized")) == 5
    assert len(of_class(root, "band")) == 1
    assert not of_class(root, "partial")


def test_a_window_estimated_from_part_of_its_predictions_is_drawn_hollow():
    reports = [window(0, 0.97, 0.9, 5), window(1, 0.9, 0.9, 500)]
    [partial] = of_class(parsed(performance_chart(reports)), "partial")
    assert partial.get("fill") == "white"
    assert "from 5" in "".join(partial.itertext())


def test_distributions_draw_both_sides():
    quantiles = parsed(
        quantile_chart({"0.1": -1.0, "0.5": 0.0, "0.9": 1.0}, {"0.5": 2.0}, title="q")
    )
    assert of_class(quantiles, "reference")
    assert of_class(quantiles, "current")
    shares = parsed(shares_chart({"a": 0.7, "b": 0.3}, {"a": 0.2, "c": 0.8}, title="s"))
    widths = {
        (e.get("class"), "".join(e.itertext()).split()[0]): float(e.get("width", "nan"))
        for e in shares.iter(f"{SVG}rect")
        if e.get("class") in ("reference", "current")
    }
    assert widths[("current", "c")] > widths[("reference", "a")] > widths[("current", "a")]
    assert widths[("reference", "c")] == 0.0
    assert not any(math.isnan(w) for w in widths.values())
