"""Replay of one model in two processes, one after the other: the outputs and counts of one."""

import json
import multiprocessing
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replays import refused_lines, replayed

from driftline.agents.intake import InputMessage, InputTopic, Intake, Screened
from driftline.monitors.feature_rows import FeatureRow
from driftline.monitors.positions import Position
from driftline.pipelined_replay import (
    SMALLEST_RAMPED,
    cut_to_pieces,
    event_columns,
    event_pickle,
    ramped,
    remade_events,
)
from driftline.replay import Replay
from driftline.schemas import FeatureEvent, LabelEvent, PredictionEvent
from driftline.simulate import (
    simulated_classifier_spec,
    simulated_classifier_traffic,
    simulated_model_spec,
    simulated_predictions,
)
from driftline.streams.settings import Settings


def lines_of(count: int, *, shift_at: int, version: str = "1", seed: int = 0) -> list[bytes]:
    return [
        event.model_dump_json().encode()
        for event in simulated_predictions(
            count, shift_at=shift_at, shift=1.0, model_version=version, seed=seed
        )
    ]


def bad_lines(good: bytes) -> list[bytes]:
    """Lines a worker refuses, made from a good one: each a reason of its own."""
    return [*refused_lines(good), good[:-7]]


SPEC = [simulated_model_spec()]


@pytest.fixture(scope="module")
def mixed() -> list[bytes]:
    lines = lines_of(8_000, shift_at=4_000)
    bad = bad_lines(lines[0])
    # Bad lines and repeats spread over the batches, the first ones before any good line.
    return [*bad[:2], *lines[:4_000], *bad[2:], lines[10], *lines[4_000:], lines[5_000], bad[0]]


def test_one_model_goes_through_two_processes_with_one_processs_outputs_and_counts(mixed):
    alone = replayed(mixed, 1, SPEC)
    outputs, counters, run = replayed(mixed, 2, SPEC)
    assert run.processes == 2
    assert outputs == alone[0]
    assert counters == alone[1]
    predictions = counters.topics[InputTopic.PREDICTIONS]
    assert predictions.duplicates == 2
    assert predictions.processed == 8_000
    assert set(predictions.dead_letter_reasons) >= {"invalid_json", "unknown_model"}
    assert sum(1 for output in outputs if '"status":"open"' in output) >= 1
    assert multiprocessing.active_children() == []


def test_a_classifiers_labels_are_joined_as_in_one_process(tmp_path: Path):
    spec = simulated_classifier_spec()
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    with events.open("w") as predicted, labels.open("w") as labelled:
        for event in simulated_classifier_traffic(4_000, shift_at=2_000):
            print(event.model_dump_json(), file=labelled if hasattr(event, "label") else predicted)
    with labels.open("a") as labelled:  # a repeated label, and one of no prediction
        first = json.loads(labels.read_text().splitlines()[0])
        print(json.dumps(first), file=labelled)
        print(json.dumps({**first, "event_id": "x", "prediction_id": "never-made"}), file=labelled)
    runs = [Replay([spec], batch_size=700, processes=processes) for processes in (1, 2)]
    outputs = [[o.model_dump_json() for o in run.feed_file(events, labels)] for run in runs]
    assert runs[1].processes == 2
    assert outputs[0] == outputs[1]
    assert sum(1 for output in outputs[0] if '"realized"' in output) >= 3  # performance reports
    assert runs[0].intake.counters == runs[1].intake.counters
    labelled = runs[1].intake.counters.topics[InputTopic.LABELS]
    assert (labelled.processed, labelled.duplicates, labelled.waiting) == (4_000, 1, 1)


def test_versions_past_the_limit_are_refused_as_in_one_process():
    specs = [simulated_model_spec(model_version=version) for version in ("1", "2", "3")]
    lines = [
        line
        for some in zip(
            *[lines_of(500, shift_at=250, version=v, seed=n) for n, v in enumerate("123")],
            strict=True,
        )
        for line in some
    ]
    limited = Settings(max_models=2)
    alone = replayed(lines, 1, specs, batch_size=300, settings=limited)
    outputs, counters, _ = replayed(lines, 2, specs, batch_size=300, settings=limited)
    assert (outputs, counters) == alone[:2]
    assert counters.topics[InputTopic.PREDICTIONS].dead_letter_reasons["model_limit"] == 500


