"""Worker settings, read once from ``DRIFTLINE_*`` environment variables.

Typed, documented where declared and frozen after start-up: a setting that
changes while a worker runs would make its alerts impossible to explain.
A ``DRIFTLINE_`` variable that names no setting is refused, because a typo
in a deployment file must not silently fall back to a default.
"""

import difflib
import ipaddress
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DRIFTLINE_"

HARNESS_ENVIRONMENT = frozenset(
    {
        "DRIFTLINE_BROKER_CACHE",
        "DRIFTLINE_CHROMIUM",
        "DRIFTLINE_REQUIRE_BROWSER",
        "DRIFTLINE_TEST_ARTIFACTS",
    }
)
"""``DRIFTLINE_`` variables read by the local broker harness and the test suite, not the
worker (which refuses any other it does not know)."""

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
"""The security protocols that talk to Kafka over TLS."""

REFERENCE_MAX_BYTES = 16 * 1024 * 1024
"""Largest reference profile message: about 20 KB per numeric feature, so up to ~800 of them
(the references topic is created to take it)."""

WEB_TOKEN_MIN_CHARS = 16
"""The shortest bearer token taken: a short one could be guessed."""

DEAD_LETTER_TEXT_BYTES = 64 * 1024
"""Room in a dead letter beyond its message's bytes: its reason, field path, key and source."""

BROKER_DEFAULT_MAX_BYTES = 1 << 20
"""About the largest message a Kafka topic takes unless configured (``message.max.bytes``,
1 MiB and 12 bytes): no topic a worker creates takes less."""

INPUT_FRAMING_BYTES = 64 * 1024
"""Room in an input topic's limit beyond ``max_message_bytes``: Kafka counts a message's key,
headers and record-batch framing against the topic's ``max.message.bytes`` as well."""


