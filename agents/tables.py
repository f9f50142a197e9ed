"""Worker state kept in faust tables: the label join, and each version's state.

A new key goes to the table's changelog topic on the partition of the
event being processed, which is the partition its model's predictions and
labels share (both are keyed by model id), and every later write or delete
of it goes to that same partition, whichever event makes it (the label
join, full, evicts the oldest entries of any model). So when a partition
moves to another worker, or a worker restarts, faust replays that part of
the changelog, and the label join and the alerts go on where they stopped.
"""

import sys
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar, cast

from faust.streams import current_event
from faust.types import TP

from driftline.streams import DriftlineApp
from driftline.streams.sending import PlacedRecord
from driftline.streams.topics import TABLES

LABEL_JOIN_TABLE = "label-join"
"""The label join's table; its changelog topic is ``<app id>-label-join-changelog``."""

VERSION_STATE_TABLE = "version-state"
"""Each model version's monitor, alerts and retraining state, saved at every checkpoint
(:mod:`driftline.agents.version_state`)."""


COMPACT_EVERY = 256
"""Flushes between two looks at whether the table's dict has far more room than keys."""

_ROOMY_BYTES = 1 << 20
"""A dict below this size is left as it is, whatever its room."""

_BYTES_PER_KEY = 48
"""About what a dict needs per key (its slot, its share of free slots and index), generously."""

_ROOM_FACTOR = 8
"""A dict with this many times the room its keys need is rebuilt."""


ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 1024 * 1024,
}
"""Each partition's database of a table kept on disk: at most two 8 MiB memtables and a 16 MiB
block cache. faust's defaults (three 64 MiB memtables and a 2 GiB cache, per partition and
table) would let a worker holding 8 partitions of two tables grow past 3 GiB; with these, a
database holds at most ~32 MiB, and one that is written little holds far less."""

K = TypeVar("K", bound=str | bytes)


