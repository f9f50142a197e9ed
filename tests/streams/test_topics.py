import pytest
from kafka import KafkaAdminClient

from driftline.streams.topics import ensure_topics, worker_topics

pytestmark = pytest.mark.kafka


def test_missing_topics_are_created_with_the_configured_partitions(worker_settings):
    created = ensure_topics(worker_settings)
    assert sorted(created) == sorted(worker_topics(worker_settings))
    admin = KafkaAdminClient(bootstrap_servers=worker_settings.bootstrap_servers)
    try:
        described = admin.describe_topics(created)
    finally:
        admin.close()
    assert {len(topic["partitions"]) for topic in described} == {worker_settings.topic_partitions}


def test_creating_topics_twice_changes_nothing(worker_settings):
    ensure_topics(worker_settings)
    assert ensure_topics(worker_settings) == []
