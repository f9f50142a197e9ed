"""One readable line per alert or retraining trigger, for a terminal or a log.

The one format of every line driftline prints about them: ``driftline
alerts tail``, ``driftline replay``, the demo and the worker's log.

>>> from datetime import UTC, datetime
>>> from driftline.schemas import RetrainTrigger, TrainingWindow, TriggerReason
>>> trigger = RetrainTrigger(
...     trigger_id="t-1", idempotency_key="m/1/7", model_id="m", model_version="1",
...     event_time=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
...     reasons=[TriggerReason(kind="drift", alert_id="a-1", summary="x moved")],
...     training_window=TrainingWindow(start_event_time=datetime(2026, 1, 1, tzinfo=UTC)),
... )
>>> print(output_line(trigger))
2026-01-01T00:05:00Z RETRAIN model m v1 from 2026-01-01T00:00:00Z key m/1/7: drift: x moved
"""

from datetime import UTC, datetime

from driftline.schemas.outputs import Alert, KafkaPosition, RetrainTrigger


def output_line(message: Alert | RetrainTrigger, where: str | None = None) -> str:
    """One line for an alert or a retraining trigger: :func:`alert_line` or :func:`trigger_line`."""
    if isinstance(message, RetrainTrigger):
        return trigger_line(message)
    return alert_line(message, where)


def alert_line(alert: Alert, where: str | None = None) -> str:
    """``<time> ALERT <status> <severity> <kind> model <id> v<version> feature <f>: <summary>
    at <where>``.

    ``feature <f>`` is left out for an alert on no feature, and the summary's
    leading ``<f>: `` is dropped when the feature is already named. ``at
    <where>`` names the event the alert stands at: ``where`` when given (a
    line of a file, say), else its Kafka position, ``topic[partition]@offset``;
    it is left out when neither is known.
    """
    summary = alert.summary
    subject = ""
    if alert.feature is not None:
        subject = f" feature {_clean(alert.feature)}"
        summary = summary.removeprefix(f"{alert.feature}: ")
    if where is None and alert.source is not None:
        where = _position(alert.source)
    return (
        f"{_time(alert.event_time)} ALERT {alert.status.value} {alert.severity.value} "
        f"{alert.kind.value} model {_clean(alert.model_id)} v{_clean(alert.model_version)}"
        f"{subject}: {_clean(summary)}{f' at {_clean(where)}' if where else ''}"
    )


def trigger_line(trigger: RetrainTrigger) -> str:
    """``<time> RETRAIN model <id> v<version> from <start> (<positions>) key <key>: <reasons>``.

    ``from`` gives where the training window starts, in event time and per
    partition (``topic[partition]@offset``); each reason is ``<kind>: <summary>``.
    """
    window = trigger.training_window
    if window is None:
        start = "no training window"
    else:
        start = f"from {_time(window.start_event_time)}"
        if window.start_positions:
            start += f" ({', '.join(_position(p) for p in window.start_positions)})"
    reasons = "; ".join(f"{reason.kind.value}: {reason.summary}" for reason in trigger.reasons)
    return (
        f"{_time(trigger.event_time)} RETRAIN model {_clean(trigger.model_id)} "
        f"v{_clean(trigger.model_version)} {start} key {_clean(trigger.idempotency_key)}: "
        f"{_clean(reasons)}"
    )


def _time(moment: datetime) -> str:
    """ISO 8601 in UTC, to the millisecond when there are fractions of a second."""
    moment = moment.astimezone(UTC)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _position(position: KafkaPosition) -> str:
    return f"{_clean(position.topic)}[{position.partition}]@{position.offset}"


def _clean(text: str) -> str:
    """The text on one line, with line breaks and control characters escaped.

    A message is written by whoever can publish to the topic: it must not
    break the one-line-per-message promise, nor send escape sequences to a
    terminal.
    """
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
