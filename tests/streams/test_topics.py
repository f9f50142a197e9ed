import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from driftline.schemas import DeadLetterReason, KafkaPosition
from driftline.streams.codecs import Rejection, encode
from driftline.streams.deadletters import dead_letter
from driftline.streams.settings import BROKER_DEFAULT_MAX_BYTES, Settings
from driftline.streams.topics import ensure_topics, topic_plans, worker_topics

pytestmark = pytest.mark.kafka


def test_missing_topics_are_created_as_planned(worker_settings):
    created = ensure_topics(worker_settings)
    assert sorted(created) == sorted(worker_topics(worker_settings))
    admin = KafkaAdminClient(bootstrap_servers=worker_settings.bootstrap_servers)
    try:
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(created)}
        registry = ConfigResource(ConfigResourceType.TOPIC, worker_settings.models_topic)
        configs = admin.describe_configs([registry])
    finally:
        admin.close()
    assert partitions == {plan.name: plan.partitions for plan in topic_plans(worker_settings)}
    assert partitions[worker_settings.models_topic] == 1
    assert partitions[worker_settings.predictions_topic] == worker_settings.topic_partitions
    policy = configs["topic"][worker_settings.models_topic]["cleanup.policy"]["value"]
    assert policy == "compact"


def test_creating_topics_twice_changes_nothing(worker_settings):
    ensure_topics(worker_settings)
    assert ensure_topics(worker_settings) == []


def test_the_largest_dead_letter_a_worker_makes_fits_the_dead_letters_topic(worker_settings):
    """A dead letter carries its message base64-encoded, a third larger than the message: the
    topic takes the largest one a worker makes, as its producer does."""
    ensure_topics(worker_settings)
    size = worker_settings.max_message_bytes
    key = b"k" * 8
    letter = dead_letter(
        Rejection(DeadLetterReason.INVALID_JSON, "not JSON"),
        value=b"{" * (size - len(key)),
        key=key,
        source=KafkaPosition(topic=worker_settings.predictions_topic, partition=0, offset=0),
        max_original_bytes=size,
    )
    assert letter.original is not None  # a message at the limit is carried whole
    value = encode(letter)
    assert len(value) > 1_048_588  # over the broker's default limit for a topic

    async def send() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=worker_settings.bootstrap_servers,
            max_request_size=worker_settings.dead_letter_max_bytes,
        )
        await producer.start()
        try:
            await producer.send_and_wait(worker_settings.dead_letters_topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def test_the_topics_a_worker_reads_never_take_less_than_the_broker_default() -> None:
    # A topic created with a lower limit would refuse to producers messages the broker
    # takes by default, which the worker would otherwise dead-letter as too large.
    settings = Settings(max_message_bytes=8_192)
    limits = {plan.name: plan.config.get("max.message.bytes") for plan in topic_plans(settings)}
    for topic in settings.input_topics:
        assert int(limits[topic] or 0) > BROKER_DEFAULT_MAX_BYTES


def test_every_input_topic_takes_a_message_as_large_as_the_worker_accepts(worker_settings):
    """Raised past the broker's default of 1 MiB, ``max_message_bytes`` is what the topics a
    worker creates take: a topic left at the default refused a valid event of 2 MiB."""
    settings = worker_settings.model_copy(update={"max_message_bytes": 2 * 2**20 + 2**17})
    ensure_topics(settings)
    key = b"k" * 256
    value = b"v" * settings.max_message_bytes
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        max_request_size=settings.input_topic_max_bytes,
    )
    try:
        for topic in settings.input_topics:
            producer.send(topic, key=key, value=value).get(timeout=60)
    finally:
        producer.close()


def test_the_changelog_of_every_table_of_the_worker_is_planned_as_faust_makes_it(tmp_path):
    # Created as the worker starts, a changelog may be missing from the metadata of the
    # group's leader, which then leaves the table to no one: no worker reads it back.
    from driftline.agents.worker import build_worker_app

    settings = Settings(data_dir=tmp_path)
    dapp, _ = build_worker_app(settings)
    plans = {plan.name: plan for plan in topic_plans(settings)}
    tables = list(dapp.app.tables.values())
    assert len(tables) == 2
    for table in tables:
        topic = table.changelog_topic
        plan = plans[topic.get_topic_name()]
        assert plan.partitions == table.partitions == settings.topic_partitions
        assert plan.config["cleanup.policy"] == "compact"
        assert plan.config.get("max.message.bytes") == topic.config.get("max.message.bytes")
