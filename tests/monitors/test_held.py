import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.held import HeldPredictions

ids = st.text(alphabet="abc", min_size=1, max_size=3)
times = st.one_of(st.integers(0, 5), st.integers(-(2**62), 2**62))  # many ties, and any time
steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), ids, times),
        st.tuples(st.just("pop"), st.just(""), st.just(0)),
        st.tuples(st.just("pop_many"), st.just(""), st.integers(0, 4)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(steps, st.lists(ids, max_size=10))
def test_held_predictions_leave_earliest_first_and_know_their_ids(script, probes):
    held = HeldPredictions()
    model: list[tuple[int, int, str, object]] = []  # (time, arrival, id, payload), kept sorted
    for number, (step, prediction_id, time) in enumerate(script):
        if step == "push":
            if prediction_id in held:  # the join refuses a repeat before pushing
                assert any(entry[2] == prediction_id for entry in model)
                continue
            payload = {"n": number, "nested": [prediction_id, None, 1.5]}
            held.push(prediction_id, time, payload)
            model.append((time, number, prediction_id, payload))
            model.sort(key=lambda entry: entry[:2])
        elif step == "pop_many":
            leaving = min(time, len(model))
            expected = [(i, t, p) for t, _, i, p in model[:leaving]]
            del model[:leaving]
            assert held.pop_many(leaving) == expected
        elif model:
            time, _, prediction_id, payload = model.pop(0)
            assert held.peek() == (prediction_id, time)
            assert held.oldest_time == time
            assert held.pop() == (prediction_id, time, payload)
        else:
            with pytest.raises(IndexError):
                held.pop()
        assert len(held) == len(model)
        for probe in probes:
            assert (probe in held) == any(entry[2] == probe for entry in model)
        assert held.holds_any(map(hash, probes)) == any(probe in held for probe in probes)
    assert list(held) == [(i, t, p) for t, _, i, p in model]


def test_many_held_ids_are_each_found_and_others_are_not():
    held = HeldPredictions()
    for i in range(5_000):  # the index is rebuilt as they grow
        held.push(f"event-{i}", i, None)
    for _ in range(1_000):
        held.pop()
    assert all(f"event-{i}" in held for i in range(1_000, 5_000))
    assert not any(f"event-{i}" in held for i in range(1_000))
    assert not any(f"other-{i}" in held for i in range(5_000))
    assert not held.holds_any(hash(f"event-{i}") for i in range(1_000))
    assert not held.holds_any(hash(f"other-{i}") for i in range(5_000))
    assert held.holds_any([hash("other-1"), hash("event-4999")])
    # Thousands of ids, of which a hundred or more share a bucket with a held one:
    # they are intersected with the held ones at once.
    many = [hash(f"other-{i}") for i in range(5_000)]
    assert held.holds_any([*many, hash("event-4999")])
    assert held.holds_any([hash("event-1000"), *many])


def test_nothing_held_has_no_earliest():
    held = HeldPredictions()
    with pytest.raises(IndexError):
        held.peek()
    with pytest.raises(IndexError):
        _ = held.oldest_time


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.integers(min_value=0, max_value=50), max_size=40),
            st.integers(min_value=0, max_value=60),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_held_together_and_let_go_together_is_one_by_one(rounds, checked_by_caller):
    together, alone = HeldPredictions(), HeldPredictions()
    serial = 0
    for gaps, leaving in rounds:
        start = together.newest_time if len(together) else 0
        times = [start + sum(gaps[: n + 1]) for n in range(len(gaps))]  # in order
        ids = [f"p{serial + n}" for n in range(len(times))]
        payloads = [{"n": serial + n} for n in range(len(times))]
        serial += len(times)
        if checked_by_caller:  # the caller has the hashes, and checked the order
            hashes = [hash(prediction_id) for prediction_id in ids]
            together.extend(ids, times, payloads, hashes=hashes, in_order=True)
        else:
            together.extend(ids, times, payloads)
        for arguments in zip(ids, times, payloads, strict=True):
            alone.push(*arguments)
        leaving = min(leaving, len(alone))
        assert together.pop_many(leaving) == [alone.pop() for _ in range(leaving)]
        assert list(together) == list(alone)
        assert all(prediction_id in together for prediction_id, _, _ in alone)
        assert [p in together for p in ids] == [p in alone for p in ids]


def test_predictions_out_of_order_are_not_held_together():
    held = HeldPredictions()
    held.push("p0", 10, None)
    with pytest.raises(ValueError, match="event-time order"):
        held.extend(["p1"], [9], [None])
    with pytest.raises(ValueError, match="event-time order"):
        held.extend(["p1", "p2"], [12, 11], [None, None])
    assert list(held) == [("p0", 10, None)]
    with pytest.raises(IndexError):
        held.pop_many(2)


bucket_counts = st.one_of(st.integers(0, 255), st.sampled_from([0, 253, 254, 255]))
hashes = st.one_of(st.integers(0, 7), st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(bucket_counts, min_size=8, max_size=8),
    st.lists(hashes, max_size=40),
    st.sampled_from([1, -1]),
)
def test_bucket_counts_change_in_bulk_as_one_by_one(counts, keys, step):
    # Full buckets (255) stay full; others count up to full, and down by what they hold.
    held = HeldPredictions()
    mask = len(counts) - 1
    if step == -1:  # only what a bucket counts can leave it
        counts = [
            max(count, sum(1 for key in keys if key & mask == bucket)) if count < 255 else 255
            for bucket, count in enumerate(counts)
        ]
        counts = [min(count, 255) for count in counts]
    expected = bytearray(counts)
    for key in keys:
        if expected[key & mask] < 255:
            expected[key & mask] += step
    held._buckets = bytearray(counts)
    held._count_in(np.array(keys, dtype=np.int64), step)
    assert held._buckets == expected
