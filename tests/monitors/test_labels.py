import struct
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.monitors import labels
from driftline.monitors.labels import (
    MARKS_PER_SEGMENT,
    AlreadyLabelled,
    Expired,
    LabelJoin,
    Match,
    Side,
)
from driftline.monitors.matched import digest

START = datetime(2026, 1, 1, tzinfo=UTC)
RETENTION = timedelta(seconds=100)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def micros(seconds: float) -> int:
    """How ``at(seconds)`` is stored: microseconds since the epoch."""
    return (at(seconds) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_a_label_after_its_prediction_is_matched_with_both_payloads():
    join = LabelJoin(RETENTION)
    assert join.predicted("m", "p1", at(10), {"score": 0.7}) is None
    assert (join.pending_predictions, join.pending_labels) == (1, 0)
    match = join.labelled("m", "p1", at(40), {"label": 1})
    assert match == Match("m", "p1", at(10), {"score": 0.7}, at(40), {"label": 1})
    assert match.delay == timedelta(seconds=30)
    assert (join.pending_predictions, join.pending_labels) == (0, 0)


def test_a_label_before_its_prediction_waits_and_is_matched_when_the_prediction_comes():
    join = LabelJoin(RETENTION)
    assert join.labelled("m", "p1", at(5), {"label": 0}) is None
    assert (join.pending_predictions, join.pending_labels) == (0, 1)
    match = join.predicted("m", "p1", at(8), {"score": 0.2})
    assert match == Match("m", "p1", at(8), {"score": 0.2}, at(5), {"label": 0})
    assert match.delay == timedelta(seconds=-3)  # the producers' clocks disagree
    assert join.pending_labels == 0


def test_an_orphan_label_expires_only_once_both_watermarks_pass_its_time_plus_retention():
    join = LabelJoin(RETENTION)
    join.labelled("m", "orphan", at(10), {"label": 1})
    join.predicted("m", "p1", at(110), {})
    join.labelled("m", "p1", at(110), {})
    assert join.watermark("m") == at(110)
    assert join.advance("m") == []  # 10 is not older than 110 - 100
    join.predicted("m", "p2", at(110.000001), {})
    join.labelled("m", "p2", at(110.000001), {})
    assert join.advance("m") == [Expired(Side.LABEL, "m", "orphan", at(10), {"label": 1})]
    assert join.pending_labels == 0
    assert join.advance("m") == []


def test_a_prediction_never_labelled_expires_on_its_side():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {"score": 0.5})
    join.predicted("m", "p2", at(200), {})
    assert join.labelled("m", "p2", at(200), {"label": 1}) is not None
    assert join.advance("m") == [Expired(Side.PREDICTION, "m", "p1", at(0), {"score": 0.5})]


def test_the_effective_watermark_is_the_earlier_of_the_two_sides():
    store: dict[bytes, bytes] = {}
    join = LabelJoin(RETENTION, store=store)
    join.labelled("m", "l1", at(50), {})
    assert join.watermark("m") is None  # no prediction read yet, of any model: nothing expires
    join.predicted("m", "p1", at(300), {})
    assert join.watermark("m") == at(50)  # the labels lag
    join.labelled("m", "l2", at(20), {})  # a late label does not lower its side
    assert orjson.loads(store[b'["m"]']) == {"label": micros(50), "prediction": micros(300)}
    join.labelled("m", "l3", at(400), {})
    assert join.watermark("m") == at(300)  # now the predictions lag
    assert orjson.loads(store[b'["m"]']) == {"label": micros(400), "prediction": micros(300)}


def test_before_a_models_first_label_its_predictions_wait_for_the_labels_topic_as_a_whole():
    # the worker's predictions agent runs far ahead of its labels agent
    join = LabelJoin(RETENTION)
    join.labelled("other", "q0", at(0), {"label": 1})  # the labels topic has reached 0
    for second in range(0, 10_000, 10):
        join.predicted("m", f"p{second}", at(second), {"score": 0.5})
    assert join.advance("m") == []  # labels are not read past 0 yet: no prediction gives up
    assert join.labelled("m", "p0", at(5), {"label": 0}) is not None  # its label, at last
    join.labelled("m", "p20", at(9_000), {"label": 1})  # the labels catch up
    gone = {e.prediction_id for e in join.advance("m")}
    assert {"p10", "p8000"} <= gone
    assert "p9990" not in gone


def test_a_model_without_labels_lets_its_predictions_go_as_the_labels_topic_passes_them():
    join = LabelJoin(RETENTION, held_before_first_label=100_000)
    for second in range(0, 1_000, 10):
        join.predicted("m", f"p{second}", at(second), {"score": 0.5})
    assert join.advance("m") == []  # no label read at all: nothing to wait for, nothing expires
    join.labelled("other", "q", at(500), {"label": 1})
    gone = {e.prediction_id for e in join.advance("m")}
    assert gone == {f"p{second}" for second in range(0, 500 - 100, 10)}


def test_labels_consumed_far_ahead_of_predictions_wait_for_the_lagging_prediction_side():
    # the worker's labels agent runs ahead of its predictions agent
    join = LabelJoin(RETENTION)
    join.predicted("m", "p0", at(0), {"score": 0.1})
    join.labelled("m", "p1", at(10), {"label": 1})
    join.labelled("m", "p2", at(10_000), {"label": 0})  # the label side is far past 10 + 100
    assert join.watermark("m") == at(0)
    assert join.advance("m") == []  # no orphan: the predictions have not caught up
    assert (join.pending_predictions, join.pending_labels) == (1, 2)
    match = join.predicted("m", "p1", at(20), {"score": 0.9})  # its prediction, at last
    assert match == Match("m", "p1", at(20), {"score": 0.9}, at(10), {"label": 1})
    assert join.advance("m") == []


