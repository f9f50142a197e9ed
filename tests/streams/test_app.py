"""The worker's producer, against a broker of its own paused past the send timeout."""

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka.producer import message_accumulator
from aiokafka.structs import TopicPartition
from kafka.errors import KafkaError
from kafka_helpers import named_after, read_all

from driftline.broker import LocalKafkaBroker
from driftline.streams.app import create_app, kafka_producer
from driftline.streams.sending import RecordSender
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics

SEND_TIMEOUT = 2.0
PAUSE = 4 * SEND_TIMEOUT


@pytest.mark.kafka
def test_a_batch_held_by_a_paused_broker_past_the_send_timeout_is_delivered_once(tmp_path: Path):
    """Without idempotence aiokafka fails a batch older than its request timeout: a worker
    lost a version's state that way when its broker was paused for 30 s."""
    with LocalKafkaBroker(data_dir=tmp_path / "kafka") as broker:
        settings = Settings(
            bootstrap_servers=broker.bootstrap_servers,
            data_dir=tmp_path / "worker",
            send_timeout_seconds=SEND_TIMEOUT,
            **named_after(uuid.uuid4().hex[:10]),
        )
        ensure_topics(settings)
        topic = settings.alerts_topic
        assert broker.pid is not None

        async def send_through_a_pause() -> None:
            app = create_app(settings).app
            await app.producer.start()
            try:
                sender = RecordSender(lambda: kafka_producer(app), timeout=SEND_TIMEOUT)
                [before] = await sender.send_all([(topic, b"k", b"before")])
                await before
                os.kill(broker.pid, signal.SIGSTOP)
                await asyncio.sleep(0.5)  # the signal stops the broker's threads, not at once
                try:
                    [held] = await sender.send_all([(topic, b"k", b"held")])
                    await asyncio.sleep(PAUSE)
                    assert not held.done()  # still retried, not failed
                finally:
                    os.kill(broker.pid, signal.SIGCONT)
                await asyncio.wait_for(held, timeout=120)
            finally:
                await app.producer.stop()

        try:
            asyncio.run(send_through_a_pause())
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert read_when_back(settings.bootstrap_servers, topic) == [b"before", b"held"]


def read_when_back(bootstrap_servers: str, topic: str) -> list[bytes | None]:
    """Every message of ``topic``, once the resumed broker serves metadata again (a KRaft
    broker fences itself for a moment after missing its heartbeats to the controller)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return read_all(bootstrap_servers, topic)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def test_each_app_id_keeps_its_tables_in_a_folder_of_its_own(tmp_path: Path) -> None:
    """Another app's databases (a replay under its own group, say) hold offsets of other
    changelogs: faust refuses to recover from them, so two app ids never share a folder."""

    folders = {
        Path(create_app(Settings(data_dir=tmp_path / "state", app_id=app_id)).app.conf.datadir)
        for app_id in ("driftline", "driftline-replay")
    }
    assert folders == {tmp_path / "state" / "driftline", tmp_path / "state" / "driftline-replay"}
    assert (tmp_path / "state").is_dir()


class _Later:
    """``time`` as aiokafka's accumulator reads it, a day later than it is."""

    @staticmethod
    def monotonic() -> float:
        return time.monotonic() + 86_400


def test_a_batch_waits_for_its_partitions_leader_however_long_it_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka fails a batch older than the request timeout whose partition has no leader,
    idempotent or not; a KRaft broker resumed after a long pause has none for a moment."""
    settings = Settings(
        bootstrap_servers="127.0.0.1:1", data_dir=tmp_path, send_timeout_seconds=SEND_TIMEOUT
    )

    async def drain_a_day_later() -> bool:
        producer = create_app(settings).app.producer._new_producer()
        try:
            accumulator = producer._message_accumulator
            builder = accumulator.create_builder()
            builder.append(key=b"k", value=b"v", timestamp=None)
            tp = TopicPartition("alerts", 0)
            delivery = await accumulator.add_batch(builder, tp, timeout=1)
            with monkeypatch.context() as later:
                later.setattr(message_accumulator, "time", _Later)
                _, no_leader = accumulator.drain_by_nodes(ignore_nodes=set())
            assert no_leader  # the partition's leader is not known: the case at hand
            return delivery.done()
        finally:
            producer._closed = True  # never started: nothing to stop

    assert asyncio.run(drain_a_day_later()) is False  # not failed: it waits
