from collections import deque
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.packing import pack_positions, pack_times
from driftline.monitors.rings import EventMemory, FloatRing, IntRing, RunRing
from driftline.schemas import KafkaPosition, PredictionEvent

floats = st.floats(allow_nan=False, allow_infinity=True)
integers = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def operations(numbers: st.SearchStrategy) -> st.SearchStrategy:
    """Appends of one number and extends by lists of any length, in any order."""
    return st.lists(
        st.one_of(
            st.tuples(st.just("append"), numbers),
            st.tuples(st.just("extend"), st.lists(numbers, max_size=60)),
        ),
        max_size=40,
    )


def same_as_deque(ring: FloatRing | IntRing, kept: deque) -> None:
    assert len(ring) == len(kept)
    assert ring.tolist() == list(kept)
    assert list(ring) == list(kept)
    assert ring.values().tolist() == list(kept)
    for index in range(-len(kept), len(kept)):
        assert ring[index] == kept[index]
        assert type(ring[index]) is type(kept[index])
    for count in (0, 1, 3, len(kept), len(kept) + 5):
        expected = list(kept)[-count:] if count else []
        assert ring.last(count).tolist() == expected
    for index in (len(kept), -len(kept) - 1):
        with pytest.raises(IndexError):
            ring[index]


def drive_both(ring, kept, steps, batch=lambda values: values):
    """Give a ring and a deque the same appends and extends (a batch as ``batch`` makes it)."""
    for step, argument in steps:
        if step == "append":
            ring.append(argument)
            kept.append(argument)
        else:
            ring.extend(batch(argument))
            kept.extend(argument)
        same_as_deque(ring, kept)


@given(st.integers(min_value=0, max_value=40), operations(floats))
def test_a_float_ring_keeps_what_a_deque_of_that_maxlen_keeps(maxlen, steps):
    drive_both(
        FloatRing(maxlen),
        deque(maxlen=maxlen),
        steps,
        lambda values: np.asarray(values, dtype=np.float64),
    )


@given(st.integers(min_value=0, max_value=40), operations(integers))
def test_an_int_ring_keeps_what_a_deque_of_that_maxlen_keeps(maxlen, steps):
    drive_both(IntRing(maxlen), deque(maxlen=maxlen), steps)


def test_floats_come_back_bit_for_bit():
    values = [-0.0, 5e-324, 1.7976931348623157e308, 0.1, float("-inf")]
    ring = FloatRing(8, values)
    assert np.array(ring.tolist()).tobytes() == np.array(values).tobytes()


def test_a_full_ring_holds_no_more_than_maxlen_numbers_and_starts_small():
    ring = IntRing(512)
    assert ring.values().size == 0
    ring.extend(range(10_000))
    assert ring.maxlen == 512
    assert ring.tolist() == list(range(10_000 - 512, 10_000))
    assert ring._data.itemsize * len(ring._data) == 512 * 8


def test_a_ring_refuses_a_negative_maxlen():
    with pytest.raises(ValueError, match="at least 0"):
        FloatRing(-1)


paris = ZoneInfo("Europe/Paris")
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-3), "Somewhere"), paris]
)
moments = st.builds(
    lambda micros, zone: (
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    ).astimezone(zone),
    st.integers(min_value=0, max_value=2**52),
    zones,
)
autumn = [  # 02:30 comes twice in Paris on 2026-10-25: fold tells them apart
    datetime(2026, 10, 25, 0, 30, tzinfo=UTC).astimezone(paris),
    datetime(2026, 10, 25, 1, 30, tzinfo=UTC).astimezone(paris),
]
positions = st.one_of(
    st.none(),
    st.builds(
        KafkaPosition,
        topic=st.sampled_from(["predictions", "features", "p"]),
        partition=st.integers(min_value=0, max_value=2**31),
        offset=st.integers(min_value=0, max_value=2**62),
    ),
)
events = st.lists(st.tuples(st.one_of(moments, st.sampled_from(autumn)), positions), max_size=30)


