import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas import PredictionEvent
from driftline.simulate import START, simulated_predictions
from driftline.streams.grouping import model_grouped_order, model_named

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
        assert len({hint(value) for value in batch}) <= 1
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


def test_a_value_cut_short_in_its_model_id_is_a_group_of_its_own():
    assert model_grouped_order([b'{"model_id":"a', b'{"model_id":"b"}']) == [0, 1]


def test_one_models_events_are_left_in_the_batchs_order():
    batch = [b'{"model_id":"m","x":%d}' % number for number in range(5)]
    assert model_grouped_order(batch) is None
    assert model_grouped_order([]) is None


def test_models_interleaved_are_taken_a_model_at_a_time_in_order_of_first_appearance():
    batch = [b'{"model_id":"%s"}' % model for model in (b"b", b"a", b"b", b"c", b"a")]
    assert model_grouped_order(batch) == [0, 2, 1, 4, 3]


valid_events = st.builds(
    lambda model_id, event_id, features: PredictionEvent(
        model_id=model_id,
        model_version="1",
        event_id=event_id,
        event_time=START,
        features=features,
        prediction=0.5,
    ),
    st.text(min_size=1, max_size=8),
    st.text(min_size=1, max_size=8),
    st.dictionaries(
        st.text(min_size=1, max_size=10), st.text(max_size=10) | st.floats(-1, 1), max_size=3
    ),
)


@settings(max_examples=300, deadline=None)
@given(valid_events, st.permutations(list(PredictionEvent.model_fields)), st.booleans())
def test_bytes_that_name_their_model_name_the_model_of_the_valid_event(event, order, spaced):
    fields = event.model_dump(mode="json")
    text = json.dumps({name: fields[name] for name in order}, ensure_ascii=False)
    value = (text if spaced else text.replace('": ', '":').replace(", ", ",")).encode()
    named = model_named(value)
    assert named is None or named == PredictionEvent.model_validate_json(value).model_id


@pytest.mark.parametrize(
    "text",
    [
        '{"features":{"model_id":"x"},"model_id":"m","model_version":"1","event_id":"e",'
        '"event_time":"2026-01-01T00:00:00Z"}',
        '{"event_id":"{","model_id":"m","model_version":"1","event_time":"2026-01-01T00:00:00Z"}',
        '{"event_id":"\\"model_id\\":\\"x","model_id":"m","model_version":"1",'
        '"event_time":"2026-01-01T00:00:00Z"}',
        '{"model_id":"m\\u0078","model_version":"1","event_id":"e",'
        '"event_time":"2026-01-01T00:00:00Z"}',
        '{"model_id":"m","model_version":"1","event_id":"e","event_time":"2026-01-01T00:00:00Z"}',
    ],
)
def test_bytes_name_the_model_of_their_event_or_nothing(text):
    named = model_named(text.encode())
    assert named is None or named == PredictionEvent.model_validate_json(text).model_id


def test_the_plain_bytes_of_a_valid_event_name_its_model():
    [event] = simulated_predictions(1, shift_at=1, model_id="churn-7")
    assert model_named(event.model_dump_json().encode()) == "churn-7"
