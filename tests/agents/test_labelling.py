"""The label desk: what waits in the join, and when."""

from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given
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
from driftline.monitors.performance import PredictionRecord
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
) -> tuple[LabelDesk, dict[str, bytes], list[tuple[LabelMessage, Rejection]]]:
    registry = ModelRegistry()
    for spec in specs:
        registry.apply(Registration(spec))
    store: dict[str, bytes] = {}
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
    waiting = orjson.loads(store['["loans","p1"]'])
    assert waiting == ["p", waiting[1], ["4", 0, "repaid", [0.75, 0.25, None], [1, 1]]]
    assert len(store['["loans","p1"]']) < 80
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
        prediction: str | float | None = draw(st.one_of(st.none(), st.floats(allow_nan=False)))
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
    assert back == PredictionRecord(
        record.window,
        record.event_time,
        record.prediction,
        record.probabilities,
        record.position,
    )
