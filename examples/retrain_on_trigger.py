"""Retrain a model when driftline says so: run a command for each retraining trigger.

    python examples/retrain_on_trigger.py --bootstrap-servers 127.0.0.1:9092 \\
        --state retrain-state.json -- python train.py

Reads the retraining triggers topic and, for each ``RetrainTrigger``, runs the
command given after ``--`` with these environment variables added:

    RETRAIN_MODEL_ID          the model id
    RETRAIN_MODEL_VERSION     the model version that should be retrained
    RETRAIN_START_EVENT_TIME  where the training window starts, in event time
                              (ISO 8601, as in the trigger; empty without a window)
    RETRAIN_START_POSITIONS   where it starts on Kafka: a JSON list of
                              {"topic", "partition", "offset"} (``[]`` without a window)
    RETRAIN_IDEMPOTENCY_KEY   the trigger's idempotency key
    RETRAIN_TRIGGER_ID        the trigger's id
    RETRAIN_TRIGGER           the whole trigger, as JSON (its reasons, for instance)

(They are not named ``DRIFTLINE_*``: a driftline worker refuses ``DRIFTLINE_``
variables it does not know, and the command may well start one.)

Guarantees, and how they are kept:

* **At most once per idempotency key, even across restarts.** Two triggers
  with one key ask for the same retraining (a replay, or two workers seeing
  the same change). Each key handled is written to the ``--state`` file
  *before* its command starts, so neither a duplicate trigger, nor a restart
  after a crash in the middle of a run, runs it again. The price: a run
  that was interrupted, or failed, is not retried by itself; the state file
  says which (``"status"``), and deleting its key there makes the next
  delivery of the trigger run it again.
* **Offsets are committed only after the command finished,** so a trigger
  whose command never got to run (the consumer died before) is delivered
  again on restart: no trigger is lost.
* **Only triggers are acted on.** Alerts live on their own topic, which this
  consumer does not read; a message on the triggers topic that is no
  trigger (an alert sent there by mistake, say) is logged and skipped.

One consumer group (``--group-id``) shares the topic's partitions between its
members, but each member keeps its own state file: run one instance, or give
them a shared file system and a lock, for the at-most-once promise to hold.

``--max-triggers`` and ``--idle-timeout`` make it stop by itself (for tests
and scripts); otherwise it runs until Ctrl-C.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from driftline.schemas import RetrainTrigger
from driftline.streams.settings import Settings

log = logging.getLogger("retrain_on_trigger")

DEFAULT_BOOTSTRAP_SERVERS = os.environ.get(
    "DRIFTLINE_BOOTSTRAP_SERVERS", Settings.model_fields["bootstrap_servers"].default
)
DEFAULT_TRIGGERS_TOPIC = os.environ.get(
    "DRIFTLINE_RETRAIN_TRIGGERS_TOPIC", Settings.model_fields["retrain_triggers_topic"].default
)


class State:
    """The idempotency keys handled so far, kept in a small JSON file.

    ``{"handled": {key: {"status": ..., "trigger_id": ..., ...}}}``; the file
    is replaced atomically on every change, so a crash never leaves half of it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handled: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.handled = json.loads(path.read_text())["handled"]

    def __contains__(self, key: str) -> bool:
        return key in self.handled

    def record(self, key: str, **entry: Any) -> None:
        self.handled[key] = {**self.handled.get(key, {}), **entry}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary file next to the state, flush it to disk, then rename
        # it over the old one: readers see the old state or the new, never a mix.
        with tempfile.NamedTemporaryFile(
            "w", dir=self.path.parent, prefix=f".{self.path.name}.", delete=False
        ) as file:
            json.dump({"handled": self.handled}, file, indent=2, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(file.name, self.path)


def trigger_environment(trigger: RetrainTrigger) -> dict[str, str]:
    """The variables that tell the retraining command what to retrain, and from where."""
    wire = trigger.model_dump(mode="json")  # datetimes exactly as on the wire
    window = wire["training_window"] or {"start_event_time": "", "start_positions": []}
    return {
        "RETRAIN_MODEL_ID": trigger.model_id,
        "RETRAIN_MODEL_VERSION": trigger.model_version,
        "RETRAIN_START_EVENT_TIME": window["start_event_time"],
        "RETRAIN_START_POSITIONS": json.dumps(window["start_positions"]),
        "RETRAIN_IDEMPOTENCY_KEY": trigger.idempotency_key,
        "RETRAIN_TRIGGER_ID": trigger.trigger_id,
        "RETRAIN_TRIGGER": json.dumps(wire),
    }


def handle(trigger: RetrainTrigger, command: list[str], state: State) -> None:
    """Run ``command`` for ``trigger``, unless its idempotency key was handled before."""
    key = trigger.idempotency_key
    if key in state:
        log.info("already handled %s (%s); skipped", key, state.handled[key].get("status"))
        return
    # Recorded before the command starts: whatever happens next, it never runs twice.
    state.record(key, status="started", trigger_id=trigger.trigger_id, started=_now())
    log.info(
        "retraining model %s v%s for %s: %s",
        trigger.model_id,
        trigger.model_version,
        key,
        " ".join(command),
    )
    try:
        result = subprocess.run(command, env={**os.environ, **trigger_environment(trigger)})
    except OSError as error:  # the command could not be started at all
        state.record(key, status="failed", error=str(error), finished=_now())
        log.error("could not run %s: %s", command[0], error)
        return
    except KeyboardInterrupt:
        state.record(key, status="interrupted", finished=_now())
        raise
    status = "succeeded" if result.returncode == 0 else "failed"
    state.record(key, status=status, exit_code=result.returncode, finished=_now())
    log.log(
        logging.INFO if status == "succeeded" else logging.ERROR,
        "retraining for %s %s (exit code %d)",
        key,
        status,
        result.returncode,
    )


def run(args: argparse.Namespace, command: list[str]) -> int:
    state = State(args.state)
    consumer = KafkaConsumer(
        args.triggers_topic,
        bootstrap_servers=args.bootstrap_servers.split(","),
        group_id=args.group_id,
        # Commit by hand, each trigger once its command finished (see commit below).
        enable_auto_commit=False,
        # A group that never committed starts at the oldest trigger kept, so a
        # trigger sent before the first start is not lost.
        auto_offset_reset="earliest",
        # One trigger at a time: nothing is fetched ahead while a command runs...
        max_poll_records=1,
        # ...and a long retraining run does not get this consumer thrown out of
        # its group (heartbeats go on in the background meanwhile).
        max_poll_interval_ms=24 * 3600 * 1000,
        allow_auto_create_topics=False,
        bootstrap_timeout_ms=int(args.timeout * 1000),
    )
    log.info("waiting for retraining triggers on %s", args.triggers_topic)
    seen = 0
    last = time.monotonic()
    try:
        while args.max_triggers is None or seen < args.max_triggers:
            if args.idle_timeout is not None and time.monotonic() - last >= args.idle_timeout:
                log.info("no trigger for %g s; stopping", args.idle_timeout)
                break
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    last = time.monotonic()
                    seen += handle_record(record, command, state)
                    commit(consumer, record)
    finally:
        consumer.close()
    return 0


def handle_record(record: Any, command: list[str], state: State) -> int:
    """Act on one message of the triggers topic; 1 if it was a trigger, else 0."""
    try:
        trigger = RetrainTrigger.model_validate_json(record.value or b"")
    except ValidationError:
        log.warning(
            "%s[%d]@%d is no retraining trigger; skipped",
            record.topic,
            record.partition,
            record.offset,
        )
        return 0
    handle(trigger, command, state)
    return 1


def commit(consumer: KafkaConsumer, record: Any) -> None:
    """Commit past ``record``: the group will not be given it again."""
    try:
        consumer.commit(
            {TopicPartition(record.topic, record.partition): OffsetAndMetadata(record.offset + 1)}
        )
    except CommitFailedError as error:
        # The partition moved to another member meanwhile: it will be delivered
        # there (or here) again, and the state file keeps it from running twice.
        log.warning("could not commit past %s[%d]: %s", record.topic, record.partition, error)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def parse_arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options before ``--``, and the command after it."""
    parser = argparse.ArgumentParser(
        description="Run a retraining command once per driftline retraining trigger.",
        usage="%(prog)s [options] -- COMMAND [ARGUMENT ...]",
    )
    parser.add_argument("--bootstrap-servers", default=DEFAULT_BOOTSTRAP_SERVERS)
    parser.add_argument("--triggers-topic", default=DEFAULT_TRIGGERS_TOPIC)
    parser.add_argument("--group-id", default="driftline-retrain", help="Kafka consumer group.")
    parser.add_argument(
        "--state",
        type=Path,
        default=Path("retrain-state.json"),
        help="File of the idempotency keys handled so far (default: %(default)s).",
    )
    parser.add_argument("--max-triggers", type=int, help="Stop after this many triggers.")
    parser.add_argument(
        "--idle-timeout", type=float, help="Stop after this many seconds without a message."
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="Seconds to wait for Kafka at start."
    )
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        parser.error("give the retraining command after --")
    return args, command


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its connection chatter is INFO
    args, command = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        return run(args, command)
    except KafkaError as error:
        log.error("Kafka at %s: %s", args.bootstrap_servers, error)
        return 2
    except KeyboardInterrupt:
        log.info("interrupted; stopping")
        return 0


if __name__ == "__main__":
    sys.exit(main())
