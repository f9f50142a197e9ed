from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.dedup import Arrival, RecentEventIds

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_a_repeat_within_the_window_is_a_duplicate_even_out_of_order():
    ids = RecentEventIds(window=timedelta(seconds=100), max_ids=10)
    assert ids.arrive("a", at(50)) is Arrival.NEW
    assert ids.arrive("b", at(10)) is Arrival.NEW
    assert ids.arrive("b", at(10)) is Arrival.DUPLICATE
    assert ids.arrive("a", at(50)) is Arrival.DUPLICATE
    assert ids.event_time_of("b") == at(10)


def test_events_older_than_the_window_behind_the_watermark_are_late():
    ids = RecentEventIds(window=timedelta(seconds=100), max_ids=10)
    ids.arrive("a", at(0))
    ids.arrive("b", at(150))
    assert ids.horizon == at(50)
    assert ids.arrive("a", at(0)) is Arrival.LATE
    assert ids.arrive("c", at(50)) is Arrival.LATE
    assert ids.arrive("d", at(51)) is Arrival.NEW
    assert ids.event_time_of("a") is None


def test_past_max_ids_the_earliest_arrivals_are_forgotten_and_count_as_late():
    ids = RecentEventIds(window=timedelta(days=1), max_ids=3)
    for i in range(5):
        assert ids.arrive(f"e{i}", at(i)) is Arrival.NEW
    assert len(ids) == 3
    assert ids.horizon == at(1)
    assert ids.arrive("e0", at(0)) is Arrival.LATE
    assert ids.arrive("e1", at(1)) is Arrival.LATE
    assert ids.arrive("e2", at(2)) is Arrival.DUPLICATE


@pytest.mark.parametrize(("window", "max_ids"), [(timedelta(0), 1), (timedelta(seconds=1), 0)])
def test_invalid_bounds_are_refused(window, max_ids):
    with pytest.raises(ValueError, match="must be"):
        RecentEventIds(window=window, max_ids=max_ids)


arrivals = st.lists(
    st.tuples(st.sampled_from("abcdefgh"), st.integers(min_value=0, max_value=40)), max_size=200
)


@given(arrivals, st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=30))
def test_an_event_is_new_at_most_once_and_memory_stays_bounded(events, max_ids, window):
    ids = RecentEventIds(window=timedelta(seconds=window), max_ids=max_ids)
    processed: set[tuple[str, int]] = set()
    for event_id, second in events:
        arrival = ids.arrive(event_id, at(second))
        if arrival is Arrival.NEW:
            assert (event_id, second) not in processed
            processed.add((event_id, second))
        assert len(ids) <= max_ids


@given(arrivals)
def test_with_room_enough_a_repeat_is_never_new(events):
    ids = RecentEventIds(window=timedelta(days=1), max_ids=1_000)
    first: dict[str, int] = {}
    for event_id, second in events:
        arrival = ids.arrive(event_id, at(second))
        assert (arrival is Arrival.NEW) == (event_id not in first)
        first.setdefault(event_id, second)
