"""The intake's decisions, message by message, without Kafka."""

import base64
import logging
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.agents.intake import (
    ALERTS_LOGGER,
    InputMessage,
    InputTopic,
    Intake,
    prediction_violation,
)
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry, Registration, Unregistration
from driftline.monitors.dedup import RecentEventIds
from driftline.monitors.positions import Position
from driftline.monitors.quality import DataQualityMonitor
from driftline.schemas import (
    Alert,
    DeadLetter,
    FeatureEvent,
    KafkaPosition,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
)
from driftline.schemas.lines import alert_line
from driftline.simulate import START, simulated_model_spec, simulated_predictions
from driftline.streams.settings import DEAD_LETTER_TEXT_BYTES, Settings

SPEC = simulated_model_spec()
DRIFT_OF_X = {"x", "(prediction)", "(multivariate)"}
"""What x's shift moves: x, the score computed from it, and the features together."""


def intake_with(*specs: ModelSpec, **overrides: object) -> Intake:
    registry = ModelRegistry()
    intake = Intake(Settings(**overrides), registry)
    for spec in specs:
        registry.apply(Registration(spec))
    return intake


def message(
    topic: InputTopic, value: bytes | None, offset: int = 0, *, key: bytes | None = b"demo-model"
) -> InputMessage:
    return InputMessage(
        topic=topic,
        value=value,
        key=key,
        source=Position(topic.value, 0, offset),  # as the worker gives it
        timestamp=(START + timedelta(days=1)).timestamp(),
    )


def feed(intake: Intake, topic: InputTopic, events: list, start: int = 0) -> list[Output]:
    outputs: list[Output] = []
    for offset, event in enumerate(events, start):
        outputs += intake.handle(message(topic, event.model_dump_json().encode(), offset))
    return outputs


def letters(outputs: list[Output]) -> list[DeadLetter]:
    return [
        DeadLetter.model_validate_json(o.value)
        for o in outputs
        if o.destination is Destination.DEAD_LETTERS
    ]


def alerts(outputs: list[Output]) -> list[Alert]:
    return [
        Alert.model_validate_json(o.value) for o in outputs if o.destination is Destination.ALERTS
    ]


def assert_batched_as_one_by_one(
    messages: list[InputMessage], size: int, *specs: ModelSpec, **overrides: object
) -> list[Output]:
    """Handle the messages one by one in an intake, ``size`` at a time in another: the same
    outputs and counts. The outputs."""
    one, batched = intake_with(*specs, **overrides), intake_with(*specs, **overrides)
    expected = [output for m in messages for output in one.handle(m)]
    got: list[Output] = []
    for start in range(0, len(messages), size):
        got += batched.handle_batch(messages[start : start + size])
    assert [(o.destination, o.key, o.value) for o in got] == [
        (o.destination, o.key, o.value) for o in expected
    ]
    assert batched.counters.topics == one.counters.topics
    return expected


def prediction(index: int, **changes: object) -> PredictionEvent:
    [event] = simulated_predictions(1, shift_at=10, start=START + timedelta(seconds=index))
    return event.model_copy(update={"event_id": f"e{index}", **changes})


def test_drifting_traffic_yields_alerts_for_the_drifting_feature_only():
    intake = intake_with(SPEC)
    events = list(simulated_predictions(4_000, shift_at=2_000, seed=4))
    found = alerts(feed(intake, InputTopic.PREDICTIONS, events))
    subjects = {alert.feature for alert in found if alert.feature is not None}
    assert "x" in subjects
    assert subjects <= DRIFT_OF_X
    [group] = {alert.alert_id for alert in found if alert.feature is None}
    assert {alert.group_id for alert in found if alert.feature is not None} == {group}
    assert {alert.kind.value for alert in found} == {"drift"}
    assert all(alert.source and alert.source.offset >= 2_000 for alert in found)
    counters = intake.counters.topics[InputTopic.PREDICTIONS]
    assert (counters.processed, counters.dead_lettered, counters.duplicates) == (4_000, 0, 0)
    opened = [alert for alert in found if alert.status.value == "open"]
    assert intake.counters.alerts["drift"] == len(opened)
    assert len({alert.alert_id for alert in opened}) == len(opened) == len(subjects) + 1


