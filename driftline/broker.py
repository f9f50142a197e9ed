"""A real single-node Apache Kafka broker on 127.0.0.1, for tests and the demo.

The broker's jars come from Maven Central through Maven (``kafka/pom.xml``)
and are cached; each start formats fresh KRaft storage in a temporary
directory, picks free ports, and waits until a real metadata request is
answered. The JVM is stopped with the harness, and is told by the kernel to
die with the Python process that started it, so it never outlives a test run.

>>> with LocalKafkaBroker() as broker:  # doctest: +SKIP
...     print(broker.bootstrap_servers)
127.0.0.1:41234
"""

import atexit
import base64
import contextlib
import ctypes
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Self

from driftline.broker_tls import BrokerTls, make_broker_tls, make_client_certificate

KAFKA_VERSION = "4.1.1"
"""The Apache Kafka version of the harness; docker-compose.yml uses the same."""

CACHE_ENV = "DRIFTLINE_BROKER_CACHE"
"""Environment variable naming the folder where broker jars are cached."""

MIN_JAVA = 17

INDEX_INTERVAL_BYTES = 1 << 20
"""Bytes of a partition's log between two entries of its index (Kafka's default: 4 KiB).

To find a fetch's offset, the broker reads the log's batch headers onward
from the entry before it, so over at most this many bytes; and a
partition's first entry, which creates its index files, waits until it
holds this much (see ``LocalKafkaBroker._server_properties``).
"""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecuredListener:
    """A ``SASL_SSL`` listener beside the plaintext one, for tests of secured clients.

    Each user may authenticate with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN
    (the SCRAM credentials are stored when the storage is formatted), and
    anyone with OAUTHBEARER and an unsigned token (:func:`unsecured_token`),
    over TLS with a certificate signed by a throwaway authority
    (:func:`~driftline.broker_tls.make_broker_tls`).
    """

    users: Mapping[str, str]
    """Passwords by user name."""
    client_certificates: bool = False
    """Also an ``SSL`` listener that takes only clients with a certificate the authority
    signed (:meth:`LocalKafkaBroker.client_certificate`): mutual TLS."""


SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
"""The secured listener's mechanisms of a user and password."""

TOKEN_MECHANISM = "OAUTHBEARER"
"""The secured listener's token mechanism: it takes Kafka's unsecured JSON web tokens
(``"alg": "none"``, see :func:`unsecured_token`), fit for tests only."""


def unsecured_token(subject: str, lifetime_seconds: float = 3600.0) -> str:
    """An unsigned JSON web token for ``subject``, as the secured listener's OAUTHBEARER takes.

    >>> unsecured_token("alice").count(".")
    2
    """

    def part(document: dict[str, object]) -> str:
        text = json.dumps(document, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode()

    now = time.time()
    claims = {"sub": subject, "iat": now, "exp": now + lifetime_seconds}
    return f"{part({'alg': 'none'})}.{part(claims)}."


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or reached."""


class _PortTakenError(Exception):
    """The broker could not bind a port picked as free a moment before."""


def default_cache_dir() -> Path:
    """Where broker jars are cached: ``$DRIFTLINE_BROKER_CACHE``, else a folder
    ignored by git in a source checkout, else the user's cache directory."""
    if configured := os.environ.get(CACHE_ENV):
        return Path(configured)
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "streams").is_dir():
        return checkout / ".cache" / "kafka"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "driftline" / "kafka"


def java_executable() -> str:
    """The ``java`` to run the broker with, checked to be version 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not candidate or not Path(candidate).is_file():
        raise BrokerError(
            f"Java {MIN_JAVA} or newer is needed to run the local Kafka broker, and no `java` "
            "was found on PATH or in JAVA_HOME. Install a JDK or JRE "
            f"(for example `apt-get install openjdk-{MIN_JAVA}-jre-headless`), or point "
            "JAVA_HOME at one."
        )
    result = subprocess.run(
        [candidate, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise BrokerError(
            f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA} or newer, but {candidate} is "
            f"version {major or 'unknown'}. Install a newer JDK or point JAVA_HOME at one."
        )
    return candidate


def cached_broker_jars(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path | None:
    """The folder of the broker's cached jars, or None when they are not cached yet."""
    libs = (default_cache_dir() if cache_dir is None else cache_dir) / version / "libs"
    return libs if (libs / f"kafka_2.13-{version}.jar").is_file() else None


