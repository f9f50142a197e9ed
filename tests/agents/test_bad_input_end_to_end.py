"""Bad input mixed into real traffic: every message accounted for, the worker unharmed.

A real worker subprocess consumes from the real broker a stream in which
about one message in ten is broken in one of the ways producers break
things. Each broken message must come back as a dead letter with the
expected reason at its exact Kafka position (or, for a repeated event id,
be counted as a duplicate), the counts must add up to what was produced,
and a drift injected after all that must still be detected.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka_helpers import free_port, read_all, wait_for_worker

from driftline.schemas import Alert, DeadLetter, LabelEvent
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

MODEL = "demo-model"
MAX_BYTES = 8_192
VALID_EVENTS = 3_000
SHIFTED_EVENTS = 2_000


@dataclass(frozen=True)
class BadCase:
    """One way to break a message, and the reason code its dead letter must carry."""

    name: str
    topic: str  # the Settings field naming the topic it is sent to
    value: bytes | None
    reason: str | None  # None: counted as a duplicate, or processed (see ``processed``)
    processed: bool = False


def valid(index: int) -> dict[str, Any]:
    [event] = simulated_predictions(1, shift_at=10**9, seed=index)
    document = event.model_dump(mode="json")
    document["event_id"] = f"bad-{index}"
    return document


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def replaced(index: int, text_from: str, text_to: str) -> bytes:
    text = json.dumps(valid(index))
    assert text_from in text
    return text.replace(text_from, text_to, 1).encode()


def bad_cases(round_: int) -> list[BadCase]:
    """Every kind of bad input, with ids unique to this round."""
    i = 1_000 * (round_ + 1)
    future = datetime.now(UTC) + timedelta(days=30)
    return [
        BadCase(
            "malformed JSON", "predictions_topic", b'{"model_id": "demo-model", ', "invalid_json"
        ),
        BadCase("invalid UTF-8", "predictions_topic", b'{"model_id": "\xff\xfe"}', "invalid_utf8"),
        BadCase(
            "deeply nested JSON",
            "predictions_topic",
            b'{"model_id": ' + b"[" * 3_000 + b"]" * 3_000 + b"}",
            "invalid_json",
        ),
        BadCase(
            "integer too large",
            "predictions_topic",
            replaced(i + 1, '"x": ', '"x": 1' + "0" * 500 + ', "_": '),
            "number_out_of_range",
        ),
        BadCase(
            "score as a string",
            "predictions_topic",
            encoded({**valid(i + 2), "prediction": "0.5"}),
            "spec_violation",
        ),
        BadCase(
            "score as true",
            "predictions_topic",
            encoded({**valid(i + 3), "prediction": True}),
            "invalid_event",
        ),
        BadCase(
            "interval bound as a string",
            "predictions_topic",
            encoded({**valid(i + 4), "interval": {"lower": "0.5", "upper": 1.0}}),
            "invalid_event",
        ),
        BadCase(
            "missing required field",
            "predictions_topic",
            encoded({k: v for k, v in valid(i + 5).items() if k != "event_time"}),
            "invalid_event",
        ),
        BadCase(
            "unknown field",
            "predictions_topic",
            encoded({**valid(i + 6), "featurs": {}}),
            "invalid_event",
        ),
        BadCase(
            "duplicate JSON key",
            "predictions_topic",
            replaced(i + 7, '"model_version": "1"', '"model_version": "1", "model_version": "2"'),
            "duplicate_key",
        ),
        BadCase(
            "NaN",
            "predictions_topic",
            replaced(i + 8, '"prediction": ', '"prediction": NaN, "_p": '),
            "non_finite_number",
        ),
        BadCase(
            "Infinity",
            "predictions_topic",
            replaced(i + 9, '"x": ', '"x": Infinity, "_x": '),
            "non_finite_number",
        ),
        BadCase(
            "1e400",
            "predictions_topic",
            replaced(i + 10, '"x": ', '"x": 1e400, "_x": '),
            "number_out_of_range",
        ),
        BadCase(
            "over the size limit",
            "predictions_topic",
            encoded({**valid(i + 11), "event_id": "e" * MAX_BYTES}),
            "too_large",
        ),
        BadCase(
            "escaped lone surrogate",
            "predictions_topic",
            replaced(i + 12, '"event_id": "', '"event_id": "\\ud800'),
            "invalid_json",
        ),
        BadCase(
            "encoded lone surrogate",
            "predictions_topic",
            encoded(valid(i + 13)).replace(b'"event_id": "', b'"event_id": "\xed\xa0\x80', 1),
            "invalid_utf8",
        ),
        BadCase(
            "unknown model id",
            "predictions_topic",
            encoded({**valid(i + 14), "model_id": "no-such-model"}),
            "unknown_model",
        ),
        BadCase(
            "far-future timestamp",
            "predictions_topic",
            encoded({**valid(i + 15), "event_time": future.isoformat()}),
            "future_event_time",
        ),
        BadCase("tombstone", "predictions_topic", None, "empty"),
        BadCase(
            "unknown schema version",
            "predictions_topic",
            encoded({**valid(i + 16), "schema_version": 2}),
            "unsupported_schema_version",
        ),
        BadCase(
            "label for a prediction never sent (an orphan once the label retention passes)",
            "labels_topic",
            encoded(
                {
                    "model_id": MODEL,
                    "event_id": f"label-{i}",
                    "prediction_id": f"never-sent-{i}",
                    "event_time": valid(i)["event_time"],
                    "label": 1.0,
                }
            ),
            "orphan_label",
        ),
        BadCase(
            "invalid model spec",
            "models_topic",
            b'{"model_id": "m", "task": "clustering"}',
            "invalid_spec",
        ),
        BadCase(
            "a feature value of the wrong type (a data-quality matter, not a dead letter)",
            "predictions_topic",
            encoded({**valid(i + 17), "features": {"x": "0.5", "y": 0.1}}),
            None,
            processed=True,
        ),
        BadCase(
            "an event from Confluent's JSON Schema serializer (framed: processed as its JSON)",
            "predictions_topic",
            registry_framed(i, encoded(valid(i + 18))),
            None,
            processed=True,
        ),
        BadCase(
            "an event from an Avro serializer (framed binary)",
            "predictions_topic",
            registry_framed(i, b"\x14demo-model\x021\x0ebad-avro"),
            "unsupported_framing",
        ),
    ]


def registry_framed(schema_id: int, payload: bytes) -> bytes:
    """The payload as Confluent's serializers frame it: magic byte 0, then the schema id."""
    return b"\x00" + schema_id.to_bytes(4, "big") + payload


