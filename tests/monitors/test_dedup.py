import random
import tracemalloc
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
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


# The implementation before ids were kept as hashes in numpy arrays, verbatim
# but for the class names: every answer of the compact one must equal its.


@dataclass(frozen=True, slots=True)
class _ReferenceSeen:
    event_id: str
    event_time: datetime


class ReferenceRecentEventIds:
    def __init__(self, window: timedelta, max_ids: int) -> None:
        if window <= timedelta(0):
            raise ValueError(f"window must be positive, got {window}")
        if max_ids < 1:
            raise ValueError(f"max_ids must be at least 1, got {max_ids}")
        self.window = window
        self.max_ids = max_ids
        self._times: dict[str, datetime] = {}
        self._arrivals: deque[_ReferenceSeen] = deque()
        self._watermark: datetime | None = None
        self._forgotten_until: datetime | None = None

    def arrive(self, event_id: str, event_time: datetime) -> Arrival:
        """Record one event's arrival and say whether it is new, a duplicate or late."""
        if self._is_late(event_time):
            return Arrival.LATE
        if event_id in self._times:
            return Arrival.DUPLICATE
        self._times[event_id] = event_time
        self._arrivals.append(_ReferenceSeen(event_id, event_time))
        if self._watermark is None or event_time > self._watermark:
            self._watermark = event_time
        self._forget_old()
        return Arrival.NEW

    def event_time_of(self, event_id: str) -> datetime | None:
        """The event time of a remembered id, or None when it is not remembered."""
        return self._times.get(event_id)

    @property
    def horizon(self) -> datetime | None:
        """Events at or before this event time are late; None before any event."""
        if self._watermark is None:
            return None
        horizon = self._watermark - self.window
        if self._forgotten_until is not None and self._forgotten_until > horizon:
            return self._forgotten_until
        return horizon

    def __len__(self) -> int:
        return len(self._times)

    def _is_late(self, event_time: datetime) -> bool:
        horizon = self.horizon
        return horizon is not None and event_time <= horizon

    def _forget_old(self) -> None:
        """Drop ids past the window, and the earliest arrivals past ``max_ids``."""
        assert self._watermark is not None
        expiry = self._watermark - self.window
        while self._arrivals and (
            len(self._arrivals) > self.max_ids or self._arrivals[0].event_time <= expiry
        ):
            seen = self._arrivals.popleft()
            del self._times[seen.event_id]
            if len(self._arrivals) >= self.max_ids and (
                self._forgotten_until is None or seen.event_time > self._forgotten_until
            ):
                self._forgotten_until = seen.event_time


def written(moment: datetime | None) -> str | None:
    """A time as a message shows it: equal instants in another zone would differ."""
    return None if moment is None else moment.isoformat()


def assert_same_answers(
    events: list[tuple[str, datetime]],
    window: timedelta,
    max_ids: int,
    merge_size: int,
    asked: list[str],
) -> None:
    """Feed both implementations the same arrivals and compare every answer after each."""
    ids = RecentEventIds(window=window, max_ids=max_ids, merge_size=merge_size)
    reference = ReferenceRecentEventIds(window=window, max_ids=max_ids)
    for step, (event_id, event_time) in enumerate(events):
        where = f"arrival {step}: {event_id} at {event_time}"
        assert ids.arrive(event_id, event_time) is reference.arrive(event_id, event_time), where
        assert len(ids) == len(reference), where
        assert written(ids.horizon) == written(reference.horizon), where
        for other in asked:
            expected = written(reference.event_time_of(other))
            assert written(ids.event_time_of(other)) == expected, f"{where}, asking {other}"


