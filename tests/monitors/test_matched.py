import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.matched import MatchedIds, digest

operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "remove_before", "evict", "remove_oldest"]),
        st.integers(min_value=-5, max_value=5),  # a digest: few, so they repeat
        st.integers(min_value=0, max_value=20),  # a time
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(min_value=1, max_value=4))
def test_matched_ids_answer_as_a_dict_would(steps, merge_every):
    matched = MatchedIds(merge_every=merge_every)
    reference: dict[int, int] = {}
    for operation, key, time in steps:
        if operation == "add" and key not in reference:
            matched.add(key, time)
            reference[key] = time
        elif operation == "remove" and key in reference:
            matched.remove(key)
            del reference[key]
        elif operation == "remove_before":
            gone = [k for k, t in reference.items() if t < time]
            assert matched.remove_before(time) == len(gone)
            for k in gone:
                del reference[k]
        elif operation == "evict" and reference:
            oldest = min((t, k) for k, t in reference.items())
            assert matched.oldest() == oldest
            matched.remove(oldest[1])
            del reference[oldest[1]]
        elif operation == "remove_oldest" and reference:
            oldest = min((t, k) for k, t in reference.items())
            assert matched.remove_oldest() == oldest
            del reference[oldest[1]]
        assert len(matched) == len(reference)
        for probe in range(-5, 6):
            assert matched.time_of(probe) == reference.get(probe)
        expected = min(((t, k) for k, t in reference.items()), default=None)
        assert matched.oldest() == expected
    assert matched.items() == sorted(reference.items())


def test_removing_a_digest_not_remembered_is_a_key_error():
    matched = MatchedIds(merge_every=1)
    matched.add(1, 0)
    try:
        matched.remove(2)
    except KeyError:
        pass
    else:
        raise AssertionError("no KeyError")


def test_removing_the_oldest_of_none_is_a_key_error():
    matched = MatchedIds()
    with pytest.raises(KeyError, match="no digest"):
        matched.remove_oldest()


def test_digests_are_stable_64_bit_values():
    # the same in every process (a stored marker stays valid across restarts):
    # BLAKE2b-64 of "p1" is e81665c97894ce91, read as a little-endian int64
    assert digest("p1") == int.from_bytes(bytes.fromhex("e81665c97894ce91"), "little") - 2**64
    assert -(2**63) <= digest("a prediction id") < 2**63
    assert len({digest(f"id-{index}") for index in range(10_000)}) == 10_000
