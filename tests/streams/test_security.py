import socket
import ssl
import time
from pathlib import Path

import pytest
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials

from driftline.streams.security import (
    TokenFile,
    aiokafka_security,
    credentials_refused,
    faust_credentials,
    kafka_python_security,
    ssl_context,
)
from driftline.streams.settings import Settings

SCRAM = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "SCRAM-SHA-256",
    "sasl_username": "driftline",
    "sasl_password": "s3cret-password",
}


def test_a_bearer_token_is_read_from_its_file_each_time(tmp_path: Path):
    token = tmp_path / "token"
    settings = Settings(
        security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_file=token
    )
    provider = kafka_python_security(settings)["sasl_oauth_token_provider"]
    token.write_text("first-token\n")
    assert provider.token() == "first-token"
    token.write_text("renewed-token\n")
    assert provider.token() == "renewed-token"
    token.write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        TokenFile(token).read()


def test_plaintext_asks_nothing_of_any_client():
    settings = Settings()
    assert kafka_python_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert aiokafka_security(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None
    assert ssl_context(settings) is None


def test_sasl_over_tls_gives_every_client_the_user_and_a_verifying_context():
    settings = Settings(**SCRAM)
    assert kafka_python_security(settings) == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "driftline",
        "sasl_plain_password": "s3cret-password",
    }
    context = aiokafka_security(settings)["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.ssl_context is not None
    assert "s3cret" not in repr(credentials)


def test_tls_alone_and_oauth_map_to_their_faust_credentials(tmp_path: Path):
    assert isinstance(faust_credentials(Settings(security_protocol="SSL")), SSLCredentials)
    oauth = Settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_file=tmp_path / "token",
    )
    assert isinstance(faust_credentials(oauth), OAuthCredentials)
    assert aiokafka_security(oauth)["sasl_mechanism"] == "OAUTHBEARER"


def test_a_credentials_check_gives_up_in_time_on_servers_that_never_answer():
    # Each takes the connection (the system's backlog does) and never says a word.
    silent = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    try:
        servers = ",".join(f"127.0.0.1:{server.getsockname()[1]}" for server in silent)
        settings = Settings(bootstrap_servers=servers, **SCRAM)
        started = time.monotonic()
        assert credentials_refused(settings, timeout=2.0) is None
        assert time.monotonic() - started < 5  # one timeout for them all (not 6 s: one each)
    finally:
        for server in silent:
            server.close()
