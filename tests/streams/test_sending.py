"""RecordSender: records handed over as batches per partition, in order, retried until taken."""

import asyncio
import logging
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fake_producer import FakeProducer
from hypothesis import given
from hypothesis import strategies as st

from driftline.streams import sending
from driftline.streams.sending import PlacedRecord, Record, RecordSender
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries wait 10 ms instead of half a second, so a test takes no time."""
    real_sleep = asyncio.sleep

    async def sleep(seconds: float, result: Any = None) -> Any:
        return await real_sleep(min(seconds, 0.01), result)

    monkeypatch.setattr(sending.asyncio, "sleep", sleep)


def send(producer: FakeProducer, records: list[Record], timeout: float = 1.0) -> list[Any]:
    """Send through a RecordSender and wait for every delivery; the deliveries' results."""

    async def run() -> list[Any]:
        deliveries = await RecordSender(lambda: producer, timeout=timeout).send_all(records)
        return list(await asyncio.gather(*deliveries))

    return asyncio.run(run())


def by_partition(records: list[tuple[str, int, bytes | None, bytes]]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for topic, partition, key, value in records:
        grouped[(topic, partition)].append((key, value))
    return dict(grouped)


def test_records_go_to_their_keys_partitions_in_order_one_batch_each() -> None:
    producer = FakeProducer()
    records: list[Record] = [
        ("alerts", f"model-{i % 3}".encode(), f"alert {i}".encode()) for i in range(9)
    ]
    records.append(("dead-letters", b"model-0", b"letter"))
    deliveries = send(producer, records)
    expected: dict[Any, list[Any]] = defaultdict(list)
    for topic, key, value in records:
        assert key is not None
        expected[(topic, producer._partition(topic, None, None, None, key, None))].append(
            (key, value)
        )
    assert by_partition(producer.records()) == expected
    assert len(deliveries) == len(producer.taken) == len(expected)  # a batch per partition


def test_a_partition_with_more_records_than_a_batch_holds_takes_several_batches_in_order() -> None:
    producer = FakeProducer(capacity=4)
    records: list[Record] = [("alerts", b"k", str(i).encode()) for i in range(10)]
    send(producer, records)
    assert [len(batch) for _, _, batch in producer.taken] == [4, 4, 2]
    assert [value for _, _, _, value in producer.records()] == [value for _, _, value in records]


def test_each_key_is_partitioned_once_a_call_and_a_record_without_one_each_time() -> None:
    producer = FakeProducer()
    records: list[Record] = [("alerts", b"a", b"1"), ("alerts", b"a", b"2"), ("alerts", b"b", b"3")]
    records += [("alerts", None, b"4"), ("alerts", None, b"5")]
    send(producer, records)
    assert producer.partitioned == 4
    unkeyed = [partition for _, partition, key, _ in producer.records() if key is None]
    assert len(set(unkeyed)) == 2  # the partitioner's choice each time (round robin here)


def test_a_refused_batch_is_tried_again_until_taken_and_taken_once() -> None:
    producer = FakeProducer(refusals=3)
    send(producer, [("alerts", b"k", b"v")])
    assert producer.tries == 4
    assert producer.records() == [("alerts", producer.records()[0][1], b"k", b"v")]


def test_a_hand_over_that_hangs_past_the_timeout_is_tried_again() -> None:
    producer = FakeProducer(stalls=1)
    send(producer, [("alerts", b"k", b"v")], timeout=0.05)
    assert producer.tries == 2
    assert len(producer.records()) == 1


def test_no_records_ask_nothing_of_the_producer() -> None:
    def no_producer() -> FakeProducer:
        raise AssertionError("the producer was asked for")

    assert asyncio.run(RecordSender(no_producer, timeout=1.0).send_all([])) == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alerts", "dead-letters"]),
            st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c", b"d", b"e"])),
        ),
        max_size=60,
    ),
    st.integers(min_value=1, max_value=7),
)
def test_every_record_is_taken_once_in_order_within_its_partition(
    destinations: list[tuple[str, bytes | None]], capacity: int
) -> None:
    records: list[Record] = [(t, k, str(i).encode()) for i, (t, k) in enumerate(destinations)]
    producer = FakeProducer(capacity=capacity)
    send(producer, records)
    taken = producer.records()
    assert sorted(int(v) for _, _, _, v in taken) == list(range(len(records)))
    for (topic, _), pairs in by_partition(taken).items():
        indices = [int(value) for _, value in pairs]
        assert indices == sorted(indices)  # the order they were given in
        assert all(records[i][:2] == (topic, k) for (k, _), i in zip(pairs, indices, strict=True))
    keyed = {(t, k): p for t, p, k, _ in taken if k is not None}
    assert all(keyed[(t, k)] == p for t, p, k, _ in taken if k is not None)
    assert all(0 < len(batch) <= capacity for _, _, batch in producer.taken)