def test_predictions_consumed_far_ahead_of_labels_wait_for_the_lagging_label_side():
    join = LabelJoin(RETENTION)
    join.labelled("m", "l0", at(0), {})
    join.predicted("m", "p1", at(10), {"score": 0.9})
    join.predicted("m", "p2", at(10_000), {})
    assert join.advance("m") == []  # not unlabelled: the labels have not caught up
    assert join.labelled("m", "p1", at(30), {"label": 1}) == Match(
        "m", "p1", at(10), {"score": 0.9}, at(30), {"label": 1}
    )


def test_an_orphan_label_expires_once_the_lagging_prediction_side_also_passes_it():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p0", at(10), {})
    join.labelled("m", "orphan", at(10), {"label": 1})
    join.labelled("m", "l9", at(10_000), {})
    assert join.advance("m") == []
    join.predicted("m", "p1", at(110), {})
    assert join.advance("m") == []  # 10 is not older than 110 - 100
    join.predicted("m", "p2", at(110.000001), {})
    assert join.advance("m") == [
        Expired(Side.LABEL, "m", "orphan", at(10), {"label": 1}),
        Expired(Side.PREDICTION, "m", "p0", at(10), {}),
    ]
    assert join.pending_labels == 1  # l9, far ahead, still waits


def test_before_any_prediction_is_read_labels_wait_and_then_go_as_predictions_pass_them():
    # the mirror image: labels read before any prediction at all wait, whatever their age
    join = LabelJoin(RETENTION)
    join.labelled("m", "p1", at(0), {"label": 1})
    join.labelled("m", "p2", at(200), {"label": 0})
    assert join.advance("m") == []
    join.predicted("other", "q", at(200), {})  # the predictions topic has reached 200
    assert join.advance("m") == [Expired(Side.LABEL, "m", "p1", at(0), {"label": 1})]


def test_watermarks_are_per_model():
    join = LabelJoin(RETENTION)
    join.labelled("a", "l1", at(5_000), {})
    join.labelled("b", "l1", at(5_000), {})
    join.predicted("a", "p1", at(0), {})
    join.predicted("b", "p1", at(1_000), {})
    assert join.advance("a") == join.advance("b") == []
    assert join.watermark("a") == at(0)
    assert join.watermark("b") == at(1_000)
    assert join.watermark("c") is None


def test_a_second_label_after_a_match_is_already_labelled():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {})
    assert isinstance(join.labelled("m", "p1", at(1), {"label": 1}), Match)
    second = join.labelled("m", "p1", at(2), {"label": 0})
    assert second == AlreadyLabelled("m", "p1", at(2), {"label": 0})
    assert (join.pending_predictions, join.pending_labels, len(join)) == (0, 0, 1)


def test_a_second_label_while_the_first_waits_is_already_labelled_and_the_first_stays():
    join = LabelJoin(RETENTION)
    join.labelled("m", "p1", at(0), {"label": 1})
    assert join.labelled("m", "p1", at(1), {"label": 0}) == AlreadyLabelled(
        "m", "p1", at(1), {"label": 0}
    )
    assert join.pending_labels == 1
    match = join.predicted("m", "p1", at(2), {})
    assert match is not None
    assert match.label == {"label": 1}


def test_a_repeated_prediction_is_counted_keeps_the_first_and_is_never_rejoined():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {"v": 1})
    assert join.predicted("m", "p1", at(3), {"v": 2}) is None
    assert (join.repeated_predictions, join.pending_predictions) == (1, 1)
    assert join.labelled("m", "p1", at(4), {}) == Match("m", "p1", at(0), {"v": 1}, at(4), {})
    assert join.predicted("m", "p1", at(5), {"v": 3}) is None
    assert (join.repeated_predictions, join.pending_predictions) == (2, 0)
    # the marker was not overwritten: a later label is still already labelled
    assert isinstance(join.labelled("m", "p1", at(6), {}), AlreadyLabelled)


def test_the_marker_expires_silently_with_its_prediction_time():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {})
    join.labelled("m", "p1", at(50), {})
    join.predicted("m", "p2", at(101), {})
    join.labelled("m", "q", at(101), {})
    assert join.advance("m") == []  # the marker is gone, and it is not reported
    assert len(join) == 2
    # with the marker gone, a further label for p1 waits, then expires as an orphan
    assert join.labelled("m", "p1", at(102), {"label": 1}) is None
    join.predicted("m", "p3", at(300), {})
    join.labelled("m", "p3", at(300), {})
    expired = join.advance("m")
    assert [(e.side, e.prediction_id) for e in expired] == [
        (Side.PREDICTION, "p2"),
        (Side.LABEL, "q"),
        (Side.LABEL, "p1"),
    ]


def test_a_late_event_still_matches_a_waiting_partner():
    join = LabelJoin(RETENTION)
    join.labelled("m", "p1", at(500), {})
    join.predicted("m", "p0", at(1_000), {})
    join.labelled("m", "l0", at(1_000), {})
    assert join.advance("m") == [Expired(Side.LABEL, "m", "p1", at(500), {})]
    join.predicted("m", "p2", at(950), {})
    assert join.advance("m") == []
    assert isinstance(join.labelled("m", "p2", at(10), {}), Match)  # far behind the watermark