LINES = lines_of(400, shift_at=200)
POOL = [*LINES, *bad_lines(LINES[0])]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=300),
    batch_size=st.sampled_from([1, 7, 50, 500]),
)
def test_any_mix_of_lines_replays_alike_in_two_processes(picks, batch_size):
    lines = [POOL[pick] for pick in sorted(picks)]  # in order: drift tests see time go on
    alone = replayed(lines, 1, SPEC, batch_size=batch_size)
    piped = replayed(lines, 2, SPEC, batch_size=batch_size)
    assert piped[:2] == alone[:2]


def test_a_failing_monitoring_process_fails_the_replay_with_its_traceback(monkeypatch):
    processed = Intake.process_screened

    def failing(self: Intake, screened: Screened) -> list[list]:
        if any(place >= 100 for place, _, _ in screened.arrived):
            raise ValueError("the monitors broke")
        return processed(self, screened)

    monkeypatch.setattr(Intake, "process_screened", failing)  # the forked process has it too
    run = Replay([simulated_model_spec()], batch_size=200, processes=2)
    with pytest.raises(RuntimeError, match="monitoring process failed") as raised:
        list(run.feed(lines_of(1_000, shift_at=500)))
    assert "ValueError: the monitors broke" in str(raised.value)
    assert multiprocessing.active_children() == []


def test_a_monitoring_process_killed_fails_the_replay_with_its_exit_code(monkeypatch):
    processed = Intake.process_screened

    def dying(self: Intake, screened: Screened) -> list[list]:
        if any(place >= 100 for place, _, _ in screened.arrived):
            os._exit(3)  # as a process killed mid-batch ends: without a word
        return processed(self, screened)

    monkeypatch.setattr(Intake, "process_screened", dying)
    run = Replay([simulated_model_spec()], batch_size=200, processes=2)
    with pytest.raises(RuntimeError, match="exit code 3"):
        list(run.feed(lines_of(3_000, shift_at=1_500)))
    assert multiprocessing.active_children() == []


def test_a_pipelined_replay_stopped_early_leaves_no_process_behind_and_is_fed_once():
    run = Replay([simulated_model_spec()], batch_size=100, processes=2)
    outputs = run.feed([b"not json", *lines_of(500, shift_at=500)])
    next(outputs)
    assert len(multiprocessing.active_children()) == 1
    outputs.close()
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="fed once"):
        list(run.feed(lines_of(10, shift_at=10)))


TIME = "2026-01-01T00:00:00Z"
EVENT_JSON = st.fixed_dictionaries(
    {
        "model_id": st.text(min_size=1, max_size=5),
        "model_version": st.sampled_from(["1", "2"]),
        "event_id": st.text(min_size=1, max_size=5),
        "event_time": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T01:00:00.5+02:00"]),
    },
    optional={
        "features": st.dictionaries(
            st.text(min_size=1, max_size=3),
            st.none()
            | st.booleans()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            max_size=4,
        ),
        "prediction": st.floats(allow_nan=False, allow_infinity=False) | st.text(min_size=1),
        "interval": st.just({"lower": 0.0, "upper": 1.0}),
        "probabilities": st.just({"a": 0.25, "b": 0.75}),
    },
)


def drawn_events(
    documents: list[dict[str, object]], data: st.DataObject
) -> list[PredictionEvent | FeatureEvent | LabelEvent]:
    events: list[PredictionEvent | FeatureEvent | LabelEvent] = [
        PredictionEvent.model_validate_json(json.dumps(document)) for document in documents
    ]
    if data.draw(st.booleans()):
        common = {"model_id": "m", "event_id": "e", "prediction_id": "p", "event_time": TIME}
        label = data.draw(st.sampled_from([1.0, "yes"]))
        events.append(LabelEvent.model_validate_json(json.dumps(common | {"label": label})))
        features = {"model_version": "1", "features": {"x": 1.5, "y": None}}
        events.append(FeatureEvent.model_validate_json(json.dumps(common | features)))
    return events


def assert_remade(remade: list[object], events: list[object]) -> None:
    assert remade == events
    assert [type(event) for event in remade] == [type(event) for event in events]
    for event, again in zip(events, remade, strict=True):
        assert again.model_fields_set == event.model_fields_set
        assert again.model_dump_json() == event.model_dump_json()


@given(st.lists(EVENT_JSON, max_size=5), st.data())
def test_events_cross_whole_remade_from_their_fields(documents, data):
    events = drawn_events(documents, data)
    assert_remade(pickle.loads(event_pickle(events)), events)


