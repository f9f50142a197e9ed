from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.packing import (
    pack_floats,
    pack_ints,
    pack_positions,
    pack_times,
    unpack_floats,
    unpack_ints,
    unpack_positions,
    unpack_times,
)
from driftline.schemas import KafkaPosition


def through_json(value):
    return orjson.loads(orjson.dumps(value))


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True)))
def test_floats_come_back_bit_for_bit(values):
    back = unpack_floats(through_json(pack_floats(values)))
    assert np.array(back, dtype="<f8").tobytes() == np.array(values, dtype="<f8").tobytes()


def test_a_plain_list_of_floats_is_read_as_it_is():
    assert unpack_floats([1.0, 2.5]) == [1.0, 2.5]


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62)))
def test_integers_come_back_exactly(values):
    assert unpack_ints(through_json(pack_ints(values))) == values


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63),
            st.integers(min_value=-3, max_value=3),  # runs of equal steps
        ),
        max_size=200,
    )
)
def test_many_integers_pack_with_numpy_as_one_by_one(values):
    one_by_one = pack_ints(iter(values))  # no sequence: the loop
    assert pack_ints(values) == one_by_one
    if all(-(2**63) <= value < 2**63 for value in values):
        assert pack_ints(np.array(values, dtype=np.int64)) == one_by_one


def test_consecutive_integers_pack_into_a_run():
    assert pack_ints(range(1_000, 1_512)) == [1_000, [1, 511]]


offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.builds(
    lambda micros, zone: (
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    ).astimezone(zone),
    st.integers(min_value=0, max_value=2**52),
    offsets,
)


@given(st.lists(moments))
def test_times_come_back_with_their_own_offsets(times):
    back = unpack_times(through_json(pack_times(times)))
    assert back == times
    assert [t.isoformat() for t in back] == [t.isoformat() for t in times]


positions = st.one_of(
    st.none(),
    st.builds(
        KafkaPosition,
        topic=st.sampled_from(["a", "b", "predictions"]),
        partition=st.integers(min_value=0, max_value=100),
        offset=st.integers(min_value=0, max_value=2**62),
    ),
)


@given(st.lists(positions))
def test_positions_come_back_exactly(values):
    assert unpack_positions(through_json(pack_positions(values))) == values