def test_a_late_event_without_partner_expires_at_the_next_advance():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p0", at(1_000), {})
    join.labelled("m", "l0", at(1_000), {})
    assert join.labelled("m", "late", at(10), {"label": 1}) is None
    assert join.advance("m") == [Expired(Side.LABEL, "m", "late", at(10), {"label": 1})]
    assert join.predicted("m", "late-p", at(20), {"score": 0}) is None
    assert join.advance("m") == [Expired(Side.PREDICTION, "m", "late-p", at(20), {"score": 0})]


def test_past_max_entries_the_oldest_of_all_models_is_evicted_and_handed_out_once():
    join = LabelJoin(RETENTION, max_entries=2)
    join.labelled("b", "old", at(5), {"label": 1})
    join.predicted("a", "p1", at(7), {})
    join.predicted("a", "p2", at(6), {})
    assert len(join) == 2
    evicted = Expired(Side.LABEL, "b", "old", at(5), {"label": 1}, evicted=True)
    assert join.advance("a") == [evicted]  # handed out by any model's advance
    assert join.advance("b") == []
    assert join.pending_predictions == 2


def test_advance_lists_in_event_time_order_even_after_several_events():
    join = LabelJoin(RETENTION, max_entries=1)
    join.labelled("b", "q", at(50), {})
    join.predicted("a", "p", at(30), {})  # evicts itself: the oldest
    join.labelled("b", "r", at(20), {})  # evicts itself too, without an advance between
    assert join.advance("a") == [
        Expired(Side.LABEL, "b", "r", at(20), {}, evicted=True),
        Expired(Side.PREDICTION, "a", "p", at(30), {}, evicted=True),
    ]


def test_an_evicted_marker_is_dropped_silently():
    join = LabelJoin(RETENTION, max_entries=1)
    join.predicted("m", "p1", at(0), {})
    join.labelled("m", "p1", at(1), {})
    join.predicted("m", "p2", at(2), {})
    assert join.advance("m") == []
    assert len(join) == 1
    assert join.pending_predictions == 1


def test_a_new_entry_older_than_all_others_can_be_the_one_evicted():
    join = LabelJoin(RETENTION, max_entries=1)
    join.predicted("m", "p1", at(50), {})
    join.labelled("m", "p0", at(40), {"label": 0})
    assert join.advance("m") == [Expired(Side.LABEL, "m", "p0", at(40), {"label": 0}, True)]


def test_the_state_is_json_keys_and_values_in_the_injected_store():
    store: dict[bytes, bytes] = {}
    join = LabelJoin(RETENTION, store=store)
    join.labelled("mødel", "p0", at(0), {"label": 0})
    join.predicted("mødel", "p1", at(1), {"score": 1})
    join.predicted("mødel", "p0", at(2), {"score": 0})
    assert {key.decode() for key in store} == {
        '["mødel"]',
        '["mødel","matched",0]',
        '["mødel","p1"]',
    }
    assert all(isinstance(value, bytes) for value in store.values())
    assert orjson.loads(store['["mødel","p1"]'.encode()]) == ["p", micros(1), {"score": 1}]
    # the marker: p0's digest and its prediction's time, as little-endian int64s
    assert store['["mødel","matched",0]'.encode()] == struct.pack("<qq", digest("p0"), micros(2))
    assert orjson.loads(store['["mødel"]'.encode()]) == {
        "label": micros(0),
        "prediction": micros(2),
    }


def test_markers_share_segments_which_shrink_and_go_as_their_markers_expire():
    store: dict[bytes, bytes] = {}
    join = LabelJoin(RETENTION, store=store)
    count = MARKS_PER_SEGMENT + 3
    for index in range(count):
        join.predicted("m", f"p{index}", at(index), {})
        assert isinstance(join.labelled("m", f"p{index}", at(index), {}), Match)
    segments = sorted(key for key in store if b"matched" in key)
    assert segments == [b'["m","matched",0]', b'["m","matched",1]']
    assert len(store[b'["m","matched",0]']) == 16 * MARKS_PER_SEGMENT
    assert len(join) == count
    # the watermark moves on by the retention plus 2 s: the markers of p0 and p1 expire
    join.predicted("m", "later", at(RETENTION.total_seconds() + 2), {})
    join.labelled("m", "later-label", at(RETENTION.total_seconds() + 2), {})
    assert join.advance("m") == []  # silently
    assert len(store[b'["m","matched",0]']) == 16 * (MARKS_PER_SEGMENT - 2)
    assert len(join) == count - 2 + 2
    assert join.predicted("m", "p0", at(0), {}) is None  # no marker any more: it waits
    assert isinstance(join.labelled("m", "p2", at(3), {}), AlreadyLabelled)
    join.predicted("m", "much-later", at(10 * RETENTION.total_seconds()), {})
    join.labelled("m", "much-later-label", at(10 * RETENTION.total_seconds()), {})
    expired = join.advance("m")
    assert [e.prediction_id for e in expired] == ["p0", "later", "later-label"]
    assert not [key for key in store if b"matched" in key]
    assert len(join) == 2  # the last two, waiting