ALPHABET = "abcdefghij"
moments = st.builds(
    lambda seconds, microseconds: at(seconds) + timedelta(microseconds=microseconds),
    st.integers(min_value=0, max_value=60),
    st.sampled_from([0, 0, 0, 1, 999_999]),
)


ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.sampled_from(ALPHABET), moments), max_size=150),
    st.integers(min_value=1, max_value=30).map(lambda seconds: timedelta(seconds=seconds)),
    st.integers(min_value=1, max_value=8),
    st.sampled_from([1, 2, 3, 5, 8, 1024]),
    st.sampled_from(ZONES),
)
def test_every_answer_is_the_reference_implementations(events, window, max_ids, merge_size, zone):
    in_zone = [(event_id, event_time.astimezone(zone)) for event_id, event_time in events]
    assert_same_answers(in_zone, window, max_ids, merge_size, asked=list(ALPHABET))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(ALPHABET[:4]),
            st.integers(min_value=0, max_value=20),
            st.sampled_from(ZONES),
        ),
        max_size=60,
    ),
    st.integers(min_value=1, max_value=6),
    st.sampled_from([1, 2, 1024]),
)
def test_times_in_any_time_zone_are_compared_as_instants(events, max_ids, merge_size):
    ids = RecentEventIds(window=timedelta(seconds=8), max_ids=max_ids, merge_size=merge_size)
    reference = ReferenceRecentEventIds(window=timedelta(seconds=8), max_ids=max_ids)
    for event_id, second, zone in events:
        event_time = at(second).astimezone(zone)
        assert ids.arrive(event_id, event_time) is reference.arrive(event_id, event_time)
        assert ids.horizon == reference.horizon
        assert len(ids) == len(reference)
        for other in ALPHABET[:4]:
            assert ids.event_time_of(other) == reference.event_time_of(other)


@given(
    st.lists(
        st.tuples(st.sampled_from(ALPHABET), st.integers(min_value=0, max_value=60)), max_size=100
    ),
    st.integers(min_value=1, max_value=6),
    st.sampled_from([1, 3, 1024]),
)
def test_naive_times_give_the_reference_answers_too(events, max_ids, merge_size):
    naive = [(event_id, datetime(2026, 1, 1) + timedelta(seconds=s)) for event_id, s in events]
    assert_same_answers(naive, timedelta(seconds=10), max_ids, merge_size, asked=list(ALPHABET))


def test_naive_and_aware_times_cannot_be_mixed_like_before():
    for first, second in [(at(0), at(1).replace(tzinfo=None)), (at(0).replace(tzinfo=None), at(1))]:
        ids = RecentEventIds(window=timedelta(seconds=10), max_ids=10)
        reference = ReferenceRecentEventIds(window=timedelta(seconds=10), max_ids=10)
        assert ids.arrive("a", first) is reference.arrive("a", first) is Arrival.NEW
        with pytest.raises(TypeError):
            reference.arrive("b", second)
        with pytest.raises(TypeError):
            ids.arrive("b", second)
        assert len(ids) == 1
        assert ids.arrive("a", first) is Arrival.DUPLICATE


def test_many_arrivals_across_many_merges_give_the_reference_answers():
    """Thousands of ids, so that merges, the bitmap and the sorted search all take part."""
    rng = random.Random(20260101)
    pool = [f"model-3-{i:06d}" for i in range(3_000)]
    events = []
    clock = 0.0
    for _ in range(20_000):
        clock += rng.expovariate(10.0)
        jitter = rng.choice([0.0, 0.0, 0.0, -rng.uniform(0, 400)])
        events.append((rng.choice(pool), at(round(clock + jitter, 6))))
    asked = pool[:50]
    ids = RecentEventIds(window=timedelta(seconds=300), max_ids=2_000)
    reference = ReferenceRecentEventIds(window=timedelta(seconds=300), max_ids=2_000)
    answers = {arrival: 0 for arrival in Arrival}
    for step, (event_id, event_time) in enumerate(events):
        arrival = ids.arrive(event_id, event_time)
        assert arrival is reference.arrive(event_id, event_time), step
        answers[arrival] += 1
        assert len(ids) == len(reference), step
        assert ids.horizon == reference.horizon, step
        if step % 97 == 0:
            for other in asked:
                assert ids.event_time_of(other) == reference.event_time_of(other), step
    assert min(answers.values()) > 500, answers


def test_merge_size_must_be_positive():
    with pytest.raises(ValueError, match="merge_size must be at least 1"):
        RecentEventIds(window=timedelta(seconds=1), max_ids=1, merge_size=0)


