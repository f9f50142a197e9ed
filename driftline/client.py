"""A small client for producers and subscribers, on kafka-python.

Register a model version, publish its events, and make sure they were sent:

>>> from datetime import UTC, datetime
>>> from pathlib import Path
>>> from driftline.specfiles import load_specs
>>> with Publisher("127.0.0.1:9092") as publisher:  # doctest: +SKIP
...     publisher.register(load_specs(Path("examples/churn-model.yaml"))[0])
...     publisher.publish_prediction({
...         "model_id": "churn", "model_version": "3", "event_id": "e-1",
...         "event_time": datetime.now(UTC), "prediction": "stays",
...         "features": {"tenure_months": 14, "monthly_spend": 9.5, "plan": "pro",
...                      "has_support_ticket": False, "referral_code": None},
...     })
...     publisher.flush()  # raises PublishError if any message was not delivered

Follow the alerts and retraining triggers the workers send:

>>> with AlertSubscriber("127.0.0.1:9092", group_id="pager") as subscriber:  # doctest: +SKIP
...     for message in subscriber:
...         if isinstance(message, Alert):
...             print(message.summary)
...         else:
...             print("retrain", message.model_id, message.model_version)
"""

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaTimeoutError
from pydantic import BaseModel, ValidationError

from driftline.schemas import (
    Alert,
    FeatureEvent,
    KeyedBy,
    LabelEvent,
    ModelSpec,
    PredictionEvent,
    ReferenceProfile,
    RetrainTrigger,
    registry_key,
)
from driftline.specfiles import validate_as_json
from driftline.streams.settings import Settings

DEFAULT_PREDICTIONS_TOPIC: str = Settings.model_fields["predictions_topic"].default
DEFAULT_FEATURES_TOPIC: str = Settings.model_fields["features_topic"].default
DEFAULT_LABELS_TOPIC: str = Settings.model_fields["labels_topic"].default
DEFAULT_MODELS_TOPIC: str = Settings.model_fields["models_topic"].default
DEFAULT_REFERENCES_TOPIC: str = Settings.model_fields["references_topic"].default
DEFAULT_ALERTS_TOPIC: str = Settings.model_fields["alerts_topic"].default
DEFAULT_RETRAIN_TRIGGERS_TOPIC: str = Settings.model_fields["retrain_triggers_topic"].default

Model = TypeVar("Model", bound=BaseModel)

InputEvent = PredictionEvent | FeatureEvent | LabelEvent
"""An event a model's producer publishes."""

Output = Alert | RetrainTrigger
"""A message the workers send for people and pipelines to act on."""


class PublishError(Exception):
    """Messages handed to a :class:`Publisher` were not delivered.

    ``errors`` holds each failed message's error, in the order they were
    noticed; ``undelivered`` counts those messages, including any still
    unacknowledged when the wait ended.

    >>> try:  # doctest: +SKIP
    ...     publisher.flush(timeout=10.0)
    ... except PublishError as error:
    ...     print(f"{error.undelivered} message(s) lost")
    ...     for failure in error.errors:
    ...         print(repr(failure))
    """

    def __init__(self, message: str, errors: list[BaseException], undelivered: int) -> None:
        super().__init__(message)
        self.errors = errors
        self.undelivered = undelivered


