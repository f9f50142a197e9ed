"""Shared fixtures: one real Kafka broker for the whole session, and per-test names.

Tests that cross Kafka share the broker but never a topic or consumer group:
each gets fresh names from :func:`worker_settings`, so they cannot see each
other's messages.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from driftline.streams.broker import LocalKafkaBroker
from driftline.streams.settings import Settings

# Hypothesis checks what a test finds, never how long an example took: on a
# shared, noisy machine a time limit per example fails a test that found nothing.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaBroker]:
    """A real single-node Apache Kafka broker on 127.0.0.1 for the test session."""
    with LocalKafkaBroker(data_dir=tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
def worker_settings(kafka_broker: LocalKafkaBroker, tmp_path: Path) -> Settings:
    """Worker settings with topics and a consumer group of this test's own."""
    suffix = uuid.uuid4().hex[:10]
    return Settings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        app_id=f"test-{suffix}",
        predictions_topic=f"predictions-{suffix}",
        features_topic=f"features-{suffix}",
        labels_topic=f"labels-{suffix}",
        models_topic=f"models-{suffix}",
        references_topic=f"references-{suffix}",
        alerts_topic=f"alerts-{suffix}",
        retrain_triggers_topic=f"retrain-triggers-{suffix}",
        performance_topic=f"performance-{suffix}",
        dead_letters_topic=f"dead-letters-{suffix}",
        topic_partitions=4,
        data_dir=tmp_path / "worker",
        log_level="info",
    )
