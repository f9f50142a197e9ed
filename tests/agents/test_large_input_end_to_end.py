"""Messages of megabytes: taken by the topics, processed or dead-lettered whole, no agent lost.

A real worker subprocess, its ``max_message_bytes`` raised past 2 MiB and
its topics created from its settings, consumes from the real broker a valid
prediction of 2 MiB, rejected messages of 790 KiB, 1 MiB and 2 MiB, and one
over its limit (on an input topic an operator made larger than the
setting). The valid one must be processed; each rejected one must come back
as a dead letter at its exact Kafka position, with its reason, size and
digest, carrying its bytes whole, or cut to the limit when over it; and the
worker must go on processing the small events sent after them.
"""

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka_helpers import free_port, wait_for_worker

from driftline.schemas import DeadLetter, FeatureSpec, ModelSpec
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

KiB = 1 << 10
MiB = 1 << 20
MAX_BYTES = 2 * MiB + 256 * KiB
"""The worker's ``max_message_bytes``: a 2 MiB message and its key fit, with room to spare."""
OVER_LIMIT_BYTES = MAX_BYTES + 512 * KiB
"""A message the worker must refuse as too large, on a topic made to take it."""
SMALL_EVENTS = 40
"""Small valid predictions sent before and after the large messages."""

MODEL = "large-inputs"
KEY = MODEL.encode()
START = datetime.now(UTC) - timedelta(hours=1)

SPEC = ModelSpec(
    model_id=MODEL,
    model_version="1",
    task="regression",
    features=[
        FeatureSpec(name="x", kind="numeric"),
        # a free-text input: any string is a valid value, however long
        FeatureSpec(name="note", kind="categorical", nullable=True, monitor=False),
    ],
)


@dataclass(frozen=True)
class Sent:
    """A message sent to an input topic, and where Kafka put it."""

    value: bytes
    topic: str
    partition: int
    offset: int


def prediction(index: int, **fields: Any) -> dict[str, Any]:
    """A valid prediction of the model (``fields`` replace or add to it)."""
    document: dict[str, Any] = {
        "model_id": MODEL,
        "model_version": "1",
        "event_id": f"e-{index}",
        "event_time": (START + timedelta(milliseconds=index)).isoformat(),
        "features": {"x": index % 7 / 7},
        "prediction": 0.5,
    }
    return document | fields


def of_size(size: int, document: dict[str, Any], padded: str) -> bytes:
    """``document`` as JSON of exactly ``size`` bytes, its string field ``padded`` (at the top
    level, or in ``features``) lengthened to get there."""
    unpadded = json.dumps(document).encode()
    where = document if padded in document else document["features"]
    where[padded] += "n" * (size - len(unpadded))
    value = json.dumps(document).encode()
    assert len(value) == size
    return value


def large_valid_prediction() -> bytes:
    """A valid prediction of 2 MiB: its free-text feature is that long."""
    document = prediction(10_000, features={"x": 0.5, "note": "n"})
    return of_size(2 * MiB, document, "note")


def rejected_messages() -> list[tuple[bytes, str]]:
    """Messages of 790 KiB, 1 MiB and 2 MiB the worker must reject, each with its reason:
    not JSON, not a valid event, and an event its model's spec refuses."""
    cut = of_size(790 * KiB + 2, prediction(10_001, event_id="e"), "event_id")[: 790 * KiB]
    too_long_id = of_size(1 * MiB, prediction(10_002, event_id="e"), "event_id")
    word_for_a_number = of_size(
        2 * MiB, prediction(10_003, prediction="high", features={"x": 0.5, "note": "n"}), "note"
    )
    return [
        (cut, "invalid_json"),
        (too_long_id, "invalid_event"),
        (word_for_a_number, "spec_violation"),
    ]


def over_the_limit() -> bytes:
    """A feature event over the worker's limit (it is never parsed: its size refuses it)."""
    document = {
        "model_id": MODEL,
        "model_version": "1",
        "event_id": "f-1",
        "prediction_id": "e-1",
        "event_time": START.isoformat(),
        "features": {"x": 0.5, "note": "n"},
    }
    return of_size(OVER_LIMIT_BYTES, document, "note")