class Settings(BaseSettings):
    """Everything a ``driftline worker`` reads from its environment.

    >>> Settings(bootstrap_servers="127.0.0.1:9092").broker_url
    'kafka://127.0.0.1:9092'
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, comma-separated host:port pairs.",
        pattern=r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client of driftline connects (the worker, its registry "
        "reader, topic creation, the commands): PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (SASL, over TLS).",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None,
        description="SASL mechanism, with a SASL protocol: PLAIN, SCRAM-SHA-256, "
        "SCRAM-SHA-512 (a user and password) or OAUTHBEARER (a token).",
    )
    sasl_username: str | None = Field(default=None, min_length=1, description="SASL user.")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password. Never logged, nor echoed in an error."
    )
    sasl_oauth_token_file: Path | None = Field(
        default=None,
        description="With OAUTHBEARER: the file holding the current bearer token, read again "
        "at each authentication (whatever renews the token keeps it fresh).",
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the authorities to trust for the brokers' certificates "
        "(the system's when not given).",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="PEM file of this client's certificate, for mutual TLS."
    )
    ssl_keyfile: Path | None = Field(
        default=None,
        description="PEM file of this client certificate's private key, for mutual TLS; goes "
        "with DRIFTLINE_SSL_CERTFILE (both or neither).",
    )
    ssl_key_password: SecretStr | None = Field(
        default=None, description="Password of DRIFTLINE_SSL_KEYFILE, when it has one."
    )
    require_tls: bool = Field(
        default=False,
        description="Refuse to start unless DRIFTLINE_SECURITY_PROTOCOL is SSL or SASL_SSL: "
        "a production worker must never talk to Kafka in the clear.",
    )
    app_id: str = Field(
        default="driftline",
        min_length=1,
        description="Name of the worker group: workers with one app id share the work "
        "(it is their Kafka consumer group).",
    )
    predictions_topic: str = Field(
        default="driftline.predictions", min_length=1, description="Topic of prediction events."
    )
    features_topic: str = Field(
        default="driftline.features",
        min_length=1,
        description="Topic of feature events (inputs published apart from their prediction).",
    )
    labels_topic: str = Field(
        default="driftline.labels", min_length=1, description="Topic of ground-truth label events."
    )
    models_topic: str = Field(
        default="driftline.models",
        min_length=1,
        description="Compacted topic of model specs, keyed by model id and version.",
    )
    references_topic: str = Field(
        default="driftline.references",
        min_length=1,
        description="Compacted topic of reference profiles, keyed by model id and version.",
    )
    alerts_topic: str = Field(
        default="driftline.alerts", min_length=1, description="Topic alerts are sent to."
    )
    retrain_triggers_topic: str = Field(
        default="driftline.retrain-triggers",
        min_length=1,
        description="Topic retraining triggers are sent to.",
    )
    performance_topic: str = Field(
        default="driftline.performance",
        min_length=1,
        description="Topic per-window performance reports (estimated and realized) are sent to.",
    )
    dead_letters_topic: str = Field(
        default="driftline.dead-letters",
        min_length=1,
        description="Topic every input event that could not be used is sent to, with why.",
    )
    summaries_topic: str = Field(
        default="driftline.summaries",
        min_length=1,
        description="Internal topic of batch summaries of models keyed by event id: each "
        "worker sends its partitions' summaries there, keyed by model version, and the worker "
        "owning a version's partition of it tests them.",
    )
    topic_partitions: PositiveInt = Field(
        default=4,
        description="Partitions of the topics the worker creates; the most workers that "
        "can share one app id.",
    )
    topic_replication_factor: PositiveInt = Field(
        default=1, description="Replication factor of the topics the worker creates."
    )
    max_message_bytes: PositiveInt = Field(
        default=1_048_576, description="Larger input messages are dead-lettered as too_large."
    )
    quality_alpha: float = Field(
        default=1e-4,
        gt=0,
        lt=0.5,
        description="Chance that a data-quality check alerts in one window when the feature "
        "is exactly at its tolerated rate: the false-alarm rate per check and window.",
    )
    duplicate_window_seconds: PositiveFloat = Field(
        default=3600.0,
        description="Event ids are remembered for this long in event time, per model: a "
        "repeat within it is a duplicate; an event older than it is dead-lettered as late_event.",
    )
    max_remembered_event_ids: PositiveInt = Field(
        default=100_000,
        description="Event ids remembered per model and input topic; beyond it the oldest are "
        "forgotten and the duplicate window shrinks to what is remembered.",
    )
    label_retention_seconds: PositiveFloat = Field(
        default=7 * 24 * 3600.0,
        description="How long, in event time, a prediction waits for its label and a label for "
        "its prediction; a label still alone after it is dead-lettered as orphan_label.",
    )
    max_pending_labels: PositiveInt = Field(
        default=1_000_000,
        description="Predictions and labels one worker keeps waiting for their partner, and "
        "labelled predictions it remembers until the retention passes them (so that a second "
        "label is refused), together; past it the oldest stop waiting early (a prediction as "
        "unlabelled, a label as an orphan; a remembered one is forgotten), a thousandth of the "
        "cap at a time. Each waiting prediction takes about 350 bytes of the worker's memory "
        "(~350 MB at the cap), a remembered one about 30.",
    )
    held_predictions_before_first_label: NonNegativeInt = Field(
        default=10_000,
        description="Predictions held in memory per model that has had no label yet (they "
        "wait in the label join only from its first label on); past it the oldest count as "
        "never labelled, and a label for one of them later becomes an orphan.",
    )
    max_held_predictions: NonNegativeInt = Field(
        default=100_000,
        description="Predictions held in memory over all models that have had no label yet; "
        "each such model holds at most an equal share of it (if less than "
        "DRIFTLINE_HELD_PREDICTIONS_BEFORE_FIRST_LABEL), so memory stays bounded with many "
        "models that never get labels.",
    )
    label_lead_seconds: NonNegativeFloat = Field(
        default=5.0,
        description="How far ahead of the predictions read, in Kafka time, labels are read "
        "while predictions have a backlog; labels further ahead wait to be read, so that a "
        "backlog of labels does not pile up in the label join.",
    )
    max_future_seconds: PositiveFloat = Field(
        default=600.0,
        description="How far an event time may lie ahead of the time Kafka recorded for its "
        "message; events further ahead are dead-lettered as future_event_time.",
    )
    max_models: PositiveInt = Field(
        default=10_000,
        description="Model versions one worker watches; events of further ones are "
        "dead-lettered as model_limit.",
    )
    max_features_per_model: PositiveInt = Field(
        default=1_000,
        description="Features watched for drift per model version, in the spec's order; "
        "later ones get data-quality checks only.",
    )
    data_dir: Path = Field(
        default=Path(".driftline"), description="Where the worker keeps its local state."
    )
    table_store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description="Where a worker keeps its tables (the label join, each model version's "
        "state): 'rocksdb' on disk under data_dir, so that a worker restarted on the same "
        "machine reads only what its changelogs got since; 'memory' reads the changelogs whole "
        "at each start, and keeps each key's partition beside it (~40 bytes a key more). "
        "Workers sharing a data_dir share it partition by partition.",
    )
    web_enabled: bool = Field(
        default=False,
        description="Serve the web endpoints: the status page (/), the counts as JSON "
        "(/status), Prometheus metrics (/metrics) and the probes (/livez, /readyz); faust's "
        "own views (tables, router, statistics) are always off.",
    )
    web_host: str = Field(
        default="127.0.0.1",
        description="Address the web server binds; any but a loopback address needs "
        "DRIFTLINE_WEB_TOKEN.",
    )
    web_port: int = Field(default=6066, ge=1, le=65535, description="Port of the web server.")
    web_token: SecretStr | None = Field(
        default=None,
        description="Token every web endpoint then requires (Authorization: Bearer <token>, "
        "or as the password of basic authentication, as a browser sends it); at least 16 "
        "characters. Never logged, nor echoed in an error.",
    )
    stall_seconds: PositiveFloat = Field(
        default=120.0,
        description="/livez fails when an assigned input partition has had messages waiting "
        "(or a batch in flight) this long without a batch processed; it also fails while the "
        "worker is stopping or crashed.",
    )
    startup_timeout_seconds: PositiveFloat = Field(
        default=30.0,
        description="How long the worker waits for Kafka at start-up before it gives up.",
    )
    commit_interval_seconds: PositiveFloat = Field(
        default=2.8,
        description="How often processed offsets are committed; on shutdown they always are.",
    )
    state_save_interval_seconds: float = Field(
        default=2.0,
        ge=0.0,
        le=60.0,
        description="How often the model versions' state and the label join are saved to "
        "their tables (0: after every batch). A batch's offsets become committable only once "
        "a save after it, so a crash reads this much more again, skipped as duplicates; a "
        "version's record costs 2-4 ms a save, whatever the traffic.",
    )
    session_timeout_seconds: PositiveFloat = Field(
        default=15.0,
        ge=6.0,
        le=300.0,
        description="How long the Kafka group waits for a silent worker before it hands the "
        "worker's partitions to the others: after a crash (kill -9, a lost machine), its "
        "replacement or the other workers take over after about this long. Heartbeats go every "
        "third of it. Brokers refuse values below their group.min.session.timeout.ms (6 s by "
        "default).",
    )
    batch_max_events: PositiveInt = Field(
        default=2_000,
        le=100_000,
        description="Most messages an agent takes in one batch: its alerts are sent when it "
        "is done, and its offsets become committable at the next state save. "
        "A batch is shared by the model versions of the agent's partitions; a version's part "
        "should hold dozens of events. 2,000 keeps a batch of ten versions near 0.1 s; raise "
        "it for workers that watch hundreds. It also bounds the records one poll of the consumer "
        "brings into memory.",
    )
    batch_target_seconds: PositiveFloat = Field(
        default=0.1,
        le=60.0,
        description="About how long processing one batch should take: when batches take "
        "longer, an agent takes fewer messages at a time (down to a twentieth of "
        "DRIFTLINE_BATCH_MAX_EVENTS), learning the time per message from the batches it "
        "processed. A batch's alerts go out when it is done, so behind a backlog this bounds "
        "how long the alerts of its first events wait.",
    )
    batch_max_wait_seconds: PositiveFloat = Field(
        default=0.05,
        le=10.0,
        description="Longest an agent waits for a batch to fill, from when it asks for one with "
        "messages waiting, or else from the first message's arrival: the most a quiet stream's "
        "events wait before they are processed.",
    )
    send_timeout_seconds: PositiveFloat = Field(
        default=30.0,
        description="How long one try to send a message to Kafka may take before it is retried.",
    )
    shutdown_timeout_seconds: PositiveFloat = Field(
        default=8.0,
        description="Once the worker begins to stop (after SIGTERM or SIGINT, or by itself "
        "after a crash), it exits at the latest after this long.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Worker log level."
    )

    @field_validator("web_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < WEB_TOKEN_MIN_CHARS:
            raise ValueError(f"a token needs at least {WEB_TOKEN_MIN_CHARS} characters")
        return token

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Self:
        protocol = self.security_protocol
        sasl = protocol.startswith("SASL")
        oauth = self.sasl_mechanism == "OAUTHBEARER"
        given: dict[str, object] = {"DRIFTLINE_SASL_MECHANISM": self.sasl_mechanism}
        password = {
            "DRIFTLINE_SASL_USERNAME": self.sasl_username,
            "DRIFTLINE_SASL_PASSWORD": self.sasl_password,
        }
        token = {"DRIFTLINE_SASL_OAUTH_TOKEN_FILE": self.sasl_oauth_token_file}
        needed, wrong = (token, password) if oauth else (password, token)
        given |= needed
        mixed = [name for name, value in wrong.items() if value is not None]
        if mixed and (sasl or self.sasl_mechanism is not None):
            raise ValueError(
                f"{', '.join(mixed)} set, and DRIFTLINE_SASL_MECHANISM={self.sasl_mechanism} "
                "takes " + ("a token file" if oauth else "a user and password")
            )
        given |= {name: value for name, value in wrong.items() if value is not None}
        if self.require_tls and protocol not in TLS_PROTOCOLS:
            raise ValueError(
                f"DRIFTLINE_REQUIRE_TLS is set, and DRIFTLINE_SECURITY_PROTOCOL={protocol} "
                "talks to Kafka in the clear: use SSL or SASL_SSL"
            )
        missing = [name for name, value in given.items() if value is None]
        present = [name for name, value in given.items() if value is not None]
        if sasl and missing:
            raise ValueError(f"DRIFTLINE_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        if not sasl and present:
            raise ValueError(
                f"{', '.join(present)} set, and DRIFTLINE_SECURITY_PROTOCOL={protocol} uses no "
                "SASL: set it to SASL_SSL (or SASL_PLAINTEXT)"
            )
        tls = {
            "DRIFTLINE_SSL_CAFILE": self.ssl_cafile,
            "DRIFTLINE_SSL_CERTFILE": self.ssl_certfile,
            "DRIFTLINE_SSL_KEYFILE": self.ssl_keyfile,
            "DRIFTLINE_SSL_KEY_PASSWORD": self.ssl_key_password,
        }
        present = [name for name, value in tls.items() if value is not None]
        if protocol not in TLS_PROTOCOLS and present:
            raise ValueError(
                f"{', '.join(present)} set, and DRIFTLINE_SECURITY_PROTOCOL={protocol} uses no "
                "TLS: set it to SSL or SASL_SSL"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("DRIFTLINE_SSL_CERTFILE and DRIFTLINE_SSL_KEYFILE go together")
        return self

    @model_validator(mode="after")
    def _token_beyond_this_machine(self) -> Self:
        if self.web_enabled and self.web_token is None and not is_loopback(self.web_host):
            raise ValueError(
                f"DRIFTLINE_WEB_HOST={self.web_host} serves the web endpoints beyond this "
                f"machine: set DRIFTLINE_WEB_TOKEN to a secret of {WEB_TOKEN_MIN_CHARS} or more "
                "characters, which every request must then carry as 'Authorization: Bearer "
                "<token>'"
            )
        return self

    @property
    def broker_url(self) -> str:
        """The bootstrap servers in faust's URL form."""
        return ";".join(f"kafka://{server}" for server in self.bootstrap_servers.split(","))

    @property
    def input_topics(self) -> list[str]:
        """The topics a worker consumes: events, labels, the two registry topics and the
        summaries of models keyed by event id."""
        return [
            self.predictions_topic,
            self.features_topic,
            self.labels_topic,
            self.models_topic,
            self.references_topic,
            self.summaries_topic,
        ]

    @property
    def bootstrap_server_list(self) -> list[str]:
        """The bootstrap servers as a list, as kafka-python takes them."""
        return self.bootstrap_servers.split(",")

    @property
    def dead_letter_max_bytes(self) -> int:
        """The largest dead letter a worker sends: what its producer and dead-letters topic take.

        A dead letter carries its message base64-encoded (a third larger),
        so one of a message near ``max_message_bytes`` is over the broker's
        default limit for a topic (1 MiB) and would be refused, and lost. A
        dead letter carries at most ``max_message_bytes`` of value and key,
        and a few kilobytes of text besides (see
        :func:`~driftline.streams.deadletters.dead_letter`), so twice that,
        with room for the text, takes every one.

        >>> Settings().dead_letter_max_bytes
        2162688
        """
        return max(2 * self.max_message_bytes, BROKER_DEFAULT_MAX_BYTES) + DEAD_LETTER_TEXT_BYTES

    @property
    def input_topic_max_bytes(self) -> int:
        """The largest message an input topic takes: what the worker creates them to take.

        The broker refuses a message over its topic's limit to its producer
        (1 MiB unless configured): the worker never sees it, so it is neither
        processed nor dead-lettered. A topic left at the broker's default
        would then refuse valid events the worker takes when
        ``max_message_bytes`` is raised past 1 MiB. So every input topic takes
        a value of ``max_message_bytes`` with its key and Kafka's framing (a
        value a little over it still reaches the worker, and is dead-lettered
        as too large), and never less than the broker's default.

        >>> Settings().input_topic_max_bytes
        1114112
        >>> Settings(max_message_bytes=4 << 20).input_topic_max_bytes
        4259840
        """
        return max(self.max_message_bytes, BROKER_DEFAULT_MAX_BYTES) + INPUT_FRAMING_BYTES