def test_a_rebuilt_join_knows_the_stored_markers():
    join = LabelJoin(RETENTION)
    for index in range(MARKS_PER_SEGMENT + 1):
        join.predicted("m", f"p{index}", at(index), {})
        join.labelled("m", f"p{index}", at(index), {})
    rebuilt = LabelJoin(RETENTION, store=dict(join.store))
    rebuilt.rebuild()
    assert len(rebuilt) == len(join) == MARKS_PER_SEGMENT + 1
    assert isinstance(rebuilt.labelled("m", "p5", at(70), {}), AlreadyLabelled)
    assert rebuilt.predicted("m", "p5", at(70), {}) is None
    assert rebuilt.repeated_predictions == 1
    assert rebuilt.had_label("m")


def test_markers_written_under_their_own_key_are_still_read():
    old = {
        b'["m"]': orjson.dumps({"prediction": micros(20), "label": micros(15)}),
        b'["m","p1"]': orjson.dumps(["m", micros(12)]),
    }
    join = LabelJoin(RETENTION, store=old)
    join.rebuild()
    assert len(join) == 1
    assert isinstance(join.labelled("m", "p1", at(16), {}), AlreadyLabelled)


def test_entries_written_before_the_compact_format_are_still_read():
    old = {
        b'["m"]': orjson.dumps({"prediction": micros(20), "label": micros(15)}),
        b'["m","p1"]': orjson.dumps({"side": "prediction", "time": micros(10), "payload": [1]}),
        b'["m","p2"]': orjson.dumps({"side": "labelled", "time": micros(12)}),
        b'["m","p3"]': orjson.dumps({"side": "label", "time": micros(15), "payload": [3]}),
    }
    join = LabelJoin(RETENTION, store=old)
    join.rebuild()
    assert (join.pending_predictions, join.pending_labels, len(join)) == (1, 1, 3)
    assert join.labelled("m", "p1", at(16), [4]) == Match("m", "p1", at(10), [1], at(16), [4])
    assert isinstance(join.labelled("m", "p2", at(17), [5]), AlreadyLabelled)
    assert join.predicted("m", "p3", at(18), [6]) == Match("m", "p3", at(18), [6], at(15), [3])


# Models without a label: their predictions are held in memory only.


def test_a_model_without_a_label_writes_nothing_to_the_store():
    store: dict[bytes, bytes] = {}
    join = LabelJoin(RETENTION, store=store)
    for i in range(50):
        join.predicted("m", f"p{i}", at(i), {"score": i})
        join.advance("m")
    assert store == {}
    assert not join.had_label("m")
    assert (join.pending_predictions, join.held_predictions, len(join)) == (50, 50, 50)


def test_the_first_label_moves_the_held_predictions_into_the_store_and_joins():
    store: dict[bytes, bytes] = {}
    join = LabelJoin(RETENTION, store=store)
    join.predicted("m", "p1", at(1), {"score": 1})
    join.predicted("m", "p2", at(2), {"score": 2})
    assert join.labelled("m", "p2", at(3), {"label": 1}) == Match(
        "m", "p2", at(2), {"score": 2}, at(3), {"label": 1}
    )
    assert join.had_label("m")
    assert join.held_predictions == 0
    assert set(store) == {b'["m"]', b'["m","p1"]', b'["m","matched",0]'}  # p2: a marker
    assert join.labelled("m", "p1", at(4), {"label": 0}) is not None
    join.predicted("m", "p3", at(5), {"score": 3})
    assert b'["m","p3"]' in store  # from now on the predictions wait in the store


def test_past_the_held_bound_the_oldest_held_prediction_is_pushed_out_as_unlabelled():
    join = LabelJoin(RETENTION, held_before_first_label=2)
    join.predicted("m", "p1", at(3), {"score": 1})
    join.predicted("m", "p0", at(1), {"score": 0})
    join.predicted("m", "p2", at(5), {"score": 2})
    assert join.advance("m") == [Expired(Side.PREDICTION, "m", "p0", at(1), {"score": 0}, True)]
    assert join.held_predictions == 2
    # its label finds no prediction: it waits, then expires as an orphan
    assert join.labelled("m", "p0", at(6), {"label": 1}) is None
    assert join.labelled("m", "p1", at(7), {"label": 1}) is not None
    join.predicted("m", "p9", at(200), {})
    join.labelled("m", "l9", at(200), {})
    assert [(e.side, e.prediction_id) for e in join.advance("m")] == [
        (Side.PREDICTION, "p2"),
        (Side.LABEL, "p0"),
    ]


def test_a_repeated_held_prediction_id_is_ignored_and_the_first_stays():
    join = LabelJoin(RETENTION, held_before_first_label=100)
    for i in range(60):  # enough for the held predictions' index to grow
        join.predicted("m", f"p{i}", at(i), {"score": i})
    assert join.predicted("m", "p7", at(70), {"score": -1}) is None
    assert (join.held_predictions, join.repeated_predictions) == (60, 1)
    match = join.labelled("m", "p7", at(71), {})
    assert match == Match("m", "p7", at(7), {"score": 7}, at(71), {})


def test_held_predictions_of_equal_event_times_leave_in_arrival_order():
    join = LabelJoin(RETENTION, held_before_first_label=2)
    for prediction_id in ("z", "a", "m"):
        join.predicted("m", prediction_id, at(1), {})
    assert [e.prediction_id for e in join.advance("m")] == ["z"]


