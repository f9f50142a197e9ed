"""The ``driftline`` command."""

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

if TYPE_CHECKING:
    from driftline.client import Publisher

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

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_MODELS_TOPIC = "driftline.models"


@app.command()
def worker() -> None:
    """Run a worker: consume predictions, send alerts. Settings come from DRIFTLINE_* variables.

    Start more workers with the same DRIFTLINE_APP_ID to share the load.
    """
    from driftline.agents.worker import WorkerStartupError, run_worker
    from driftline.streams.settings import load_settings

    try:
        settings = load_settings()
    except (ValidationError, ValueError) as error:
        typer.echo(f"driftline worker: invalid settings: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        run_worker(settings)
    except WorkerStartupError as error:
        typer.echo(f"driftline worker: {error}", err=True)
        raise typer.Exit(1) from None


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
    """Start a local broker and a worker, publish drifting traffic, print alerts as they come."""
    from driftline.demo import run_demo
    from driftline.streams.broker import BrokerError

    logging.basicConfig(level=logging.WARNING)
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
    """Run a local single-node Apache Kafka broker on 127.0.0.1 until Ctrl-C."""
    from driftline.streams.broker import KAFKA_VERSION, BrokerError, LocalKafkaBroker

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


@app.command()
def simulate(
    bootstrap_servers: Annotated[
        str, typer.Option(help="Kafka bootstrap servers.")
    ] = "127.0.0.1:9092",
    topic: Annotated[str, typer.Option(help="Predictions topic.")] = "driftline.predictions",
    events: Annotated[int, typer.Option(min=1, help="Events to publish.")] = 4_000,
    shift_at: Annotated[int, typer.Option(help="Index of the first shifted event.")] = 2_000,
    shift: Annotated[float, typer.Option(help="How far x moves, in standard deviations.")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    model_id: Annotated[str, typer.Option(help="Model id of the events.")] = "demo-model",
) -> None:
    """Publish simulated predictions whose feature x shifts at --shift-at (y stays put)."""
    from driftline.client import Publisher
    from driftline.simulate import simulated_predictions

    with Publisher(bootstrap_servers, predictions_topic=topic) as publisher:
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
    bootstrap_servers: Annotated[
        str, typer.Option(help="Kafka bootstrap servers.")
    ] = DEFAULT_BOOTSTRAP_SERVERS,
    topic: Annotated[str, typer.Option(help="Model registry topic.")] = DEFAULT_MODELS_TOPIC,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka before giving up.")
    ] = 30.0,
) -> None:
    """Register every model spec in each FILE (one spec, or a list under `models:`).

    All files are checked first: if one is invalid, nothing is registered.
    A spec replaces the one registered before for the same model id and version.
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
    bootstrap_servers: Annotated[
        str, typer.Option(help="Kafka bootstrap servers.")
    ] = DEFAULT_BOOTSTRAP_SERVERS,
    topic: Annotated[str, typer.Option(help="Model registry topic.")] = DEFAULT_MODELS_TOPIC,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for Kafka before giving up.")
    ] = 30.0,
) -> None:
    """Unregister one model version: workers stop watching it and refuse its events."""
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
    """
    from driftline.schema_export import export_json_schemas

    try:
        written = export_json_schemas(directory)
    except OSError as error:
        typer.echo(f"driftline schemas export: {error}", err=True)
        raise typer.Exit(1) from None
    for path in written:
        typer.echo(f"wrote {path}")


@contextlib.contextmanager
def _publisher(
    command: str, bootstrap_servers: str, models_topic: str, timeout: float
) -> Iterator["Publisher"]:
    """A publisher to the registry topic; a Kafka failure ends the command with code 1."""
    from kafka.errors import KafkaError, KafkaTimeoutError

    from driftline.client import Publisher, PublishError

    try:
        with Publisher(
            bootstrap_servers,
            models_topic=models_topic,
            bootstrap_timeout_ms=int(timeout * 1000),
            max_block_ms=int(timeout * 1000),
        ) as publisher:
            yield publisher
    except (KafkaError, PublishError) as error:
        hint = ""
        if isinstance(error, KafkaTimeoutError):
            hint = " (is Kafka reachable there, and does the topic exist?)"
        typer.echo(
            f"driftline {command}: could not publish to {models_topic} at {bootstrap_servers}"
            f"{hint}: {error}",
            err=True,
        )
        raise typer.Exit(1) from None


def main() -> None:
    """Entry point of the ``driftline`` console script."""
    app(prog_name="driftline")
    sys.exit(0)
