"""The ``driftline`` command."""

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

import driftline.blas  # noqa: F401  (before numpy loads: one BLAS thread)

if TYPE_CHECKING:
    from kafka import KafkaConsumer

    from driftline.agents.history import StatusHistory
    from driftline.client import Publisher
    from driftline.schemas import Alert, PerformanceReport, RetrainTrigger
    from driftline.streams.settings import Settings

app = typer.Typer(
    help="driftline: watch ML models' Kafka streams for drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="Register model versions' specs, or unregister them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_app, name="models")
schemas_app = typer.Typer(
    help="The JSON Schemas of the messages on the wire.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(schemas_app, name="schemas")
reference_app = typer.Typer(
    help="Reference profiles: what a model version's data looked like when it was trained.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(reference_app, name="reference")
alerts_app = typer.Typer(
    help="Follow the alerts and retraining triggers the workers send.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(alerts_app, name="alerts")

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_PREDICTIONS_TOPIC = "driftline.predictions"
DEFAULT_MODELS_TOPIC = "driftline.models"
DEFAULT_REFERENCES_TOPIC = "driftline.references"
DEFAULT_ALERTS_TOPIC = "driftline.alerts"
DEFAULT_RETRAIN_TRIGGERS_TOPIC = "driftline.retrain-triggers"
DEFAULT_PERFORMANCE_TOPIC = "driftline.performance"
"""The worker's defaults (:class:`~driftline.streams.settings.Settings`; a test checks they
agree), kept here so that a command that never starts a worker does not import it."""

BOOTSTRAP_ENV = "DRIFTLINE_BOOTSTRAP_SERVERS"
"""Every Kafka option of the commands reads the worker's variable for the same setting."""

BootstrapServersOption = Annotated[
    str, typer.Option(envvar=BOOTSTRAP_ENV, help="Kafka bootstrap servers.")
]
AlertsTopicOption = Annotated[
    str, typer.Option(envvar="DRIFTLINE_ALERTS_TOPIC", help="Alerts topic.")
]
TriggersTopicOption = Annotated[
    str,
    typer.Option(envvar="DRIFTLINE_RETRAIN_TRIGGERS_TOPIC", help="Retraining triggers topic."),
]
"""Options several commands take alike."""

TIME_FORMATS = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]
"""The forms of a time a command takes (ISO 8601; without a zone it is UTC)."""

LOG_FORMAT = "driftline: %(levelname)s %(name)s: %(message)s"
"""The one format of the log lines of every command but ``worker`` (whose logging is faust's)."""


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        typer.echo(f"driftline {version('driftline')}")
        raise typer.Exit()


@app.callback()
def _root(
    context: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Configure logging once for the command; a worker's logging is faust's to set up.

    The Kafka client's own log lines are left out: a command that fails on
    Kafka says so once, in its own words, with the client's error.
    """
    if context.invoked_subcommand != "worker":
        logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


@app.command()
def worker() -> None:
    """Run a worker: consume predictions, send alerts. Settings come from DRIFTLINE_* variables.

    Start more workers with the same DRIFTLINE_APP_ID to share the load.

    Example: DRIFTLINE_BOOTSTRAP_SERVERS=127.0.0.1:9092 DRIFTLINE_WEB_ENABLED=true driftline worker
    """
    from driftline.agents.worker import WorkerStartupError, run_worker

    settings = _settings_or_exit("worker")
    try:
        run_worker(settings)
    except WorkerStartupError as error:
        typer.echo(f"driftline worker: {error}", err=True)
        raise typer.Exit(1) from None


def _settings_or_exit(command: str) -> "Settings":
    """The worker's settings from the environment; or exit 2, naming each problem's variable
    and never the value given (it may be a secret)."""
    from driftline.streams.settings import load_settings

    try:
        return load_settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{_variable(problem['loc'])}{problem['msg'].removeprefix('Value error, ')}"
            for problem in error.errors(include_url=False, include_input=False)
        )
        typer.echo(f"driftline {command}: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None
    except ValueError as error:
        typer.echo(f"driftline {command}: invalid settings: {error}", err=True)
        raise typer.Exit(2) from None


def _kafka_security(command: str) -> dict[str, Any]:
    """The security options of the command's Kafka clients: the worker's, from the same
    ``DRIFTLINE_SECURITY_PROTOCOL``, ``DRIFTLINE_SASL_*`` and ``DRIFTLINE_SSL_*`` variables."""
    from driftline.streams.security import kafka_python_security

    return kafka_python_security(_settings_or_exit(command))


def _variable(location: tuple[int | str, ...]) -> str:
    """``DRIFTLINE_<SETTING>: `` for a settings error of one setting; nothing for the whole."""
    return f"DRIFTLINE_{str(location[0]).upper()}: " if location else ""


class Probe(StrEnum):
    """The worker endpoints ``driftline probe`` asks."""

    LIVEZ = "livez"
    READYZ = "readyz"


@app.command()
def probe(
    endpoint: Annotated[
        Probe, typer.Argument(help="livez (restart it when failing) or readyz.")
    ] = Probe.LIVEZ,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the answer.")] = 5.0,
) -> None:
    """Ask this machine's worker its /livez or /readyz; exit 0 when the answer is 200.

    The worker is found as its DRIFTLINE_* variables say (DRIFTLINE_WEB_PORT,
    and DRIFTLINE_WEB_TOKEN when set): a container's healthcheck, where the
    image has no HTTP client, runs `driftline probe`.

    Example: driftline probe readyz --timeout 2
    """
    import urllib.error
    import urllib.request

    settings = _settings_or_exit("probe")
    host = settings.web_host if settings.web_host not in WILDCARD_HOSTS else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    request = urllib.request.Request(f"http://{host}:{settings.web_port}/{endpoint.value}")
    if settings.web_token is not None:
        request.add_header("Authorization", f"Bearer {settings.web_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            typer.echo(response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        typer.echo(error.read().decode(errors="replace"))
        raise typer.Exit(1) from None
    except OSError as error:
        typer.echo(
            f"driftline probe: no answer from {request.full_url} ({error}); is the worker "
            "running with DRIFTLINE_WEB_ENABLED=true?",
            err=True,
        )
        raise typer.Exit(1) from None


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
"""Bind addresses of every interface: the probe asks the worker on the loopback."""


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=100, help="Prediction events to publish.")] = 6_000,
    rate: Annotated[float, typer.Option(min=1.0, help="Events per second.")] = 500.0,
    shift: Annotated[float, typer.Option(help="How far x moves, in standard deviations.")] = 3.0,
    linger: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for alerts after publishing.")
    ] = 10.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 0,
) -> None:
    """Start a local broker and a worker, publish drifting traffic, print alerts as they come.

    Example: driftline demo --events 3000 --shift 2
    """
    from driftline.broker import BrokerError
    from driftline.demo import run_demo

    try:
        alerts = run_demo(events=events, rate=rate, shift=shift, linger=linger, seed=seed)
    except BrokerError as error:
        typer.echo(f"driftline demo: {error}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(0 if alerts else 1)


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Client port; 0 picks a free one.")] = 9092,
) -> None:
    """Run a local single-node Apache Kafka broker on 127.0.0.1 until Ctrl-C.

    Example: driftline broker --port 19092
    """
    from driftline.broker import KAFKA_VERSION, BrokerError, LocalKafkaBroker

    try:
        with LocalKafkaBroker(port=port) as local:
            typer.echo(
                f"Apache Kafka {KAFKA_VERSION} ready at {local.bootstrap_servers}; Ctrl-C stops it"
            )
            while local.running:
                time.sleep(1.0)
    except BrokerError as error:
        typer.echo(f"driftline broker: {error}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def _one_of(*choices: str) -> Any:
    """An option callback that takes only these values (a choice whose type stays ``str``)."""

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is none of {', '.join(choices)}")
        return value

    return check


@app.command()
def simulate(
    bootstrap_servers: BootstrapServersOption = DEFAULT_BOOTSTRAP_SERVERS,
    topic: Annotated[
        str, typer.Option(envvar="DRIFTLINE_PREDICTIONS_TOPIC", help="Predictions topic.")
    ] = DEFAULT_PREDICTIONS_TOPIC,
    events: Annotated[int, typer.Option(min=1, help="Events to publish.")] = 4_000,
    shift_at: Annotated[int, typer.Option(help="Index of the first shifted event.")] = 2_000,
    shift: Annotated[float, typer.Option(help="How far x moves, in standard deviations.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model_id: Annotated[str, typer.Option(help="Model id of the events.")] = "demo-model",
    register: Annotated[
        bool,
        typer.Option(
            "--register",
            help="Register the simulated model's spec first: workers refuse events of a "
            "model they do not know.",
        ),
    ] = False,
    models_topic: Annotated[
        str,
        typer.Option(envvar="DRIFTLINE_MODELS_TOPIC", help="Model registry topic (--register)."),
    ] = DEFAULT_MODELS_TOPIC,
    keyed_by: Annotated[
        str,
        typer.Option(
            callback=_one_of("model_id", "event_id"),
            help="model_id or event_id: key the events by model id (one partition), or by "
            "event id, spread over every partition as a model too busy for one worker is "
            "(--register registers the spec so).",
        ),
    ] = "model_id",
) -> None:
    """Publish simulated predictions whose feature x shifts at --shift-at (y stays put).

    Example: driftline simulate --register --events 4000 --shift-at 2000
    """
    from driftline.client import Publisher
    from driftline.schemas import KeyedBy
    from driftline.simulate import simulated_model_spec, simulated_predictions

    security = _kafka_security("simulate")
    with Publisher(
        bootstrap_servers,
        predictions_topic=topic,
        models_topic=models_topic,
        keyed_by=KeyedBy(keyed_by),
        **security,
    ) as publisher:
        if register:
            spec = simulated_model_spec(model_id=model_id)
            publisher.register(spec.model_copy(update={"keyed_by": KeyedBy(keyed_by)}))
        for event in simulated_predictions(
            events, shift_at=shift_at, shift=shift, seed=seed, model_id=model_id
        ):
            publisher.publish(event)
        publisher.flush()
    typer.echo(f"published {events} events to {topic}")


@models_app.command("register")
def models_register(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="YAML (.yaml, .yml) or TOML (.toml) files of model specs.", metavar="FILE"
        ),
    ],
    bootstrap_servers: BootstrapServersOption = DEFAULT_BOOTSTRAP_SERVERS,
    topic: Annotated[
        str, typer.Option(envvar="DRIFTLINE_MODELS_TOPIC", help="Model registry topic.")
    ] = DEFAULT_MODELS_TOPIC,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka before giving up.")
    ] = 30.0,
) -> None:
    """Register every model spec in each FILE (one spec, or a list under `models:`).

    All files are checked first: if one is invalid, nothing is registered.
    A spec replaces the one registered before for the same model id and version.

    Example: driftline models register examples/churn-model.yaml
    """
    from driftline.specfiles import SpecFileError, load_spec_files

    try:
        loaded = load_spec_files(files)
    except SpecFileError as error:
        typer.echo(f"driftline models register: {error}", err=True)
        raise typer.Exit(2) from None
    with _publisher("models register", bootstrap_servers, topic, timeout) as publisher:
        for _, spec in loaded:
            publisher.register(spec)
        publisher.flush(timeout=timeout)
    for path, spec in loaded:
        typer.echo(f"registered model {spec.model_id} version {spec.model_version} from {path}")


@models_app.command("unregister")
def models_unregister(
    model_id: Annotated[str, typer.Argument(help="Model id.")],
    model_version: Annotated[str, typer.Argument(help="Model version.")],
    bootstrap_servers: BootstrapServersOption = DEFAULT_BOOTSTRAP_SERVERS,
    topic: Annotated[
        str, typer.Option(envvar="DRIFTLINE_MODELS_TOPIC", help="Model registry topic.")
    ] = DEFAULT_MODELS_TOPIC,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka before giving up.")
    ] = 30.0,
) -> None:
    """Unregister one model version: workers stop watching it and refuse its events.

    Example: driftline models unregister churn 3
    """
    with _publisher("models unregister", bootstrap_servers, topic, timeout) as publisher:
        publisher.unregister(model_id, model_version)
        publisher.flush(timeout=timeout)
    typer.echo(f"unregistered model {model_id} version {model_version}")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[
        Path,
        typer.Argument(
            help="Where to write them; created when missing.", file_okay=False, metavar="DIR"
        ),
    ],
) -> None:
    """Write the JSON Schema (draft 2020-12) of each wire message to DIR/<name>.schema.json.

    Producers in other languages can validate their messages against them.

    Example: driftline schemas export json-schemas
    """
    from driftline.schema_export import export_json_schemas

    try:
        written = export_json_schemas(directory)
    except OSError as error:
        typer.echo(f"driftline schemas export: {error}", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(f"wrote {path}")


@reference_app.command("build")
def reference_build(
    data: Annotated[
        Path, typer.Argument(help="Training data: CSV, JSON Lines (.jsonl) or Parquet.")
    ],
    spec: Annotated[Path, typer.Option(help="The model's spec file (YAML or TOML).")],
    model: Annotated[
        str | None, typer.Option(help="Model id, when the spec file holds several.")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Model version, when the spec file holds several.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the profile's JSON to this file.")
    ] = None,
    publish: Annotated[
        bool, typer.Option(help="Publish the profile for the workers to use.")
    ] = False,
    ordered: Annotated[
        bool, typer.Option(help="The rows are a stream in time order: keep their autocorrelation.")
    ] = False,
    bootstrap_servers: Annotated[
        str, typer.Option(envvar=BOOTSTRAP_ENV, help="Kafka bootstrap servers (with --publish).")
    ] = DEFAULT_BOOTSTRAP_SERVERS,
    topic: Annotated[
        str,
        typer.Option(
            envvar="DRIFTLINE_REFERENCES_TOPIC", help="References topic (with --publish)."
        ),
    ] = DEFAULT_REFERENCES_TOPIC,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka before giving up.")
    ] = 30.0,
) -> None:
    """Build a model version's reference profile from its training data.

    The profile holds small sketches (quantiles, category counts, the
    features' correlation), never rows. Workers measure drift against it;
    without one they use the version's first events.

    Example: driftline reference build training.parquet --spec spec.yaml --publish
    """
    from driftline.progress import shown_progress
    from driftline.reference_build import (
        ReferenceBuildError,
        known_rows,
        reference_build_command,
    )
    from driftline.specfiles import SpecFileError

    if output is None and not publish:
        typer.echo(
            "driftline reference build: warning: without --output FILE or --publish the "
            "profile is only checked and summed up, then dropped",
            err=True,
        )
    try:
        # On a terminal, the rows read so far and their rate; nothing when stderr is piped.
        with shown_progress(f"reading {data.name}", total=known_rows(data)) as advance:
            profile = reference_build_command(
                data, spec, output, model=model, version=version, ordered=ordered, progress=advance
            )
    except (SpecFileError, ReferenceBuildError) as error:
        typer.echo(f"driftline reference build: {error}", err=True)
        raise typer.Exit(2) from None
    kinds = [sketch.kind for sketch in profile.features.values()]
    typer.echo(
        f"reference of model {profile.model_id} version {profile.model_version}: "
        f"{profile.event_count} rows, {kinds.count('numeric')} numeric and "
        f"{kinds.count('categorical')} categorical features"
        + (f"; written to {output}" if output else "")
    )
    if publish:
        with _publisher(
            "reference build",
            bootstrap_servers,
            DEFAULT_MODELS_TOPIC,
            timeout,
            references=topic,
            target=topic,
        ) as publisher:
            publisher.register_reference(profile)
            publisher.flush(timeout=timeout)
        typer.echo(f"published to {topic}")


@app.command()
def replay(
    events: Annotated[
        Path, typer.Argument(help="Recorded prediction events, one JSON object per line.")
    ],
    spec: Annotated[
        list[Path],
        typer.Option(help="Spec file (YAML or TOML) of the events' models; repeatable."),
    ],
    reference: Annotated[
        list[Path] | None,
        typer.Option(help="Reference profile (JSON, from `reference build`); repeatable."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each alert as one line of JSON.")
    ] = False,
    dead_letters: Annotated[
        bool, typer.Option(help="Also print every event the worker would refuse, and why.")
    ] = False,
    reports: Annotated[
        bool,
        typer.Option(help="Also print the performance report of every window (as JSON)."),
    ] = False,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Recorded label events, one JSON object per line: merged in by event time, "
            "so performance is replayed too."
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="Write a report of the replay to this HTML file (charts inline)."),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            metavar="FOLDER",
            help="Also draw the report's charts as PNGs into this folder (needs the "
            "report extra: pip install 'driftline\\[report]').",
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes sharing the models (0: one per CPU); never more than the specs' "
            "models (two for one model: one screens the events, the other monitors them), "
            "and one with --report. Each is bounded as one worker is.",
        ),
    ] = 0,
) -> None:
    """Run recorded events through the worker's checks offline; print every alert it would raise.

    A summary (events processed, refused by reason, duplicates) ends the output, on stderr.
    The models are shared among processes, one per CPU unless told (a single model's
    events go through two, one after the other): the alerts and counts are those of one
    process (see driftline.replay.Replay).

    Example: driftline replay events.jsonl --spec spec.yaml --labels labels.jsonl --report out.html
    """
    from driftline.agents.history import StatusHistory
    from driftline.agents.intake import ALERTS_LOGGER, InputTopic
    from driftline.parallel_replay import processes_wanted
    from driftline.progress import shown_progress
    from driftline.replay import REPORT_BATCH_EVENTS, Replay, tune_replay_process
    from driftline.schemas import Alert, DeadLetter, RetrainTrigger
    from driftline.specfiles import SpecFileError, load_reference_files, load_spec_files

    try:
        specs = [loaded for _, loaded in load_spec_files(spec)]
        references = load_reference_files(reference or [])
    except SpecFileError as error:
        typer.echo(f"driftline replay: {error}", err=True)
        raise typer.Exit(2) from None
    # Each alert and trigger is printed here: the log's line of it would print it twice.
    logging.getLogger(ALERTS_LOGGER).setLevel(logging.ERROR)
    if png is not None and report is None:
        typer.echo("driftline replay: --png draws the report's charts: give --report too", err=True)
        raise typer.Exit(2)
    tune_replay_process()
    history = StatusHistory() if report is not None else None
    shown = contextlib.ExitStack()
    run = Replay(
        specs,
        references=references,
        history=history,
        batch_size=REPORT_BATCH_EVENTS if history is not None else None,
        progress=shown.enter_context(shown_progress(f"replaying {events.name}", unit="messages")),
        processes=processes_wanted(processes),
    )
    # Closed on the way out, whatever ends the loop: the other processes end with it.
    outputs = shown.enter_context(contextlib.closing(run.feed_file(events, labels)))
    try:
        for output in outputs:
            if isinstance(output, Alert | RetrainTrigger):
                line = _replayed_line(output, named=labels is not None)
                typer.echo(output.model_dump_json() if as_json else line)
            elif not isinstance(output, DeadLetter):
                if reports:
                    typer.echo(output.model_dump_json())
            elif dead_letters:
                typer.echo(
                    output.model_dump_json()
                    if as_json
                    else f"REFUSED {f'{output.source.topic} ' if labels else ''}line "
                    f"{output.source.offset + 1}: {output.reason.value}: {output.message}"
                )
    except BrokenPipeError:  # `driftline replay ... | head`: the reader is gone
        _stdout_to_nowhere()
        return
    except OSError as error:
        typer.echo(f"driftline replay: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        shown.close()  # the progress line ends before the summary
    counts = run.counters
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(counts.dead_letter_reasons.items()))
    typer.echo(
        f"{counts.consumed} events: {counts.processed} processed, "
        f"{counts.dead_lettered} refused{f' ({reasons})' if reasons else ''}, "
        f"{counts.duplicates} duplicates; {sum(run.intake.counters.alerts.values())} alerts",
        err=True,
    )
    if labels is not None:
        label_counts = run.intake.counters.topics[InputTopic.LABELS]
        typer.echo(
            f"{label_counts.consumed} labels: {label_counts.processed} processed, "
            f"{label_counts.waiting} waiting for their prediction, "
            f"{label_counts.dead_lettered} refused, {label_counts.duplicates} duplicates",
            err=True,
        )
    if history is not None and report is not None:
        _write_report("replay", history, report, png, title=f"driftline replay of {events.name}")


def _write_report(
    command: str,
    history: "StatusHistory",
    output: Path,
    png: Path | None,
    *,
    title: str,
    note: str = "",
) -> None:
    """Write a report's HTML (and PNGs); say where, or exit 2 on what to fix."""
    from driftline.report import ReportError, report_html, write_pngs

    try:
        output.write_text(report_html(history, title=title, note=note), encoding="utf-8")
        typer.echo(f"report written to {output}", err=True)
        if png is not None:
            written = write_pngs(history, png)
            typer.echo(f"{len(written)} PNGs written to {png}", err=True)
    except (ReportError, OSError) as error:
        typer.echo(f"driftline {command}: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def report(
    output: Annotated[Path, typer.Argument(help="The HTML file to write.")],
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=TIME_FORMATS,
            metavar="TIME",
            help="Only messages with event times from this one on (ISO 8601; UTC if no zone).",
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=TIME_FORMATS,
            metavar="TIME",
            help="Only messages with event times before this one (ISO 8601; UTC if no zone).",
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            metavar="FOLDER",
            help="Also draw the charts as PNGs into this folder (needs the report extra: "
            "pip install 'driftline\\[report]').",
        ),
    ] = None,
    bootstrap_servers: BootstrapServersOption = DEFAULT_BOOTSTRAP_SERVERS,
    alerts_topic: AlertsTopicOption = DEFAULT_ALERTS_TOPIC,
    triggers_topic: TriggersTopicOption = DEFAULT_RETRAIN_TRIGGERS_TOPIC,
    performance_topic: Annotated[
        str, typer.Option(envvar="DRIFTLINE_PERFORMANCE_TOPIC", help="Performance topic.")
    ] = DEFAULT_PERFORMANCE_TOPIC,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka before giving up.")
    ] = 30.0,
) -> None:
    """Write a report of what a running system sent: alerts, triggers, performance windows.

    Everything the three topics hold is read once, from the oldest message
    kept to the newest (no consumer group is joined), and kept when its event
    time is in [--since, --until). Drift charts show each subject's statistic
    at its alerts' changes only: for the statistic batch by batch, replay the
    events (driftline replay ... --report).

    Example: driftline report out.html --since 2026-03-01 --until 2026-03-08 --png charts
    """
    from kafka.errors import KafkaError

    from driftline.report import history_from_outputs
    from driftline.schemas import Alert, PerformanceReport, RetrainTrigger
    from driftline.topic_reader import read_to_end

    schemas: dict[str, type[Alert] | type[RetrainTrigger] | type[PerformanceReport]] = {
        alerts_topic: Alert,
        triggers_topic: RetrainTrigger,
        performance_topic: PerformanceReport,
    }
    since, until = (_utc(moment) for moment in (since, until))
    skipped = 0

    def messages() -> Iterator[Alert | RetrainTrigger | PerformanceReport]:
        nonlocal skipped
        for record in read_to_end(
            bootstrap_servers,
            list(schemas),
            timeout=timeout,
            security=_kafka_security("report"),
        ):
            message = _tail_parse(schemas[record.topic], record, "report")
            if message is None:
                skipped += 1
            else:
                yield message

    try:
        history = history_from_outputs(messages(), since=since, until=until)
    except (KafkaError, TimeoutError) as error:
        typer.echo(
            f"driftline report: cannot read the output topics at {bootstrap_servers} (check "
            f"--bootstrap-servers or DRIFTLINE_BOOTSTRAP_SERVERS): {error}",
            err=True,
        )
        raise typer.Exit(2) from None
    window = f"event times {since or 'any'} to {until or 'any'}"
    kept = sum(len(v.marks) for v in history.versions.values())
    typer.echo(
        f"driftline report: {kept} alert changes kept ({window}); {skipped} messages that "
        "were no valid output skipped",
        err=True,
    )
    _write_report(
        "report",
        history,
        output,
        png,
        title="driftline report",
        note=f"From {alerts_topic}, {triggers_topic} and {performance_topic}, {window}. Drift "
        "charts show each subject's statistic at its alerts' changes.",
    )


def _utc(moment: datetime | None) -> datetime | None:
    """A time given without a zone, taken as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@alerts_app.command("tail")
def alerts_tail(
    bootstrap_servers: BootstrapServersOption = DEFAULT_BOOTSTRAP_SERVERS,
    alerts_topic: AlertsTopicOption = DEFAULT_ALERTS_TOPIC,
    triggers_topic: TriggersTopicOption = DEFAULT_RETRAIN_TRIGGERS_TOPIC,
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Start at the oldest message kept, not at the next new one."
        ),
    ] = False,
    model: Annotated[
        list[str] | None,
        typer.Option(metavar="MODEL_ID", help="Only this model's messages; repeatable."),
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Stop after printing N messages.")
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1, metavar="SECONDS", help="Stop after this long without a message to print."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each message as published: one JSON per line.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka at start before giving up.")
    ] = 10.0,
) -> None:
    """Print alerts and retraining triggers as they arrive, one line each, until Ctrl-C.

    Without --from-beginning only messages sent after the command started are
    shown (and every message of a topic created since). Messages that are no
    alert or trigger are skipped with a warning on stderr. No consumer group is
    joined, so tailing never takes messages away from anyone.

    Example: driftline alerts tail --model churn --from-beginning --max-messages 10
    """
    from kafka.errors import KafkaError

    if alerts_topic == triggers_topic:
        typer.echo("driftline alerts tail: alerts and triggers need topics of their own", err=True)
        raise typer.Exit(2)
    consumer = None
    try:
        security = _kafka_security("alerts tail")
        try:
            consumer, waiting = _tail_consumer(
                bootstrap_servers, [alerts_topic, triggers_topic], from_beginning, timeout, security
            )
        except KafkaError as error:
            typer.echo(
                f"driftline alerts tail: cannot reach Kafka at {bootstrap_servers} within "
                f"{timeout:g} s (check --bootstrap-servers or DRIFTLINE_BOOTSTRAP_SERVERS): "
                f"{error}",
                err=True,
            )
            raise typer.Exit(2) from None
        for topic in waiting:
            typer.echo(
                f"driftline alerts tail: topic {topic} does not exist yet; "
                "its messages will show once it does",
                err=True,
            )
        typer.echo(
            f"driftline alerts tail: following {alerts_topic} and {triggers_topic} at "
            f"{bootstrap_servers} ({'from the beginning' if from_beginning else 'new messages'}"
            "; Ctrl-C stops)",
            err=True,
        )
        _tail(
            consumer,
            alerts_topic=alerts_topic,
            triggers_topic=triggers_topic,
            from_beginning=from_beginning,
            models=set(model or ()),
            max_messages=max_messages,
            idle_timeout=idle_timeout,
            as_json=as_json,
        )
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `driftline alerts tail | head`: the reader is gone
        _stdout_to_nowhere()
    except KafkaError as error:
        typer.echo(f"driftline alerts tail: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close()


def _stdout_to_nowhere() -> None:
    """Point standard output at the null device once its reader is gone, so that Python does
    not fail to flush it at exit."""
    with contextlib.suppress(Exception):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _tail_consumer(
    bootstrap_servers: str,
    topics: list[str],
    from_beginning: bool,
    timeout: float,
    security: dict[str, Any],
) -> tuple["KafkaConsumer", list[str]]:
    """A consumer of ``topics`` in no group, positioned where the tail starts; and the
    topics that do not exist yet."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        allow_auto_create_topics=False,  # a tail must never create a topic
        metadata_max_age_ms=5_000,  # notice topics created after the start soon
        bootstrap_timeout_ms=int(timeout * 1000),
        **security,
    )
    try:
        consumer.subscribe(topics)
        existing = {
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.partitions_for_topic(topic) or ()
        }
        deadline = time.monotonic() + timeout
        while not existing <= consumer.assignment() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Resolve each partition's starting offset now, so "new" means sent after this point.
        for partition in existing & consumer.assignment():
            consumer.position(partition, timeout_ms=int(timeout * 1000))
    except BaseException:
        consumer.close()
        raise
    return consumer, [t for t in topics if not any(p.topic == t for p in existing)]


def _tail(
    consumer: "KafkaConsumer",
    *,
    alerts_topic: str,
    triggers_topic: str,
    from_beginning: bool,
    models: set[str],
    max_messages: int | None,
    idle_timeout: float | None,
    as_json: bool,
) -> None:
    """Print what ``consumer`` receives until ``max_messages`` or ``idle_timeout``."""
    from driftline.schemas import Alert, RetrainTrigger
    from driftline.schemas.lines import output_line

    schemas: dict[str, type[Alert] | type[RetrainTrigger]] = {
        alerts_topic: Alert,
        triggers_topic: RetrainTrigger,
    }
    known = consumer.assignment()
    printed = 0
    last = time.monotonic()
    with _stop_on_interrupt() as stop:
        while not stop.is_set():  # Ctrl-C: stop after this poll
            wait = 1.0
            if idle_timeout is not None:
                wait = min(wait, max(0.0, last + idle_timeout - time.monotonic()))
            batches = consumer.poll(timeout_ms=int(wait * 1000))
            created = consumer.assignment() - known
            if created:  # partitions of topics created since the start: all messages are new
                known |= created
                if not from_beginning:
                    consumer.seek_to_beginning(*created)
                    batches = {tp: rs for tp, rs in batches.items() if tp not in created}
            for records in batches.values():
                for record in records:
                    message = _tail_parse(schemas[record.topic], record)
                    if not isinstance(message, Alert | RetrainTrigger) or (
                        models and message.model_id not in models
                    ):
                        continue
                    typer.echo(_tail_json(record.value) if as_json else output_line(message))
                    printed += 1
                    last = time.monotonic()
                    if max_messages is not None and printed >= max_messages:
                        return
            if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                return


@contextlib.contextmanager
def _stop_on_interrupt() -> Iterator[threading.Event]:
    """An event Ctrl-C sets, instead of interrupting whatever runs; a second Ctrl-C interrupts.

    The tail polls at most a second at a time and stops when it is set, so
    the interrupt never lands inside the Kafka client, which may not close
    after one (a test saw the process stay alive after Ctrl-C, once). Only
    the main thread can take signals: elsewhere the event is never set.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum: int, frame: Any) -> None:
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, interrupted)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def _tail_parse(
    schema: "type[Alert] | type[RetrainTrigger] | type[PerformanceReport]",
    record: Any,
    command: str = "alerts tail",
) -> "Alert | RetrainTrigger | PerformanceReport | None":
    """The record's message, or None (and a warning) when it is not one."""
    try:
        return schema.model_validate_json(record.value or b"")
    except ValidationError as error:
        typer.echo(
            f"driftline {command}: skipped a message at {record.topic}[{record.partition}]"
            f"@{record.offset} that is no valid {schema.__name__} "
            f"({error.error_count()} error(s), first: {_first_error(error)})",
            err=True,
        )
        return None


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _tail_json(value: bytes) -> str:
    """The message as published, on one line (a multi-line JSON text is compacted)."""
    text = value.decode("utf-8")
    if "\n" in text or "\r" in text:
        text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    return text


def _replayed_line(output: "Alert | RetrainTrigger", *, named: bool = False) -> str:
    """The line of an alert or trigger of replay: an alert's event named by its line, and by
    its file when ``named`` (with --labels, a line of either file)."""
    from driftline.schemas import Alert
    from driftline.schemas.lines import output_line

    where = None
    if isinstance(output, Alert) and output.source is not None:
        where = f"{f'{output.source.topic} ' if named else ''}line {output.source.offset + 1}"
    return output_line(output, where)


@contextlib.contextmanager
def _publisher(
    command: str,
    bootstrap_servers: str,
    models_topic: str,
    timeout: float,
    *,
    references: str = DEFAULT_REFERENCES_TOPIC,
    target: str | None = None,
) -> Iterator["Publisher"]:
    """A publisher to the registry topic (or ``target``); a Kafka failure ends the command."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    target = target or models_topic
    from driftline.client import Publisher, PublishError
    from driftline.streams.settings import REFERENCE_MAX_BYTES

    security = _kafka_security(command)
    try:
        with Publisher(
            bootstrap_servers,
            models_topic=models_topic,
            references_topic=references,
            bootstrap_timeout_ms=int(timeout * 1000),
            max_block_ms=int(timeout * 1000),
            max_request_size=REFERENCE_MAX_BYTES,
            **security,
        ) as publisher:
            yield publisher
    except (KafkaError, PublishError) as error:
        hint = ""
        if isinstance(error, KafkaTimeoutError):
            hint = " (is Kafka reachable there, and does the topic exist?)"
        typer.echo(
            f"driftline {command}: could not publish to {target} at {bootstrap_servers}"
            f"{hint}: {error}",
            err=True,
        )
        raise typer.Exit(1) from None


def main() -> None:
    """Entry point of the ``driftline`` console script."""
    app(prog_name="driftline")
    sys.exit(0)
