"""The ``driftline`` command."""

import logging
import sys
import time
from typing import Annotated

import typer
from pydantic import ValidationError

app = typer.Typer(
    help="driftline: watch ML models' Kafka streams for drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


def main() -> None:
    """Entry point of the ``driftline`` console script."""
    app(prog_name="driftline")
    sys.exit(0)