class Publisher:
    """Publishes events and model specs, each to its topic, keyed so each model stays in order.

    Events go to their topic keyed by ``model_id``, or, with ``keyed_by``
    ``KeyedBy.EVENT_ID`` (for a model registered so, too busy for one worker),
    by the prediction's event id, so that its features and its label land in
    its partition (:meth:`key_of`); a spec goes to the model registry topic
    keyed by :meth:`ModelSpec.registry_key`. Sends are
    asynchronous: :meth:`flush` waits until the broker has acknowledged every
    message and raises :class:`PublishError` if any was not delivered, so a
    producer never takes a lost message for a sent one. Errors the producer
    notices at once (a message too large, a topic whose metadata cannot be
    had) are raised by the publishing call itself.

    ``producer_config`` goes to kafka-python's ``KafkaProducer``.

    Leaving a ``with`` block flushes and closes, so nothing queued is lost unnoticed:

    >>> from driftline.simulate import simulated_model_spec, simulated_predictions
    >>> with Publisher("127.0.0.1:9092", compression_type="gzip") as publisher:  # doctest: +SKIP
    ...     spec = publisher.register(simulated_model_spec())
    ...     for event in simulated_predictions(1_000, shift_at=500):
    ...         publisher.publish(event)
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        predictions_topic: str = DEFAULT_PREDICTIONS_TOPIC,
        features_topic: str = DEFAULT_FEATURES_TOPIC,
        labels_topic: str = DEFAULT_LABELS_TOPIC,
        models_topic: str = DEFAULT_MODELS_TOPIC,
        references_topic: str = DEFAULT_REFERENCES_TOPIC,
        keyed_by: KeyedBy = KeyedBy.MODEL_ID,
        **producer_config: Any,
    ) -> None:
        self.keyed_by = KeyedBy(keyed_by)
        self.predictions_topic = predictions_topic
        self.features_topic = features_topic
        self.labels_topic = labels_topic
        self.models_topic = models_topic
        self.references_topic = references_topic
        self._lock = threading.Lock()
        self._pending: deque[Any] = deque()
        self._errors: list[BaseException] = []
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers.split(","),
            acks="all",
            linger_ms=5,
            **producer_config,
        )

    def topic_of(self, event: InputEvent) -> str:
        """The topic an event is published to.

        >>> from datetime import UTC, datetime
        >>> label = LabelEvent(model_id="churn", event_id="l-1", prediction_id="e-1",
        ...                    event_time=datetime(2026, 3, 1, tzinfo=UTC), label="leaves")
        >>> publisher = Publisher("127.0.0.1:9092", labels_topic="churn.labels")  # doctest: +SKIP
        >>> publisher.topic_of(label)  # doctest: +SKIP
        'churn.labels'
        """
        if isinstance(event, PredictionEvent):
            return self.predictions_topic
        if isinstance(event, FeatureEvent):
            return self.features_topic
        if isinstance(event, LabelEvent):
            return self.labels_topic
        raise TypeError(
            f"cannot publish a {type(event).__name__}: "
            "events are PredictionEvent, FeatureEvent or LabelEvent objects"
        )

    def key_of(self, event: InputEvent) -> bytes:
        """The key an event is published with: its model id, or its prediction's event id
        when this publisher keys by event id (the models it publishes for are registered with
        ``keyed_by: event_id``).

        >>> from datetime import UTC, datetime
        >>> label = LabelEvent(model_id="churn", event_id="l-1", prediction_id="e-1",
        ...                    event_time=datetime(2026, 3, 1, tzinfo=UTC), label="leaves")
        >>> spread = Publisher("127.0.0.1:9092", keyed_by=KeyedBy.EVENT_ID)  # doctest: +SKIP
        >>> spread.key_of(label)  # doctest: +SKIP
        b'e-1'
        """
        if self.keyed_by is KeyedBy.MODEL_ID:
            return event.model_id.encode("utf-8")
        if isinstance(event, PredictionEvent):
            return event.event_id.encode("utf-8")
        return event.prediction_id.encode("utf-8")

    def publish(self, event: InputEvent) -> None:
        """Queue one event for its topic, keyed by :meth:`key_of`; :meth:`flush` waits for it.

        >>> from datetime import UTC, datetime
        >>> event = PredictionEvent(model_id="churn", model_version="3", event_id="e-1",
        ...                         event_time=datetime.now(UTC), prediction="stays")
        >>> publisher.publish(event)  # doctest: +SKIP
        >>> publisher.flush()  # doctest: +SKIP
        """
        self._send(self.topic_of(event), self.key_of(event), _json(event))

    def publish_prediction(self, event: PredictionEvent | Mapping[str, Any]) -> PredictionEvent:
        """Validate (a mapping is validated as its JSON would be) and queue a prediction.

        Raises pydantic's ``ValidationError`` for an invalid mapping, before
        anything is sent. A ``datetime`` in the mapping stands for its ISO
        8601 text. Returns the event as published.

        >>> event = publisher.publish_prediction({  # doctest: +SKIP
        ...     "model_id": "churn", "model_version": "3", "event_id": "e-2",
        ...     "event_time": "2026-03-01T12:00:00Z", "prediction": "leaves",
        ...     "features": {"tenure_months": 2, "monthly_spend": 30.0, "plan": "basic",
        ...                  "has_support_ticket": True, "referral_code": None},
        ... })
        """
        validated = _validated(PredictionEvent, event)
        self.publish(validated)
        return validated

    def publish_features(self, event: FeatureEvent | Mapping[str, Any]) -> FeatureEvent:
        """Validate and queue a feature event, as :meth:`publish_prediction` does.

        The inputs of prediction ``e-3``, published apart from it:

        >>> event = publisher.publish_features({  # doctest: +SKIP
        ...     "model_id": "churn", "model_version": "3", "event_id": "f-3",
        ...     "prediction_id": "e-3", "event_time": "2026-03-01T12:00:05Z",
        ...     "features": {"tenure_months": 40, "monthly_spend": 12.5, "plan": "pro"},
        ... })
        """
        validated = _validated(FeatureEvent, event)
        self.publish(validated)
        return validated

    def publish_label(self, event: LabelEvent | Mapping[str, Any]) -> LabelEvent:
        """Validate and queue a label event, as :meth:`publish_prediction` does.

        Once the truth about prediction ``e-2`` is known:

        >>> label = publisher.publish_label({  # doctest: +SKIP
        ...     "model_id": "churn", "event_id": "l-2", "prediction_id": "e-2",
        ...     "event_time": "2026-03-31T09:00:00Z", "label": "stays",
        ... })
        """
        validated = _validated(LabelEvent, event)
        self.publish(validated)
        return validated

    def register(self, spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
        """Queue a model version's spec for the registry topic; it replaces an earlier one.

        A mapping is validated as its JSON would be (pydantic's
        ``ValidationError`` before anything is sent). Returns the spec.

        >>> spec = publisher.register({  # doctest: +SKIP
        ...     "model_id": "churn", "model_version": "4", "task": "classification",
        ...     "classes": ["stays", "leaves"],
        ...     "features": [{"name": "tenure_months", "kind": "numeric", "minimum": 0}],
        ... })
        """
        validated = _validated(ModelSpec, spec)
        self._send(self.models_topic, validated.registry_key(), _json(validated))
        return validated

    def register_reference(self, profile: ReferenceProfile) -> None:
        """Queue a model version's reference profile; it replaces an earlier one.

        Workers then measure drift against it instead of a warm-up window.

        A profile written by ``driftline reference build ... --output churn-3.json``:

        >>> from pathlib import Path
        >>> from driftline.specfiles import load_reference_files
        >>> [profile] = load_reference_files([Path("churn-3.json")])  # doctest: +SKIP
        >>> publisher.register_reference(profile)  # doctest: +SKIP
        """
        self._send(self.references_topic, profile.registry_key(), _json(profile))

    def unregister(self, model_id: str, model_version: str) -> None:
        """Queue a tombstone that unregisters a model version.

        >>> publisher.unregister("churn", "2")  # doctest: +SKIP
        >>> publisher.flush()  # doctest: +SKIP
        """
        self._send(self.models_topic, registry_key(model_id, model_version), None)

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until the broker acknowledged every queued message.

        Raises :class:`PublishError` naming how many messages since the last
        flush were not delivered, or were not acknowledged within ``timeout``
        seconds, with their errors; each failure is reported once.

        Publish a batch, then wait once for all of it:

        >>> for event in events:  # doctest: +SKIP
        ...     publisher.publish(event)
        >>> publisher.flush(timeout=10.0)  # doctest: +SKIP
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with contextlib.suppress(KafkaTimeoutError):  # counted below, message by message
            self._producer.flush(timeout=timeout)
        with self._lock:
            pending, self._pending = self._pending, deque()
        waiting: deque[Any] = deque()
        failed: list[BaseException] = []
        for future in pending:
            if not future.is_done:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                with contextlib.suppress(Exception):  # the future's state says what happened
                    future.get(timeout=remaining)
            if not future.is_done:
                waiting.append(future)
            elif future.failed():
                failed.append(future.exception)
        with self._lock:
            self._pending.extendleft(reversed(waiting))
            errors, self._errors = [*self._errors, *failed], []
        if errors or waiting:
            parts = []
            if errors:
                parts.append(f"{len(errors)} message(s) were not delivered (first: {errors[0]!r})")
            if waiting:
                parts.append(f"{len(waiting)} message(s) were not acknowledged within {timeout} s")
            raise PublishError("; ".join(parts), errors, len(errors) + len(waiting))

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued, close the connection, and raise :class:`PublishError` as
        :meth:`flush` does if anything was not delivered.

        What a ``with`` block does on leaving, for a publisher kept outside of one:

        >>> publisher = Publisher("127.0.0.1:9092")  # doctest: +SKIP
        >>> publisher.publish(event)  # doctest: +SKIP
        >>> publisher.close()  # doctest: +SKIP
        """
        try:
            self.flush(timeout=timeout)
        finally:
            self._producer.close(timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:  # the caller already fails; do not wait long, nor hide its error
            self._producer.close(timeout=5)

    def _send(self, topic: str, key: bytes, value: bytes | None) -> None:
        future = self._producer.send(topic, key=key, value=value)
        with self._lock:
            self._pending.append(future)
            # Forget the delivered ones, remembering the failed, so a long-lived
            # publisher that rarely flushes keeps only what is in flight.
            while self._pending and self._pending[0].is_done:
                done = self._pending.popleft()
                if done.failed():
                    self._errors.append(done.exception)


class AlertSubscriber:
    """Iterates over alerts and retraining triggers as schema objects, as they arrive.

    Each message is parsed by the topic it came from: :class:`Alert` from
    ``alerts_topic``, :class:`RetrainTrigger` from ``retrain_triggers_topic``
    (followed unless ``include_triggers`` is False). Iteration ends after
    ``idle_timeout`` seconds without a new message (never, when it is None).
    Messages that do not parse are skipped and counted in ``unreadable``: a
    subscriber must not die on one bad message.

    With a ``group_id``, subscribers share the messages and the group's
    committed position is kept; without one, each subscriber sees them all.
    ``consumer_config`` goes to kafka-python's ``KafkaConsumer`` (security
    options, say: see :func:`driftline.streams.security.kafka_python_security`).

    The alerts opened so far, read from the oldest kept, until 5 s bring nothing new:

    >>> with AlertSubscriber(  # doctest: +SKIP
    ...     "127.0.0.1:9092", from_beginning=True, idle_timeout=5.0, include_triggers=False
    ... ) as subscriber:
    ...     opened = [alert for alert in subscriber if alert.status.value == "open"]
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        alerts_topic: str = DEFAULT_ALERTS_TOPIC,
        retrain_triggers_topic: str = DEFAULT_RETRAIN_TRIGGERS_TOPIC,
        group_id: str | None = None,
        from_beginning: bool = False,
        idle_timeout: float | None = None,
        include_triggers: bool = True,
        **consumer_config: Any,
    ) -> None:
        self.unreadable = 0
        self._models: dict[str, type[Alert] | type[RetrainTrigger]] = {alerts_topic: Alert}
        if include_triggers:
            if retrain_triggers_topic == alerts_topic:
                raise ValueError("alerts and retraining triggers need topics of their own")
            self._models[retrain_triggers_topic] = RetrainTrigger
        self._consumer = KafkaConsumer(
            *self._models,
            bootstrap_servers=bootstrap_servers.split(","),
            group_id=group_id,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=group_id is not None,
            consumer_timeout_ms=(
                float("inf") if idle_timeout is None else max(1, int(idle_timeout * 1000))
            ),
            **consumer_config,
        )

    def __iter__(self) -> Iterator[Output]:
        for record in self._consumer:
            message = self._parse(record.topic, record.value)
            if message is not None:
                yield message

    def poll(self, timeout: float = 1.0) -> list[Output]:
        """The messages that arrive within ``timeout`` seconds (maybe none).

        A loop that can stop between two waits, where iterating would block:

        >>> with AlertSubscriber("127.0.0.1:9092", group_id="pager") as alerts:  # doctest: +SKIP
        ...     while not stopping.is_set():
        ...         for message in alerts.poll(timeout=1.0):
        ...             page(message)
        """
        batches = self._consumer.poll(timeout_ms=int(timeout * 1000))
        parsed = (self._parse(r.topic, r.value) for records in batches.values() for r in records)
        return [message for message in parsed if message is not None]

    def _parse(self, topic: str, value: bytes | None) -> Output | None:
        model = self._models.get(topic)
        if model is None or value is None:
            self.unreadable += 1
            return None
        try:
            return model.model_validate_json(value)
        except ValidationError:
            self.unreadable += 1
            return None

    def close(self) -> None:
        """Leave the group and close the connection.

        What a ``with`` block does on leaving, for a subscriber kept outside of one:

        >>> subscriber = AlertSubscriber("127.0.0.1:9092", group_id="pager")  # doctest: +SKIP
        >>> messages = subscriber.poll(timeout=5.0)  # doctest: +SKIP
        >>> subscriber.close()  # doctest: +SKIP
        """
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


def _validated(model: type[Model], value: Model | Mapping[str, Any]) -> Model:
    if isinstance(value, model):
        return value
    if isinstance(value, BaseModel):
        raise TypeError(f"expected a {model.__name__} or a mapping, not a {type(value).__name__}")
    return validate_as_json(model, value, datetimes=True)


def _json(message: BaseModel) -> bytes:
    return message.model_dump_json().encode("utf-8")
