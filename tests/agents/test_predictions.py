"""The prediction handler's decisions, without Kafka."""

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.agents.predictions import Destination, PredictionHandler
from driftline.schemas import DeadLetter, DriftAlert, KafkaPosition
from driftline.simulate import simulated_predictions
from driftline.streams.settings import Settings


def position(offset: int) -> KafkaPosition:
    return KafkaPosition(topic="predictions", partition=0, offset=offset)


def test_drifting_traffic_yields_alerts_for_the_drifting_feature_only():
    handler = PredictionHandler(Settings())
    outputs = []
    for offset, event in enumerate(simulated_predictions(4_000, shift_at=2_000, seed=4)):
        outputs += handler.handle(event.model_dump_json().encode(), b"demo-model", position(offset))
    alerts = [DriftAlert.model_validate_json(o.value) for o in outputs]
    assert {o.destination for o in outputs} == {Destination.ALERTS}
    assert {alert.feature for alert in alerts} == {"x"}
    assert all(alert.source and alert.source.offset >= 2_000 for alert in alerts)
    assert handler.counters.processed == 4_000
    assert handler.counters.alerts == len(alerts)


def test_a_bad_message_becomes_a_dead_letter_with_its_bytes_and_position():
    handler = PredictionHandler(Settings())
    [output] = handler.handle(b'{"model_id": 3}', b"k", position(17))
    letter = DeadLetter.model_validate_json(output.value)
    assert output.destination is Destination.DEAD_LETTERS
    assert output.key == b"k"
    assert letter.reason.value == "invalid_event"
    assert base64.b64decode(letter.original) == b'{"model_id": 3}'
    assert letter.source == position(17)
    assert handler.counters.dead_letter_reasons == {"invalid_event": 1}


def test_models_beyond_the_limit_are_dead_lettered_not_given_memory():
    handler = PredictionHandler(Settings(max_models=2))
    outputs = []
    for offset, model in enumerate(["a", "b", "c", "a"]):
        [event] = simulated_predictions(1, shift_at=10, model_id=model)
        outputs += handler.handle(
            event.model_dump_json().encode(), model.encode(), position(offset)
        )
    [output] = outputs
    letter = DeadLetter.model_validate_json(output.value)
    assert letter.reason.value == "model_limit"
    assert "DRIFTLINE_MAX_MODELS" in letter.message
    assert letter.source.offset == 2
    assert (handler.counters.processed, handler.counters.dead_lettered) == (3, 1)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=300) | st.none(), max_size=20))
def test_every_message_ends_processed_or_dead_lettered(values):
    handler = PredictionHandler(Settings())
    for offset, value in enumerate(values):
        handler.handle(value, None, position(offset))
    counters = handler.counters
    assert counters.consumed == len(values)
    assert counters.processed + counters.dead_lettered == counters.consumed
