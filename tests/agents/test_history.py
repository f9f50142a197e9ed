"""The status history: bounded, evenly spaced, and never hiding a threshold crossing."""

import itertools
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from samples import write_classifier_traffic

from driftline.agents.history import PressureSeries, StatusHistory
from driftline.replay import Replay
from driftline.schemas import Alert, AlertStatus
from driftline.simulate import simulated_classifier_spec


@given(
    st.integers(min_value=2, max_value=40),
    st.lists(st.floats(min_value=0.0, max_value=50.0), min_size=1, max_size=400),
)
def test_a_series_stays_bounded_keeps_its_peak_and_ends_at_the_last_point(max_points, pressures):
    series = PressureSeries(max_points)
    for events, pressure in enumerate(pressures, start=1):
        series.add(events, pressure)
    assert len(series.events) == len(series.pressures) <= max_points
    assert series.peak == max(pressures)
    assert series.events[-1] == len(pressures)
    assert series.events == sorted(set(series.events))
    # Every kept point is the largest pressure of the points it stands for.
    previous = 0
    for events, pressure in zip(series.events, series.pressures, strict=True):
        assert pressure == max(pressures[previous:events])
        previous = events


def test_a_full_series_keeps_even_steps():
    series = PressureSeries(8)
    for events in range(1, 101):
        series.add(events, 0.0)
    steps = {b - a for a, b in itertools.pairwise(series.events)}
    assert len(steps - {series.events[-1] - series.events[-2]}) <= 1
    assert series.stride == 16


def test_an_alarm_inside_a_batch_raises_the_batch_point():
    series = PressureSeries(10)
    series.add(100, 0.4)
    series.raise_last(1.3)
    assert series.pressures == [1.3]


def replayed_history(folder: Path, **bounds: int) -> tuple[StatusHistory, list[object]]:
    history = StatusHistory(**bounds)
    run = Replay([simulated_classifier_spec()], history=history, batch_size=250)
    return history, list(run.feed_file(*write_classifier_traffic(folder)))


def test_a_replay_fills_the_history_with_what_it_sent(tmp_path: Path):
    history, outputs = replayed_history(tmp_path)
    [(key, version)] = history.versions.items()
    assert key == ("demo-classifier", "1")
    assert version.events == 8_000
    assert not version.warming_up
    alerts = [o for o in outputs if isinstance(o, Alert)]
    assert len(version.marks) == len(alerts)
    still_open = {a.alert_id for a in alerts} - {
        a.alert_id for a in alerts if a.status is AlertStatus.RESOLVE
    }
    assert set(version.open_alerts) == still_open
    assert "x" in {mark.subject for mark in version.open_alerts.values()}
    # The drifted feature's series crosses the threshold; the stable one does not.
    assert version.series["x"].peak >= 1.0
    assert version.series["y"].peak < 1.0
    assert version.last_event_time == datetime(2026, 1, 1, 0, 13, 19, 900_000, tzinfo=UTC)
    assert version.windows  # performance windows, from the labels
    assert "x" in version.drift_evidence


def test_every_part_of_the_history_is_bounded(tmp_path: Path):
    history, _ = replayed_history(
        tmp_path, max_points=6, max_marks=3, max_windows=2, max_triggers=1
    )
    [version] = history.versions.values()
    assert all(len(series.events) <= 6 for series in version.series.values())
    assert len(version.marks) <= 3
    assert len(version.windows) <= 2
    assert len(version.triggers) <= 1
    assert len(version.open_alerts) <= 3


def test_versions_beyond_the_bound_are_left_out_until_room_is_made():
    history = StatusHistory(max_versions=2)
    for version in ("1", "2", "3"):
        history.record_pressures(("m", version), 1, {"x": 0.1})
    assert list(history.versions) == [("m", "1"), ("m", "2")]  # kept, never evicted
    assert history.left_out == {("m", "3")}
    history.forget_all_but({("m", "2"), ("m", "3")})  # version 1 is monitored no more
    assert list(history.versions) == [("m", "2")]
    history.record_pressures(("m", "3"), 2, {"x": 0.2})
    assert list(history.versions) == [("m", "2"), ("m", "3")]
    assert not history.left_out


def test_points_wait_for_the_version_to_move_unless_it_alerts(tmp_path: Path):
    history = StatusHistory(point_events=1_000)
    run = Replay([simulated_classifier_spec()], history=history, batch_size=250)
    outputs = list(run.feed_file(*write_classifier_traffic(tmp_path)))
    [version] = history.versions.values()
    points = version.series["x"].events
    alerted_at = {mark.events for mark in version.marks}
    # A point a thousand events on, or at the batch of an alert.
    assert all(b - a >= 1_000 or b in alerted_at for a, b in itertools.pairwise(points))
    assert alerted_at <= set(points) | {points[-1]}
    assert version.events == 8_000  # counted at every batch all the same
    assert len([o for o in outputs if isinstance(o, Alert)]) == len(version.marks)