def test_each_alert_sent_is_logged_once_as_its_one_line(caplog: pytest.LogCaptureFixture):
    intake = intake_with(SPEC)
    events = list(simulated_predictions(2_400, shift_at=2_100, seed=4))
    with caplog.at_level(logging.WARNING, logger=ALERTS_LOGGER):
        found = alerts(feed(intake, InputTopic.PREDICTIONS, events))
    assert found
    logged = [r for r in caplog.records if r.name == ALERTS_LOGGER]
    assert [record.getMessage() for record in logged] == [alert_line(a) for a in found]
    assert {record.levelno for record in logged} == {logging.WARNING}


def test_a_jump_in_missing_values_raises_a_data_quality_alert_for_that_feature():
    intake = intake_with(SPEC)
    events = list(simulated_predictions(6_000, shift_at=10**9, missing_from=3_000, seed=2))
    found = alerts(feed(intake, InputTopic.PREDICTIONS, events))
    assert [(a.kind.value, a.feature, a.evidence.check.value) for a in found] == [
        ("data_quality", "y", "missing")
    ]
    assert found[0].source is not None
    assert found[0].source.offset >= 3_000
    assert found[0].evidence.rate > found[0].evidence.tolerated_rate


def test_a_clean_stream_raises_no_data_quality_alert():
    intake = intake_with(SPEC)
    events = list(simulated_predictions(20_000, shift_at=10**9, seed=3))
    assert alerts(feed(intake, InputTopic.PREDICTIONS, events)) == []


def test_events_of_an_unregistered_model_are_dead_lettered_until_it_is_registered():
    intake = intake_with()
    [letter] = letters(feed(intake, InputTopic.PREDICTIONS, [prediction(0)]))
    assert letter.reason.value == "unknown_model"
    assert letter.field_path == "model_id"
    assert "register" in letter.message
    intake.registry.apply(Registration(SPEC))
    assert feed(intake, InputTopic.PREDICTIONS, [prediction(0)]) == []
    intake.registry.apply(Unregistration(("demo-model", "1")))
    [letter] = letters(feed(intake, InputTopic.PREDICTIONS, [prediction(1)]))
    assert letter.reason.value == "unknown_model"


def test_a_prediction_that_breaks_the_spec_is_dead_lettered_with_the_field():
    intake = intake_with(SPEC)
    [letter] = letters(feed(intake, InputTopic.PREDICTIONS, [prediction(0, prediction="yes")]))
    assert (letter.reason.value, letter.field_path) == ("spec_violation", "prediction")
    assert "regression" in letter.message


CLASSIFIER = ModelSpec(
    model_id="c", model_version="2", task="classification", classes=["yes", "no"], features=[]
)


@pytest.mark.parametrize(
    ("spec", "changes", "field_path", "said"),
    [
        (SPEC, {"prediction": "yes"}, "prediction", "must be a number"),
        (SPEC, {"probabilities": {"a": 1.0}}, "probabilities", "not class probabilities"),
        (CLASSIFIER, {"prediction": 0.5}, "prediction", "must be a class label"),
        (CLASSIFIER, {"interval": {"lower": 0, "upper": 1}}, "interval", "no prediction interval"),
        (CLASSIFIER, {"prediction": "maybe"}, "prediction", "predicts one of 'yes', 'no'"),
        (CLASSIFIER, {"probabilities": {"yes": 0.5, "zz": 0.5}}, "probabilities.zz", "name 'zz'"),
        (CLASSIFIER, {"prediction": "no", "probabilities": {"yes": 0.2, "no": 0.8}}, None, ""),
        (SPEC, {"prediction": 0.5}, None, ""),
    ],
)
def test_a_prediction_must_fit_its_task_and_classes(spec, changes, field_path, said):
    event = PredictionEvent(
        model_id=spec.model_id,
        model_version=spec.model_version,
        event_id="e",
        event_time=START,
        **changes,
    )
    rejection = prediction_violation(spec, event)
    if field_path is None:
        assert rejection is None
        return
    assert rejection is not None
    assert rejection.field_path == field_path
    assert said in rejection.message
    assert f"model {spec.model_id} version {spec.model_version}" in rejection.message


