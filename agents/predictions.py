"""The agent that watches prediction events and raises drift alerts.

It consumes raw bytes and validates each message itself, so every consumed
message ends as processed or dead-lettered, never as an exception that faust
would log and drop together with the event. The decisions live in
:class:`PredictionHandler`, which knows nothing of faust; the agent only
moves bytes between it and Kafka.
"""

import logging
from dataclasses import dataclass, field
from enum import StrEnum

from faust.types import StreamT

from driftline.agents.alerts import drift_alert
from driftline.monitors import AdwinDriftDetector, ModelMonitor
from driftline.schemas import DeadLetterReason, KafkaPosition, PredictionEvent
from driftline.streams import DriftlineApp, Rejection, dead_letter, decode_prediction, encode
from driftline.streams.sending import send_until_accepted
from driftline.streams.settings import Settings

log = logging.getLogger(__name__)


class Destination(StrEnum):
    """Which output topic a message goes to."""

    ALERTS = "alerts"
    DEAD_LETTERS = "dead_letters"


@dataclass(frozen=True, slots=True)
class Output:
    """One message to send, as bytes, with its key."""

    destination: Destination
    key: bytes | None
    value: bytes


@dataclass
class PredictionCounters:
    """What became of the messages consumed: each is processed or dead-lettered."""

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


class PredictionHandler:
    """Validates one message, feeds its model's monitor, and says what to send.

    Keeps one :class:`ModelMonitor` per model id and version. Events are
    keyed by model id, so all events of a model reach one partition and so
    one worker, in order.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = PredictionCounters()
        self._monitors: dict[tuple[str, str], ModelMonitor] = {}

    def handle(self, value: bytes | None, key: bytes | None, source: KafkaPosition) -> list[Output]:
        """The messages one consumed message leads to; never raises on bad input."""
        self.counters.consumed += 1
        result = decode_prediction(value, max_bytes=self.settings.max_message_bytes)
        if isinstance(result, Rejection):
            return [self._dead_letter(result, value, key, source)]
        monitor = self._monitor_for(result)
        if monitor is None:
            limit = Rejection(
                DeadLetterReason.MODEL_LIMIT,
                f"this worker already watches {self.settings.max_models} model versions, the "
                f"most DRIFTLINE_MAX_MODELS allows; model {result.model_id} version "
                f"{result.model_version} gets none of its memory. Raise the limit or start "
                "more workers",
            )
            return [self._dead_letter(limit, value, key, source)]
        outputs = []
        for drift in monitor.update(result):
            alert = drift_alert(result.model_id, result.model_version, drift, source)
            outputs.append(Output(Destination.ALERTS, result.model_id.encode(), encode(alert)))
            self.counters.alerts += 1
            log.warning(
                "drift: model %s version %s feature %s (mean %.3g -> %.3g)",
                alert.model_id,
                alert.model_version,
                alert.feature,
                alert.evidence.mean_before,
                alert.evidence.mean_after,
            )
        self.counters.processed += 1
        return outputs

    def _dead_letter(
        self, rejection: Rejection, value: bytes | None, key: bytes | None, source: KafkaPosition
    ) -> Output:
        letter = dead_letter(rejection, value=value, key=key, source=source)
        self.counters.dead_lettered += 1
        reasons = self.counters.dead_letter_reasons
        reasons[rejection.reason.value] = reasons.get(rejection.reason.value, 0) + 1
        return Output(Destination.DEAD_LETTERS, key, encode(letter))

    def _monitor_for(self, event: PredictionEvent) -> ModelMonitor | None:
        """The event's model monitor, created on its first event; None past the limit."""
        key = (event.model_id, event.model_version)
        monitor = self._monitors.get(key)
        if monitor is None:
            if len(self._monitors) >= self.settings.max_models:
                return None
            delta = self.settings.adwin_delta
            monitor = self._monitors[key] = ModelMonitor(
                event.model_id,
                event.model_version,
                detector_factory=lambda: AdwinDriftDetector(delta=delta),
                max_features=self.settings.max_features_per_model,
            )
            log.info("monitoring model %s version %s", event.model_id, event.model_version)
        return monitor


def register_prediction_agent(dapp: DriftlineApp) -> PredictionHandler:
    """Declare the predictions agent on the app; return its handler (and counters)."""
    handler = PredictionHandler(dapp.settings)
    topics = {Destination.ALERTS: dapp.alerts, Destination.DEAD_LETTERS: dapp.dead_letters}
    timeout = dapp.settings.send_timeout_seconds

    @dapp.app.agent(dapp.predictions, name="driftline.predictions", concurrency=1)
    async def watch_predictions(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            source = KafkaPosition(
                topic=message.topic, partition=message.partition, offset=message.offset
            )
            for output in handler.handle(message.value, message.key, source):
                await send_until_accepted(
                    topics[output.destination], output.key, output.value, timeout=timeout
                )

    return handler
