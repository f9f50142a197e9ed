import contextlib
import json
import uuid
from datetime import UTC, datetime

import pytest
import samples
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka_helpers import read_all
from pydantic import ValidationError

from driftline.client import (
    DEFAULT_ALERTS_TOPIC,
    DEFAULT_FEATURES_TOPIC,
    DEFAULT_LABELS_TOPIC,
    DEFAULT_MODELS_TOPIC,
    DEFAULT_PREDICTIONS_TOPIC,
    DEFAULT_RETRAIN_TRIGGERS_TOPIC,
    AlertSubscriber,
    Publisher,
    PublishError,
)
from driftline.schemas import (
    Alert,
    AlertKind,
    FeatureEvent,
    KeyedBy,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
    RetrainTrigger,
    TriggerReason,
    registry_key,
)
from driftline.simulate import simulated_predictions
from driftline.streams.settings import Settings

pytestmark = pytest.mark.kafka

WHEN = datetime(2026, 1, 1, tzinfo=UTC)

SPEC = {
    "model_id": "churn",
    "model_version": "3",
    "task": "classification",
    "classes": ["stays", "leaves"],
    "features": [{"name": "tenure", "kind": "numeric", "minimum": 0}],
}


def create_topics(bootstrap_servers: str, *names: str, **config: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(name, num_partitions=2, replication_factor=1, topic_configs=config)]
                )
    finally:
        admin.close()


def read_keyed(bootstrap_servers: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) on ``topic``, from the beginning, in partition order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=2_000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        return [(record.key, record.value) for record in consumer]
    finally:
        consumer.close()


@pytest.fixture
def topics(kafka_broker, worker_settings: Settings) -> Settings:
    s = worker_settings
    create_topics(kafka_broker.bootstrap_servers, s.predictions_topic, s.features_topic)
    create_topics(kafka_broker.bootstrap_servers, s.labels_topic, s.alerts_topic)
    create_topics(kafka_broker.bootstrap_servers, s.retrain_triggers_topic)
    create_topics(kafka_broker.bootstrap_servers, s.models_topic, **{"cleanup.policy": "compact"})
    return s


def publisher_for(settings: Settings, **config) -> Publisher:
    return Publisher(
        settings.bootstrap_servers,
        predictions_topic=settings.predictions_topic,
        features_topic=settings.features_topic,
        labels_topic=settings.labels_topic,
        models_topic=settings.models_topic,
        **config,
    )


def an_alert(alert_id: str = "a-1") -> Alert:
    return samples.an_alert().model_copy(update={"alert_id": alert_id})


def a_trigger() -> RetrainTrigger:
    return RetrainTrigger(
        trigger_id="t-1",
        idempotency_key="m/1/71",
        model_id="m",
        model_version="1",
        event_time=WHEN,
        reasons=[TriggerReason(kind=AlertKind.DRIFT, alert_id="a-1", summary="x moved")],
    )


def test_the_default_topics_are_the_settings_defaults():
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert {
        "predictions_topic": DEFAULT_PREDICTIONS_TOPIC,
        "features_topic": DEFAULT_FEATURES_TOPIC,
        "labels_topic": DEFAULT_LABELS_TOPIC,
        "models_topic": DEFAULT_MODELS_TOPIC,
        "alerts_topic": DEFAULT_ALERTS_TOPIC,
        "retrain_triggers_topic": DEFAULT_RETRAIN_TRIGGERS_TOPIC,
    }.items() <= defaults.items()


def test_published_predictions_arrive_keyed_by_model(kafka_broker, topics: Settings):
    events = list(simulated_predictions(20, shift_at=10, seed=2))
    with publisher_for(topics) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()
    received = read_keyed(kafka_broker.bootstrap_servers, topics.predictions_topic)
    assert {key for key, _ in received} == {b"demo-model"}
    values = read_all(kafka_broker.bootstrap_servers, topics.predictions_topic)
    assert [PredictionEvent.model_validate_json(v or b"") for v in values] == events


def test_each_kind_of_event_goes_to_its_own_topic(kafka_broker, topics: Settings):
    prediction = PredictionEvent(
        model_id="churn", model_version="3", event_id="e-1", event_time=WHEN, prediction="stays"
    )
    features = FeatureEvent(
        model_id="churn",
        model_version="3",
        event_id="f-1",
        prediction_id="e-1",
        event_time=WHEN,
        features={"tenure": 14.0, "plan": "pro", "trial": True, "referrer": None},
    )
    label = LabelEvent(
        model_id="churn", event_id="l-1", prediction_id="e-1", event_time=WHEN, label="leaves"
    )
    with publisher_for(topics) as publisher:
        for event in (prediction, features, label):
            publisher.publish(event)
    for topic, event in [
        (topics.predictions_topic, prediction),
        (topics.features_topic, features),
        (topics.labels_topic, label),
    ]:
        [(key, value)] = read_keyed(kafka_broker.bootstrap_servers, topic)
        assert key == b"churn"
        assert type(event).model_validate_json(value or b"") == event