def make_larger_than_the_setting(settings: Settings, topic: str, limit: int) -> None:
    """Let ``topic`` take messages of up to ``limit`` bytes, as an operator may."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        config = {"max.message.bytes": str(limit)}
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)])
    finally:
        admin.close()


def read_dead_letters(settings: Settings, expected: int) -> list[DeadLetter]:
    """The dead letters on the worker's topic (each may be twice the worker's limit to be
    read), once ``expected`` of them have been delivered; fails after a minute."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.dead_letter_max_bytes,
        fetch_max_bytes=settings.topic_partitions * settings.dead_letter_max_bytes,
    )
    try:
        topic = settings.dead_letters_topic
        consumer.assign([TopicPartition(topic, p) for p in range(settings.topic_partitions)])
        consumer.seek_to_beginning()
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + 60
        while len(letters) < expected and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=1_000)
            records = [record for batch in batches.values() for record in batch]
            letters += [DeadLetter.model_validate_json(record.value) for record in records]
        assert len(letters) >= expected, f"{len(letters)} dead letters delivered"
        return letters
    finally:
        consumer.close()


def accounted(counts: dict[str, Any]) -> bool:
    """Whether every message consumed from a topic has had its outcome (the status is read
    between batches, and a batch may wait for the registry between the two)."""
    outcomes = ("processed", "dead_lettered", "duplicates", "waiting")
    return sum(counts[outcome] for outcome in outcomes) == counts["consumed"]


def check_carried(letter: DeadLetter, sent: Sent, reason: str, carried: int) -> None:
    """The dead letter names the message's place, reason, size and digest, and carries its
    first ``carried`` bytes (all of them unless it was over the limit)."""
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (
        sent.topic,
        sent.partition,
        sent.offset,
    )
    assert letter.reason.value == reason
    assert letter.original_bytes == len(sent.value)
    assert letter.original_sha256 == hashlib.sha256(sent.value).hexdigest()
    assert letter.original is not None
    assert base64.b64decode(letter.original) == sent.value[:carried]
    assert letter.original_truncated is (carried < len(sent.value))


def test_messages_of_megabytes_are_processed_or_dead_lettered_and_no_agent_crashes(
    worker_settings: Settings, tmp_path: Path
) -> None:
    settings = worker_settings.model_copy(
        update={"max_message_bytes": MAX_BYTES, "web_enabled": True, "web_port": free_port()}
    )
    ensure_topics(settings)
    topic_limit = 2 * settings.max_message_bytes
    make_larger_than_the_setting(settings, settings.features_topic, topic_limit)
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=topic_limit
    )

    def send(topic: str, value: bytes, key: bytes = KEY) -> Sent:
        metadata = producer.send(topic, key=key, value=value).get(timeout=60)
        return Sent(value, metadata.topic, metadata.partition, metadata.offset)

    def send_small(first: int) -> None:
        for index in range(first, first + SMALL_EVENTS // 2):
            send(settings.predictions_topic, json.dumps(prediction(index)).encode())

    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        send(settings.models_topic, SPEC.model_dump_json().encode(), SPEC.registry_key())
        send_small(0)
        large = send(settings.predictions_topic, large_valid_prediction())
        rejected = [(send(settings.predictions_topic, v), r) for v, r in rejected_messages()]
        too_large = send(settings.features_topic, over_the_limit())
        send_small(SMALL_EVENTS // 2)
        producer.close()
        report = wait_for_worker(
            settings.web_port,
            worker,
            lambda report: (
                report["topics"]["predictions"]["consumed"] == SMALL_EVENTS + 1 + len(rejected)
                and report["topics"]["features"]["consumed"] == 1
                and all(accounted(counts) for counts in report["topics"].values())
            ),
            timeout=120,
        )
        letters = read_dead_letters(settings, len(rejected) + 1)
        assert worker.running, worker.log_text()
        assert worker.stop() == 0, worker.log_text()  # a crashed worker exits with another
        log = worker.log_text()

    predictions = report["topics"]["predictions"]
    assert predictions["processed"] == SMALL_EVENTS + 1, "the 2 MiB event among them"
    assert predictions["dead_letter_reasons"] == {reason: 1 for _, reason in rejected}
    assert report["topics"]["features"]["dead_letter_reasons"] == {"too_large": 1}
    assert report["models_monitored"] == 1
    for crash in ("Traceback", "Crashed", "crashed", "failed on a batch"):
        assert crash not in log, log

    by_offset = {(d.source.topic, d.source.partition, d.source.offset): d for d in letters}
    assert len(by_offset) == len(letters) == len(rejected) + 1
    assert (large.topic, large.partition, large.offset) not in by_offset
    for sent, reason in rejected:
        letter = by_offset[(sent.topic, sent.partition, sent.offset)]
        check_carried(letter, sent, reason, len(sent.value))
    letter = by_offset[(too_large.topic, too_large.partition, too_large.offset)]
    check_carried(letter, too_large, "too_large", settings.max_message_bytes - len(KEY))
