"""How every Kafka client of driftline authenticates, from one place: the settings.

The worker's faust app, its registry follower (aiokafka), topic creation
and the commands (kafka-python) all take their security configuration from
these functions, so a secured cluster (TLS; SASL PLAIN, SCRAM or OAUTHBEARER) is
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
from pathlib import Path
from typing import Any

from aiokafka.abc import AbstractTokenProvider as AiokafkaTokenProviderBase
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from kafka.net.sasl.oauth import AbstractTokenProvider as KafkaPythonTokenProviderBase

from driftline.streams.settings import TLS_PROTOCOLS, Settings


class TokenFile:
    """The bearer token an OAUTHBEARER client sends, read from its file when asked for.

    Whatever renews the token (a sidecar, an agent, a cron job) writes the
    file; each authentication reads it again, so a renewed token is used from
    the next connection on.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> str:
        """The token: the file's text without surrounding white space."""
        token = self.path.read_text(encoding="utf-8").strip()
        if not token:
            raise ValueError(f"the token file {self.path} is empty")
        return token


class KafkaPythonTokenProvider(KafkaPythonTokenProviderBase):  # type: ignore[misc]
    """kafka-python's OAUTHBEARER token provider, over a :class:`TokenFile`."""

    def __init__(self, tokens: TokenFile) -> None:
        super().__init__()
        self.tokens = tokens

    def token(self) -> str:
        return self.tokens.read()


class AiokafkaTokenProvider(AiokafkaTokenProviderBase):  # type: ignore[misc]
    """aiokafka's (and so faust's) OAUTHBEARER token provider, over a :class:`TokenFile`."""

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens

    async def token(self) -> str:
        return self.tokens.read()


def _sasl(settings: Settings, provider: type) -> dict[str, Any]:
    """The SASL options both clients name alike; ``provider`` makes an OAUTHBEARER token's."""
    if not settings.security_protocol.startswith("SASL"):
        return {}
    if settings.sasl_mechanism == "OAUTHBEARER":
        assert settings.sasl_oauth_token_file is not None  # the settings checked it
        tokens = TokenFile(settings.sasl_oauth_token_file)
        return {"sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": provider(tokens)}
    assert settings.sasl_password is not None  # the settings checked it
    return {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": settings.sasl_password.get_secret_value(),
    }


def kafka_python_security(settings: Settings) -> dict[str, Any]:
    """The security options of a kafka-python client (producer, consumer, admin)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    options |= _sasl(settings, KafkaPythonTokenProvider)
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
    options |= _sasl(settings, AiokafkaTokenProvider)
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    return options


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The faust app's broker credentials; None for PLAINTEXT."""
    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL") and settings.sasl_mechanism == "OAUTHBEARER":
        assert settings.sasl_oauth_token_file is not None  # the settings checked it
        provider = AiokafkaTokenProvider(TokenFile(settings.sasl_oauth_token_file))
        return OAuthCredentials(oauth_cb=provider, ssl_context=context)
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
    if refusals and settings.sasl_mechanism == "OAUTHBEARER":
        return (
            "the brokers refused the bearer token in DRIFTLINE_SASL_OAUTH_TOKEN_FILE="
            f"{settings.sasl_oauth_token_file}: check that it is current and that they accept "
            "its issuer"
        )
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