def test_held_predictions_do_not_push_out_the_waiting_predictions_of_labelled_models():
    join = LabelJoin(RETENTION, held_before_first_label=1)
    join.labelled("labelled", "l0", at(0), {})
    join.predicted("labelled", "p1", at(1), {})
    for i in range(5):
        join.predicted("quiet", f"q{i}", at(2 + i), {})
    assert join.held_predictions == 1
    assert join.pending_predictions == 2
    assert [e.prediction_id for e in join.advance("quiet")] == ["q0", "q1", "q2", "q3"]


def test_whether_a_model_had_a_label_survives_a_rebuild():
    join = LabelJoin(RETENTION)
    join.labelled("m", "l1", at(0), {})
    join.predicted("quiet", "q1", at(0), {})
    rebuilt = LabelJoin(RETENTION, store=dict(join.store))
    rebuilt.rebuild()
    assert rebuilt.had_label("m")
    assert not rebuilt.had_label("quiet")
    rebuilt.predicted("m", "p2", at(1), {})
    assert b'["m","p2"]' in rebuilt.store


def test_a_restart_before_the_first_label_loses_the_held_predictions_and_their_labels_orphan():
    # The trade-off of holding predictions in memory before a model's first label.
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {"score": 1})
    rebuilt = LabelJoin(RETENTION, store=dict(join.store))
    rebuilt.rebuild()
    assert rebuilt.pending_predictions == 0
    assert rebuilt.labelled("m", "p1", at(10), {"label": 1}) is None
    rebuilt.predicted("m", "p2", at(200), {})
    rebuilt.labelled("m", "p2", at(200), {})
    assert rebuilt.advance("m") == [Expired(Side.LABEL, "m", "p1", at(10), {"label": 1})]


def test_held_predictions_let_go_leave_the_join_and_are_never_pushed_out_later():
    join = LabelJoin(RETENTION, held_before_first_label=2)
    join.predicted("m", "p1", at(3), {"score": 1})
    join.predicted("m", "p0", at(1), {"score": 0})
    join.predicted("other", "q0", at(1), {})
    assert join.let_go_held("m") == [
        ("p0", labels._micros(at(1)), {"score": 0}),
        ("p1", labels._micros(at(3)), {"score": 1}),
    ]
    assert join.let_go_held("m") == []
    assert (join.pending_predictions, join.held_predictions, len(join)) == (1, 1, 1)
    join.predicted("m", "p2", at(5), {})
    assert join.advance("m") == []
    assert join.labelled("m", "p1", at(6), {}) is None  # no longer here: it waits


def test_a_rebuild_keeps_held_predictions_of_models_still_without_a_label():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {"score": 1})
    join.rebuild()  # a rebalance: the store recovered again
    assert (join.pending_predictions, join.held_predictions) == (1, 1)
    assert join.labelled("m", "p1", at(1), {}) == Match("m", "p1", at(0), {"score": 1}, at(1), {})


def test_a_rebuild_pushes_out_held_predictions_of_a_model_the_store_says_had_a_label():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(0), {"score": 1})
    elsewhere = LabelJoin(RETENTION, store=join.store)
    elsewhere.labelled("m", "l1", at(0), {})  # another worker's label, in the shared store
    join.rebuild()
    assert join.had_label("m")
    assert join.advance("m") == [Expired(Side.PREDICTION, "m", "p1", at(0), {"score": 1}, True)]
    assert (join.pending_predictions, join.held_predictions, join.pending_labels) == (0, 0, 1)


def test_event_times_round_trip_exactly_whatever_their_offset():
    join = LabelJoin(RETENTION)
    moment = datetime(2026, 3, 1, 9, 30, 15, 123_457, tzinfo=timezone(timedelta(hours=-5)))
    join.predicted("m", "p1", moment, {})
    match = join.labelled("m", "p1", moment + timedelta(microseconds=1), {})
    assert match is not None
    assert match.prediction_time == moment
    assert match.delay == timedelta(microseconds=1)


def test_a_store_without_watermarks_approximates_them_by_the_latest_stored_time():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(30), {})
    join.predicted("m", "p2", at(80), {})
    join.labelled("m", "p2", at(90), {})
    store = {key: value for key, value in join.store.items() if key != b'["m"]'}
    rebuilt = LabelJoin(RETENTION, store=store)
    rebuilt.rebuild()
    assert join.watermark("m") == at(80)  # the prediction side: 80, the label side: 90
    assert rebuilt.watermark("m") == at(80)  # the marker keeps the prediction's time


def test_the_approximated_watermark_of_both_sides_can_pass_the_lagging_side():
    # Both sides get the latest stored time, whichever side brought it: when
    # one side lagged, the rebuilt watermark is later than the true one.
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(30), {})
    join.labelled("m", "l1", at(500), {})
    store = {key: value for key, value in join.store.items() if key != b'["m"]'}
    rebuilt = LabelJoin(RETENTION, store=store)
    rebuilt.rebuild()
    assert join.watermark("m") == at(30)
    assert rebuilt.watermark("m") == at(500)
    assert join.advance("m") == []
    assert rebuilt.advance("m") == [Expired(Side.PREDICTION, "m", "p1", at(30), {})]


def test_a_rebuilt_join_reads_both_stored_watermarks():
    join = LabelJoin(RETENTION)
    join.predicted("m", "p1", at(30), {})
    join.labelled("m", "l1", at(500), {})
    rebuilt = LabelJoin(RETENTION, store=dict(join.store))
    rebuilt.rebuild()
    assert rebuilt.watermark("m") == join.watermark("m") == at(30)
    assert rebuilt.advance("m") == []


