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

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any, cast

from aiokafka.abc import AbstractTokenProvider as AiokafkaTokenProviderBase
from aiokafka.conn import AIOKafkaConnection, OAuthAuthenticator, collect_hosts
from aiokafka.errors import SaslAuthenticationFailed
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT
from kafka.net.sasl.oauth import AbstractTokenProvider as KafkaPythonTokenProviderBase

from driftline.streams.settings import TLS_PROTOCOLS, Settings

log = logging.getLogger(__name__)


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


class _TokenAuthenticator(OAuthAuthenticator):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's OAUTHBEARER exchange, finished as RFC 7628 (3.2.3) has it when the server
    refuses the token.

    The server then answers the token with an error challenge (a JSON object)
    rather than failing at once; the client acknowledges it with a single
    %x01 and the server fails the exchange, saying why. aiokafka stops after
    the token, so it takes the challenge for success.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._challenge_answered = False

    async def step(self, payload: bytes | None) -> tuple[bytes, bool] | None:
        if self._token_sent and payload and not self._challenge_answered:
            self._challenge_answered = True
            return b"\x01", True
        return cast("tuple[bytes, bool] | None", await super().step(payload))


class _CheckingConnection(AIOKafkaConnection):  # type: ignore[misc]  # aiokafka is untyped
    """A connection that hears a broker's refusal of a bearer token (see above)."""

    def authenticator_oauth(self) -> _TokenAuthenticator:
        return _TokenAuthenticator(sasl_oauth_token_provider=self._sasl_oauth_token_provider)


async def _first_refusal(settings: Settings, timeout: float) -> str | None:
    """The refusal of the credentials by the first bootstrap server that answers; None once
    one accepts them, or when none answers."""
    for host, port, _ in collect_hosts(settings.bootstrap_servers):
        connection = _CheckingConnection(
            host,
            port,
            client_id=f"{settings.app_id}-credentials-check",
            request_timeout_ms=int(timeout * 1000),
            **aiokafka_security(settings),
        )
        try:
            await connection.connect()
        except SaslAuthenticationFailed as refusal:
            return str(refusal)
        except Exception as error:  # this server cannot tell; ask the next
            log.debug("credentials check at %s:%s: %r", host, port, error)
            continue
        finally:
            connection.close()
        return None
    return None


def credentials_refused(settings: Settings, timeout: float = 10.0) -> str | None:
    """The brokers' refusal of the settings' SASL credentials, if a broker refuses them.

    Asked after a Kafka client failed to reach the brokers, to tell the
    operator why. kafka-python only times out then. It reads the refusal
    when the broker's answer comes apart from its closing the connection, and
    loses it when both come at once, as often happens: its TLS transport
    drops what it read together with the end of the stream. So this asks on
    a connection of its own, with aiokafka, which reads what came before the
    end; an OAUTHBEARER exchange is finished as the RFC has it (see
    ``_TokenAuthenticator``). One attempt per bootstrap server, in order,
    within ``timeout`` seconds in all. None without SASL, when the
    credentials are accepted, or when no broker answers in time.

    >>> from driftline.streams.settings import Settings
    >>> credentials_refused(Settings()) is None  # PLAINTEXT: nothing to refuse
    True
    """
    if not settings.security_protocol.startswith("SASL"):
        return None
    try:
        return asyncio.run(asyncio.wait_for(_first_refusal(settings, timeout), timeout))
    except TimeoutError:
        return None


def refusal_hint(settings: Settings, refusal: str | None) -> str:
    """What to check when the brokers could not be reached with these settings, given their
    refusal of the credentials, if any (see :func:`credentials_refused`)."""
    if refusal and settings.sasl_mechanism == "OAUTHBEARER":
        return (
            "the brokers refused the bearer token in DRIFTLINE_SASL_OAUTH_TOKEN_FILE="
            f"{settings.sasl_oauth_token_file}: check that it is current and that they accept "
            "its issuer"
        )
    if refusal:
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
