"""The label desk: what waits in the join, and when."""

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.agents.counters import TopicCounters
from driftline.agents.labelling import (
    LabelDesk,
    LabelMessage,
    _prediction_payload,
    _prediction_record,
)
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry, Registration
from driftline.monitors.performance import PerformanceMonitor, PredictionRecord
from driftline.monitors.positions import maybe_kafka_position
from driftline.schemas import (
    KafkaPosition,
    LabelEvent,
    ModelSpec,
    PerformancePolicy,
    PredictionEvent,
)
from driftline.streams import Rejection
from driftline.streams.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ["repaid", "defaulted", "late"]
CLASSIFIER = ModelSpec(
    model_id="loans", model_version="4", task="classification", classes=CLASSES, features=[]
)
OPEN_CLASSIFIER = CLASSIFIER.model_copy(update={"classes": None})
REGRESSOR = ModelSpec(model_id="price", model_version="1", task="regression", features=[])
TOPIC = "driftline.predictions"
LETTER = Output(Destination.DEAD_LETTERS, None, None)  # type: ignore[arg-type]
"""What the dead-letter sink of these tests returns: the letter itself is not looked at."""


def desk_with(
    *specs: ModelSpec, held: int = 2_000, **overrides: object
) -> tuple[LabelDesk, dict[bytes, bytes], list[tuple[LabelMessage, Rejection]]]:
    registry = ModelRegistry()
    for spec in specs:
        registry.apply(Registration(spec))
    store: dict[bytes, bytes] = {}
    letters: list[tuple[LabelMessage, Rejection]] = []

    def dead_letter(message: LabelMessage, rejection: Rejection) -> Output:
        letters.append((message, rejection))
        return LETTER

    desk = LabelDesk(
        Settings(**overrides),
        registry,
        TopicCounters(),
        dead_letter=dead_letter,
        alert=lambda alert: [],
        resolve=lambda spec, back, source: [],
        store=store,
        held_before_first_label=held,
    )
    return desk, store, letters


def predict(desk: LabelDesk, spec: ModelSpec, index: int) -> list[Output]:
    event = PredictionEvent(
        model_id=spec.model_id,
        model_version=spec.model_version,
        event_id=f"p{index}",
        event_time=START + timedelta(seconds=index),
        prediction="repaid",
        probabilities={"repaid": 0.75, "defaulted": 0.25},
    )
    return desk.prediction(spec, event, KafkaPosition(topic=TOPIC, partition=1, offset=index))


def label(desk: LabelDesk, spec: ModelSpec, index: int, offset: int) -> list[Output]:
    event = LabelEvent(
        model_id=spec.model_id,
        event_id=f"l{index}",
        prediction_id=f"p{index}",
        event_time=START + timedelta(seconds=index + 1),
        label="defaulted",
    )
    source = KafkaPosition(topic="driftline.labels", partition=1, offset=offset)
    return desk.label(event, LabelMessage(event.model_dump_json().encode(), b"loans", source))


def test_a_model_without_labels_writes_nothing_and_its_windows_still_settle():
    spec = CLASSIFIER.model_copy(update={"performance": PerformancePolicy(window=50)})
    desk, store, _ = desk_with(spec, held=100)
    for i in range(300):
        predict(desk, spec, i)
    assert store == {}
    assert desk.join.held_predictions == 100
    monitor = desk.monitors[("loans", "4")]
    assert monitor.predictions == 300
    assert desk.counts.predictions_unlabelled == 200  # pushed out of memory, as unlabelled


def test_after_the_first_label_predictions_wait_in_the_store_compactly():
    desk, store, _ = desk_with(CLASSIFIER)
    predict(desk, CLASSIFIER, 0)
    label(desk, CLASSIFIER, 0, offset=7)
    predict(desk, CLASSIFIER, 1)
    waiting = orjson.loads(store[b'["loans","p1"]'])
    assert waiting == ["p", waiting[1], ["4", 0, "repaid", [0.75, 0.25, None], [1, 1]]]
    assert len(store[b'["loans","p1"]']) < 80
    monitor = desk.monitors[("loans", "4")]
    assert monitor.labelled_predictions == 1
    assert desk.counters.processed == 1


def test_a_waiting_label_comes_back_with_its_bytes_and_position():
    desk, _, letters = desk_with(CLASSIFIER, label_retention_seconds=10.0)
    label(desk, CLASSIFIER, 5, offset=42)
    predict(desk, CLASSIFIER, 100)
    outputs = label(desk, CLASSIFIER, 100, offset=43)  # raises the label side: l5 expires
    assert outputs == [LETTER]
    [(message, rejection)] = letters
    assert rejection.reason.value == "orphan_label"
    assert LabelEvent.model_validate_json(message.value or b"").event_id == "l5"
    assert message.key == b"loans"
    assert message.source == KafkaPosition(topic="driftline.labels", partition=1, offset=42)
    assert "first label" in rejection.message
    assert desk.counts.orphaned == 1
    assert desk.counters.waiting == 0


