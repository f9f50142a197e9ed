"""A small client for producers and subscribers, on kafka-python.

>>> publisher = Publisher("127.0.0.1:9092")  # doctest: +SKIP
>>> publisher.publish(event)                  # doctest: +SKIP
>>> for alert in AlertSubscriber("127.0.0.1:9092"):  # doctest: +SKIP
...     print(alert.feature)
"""

from collections.abc import Iterator
from types import TracebackType
from typing import Self

from kafka import KafkaConsumer, KafkaProducer

from driftline.schemas import DriftAlert, PredictionEvent
from driftline.streams.settings import Settings

DEFAULT_PREDICTIONS_TOPIC: str = Settings.model_fields["predictions_topic"].default
DEFAULT_ALERTS_TOPIC: str = Settings.model_fields["alerts_topic"].default


class Publisher:
    """Publishes prediction events, keyed by model id so each model stays in order.

    Events are pydantic objects, so they were validated when they were made.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        predictions_topic: str = DEFAULT_PREDICTIONS_TOPIC,
        **producer_config: object,
    ) -> None:
        self.predictions_topic = predictions_topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers.split(","),
            acks="all",
            linger_ms=5,
            **producer_config,
        )

    def publish(self, event: PredictionEvent) -> None:
        """Queue one event for sending; :meth:`flush` waits until all are sent."""
        self._producer.send(
            self.predictions_topic,
            key=event.model_id.encode("utf-8"),
            value=event.model_dump_json().encode("utf-8"),
        )

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every queued event is acknowledged by the broker."""
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        """Send what is queued and close the connection."""
        self._producer.close(timeout=30)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AlertSubscriber:
    """Iterates over drift alerts as schema objects, as they arrive.

    Iteration ends after ``idle_timeout`` seconds without a new alert (never,
    when it is None). Alerts that do not parse are skipped and counted in
    ``unreadable``: a subscriber must not die on one bad message.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        alerts_topic: str = DEFAULT_ALERTS_TOPIC,
        group_id: str | None = None,
        from_beginning: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        self.unreadable = 0
        self._consumer = KafkaConsumer(
            alerts_topic,
            bootstrap_servers=bootstrap_servers.split(","),
            group_id=group_id,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=group_id is not None,
            consumer_timeout_ms=int(idle_timeout * 1000) if idle_timeout else float("inf"),
        )

    def __iter__(self) -> Iterator[DriftAlert]:
        for record in self._consumer:
            alert = self._parse(record.value)
            if alert is not None:
                yield alert

    def poll(self, timeout: float = 1.0) -> list[DriftAlert]:
        """The alerts that arrive within ``timeout`` seconds (maybe none)."""
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        parsed = (self._parse(r.value) for records in batches.values() for r in records)
        return [alert for alert in parsed if alert is not None]

    def _parse(self, value: bytes | None) -> DriftAlert | None:
        try:
            return DriftAlert.model_validate_json(value or b"")
        except ValueError:
            self.unreadable += 1
            return None

    def close(self) -> None:
        """Leave the group and close the connection."""
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