@given(st.lists(EVENT_JSON, max_size=8), st.data())
def test_events_cross_as_columns_sharing_their_sets_of_fields(documents, data):
    events = drawn_events(documents, data)
    places = data.draw(st.permutations(range(len(events))))
    laid_out, matrices = event_columns(zip(places, events, strict=True))
    # Events of a type given the same fields share one set, which the pickle holds once.
    assert sum(len(columns.given) for columns in laid_out) == len(
        {(type(event), frozenset(event.model_fields_set)) for event in events}
    )
    remade = remade_events(*pickle.loads(event_pickle((laid_out, matrices))))
    assert [place for place, _ in remade] == sorted(places)
    events = [events[places.index(place)] for place in sorted(places)]
    # Features that are all floats cross in a matrix, and come back as its rows: mappings of
    # the same items. The events are otherwise as they were.
    for event, (_, again) in zip(events, remade, strict=True):
        features = getattr(event, "features", None)
        in_matrix = bool(features) and {type(value) for value in features.values()} == {float}
        assert isinstance(getattr(again, "features", None), FeatureRow) is in_matrix
    assert_remade([as_dicts(event) for _, event in remade], events)


def as_dicts(event: PredictionEvent | FeatureEvent | LabelEvent) -> object:
    """The event with its features as a dict: a row of a matrix is not for serializing."""
    features = getattr(event, "features", None)
    if not isinstance(features, FeatureRow):
        return event
    fields = event.model_fields_set
    again = event.model_copy(update={"features": dict(features)})
    assert again.model_fields_set == fields
    return again


batch_sizes = st.lists(
    st.tuples(st.integers(min_value=0, max_value=300), st.booleans()), max_size=6
)


def batches_of(sizes: list[tuple[int, bool]]) -> tuple[list[list[InputMessage]], int]:
    """Batches of predictions of these sizes, a label amid those marked; and how many messages."""
    messages, made = [], 0
    for size, with_a_label in sizes:
        topics = [InputTopic.PREDICTIONS] * size
        if with_a_label and size:
            topics[size // 2] = InputTopic.LABELS
        messages.append(
            [
                InputMessage(topic, b"{}", None, Position("f", 0, made + n))
                for n, topic in enumerate(topics)
            ]
        )
        made += size
    return messages, made


@given(batch_sizes, st.integers(min_value=1, max_value=120))
def test_batches_of_predictions_alone_cross_in_even_pieces_of_at_most_the_most(sizes, most):
    messages, made = batches_of(sizes)
    pieces = list(cut_to_pieces(messages, most))
    assert [m.source.offset for piece in pieces for m in piece] == list(range(made))
    at = 0
    for batch in messages:  # each batch's pieces follow one another
        taken = 0
        sizes_cut = []
        while taken < len(batch) or (not batch and not sizes_cut):
            sizes_cut.append(len(pieces[at]))
            taken += len(pieces[at])
            at += 1
        assert taken == len(batch)
        if len(batch) <= most or any(m.topic is InputTopic.LABELS for m in batch):
            assert sizes_cut == [len(batch)]  # whole
        else:
            assert max(sizes_cut) <= most
            assert max(sizes_cut) - min(sizes_cut[:-1] or sizes_cut) <= 1
            assert len(sizes_cut) == -(-len(batch) // most)
    assert at == len(pieces)


@given(batch_sizes)
def test_ramped_batches_hold_the_messages_in_order_the_ends_of_predictions_cut_small(batches):
    messages, made = batches_of(batches)
    pieces = list(ramped(messages))
    assert [m.source.offset for piece in pieces for m in piece] == list(range(made))
    assert all(pieces)
    whole = [batch for batch in messages if batch]
    if not whole:
        assert pieces == []
        return
    cut = {id(batch): len(batch) >= SMALLEST_RAMPED for batch in whole}
    ends = (whole[0], whole[-1])
    for batch in whole:  # a batch with a label, or between the ends, goes whole
        labelled = any(m.topic is InputTopic.LABELS for m in batch)
        if labelled or not any(batch is end for end in ends):
            cut[id(batch)] = False
    if len(whole) == 1:
        cut[id(whole[0])] = cut[id(whole[0])] and len(whole[0]) // 2 >= SMALLEST_RAMPED
    expected = 0
    for batch in whole:
        if not cut[id(batch)]:
            expected += 1
            assert batch in pieces
        else:
            expected += 8 if len(whole) == 1 else 4
    assert len(pieces) == expected
    if cut[id(whole[0])]:  # the first piece an eighth of the first batch (a sixteenth alone)
        assert len(pieces[0]) == len(whole[0]) // (16 if len(whole) == 1 else 8)
    if cut[id(whole[-1])]:
        assert len(pieces[-1]) <= len(whole[-1]) // 8 + 1