class TableStore(MutableMapping[K, bytes], Generic[K]):
    """A faust table of raw bytes seen as a mapping of keys (``key_type``) to bytes.

    Keys travel as bytes (text ones UTF-8 encoded) so that a recovered table
    (whose keys come back from Kafka as bytes) and a live one agree. A
    ``bytes`` key is stored as the very object given, so a caller that
    keeps its keys (the label join does) keeps them once.

    With ``write_behind``, writes and deletes are buffered: reads see them at
    once, and :meth:`flush` writes the net change of each key to the table
    once (one changelog message per key and batch, not per event). A key
    set several times goes out with its last value; a key set to the value
    the table already holds, or set and deleted while the table never had
    it, not at all; a delete of a key the table has goes out as a delete.
    Each buffered write remembers the partition of the message being
    processed when it was made (faust's current event, else :attr:`partition`,
    which a batch-reading agent sets per message). A key the table holds
    already is written (or deleted) in the partition it is held in, its own;
    a new key in the remembered partition, whenever it is flushed. So a batch
    spanning partitions, a flush by another agent, or a write from one
    model's message to another model's key puts each key where a restart or
    a rebalance looks for it, and only there. A write made outside an event
    goes through the table's own path at flush time (which then needs a
    current event).

    Without ``write_behind`` every write and delete goes to the table at
    once; :meth:`flush` has nothing to do. Either way, the table must be
    written while an agent processes an event, as faust requires.
    """

    def __init__(self, table: Any, key_type: type[K], *, write_behind: bool = False) -> None:
        self.table = table
        self.key_type: type[K] = key_type
        self.write_behind = write_behind
        self._pending: dict[K, tuple[bytes | None, int | None]] = {}
        """Buffered changes by key: the value (None: deleted) and its event's partition."""
        self.partition: int | None = None
        """The input partition of the message being processed, where there is no faust event."""
        self._flushes = 0

    def __getitem__(self, key: K) -> bytes:
        pending = self._pending.get(key)
        if pending is not None:
            if pending[0] is None:
                raise KeyError(key)
            return pending[0]
        raw = _raw(key)
        value = self.table[raw] if self._databases() is None else self._held(raw)
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: K, value: bytes) -> None:
        if self.write_behind:
            self._pending[key] = (value, self._partition())
        else:
            self.table[_raw(key)] = value

    def __delitem__(self, key: K) -> None:
        if not self.write_behind:
            del self.table[_raw(key)]
            return
        if key not in self:
            raise KeyError(key)
        self._pending[key] = (None, self._partition())

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, self.key_type):
            return False
        pending = self._pending.get(key)
        if pending is not None:
            return pending[0] is not None
        raw = _raw(key)
        return raw in self.table if self._databases() is None else self._held(raw) is not None

    def __iter__(self) -> Iterator[K]:
        for raw in list(self.table.keys()):
            key = self._key(raw)
            if key not in self._pending:
                yield key
        for key, (value, _) in list(self._pending.items()):
            if value is not None:
                yield key

    def __len__(self) -> int:
        change = 0
        for key, (value, _) in self._pending.items():
            change += (value is not None) - (_raw(key) in self.table)
        return len(self.table) + change

    @property
    def pending(self) -> int:
        """Keys with a buffered change, not yet flushed."""
        return len(self._pending)

    def flush(self) -> int:
        """Write the buffered net change of each key to the table; how many keys were written.

        Each change goes to the changelog through faust's own send, a message
        at a time. Call it at the end of each batch, while the agent still
        processes an event. A change the table fails to take stays buffered,
        with those not reached yet.
        """
        return self._flush(self._send_changelog)

    def drain(self) -> list[PlacedRecord]:
        """:meth:`flush`, but the changelog messages are returned instead of sent: the caller
        sends them (in record batches), before the batch's offsets can be committed.

        faust's own send costs some 50-75 µs a message, and a worker whose
        models get labels writes one or two label-join keys per event. The
        table's data changes here, as faust's own write changes it before its
        message is sent. What faust does when a changelog message is
        delivered matters only to a table kept on disk (it records the
        offset its RocksDB holds); the worker's tables are kept in memory.
        A change with no partition to go to is written through the table
        here, as :meth:`flush` writes it.
        """
        records: list[PlacedRecord] = []
        topic = self._changelog_topic()
        if topic is None:
            self.flush()
            return records

        def keep(raw: bytes, value: bytes | None, partition: int) -> None:
            records.append((topic, partition, raw, value))

        self._flush(keep)
        return records

    def _flush(self, send: Callable[[bytes, bytes | None, int], object]) -> int:
        """Apply each key's buffered net change; ``send`` its changelog message; how many."""
        written = 0
        for key, (value, partition) in list(self._pending.items()):
            raw = _raw(key)
            held, home = self._located(raw, partition)
            if held != value:  # a delete of a key the table lacks, or the same value: nothing
                self._write(raw, value, partition if home is None else home, send)
                written += 1
            del self._pending[key]
        self._flushes += 1
        if self._flushes % COMPACT_EVERY == 0:
            self.compact()
        return written

    def compact(self) -> bool:
        """Rebuild the table's in-memory dict if it has far more room than its keys need.

        A Python dict never gives back the room it grew to. The label join's
        table grows while labels lag their predictions (hundreds of thousands
        of entries waiting), then empties as they are matched: its dict kept
        ~20 MiB for the few thousand keys left. Rebuilt, it takes what they
        need. Whether it was rebuilt; only a faust memory store's dict is.
        """
        store: Any = getattr(self.table, "data", None)
        data = getattr(store, "data", None)
        if not isinstance(data, dict):
            return False
        size = sys.getsizeof(data)
        if size < _ROOMY_BYTES or size < _ROOM_FACTOR * _BYTES_PER_KEY * len(data):
            return False
        store.data = dict(data)
        return True

    def _key(self, raw: Any) -> K:
        """A key of the table as this mapping gives it."""
        encoded = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
        return cast(K, encoded if self.key_type is bytes else encoded.decode("utf-8"))

    def _partition(self) -> int | None:
        """The partition of the message the agent processes now, if known."""
        event = current_event()
        return self.partition if event is None else int(event.message.partition)

    def _write(
        self,
        raw: bytes,
        value: bytes | None,
        partition: int | None,
        send: Callable[[bytes, bytes | None, int], object],
    ) -> None:
        if partition is None or getattr(self.table, "send_changelog", None) is None:
            if value is None:
                del self.table[raw]
            else:
                self.table[raw] = value
            return
        # What faust's own write does, to the partition of the buffered write's event.
        send(raw, value, partition)
        if self._databases() is not None:  # on disk: into that partition's database
            _put(self.table.data, raw, value, partition)
            return
        homes = self._key_partitions()
        if value is None:
            del self.table.data[raw]
            if homes is not None:
                homes.pop(raw, None)
        else:
            self.table.data[raw] = value
            if homes is not None:
                homes[raw] = partition

    def _held(self, raw: bytes, partition: int | None = None) -> bytes | None:
        """The value the table holds for ``raw`` (None: none): see :meth:`_located`."""
        return self._located(raw, partition)[0]

    def _located(self, raw: bytes, partition: int | None = None) -> tuple[bytes | None, int | None]:
        """The value the table holds for ``raw`` and the partition it is held in: (None,
        None) when it holds none, and None for the partition where the table does not say.

        A table kept on disk (faust's RocksDB store) keeps a database per
        partition, and faust looks a key up in each when no event of its own
        is being processed, through layers that cost ~10 µs a read. A key
        is written to the partition of the message that first wrote it, as
        a rule the partition of the message that reads it back (a model's
        events and labels share one), so that partition's database is read
        first, then the others, each only where its Bloom filter says the
        key may be. A table in memory (faust's memory store) says where a
        key is held in the index faust keeps of the keys it recovered, which
        :meth:`_write` keeps for the keys it writes.
        """
        databases = self._databases()
        if databases is None:
            if raw not in self.table:
                return None, None
            homes = self._key_partitions()
            return self.table.get(raw), None if homes is None else homes.get(raw)
        first = self._partition() if partition is None else partition
        if first is not None:
            database = databases.get(first)
            if database is not None:
                value = database.get(raw)
                if value is not None:
                    return bytes(value), first
        for number, database in list(databases.items()):
            if number != first and database.key_may_exist(raw):
                value = database.get(raw)
                if value is not None:
                    return bytes(value), number
        return None, None

    def _key_partitions(self) -> dict[bytes, int] | None:
        """faust's index of the partition each key of a table in memory is held in, if any."""
        homes = getattr(getattr(self.table, "data", None), "_key_partition", None)
        return homes if isinstance(homes, dict) else None

    def _databases(self) -> dict[int, Any] | None:
        """The open databases of a table kept on disk, by partition; None for one in memory."""
        store = getattr(self.table, "data", None)
        if getattr(store, "_db_for_partition", None) is None:
            return None
        return cast(dict[int, Any], store._dbs)  # type: ignore[union-attr]

    def persisted(self, partition: int, offset: int) -> None:
        """Record that the changelog holds this table's changes of ``partition`` up to
        ``offset`` (its message there was delivered), as faust records it for its own sends.

        A table kept on disk remembers it with its data, so that a worker
        restarted on the same machine reads only the changelog's messages
        after it. A partition whose database was closed meanwhile (moved to
        another worker) is left alone; a table in memory has nothing to record.
        """
        databases = self._databases()
        topic = self._changelog_topic()
        if databases is None or topic is None or partition not in databases:
            return
        self.table.data.set_persisted_offset(TP(topic, partition), offset)

    def _send_changelog(self, raw: bytes, value: bytes | None, partition: int) -> None:
        """faust's own changelog send (bytes travel as they are; None is a tombstone)."""
        if value is None:
            self.table.send_changelog(partition, raw, None, value_serializer="raw")
        else:
            self.table.send_changelog(partition, raw, value)

    @property
    def changelog_topic(self) -> str | None:
        """The name of the table's changelog topic; None for a table without one."""
        return self._changelog_topic()

    def _changelog_topic(self) -> str | None:
        """The name of the table's changelog topic; None for a table without one."""
        if getattr(self.table, "send_changelog", None) is None:
            return None
        topic = getattr(self.table, "changelog_topic", None)
        return None if topic is None else str(topic.get_topic_name())


