from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from driftline.streams.grouping import model_grouped_order

model_ids = st.sampled_from(["a", "b", "c", 'a\\"', ""])
values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.builds(lambda model: f'{{"model_id":"{model}","x":1}}'.encode(), model_ids),
    st.builds(lambda model: f'{{"x":2, "model_id": "{model}"}}'.encode(), model_ids),
    st.builds(lambda model: f'{{"x":3,"model_id":"{model}"}}'.encode(), model_ids),
)


@given(st.lists(values, max_size=30))
def test_the_order_is_every_index_once_each_hint_together_in_batch_order(batch):
    order = model_grouped_order(batch)
    if order is None:  # nothing to gain: every value seems to name one model
        return
    assert sorted(order) == list(range(len(batch)))
    seen: list[bytes] = []
    for earlier, later in pairwise(order):
        if hint(batch[earlier]) == hint(batch[later]):
            assert earlier < later  # each group keeps the batch's order
    for index in order:  # a group, once left, never comes back
        if not seen or seen[-1] != hint(batch[index]):
            assert hint(batch[index]) not in seen
            seen.append(hint(batch[index]))


def hint(value: bytes | None) -> bytes:
    mark = b'"model_id":"'
    if not value or mark not in value:
        return b""
    start = value.index(mark) + len(mark)
    return value[start : value.find(b'"', start)]


def test_one_models_events_are_left_in_the_batchs_order():
    batch = [b'{"model_id":"m","x":%d}' % number for number in range(5)]
    assert model_grouped_order(batch) is None
    assert model_grouped_order([]) is None


def test_models_interleaved_are_taken_a_model_at_a_time_in_order_of_first_appearance():
    batch = [b'{"model_id":"%s"}' % model for model in (b"b", b"a", b"b", b"c", b"a")]
    assert model_grouped_order(batch) == [0, 2, 1, 4, 3]