def test_a_publisher_keyed_by_event_id_keys_features_and_labels_by_their_prediction(
    kafka_broker, topics: Settings
):
    # A model spread over partitions: its features and label land with their prediction.
    prediction = PredictionEvent(
        model_id="churn", model_version="3", event_id="e-7", event_time=WHEN, prediction="stays"
    )
    features = FeatureEvent(
        model_id="churn",
        model_version="3",
        event_id="f-7",
        prediction_id="e-7",
        event_time=WHEN,
        features={"tenure": 14.0},
    )
    label = LabelEvent(
        model_id="churn", event_id="l-7", prediction_id="e-7", event_time=WHEN, label="leaves"
    )
    with publisher_for(topics, keyed_by=KeyedBy.EVENT_ID) as publisher:
        assert publisher.keyed_by is KeyedBy.EVENT_ID
        for event in (prediction, features, label):
            publisher.publish(event)
    for topic in (topics.predictions_topic, topics.features_topic, topics.labels_topic):
        [(key, _)] = read_keyed(kafka_broker.bootstrap_servers, topic)
        assert key == b"e-7"


def test_mappings_are_validated_as_json_and_published(kafka_broker, topics: Settings):
    with publisher_for(topics) as publisher:
        prediction = publisher.publish_prediction(
            {
                "model_id": "churn",
                "model_version": "3",
                "event_id": "e-1",
                "event_time": WHEN,
                "features": {"tenure": 14, "plan": "pro"},
                "probabilities": {"stays": 0.75, "leaves": 0.25},
            }
        )
        features = publisher.publish_features(
            {
                "model_id": "churn",
                "model_version": "3",
                "event_id": "f-1",
                "prediction_id": "e-1",
                "event_time": "2026-01-01T00:00:00Z",
                "features": {"tenure": 14},
            }
        )
        label = publisher.publish_label(
            LabelEvent(
                model_id="churn", event_id="l-1", prediction_id="e-1", event_time=WHEN, label=1
            )
        )
        publisher.flush()
    assert prediction.event_time == WHEN
    assert prediction.features == {"tenure": 14.0, "plan": "pro"}
    for topic, event in [
        (topics.predictions_topic, prediction),
        (topics.features_topic, features),
        (topics.labels_topic, label),
    ]:
        [value] = read_all(kafka_broker.bootstrap_servers, topic)
        assert type(event).model_validate_json(value or b"") == event


@pytest.mark.parametrize(
    ("method", "payload", "field"),
    [
        (
            "publish_prediction",
            {"model_id": "churn", "model_version": 3, "event_id": "e", "event_time": WHEN},
            "model_version",
        ),
        (
            "publish_prediction",
            {
                "model_id": "churn",
                "model_version": "3",
                "event_id": "e",
                "event_time": WHEN,
                "probabilities": {"stays": "0.5", "leaves": 0.5},
            },
            "probabilities.stays",
        ),
        (
            "publish_features",
            {
                "model_id": "churn",
                "model_version": "3",
                "event_id": "f",
                "prediction_id": "e",
                "event_time": datetime(2026, 1, 1),  # naive: no timezone
                "features": {"x": 1.0},
            },
            "event_time",
        ),
        (
            "publish_label",
            {"model_id": "churn", "event_id": "l", "prediction_id": "e", "event_time": WHEN},
            "label",
        ),
        ("register", {**SPEC, "task": "ranking"}, "task"),
        ("register", {**SPEC, "features": [{"name": "x", "kind": "numeric", 1: 2}]}, "features.0"),
    ],
)
def test_an_invalid_mapping_is_refused_before_anything_is_sent(
    kafka_broker, topics: Settings, method, payload, field
):
    with publisher_for(topics) as publisher:
        with pytest.raises(ValidationError) as caught:
            getattr(publisher, method)(payload)
        publisher.flush()
    locations = {".".join(map(str, e["loc"])) for e in caught.value.errors()}
    assert any(location.startswith(field) for location in locations), locations
    for topic in (
        topics.predictions_topic,
        topics.features_topic,
        topics.labels_topic,
        topics.models_topic,
    ):
        assert read_all(kafka_broker.bootstrap_servers, topic, idle_ms=500) == []