positions = st.one_of(
    st.none(),
    st.builds(
        KafkaPosition,
        topic=st.sampled_from([TOPIC, "elsewhere"]),
        partition=st.integers(min_value=0, max_value=1_000),
        offset=st.integers(min_value=0, max_value=2**62),
    ),
)
probability = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def records(draw: st.DrawFn) -> tuple[ModelSpec, PredictionRecord]:
    spec = draw(st.sampled_from([CLASSIFIER, OPEN_CLASSIFIER, REGRESSOR]))
    if spec is REGRESSOR:
        prediction: str | float | None = draw(
            st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
        )
        probabilities = None
    else:
        prediction = draw(st.one_of(st.none(), st.sampled_from(CLASSES)))
        names = st.sampled_from(CLASSES) if spec.classes else st.text(min_size=1, max_size=8)
        probabilities = draw(st.one_of(st.none(), st.dictionaries(names, probability)))
    moment = START + timedelta(microseconds=draw(st.integers(min_value=0, max_value=10**15)))
    window = draw(st.integers(min_value=0, max_value=10**9))
    return spec, PredictionRecord(window, moment, prediction, probabilities, draw(positions))


@given(records())
def test_a_waiting_prediction_comes_back_as_the_record_it_was(drawn):
    spec, record = drawn
    payload = orjson.loads(orjson.dumps(_prediction_payload(spec, record, TOPIC)))
    back = _prediction_record(spec, payload, record.event_time, TOPIC)
    # The place comes back unvalidated (outputs validate it): the same topic, partition, offset.
    back = back._replace(position=maybe_kafka_position(back.position))
    assert back == PredictionRecord(
        record.window,
        record.event_time,
        record.prediction,
        record.probabilities,
        record.position,
    )


# A batch of predictions gives what the same predictions give one by one.

SMALL = PerformancePolicy(window=50, reference_labels=100)
BATCHED_CLASSIFIER = CLASSIFIER.model_copy(update={"performance": SMALL})
BATCHED_REGRESSOR = REGRESSOR.model_copy(update={"performance": SMALL})


def recording_desk(
    spec: ModelSpec, held: int, *others: ModelSpec
) -> tuple[LabelDesk, list[object]]:
    """A desk whose sinks record what goes through them, in order, and return it."""
    registry = ModelRegistry()
    for registered in (spec, *others):
        registry.apply(Registration(registered))
    calls: list[object] = []

    def dead_letter(message: LabelMessage, rejection: Rejection) -> Output:
        calls.append(("letter", message, rejection.reason, rejection.message))
        return LETTER

    def alert(alert: object) -> list[Output]:
        calls.append(("alert", alert))
        return []

    def resolve(spec: ModelSpec, back: object, source: object) -> list[Output]:
        calls.append(("resolve", back, source))
        return []

    desk = LabelDesk(
        Settings(label_retention_seconds=40.0, max_pending_labels=300),
        registry,
        TopicCounters(),
        dead_letter=dead_letter,
        alert=alert,
        resolve=resolve,
        held_before_first_label=held,
    )
    return desk, calls


@st.composite
def prediction_events(draw: st.DrawFn, spec: ModelSpec, index: int) -> PredictionEvent:
    second = index + draw(st.integers(min_value=-5, max_value=5))
    if spec.task.value == "regression":
        return PredictionEvent(
            model_id=spec.model_id,
            model_version=spec.model_version,
            event_id=f"p{draw(st.integers(min_value=0, max_value=index + 3))}",
            event_time=START + timedelta(seconds=second),
            prediction=draw(st.floats(min_value=-10, max_value=10)),
            interval=draw(st.one_of(st.none(), st.just({"lower": -1.0, "upper": 2.5}))),
        )
    p = draw(st.floats(min_value=0.0, max_value=1.0))
    probabilities = draw(
        st.sampled_from(
            [
                None,
                {"repaid": p, "defaulted": 1 - p},
                {"repaid": p, "defaulted": (1 - p) / 2, "late": (1 - p) / 2},
                {"late": 1.0},
            ]
        )
    )
    return PredictionEvent(
        model_id=spec.model_id,
        model_version=spec.model_version,
        event_id=f"p{draw(st.integers(min_value=0, max_value=index + 3))}",
        event_time=START + timedelta(seconds=second),
        prediction=draw(st.sampled_from(["repaid", "defaulted", None])),
        probabilities=probabilities,
    )