def is_loopback(host: str) -> bool:
    """Whether a web server bound to ``host`` is reachable from this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost")
    (True, True, True)
    >>> is_loopback("0.0.0.0"), is_loopback("worker-1.internal")
    (False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def environment_names() -> dict[str, str]:
    """Map each environment variable the worker reads to its setting's name."""
    return {f"{ENV_PREFIX}{name.upper()}": name for name in Settings.model_fields}


SECRET_FILE_SUFFIX = "_FILE"


def secret_file_names() -> dict[str, str]:
    """Map each ``..._FILE`` variable to the secret setting it reads from a file.

    A secret (a :class:`~pydantic.SecretStr` setting) may come from a file,
    as orchestrators mount them, instead of the environment:

    >>> secret_file_names()["DRIFTLINE_WEB_TOKEN_FILE"]
    'web_token'
    """
    return {
        f"{ENV_PREFIX}{name.upper()}{SECRET_FILE_SUFFIX}": name
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or SecretStr in typing.get_args(field.annotation)
    }


def read_secret_files(environ: Mapping[str, str] | None = None) -> dict[str, SecretStr]:
    """The secrets named by ``..._FILE`` variables, each file's text without its final line
    break, by setting. Raises ``ValueError`` naming the variable (never the content) when a
    file cannot be read, or a secret is given both ways."""
    environ = os.environ if environ is None else environ
    secrets = {}
    for variable, name in secret_file_names().items():
        path = environ.get(variable)
        if path is None:
            continue
        direct = variable.removesuffix(SECRET_FILE_SUFFIX)
        if direct in environ:
            raise ValueError(f"{direct} and {variable} are both set: set one of them")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
            raise ValueError(f"{variable}={path}: cannot read the secret ({reason})") from None
        secrets[name] = SecretStr(text.removesuffix("\n").removesuffix("\r"))
    return secrets


