"""The faust side: one agent per input topic, all deciding through one :class:`Intake`.

Agents read raw bytes and validate each message themselves, so every
consumed message ends as processed, dead-lettered or a counted duplicate,
never as an exception that faust would log and drop together with the
event. Each agent runs with concurrency 1: with more, faust can commit an
offset past an event still being processed.
"""

import asyncio
import logging
from dataclasses import dataclass

from faust.types import StreamT, TopicT

from driftline.agents.intake import Decoded, InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination
from driftline.agents.registry import ModelRegistry, RegistryFollower
from driftline.agents.tables import TableStore, alert_state_table, label_join_table
from driftline.schemas import KafkaPosition
from driftline.streams import DriftlineApp
from driftline.streams.sending import send_until_accepted

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Monitoring:
    """What the agents share: the decisions, the registry, and its follower."""

    intake: Intake
    registry: ModelRegistry
    follower: RegistryFollower


def register_agents(dapp: DriftlineApp) -> Monitoring:
    """Declare the registry follower and one agent per input topic on the app."""
    registry = ModelRegistry()
    table = label_join_table(dapp)
    alert_state = alert_state_table(dapp)
    monitoring = Monitoring(
        intake=Intake(
            dapp.settings,
            registry,
            label_store=TableStore(table),
            alert_store=TableStore(alert_state),
        ),
        registry=registry,
        follower=RegistryFollower(dapp.settings, registry),
    )

    @dapp.app.task  # type: ignore[untyped-decorator]
    async def follow_registry() -> None:
        # A follower that died would leave every new model unknown: restart it.
        while True:
            try:
                await monitoring.follower.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading the registry topic failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    @table.on_recover  # type: ignore[untyped-decorator]
    async def rebuild_label_join() -> None:
        # The table holds what was waiting; the join's indexes are rebuilt from it.
        monitoring.intake.labels.join.rebuild()

    inputs = {
        InputTopic.PREDICTIONS: dapp.predictions,
        InputTopic.FEATURES: dapp.features,
        InputTopic.LABELS: dapp.labels,
        InputTopic.MODELS: dapp.models,
        InputTopic.REFERENCES: dapp.references,
    }
    for topic, channel in inputs.items():
        _register_input_agent(dapp, topic, channel, monitoring)
    return monitoring


def _register_input_agent(
    dapp: DriftlineApp, topic: InputTopic, channel: TopicT, monitoring: Monitoring
) -> None:
    outputs_to = {
        Destination.ALERTS: dapp.alerts,
        Destination.PERFORMANCE: dapp.performance,
        Destination.RETRAIN_TRIGGERS: dapp.retrain_triggers,
        Destination.DEAD_LETTERS: dapp.dead_letters,
    }
    timeout = dapp.settings.send_timeout_seconds
    intake, follower = monitoring.intake, monitoring.follower

    async def consume(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            record = event.message
            message = InputMessage(
                topic=topic,
                value=record.value,
                key=record.key,
                source=KafkaPosition(
                    topic=record.topic, partition=record.partition, offset=record.offset
                ),
                timestamp=record.timestamp,
            )
            try:
                decoded = intake.read(message)
                if isinstance(decoded, Decoded):
                    if not intake.knows_model_of(decoded):
                        await follower.sync(published_before=message.timestamp)
                    outputs = intake.process(decoded)
                else:
                    outputs = decoded
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # A bug must not kill the agent nor lose the message: dead-letter it.
                log.exception("failed on %s", message.source)
                outputs = [intake.failed(message, error)]
            for output in outputs:
                await send_until_accepted(
                    outputs_to[output.destination], output.key, output.value, timeout=timeout
                )

    dapp.app.agent(channel, name=f"driftline.{topic.value}", concurrency=1)(consume)
