"""The worker, the commands and the client through a secured broker (SASL_SSL: SCRAM, OAuth).

A broker of the module's own opens a ``SASL_SSL`` listener beside its
plaintext one (its certificate signed by a throwaway authority); everything
here is given the secured listener only, with ``DRIFTLINE_REQUIRE_TLS`` on.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from kafka_helpers import free_port, named_after, wait_for_worker
from pydantic import SecretStr

from driftline.broker import LocalKafkaBroker, SecuredListener, unsecured_token
from driftline.client import Publisher
from driftline.schemas import PredictionEvent
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.security import credentials_refused, kafka_python_security
from driftline.streams.settings import Settings, to_environment
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

USER, PASSWORD = "driftline", "driftline-s3cret-password"


@pytest.fixture(scope="module")
def secured_broker() -> Iterator[LocalKafkaBroker]:
    secured = SecuredListener({USER: PASSWORD}, client_certificates=True)
    with LocalKafkaBroker(secured=secured) as broker:
        yield broker


def secured_settings(
    broker: LocalKafkaBroker, data_dir: Path, mechanism: str = "SCRAM-SHA-512"
) -> Settings:
    """Settings of topics and a group of their own, for the secured listener only."""
    if mechanism == "OAUTHBEARER":
        token_file = data_dir.parent / "token"
        token_file.write_text(unsecured_token(USER) + "\n")
        credentials: dict[str, object] = {"sasl_oauth_token_file": token_file}
    else:
        credentials = {"sasl_username": USER, "sasl_password": PASSWORD}
    named = named_after(f"secured-{uuid.uuid4().hex[:10]}")
    return Settings(
        bootstrap_servers=broker.secured_bootstrap_servers,
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        ssl_cafile=broker.ca_file,
        require_tls=True,
        topic_partitions=2,
        data_dir=data_dir,
        web_enabled=True,
        web_port=free_port(),
        startup_timeout_seconds=8.0,
        **credentials,
        **named,
    )


def driftline(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A ``driftline`` command with the settings in its environment, as a deployment gives them."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "driftline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment | to_environment(settings) | {"PYTHONSAFEPATH": "1"},
        check=False,
    )


def register_the_model(settings: Settings, folder: Path) -> Path:
    """Create the topics (as the worker would) and register the simulated model with
    ``driftline models register``, both through the secured listener; the spec file."""
    ensure_topics(settings)
    spec_file = folder / "model.yaml"
    spec_file.write_text(yaml.safe_dump(simulated_model_spec().model_dump(mode="json")))
    registered = driftline(settings, "models", "register", str(spec_file))
    assert registered.returncode == 0, registered.stderr
    return spec_file


def publish(settings: Settings, events: Iterable[PredictionEvent]) -> None:
    with Publisher(
        settings.bootstrap_servers,
        predictions_topic=settings.predictions_topic,
        **kafka_python_security(settings),
    ) as publisher:
        for event in events:
            publisher.publish(event)
        publisher.flush()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "OAUTHBEARER"])
def test_the_worker_the_commands_and_the_client_work_through_sasl_ssl(
    secured_broker: LocalKafkaBroker, tmp_path: Path, mechanism: str
):
    settings = secured_settings(secured_broker, tmp_path / "worker", mechanism)
    register_the_model(settings, tmp_path)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        publish(settings, simulated_predictions(4_000, shift_at=2_000, seed=3))
        report = wait_for_worker(
            settings.web_port,
            worker,
            lambda report: (
                report["topics"]["predictions"]["processed"] == 4_000
                and sum(report["alerts"].values()) > 0
            ),
        )
        assert report["models_registered"] == 1
        tail = driftline(
            settings, "alerts", "tail", "--from-beginning", "--max-messages", "1", "--timeout", "20"
        )
        assert tail.returncode == 0, tail.stderr
        assert " ALERT open " in tail.stdout
    assert PASSWORD not in worker.log_text()


def client_files(broker: LocalKafkaBroker, folder: Path, key_password: str) -> tuple[Path, Path]:
    """A client certificate the broker's authority signed (PEM), and its key (PEM, encrypted
    with ``key_password``): keytool makes them in a PKCS12 store, read here."""
    store = broker.client_certificate("driftline-worker")
    key, _, _ = pkcs12.load_key_and_certificates(store.read_bytes(), broker.tls_password.encode())
    assert key is not None
    key_file = folder / "client-key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(key_password.encode()),
        )
    )
    return store.with_name("driftline-worker.pem"), key_file


def test_the_worker_and_the_commands_work_through_mutual_tls(
    secured_broker: LocalKafkaBroker, tmp_path: Path
):
    certificate, key = client_files(secured_broker, tmp_path, "key-s3cret-password")
    settings = secured_settings(secured_broker, tmp_path / "worker").model_copy(
        update={
            "bootstrap_servers": secured_broker.mutual_tls_bootstrap_servers,
            "security_protocol": "SSL",
            "sasl_mechanism": None,
            "sasl_username": None,
            "sasl_password": None,
            "ssl_certfile": certificate,
            "ssl_keyfile": key,
            "ssl_key_password": SecretStr("key-s3cret-password"),
        }
    )
    Settings.model_validate(settings.model_dump())  # still whole settings
    spec_file = register_the_model(settings, tmp_path)
    with WorkerProcess(settings, tmp_path / "worker.log") as worker:
        publish(settings, simulated_predictions(500, shift_at=10**9, seed=3))
        wait_for_worker(
            settings.web_port,
            worker,
            lambda report: report["topics"]["predictions"]["processed"] == 500,
        )
    without = settings.model_copy(
        update={"ssl_certfile": None, "ssl_keyfile": None, "ssl_key_password": None}
    )
    refused = driftline(without, "models", "register", str(spec_file), "--timeout", "5")
    assert refused.returncode == 1  # no certificate: the listener takes no such client


def test_a_wrong_password_fails_the_worker_at_start_saying_so_without_the_secret(
    secured_broker: LocalKafkaBroker, tmp_path: Path
):
    settings = secured_settings(secured_broker, tmp_path / "worker").model_copy(
        update={"sasl_password": SecretStr("a-wrong-password-given")}
    )
    started = time.monotonic()
    result = driftline(settings, "worker", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 40  # the startup timeout, not forever
    assert "refused the SASL credentials of DRIFTLINE_SASL_USERNAME=driftline" in result.stderr
    assert "a-wrong-password-given" not in result.stdout + result.stderr


def test_a_brokers_refusal_of_the_credentials_is_read_each_time_it_is_asked_for(
    secured_broker: LocalKafkaBroker, tmp_path: Path
):
    # The broker sends its refusal and closes the connection at once: a client
    # that drops what it read with the close (kafka-python did, on most
    # attempts after a broker's first refusal) would not tell it every time.
    settings = secured_settings(secured_broker, tmp_path / "worker")
    wrong = settings.model_copy(update={"sasl_password": SecretStr("a-wrong-password-given")})
    refusals = [credentials_refused(wrong, timeout=20) for _ in range(4)]
    assert all("Authentication failed" in (refusal or "") for refusal in refusals), refusals
    assert "a-wrong-password-given" not in str(refusals)
    assert credentials_refused(settings, timeout=20) is None  # accepted
    nothing_there = f"127.0.0.1:{free_port()}"
    unanswered = wrong.model_copy(update={"bootstrap_servers": nothing_there})
    assert credentials_refused(unanswered) is None
    after_one_down = f"{nothing_there},{settings.bootstrap_servers}"
    refusal = credentials_refused(wrong.model_copy(update={"bootstrap_servers": after_one_down}))
    assert "Authentication failed" in (refusal or "")


def test_a_brokers_refusal_of_a_bearer_token_is_read_and_a_current_token_accepted(
    secured_broker: LocalKafkaBroker, tmp_path: Path
):
    # A broker answers a bad token with an error challenge, and fails the
    # exchange only once the client acknowledges it (RFC 7628).
    settings = secured_settings(secured_broker, tmp_path / "worker", "OAUTHBEARER")
    assert settings.sasl_oauth_token_file is not None
    assert credentials_refused(settings, timeout=20) is None
    expired = unsecured_token(USER, lifetime_seconds=-600)
    settings.sasl_oauth_token_file.write_text(expired)
    refusal = credentials_refused(settings, timeout=20)
    assert "SaslAuthenticationFailed" in (refusal or ""), refusal
    assert "invalid_token" in (refusal or ""), refusal
    assert expired not in (refusal or "")


def test_an_expired_bearer_token_fails_the_worker_at_start_naming_its_file(
    secured_broker: LocalKafkaBroker, tmp_path: Path
):
    settings = secured_settings(secured_broker, tmp_path / "worker", "OAUTHBEARER")
    assert settings.sasl_oauth_token_file is not None
    expired = unsecured_token(USER, lifetime_seconds=-600)
    settings.sasl_oauth_token_file.write_text(expired)
    result = driftline(settings, "worker", timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused the bearer token in DRIFTLINE_SASL_OAUTH_TOKEN_FILE=" in result.stderr
    assert expired not in result.stdout + result.stderr


def test_a_plaintext_connection_is_refused_when_tls_is_required(tmp_path: Path):
    settings = Settings(data_dir=tmp_path)
    environment = to_environment(settings) | {"DRIFTLINE_REQUIRE_TLS": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "driftline", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        | environment
        | {"PYTHONSAFEPATH": "1"},
        check=False,
    )
    assert result.returncode == 2
    assert (
        "DRIFTLINE_REQUIRE_TLS is set, and DRIFTLINE_SECURITY_PROTOCOL=PLAINTEXT" in result.stderr
    )