def test_a_repeated_event_is_counted_as_a_duplicate_and_not_processed_again():
    intake = intake_with(SPEC)
    assert feed(intake, InputTopic.PREDICTIONS, [prediction(0), prediction(1), prediction(0)]) == []
    counters = intake.counters.topics[InputTopic.PREDICTIONS]
    assert (counters.consumed, counters.processed, counters.duplicates) == (3, 2, 1)


def test_an_event_older_than_the_duplicate_window_is_late():
    intake = intake_with(SPEC, duplicate_window_seconds=60)
    old = prediction(0)
    later = prediction(1, event_time=old.event_time + timedelta(minutes=5))
    [letter] = letters(feed(intake, InputTopic.PREDICTIONS, [later, old]))
    assert (letter.reason.value, letter.field_path) == ("late_event", "event_time")
    assert "DRIFTLINE_DUPLICATE_WINDOW_SECONDS" in letter.message


def test_an_event_time_far_after_the_kafka_timestamp_is_refused():
    intake = intake_with(SPEC, max_future_seconds=600)
    future = prediction(0, event_time=START + timedelta(days=400))
    [letter] = letters(feed(intake, InputTopic.PREDICTIONS, [future]))
    assert (letter.reason.value, letter.field_path) == ("future_event_time", "event_time")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.sampled_from([None, 0, 100, 200, 300])),
        min_size=1,
        max_size=20,
    )
)
def test_an_event_of_a_batch_is_refused_as_future_by_its_own_kafka_time(
    drawn: list[tuple[int, int | None]],
):
    # Each (event time, Kafka time) in seconds after START; a batch is first checked
    # whole (Intake._all_in_time), and each event must still be judged by its own.
    intake = intake_with(SPEC, max_future_seconds=60)
    messages = [
        message(
            InputTopic.PREDICTIONS,
            prediction(offset, event_time=START + timedelta(seconds=seconds))
            .model_dump_json()
            .encode(),
            offset,
        )._replace(
            timestamp=None
            if recorded is None
            else (START + timedelta(seconds=recorded)).timestamp()
        )
        for offset, (seconds, recorded) in enumerate(drawn)
    ]
    refused = [
        letter.source.offset
        for letter in letters(intake.handle_batch(messages))
        if letter.reason.value == "future_event_time"
    ]
    assert refused == [
        offset
        for offset, (seconds, recorded) in enumerate(drawn)
        if recorded is not None and seconds > recorded + 60
    ]


def label_event(
    prediction_id: str, *, model_id: str = "demo-model", label: str | float = 0.5, hours: float = 1
) -> LabelEvent:
    return LabelEvent(
        model_id=model_id,
        event_id=f"label-{prediction_id}-{model_id}-{label}",
        prediction_id=prediction_id,
        event_time=START + timedelta(hours=hours),
        label=label,
    )


def test_labels_join_their_predictions_and_the_rest_are_dead_lettered_with_a_reason():
    intake = intake_with(SPEC, label_retention_seconds=7_200)
    feed(intake, InputTopic.PREDICTIONS, [prediction(0)])
    outputs = feed(
        intake,
        InputTopic.LABELS,
        [
            label_event("e0"),
            label_event("nope"),
            label_event("e0", model_id="other"),
            label_event("e0", label=0.7),
        ],
    )
    assert [(x.reason.value, x.field_path) for x in letters(outputs)] == [
        ("unknown_model", "model_id"),
        ("already_labelled", "prediction_id"),
    ]
    labels = intake.counters.topics[InputTopic.LABELS]
    assert (labels.processed, labels.waiting) == (1, 1)
    # The label for "nope" waits until both predictions and labels pass it by the retention.
    later = feed(intake, InputTopic.PREDICTIONS, [prediction(4 * 3_600)], start=1)
    assert not letters(later)
    later = feed(intake, InputTopic.LABELS, [label_event("e14400", hours=4)], start=4)
    [orphan] = letters(later)
    assert (orphan.reason.value, orphan.source.offset) == ("orphan_label", 1)
    assert base64.b64decode(orphan.original or "") == label_event("nope").model_dump_json().encode()
    assert (labels.processed, labels.waiting, labels.dead_lettered) == (2, 0, 3)
    assert labels.accounted == labels.consumed


