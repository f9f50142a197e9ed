"""The Kafka side of driftline: settings, the faust app, topics, codecs.

Nothing here computes a statistic; the agents connect these pieces to the
statistics core. Importing the package loads only its cheap names (settings,
codecs, dead letters): the faust app and topic creation load faust and the
Kafka clients, so they are imported when first asked for (``create_app``,
``DriftlineApp``, ``ensure_topics``), and a command that only reads a
setting never pays for them.
"""

from typing import TYPE_CHECKING

from driftline.streams.codecs import Rejection, decode, encode
from driftline.streams.deadletters import dead_letter
from driftline.streams.lazy import lazy_names
from driftline.streams.settings import Settings, load_settings

if TYPE_CHECKING:
    from driftline.streams.app import DriftlineApp, create_app
    from driftline.streams.topics import ensure_topics

LAZY = {
    "DriftlineApp": "driftline.streams.app",
    "create_app": "driftline.streams.app",
    "ensure_topics": "driftline.streams.topics",
}
"""Names imported from their module when first asked for."""


__getattr__ = lazy_names(__name__, LAZY)

__all__ = [
    "DriftlineApp",
    "Rejection",
    "Settings",
    "create_app",
    "dead_letter",
    "decode",
    "encode",
    "ensure_topics",
    "load_settings",
]