def test_naive_event_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        LabelJoin(RETENTION).predicted("m", "p", datetime(2026, 1, 1), {})
    join = LabelJoin(RETENTION)
    with pytest.raises(ValueError, match="timezone-aware"):
        join.predicted_many("m", ["p", "q"], [at(0), datetime(2026, 1, 1)], [{}, {}])
    assert join.held_predictions == 0


@pytest.mark.parametrize(("retention", "max_entries"), [(timedelta(0), 1), (RETENTION, 0)])
def test_invalid_bounds_are_refused(retention, max_entries):
    with pytest.raises(ValueError, match="must be"):
        LabelJoin(retention, max_entries=max_entries)


# Property tests: streams of (side, model, prediction id, second) events.

events = st.lists(
    st.tuples(
        st.sampled_from([Side.PREDICTION, Side.LABEL]),
        st.sampled_from(["a", "b"]),
        st.integers(min_value=0, max_value=7).map(str),
        st.integers(min_value=0, max_value=60),
    ),
    max_size=80,
)
retentions = st.integers(min_value=1, max_value=30).map(lambda s: timedelta(seconds=s))
bounds = st.one_of(st.integers(min_value=1, max_value=8), st.just(1_000_000))


def feed(join, index, event):
    """Give one event to the join (its payload names it); what the join said."""
    side, model, prediction_id, second = event
    arrive = join.predicted if side is Side.PREDICTION else join.labelled
    repeated = join.repeated_predictions
    result = arrive(model, prediction_id, at(second), {"event": index})
    if join.repeated_predictions != repeated:
        assert join.repeated_predictions == repeated + 1
        assert result is None
        result = "repeated"
    return result, join.advance(model)


def finish(join):
    """Advance both sides of both models far past everything, with fresh ids.

    What expires, and what the ends' evictions hand out, by event index; the
    ends are -1 (predictions) and -2 (labels), and they stay pending unless
    evicted.
    """
    settled = []
    for model in ("a", "b"):
        assert join.predicted(model, "end", at(10_000), {"event": -1}) is None
        assert join.labelled(model, "end-label", at(10_000), {"event": -2}) is None
        settled += [e.payload["event"] for e in join.advance(model)]
    return settled


def accounted(index, result, expired):
    """The event indices the outcome of event ``index`` settles."""
    settled = [e.payload["event"] for e in expired]
    if isinstance(result, Match):
        settled += [result.prediction["event"], result.label["event"]]
    elif isinstance(result, AlreadyLabelled):
        settled.append(result.payload["event"])
    elif result == "repeated":
        settled.append(index)
    return settled


@settings(max_examples=300, deadline=None)
@given(events, retentions, bounds)
def test_every_event_is_accounted_exactly_once(stream, retention, max_entries):
    join = LabelJoin(retention, max_entries=max_entries)
    settled: list[int] = []
    for index, event in enumerate(stream):
        settled += accounted(index, *feed(join, index, event))
        assert len(join) <= max_entries
    settled += finish(join)
    assert sorted(e for e in settled if e >= 0) == list(range(len(stream)))
    # the four ends stay pending, unless the bound evicted some of them
    assert join.pending_predictions + settled.count(-1) == 2
    assert join.pending_labels + settled.count(-2) == 2
    assert len(join) == min(4, max_entries)


@settings(max_examples=300, deadline=None)
@given(events, retentions, bounds, st.data())
def test_a_join_rebuilt_from_a_copy_of_its_store_continues_identically(
    stream, retention, max_entries, data
):
    # Both models have had a label, so everything waits in the store (held
    # predictions are lost by a restart: see the test above).
    stream = [(Side.LABEL, model, "first", 0) for model in "ab"] + stream
    split = data.draw(st.integers(min_value=0, max_value=len(stream)))
    join = LabelJoin(retention, max_entries=max_entries)
    for index, event in enumerate(stream[:split]):
        feed(join, index, event)
    rebuilt = LabelJoin(retention, store=dict(join.store), max_entries=max_entries)
    rebuilt.rebuild()
    for index, event in enumerate(stream[split:], start=split):
        assert feed(rebuilt, index, event) == feed(join, index, event)
        assert (rebuilt.pending_predictions, rebuilt.pending_labels, len(rebuilt)) == (
            join.pending_predictions,
            join.pending_labels,
            len(join),
        )
    assert rebuilt.store == join.store
    assert [rebuilt.watermark(m) for m in "ab"] == [join.watermark(m) for m in "ab"]
    assert finish(rebuilt) == finish(join)
    assert rebuilt.store == join.store


@settings(max_examples=300, deadline=None)
@given(events, retentions, st.integers(min_value=1, max_value=4))
def test_a_bounded_join_is_an_unbounded_one_until_the_bound_forces_an_eviction(
    stream, retention, max_entries
):
    tight = LabelJoin(retention, max_entries=max_entries)
    roomy = LabelJoin(retention)
    for index, (side, model, prediction_id, second) in enumerate(stream):
        arrive = "predicted" if side is Side.PREDICTION else "labelled"
        args = (model, prediction_id, at(second), {"event": index})
        result = getattr(tight, arrive)(*args)
        assert result == getattr(roomy, arrive)(*args)
        forced = len(roomy) > max_entries
        expired, roomy_expired = tight.advance(model), roomy.advance(model)
        evicted = [e for e in expired if e.evicted]
        if evicted or len(tight) != len(roomy):
            # forced, and early: one entry (a marker goes silently) that the unbounded join keeps
            assert forced
            assert len(roomy) == len(tight) + 1
            assert len(evicted) <= 1
            assert not {e.payload["event"] for e in evicted} & {
                e.payload["event"] for e in roomy_expired
            }
            return
        assert expired == roomy_expired
        assert len(tight) == len(roomy) <= max_entries


