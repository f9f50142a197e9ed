"""The Kafka side of driftline: settings, the faust app, topics, codecs, the broker harness.

Nothing here computes a statistic; the agents connect these pieces to the
statistics core.
"""

from driftline.streams.app import DriftlineApp, create_app
from driftline.streams.broker import KAFKA_VERSION, BrokerError, LocalKafkaBroker
from driftline.streams.codecs import Rejection, decode, encode
from driftline.streams.deadletters import dead_letter
from driftline.streams.settings import Settings, load_settings
from driftline.streams.topics import ensure_topics

__all__ = [
    "KAFKA_VERSION",
    "BrokerError",
    "DriftlineApp",
    "LocalKafkaBroker",
    "Rejection",
    "Settings",
    "create_app",
    "dead_letter",
    "decode",
    "encode",
    "ensure_topics",
    "load_settings",
]
