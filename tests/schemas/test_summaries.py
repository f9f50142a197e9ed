import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.schemas.registry import registry_key
from driftline.schemas.summaries import (
    MAX_SAMPLE,
    CategorySums,
    JointSums,
    NumericSums,
    VersionSummary,
    Walk,
)

WALK = [-3.0, 1.5, -4.0, 2.5]  # total, highest, lowest, climb
SIDES = [WALK, WALK]

SUMMARY = {
    "model_id": "churn",
    "model_version": "3",
    "source": {"topic": "predictions", "partition": 5, "offset": 1200},
    "last_offset": 1699,
    "events": 500,
    "checked": 500,
    "first_event_time": "2026-01-01T00:00:00Z",
    "last_event_time": "2026-01-01T00:00:09Z",
    "last_event_id": "e-1699",
    "reference": "a1b2c3d4",
    "numeric": {
        "x": {
            "count": 500,
            "total": 12.5,
            "squares": 488.0,
            "differences": 499,
            "squared_differences": 1003.1,
            "location": SIDES,
            "scale": SIDES,
            "sample": [0.1, 2.5],
        }
    },
    "categorical": {
        "plan": {
            "counts": {"free": 300, "(other)": 200},
            "walks": {"free": SIDES, "pro": SIDES, "(other)": SIDES},
            "sample": ["free"],
        }
    },
    "joint": {"count": 480, "total": 975.0, "walk": WALK},
    "quality": [{"feature": "x", "check": "missing", "violations": 3, "examples": []}],
}


def test_a_summary_goes_through_json_unchanged_and_is_keyed_by_its_version():
    summary = VersionSummary.model_validate_json(json.dumps(SUMMARY))
    assert VersionSummary.model_validate_json(summary.model_dump_json()) == summary
    assert summary.registry_key() == registry_key("churn", "3")
    assert summary.categorical["plan"].count == 500


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"last_offset": 1199}, "last_offset"),
        ({"last_event_time": "2025-12-31T23:59:59Z"}, "last_event_time"),
        ({"reference": None}, "reference"),
        ({"warmup": [{"event_time": "2026-01-01T00:00:00Z", "features": {"x": 1.0}}]}, "warm-up"),
        (
            {
                "events": 0,
                "warmup": [],
                "reference": None,
                "numeric": {},
                "categorical": {},
                "joint": None,
            },
            "outcomes or unlabelled",
        ),
        ({"predicted": [[0, 400], [1, 101]]}, "more predictions"),
        ({"scored": [[0, "yes", 0, [400]], [1, "no", 7, [0, 101]]]}, "more predictions scored"),
        ({"scored": [[0, "yes", 199, [1, 1]]]}, "past the last"),
        ({"scored": [[0, "yes", 200, [1]]]}, "less than 200"),
        ({"scored": [[0, "yes", 3, []]]}, "at least 1 item"),
        (
            {
                "events": 0,
                "reference": None,
                "numeric": {},
                "categorical": {},
                "joint": None,
                "unlabelled": [[3, 2]],
            },
            None,
        ),
    ],
)
def test_an_inconsistent_summary_is_refused_with_the_reason(change, message):
    data = {**SUMMARY, **change}
    if message is None:
        VersionSummary.model_validate_json(json.dumps(data))
        return
    with pytest.raises(ValidationError, match=message):
        VersionSummary.model_validate_json(json.dumps(data))


def test_warmup_rows_are_counted_events():
    data = {
        **SUMMARY,
        "reference": None,
        "numeric": {},
        "categorical": {},
        "joint": None,
        "events": 1,
        "warmup": [
            {"event_time": "2026-01-01T00:00:00Z", "features": {"x": 1.0}},
            {"event_time": "2026-01-01T00:00:01Z", "features": {"x": 2.0}},
        ],
    }
    with pytest.raises(ValidationError, match="more warm-up rows than events"):
        VersionSummary.model_validate_json(json.dumps(data))


@given(
    count=st.integers(1, 10_000),
    differences=st.integers(0, 10_000),
    squared=st.floats(0, 1e6),
    sample=st.integers(0, MAX_SAMPLE),
)
def test_numeric_sums_hold_together_or_are_refused(count, differences, squared, sample):
    fields = {
        "count": count,
        "total": 0.0,
        "squares": 0.0,
        "differences": differences,
        "squared_differences": squared,
        "location": (WALK, WALK),
        "scale": (WALK, WALK),
        "sample": [0.0] * sample,
    }
    possible = differences < max(count, 1) and squared <= 64 * differences and sample <= count
    if possible:
        assert NumericSums(**fields).count == count
    else:
        with pytest.raises(ValidationError):
            NumericSums(**fields)