def test_models_without_a_label_share_max_held_and_each_keeps_its_latest():
    join = LabelJoin(RETENTION, held_before_first_label=3, max_held=4)
    for second in range(3):
        join.predicted("a", f"a{second}", at(second), {})
    assert join.held_predictions == 3  # alone, "a" holds its own cap
    join.predicted("b", "b0", at(10), {})
    join.predicted("b", "b1", at(11), {})
    join.predicted("b", "b2", at(12), {})  # two models: 2 each
    assert [(e.prediction_id, e.evicted) for e in join.advance("b")] == [("b0", True)]
    join.predicted("a", "a3", at(3), {})
    assert [e.prediction_id for e in join.advance("a")] == ["a0", "a1"]
    assert join.held_predictions == 4
    match = join.labelled("a", "a3", at(4), {})
    assert isinstance(match, Match)
    assert match.prediction_time == at(3)


def test_max_held_must_not_be_negative():
    with pytest.raises(ValueError, match="max_held"):
        LabelJoin(RETENTION, max_held=-1)


def test_the_items_of_matched_entries_are_swept_from_the_heap():
    join = LabelJoin(RETENTION)
    for index in range(5 * labels.STALE_SWEEP_AT):
        join.predicted("m", f"p{index}", at(index / 1_000), {})
        join.labelled("m", f"p{index}", at(index / 1_000), {})
    assert len(join._waiting["m"]) <= 2 * labels.STALE_SWEEP_AT  # not one per match


@settings(max_examples=200, deadline=None)
@given(events, retentions, bounds)
def test_sweeping_the_heap_changes_no_answer(stream, retention, max_entries):
    def run():
        join = LabelJoin(retention, max_entries=max_entries)
        answers = [feed(join, index, event) for index, event in enumerate(stream)]
        return answers, finish(join), join.store

    unswept = run()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labels, "STALE_SWEEP_AT", 1)
        assert run() == unswept


def kept_times(join):
    """The event time of every entry the join keeps: stored, held, and markers."""
    times = [time for held in join._held.values() for _, time, _ in held]
    for key, value in join.store.items():
        parts = orjson.loads(key)
        if len(parts) == 2:
            times.append(orjson.loads(value)[1])
        elif len(parts) == 3:
            times += [time for _, time in struct.iter_unpack("<qq", value)]
    return times


def test_past_the_bound_a_round_evicts_the_oldest_of_all_models_down_to_its_share():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labels, "EVICTION_ROUND", 4)  # bound 8: down to 6
        join = LabelJoin(RETENTION, max_entries=8)
        for second in range(4):  # "a" labels p0..p3: four markers
            join.predicted("a", f"p{second}", at(second), {})
            join.labelled("a", f"p{second}", at(second + 50), {})
        for second in range(4, 8):
            join.labelled("b", f"q{second}", at(second), {})
        assert len(join) == 8
        join.predicted("b", "late", at(9), {})
        assert len(join) == 6  # the three oldest went: markers p0, p1 and p2
        assert join.advance("b") == []  # markers go silently
        assert sorted(kept_times(join)) == [micros(second) for second in (3, 4, 5, 6, 7, 9)]
        rebuilt = LabelJoin(RETENTION, store=dict(join.store), max_entries=8)
        rebuilt.rebuild()
        assert len(rebuilt) == 6
        assert join.labelled("a", "p0", at(60), {}) is None  # its marker is gone: it waits
        assert isinstance(join.labelled("a", "p3", at(60), {}), labels.AlreadyLabelled)


@st.composite
def labelled_events(draw):
    """Predictions with unique ids, most of them labelled some seconds later, in arrival
    order: many markers, which evictions take first, as in a worker at its bound."""
    arrivals = []
    for index, (model, second, delay) in enumerate(
        draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["a", "b"]),
                    st.integers(min_value=0, max_value=40),
                    st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
                ),
                max_size=40,
            )
        )
    ):
        arrivals.append((second, index, (Side.PREDICTION, model, str(index), second)))
        if delay is not None:
            arrivals.append(
                (second + delay, index, (Side.LABEL, model, str(index), second + delay))
            )
    return [event for *_, event in sorted(arrivals)]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(events, labelled_events()),
    retentions,
    st.integers(min_value=1, max_value=12),
    st.integers(1, 4),
)
def test_a_round_of_evictions_takes_the_oldest_and_accounts_every_event(
    stream, retention, max_entries, eviction_round
):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labels, "EVICTION_ROUND", eviction_round)
        join = LabelJoin(retention, max_entries=max_entries)
        settled: list[int] = []
        for index, event in enumerate(stream):
            result, expired = feed(join, index, event)
            settled += accounted(index, result, expired)
            kept = kept_times(join)
            assert len(kept) == len(join) <= max_entries
            evicted = [micros((e.event_time - START).total_seconds()) for e in expired if e.evicted]
            if evicted and kept:
                assert max(evicted) <= min(kept)  # the oldest went, not some newer one
        rebuilt = LabelJoin(retention, store=dict(join.store), max_entries=max_entries)
        rebuilt.rebuild()
        assert len(rebuilt) == len(join) - join.held_predictions  # the segments agree
        settled += finish(join)
    assert sorted(e for e in settled if e >= 0) == list(range(len(stream)))


