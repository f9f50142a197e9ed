"""Worker state kept in faust tables: the label join, and each version's alert state.

Every write goes to the table's changelog topic on the partition of the
event being processed, which is the partition its model's predictions and
labels share (both are keyed by model id). So when a partition moves to
another worker, or a worker restarts, faust replays that part of the
changelog, and the label join and the alerts go on where they stopped.
"""

from collections.abc import Iterator, MutableMapping
from typing import Any

from driftline.streams import DriftlineApp

LABEL_JOIN_TABLE = "label-join"
"""The label join's table; its changelog topic is ``<app id>-label-join-changelog``."""

ALERT_STATE_TABLE = "alert-state"
"""Each model version's open alerts, cooldowns and retraining state."""


class TableStore(MutableMapping[str, bytes]):
    """A faust table of raw bytes seen as a mapping of text keys to bytes.

    Keys travel as UTF-8 bytes so that a recovered table (whose keys come
    back from Kafka as bytes) and a live one agree. Writes and deletes must
    happen while an agent processes an event, as faust requires.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> bytes:
        value = self.table[key.encode("utf-8")]
        if value is None:
            raise KeyError(key)
        return bytes(value)

    def __setitem__(self, key: str, value: bytes) -> None:
        self.table[key.encode("utf-8")] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode("utf-8")]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.encode("utf-8") in self.table

    def __iter__(self) -> Iterator[str]:
        for key in list(self.table.keys()):
            yield key.decode("utf-8") if isinstance(key, bytes) else str(key)

    def __len__(self) -> int:
        return len(self.table)


def label_join_table(dapp: DriftlineApp) -> Any:
    """Declare the label join's table on the app, partitioned like the input topics."""
    return _raw_table(
        dapp,
        LABEL_JOIN_TABLE,
        "Predictions waiting for their labels and labels waiting for their predictions.",
    )


def alert_state_table(dapp: DriftlineApp) -> Any:
    """Declare the table of each model version's alert state."""
    return _raw_table(
        dapp, ALERT_STATE_TABLE, "Open alerts, cooldowns and retraining state per model version."
    )


def _raw_table(dapp: DriftlineApp, name: str, help: str) -> Any:
    return dapp.app.Table(
        name,
        key_type=bytes,  # bytes keys and values travel raw
        value_type=bytes,
        partitions=dapp.settings.topic_partitions,
        help=help,
    )
