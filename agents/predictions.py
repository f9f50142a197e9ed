"""The agent that watches prediction events and raises drift alerts.

It consumes raw bytes and validates each message itself, so every consumed
message ends as processed or dead-lettered, never as an exception that faust
would log and drop together with the event.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from faust.types import StreamT, TopicT

from driftline.agents.alerts import drift_alert
from driftline.monitors import AdwinDriftDetector, ModelMonitor
from driftline.schemas import KafkaPosition, PredictionEvent
from driftline.streams import DriftlineApp, Rejection, dead_letter, decode_prediction, encode

log = logging.getLogger(__name__)


@dataclass
class PredictionCounters:
    """What the agent did with the messages it consumed."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


class PredictionMonitors:
    """The model monitors of this worker, one per model id and version.

    Events are keyed by model id, so all events of a model reach one
    partition and so one worker, in order.
    """

    def __init__(self, dapp: DriftlineApp) -> None:
        self.settings = dapp.settings
        self._monitors: dict[tuple[str, str], ModelMonitor] = {}

    def monitor_for(self, event: PredictionEvent) -> ModelMonitor:
        """The monitor of the event's model version, created on its first event."""
        key = (event.model_id, event.model_version)
        monitor = self._monitors.get(key)
        if monitor is None:
            delta = self.settings.adwin_delta
            monitor = self._monitors[key] = ModelMonitor(
                event.model_id,
                event.model_version,
                detector_factory=lambda: AdwinDriftDetector(delta=delta),
                max_features=self.settings.max_features_per_model,
            )
            log.info("monitoring model %s version %s", event.model_id, event.model_version)
        return monitor


def register_prediction_agent(dapp: DriftlineApp) -> PredictionCounters:
    """Declare the predictions agent on the app; return its live counters."""
    settings = dapp.settings
    monitors = PredictionMonitors(dapp)
    counters = PredictionCounters()
    send_timeout = settings.send_timeout_seconds

    async def send(topic: TopicT, key: bytes | None, value: bytes) -> None:
        # A send that hangs (the broker is gone) must not stall the agent forever.
        await asyncio.wait_for(topic.send(key=key, value=value), timeout=send_timeout)

    @dapp.app.agent(dapp.predictions, name="driftline.predictions", concurrency=1)
    async def watch_predictions(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            counters.consumed += 1
            result = decode_prediction(message.value, max_bytes=settings.max_message_bytes)
            position = KafkaPosition(
                topic=message.topic, partition=message.partition, offset=message.offset
            )
            if isinstance(result, Rejection):
                letter = dead_letter(
                    result,
                    value=message.value,
                    key=message.key,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )
                await send(dapp.dead_letters, message.key, encode(letter))
                counters.dead_lettered += 1
                reason = result.reason.value
                counters.dead_letter_reasons[reason] = (
                    counters.dead_letter_reasons.get(reason, 0) + 1
                )
                continue
            monitor = monitors.monitor_for(result)
            for drift in monitor.update(result):
                alert = drift_alert(result.model_id, result.model_version, drift, position)
                await send(dapp.alerts, result.model_id.encode("utf-8"), encode(alert))
                counters.alerts += 1
                log.warning(
                    "drift: model %s version %s feature %s (mean %.3g -> %.3g)",
                    alert.model_id,
                    alert.model_version,
                    alert.feature,
                    alert.evidence.mean_before,
                    alert.evidence.mean_after,
                )
            counters.processed += 1

    return counters
