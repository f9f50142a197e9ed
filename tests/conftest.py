"""Shared fixtures: one real Kafka broker for the whole session, and per-test names.

Tests that cross Kafka share the broker but never a topic or consumer group:
each gets fresh names from :func:`worker_settings`, so they cannot see each
other's messages.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from kafka_helpers import named_after

from driftline.broker import LocalKafkaBroker
from driftline.streams.settings import Settings

# Hypothesis checks what a test finds, never how long an example took: on a
# shared, noisy machine a time limit per example fails a test that found nothing.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


LONGEST_FILES = (
    "test_broker_outage_end_to_end.py",
    "test_faults_end_to_end.py",
    "test_throughput.py",
    "test_restart_end_to_end.py",
)
"""Files of tests that take minutes (the broker-pause test alone six, most of it waiting)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first: `make test` runs files in two processes, which take them in
    this order, so that no process is left with a long file at the end while the other idles."""
    items.sort(key=lambda item: item.path.name not in LONGEST_FILES)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaBroker]:
    """A real single-node Apache Kafka broker on 127.0.0.1 for the test session."""
    with LocalKafkaBroker(data_dir=tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
def worker_settings(kafka_broker: LocalKafkaBroker, tmp_path: Path) -> Settings:
    """Worker settings with topics and a consumer group of this test's own."""
    return Settings(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        topic_partitions=4,
        data_dir=tmp_path / "worker",
        log_level="info",
        **named_after(uuid.uuid4().hex[:10]),
    )


@pytest.fixture(scope="session")
def artifacts(pytestconfig: pytest.Config) -> Path:
    """Where tests leave what a person may want to look at (screenshots, reports):
    ``DRIFTLINE_TEST_ARTIFACTS``, else ``test-artifacts/`` in the repository."""
    folder = Path(
        os.environ.get("DRIFTLINE_TEST_ARTIFACTS") or pytestconfig.rootpath / "test-artifacts"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