def same_event(got: tuple, expected: tuple) -> None:
    (time, position), (want, want_position) = got, expected
    assert time == want
    assert (time.isoformat(), time.fold, type(time.tzinfo), str(time.tzinfo)) == (
        want.isoformat(),
        want.fold,
        type(want.tzinfo),
        str(want.tzinfo),
    )
    assert position == want_position


@given(st.integers(min_value=0, max_value=12), st.lists(events, max_size=8))
def test_an_event_memory_gives_back_the_times_and_positions_a_deque_would(maxlen, batches):
    memory, kept = EventMemory(maxlen), deque(maxlen=maxlen)
    for number, batch in enumerate(batches):
        if number % 2:
            for time, position in batch:
                memory.append(time, position)
        else:
            memory.extend([time for time, _ in batch], [position for _, position in batch])
        kept.extend(batch)
        assert len(memory) == len(kept)
        for index in range(len(kept)):
            same_event(memory[index], kept[index])
        assert memory.times() == [time for time, _ in kept]
        assert memory.positions() == [position for _, position in kept]
        assert memory.packed() == {
            "times": pack_times([time for time, _ in kept]),
            "positions": pack_positions([position for _, position in kept]),
        }
        for got, expected in zip(memory, kept, strict=True):
            same_event(got, expected)


def test_times_parsed_from_json_come_back_with_their_own_kind_of_tzinfo():
    texts = ["2026-01-01T00:00:00Z", "2026-01-01T03:00:00+02:00", "2026-01-01T01:00:00+02:00"]
    times = [
        PredictionEvent.model_validate_json(
            f'{{"model_id": "m", "model_version": "1", "event_id": "e", "event_time": "{text}",'
            ' "prediction": 1.0}'
        ).event_time
        for text in texts
    ]
    memory = EventMemory(10)
    memory.extend(times, [None] * len(times))
    for index, time in enumerate(times):
        same_event(memory[index], (time, None))
        assert repr(memory.time(index)) == repr(time)
    assert len(memory._zones) == 2


def test_an_event_memory_refuses_times_and_positions_of_different_lengths():
    with pytest.raises(ValueError, match="2 times but 1 positions"):
        EventMemory(4).extend([datetime(2026, 1, 1, tzinfo=UTC)] * 2, [None])


mostly_consecutive = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(-3, 3)),
        st.tuples(st.just("extend"), st.lists(st.integers(-3, 3), max_size=12)),
        st.tuples(st.just("run"), st.integers(-3, 14)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 9), mostly_consecutive, st.integers(-1000, 1000))
def test_a_run_ring_keeps_what_a_bounded_deque_keeps(maxlen, steps, first):
    ring, model = RunRing(maxlen), deque[int](maxlen=maxlen)
    value = first
    for step, change in steps:
        # the next integers: mostly each one more than the last, sometimes a jump
        if step == "append":
            value += 1 if change >= 0 else change - 1
            ring.append(value)
            model.append(value)
        elif step == "run":
            # a run of ``change`` integers, following on from the last or after a jump
            start = value + (1 if change % 2 else -5)
            ring.extend_run(start, change)
            model.extend(range(start, start + change))
            value = max(value, start + change - 1)
        else:
            batch = []
            for jump in change:
                value += 1 if jump >= 0 else jump * 7
                batch.append(value)
            ring.extend(np.array(batch, dtype=np.int64))
            model.extend(batch)
        assert len(ring) == len(model)
        assert ring.tolist() == list(model)
        for index in range(-len(model), len(model)):
            assert ring[index] == model[index]
    for index in (len(model), -len(model) - 1):
        with pytest.raises(IndexError):
            ring[index]
    assert RunRing(maxlen, ring.values()).tolist() == list(model)


def test_a_run_ring_of_consecutive_numbers_holds_one_run():
    ring = RunRing(512)
    ring.extend(np.arange(10_000))
    for number in range(10_000, 10_100):
        ring.append(number)
    assert ring.tolist() == list(range(10_100 - 512, 10_100))
    assert len(ring._starts) - ring._first == 1