def to_environment(settings: Settings) -> dict[str, str]:
    """The environment variables that make a worker read exactly these settings.

    >>> to_environment(Settings(topic_partitions=2))["DRIFTLINE_TOPIC_PARTITIONS"]
    '2'
    """
    values = settings.model_dump(mode="json")
    environment = {}
    for env_name, field in environment_names().items():
        value = getattr(settings, field)
        if value is None:  # the default: left out
            continue
        if isinstance(value, SecretStr):
            environment[env_name] = value.get_secret_value()
        else:
            environment[env_name] = str(values[field])
    return environment


def unknown_environment_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Name each ``DRIFTLINE_`` variable that is no setting, with a suggestion.

    >>> unknown_environment_variables({"DRIFTLINE_BOOTSTRAP_SERVER": "kafka:9092"})
    ['DRIFTLINE_BOOTSTRAP_SERVER (did you mean DRIFTLINE_BOOTSTRAP_SERVERS?)']
    """
    environ = os.environ if environ is None else environ
    known = environment_names().keys() | secret_file_names().keys() | HARNESS_ENVIRONMENT
    problems = []
    for name in sorted(environ):
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
            problems.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return problems


def load_settings() -> Settings:
    """Read the settings from the environment, refusing unknown ``DRIFTLINE_`` variables;
    a secret may come from the file its ``..._FILE`` variable names (:func:`read_secret_files`).

    Raises ``ValueError`` naming each unknown variable or unreadable secret
    file, and pydantic's ``ValidationError`` naming each invalid setting.
    """
    unknown = unknown_environment_variables()
    if unknown:
        raise ValueError(
            "unknown DRIFTLINE_ environment variables: "
            + ", ".join(unknown)
            + ". Settings are: "
            + ", ".join(environment_names())
        )
    return Settings(**read_secret_files())  # type: ignore[arg-type]