def test_a_batch_of_labels_tells_repeats_apart_as_label_by_label_does():
    """A repeated label is a duplicate and a late one a dead letter, whether the batch's
    labels arrive together or one by one."""
    labels = [
        label_event("e0"),
        label_event("e1"),
        label_event("e0"),  # the same event id again
        label_event("e2", hours=1 - 5 / 60),  # before the duplicate window's start
        label_event("e3"),
    ]
    one, batched = (intake_with(SPEC, duplicate_window_seconds=60) for _ in range(2))
    for intake in (one, batched):
        feed(intake, InputTopic.PREDICTIONS, [prediction(i) for i in range(4)])
    alone = feed(one, InputTopic.LABELS, labels)
    values = [label.model_dump_json().encode() for label in labels]
    together = batched.handle_batch(
        [message(InputTopic.LABELS, value, offset) for offset, value in enumerate(values)]
    )
    assert together == alone
    counts = batched.counters.topics[InputTopic.LABELS]
    assert counts == one.counters.topics[InputTopic.LABELS]
    assert (counts.processed, counts.duplicates, counts.dead_lettered) == (3, 1, 1)
    assert [letter.reason.value for letter in letters(together)] == ["late_event"]


def test_a_label_may_arrive_before_its_prediction():
    intake = intake_with(SPEC)
    assert not feed(intake, InputTopic.LABELS, [label_event("e5", hours=0)])
    labels = intake.counters.topics[InputTopic.LABELS]
    assert (labels.processed, labels.waiting) == (0, 1)
    feed(intake, InputTopic.PREDICTIONS, [prediction(5)])
    assert (labels.processed, labels.waiting) == (1, 0)
    [monitor] = intake.labels.monitors.values()
    assert monitor.labelled_predictions == 1


def test_a_label_of_the_wrong_type_for_its_model_is_dead_lettered():
    intake = intake_with(SPEC)
    feed(intake, InputTopic.PREDICTIONS, [prediction(0)])
    [letter] = letters(feed(intake, InputTopic.LABELS, [label_event("e0", label="yes")]))
    assert (letter.reason.value, letter.field_path) == ("spec_violation", "label")
    assert "regression model" in letter.message


def test_feature_events_feed_the_same_monitor_as_inline_features():
    intake = intake_with(SPEC)
    events = [
        FeatureEvent(
            model_id="demo-model",
            model_version="1",
            event_id=f"f-{p.event_id}",
            prediction_id=p.event_id,
            event_time=p.event_time,
            features=p.features or {},
        )
        for p in simulated_predictions(4_000, shift_at=2_000, seed=4)
    ]
    # Feature events carry no prediction: only x and the features together can move.
    found = {alert.feature for alert in alerts(feed(intake, InputTopic.FEATURES, events))}
    assert found == {"x", "(multivariate)", None}  # None: the model-level alert
    assert intake.counters.topics[InputTopic.FEATURES].processed == 4_000


def test_a_batch_of_one_versions_predictions_and_feature_events_is_one_by_one():
    drifting = list(simulated_predictions(3_000, shift_at=1_500, seed=8))
    messages = []
    for offset, event in enumerate(drifting):
        if offset % 2:  # half the inputs come apart from their predictions
            inputs = FeatureEvent(
                model_id=event.model_id,
                model_version=event.model_version,
                event_id=f"f-{event.event_id}",
                prediction_id=event.event_id,
                event_time=event.event_time,
                features=event.features or {},
            )
            event = event.model_copy(update={"features": None})
            messages.append(message(InputTopic.FEATURES, inputs.model_dump_json().encode(), offset))
        messages.append(message(InputTopic.PREDICTIONS, event.model_dump_json().encode(), offset))
    assert alerts(assert_batched_as_one_by_one(messages, 500, SPEC))  # the drift was found


