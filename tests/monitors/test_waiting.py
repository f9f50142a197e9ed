import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.waiting import Item, WaitingEntries

items = st.tuples(
    st.one_of(st.integers(0, 5), st.integers(-(2**62), 2**62)),  # many ties, and any time
    st.sampled_from([b'["m","a"]', b'["m","b"]', b'["m","c"]', b'["n","a"]']),
    st.sampled_from("plm"),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), items),
        st.tuples(st.just("pop"), st.just((0, b"", "p"))),
        st.tuples(st.just("keep"), items),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(items, max_size=20), steps)
def test_waiting_entries_come_out_as_from_a_heap(start, script):
    waiting = WaitingEntries(start)
    heap: list[Item] = list(start)
    heapq.heapify(heap)
    for step, item in script:
        if step == "push":
            waiting.push(*item)
            heapq.heappush(heap, item)
        elif step == "keep":  # keep those of another time than the given one
            waiting.keep(lambda entry, time=item[0]: entry[0] != time)
            heap = [entry for entry in heap if entry[0] != item[0]]
            heapq.heapify(heap)
        elif heap:
            assert waiting.peek() == heap[0]
            assert waiting.pop() == heapq.heappop(heap)
        else:
            with pytest.raises(IndexError):
                waiting.pop()
        assert len(waiting) == len(heap)
        assert bool(waiting) == bool(heap)
    assert waiting.items() == sorted(heap)


def test_many_entries_in_order_leave_in_order():
    waiting = WaitingEntries()
    for time in range(10_000):
        waiting.push(time, f'["m","p{time}"]'.encode(), "p")
    assert [waiting.pop()[0] for _ in range(6_000)] == list(range(6_000))  # the front is dropped
    waiting.push(5, b'["m","late"]', "l")
    assert waiting.peek() == (5, b'["m","late"]', "l")
    assert len(waiting) == 4_001