@pytest.mark.parametrize("bad", [{"total": float("nan")}, {"squares": -1.0}, {"count": "5"}])
def test_numeric_sums_are_finite_and_strict(bad):
    fields = {
        "count": 5,
        "total": 1.0,
        "squares": 4.0,
        "differences": 4,
        "squared_differences": 8.0,
    }
    with pytest.raises(ValidationError):
        NumericSums(**{**fields, **bad})


@given(
    total=st.floats(-100, 100),
    highest=st.floats(-100, 100),
    lowest=st.floats(-100, 0),
    climb=st.floats(0, 200),
)
def test_a_walk_holds_together_or_is_refused(total, highest, lowest, climb):
    possible = (
        lowest <= min(total, 0) and highest >= total and climb >= max(highest, total - lowest)
    )
    walk = Walk(total=total, highest=highest, lowest=lowest, climb=climb)
    joint = {"count": 3, "total": 1.0, "walk": list(walk)}  # as the wire has it
    if possible:
        assert JointSums.model_validate_json(json.dumps(joint)).walk == walk
    else:
        with pytest.raises(ValidationError, match="one walk"):
            JointSums.model_validate_json(json.dumps(joint))


@pytest.mark.parametrize(
    "walk",
    [
        [1.0, 2.0, 0.0],
        [1.0, 2.0, 0.0, 2.0, 5.0],
        ["1", 2.0, 0.0, 2.0],
        [float("inf"), float("inf"), 0.0, float("inf")],
    ],
)
def test_a_walk_is_an_array_of_four_finite_numbers(walk):
    with pytest.raises(ValidationError):
        JointSums.model_validate_json(json.dumps({"count": 3, "total": 1.0, "walk": walk}))


def test_a_walk_sent_as_an_object_by_earlier_workers_is_read_too():
    named = {"total": 1.0, "highest": 2.0, "lowest": 0.0, "climb": 2.0}
    joint = JointSums.model_validate_json(json.dumps({"count": 3, "total": 1.0, "walk": named}))
    assert joint.walk == Walk(1.0, 2.0, 0.0, 2.0)
    assert json.loads(joint.model_dump_json())["walk"] == [1.0, 2.0, 0.0, 2.0]


def test_a_category_counted_needs_its_walks():
    with pytest.raises(ValidationError, match="without its test's walks"):
        CategorySums(counts={"free": 3}, walks={"pro": (WALK, WALK)})


def test_outcomes_window_counts_and_score_bins_go_through_json_as_arrays():
    data = {
        **SUMMARY,
        "predicted": [[4, 300], [5, 200]],
        "outcomes": [
            [
                4,
                "2026-01-01T00:00:01Z",
                "yes",
                {"yes": 0.8, "no": 0.2},
                1201,
                "no",
                "l-1",
                "2026-01-01T00:05:00Z",
                77,
            ],
            [5, "2026-01-01T00:00:02Z", 3.5, None, 1202, 4.0, "l-2", "2026-01-01T00:05:01Z", 78],
        ],
        "unlabelled": [[3, 7]],
        "scored": [[4, "yes", 150, [2, 0, 1]]],
    }
    summary = VersionSummary.model_validate_json(json.dumps(data))
    assert summary.scored[0].counts == [2, 0, 1]
    assert summary.outcomes[0].window == 4
    assert summary.outcomes[0].label == "no"
    assert summary.outcomes[1].prediction == 3.5
    assert summary.outcomes[1].probabilities is None
    assert summary.predicted[1].predictions == 200
    assert json.loads(summary.model_dump_json())["outcomes"][0][0] == 4
    assert VersionSummary.model_validate_json(summary.model_dump_json()) == summary


def test_an_outcome_with_a_label_time_that_is_no_time_is_refused():
    data = {**SUMMARY, "outcomes": [[4, "now", "yes", None, 1, "no", "l", "now", 2]]}
    with pytest.raises(ValidationError, match="outcomes"):
        VersionSummary.model_validate_json(json.dumps(data))