def test_registry_messages_are_validated_and_bad_ones_dead_lettered():
    intake = intake_with()
    good = message(InputTopic.MODELS, SPEC.model_dump_json().encode(), key=SPEC.registry_key())
    wrong_key = message(InputTopic.MODELS, SPEC.model_dump_json().encode(), key=b"demo-model")
    tombstone = message(InputTopic.MODELS, None, key=SPEC.registry_key())
    broken = message(InputTopic.MODELS, b'{"model_id": "m"}', key=b'["m","1"]')
    outputs = [o for m in (good, wrong_key, tombstone, broken) for o in intake.handle(m)]
    assert [x.reason.value for x in letters(outputs)] == ["invalid_spec", "invalid_spec"]
    assert "publish it under" in letters(outputs)[0].message
    assert intake.counters.topics[InputTopic.MODELS].processed == 2


def test_models_beyond_the_limit_are_dead_lettered_not_given_memory():
    specs = [simulated_model_spec(model_id=name) for name in "abc"]
    intake = intake_with(*specs, max_models=2)
    outputs: list[Output] = []
    for offset, model in enumerate("abca"):
        [event] = simulated_predictions(1, shift_at=10, model_id=model)
        value = event.model_dump_json().encode()
        outputs += intake.handle(message(InputTopic.PREDICTIONS, value, offset))
    [letter] = letters(outputs)
    assert letter.reason.value == "model_limit"
    assert "DRIFTLINE_MAX_MODELS" in letter.message
    assert letter.source.offset == 2


def test_a_changed_spec_starts_its_model_afresh():
    intake = intake_with(SPEC)
    feed(intake, InputTopic.PREDICTIONS, list(simulated_predictions(100, shift_at=10**9)))
    assert intake.monitor_count == 1
    intake.registry.apply(Registration(SPEC.model_copy(update={"description": "retrained"})))
    assert intake.monitor_count == 0


def test_a_dead_letter_carries_the_bytes_key_and_position():
    intake = intake_with(SPEC)
    [output] = intake.handle(message(InputTopic.PREDICTIONS, b'{"model_id": 3}', 17, key=b"k"))
    [letter] = letters([output])
    assert output.key == b"k"
    assert letter.reason.value == "invalid_event"
    assert base64.b64decode(letter.original or "") == b'{"model_id": 3}'
    assert letter.source == KafkaPosition(topic="predictions", partition=0, offset=17)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(InputTopic)), st.binary(max_size=300) | st.none()),
        max_size=20,
    )
)
def test_every_message_ends_processed_dead_lettered_or_duplicate(values):
    intake = intake_with(SPEC)
    for offset, (topic, value) in enumerate(values):
        intake.handle(message(topic, value, offset))
    for topic in InputTopic:
        counters = intake.counters.topics[topic]
        assert counters.accounted == counters.consumed
    assert sum(c.consumed for c in intake.counters.topics.values()) == len(values)