def test_placed_records_go_to_the_partitions_given_in_order_tombstones_too() -> None:
    records: list[PlacedRecord] = [
        ("changelog", 3, b"a", b"1"),
        ("changelog", 0, b"a", None),  # the partition given wins over the key's
        ("changelog", 3, b"b", b"2"),
        ("other", 3, b"c", b"3"),
        ("changelog", 3, b"a", None),
    ]
    producer = FakeProducer(capacity=2)

    async def run() -> list[Any]:
        return await RecordSender(lambda: producer, timeout=1.0).send_placed(records)

    deliveries = asyncio.run(run())
    assert producer.partitioned == 0
    assert producer.taken == [
        ("changelog", 3, [(b"a", b"1"), (b"b", b"2")]),
        ("changelog", 3, [(b"a", None)]),
        ("changelog", 0, [(b"a", None)]),
        ("other", 3, [(b"c", b"3")]),
    ]
    assert len(deliveries) == 4
    assert asyncio.run(RecordSender(lambda: producer, timeout=1.0).send_placed([])) == []


def test_a_batch_the_broker_never_took_is_reported_with_its_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = FakeProducer(failures=1, capacity=2)
    records: list[Record] = [("alerts", b"a", b"1"), ("alerts", b"a", b"2"), ("alerts", b"a", b"3")]

    async def run() -> list[Any]:
        deliveries = await RecordSender(lambda: producer, timeout=1.0).send_all(records)
        return list(await asyncio.gather(*deliveries, return_exceptions=True))

    with caplog.at_level(logging.ERROR, logger="driftline.streams.sending"):
        results = asyncio.run(run())
    assert [isinstance(result, OSError) for result in results] == [True, False]
    partition = producer.taken[0][1]
    [report] = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert f"2 records to alerts partition {partition} were not delivered" in report


@pytest.mark.kafka
def test_records_land_where_the_producers_own_sends_put_their_keys(
    worker_settings: Settings,
) -> None:
    """Against the real broker: the partition of each key is the one ``send`` gives it, each
    partition holds its records in the order given, and where each batch's last record landed
    is told as it is delivered."""
    ensure_topics(worker_settings)
    topic = worker_settings.alerts_topic
    servers = worker_settings.bootstrap_servers
    keys = [f"model-{i}".encode() for i in range(12)]
    records: list[Record] = [(topic, keys[i % 12], f"{i}".encode()) for i in range(600)]

    told: list[tuple[str, int, int]] = []

    async def run() -> tuple[dict[bytes, int], list[Any]]:
        producer = AIOKafkaProducer(bootstrap_servers=servers, max_batch_size=2048)
        await producer.start()
        try:
            sender = RecordSender(
                lambda: producer, timeout=30.0, on_delivered=lambda *at: told.append(at)
            )
            deliveries = await sender.send_all(records)
            await asyncio.gather(*deliveries)
            own = {
                key: (await producer.send_and_wait(topic, b"own", key=key)).partition
                for key in keys
            }
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=servers, auto_offset_reset="earliest", enable_auto_commit=False
        )
        await consumer.start()
        read: list[Any] = []
        try:
            while len(read) < len(records) + len(keys):
                fetched = await consumer.getmany(timeout_ms=5_000)
                assert fetched, f"only {len(read)} records came back"
                read += [record for batch in fetched.values() for record in batch]
        finally:
            await consumer.stop()
        return own, read

    own, read = asyncio.run(run())
    assert len(set(own.values())) > 1  # the keys spread over partitions
    mine = [record for record in read if record.value != b"own"]
    assert sorted(int(record.value) for record in mine) == list(range(600))
    for record in mine:
        assert record.partition == own[record.key]
    for partition in range(worker_settings.topic_partitions):
        stored = sorted((r for r in mine if r.partition == partition), key=lambda r: r.offset)
        indices = [int(record.value) for record in stored]
        assert indices == sorted(indices)
        if stored:
            last = max(offset for t, p, offset in told if (t, p) == (topic, partition))
            assert last == stored[-1].offset