# predicted_many: the predictions of a batch together, as one by one.


def state_of(join):
    """What a join's later answers depend on, as comparable data."""
    held = {model: list(predictions) for model, predictions in join._held.items()}
    return (
        held,
        join.store,
        join._watermarks,
        join._furthest,
        join.pending_predictions,
        join.pending_labels,
        len(join),
        join.repeated_predictions,
    )


prediction_runs = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=400).map(str),
                st.integers(min_value=0, max_value=90),
            ),
            max_size=12,
        ),
        st.sampled_from([True, True, True, False]),  # in event-time order (usual), or as drawn
    ),
    max_size=12,
)
# Between runs, now and then: a label (of "c" too, which never predicts but
# moves the labels topic on), or a lone prediction.
between = st.lists(
    st.one_of(
        st.none(),
        st.tuples(
            st.sampled_from([Side.PREDICTION, Side.LABEL]),
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=0, max_value=400).map(str),
            st.integers(min_value=0, max_value=90),
        ),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    prediction_runs,
    between,
    retentions,
    st.integers(min_value=0, max_value=6),
    st.one_of(st.integers(min_value=0, max_value=12), st.just(100_000)),
    st.one_of(st.integers(min_value=4, max_value=30), st.just(1_000_000)),
)
def test_predictions_given_together_are_joined_as_one_by_one_and_held_the_short_way(
    runs, interleaved, retention, held_before_first_label, max_held, max_entries
):
    bounds = {
        "max_entries": max_entries,
        "held_before_first_label": held_before_first_label,
        "max_held": max_held,
    }
    together, alone = LabelJoin(retention, **bounds), LabelJoin(retention, **bounds)
    short = LabelJoin(retention, **bounds)  # the short way when it can: held_many
    index = 0
    for number, (model, predictions, ordered) in enumerate(runs):
        if ordered:
            predictions = sorted(predictions, key=lambda prediction: prediction[1])
        ids = [prediction_id for prediction_id, _ in predictions]
        times = [at(second) for _, second in predictions]
        payloads = [{"event": index + offset} for offset in range(len(predictions))]
        index += len(predictions)
        expected = [
            (alone.predicted(model, *arguments), alone.advance(model))
            for arguments in zip(ids, times, payloads, strict=True)
        ]
        assert together.predicted_many(model, ids, times, payloads) == expected
        assert state_of(together) == state_of(alone)
        pushed = short.held_many(model, ids, times, payloads)
        if pushed is None:
            assert short.predicted_many(model, ids, times, payloads) == expected
        else:  # only what was never labelled leaves, and nothing matches
            assert all(match is None for match, _ in expected)
            assert all(
                e.side is Side.PREDICTION and e.model_id == model for _, g in expected for e in g
            )
            assert pushed == [(i, e.payload) for i, (_, gone) in enumerate(expected) for e in gone]
        assert state_of(short) == state_of(alone)
        if number < len(interleaved) and interleaved[number] is not None:
            fed = feed(alone, -1, interleaved[number])
            assert feed(together, -1, interleaved[number]) == fed
            assert feed(short, -1, interleaved[number]) == fed
            assert state_of(together) == state_of(alone) == state_of(short)


def test_the_predictions_of_a_model_without_labels_go_together_the_short_way():
    join = LabelJoin(RETENTION, held_before_first_label=3)
    join.labelled("other", "x", at(0), {})  # the labels topic has come this far
    join.predicted("m", "p0", at(1), {"event": 0})
    ids = [f"p{n}" for n in range(1, 6)]
    results = join.predicted_many(
        "m", ids, [at(n) for n in range(1, 6)], [{"event": n} for n in range(1, 6)]
    )
    assert [match for match, _ in results] == [None] * 5
    assert [[e.prediction_id for e in gone] for _, gone in results] == [
        [],
        [],
        ["p0"],
        ["p1"],
        ["p2"],
    ]
    assert all(e.evicted for _, gone in results for e in gone)
    assert [prediction_id for prediction_id, _, _ in join._held["m"]] == ["p3", "p4", "p5"]


def test_held_predictions_that_leave_together_leave_in_time_then_id_order():
    """Two held at one time leave after one prediction as advance() hands them out."""
    short, alone = LabelJoin(RETENTION), LabelJoin(RETENTION)
    ids, times, payloads = ["p9", "p1"], [at(0), at(0)], [{"event": 9}, {"event": 1}]
    assert short.held_many("m", ids, times, payloads) == []
    for arguments in zip(ids, times, payloads, strict=True):
        alone.predicted("m", *arguments)
    for join in (short, alone):
        join.labelled("other", "x", at(500), {})  # the labels topic moves on
    pushed = short.held_many("m", ["p5"], [at(500)], [{"event": 5}])
    [(match, gone)] = [(alone.predicted("m", "p5", at(500), {"event": 5}), alone.advance("m"))]
    assert match is None
    assert [e.prediction_id for e in gone] == ["p1", "p9"]
    assert pushed == [(0, {"event": 1}), (0, {"event": 9})]