Batch = tuple[ModelSpec, list[PredictionEvent]]


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[ModelSpec], int, list[Batch | LabelEvent]]:
    """Batches of predictions of one version each (a model's two versions), with labels
    between them."""
    spec = draw(st.sampled_from([BATCHED_CLASSIFIER, BATCHED_REGRESSOR]))
    versions = [spec, spec.model_copy(update={"model_version": "5"})]
    held = draw(st.sampled_from([0, 3, 2_000]))
    steps: list[Batch | LabelEvent] = []
    index = 0
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        if draw(st.booleans()):
            size = draw(st.integers(min_value=0, max_value=60))
            version = draw(st.sampled_from(versions))
            steps.append(
                (version, [draw(prediction_events(version, index + i)) for i in range(size)])
            )
            index += size
        for _ in range(draw(st.integers(min_value=0, max_value=40))):
            target = draw(st.integers(min_value=0, max_value=index + 3))
            label: str | float = (
                draw(st.sampled_from(["repaid", "defaulted", "late", "unknown"]))
                if spec.task.value == "classification"
                else draw(st.floats(min_value=-10, max_value=10))
            )
            steps.append(
                LabelEvent(
                    model_id=spec.model_id,
                    event_id=f"l{len(steps)}",
                    prediction_id=f"p{target}",
                    event_time=START + timedelta(seconds=target + draw(st.integers(0, 30))),
                    label=label,
                )
            )
    return versions, held, steps


def label_runs(steps: list[Batch | LabelEvent]) -> list[Batch | list[LabelEvent]]:
    """The steps, with each run of labels in a row as one list."""
    runs: list[Batch | list[LabelEvent]] = []
    for step in steps:
        if not isinstance(step, LabelEvent):
            runs.append(step)
        elif runs and isinstance(runs[-1], list):
            runs[-1].append(step)
        else:
            runs.append([step])
    return runs


@settings(max_examples=60, deadline=None)
@given(streams())
def test_a_batch_of_predictions_gives_what_they_give_one_by_one(drawn):
    """And a run of labels taken together gives what they give one by one."""
    versions, held, steps = drawn
    single, single_calls = recording_desk(versions[0], held, *versions[1:])
    batched, batched_calls = recording_desk(versions[0], held, *versions[1:])
    direct, _ = recording_desk(versions[0], held, *versions[1:])
    offset = 0
    for step in label_runs(steps):
        if isinstance(step[0], LabelEvent):  # a run of labels: one by one, and together
            labels = cast(list[LabelEvent], step)
            messages = []
            for label in labels:
                source = KafkaPosition(topic="driftline.labels", partition=0, offset=offset)
                messages.append(LabelMessage(label.model_dump_json().encode(), b"k", source))
                offset += 1
            one_by_one = []
            for label, message in zip(labels, messages, strict=True):
                before = len(single_calls)
                one_by_one.append((single.label(label, message), single_calls[before:]))
                direct.label(label, message)
            before = len(batched_calls)
            together = batched.label_many(labels, messages)
            assert together == [outputs for outputs, _ in one_by_one]
            assert batched_calls[before:] == [call for _, calls in one_by_one for call in calls]
            continue
        spec, step = cast(Batch, step)
        positions = [
            KafkaPosition(topic=TOPIC, partition=0, offset=offset + i) for i in range(len(step))
        ]
        offset += len(step)
        one_by_one = []
        for event, position in zip(step, positions, strict=True):
            before = len(single_calls)
            outputs = single.prediction(spec, event, position)
            one_by_one.append((outputs, single_calls[before:]))
        # released event by event, as the intake does, each after its own drift alerts
        before = len(batched_calls)
        pending = batched.join_predictions(spec, step, positions)
        assert len(batched_calls) == before  # nothing went through the sinks yet
        at_once = []
        for share in pending:
            before = len(batched_calls)
            at_once.append((batched.release(share), batched_calls[before:]))
        assert at_once == one_by_one
        assert direct.predictions(spec, step, positions) == [out for out, _ in one_by_one]
    assert batched_calls == single_calls
    assert batched.counts == single.counts
    assert vars(batched.counters) == vars(single.counters)
    assert batched.join.store == single.join.store
    assert (len(batched.join), batched.join.held_predictions) == (
        len(single.join),
        single.join.held_predictions,
    )
    assert single.monitors.keys() <= batched.monitors.keys()  # an empty batch makes one too
    for key, a in single.monitors.items():
        b = batched.monitors[key]
        assert (a.predictions, a.labelled_predictions, a.last_realized, a.last_estimate) == (
            b.predictions,
            b.labelled_predictions,
            b.last_realized,
            b.last_estimate,
        )


def numbered(spec: ModelSpec, number: int, **given: Any) -> PredictionEvent:
    """Prediction ``p{number}`` of ``spec``, made ``number`` seconds after ``START``."""
    return PredictionEvent(
        model_id=spec.model_id,
        model_version=spec.model_version,
        event_id=f"p{number}",
        event_time=START + timedelta(seconds=number),
        **given,
    )