def _put(store: Any, raw: bytes, value: bytes | None, partition: int) -> None:
    """Write ``raw`` in the database of ``partition`` of faust's RocksDB store, as its own write
    does for an event of that partition (it needs one to be processed); or delete it (None)
    wherever it is, as faust's own delete does."""
    database = store._db_for_partition(partition)
    if value is None:
        database.delete(raw)
        for other in list(store._dbs.values()):
            if other is not database and other.key_may_exist(raw):
                other.delete(raw)
        store._key_index.pop(raw, None)
    else:
        database.put(raw, value)
        store._key_index[raw] = partition


def _raw(key: str | bytes) -> bytes:
    """A key as the table keeps it: ``bytes`` as given, text UTF-8 encoded."""
    return key if isinstance(key, bytes) else key.encode("utf-8")


def label_join_table(dapp: DriftlineApp) -> Any:
    """Declare the label join's table on the app, partitioned like the input topics."""
    return _raw_table(
        dapp,
        LABEL_JOIN_TABLE,
        "Predictions waiting for their labels and labels waiting for their predictions.",
        max_message_bytes=TABLES[LABEL_JOIN_TABLE],
    )


def version_state_table(dapp: DriftlineApp) -> Any:
    """Declare the table of each model version's state.

    A version's record grows with its features (some 7 KiB a numeric one),
    and its warm-up reference is as large as a registered one, so the
    changelog takes messages as large as the references topic does.
    """
    return _raw_table(
        dapp,
        VERSION_STATE_TABLE,
        "Monitors, open alerts, cooldowns and retraining state per model version.",
        max_message_bytes=TABLES[VERSION_STATE_TABLE],
    )


def _raw_table(
    dapp: DriftlineApp, name: str, help: str, *, max_message_bytes: int | None = None
) -> Any:
    """A table of raw bytes, partitioned like the input topics, with a compacted changelog."""
    configs = {} if max_message_bytes is None else {"max.message.bytes": str(max_message_bytes)}
    on_disk = dapp.settings.table_store == "rocksdb"
    return dapp.app.Table(
        name,
        key_type=bytes,  # bytes keys and values travel raw
        value_type=bytes,
        partitions=dapp.settings.topic_partitions,
        help=help,
        extra_topic_configs=configs,
        options=dict(ROCKSDB_OPTIONS) if on_disk else None,
    )
