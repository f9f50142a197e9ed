"""Liveness and readiness of a worker, for an orchestrator's probes, and who may ask.

``GET /livez`` answers 503 when restarting the worker is the cure: the app
is stopping or crashed (a worker that stopped itself after a Kafka error
also exits within its shutdown timeout, see
:class:`~driftline.agents.worker.BoundedShutdownWorker`), or an assigned input partition
has had messages waiting for ``DRIFTLINE_STALL_SECONDS`` without one being
processed. A blocked event loop cannot answer at all, so the probe's own
timeout fails it. ``GET /readyz`` answers 200 once the tables are
recovered and the registry topic has been read to its end.

Both say whether the brokers answer the worker (``"broker"``, see
:mod:`driftline.streams.broker_contact`). A broker outage makes ``/readyz``
503 but leaves ``/livez`` 200: a restart does not bring a broker back, and
a restarted worker could not even start without one (it would exit after
``DRIFTLINE_STARTUP_TIMEOUT_SECONDS``, again and again), while a running
one resumes by itself once the broker answers. For the same reason a
partition that waits during an outage is not stalled: its stall is counted
from when the broker answered again.

Every endpoint of the web server takes the same rule: with
``DRIFTLINE_WEB_TOKEN`` set, a request must carry ``Authorization: Bearer
<token>``, or the token as the password of basic authentication, which is
what a browser sends when the status page prompts for it (and a web server
bound beyond localhost must have a token).
"""

import base64
import binascii
import contextlib
import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any

from faust.web import Request, Response, View

from driftline.agents.progress import Partition, ProgressWatch
from driftline.agents.wiring import Monitoring
from driftline.streams.batching import BatchingConsumer
from driftline.streams.broker_contact import CONTACT, BrokerContact, watch_broker_contact
from driftline.streams.settings import Settings

log = logging.getLogger(__name__)

OBSERVE_SECONDS = 1.0
"""How often the worker looks at which input partitions have messages waiting."""


def waiting_partitions(app: Any, topics: Iterable[str]) -> list[Partition]:
    """The assigned partitions of ``topics`` with messages waiting: fetched, or on the broker
    past what was read."""
    consumer = app.consumer
    if not isinstance(consumer, BatchingConsumer):
        return []
    topics = set(topics)
    return [
        (tp.topic, tp.partition)
        for tp in consumer.held()
        if tp.topic in topics
        and (consumer.waiting(tp.topic, tp.partition) > 0 or consumer.unread(*tp))
    ]


def liveness(app: Any, watch: ProgressWatch, contact: BrokerContact = CONTACT) -> dict[str, Any]:
    """The liveness report: ``live``, each problem in words, and whether the brokers answer.

    An unreachable broker is reported but is no problem of the worker's
    (a restart would not cure it), and the partitions that wait on it do
    not stall: they are given ``DRIFTLINE_STALL_SECONDS`` from when it
    answered again.
    """
    problems = []
    if app.crashed or app.should_stop:
        problems.append(f"the worker is {app.state}: it consumes nothing more")
    broker = contact.report()
    stalled = watch.stalled(since=contact.back_at) if broker["reachable"] else {}
    for (topic, partition), idle in sorted(stalled.items()):
        problems.append(
            f"{topic}[{partition}] has had messages waiting {idle:.0f} s without progress "
            f"(DRIFTLINE_STALL_SECONDS={watch.stall_seconds:g})"
        )
    return {"live": not problems, "problems": problems, "broker": broker}


def readiness(app: Any, monitoring: Monitoring, contact: BrokerContact = CONTACT) -> dict[str, Any]:
    """The readiness report: ``ready``, what is still awaited, and whether the brokers answer
    (a worker cut off from its broker consumes nothing, so it is not ready)."""
    waiting_for = []
    if not app.tables.recovery.completed.is_set():
        waiting_for.append("the tables' recovery")
    if not monitoring.follower.caught_up:
        waiting_for.append("the registry topic, read to its end")
    broker = contact.report()
    if not broker["reachable"]:
        waiting_for.append(
            f"an answer from the broker ({', '.join(broker['unanswered'])}): none for "
            f"{broker['seconds']:.0f} s"
        )
    return {"ready": not waiting_for, "waiting_for": waiting_for, "broker": broker}


def refusal(
    web: View, request: Request, settings: Settings, *, browser: bool = False
) -> Response | None:
    """A 401 answer for a request without the token the settings ask for, else None.

    The token comes as ``Authorization: Bearer <token>``, or, from a browser,
    as the password of HTTP basic authentication (any user name): a page
    for people (``browser``) asks for it that way, so the browser prompts.
    """
    if settings.web_token is None:
        return None
    token = settings.web_token.get_secret_value().encode()
    if carries_token(request.headers.get("Authorization", ""), token):
        return None
    if browser:
        return web.html(
            "<!DOCTYPE html><title>driftline: token needed</title><p>This page needs the "
            "worker's token (DRIFTLINE_WEB_TOKEN): give it as the password, with any user name.",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="driftline", charset="UTF-8"'},
        )
    return web.json(
        {"error": "this endpoint needs the header 'Authorization: Bearer <DRIFTLINE_WEB_TOKEN>'"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="driftline"'},
    )


def carries_token(authorization: str, token: bytes) -> bool:
    """Whether an Authorization header carries ``token``: as a bearer token, or as the
    password of basic authentication. Compared in constant time."""
    scheme, _, value = authorization.partition(" ")
    given = b""
    if scheme.lower() == "bearer":
        given = value.strip().encode()
    elif scheme.lower() == "basic":
        with contextlib.suppress(ValueError, binascii.Error):
            given = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
    return hmac.compare_digest(given, token)


def register_health_pages(app: Any, monitoring: Monitoring, settings: Settings) -> ProgressWatch:
    """Serve ``/livez`` and ``/readyz``, and watch the input partitions and the brokers'
    answers for them."""
    watch_broker_contact()
    watch = monitoring.progress
    topics = settings.input_topics

    @app.timer(interval=OBSERVE_SECONDS)  # type: ignore[untyped-decorator]
    async def observe_inputs() -> None:
        try:
            watch.observe(waiting_partitions(app, topics))
        except Exception:  # a timer that raised would stop the worker: only say so
            log.exception("could not tell which input partitions have messages waiting")

    def serve(name: str, report: Callable[[], dict[str, Any]]) -> None:
        """Serve ``/<name>``: the report, 200 when its first item is true, else 503."""

        @app.page(f"/{name}", name=name)  # type: ignore[untyped-decorator]
        async def probe(web: View, request: Request) -> Response:
            refused = refusal(web, request, settings)
            if refused is not None:  # a response is a mapping: empty, it is false
                return refused
            answer = report()
            healthy = next(iter(answer.values()))
            return web.json(answer, status=200 if healthy else 503)

    serve("livez", lambda: liveness(app, watch))
    serve("readyz", lambda: readiness(app, monitoring))
    return watch
