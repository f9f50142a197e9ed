"""The faust app factory: one configured app and the topics it uses."""

from dataclasses import dataclass

import faust
from faust.types import TopicT

from driftline.streams.faust_fixes import fix_recovery
from driftline.streams.settings import Settings


@dataclass(frozen=True, slots=True)
class DriftlineApp:
    """A faust app with driftline's topics declared on it.

    Topics carry raw bytes both ways: agents validate input themselves (a
    faust deserializer that raised would drop the event silently) and write
    JSON they serialized from schema objects.
    """

    app: faust.App
    settings: Settings
    predictions: TopicT
    features: TopicT
    labels: TopicT
    models: TopicT
    references: TopicT
    alerts: TopicT
    retrain_triggers: TopicT
    performance: TopicT
    dead_letters: TopicT


def create_app(settings: Settings) -> DriftlineApp:
    """Build the faust app for these settings; agents are registered on it after.

    The web server binds 127.0.0.1 by default and never serves table contents:
    faust's defaults (all interfaces, table views on) would expose a worker's
    state to anyone who can reach it.
    """
    fix_recovery()
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_tables_enabled=False,
        web_graph_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=max(settings.max_message_bytes * 2, 4 * 1024 * 1024),
        producer_max_request_size=max(settings.max_message_bytes * 2, 1024 * 1024),
        broker_commit_interval=settings.commit_interval_seconds,
        producer_acks=-1,
        producer_request_timeout=settings.send_timeout_seconds,
    )
    return DriftlineApp(
        app=app,
        settings=settings,
        predictions=_raw_topic(app, settings.predictions_topic),
        features=_raw_topic(app, settings.features_topic),
        labels=_raw_topic(app, settings.labels_topic),
        models=_raw_topic(app, settings.models_topic),
        references=_raw_topic(app, settings.references_topic),
        alerts=_raw_topic(app, settings.alerts_topic),
        retrain_triggers=_raw_topic(app, settings.retrain_triggers_topic),
        performance=_raw_topic(app, settings.performance_topic),
        dead_letters=_raw_topic(app, settings.dead_letters_topic),
    )


def _raw_topic(app: faust.App, name: str) -> TopicT:
    return app.topic(
        name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