def wait_for_status(
    settings: Settings, worker: WorkerProcess, produced: dict[str, int]
) -> dict[str, Any]:
    return wait_for_worker(
        settings.web_port,
        worker,
        lambda report: (
            all(report["topics"][t]["consumed"] >= n for t, n in produced.items())
            and report["topics"]["labels"]["waiting"] == 0
        ),
    )


def test_every_bad_message_is_dead_lettered_with_its_reason_and_drift_is_still_found(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(
        update={
            "max_message_bytes": MAX_BYTES,
            "web_enabled": True,
            "web_port": free_port(),
            "label_retention_seconds": 60.0,
        }
    )
    ensure_topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=4 * MAX_BYTES
    )
    topic_names = {
        "predictions_topic": settings.predictions_topic,
        "labels_topic": settings.labels_topic,
        "models_topic": settings.models_topic,
    }
    produced = {"predictions": 0, "labels": 0, "models": 0}
    expected: dict[tuple[str, int, int], str] = {}  # (topic, partition, offset) -> reason
    duplicates_sent = 0

    def send(field: str, key: bytes | None, value: bytes | None) -> tuple[str, int, int]:
        metadata = producer.send(topic_names[field], key=key, value=value).get(timeout=30)
        produced[field.removesuffix("_topic")] += 1
        return (metadata.topic, metadata.partition, metadata.offset)

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        spec = simulated_model_spec()
        send("models_topic", spec.registry_key(), spec.model_dump_json().encode())
        stream = list(
            simulated_predictions(VALID_EVENTS + SHIFTED_EVENTS, shift_at=VALID_EVENTS, seed=21)
        )
        first_shifted: tuple[str, int, int] | None = None
        round_ = 0
        for index, event in enumerate(stream):
            position = send("predictions_topic", MODEL.encode(), event.model_dump_json().encode())
            if index == VALID_EVENTS:
                first_shifted = position
            if index < VALID_EVENTS and index % 125 == 124:
                for case in bad_cases(round_):
                    where = send(case.topic, MODEL.encode(), case.value)
                    if case.reason is not None:
                        expected[where] = case.reason
                # a repeated event id: counted as a duplicate, never processed twice
                send(
                    "predictions_topic",
                    MODEL.encode(),
                    stream[index - 3].model_dump_json().encode(),
                )
                duplicates_sent += 1
                round_ += 1
        # A label for the last prediction moves the labels' event time past the retention
        # of the orphans, so they are dead-lettered.
        last = stream[-1]
        label = LabelEvent(
            model_id=MODEL,
            event_id="label-last",
            prediction_id=last.event_id,
            event_time=last.event_time,
            label=1.0,
        )
        send("labels_topic", MODEL.encode(), label.model_dump_json().encode())
        producer.flush()
        producer.close()
        report = wait_for_status(settings, worker, produced)
        assert worker.running, "the worker must survive all of it"

    bad_share = (len(expected) + duplicates_sent) / sum(produced.values())
    assert 0.08 < bad_share < 0.12, bad_share
    for name, count in produced.items():
        counts = report["topics"][name]
        assert counts["consumed"] == count
        outcomes = counts["processed"] + counts["dead_lettered"] + counts["duplicates"]
        assert outcomes + counts["waiting"] == count, name
    assert report["topics"]["predictions"]["duplicates"] == duplicates_sent

    letters = [
        DeadLetter.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.dead_letters_topic)
    ]
    found = {
        (letter.source.topic, letter.source.partition, letter.source.offset): letter.reason.value
        for letter in letters
    }
    assert len(letters) == len(found), "a message was dead-lettered twice"
    assert found == expected
    assert sum(c["dead_lettered"] for c in report["topics"].values()) == len(letters)
    for letter in letters:
        assert letter.message, "every dead letter says what to fix"

    alerts = [
        Alert.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    assert alerts, worker.log_text()
    assert ("drift", "x") in {(a.kind.value, a.feature) for a in alerts}
    moved_by_x = {"x", "(prediction)", "(multivariate)", None}  # None: the model-level alert
    assert {(a.kind.value, a.feature) for a in alerts} <= {("drift", s) for s in moved_by_x}
    assert first_shifted is not None
    for alert in alerts:
        assert alert.source is not None
        assert alert.source.offset >= first_shifted[2], "an alert before the drift"
