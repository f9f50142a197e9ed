from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.packing import pack_positions, unpack_positions
from driftline.monitors.positions import Position, kafka_position, maybe_kafka_position
from driftline.monitors.rings import EventMemory
from driftline.schemas import KafkaPosition

places = st.builds(
    Position,
    st.text(min_size=1, max_size=20),
    st.integers(min_value=0, max_value=1_000),
    st.integers(min_value=0, max_value=2**62),
)


@given(places)
def test_a_light_position_becomes_the_wire_position_of_the_same_place(where):
    wire = kafka_position(where)
    assert isinstance(wire, KafkaPosition)
    assert (wire.topic, wire.partition, wire.offset) == where
    assert kafka_position(wire) is wire
    assert maybe_kafka_position(None) is None


@given(st.lists(st.none() | places, max_size=30))
def test_the_monitors_remember_light_positions_as_wire_ones(positions):
    wire = [maybe_kafka_position(where) for where in positions]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=i) for i in range(len(positions))]
    light_memory, wire_memory = EventMemory(50), EventMemory(50)
    light_memory.extend(times, positions)
    wire_memory.extend(times, wire)
    assert light_memory.positions() == wire_memory.positions() == wire
    assert unpack_positions(pack_positions(positions)) == wire
