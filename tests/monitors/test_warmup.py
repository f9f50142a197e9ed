import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors.findings import PREDICTION, UNCERTAINTY
from driftline.monitors.reference import build_reference
from driftline.monitors.warmup import WarmupColumns
from driftline.schemas.registry import FeatureKind, FeatureSpec, ModelSpec, TaskType

SPEC = ModelSpec(
    model_id="m",
    model_version="1",
    task=TaskType.REGRESSION,
    features=[
        FeatureSpec(name="amount", kind=FeatureKind.NUMERIC),
        FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL),
        FeatureSpec(name="vip", kind=FeatureKind.BOOLEAN),
    ],
)
WATCHED = ["amount", "plan", "vip"]

# Whatever JSON can carry, and more: huge integers, booleans where numbers belong.
raw_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
raw_event = st.fixed_dictionaries(
    {name: raw_value for name in WATCHED},
    optional={PREDICTION: st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))},
)


def kept(columns: dict[str, object]) -> dict[str, object]:
    """Columns comparable with ==: number arrays as lists, NaN as None."""
    return {
        name: (
            [None if math.isnan(x) else x for x in column.tolist()]
            if isinstance(column, np.ndarray)
            else column
        )
        for name, column in columns.items()
    }


@settings(max_examples=200, deadline=None)
@given(events=st.lists(raw_event, max_size=30), cut=st.integers(0, 30))
def test_extend_keeps_what_append_keeps(events: list[dict[str, object]], cut: int) -> None:
    one_by_one = WarmupColumns(SPEC, WATCHED)
    for event in events:
        one_by_one.append(event)
    in_batches = WarmupColumns(SPEC, WATCHED)
    names = [*WATCHED, PREDICTION]  # the uncertainty left out: no value
    for part in (events[:cut], events[cut:]):
        in_batches.extend({name: [event.get(name) for event in part] for name in names})
    assert len(one_by_one) == len(in_batches) == len(events)
    assert kept(one_by_one.columns()) == kept(in_batches.columns())


@settings(max_examples=200, deadline=None)
@given(events=st.lists(raw_event, min_size=1, max_size=40))
def test_the_reference_is_the_one_built_from_the_raw_values(
    events: list[dict[str, object]],
) -> None:
    warmup = WarmupColumns(SPEC, WATCHED)
    for event in events:
        warmup.append(event)
    raw = {name: [event.get(name) for event in events] for name in WATCHED}
    compact = {name: column for name, column in warmup.columns().items() if name in WATCHED}
    assert build_reference(SPEC, compact, source="s", ordered=True) == build_reference(
        SPEC, raw, source="s", ordered=True
    )


def test_numbers_are_taken_as_a_detector_takes_them() -> None:
    warmup = WarmupColumns(SPEC, WATCHED)
    rows = [(3, True), (2.5, False), (10**400, 1), (True, "yes"), ("7", None), (math.inf, None)]
    for amount, vip in rows:
        warmup.append({"amount": amount, "vip": vip, UNCERTAINTY: 0.5})
    warmup.extend({"amount": [1.5, -math.inf]})
    columns = kept(warmup.columns())
    assert columns["amount"] == [3.0, 2.5, None, None, None, None, 1.5, None]
    assert columns["vip"] == [1.0, 0.0, None, None, None, None, None, None]
    assert columns["plan"] == [None] * 8
    assert columns[PREDICTION] == [None] * 8
    assert columns[UNCERTAINTY] == [0.5] * 6 + [None] * 2


def test_a_classifier_keeps_its_predicted_classes() -> None:
    spec = SPEC.model_copy(update={"task": TaskType.CLASSIFICATION})
    warmup = WarmupColumns(spec, WATCHED)
    warmup.extend({PREDICTION: ["yes", None, 1]})
    assert warmup.columns()[PREDICTION] == ["yes", None, None]


def test_columns_of_unequal_length_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        WarmupColumns(SPEC, WATCHED).extend({"amount": [1.0], "plan": []})


@settings(max_examples=100, deadline=None)
@given(events=st.lists(raw_event, max_size=20))
def test_the_state_survives_json(events: list[dict[str, object]]) -> None:
    warmup = WarmupColumns(SPEC, WATCHED)
    for event in events:
        warmup.append(event)
    copy = WarmupColumns(SPEC, WATCHED)
    copy.load_state(json.loads(json.dumps(warmup.to_state())))
    assert len(copy) == len(warmup)
    assert kept(copy.columns()) == kept(warmup.columns())


def test_the_state_of_another_spec_is_refused() -> None:
    state = WarmupColumns(SPEC, WATCHED).to_state()
    with pytest.raises(ValueError, match="not this spec's"):
        WarmupColumns(SPEC, ["amount"]).load_state(state)