feature_values = (
    st.none()
    | st.booleans()
    | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False)
)
valid_predictions = st.builds(
    lambda index, features: prediction(index, features=features),
    st.integers(min_value=0, max_value=50),
    st.dictionaries(st.sampled_from(["x", "y", "z"]), feature_values, max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(valid_predictions, max_size=30))
def test_valid_events_with_any_feature_values_are_processed_or_counted_as_duplicates(events):
    intake = intake_with(SPEC)
    assert letters(feed(intake, InputTopic.PREDICTIONS, events)) == []
    counters = intake.counters.topics[InputTopic.PREDICTIONS]
    assert counters.processed + counters.duplicates == len(events)
    assert counters.processed == len({event.event_id for event in events})


def test_a_batch_is_processed_as_its_messages_one_by_one():
    events = list(simulated_predictions(3_000, shift_at=1_500, seed=6))
    one, batched = intake_with(SPEC), intake_with(SPEC)
    expected = feed(one, InputTopic.PREDICTIONS, events)
    messages = [
        message(InputTopic.PREDICTIONS, event.model_dump_json().encode(), offset)
        for offset, event in enumerate(events)
    ]
    got: list[Output] = []
    for start in range(0, len(messages), 700):
        got += batched.handle_batch(messages[start : start + 700])
    assert [o.value for o in got] == [o.value for o in expected]
    assert (
        batched.counters.topics[InputTopic.PREDICTIONS]
        == one.counters.topics[InputTopic.PREDICTIONS]
    )


def test_a_bug_in_arriving_at_once_lets_the_events_arrive_one_by_one(monkeypatch):
    intake = intake_with(SPEC)
    feed(intake, InputTopic.PREDICTIONS, [prediction(0)])  # the stream's first, one by one

    def arrive_all_new(self, event_ids, event_times):
        raise RuntimeError("a bug")

    monkeypatch.setattr(RecentEventIds, "arrive_all_new", arrive_all_new)
    events = [prediction(i) for i in (1, 2, 1, 3)]
    messages = [
        message(InputTopic.PREDICTIONS, event.model_dump_json().encode(), offset)
        for offset, event in enumerate(events, 1)
    ]
    assert intake.handle_batch(messages) == []
    counts = intake.counters.topics[InputTopic.PREDICTIONS]
    assert (counts.consumed, counts.processed, counts.duplicates) == (5, 4, 1)


def test_a_bug_in_one_versions_batch_dead_letters_its_events_and_spares_the_others(monkeypatch):
    other = SPEC.model_copy(update={"model_id": "other-model"})
    intake = intake_with(SPEC, other)
    healthy = [prediction(i) for i in range(40)]
    broken = [prediction(i, model_id="other-model") for i in range(40, 60)]
    original = DataQualityMonitor.update_many

    def update_many(self, batch):  # a step every batch of a monitor takes
        if self.spec.model_id == "other-model":
            raise RuntimeError("a bug")
        return original(self, batch)

    monkeypatch.setattr(DataQualityMonitor, "update_many", update_many)
    messages = [
        message(InputTopic.PREDICTIONS, event.model_dump_json().encode(), offset)
        for offset, event in enumerate(healthy + broken)
    ]
    outputs = intake.handle_batch(messages)
    dead = letters(outputs)
    assert [letter.reason.value for letter in dead] == ["processing_error"] * len(broken)
    assert [letter.source.offset for letter in dead] == list(range(40, 60))
    assert "RuntimeError: a bug" in dead[0].message
    counts = intake.counters.topics[InputTopic.PREDICTIONS]
    assert (counts.consumed, counts.processed, counts.dead_lettered) == (60, 40, 20)


@st.composite
def checked_messages(draw: st.DrawFn) -> list[InputMessage]:
    """Messages that test every check: unknown versions, spec misfits, repeats, late and
    future times, labels, on two partitions."""
    other = SPEC.model_copy(update={"model_version": "2"})
    drawn: list[InputMessage] = []
    for offset in range(draw(st.integers(min_value=0, max_value=40))):
        index = draw(st.integers(min_value=0, max_value=12))  # repeats
        seconds = draw(st.sampled_from([0, 1, 5, 3_000, 4_000, 9_000]))  # late ones too
        event: PredictionEvent | LabelEvent = prediction(
            index,
            model_version=draw(st.sampled_from([SPEC.model_version, other.model_version, "9"])),
            event_time=START + timedelta(seconds=seconds + index),
            prediction=draw(st.sampled_from([0.5, "yes"])),  # a regressor: "yes" misfits
        )
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            event = LabelEvent(
                model_id=SPEC.model_id,
                event_id=f"l{offset}",
                prediction_id=f"e{index}",
                event_time=event.event_time,
                label=1.0,
            )
        topic = InputTopic.LABELS if isinstance(event, LabelEvent) else InputTopic.PREDICTIONS
        recorded = START + timedelta(seconds=draw(st.sampled_from([0, 10_000])))
        drawn.append(
            InputMessage(
                topic=topic,
                value=event.model_dump_json().encode(),
                key=SPEC.model_id.encode(),
                source=Position(topic.value, draw(st.integers(0, 1)), offset),
                timestamp=draw(st.sampled_from([None, recorded.timestamp()])),
            )
        )
    return drawn


@settings(max_examples=150, deadline=None)
@given(checked_messages(), st.integers(min_value=1, max_value=12))
def test_a_batch_checks_each_event_as_its_message_alone_would(messages, size):
    other = SPEC.model_copy(update={"model_version": "2"})
    assert_batched_as_one_by_one(messages, size, SPEC, other, max_future_seconds=60)


def test_a_batch_names_the_times_of_its_events_whose_model_is_not_registered():
    intake = intake_with(SPEC)
    unknown = prediction(1).model_copy(update={"model_version": "9"})
    label = LabelEvent(
        model_id="nobody", event_id="l", prediction_id="p", event_time=START, label=1.0
    )
    messages = [
        message(InputTopic.PREDICTIONS, prediction(0).model_dump_json().encode(), 0),
        message(InputTopic.PREDICTIONS, unknown.model_dump_json().encode(), 1),
        message(InputTopic.LABELS, label.model_dump_json().encode(), 2),
        message(InputTopic.PREDICTIONS, b"not json", 3),
        message(InputTopic.PREDICTIONS, unknown.model_dump_json().encode(), 4)._replace(
            timestamp=None
        ),
    ]
    at = messages[0].timestamp
    assert intake.unregistered_at(intake.read_many(messages)) == [at, at, 0.0]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=40) | st.none(), st.integers(min_value=0, max_value=3_000))
