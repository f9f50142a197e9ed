import uuid

import pytest
from kafka import KafkaProducer
from kafka_helpers import read_all
from samples import an_alert

from driftline.client import AlertSubscriber, Publisher
from driftline.schemas import PredictionEvent
from driftline.simulate import simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics

pytestmark = pytest.mark.kafka


def test_published_events_arrive_keyed_by_model(kafka_broker, worker_settings: Settings):
    ensure_topics(worker_settings)
    events = list(simulated_predictions(20, shift_at=10, seed=2))
    with Publisher(
        kafka_broker.bootstrap_servers, predictions_topic=worker_settings.predictions_topic
    ) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()
    received = read_all(kafka_broker.bootstrap_servers, worker_settings.predictions_topic)
    assert [PredictionEvent.model_validate_json(v or b"") for v in received] == events


def test_the_subscriber_yields_alerts_and_skips_what_does_not_parse(
    kafka_broker, worker_settings: Settings
):
    ensure_topics(worker_settings)
    alert = an_alert()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    producer.send(worker_settings.alerts_topic, value=b"not an alert")
    producer.send(worker_settings.alerts_topic, value=alert.model_dump_json().encode())
    producer.flush()
    producer.close()
    with AlertSubscriber(
        kafka_broker.bootstrap_servers,
        alerts_topic=worker_settings.alerts_topic,
        group_id=f"subscriber-{uuid.uuid4().hex[:8]}",
        from_beginning=True,
        idle_timeout=5.0,
    ) as subscriber:
        assert list(subscriber) == [alert]
        assert subscriber.unreadable == 1