def test_a_remembered_id_costs_at_most_40_bytes():
    """The reason for the hashes and arrays: an hour of 100 models' events fits in memory."""
    tracemalloc.start()
    try:
        ids = RecentEventIds(window=timedelta(hours=1), max_ids=100_000)
        for i in range(30_000):
            assert ids.arrive(f"model-7-{i:06d}", at(i / 10)) is Arrival.NEW
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(ids) == 30_000
    assert used / len(ids) <= 40


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.sampled_from(ALPHABET + "klmnopqrst"), moments), max_size=120),
    st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=30).map(lambda seconds: timedelta(seconds=seconds)),
    st.integers(min_value=1, max_value=25),
    st.sampled_from([1, 2, 3, 5, 1024]),
    st.sampled_from(ZONES),
)
def test_runs_recorded_at_once_give_the_reference_answers(
    events, cuts, window, max_ids, merge_size, zone
):
    """A run of events arriving at once, when all are new, leaves the answers of arriving in
    turn; when not all are, nothing was recorded, and arriving in turn still gives them."""
    ids = RecentEventIds(window=window, max_ids=max_ids, merge_size=merge_size)
    reference = ReferenceRecentEventIds(window=window, max_ids=max_ids)
    start = 0
    for cut in [*cuts, len(events)]:
        run = [
            (event_id, moment.astimezone(zone)) for event_id, moment in events[start : start + cut]
        ]
        start += cut
        names, times = [event_id for event_id, _ in run], [moment for _, moment in run]
        if ids.arrive_all_new(names, times):
            assert [reference.arrive(*event) for event in run] == [Arrival.NEW] * len(run)
        else:
            for event in run:
                assert ids.arrive(*event) is reference.arrive(*event), event
        assert len(ids) == len(reference)
        assert written(ids.horizon) == written(reference.horizon)
        for other in ALPHABET + "klmnopqrst":
            assert written(ids.event_time_of(other)) == written(reference.event_time_of(other))


def test_a_run_of_new_events_is_recorded_at_once():
    ids = RecentEventIds(window=timedelta(seconds=30), max_ids=100, merge_size=4)
    assert not ids.arrive_all_new(["a", "b"], [at(0), at(1)])  # a stream's first: in turn
    assert ids.arrive("a", at(0)) is Arrival.NEW
    assert ids.arrive_all_new([f"e{i}" for i in range(10)], [at(i % 5 + 1) for i in range(10)])
    assert len(ids) == 11
    assert ids.horizon == at(5) - timedelta(seconds=30)
    assert not ids.arrive_all_new(["x", "e3"], [at(6), at(7)])  # e3 is remembered
    assert not ids.arrive_all_new(["x", "x"], [at(6), at(7)])  # given twice
    assert not ids.arrive_all_new(["x", "y"], [at(60), at(20)])  # y late after x
    assert len(ids) == 11


@given(
    arrivals,
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=1, max_value=30),
    st.booleans(),
)
def test_ids_restored_from_a_journal_answer_as_if_never_forgotten(
    events, cut, max_ids, window, in_runs
):
    """What a journal recorded up to a restart, restored into a new memory, answers every
    later arrival as the memory that never restarted does."""
    kept = RecentEventIds(window=timedelta(seconds=window), max_ids=max_ids, merge_size=2)
    first = RecentEventIds(window=timedelta(seconds=window), max_ids=max_ids, merge_size=2)
    first.journal = []
    cut = min(cut, len(events))
    for event_id, seconds in events[:cut]:
        kept.arrive(event_id, at(seconds))
        if not (in_runs and first.arrive_all_new([event_id], [at(seconds)])):
            first.arrive(event_id, at(seconds))
    restarted = RecentEventIds(window=timedelta(seconds=window), max_ids=max_ids, merge_size=2)
    restarted.journal = []
    restarted.restore(first.journal)
    assert restarted.journal == []  # what was restored is not recorded again
    for event_id, seconds in events[cut:]:
        assert restarted.arrive(event_id, at(seconds)) is kept.arrive(event_id, at(seconds))
    assert restarted.horizon == kept.horizon