def test_a_dead_letter_carries_the_original_whole_only_while_it_fits_its_topic(
    key: bytes | None, size: int
) -> None:
    intake = intake_with(SPEC, max_message_bytes=1_024)
    value = b"{" + b"x" * size  # broken JSON, or over the size limit
    [output] = intake.handle(message(InputTopic.PREDICTIONS, value, 5, key=key))
    [letter] = letters([output])
    assert len(output.value) + len(output.key or b"") <= 2 * 1_024 + DEAD_LETTER_TEXT_BYTES
    if len(value) + len(key or b"") <= intake.settings.max_message_bytes:
        assert base64.b64decode(letter.original or "") == value
        assert not letter.original_truncated
    else:
        assert letter.original_truncated
        carried = base64.b64decode(letter.original or "")
        assert value.startswith(carried)
        assert len(carried) == max(intake.settings.max_message_bytes - len(key or b""), 0)
        assert f"{len(value):,} bytes" in letter.message
        assert "predictions, partition 0, offset 5" in letter.message


@st.composite
def interleaved_models(draw: st.DrawFn) -> list[InputMessage]:
    """Predictions of three models interleaved, with broken values among them (cut short,
    spaced out, not JSON), each on its own offset."""
    drawn: list[InputMessage] = []
    for offset in range(draw(st.integers(min_value=0, max_value=40))):
        model_id = draw(st.sampled_from(["m1", "m2", "m3"]))
        text = prediction(draw(st.integers(0, 15)), model_id=model_id).model_dump_json()
        value = draw(
            st.sampled_from(
                [text, text[:-5], text.replace('":', '" :'), "not json", text.replace("0", "x")]
            )
        ).encode()
        drawn.append(message(InputTopic.PREDICTIONS, value, offset, key=model_id.encode()))
    return drawn


@settings(max_examples=100, deadline=None)
@given(interleaved_models(), st.integers(min_value=1, max_value=12))
def test_models_interleaved_in_a_batch_give_what_their_messages_alone_would(messages, size):
    specs = [SPEC.model_copy(update={"model_id": model_id}) for model_id in ("m1", "m2", "m3")]
    assert_batched_as_one_by_one(messages, size, *specs)