def worsening(spec: ModelSpec, rng: random.Random, index: int, worse: bool) -> tuple[Any, Any]:
    """A prediction of ``spec`` and its label: further apart once the model got ``worse``."""
    if spec.task.value == "regression":
        prediction = rng.gauss(0.0, 1.0)
        return prediction, prediction + rng.gauss(0.0, 1.5 if worse else 0.1)
    right = rng.random() < (0.6 if worse else 0.9)
    return "repaid", "repaid" if right else "defaulted"


@pytest.mark.parametrize("spec", [BATCHED_REGRESSOR, BATCHED_CLASSIFIER], ids=lambda s: s.task)
def test_labels_taken_together_alarm_where_they_alarm_one_by_one(spec: ModelSpec):
    """The error test takes a run's labels together (the monitor is told them ahead): the
    alarm, its evidence and every report come where one by one puts them."""
    rng = random.Random(11)
    single, single_calls = recording_desk(spec, 2_000)
    together, together_calls = recording_desk(spec, 2_000)
    runs = itertools.cycle([1, 7, 60, 2, 30])
    for chunk in range(15):  # 100 predictions, then their labels
        first = 100 * chunk
        pairs = [worsening(spec, rng, i, worse=chunk >= 7) for i in range(100)]
        events = [
            numbered(spec, first + i, prediction=prediction)
            for i, (prediction, _) in enumerate(pairs)
        ]
        positions = [KafkaPosition(topic=TOPIC, partition=0, offset=first + i) for i in range(100)]
        for desk in (single, together):
            desk.predictions(spec, events, positions)
        labels = [
            LabelEvent(
                model_id=spec.model_id,
                event_id=f"l{event.event_id}",
                prediction_id=event.event_id,
                event_time=event.event_time + timedelta(seconds=1),
                label=label,
            )
            for event, (_, label) in zip(events, pairs, strict=True)
        ]
        messages = [
            LabelMessage(b"{}", None, KafkaPosition(topic="labels", partition=0, offset=first + i))
            for i in range(100)
        ]
        one_by_one = [single.label(label, msg) for label, msg in zip(labels, messages, strict=True)]
        taken: list[list[Output]] = []
        while len(taken) < len(labels):
            end = len(taken) + next(runs)
            taken += together.label_many(labels[len(taken) : end], messages[len(taken) : end])
        assert taken == one_by_one
    assert together_calls == single_calls
    assert single.counters.processed == 1_500  # every label met its prediction
    assert [call for call in single_calls if call[0] == "alert"], "the worse model never alarmed"
    assert all(monitor.expected == 0 for monitor in together.monitors.values())


def test_a_monitor_brought_a_label_it_did_not_expect_says_so():
    monitor = PerformanceMonitor(BATCHED_REGRESSOR)
    event = PredictionEvent(
        model_id=REGRESSOR.model_id,
        model_version=REGRESSOR.model_version,
        event_id="p0",
        event_time=START,
        prediction=1.0,
    )
    record, _ = monitor.predicted(event)
    monitor.expect([(record, 2.0)])
    assert monitor.expected == 1
    with pytest.raises(ValueError, match="other than the next one expected"):
        monitor.labelled(record, 3.0, event_id="l0", label_time=START)


def test_held_predictions_pushed_out_by_another_version_count_in_their_own_version():
    """Without labels, a version's predictions push out those its model held, whatever
    their version: each is counted never labelled in the window of its own."""
    first = BATCHED_CLASSIFIER
    second = first.model_copy(update={"model_version": "5"})
    single, single_calls = recording_desk(first, 3, second)
    batched, batched_calls = recording_desk(first, 3, second)
    index = 0
    for spec, size in [(first, 7), (second, 12), (first, 4), (second, 30)]:
        step = [
            numbered(
                spec,
                index + i,
                prediction="repaid",
                probabilities={"repaid": 0.75, "defaulted": 0.25},
            )
            for i in range(size)
        ]
        positions = [KafkaPosition(topic=TOPIC, partition=0, offset=index + i) for i in range(size)]
        index += size
        one_by_one = [
            single.prediction(spec, event, position)
            for event, position in zip(step, positions, strict=True)
        ]
        shares = batched.join_predictions(spec, step, positions)
        assert [batched.release(share) for share in shares] == one_by_one
    assert batched_calls == single_calls
    assert batched.counts == single.counts
    for key, a in single.monitors.items():
        b = batched.monitors[key]
        assert (a.predictions, a._expired, a.last_estimate) == (
            b.predictions,
            b._expired,
            b.last_estimate,
        )
    # All 11 of the first version were pushed out, and all but the 3 held of the second's 42.
    assert single.monitors[("loans", "4")]._expired == 11
    assert single.monitors[("loans", "5")]._expired == 42 - 3
    assert single.counts.predictions_unlabelled == 11 + 42 - 3
