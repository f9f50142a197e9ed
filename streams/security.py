"""How every Kafka client of driftline authenticates, from one place: the settings.

The worker's faust app, its registry follower (aiokafka), topic creation
and the commands (kafka-python) all take their security configuration from
these functions, so a secured cluster (TLS, SASL PLAIN or SCRAM) is
configured once, with ``DRIFTLINE_SECURITY_PROTOCOL`` and its companions.

>>> from driftline.streams.settings import Settings
>>> kafka_python_security(Settings())
{'security_protocol': 'PLAINTEXT'}
>>> secured = Settings(
...     security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
...     sasl_username="driftline", sasl_password="s3cret",
... )
>>> sorted(kafka_python_security(secured))
['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> faust_credentials(secured)
<SASLCredentials: username=driftline>
"""

import contextlib
import logging
import ssl
from collections.abc import Iterator
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from driftline.streams.settings import TLS_PROTOCOLS, Settings


def kafka_python_security(settings: Settings) -> dict[str, Any]:
    """The security options of a kafka-python client (producer, consumer, admin)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # the settings checked it
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    if settings.security_protocol in TLS_PROTOCOLS:
        files = {
            "ssl_cafile": settings.ssl_cafile,
            "ssl_certfile": settings.ssl_certfile,
            "ssl_keyfile": settings.ssl_keyfile,
        }
        options |= {name: str(path) for name, path in files.items() if path is not None}
        if settings.ssl_key_password is not None:
            options["ssl_password"] = settings.ssl_key_password.get_secret_value()
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of an aiokafka client (the worker's); None without TLS.

    It verifies the brokers' certificates and host names against
    ``DRIFTLINE_SSL_CAFILE`` (else the system's authorities), and presents
    the client certificate when one is given.
    """
    if settings.security_protocol not in TLS_PROTOCOLS:
        return None
    context = ssl.create_default_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile is not None else None
    )
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        password = settings.ssl_key_password
        context.load_cert_chain(
            str(settings.ssl_certfile),
            str(settings.ssl_keyfile),
            password.get_secret_value() if password is not None else None,
        )
    return context


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """The security options of an aiokafka client."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # the settings checked it
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    return options


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The faust app's broker credentials; None for PLAINTEXT."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL"):
        assert settings.sasl_password is not None  # the settings checked it
        return SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


class _RefusalRecorder(logging.Handler):
    """Keeps the Kafka client's log records that say the broker refused the credentials."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refusals: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "Authentication failed" in text or "SaslAuthenticationFailed" in text:
            self.refusals.append(text)


@contextlib.contextmanager
def credential_refusals() -> Iterator[list[str]]:
    """The messages in which the Kafka client (kafka-python) reports the broker refusing its
    SASL credentials, while the block runs: the client only times out, and says why in its log.
    """
    recorder = _RefusalRecorder()
    client_log = logging.getLogger("kafka")
    client_log.addHandler(recorder)
    try:
        yield recorder.refusals
    finally:
        client_log.removeHandler(recorder)


def refusal_hint(settings: Settings, refusals: list[str]) -> str:
    """What to check when the brokers could not be reached with these settings."""
    if refusals:
        return (
            f"the brokers refused the SASL credentials of DRIFTLINE_SASL_USERNAME="
            f"{settings.sasl_username} ({settings.sasl_mechanism}): check "
            "DRIFTLINE_SASL_PASSWORD and that the user has this mechanism"
        )
    if settings.security_protocol != "PLAINTEXT":
        return (
            "check DRIFTLINE_BOOTSTRAP_SERVERS, that the brokers are up, and that their "
            f"listener there speaks {settings.security_protocol} (and trusts, or is trusted by, "
            "DRIFTLINE_SSL_CAFILE)"
        )
    return "check DRIFTLINE_BOOTSTRAP_SERVERS and that the brokers are up"
