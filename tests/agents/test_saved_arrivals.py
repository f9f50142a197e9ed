"""SavedArrivals: the recent ids of a stream saved in chunks, read back whole, expired whole."""

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.agents.saved_arrivals import SavedArrivals

START = 1_767_225_600_000_000
"""2026-01-01 in microseconds since the epoch, as the memory keeps event times."""
STREAM = ("predictions", "m")


def at(seconds: int) -> int:
    return START + seconds * 1_000_000


@given(st.lists(st.lists(st.integers(0, 100), max_size=5), max_size=8), st.integers(-1, 100))
def test_what_is_read_back_is_every_arrival_of_the_chunks_kept_in_order(chunks, horizon):
    store: dict[str, bytes] = {}
    saved = SavedArrivals(store)
    for chunk in chunks:
        saved.write(STREAM, [(f"e{s}", at(s)) for s in chunk], None)
    expired = at(horizon)
    saved.write(STREAM, [], expired)
    kept = [chunk for chunk in chunks if chunk]
    while kept and max(kept[0]) <= horizon:  # whole chunks, oldest first
        kept.pop(0)
    expected = [(f"e{s}", at(s)) for chunk in kept for s in chunk]
    assert SavedArrivals(store).read(STREAM) == expected


def test_a_worker_that_reads_a_stream_back_goes_on_numbering_its_chunks():
    store: dict[str, bytes] = {}
    SavedArrivals(store).write(STREAM, [("a", at(1))], None)
    again = SavedArrivals(store)
    assert again.read(STREAM) == [("a", at(1))]
    again.write(STREAM, [("b", at(2))], None)
    assert SavedArrivals(store).read(STREAM) == [("a", at(1)), ("b", at(2))]
    assert SavedArrivals(store).read(("labels", "m")) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda record: {**record, "format": 99},
        lambda record: {**record, "ids": record["ids"][:-1]},
        lambda record: {**record, "micros": "nonsense"},
        lambda record: {**record, "latest": "later"},
        lambda record: "not a chunk",
    ],
)
def test_a_chunk_that_cannot_be_read_starts_the_memory_afresh(damage, caplog):
    store: dict[str, bytes] = {}
    saved = SavedArrivals(store)
    saved.write(STREAM, [("a", at(1)), ("b", at(2))], None)
    key = '["arrivals","predictions","m",0]'
    store[key] = orjson.dumps(damage(orjson.loads(store[key])))
    assert SavedArrivals(store).read(STREAM) == []
    assert "cannot be read" in caplog.text


def test_a_damaged_head_starts_the_memory_afresh(caplog):
    store = {'["arrivals","predictions","m"]': orjson.dumps({"format": 1, "first": 3, "next": 1})}
    assert SavedArrivals(store).read(STREAM) == []
    assert "cannot be read" in caplog.text
