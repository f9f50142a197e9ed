import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from driftline.broker import (
    KAFKA_VERSION,
    SASL_MECHANISMS,
    BrokerError,
    LocalKafkaBroker,
    SecuredListener,
    ensure_broker_jars,
    java_executable,
    new_cluster_id,
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited but is not reaped yet: it is not running.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.kafka
def test_the_session_broker_carries_messages(kafka_broker: LocalKafkaBroker):
    servers = kafka_broker.bootstrap_servers
    assert servers.startswith("127.0.0.1:")
    admin = KafkaAdminClient(bootstrap_servers=servers)
    admin.create_topics([NewTopic("harness-roundtrip", num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers, acks="all")
    for index in range(10):
        producer.send("harness-roundtrip", key=b"k", value=str(index).encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        "harness-roundtrip",
        bootstrap_servers=servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    values = [record.value for record in consumer]
    consumer.close()
    assert values == [str(index).encode() for index in range(10)]
    assert kafka_broker.log_path is not None
    assert kafka_broker.log_path.is_file()


@pytest.mark.kafka
def test_a_secured_listener_takes_each_mechanism_over_tls_and_refuses_a_wrong_password():
    users = {"alice": "alice-s3cret-password"}
    with LocalKafkaBroker(secured=SecuredListener(users)) as broker:
        secured = broker.secured_bootstrap_servers
        assert secured != broker.bootstrap_servers
        assert broker.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        admin.create_topics([NewTopic("secured", num_partitions=1, replication_factor=1)])
        admin.close()

        def producer(mechanism: str, password: str) -> KafkaProducer:
            return KafkaProducer(
                bootstrap_servers=secured,
                security_protocol="SASL_SSL",
                sasl_mechanism=mechanism,
                sasl_plain_username="alice",
                sasl_plain_password=password,
                ssl_cafile=str(broker.ca_file),
                bootstrap_timeout_ms=5_000,  # a refused client waits this long
            )

        for mechanism in SASL_MECHANISMS:
            with contextlib.closing(producer(mechanism, users["alice"])) as sending:
                sending.send("secured", value=mechanism.encode()).get(timeout=30)
        consumer = KafkaConsumer(
            "secured",
            bootstrap_servers=broker.bootstrap_servers,  # the plaintext listener still serves
            auto_offset_reset="earliest",
            consumer_timeout_ms=5_000,
        )
        assert [record.value for record in consumer] == [m.encode() for m in SASL_MECHANISMS]
        consumer.close()
        with pytest.raises(KafkaError):
            producer("SCRAM-SHA-256", "a-wrong-password")
        with pytest.raises(KafkaError):  # no TLS: no SASL either
            KafkaProducer(bootstrap_servers=secured, bootstrap_timeout_ms=5_000)


@pytest.mark.kafka
def test_stop_ends_the_jvm_and_removes_its_temporary_data():
    broker = LocalKafkaBroker().start()
    pid, workdir = broker.pid, broker.log_path.parents[1] if broker.log_path else None
    assert pid is not None
    assert workdir is not None
    assert workdir.is_dir()
    broker.stop()
    assert wait_dead(pid, 5)
    assert not workdir.exists()
    assert not broker.running


@pytest.mark.kafka
def test_the_jvm_dies_with_the_process_that_started_it(tmp_path: Path):
    script = textwrap.dedent(
        """
        import sys, time
        from driftline.broker import LocalKafkaBroker
        broker = LocalKafkaBroker().start()
        print(broker.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env={**os.environ}
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    jvm = int(line)
    assert alive(jvm)
    parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel can help
    parent.wait()
    assert wait_dead(jvm, 30), "the broker JVM outlived the process that started it"


@pytest.mark.kafka
def test_a_port_in_use_is_reported_by_number():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} on 127.0.0.1 is in use"):
            LocalKafkaBroker(port=port).start()


def test_a_missing_java_is_reported_with_what_to_install(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"Java 17 or newer is needed.*apt-get install"):
        java_executable()


def test_an_old_java_is_refused(monkeypatch, tmp_path: Path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(BrokerError, match="is version 11"):
        java_executable()


def test_missing_maven_is_reported_when_nothing_is_cached(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerError, match=r"Maven \(`mvn`\) is needed"):
        ensure_broker_jars(cache_dir=tmp_path / "empty-cache")


def test_processes_asking_for_the_jars_at_once_fetch_them_once(monkeypatch, tmp_path: Path):
    # A Maven that takes its time: whoever asks while it runs waits, then finds the jars.
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "mvn"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f"echo call >> {calls}\n"
        "sleep 1\n"
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#*=}";; esac; done\n'
        f'mkdir -p "$out" && touch "$out/kafka_2.13-{KAFKA_VERSION}.jar"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    cache = tmp_path / "cache"
    with ThreadPoolExecutor(max_workers=3) as pool:
        found = list(pool.map(lambda _: ensure_broker_jars(cache_dir=cache), range(3)))
    assert found == [cache / KAFKA_VERSION / "libs"] * 3
    assert calls.read_text().split() == ["call"]


def test_cached_jars_are_used_without_maven(monkeypatch):
    libs = ensure_broker_jars()  # fetches once if this machine has no cache yet
    monkeypatch.setenv("PATH", "/nonexistent")
    assert ensure_broker_jars() == libs
    assert (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


def test_cluster_ids_never_look_like_an_option():
    # One id in 64 would start with "-" if drawn naively; the storage tool
    # then refused it and the broker failed to start now and then.
    ids = [new_cluster_id() for _ in range(5_000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert len(set(ids)) == len(ids)