def test_only_events_can_be_published(topics: Settings):
    with publisher_for(topics) as publisher:
        with pytest.raises(TypeError, match="cannot publish a Alert"):
            publisher.publish(an_alert())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="expected a LabelEvent or a mapping"):
            publisher.publish_label(an_alert())  # type: ignore[arg-type]


def test_specs_are_registered_and_unregistered_under_their_registry_key(
    kafka_broker, topics: Settings
):
    spec = ModelSpec.model_validate_json(json.dumps(SPEC))
    with publisher_for(topics) as publisher:
        assert publisher.register(spec) == spec
        other = publisher.register({**SPEC, "model_id": "fraud/eu", "model_version": "2"})
        publisher.unregister("churn", "3")
        publisher.flush()
    received = read_keyed(kafka_broker.bootstrap_servers, topics.models_topic)
    by_key: dict[bytes | None, list[bytes | None]] = {}
    for key, value in received:
        by_key.setdefault(key, []).append(value)
    assert by_key.keys() == {b'["churn","3"]', b'["fraud/eu","2"]'}
    [registered, tombstone] = by_key[registry_key("churn", "3")]
    assert ModelSpec.model_validate_json(registered or b"") == spec
    assert tombstone is None
    [registered_other] = by_key[other.registry_key()]
    assert ModelSpec.model_validate_json(registered_other or b"") == other


def test_flush_raises_when_the_broker_refuses_a_message(kafka_broker, topics: Settings):
    small = f"small-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker.bootstrap_servers, small, **{"max.message.bytes": "1024"})
    big = FeatureEvent(
        model_id="m",
        model_version="1",
        event_id="f-1",
        prediction_id="e-1",
        event_time=WHEN,
        features={f"x{i}": float(i) for i in range(200)},
    )
    fine = PredictionEvent(model_id="m", model_version="1", event_id="e-1", event_time=WHEN)
    publisher = Publisher(
        kafka_broker.bootstrap_servers,
        predictions_topic=topics.predictions_topic,
        features_topic=small,
        retries=0,
    )
    try:
        publisher.publish(fine)
        publisher.publish(big)
        with pytest.raises(PublishError, match=r"1 message\(s\) were not delivered") as caught:
            publisher.flush()
        assert caught.value.undelivered == 1
        assert "TooLarge" in type(caught.value.errors[0]).__name__
        publisher.flush()  # each failure is reported once
    finally:
        publisher.close()
    [value] = read_all(kafka_broker.bootstrap_servers, topics.predictions_topic)
    assert PredictionEvent.model_validate_json(value or b"") == fine


def test_the_subscriber_yields_alerts_and_triggers_and_skips_what_does_not_parse(
    kafka_broker, topics: Settings
):
    alert, trigger = an_alert(), a_trigger()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    producer.send(topics.alerts_topic, value=b"not an alert")
    producer.send(topics.alerts_topic, value=alert.model_dump_json().encode())
    producer.send(topics.alerts_topic, value=None, key=b"tombstone")
    producer.send(topics.alerts_topic, value=trigger.model_dump_json().encode())
    producer.send(topics.retrain_triggers_topic, value=b'{"trigger_id": 1}')
    producer.send(topics.retrain_triggers_topic, value=trigger.model_dump_json().encode())
    producer.send(topics.retrain_triggers_topic, value=b"\xff\xfe")
    producer.flush()
    producer.close()
    with AlertSubscriber(
        kafka_broker.bootstrap_servers,
        alerts_topic=topics.alerts_topic,
        retrain_triggers_topic=topics.retrain_triggers_topic,
        group_id=f"subscriber-{uuid.uuid4().hex[:8]}",
        from_beginning=True,
        idle_timeout=5.0,
    ) as subscriber:
        received = list(subscriber)
        assert sorted(received, key=lambda m: type(m).__name__) == [alert, trigger]
        assert subscriber.unreadable == 5


def test_the_subscriber_can_leave_the_triggers_out_and_poll(kafka_broker, topics: Settings):
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    producer.send(topics.alerts_topic, value=an_alert("a-2").model_dump_json().encode())
    producer.send(topics.retrain_triggers_topic, value=a_trigger().model_dump_json().encode())
    producer.flush()
    producer.close()
    with AlertSubscriber(
        kafka_broker.bootstrap_servers,
        alerts_topic=topics.alerts_topic,
        retrain_triggers_topic=topics.retrain_triggers_topic,
        from_beginning=True,
        include_triggers=False,
    ) as subscriber:
        received: list[Alert | RetrainTrigger] = []
        for _ in range(20):
            received.extend(subscriber.poll(timeout=0.5))
            if received:
                break
        assert received == [an_alert("a-2")]
        assert subscriber.unreadable == 0
