"""The table store's write-behind buffer, with dicts standing in for faust tables."""

import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from faust.streams import _current_event
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from driftline.agents.tables import COMPACT_EVERY, TableStore
from driftline.monitors import labels
from driftline.monitors.labels import LabelJoin


class CountingTable(dict[bytes, bytes]):
    """A dict that counts the writes and deletes it is given (a changelog message each)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.messages: list[tuple[bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.messages.append((key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.messages.append((key, None))
        super().__delitem__(key)


@dataclass
class ChangelogTable:
    """What TableStore uses of a faust table: its data, and sends to its changelog."""

    data: dict[bytes, bytes] = field(default_factory=dict)
    sent: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)

    def send_changelog(self, partition: int, key: bytes, value: bytes | None, **_: Any) -> None:
        self.sent.append((partition, key, value))

    def __getitem__(self, key: bytes) -> bytes:
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def keys(self) -> Any:
        return self.data.keys()

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class _Topic:
    name: str

    def get_topic_name(self) -> str:
        return self.name


@dataclass
class LoggedTable(ChangelogTable):
    """A :class:`ChangelogTable` with a changelog topic's name, as faust's tables have."""

    changelog_topic: _Topic = field(default_factory=lambda: _Topic("app-join-changelog"))


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = type("Message", (), {"partition": partition})()


@contextmanager
def processing(partition: int) -> Iterator[None]:
    """As if an agent were processing an event of ``partition``."""
    event = _Event(partition)
    token = _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


def test_reads_see_buffered_writes_and_deletes_before_the_flush():
    table = CountingTable({b"old": b"1", b"gone": b"2"})
    store = TableStore(table, str, write_behind=True)
    store["new"] = b"3"
    store["old"] = b"4"
    del store["gone"]
    assert (store["new"], store["old"], "gone" in store, store.get("gone")) == (
        b"3",
        b"4",
        False,
        None,
    )
    assert sorted(store) == ["new", "old"]
    assert len(store) == 2
    assert table.messages == []
    assert store.flush() == 3
    assert table == {b"old": b"4", b"new": b"3"}


def test_bytes_keys_are_stored_as_the_objects_given():
    table = CountingTable({b"old": b"1"})
    store = TableStore(table, bytes, write_behind=True)
    key = b'["m","p1"]'
    store[key] = b"2"
    assert (store[key], store[b"old"], "old" in store, b"old" in store) == (b"2", b"1", False, True)
    assert sorted(store) == [b'["m","p1"]', b"old"]
    assert store.flush() == 1
    assert next(stored for stored in table if stored == key) is key  # kept once, not copied
    del store[b"old"]
    assert store.flush() == 1
    assert table == {key: b"2"}


def test_a_key_written_five_times_in_a_batch_is_written_once():
    table = CountingTable()
    store = TableStore(table, str, write_behind=True)
    for value in range(5):
        store["k"] = str(value).encode()
    assert store.flush() == 1
    assert table.messages == [(b"k", b"4")]
    assert store.flush() == 0


def test_a_new_key_written_then_deleted_in_a_batch_is_never_written():
    table = CountingTable()
    store = TableStore(table, str, write_behind=True)
    store["k"] = b"1"
    del store["k"]
    assert store.flush() == 0
    assert table.messages == []


def test_a_key_the_table_had_written_then_deleted_is_deleted_from_the_table():
    table = CountingTable({b"k": b"1"})
    store = TableStore(table, str, write_behind=True)
    store["k"] = b"2"
    del store["k"]
    assert store.flush() == 1
    assert table.messages == [(b"k", None)]
    assert table == {}


def test_a_key_set_back_to_the_value_the_table_holds_is_not_written():
    table = CountingTable({b"k": b"1"})
    store = TableStore(table, str, write_behind=True)
    store["k"] = b"2"
    store["k"] = b"1"
    assert store.flush() == 0


def test_deleting_a_missing_key_raises_as_a_mapping_does():
    store = TableStore(CountingTable(), str, write_behind=True)
    with pytest.raises(KeyError):
        del store["k"]
    store["k"] = b"1"
    del store["k"]
    with pytest.raises(KeyError):
        del store["k"]


def test_without_write_behind_every_write_goes_to_the_table_at_once():
    table = CountingTable()
    store = TableStore(table, str)
    store["k"] = b"1"
    store["k"] = b"2"
    assert table.messages == [(b"k", b"1"), (b"k", b"2")]
    assert store.flush() == 0


def test_each_flushed_key_goes_to_the_changelog_partition_of_its_event():
    table = ChangelogTable(data={b"gone": b"0"})
    store = TableStore(table, str, write_behind=True)
    with processing(partition=2):
        store["a"] = b"1"
        store["b"] = b"1"
    with processing(partition=5):
        store["b"] = b"2"  # the last write's event decides
        del store["gone"]
    with processing(partition=0):  # the flush happens during another partition's event
        assert store.flush() == 3
    assert sorted(table.sent) == [(2, b"a", b"1"), (5, b"b", b"2"), (5, b"gone", None)]
    assert table.data == {b"a": b"1", b"b": b"2"}


def test_drained_changes_come_back_as_changelog_records_instead_of_being_sent():
    table = LoggedTable(data={b"gone": b"0", b"same": b"1"})
    store = TableStore(table, str, write_behind=True)
    with processing(partition=2):
        store["a"] = b"1"
        store["same"] = b"1"  # the value held: nothing to write
        store["new"] = b"1"
        del store["new"]  # never in the table: nothing to write
    with processing(partition=5):
        del store["gone"]
    with processing(partition=0):
        records = store.drain()
    assert records == [
        ("app-join-changelog", 2, b"a", b"1"),
        ("app-join-changelog", 5, b"gone", None),
    ]
    assert table.sent == []
    assert table.data == {b"a": b"1", b"same": b"1"}
    assert store.pending == 0
    assert store.drain() == []


def test_a_table_without_a_changelog_is_written_through_when_drained():
    table = CountingTable({b"gone": b"0"})
    store = TableStore(table, str, write_behind=True)
    store["a"] = b"1"
    del store["gone"]
    assert store.drain() == []
    assert table.messages == [(b"a", b"1"), (b"gone", None)]
    assert table == {b"a": b"1"}


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.none() | st.binary(max_size=2)), max_size=30))
def test_draining_writes_what_flushing_sends(changes: list[tuple[str, bytes | None]]) -> None:
    stores = []
    for _ in range(2):
        store = TableStore(LoggedTable(data={b"a": b"0", b"b": b""}), str, write_behind=True)
        with processing(partition=1):
            for key, value in changes:
                if value is not None:
                    store[key] = value
                elif key in store:
                    del store[key]
        stores.append(store)
    flushed, drained = stores
    flushed.flush()
    records = drained.drain()
    assert drained.table.data == flushed.table.data
    assert [(partition, key, value) for _, partition, key, value in records] == (flushed.table.sent)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from("abcd"), st.binary(max_size=2)),
        st.tuples(st.just("delete"), st.sampled_from("abcd"), st.none()),
        st.tuples(st.just("flush"), st.none(), st.none()),
    ),
    max_size=60,
)
tables = st.dictionaries(st.sampled_from("abcd"), st.binary(max_size=2))


@given(tables, operations)
def test_a_buffered_store_reads_as_a_dict_and_flushes_only_net_changes(initial, ops):
    table = CountingTable({key.encode(): value for key, value in initial.items()})
    store = TableStore(table, str, write_behind=True)
    model = dict(initial)
    flushed = dict(initial)  # what the table held at the last flush
    for op, key, value in ops:
        if op == "set":
            store[key] = model[key] = value
        elif op == "delete":
            if key in model:
                del store[key]
                del model[key]
            else:
                with pytest.raises(KeyError):
                    del store[key]
        else:
            table.messages.clear()
            written = store.flush()
            changed = {k for k in model.keys() | flushed.keys() if model.get(k) != flushed.get(k)}
            assert sorted(k.decode() for k, _ in table.messages) == sorted(changed)
            assert written == len(changed)
            flushed = dict(model)
            assert table == {k.encode(): v for k, v in model.items()}
        assert dict(store.items()) == model
        assert len(store) == len(model)
        assert all((k in store) == (k in model) for k in "abcd")


def test_a_faust_memory_tables_dict_left_far_roomier_than_its_keys_is_rebuilt():
    import faust

    app = faust.App("compact-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=1)
    store = TableStore(table, str)
    for n in range(100_000):
        table.data[str(n).encode()] = b"v"
    assert not store.compact()  # full: nothing to give back
    for n in range(99_000):
        del table.data[str(n).encode()]
    before = dict(table.data.data)
    grown = sys.getsizeof(table.data.data)
    assert store.compact()
    assert table.data.data == before
    assert sys.getsizeof(table.data.data) < grown / 8
    assert not store.compact()  # nothing more to give back
    assert len(table.data) == 1_000
    assert table.data[b"99999"] == b"v"
    assert b"5" not in table.data


def test_a_table_without_a_faust_memory_store_is_left_as_it_is():
    table = ChangelogTable(data={str(n).encode(): b"v" for n in range(10)})
    assert not TableStore(table, str).compact()


def test_the_dict_is_looked_at_every_so_many_flushes(monkeypatch):
    looks = []
    monkeypatch.setattr(TableStore, "compact", lambda self: looks.append(1) or False)
    store = TableStore(ChangelogTable(), str, write_behind=True)
    for _ in range(2 * COMPACT_EVERY):
        store.flush()
    assert len(looks) == 2


@pytest.fixture
def disk_table(tmp_path: Any) -> Any:
    """A faust table kept in RocksDB (the worker's default store), with 4 partitions."""
    import faust

    app = faust.App("disk-test", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=tmp_path)
    return app.Table("t", key_type=bytes, value_type=bytes, partitions=4)


def test_a_table_on_disk_keeps_each_key_in_the_database_of_its_messages_partition(disk_table):
    store = TableStore(disk_table, str, write_behind=True)
    store.partition = 2
    store["a"] = b"1"
    store.partition = 0
    store["b"] = b"2"
    records = store.drain()
    assert sorted((partition, key) for _, partition, key, _ in records) == [(0, b"b"), (2, b"a")]
    databases = disk_table.data._dbs
    assert databases[2].get(b"a") == b"1"
    assert databases[2].get(b"b") is None
    assert databases[0].get(b"b") == b"2"
    # A store that never saw the writes reads them back, from any partition's message.
    reader = TableStore(disk_table, str)
    reader.partition = 3
    assert reader["a"] == b"1"
    assert "b" in reader
    assert "c" not in reader
    assert reader.get("c") is None
    store.partition = 1
    del store["a"]  # from another partition's message: gone from its own partition
    store["b"] = b"2"  # what it holds: nothing to write
    assert [(p, k, v) for _, p, k, v in store.drain()] == [(2, b"a", None)]
    assert databases[2].get(b"a") is None
    assert "a" not in reader
    assert reader["b"] == b"2"


def test_a_table_on_disk_records_how_far_its_changelog_holds_its_data(disk_table):
    store = TableStore(disk_table, str, write_behind=True)
    store.partition = 1
    store["a"] = b"1"
    store.drain()
    changelog = store.changelog_topic
    assert changelog == "disk-test-t-changelog"
    store.persisted(1, 41)
    assert disk_table.data.persisted_offset(TP(changelog, 1)) == 41
    store.persisted(3, 7)  # its database is not open here: not this worker's partition
    assert 3 not in disk_table.data._dbs


def test_a_table_in_memory_has_no_offset_to_record():
    table = LoggedTable()
    store = TableStore(table, str, write_behind=True)
    store.persisted(0, 5)  # nothing to record, and no error
    assert table.data == {}


def test_the_worker_tables_on_disk_bound_their_memory(tmp_path: Any) -> None:
    """faust's defaults (three 64 MiB memtables and a 2 GiB block cache per partition and
    table) would let a worker's memory grow by gigabytes."""
    from driftline.agents.tables import ROCKSDB_OPTIONS, label_join_table, version_state_table
    from driftline.streams import create_app
    from driftline.streams.settings import Settings

    dapp = create_app(Settings(data_dir=tmp_path))
    for table in (label_join_table(dapp), version_state_table(dapp)):
        options = table.data.rocksdb_options
        assert options.write_buffer_size * options.max_write_buffer_number <= 16 * 2**20
        assert options.block_cache_size == ROCKSDB_OPTIONS["block_cache_size"] <= 16 * 2**20


def test_a_key_held_already_is_rewritten_in_its_own_partition_whatever_message_writes_it(
    disk_table,
):
    store = TableStore(disk_table, str, write_behind=True)
    store.partition = 2
    store["a"] = b"1"
    store.drain()
    store.partition = 0  # another model's message evicts or rewrites "a"
    store["a"] = b"2"
    assert [(p, k, v) for _, p, k, v in store.drain()] == [(2, b"a", b"2")]
    databases = disk_table.data._dbs
    assert databases[2].get(b"a") == b"2"
    assert 0 not in databases  # no second copy, which a read could find first
    assert store["a"] == b"2"


def test_a_table_in_memory_keeps_each_key_in_its_own_partition_too() -> None:
    import faust

    app = faust.App("memory-test", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=4)
    store = TableStore(table, str, write_behind=True)
    store.partition = 3
    store["a"] = b"1"
    assert [(p, k, v) for _, p, k, v in store.drain()] == [(3, b"a", b"1")]
    store.partition = 1
    store["a"] = b"2"
    store["b"] = b"1"
    assert sorted((p, k, v) for _, p, k, v in store.drain()) == [(1, b"b", b"1"), (3, b"a", b"2")]
    assert table.data._key_partition == {b"a": 3, b"b": 1}  # as faust's recovery would say
    del store["a"]
    assert [(p, k, v) for _, p, k, v in store.drain()] == [(3, b"a", None)]
    assert table.data._key_partition == {b"b": 1}


def test_a_full_label_join_on_disk_writes_each_models_keys_in_its_models_partition(
    disk_table, monkeypatch
):
    monkeypatch.setattr(labels, "EVICTION_ROUND", 2)
    store = TableStore(disk_table, bytes, write_behind=True)
    join = LabelJoin(timedelta(days=1), store=store, max_entries=8)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    sent: list[tuple[int, bytes]] = []
    for second in range(12):  # model "a" on partition 0, "b" on 1: each evicts the other's
        model, partition = ("a", 0) if second % 2 else ("b", 1)
        store.partition = partition
        moment = start + timedelta(seconds=second)
        join.predicted(model, f"p{second}", moment, {})
        join.labelled(model, f"p{second}", moment, {})  # matched: a marker
        join.predicted(model, f"q{second}", moment, {})  # waits
        join.advance(model)
        sent += [(p, key) for _, p, key, _ in store.drain()]
    assert len(join) <= 8
    homes = {b"a": 0, b"b": 1}
    assert all(partition == homes[orjson.loads(key)[0].encode()] for partition, key in sent)
    databases = disk_table.data._dbs
    for number, database in databases.items():
        for key in database.keys():  # noqa: SIM118 (a RocksDB database, not a dict)
            assert homes[orjson.loads(key)[0].encode()] == number