def ensure_broker_jars(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> Path:
    """Return the folder of the broker's jars, fetching them with Maven once.

    The jars land in a scratch folder first and are moved into place only
    when Maven succeeded, so an interrupted download is never taken for a
    cached one. Processes that ask at once (test sessions run in parallel)
    take turns on a lock file: the first fetches, the others find the jars
    cached, and none replaces jars that another's broker is reading.
    """
    if (cached := cached_broker_jars(version, cache_dir)) is not None:
        return cached
    cache_dir = default_cache_dir() if cache_dir is None else cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / f".fetch-{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cached := cached_broker_jars(version, cache_dir)) is not None:
            return cached
        return _fetch_broker_jars(version, cache_dir)


def _fetch_broker_jars(version: str, cache_dir: Path) -> Path:
    """Fetch the jars with Maven into ``cache_dir`` (its caller holds the lock)."""
    libs = cache_dir / version / "libs"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            f"The Kafka {version} broker jars are not cached in {libs.parent}, and Maven "
            "(`mvn`) is needed to fetch them from Maven Central. Install Maven (for "
            "example `apt-get install maven`), or copy the jars of an Apache Kafka "
            f"{version} distribution's libs/ folder into {libs}."
        )
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as scratch:
        pom = Path(scratch) / "pom.xml"
        pom.write_bytes(resources.files("driftline").joinpath("kafka/pom.xml").read_bytes())
        command = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={Path(scratch) / 'libs'}",
        ]
        log.info("fetching Kafka %s broker jars with Maven into %s", version, libs)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(
                f"Maven could not fetch the Kafka {version} broker jars (exit code "
                f"{result.returncode}). Check that Maven Central is reachable and that "
                f"version {version} exists. Maven said:\n{(result.stdout + result.stderr)[-3000:]}"
            )
        libs.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        (Path(scratch) / "libs").rename(libs)
    return libs


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, as Kafka makes them.

    Like Kafka's own ``Uuid.randomUuid``, it never starts with ``-``, which
    the storage tool's command line would take for an option.

    >>> all(len(new_cluster_id()) == 22 and new_cluster_id()[0] != "-" for _ in range(200))
    True
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the JVM binds: a port lingering in TIME_WAIT is free to it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM this process when the process that started it dies.

    Linux ties this to the thread that started the child: start brokers from
    a thread that lives as long as they should (the main thread, in tests).
    """
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class LocalKafkaBroker:
    """A single-node KRaft Kafka broker on 127.0.0.1, started and stopped by us.

    Parameters
    ----------
    version
        Apache Kafka version; its jars are fetched with Maven and cached.
    cache_dir
        Where jars are cached (see :func:`default_cache_dir`).
    data_dir
        Folder for the broker's logs and data; a temporary one, removed on
        stop, when not given.
    port
        Port of the client listener; a free one when 0.
    heap
        The JVM's maximum heap.
    startup_timeout
        Seconds to wait for the broker to answer a metadata request.
    """

    def __init__(
        self,
        *,
        version: str = KAFKA_VERSION,
        cache_dir: Path | None = None,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        heap: str = "512m",
        startup_timeout: float = 90.0,
        secured: SecuredListener | None = None,
    ) -> None:
        self.version = version
        self.cache_dir = cache_dir
        self.data_dir = data_dir
        self.host = host
        self.port = port
        self.heap = heap
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._owns_workdir = False
        self._bound_port = 0
        self.secured = secured
        self._secured_port = 0
        self._mutual_port = 0
        self._tls: BrokerTls | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of the running broker's client listener."""
        if self._process is None:
            raise BrokerError("the broker is not running; call start() first")
        return f"{self.host}:{self._bound_port}"

    @property
    def secured_bootstrap_servers(self) -> str:
        """``host:port`` of the running broker's ``SASL_SSL`` listener."""
        if self._process is None or self.secured is None:
            raise BrokerError("the broker is not running with a secured listener")
        return f"{self.host}:{self._secured_port}"

    @property
    def mutual_tls_bootstrap_servers(self) -> str:
        """``host:port`` of the running broker's ``SSL`` listener that asks clients for a
        certificate."""
        if self._process is None or self.secured is None or not self.secured.client_certificates:
            raise BrokerError("the broker is not running with a mutual-TLS listener")
        return f"{self.host}:{self._mutual_port}"

    def client_certificate(self, name: str) -> Path:
        """A PKCS12 store of a client key and certificate the authority signed (``CN=name``;
        its password is :attr:`tls_password`; the certificate alone is ``<name>.pem`` beside)."""
        if self._tls is None or self._workdir is None:
            raise BrokerError("the broker is not running with a secured listener")
        keytool = str(Path(java_executable()).with_name("keytool"))
        return make_client_certificate(self._tls, self._workdir / "clients", keytool, name)

    @property
    def tls_password(self) -> str:
        """The password of the stores the harness made (fit for tests only)."""
        if self._tls is None:
            raise BrokerError("the broker is not running with a secured listener")
        return self._tls.password

    @property
    def ca_file(self) -> Path:
        """The PEM certificate of the authority that signed the secured listener's."""
        if self._tls is None:
            raise BrokerError("the broker is not running with a secured listener")
        return self._tls.ca_file

    @property
    def log_path(self) -> Path | None:
        """The broker's own log file, for reading when something went wrong."""
        return None if self._workdir is None else self._workdir / "logs" / "server.log"

    @property
    def pid(self) -> int | None:
        """The process id of the broker's JVM while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker's JVM is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Fetch the jars if needed, format storage, start the JVM, wait until ready."""
        if self._process is not None:
            raise BrokerError("the broker is already started")
        java = java_executable()
        libs = ensure_broker_jars(self.version, self.cache_dir)
        if self.data_dir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="driftline-kafka-"))
            self._owns_workdir = True
        else:
            self._workdir = self.data_dir
            self._workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.port else 3
        for attempt in range(1, attempts + 1):
            try:
                self._launch(java, libs)
                self._wait_until_ready()
                break
            except _PortTakenError:
                # Another process took a port between our check and the JVM's bind.
                self._stop_process()
                if attempt == attempts:
                    self.stop()
                    raise BrokerError(
                        f"port {self.port} on {self.host} is in use; stop what listens there "
                        "or pick another port (0 picks a free one)"
                        if self.port
                        else f"no free ports on {self.host} after {attempts} tries"
                    ) from None
            except BaseException:
                self.stop()
                raise
        atexit.register(self.stop)
        return self

    def _launch(self, java: str, libs: Path) -> None:
        assert self._workdir is not None
        if self.port and not _port_free(self.host, self.port):
            raise _PortTakenError
        self._bound_port = self.port or free_port(self.host)
        controller_port = free_port(self.host)
        if self.secured is not None:
            self._secured_port = free_port(self.host)
            self._mutual_port = free_port(self.host) if self.secured.client_certificates else 0
            keytool = str(Path(java).with_name("keytool"))
            self._tls = make_broker_tls(self._workdir / "tls", keytool, self.host)
        shutil.rmtree(self._workdir / "data", ignore_errors=True)  # fresh storage every start
        properties = self._workdir / "server.properties"
        properties.write_text(self._server_properties(controller_port))
        log4j = self._workdir / "log4j2.properties"
        log4j.write_bytes(
            resources.files("driftline").joinpath("kafka/log4j2.properties").read_bytes()
        )
        logs = self._workdir / "logs"
        logs.mkdir(exist_ok=True)
        jvm = [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={logs}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]
        cluster_id = new_cluster_id()
        scram = [
            f"--add-scram={mechanism}=[name={name},password={password}]"
            for name, password in (self.secured.users.items() if self.secured else ())
            for mechanism in SASL_MECHANISMS
            if mechanism.startswith("SCRAM")
        ]
        fmt = subprocess.run(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(properties),
                *scram,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if fmt.returncode != 0:
            raise BrokerError(
                f"formatting the broker's KRaft storage failed:\n{fmt.stderr[-3000:]}"
            )
        console = (logs / "console.log").open("wb")
        self._process = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(properties)],
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        console.close()

    def _server_properties(self, controller_port: int) -> str:
        """The broker's configuration: a single node on loopback, quick to start and to form
        groups (no initial rebalance delay, four offsets partitions).

        One setting is for steady latency: a partition's index entries are
        taken every :data:`INDEX_INTERVAL_BYTES`, not every 4 KiB. The broker
        creates a log segment's index files (10 MiB each, memory-mapped) when
        it first writes an entry to them, and on this kind of shared virtual
        disk, under load, that write held produce requests 127-210 ms (the
        broker's request log: local time of a produce to fresh partitions,
        against 0.2-1 ms for the others). A cluster meets it once a segment
        (1 GiB); the tests and benchmarks here create fresh topics every run,
        and met it in every run, right when the first alerts went out.
        """
        assert self._workdir is not None
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self._bound_port},"
            f"CONTROLLER://{self.host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self._bound_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._workdir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "9223372036854775807",
            "log.index.interval.bytes": str(INDEX_INTERVAL_BYTES),
        }
        if self.secured is not None:
            settings.update(self._secured_properties(controller_port))
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _secured_properties(self, controller_port: int) -> dict[str, str]:
        """The ``SASL_SSL`` listener's settings, beside the plaintext one."""
        assert self.secured is not None
        assert self._tls is not None
        plain, secured = f"{self.host}:{self._bound_port}", f"{self.host}:{self._secured_port}"
        prefix = "listener.name.sasl_ssl"
        plain_users = " ".join(
            f'user_{name}="{password}"' for name, password in self.secured.users.items()
        )
        listeners = [f"PLAINTEXT://{plain}", f"SASL_SSL://{secured}"]
        mutual: dict[str, str] = {}
        if self.secured.client_certificates:
            listeners.append(f"SSL://{self.host}:{self._mutual_port}")
            mutual = {
                "listener.name.ssl.ssl.client.auth": "required",
                "listener.name.ssl.ssl.keystore.type": "PKCS12",
                "listener.name.ssl.ssl.keystore.location": str(self._tls.keystore),
                "listener.name.ssl.ssl.keystore.password": self._tls.password,
                "listener.name.ssl.ssl.key.password": self._tls.password,
                # The broker's store holds the authority's certificate: it trusts what it signed.
                "listener.name.ssl.ssl.truststore.type": "PKCS12",
                "listener.name.ssl.ssl.truststore.location": str(self._tls.keystore),
                "listener.name.ssl.ssl.truststore.password": self._tls.password,
            }
        return mutual | {
            "listeners": ",".join([*listeners, f"CONTROLLER://{self.host}:{controller_port}"]),
            "advertised.listeners": ",".join(listeners),
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT"
            ),
            f"{prefix}.sasl.enabled.mechanisms": ",".join([*SASL_MECHANISMS, TOKEN_MECHANISM]),
            f"{prefix}.oauthbearer.sasl.jaas.config": (
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
                'unsecuredLoginStringClaim_sub="broker";'
            ),
            f"{prefix}.scram-sha-256.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{prefix}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            f"{prefix}.ssl.keystore.type": "PKCS12",
            f"{prefix}.ssl.keystore.location": str(self._tls.keystore),
            f"{prefix}.ssl.keystore.password": self._tls.password,
            f"{prefix}.ssl.key.password": self._tls.password,
        }

    def _wait_until_ready(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        # Wait for the port quietly first: a client's failed connects log errors.
        while time.monotonic() < deadline and not self._port_open():
            self._check_starting()
            time.sleep(0.2)
        while time.monotonic() < deadline:
            self._check_starting()
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers,
                    request_timeout_ms=5_000,
                    client_id="driftline-harness",
                )
                try:
                    if admin.describe_cluster().get("brokers"):
                        return
                finally:
                    admin.close()
            except (KafkaError, OSError, ValueError) as error:
                last_error = error
            time.sleep(0.5)
        raise BrokerError(
            f"the Kafka broker did not answer a metadata request within "
            f"{self.startup_timeout:.0f} s (last error: {last_error!r}):\n{self._log_tail()}"
        )

    def _check_starting(self) -> None:
        """Raise if the broker failed to start: it exited, or could not bind its ports."""
        log_tail = self._log_tail()
        if "Address already in use" in log_tail:
            raise _PortTakenError
        if not self.running:
            code = self._process.returncode if self._process else "?"
            raise BrokerError(
                f"the Kafka broker exited during start-up with code {code}:\n{log_tail}"
            )

    def _port_open(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((self.host, self._bound_port), timeout=1.0),
        ):
            return True
        return False

    def _log_tail(self, lines: int = 40) -> str:
        texts = []
        for path in (
            self.log_path,
            self.log_path.with_name("console.log") if self.log_path else None,
        ):
            if path is not None and path.is_file():
                texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(texts) or "(the broker wrote no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the JVM (SIGTERM, then SIGKILL after ``timeout``) and clean up."""
        self._stop_process(timeout)
        if self._owns_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self._owns_workdir = False
        atexit.unregister(self.stop)

    def _stop_process(self, timeout: float = 20.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
