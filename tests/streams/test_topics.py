import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

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
