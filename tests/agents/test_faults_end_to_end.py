"""Crashes and moving partitions change nothing a user sees, nor the state a worker keeps.

Real workers, as subprocesses against the local broker, are compared with
the oracle: a replay of the same messages, in the order the workers
processed them, in one process (:class:`~driftline.replay.Replay`).

- A classifier's 50,000 predictions, with a drift halfway and every label
  published well after its prediction, go through a worker killed (SIGKILL)
  five times at seeded points, each time replaced by a new worker in the same
  consumer group. The final state of the version, read back from the
  ``version-state`` changelog, is the oracle's, field by field; the alerts
  and triggers sent are the oracle's (by ``(alert_id, status)``, by
  idempotency key, and byte for byte): a crash only sends some again, with
  their ids. So are the performance reports.
- Five models spread over four partitions: a second worker joins mid-stream,
  takes partitions with the state of their models, and leaves (SIGTERM)
  later, handing them back. One model drifts while the second worker holds
  it, and resolves once it is back. Every alert and trigger is sent once, as
  the oracle sends it, and the state of every model is the oracle's.

The worker reads predictions and labels in two agents, and the performance
monitor's findings depend on how labels and predictions interleave. So the
first test publishes a stage of predictions, waits until they are processed,
then publishes the labels due by then: the worker sees them in the order
they were published, and the oracle is fed that order.
"""

import logging
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.partitioner.default import murmur2
from kafka_helpers import (
    free_port,
    group_assignments,
    read_all,
    wait_for_worker,
    wait_until_caught_up,
)

from driftline.agents.intake import ALERTS_LOGGER, InputMessage, InputTopic, Intake
from driftline.agents.tables import VERSION_STATE_TABLE
from driftline.agents.version_state import SavedVersion, VersionStates, state_key
from driftline.monitors.positions import Position
from driftline.replay import Replay
from driftline.schemas import (
    Alert,
    AlertPolicy,
    DriftPolicy,
    FeatureKind,
    FeatureSpec,
    LabelEvent,
    ModelSpec,
    PerformanceReport,
    PredictionEvent,
    RetrainTrigger,
    TaskType,
)
from driftline.simulate import simulated_classifier_spec, simulated_classifier_traffic
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT_SECONDS = 6.0
"""The least a broker allows by default: a killed worker's partitions move on after it."""

NEVER_COMMITS = 3_600.0
"""A commit interval no test outlives: a worker killed with it committed no offset, so its
replacement is handed again everything it had processed."""

Event = PredictionEvent | LabelEvent
Sent = Alert | RetrainTrigger | PerformanceReport


# What was sent, and how it compares with the oracle.


def canonical(message: Sent | dict[str, Any]) -> bytes:
    """A message as comparable bytes: its JSON, keys sorted."""
    data = message if isinstance(message, dict) else message.model_dump(mode="json")
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def sent_by_workers(settings: Settings) -> list[Sent]:
    """Every alert, trigger and performance report on the output topics, repeats included."""
    servers = settings.bootstrap_servers
    sent: list[Sent] = [
        Alert.model_validate_json(value or b"")
        for value in read_all(servers, settings.alerts_topic)
    ]
    sent += [
        RetrainTrigger.model_validate_json(value or b"")
        for value in read_all(servers, settings.retrain_triggers_topic)
    ]
    sent += [
        PerformanceReport.model_validate_json(value or b"")
        for value in read_all(servers, settings.performance_topic)
    ]
    return sent


def alerts_and_triggers(messages: Iterable[Sent]) -> list[Sent]:
    """The alerts and triggers among messages (no reports)."""
    return [m for m in messages if isinstance(m, Alert | RetrainTrigger)]


def alert_keys(messages: Iterable[Sent]) -> set[tuple[str, str]]:
    """``(alert_id, status)`` of each alert message: what a consumer keys alerts on."""
    return {(m.alert_id, m.status.value) for m in messages if isinstance(m, Alert)}


def trigger_keys(messages: Iterable[Sent]) -> set[str]:
    """The idempotency key of each retraining trigger: what a consumer acts on once."""
    return {m.idempotency_key for m in messages if isinstance(m, RetrainTrigger)}


def repeats(messages: Iterable[Sent]) -> Counter[bytes]:
    """The messages sent more than once, with how many times."""
    counts = Counter(canonical(message) for message in messages)
    return Counter({message: count for message, count in counts.items() if count > 1})


def oracle_outputs(
    specs: Sequence[ModelSpec], settings: Settings, messages: Iterable[InputMessage]
) -> tuple[list[Sent], Intake]:
    """What one process sends for these messages, in this order, and its intake (its state).

    It takes the workers' settings: the label join's retention and bounds, the
    duplicate window and the checks' budgets decide outputs.
    """
    replay = Replay(list(specs), settings=settings)
    alert_log = logging.getLogger(ALERTS_LOGGER)
    alert_log.disabled = True  # a line per alert: the workers' logs have them
    try:
        outputs = [
            output
            for output in replay.feed_messages(messages)
            if isinstance(output, Alert | RetrainTrigger | PerformanceReport)
        ]
    finally:
        alert_log.disabled = False
    return outputs, replay.intake


def assert_sent_as_the_oracle(sent: list[Sent], oracle: list[Sent]) -> None:
    """Each message sent is the oracle's, and each of the oracle's is sent: by alert id and
    status, by trigger idempotency key, and byte for byte once repeats are dropped."""
    assert repeats(oracle) == Counter(), "the oracle itself repeats a message"
    assert alert_keys(sent) == alert_keys(oracle)
    assert trigger_keys(sent) == trigger_keys(oracle)
    unknown = {canonical(m) for m in sent} - {canonical(m) for m in oracle}
    missing = {canonical(m) for m in oracle} - {canonical(m) for m in sent}
    assert (unknown, missing) == (set(), set()), mismatches(unknown, missing, oracle)


def identity(message: dict[str, Any]) -> tuple[Any, ...]:
    """What names a message (its id, and for an alert its status and event; for a report its
    stage), so that a message sent can be set beside the oracle's of the same name."""
    if "alert_id" in message:
        return ("alert", message["alert_id"], message["status"], message["event_id"])
    if "idempotency_key" in message:
        return ("trigger", message["idempotency_key"])
    return ("report", message["report_id"], message["stage"])


def mismatches(unknown: set[bytes], missing: set[bytes], oracle: Iterable[Sent]) -> str:
    """Each message sent that the oracle does not send, beside the oracle's of the same name
    (the fields that differ), and the oracle's messages never sent."""
    named = {identity(m): m for m in (orjson.loads(canonical(m)) for m in oracle)}
    lines = []
    for message in sorted(map(orjson.loads, unknown), key=lambda m: str(identity(m))):
        name = identity(message)
        expected = named.get(name)
        if expected is None:
            lines.append(f"sent, not by the oracle: {name}")
            continue
        fields = {
            field: (message.get(field), expected.get(field))
            for field in sorted(set(message) | set(expected))
            if message.get(field) != expected.get(field)
        }
        also = "sent too" if canonical(expected) not in missing else "never sent"
        lines.append(f"sent as {name} (the oracle's: {also}), (sent, oracle's) differ in {fields}")
    sent_names = {identity(orjson.loads(m)) for m in unknown}
    lines += [
        f"the oracle's, never sent: {identity(m)}"
        for m in map(orjson.loads, missing)
        if identity(m) not in sent_names
    ]
    return "\n".join(lines)


# The state a worker saved, read back from its changelog.


class SavedStates:
    """The ``version-state`` table as the workers of a group left it, followed as they write:
    the latest record of each key in its changelog, read on from where it was last read."""

    def __init__(self, settings: Settings) -> None:
        self.topic = f"{settings.app_id}-{VERSION_STATE_TABLE}-changelog"
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.store: dict[str, bytes] = {}
        self._partitions: list[TopicPartition] = []

    def read(self) -> dict[str, bytes]:
        """The latest record of each key, the changelog read to where it ended when asked."""
        if not self._partitions:
            found = self.consumer.partitions_for_topic(self.topic)
            if not found:
                return self.store  # no worker created the table yet
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            self.consumer.assign(self._partitions)
            self.consumer.seek_to_beginning()
        ends = self.consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + 60
        while any(self.consumer.position(tp) < end for tp, end in ends.items()):
            assert time.monotonic() < deadline, f"{self.topic} could not be read to its end"
            for records in self.consumer.poll(timeout_ms=300).values():
                for record in records:
                    name = (record.key or b"").decode("utf-8")
                    if record.value is None:
                        self.store.pop(name, None)
                    else:
                        self.store[name] = record.value
        return self.store

    def fences(self, model: str) -> tuple[int, int]:
        """How far the version's latest record reaches: the offsets after the last prediction
        and the last label it reflects (a model's messages are on one partition each)."""
        raw = self.read().get(state_key(model, "1"))
        if raw is None:
            return 0, 0
        record = orjson.loads(raw)
        return (
            max((offset for _, _, offset in record["fence"]), default=0),
            max((offset for _, _, offset in record["label_fence"]), default=0),
        )

    def close(self) -> None:
        self.consumer.close()


def saved_store(settings: Settings) -> dict[str, bytes]:
    """The ``version-state`` table as the workers left it: the latest record of each key
    in its changelog (compacted, it may hold older ones too)."""
    states = SavedStates(settings)
    try:
        return dict(states.read())
    finally:
        states.close()


def plain(state: Any) -> Any:
    """A state as JSON reads it back (numbers as JSON has them, tuples as lists)."""
    return orjson.loads(orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY))


def version_parts(
    saved: SavedVersion | None, intake: Intake, spec: ModelSpec
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each part of a version's state, as the worker saved it and as the oracle holds it.

    The drift monitor is compared with its reference profile (the warm-up's,
    saved in a record of its own), so the warm-up too must have survived.
    """
    assert saved is not None, f"no saved state of model {spec.model_id}"
    key = (spec.model_id, spec.model_version)
    life, decider = intake.books.book_for(spec)
    performance = intake.labels.monitors.get(key)
    worker = {
        "monitor": None if saved.monitor is None else saved.monitor.to_state(),
        "performance": None if saved.performance is None else saved.performance.to_state(),
        "lifecycle": saved.lifecycle,
        "retraining": saved.retraining,
    }
    oracle = {
        "monitor": intake.monitors[key].to_state(),
        "performance": None if performance is None else performance.to_state(),
        "lifecycle": life.to_state(),
        "retraining": decider.to_state(),
    }
    return plain(worker), plain(oracle)


def differing(worker: dict[str, Any], oracle: dict[str, Any]) -> list[str]:
    """Where two states differ: ``part.field`` for each top-level field of each part."""
    found = []
    for part in oracle:
        mine, theirs = worker.get(part), oracle[part]
        if isinstance(mine, dict) and isinstance(theirs, dict):
            found += [
                f"{part}.{name}"
                for name in sorted(set(mine) | set(theirs))
                if mine.get(name) != theirs.get(name)
            ]
        elif mine != theirs:
            found.append(part)
    return found


def assert_state_is_the_oracles(
    settings: Settings,
    specs: Sequence[ModelSpec],
    oracle: Intake,
    published: Sequence[InputMessage],
) -> None:
    """The latest saved state of each version is the oracle's, part by part and field by
    field, and it reflects every message published of its model (its fences)."""
    states = VersionStates(saved_store(settings))
    for spec in specs:
        saved = states.read(spec, None)
        worker, expected = version_parts(saved, oracle, spec)
        assert differing(worker, expected) == [], spec.model_id
        assert worker == expected
        assert saved is not None
        assert saved.fence == fence_of(published, InputTopic.PREDICTIONS, spec.model_id)
        assert saved.label_fence == fence_of(published, InputTopic.LABELS, spec.model_id)


def fence_of(
    messages: Iterable[InputMessage], topic: InputTopic, model: str
) -> dict[tuple[str, int], int]:
    """Per topic and partition, the offset after the last message of a model on an input."""
    fence: dict[tuple[str, int], int] = {}
    for message in messages:
        if message.topic is topic and message.key == model.encode():
            place = (message.source.topic, message.source.partition)
            fence[place] = max(fence.get(place, 0), message.source.offset + 1)
    return fence


# Publishing, with each message's place, for the oracle.


def publish(
    producer: KafkaProducer, settings: Settings, events: Sequence[Event]
) -> list[InputMessage]:
    """Send events keyed by model id, predictions and labels to their topics, in order; the
    messages as the worker consumes them (where they landed), for the oracle."""
    sent = []
    for event in events:
        topic = InputTopic.LABELS if isinstance(event, LabelEvent) else InputTopic.PREDICTIONS
        name = settings.labels_topic if topic is InputTopic.LABELS else settings.predictions_topic
        key, value = event.model_id.encode(), event.model_dump_json().encode()
        sent.append((topic, key, value, producer.send(name, key=key, value=value)))
    producer.flush()
    messages = []
    for topic, key, value, future in sent:
        landed = future.get(timeout=30)
        position = Position(landed.topic, landed.partition, landed.offset)
        messages.append(InputMessage(topic, value, key, position))
    return messages


def register(producer: KafkaProducer, settings: Settings, specs: Sequence[ModelSpec]) -> None:
    """Register the specs, before any event of theirs is published."""
    for spec in specs:
        producer.send(
            settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
        ).get(timeout=30)


# 1. Killed five times: a classifier with a drift and delayed labels.

MODEL = "faults"
PREDICTIONS, SHIFT_AT = 50_000, 25_000
LABEL_DELAY = 1_000
"""Predictions between one and its label in the traffic (labels are published later still:
after the stage of predictions they fall in)."""
STAGE = 2_500
"""Predictions published at a time; the labels due by their end follow once they are done."""
KILLS = 5
KILL_SEED = 20260
KILL_MARGIN = 600
"""Kill points lie this far into their stage at least (more than a batch): the worker is in
the middle of the stage, its latest work not yet saved, when it is killed."""
BATCH_EVENTS = 500
"""Batches of the killed workers: a stage takes several, so a kill lands within one."""


def staged_traffic() -> list[tuple[list[Event], list[Event]]]:
    """The classifier's traffic in stages: each stage's predictions, then the labels the
    traffic published by their end (each ``LABEL_DELAY`` or more predictions late).

    The worker reads predictions and labels on two topics, in two agents: a
    label published while predictions wait could be joined before or after
    any of them. Published a stage at a time, and the labels only once the
    stage's predictions are processed, every label is processed after the
    predictions before it and before those after it, as in the oracle.
    """
    stages: list[tuple[list[Event], list[Event]]] = []
    predictions: list[Event] = []
    labels: list[Event] = []
    for event in simulated_classifier_traffic(
        PREDICTIONS, shift_at=SHIFT_AT, label_delay=LABEL_DELAY, model_id=MODEL, seed=4
    ):
        if isinstance(event, LabelEvent):
            labels.append(event)
            continue
        if len(predictions) == STAGE:
            stages.append((predictions, labels))
            predictions, labels = [], []
        predictions.append(event)
    stages.append((predictions, labels))
    return stages


def kill_points(stages: int) -> dict[int, int]:
    """Per stage to be killed in, the prediction count at which to kill (seeded).

    Never in the first stage: before a model's first label its predictions
    are held in memory only, and a restart loses them (as documented).
    """
    rng = random.Random(KILL_SEED)
    chosen = sorted(rng.sample(range(1, stages), KILLS))
    return {stage: stage * STAGE + rng.randint(KILL_MARGIN, STAGE - 100) for stage in chosen}


def progress(report: dict[str, Any], model: str = MODEL) -> tuple[int, int]:
    """Predictions and labelled predictions the version has counted, restored ones included:
    where the group is in the stream, whichever worker answers."""
    for entry in report.get("performance") or []:
        if entry["model_id"] == model:
            return int(entry["predictions"]), int(entry["labelled"])
    return 0, 0


def reached(predictions: int, labelled: int = 0) -> Callable[[dict[str, Any]], bool]:
    """Whether a worker's ``/status`` shows the version this far in the stream."""

    def done(report: dict[str, Any]) -> bool:
        counted, joined = progress(report)
        return counted >= predictions and joined >= labelled

    return done


def wait_for_saved_labels(saved: SavedStates, worker: WorkerProcess, labels: int) -> None:
    """Wait until the version's saved state reflects the first ``labels`` labels.

    A crash replays what the saved state does not reflect, on both topics at
    once: labels still to be replayed when the next predictions are published
    could be joined before or after any of them (nothing holds predictions
    back behind labels), so the next predictions wait for the labels' state.
    """
    deadline = time.monotonic() + 60
    while saved.fences(MODEL)[1] < labels:
        assert worker.running, worker.log_text()
        assert time.monotonic() < deadline, f"labels never saved: {saved.fences(MODEL)}"
        time.sleep(0.1)


def restored_lines(worker: WorkerProcess) -> list[str]:
    """The worker's log lines of versions read back from their saved state."""
    return [line for line in worker.log_text().splitlines() if "restored from its saved" in line]


@dataclass(frozen=True)
class Kill:
    """Where a worker was killed: what the group had counted, and what was saved by then."""

    point: int
    counted: int
    saved: int


@dataclass
class KilledRun:
    """What went through the workers killed one after the other, and what they said."""

    published: list[InputMessage] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    """The last worker's ``/status``, once it had counted every message."""


def run_killed_workers(base: Settings, tmp_path: Path) -> KilledRun:
    """The staged traffic through a worker killed at each seeded point and replaced by a
    new one in the same group (the last one stopped as usual, once everything is counted)."""
    stages = staged_traffic()
    kills = kill_points(len(stages))
    producer = KafkaProducer(bootstrap_servers=base.bootstrap_servers, acks="all")
    register(producer, base, [simulated_classifier_spec(model_id=MODEL)])
    saved = SavedStates(base)
    run = KilledRun()

    def start() -> tuple[WorkerProcess, Settings]:
        number = len(run.workers)
        settings = base.model_copy(
            update={
                "web_port": free_port(),
                "data_dir": tmp_path / f"worker-{number}",
                # Only the last one is not killed: it commits as usual.
                "commit_interval_seconds": (
                    base.commit_interval_seconds if number == KILLS else NEVER_COMMITS
                ),
            }
        )
        run.workers.append(WorkerProcess(settings, tmp_path / f"worker-{number}.log").start())
        return run.workers[-1], settings

    predicted = labelled = 0
    worker, settings = start()
    try:
        for number, (predictions, labels) in enumerate(stages):
            run.published += publish(producer, base, predictions)
            predicted += len(predictions)
            point = kills.get(number)
            if point is not None:
                report = wait_for_worker(settings.web_port, worker, reached(point), interval=0.02)
                assert worker.kill() == -9
                run.kills.append(Kill(point, progress(report)[0], saved.fences(MODEL)[0]))
                worker, settings = start()
            wait_for_worker(settings.web_port, worker, reached(predicted))
            run.published += publish(producer, base, labels)
            labelled += len(labels)
            wait_for_worker(settings.web_port, worker, reached(predicted, labelled))
            wait_for_saved_labels(saved, worker, labelled)
        run.report = wait_for_worker(settings.web_port, worker, bool)
        assert worker.stop() == 0, worker.log_text()
    finally:
        producer.close()
        saved.close()
        for each in run.workers:
            each.stop()
    return run


@pytest.mark.timeout(420)
def test_a_worker_killed_five_times_keeps_the_oracles_state_and_sends_the_oracles_alerts(
    worker_settings: Settings, tmp_path: Path
) -> None:
    spec = simulated_classifier_spec(model_id=MODEL)
    base = worker_settings.model_copy(
        update={
            "web_enabled": True,
            "session_timeout_seconds": SESSION_TIMEOUT_SECONDS,
            "batch_max_events": BATCH_EVENTS,
        }
    )
    ensure_topics(base)
    run = run_killed_workers(base, tmp_path)
    oracle, intake = oracle_outputs([spec], base, run.published)
    sent = sent_by_workers(base)
    for kill in run.kills:
        print(kill)
    print(f"sent {len(sent)} messages, the oracle {len(oracle)}; repeated: {len(repeats(sent))}")

    # Killed mid-stage, the workers had done work not yet saved: the next did it again.
    assert len(run.kills) == KILLS
    assert any(kill.counted > kill.saved for kill in run.kills), run.kills
    for replacement in run.workers[1:]:  # each took over from the saved state
        assert restored_lines(replacement), replacement.log_text()
    assert progress(run.report) == (PREDICTIONS, PREDICTIONS)
    for topic in ("predictions", "labels"):
        counts = run.report["topics"][topic]
        assert counts["dead_lettered"] == 0, counts
        assert counts["consumed"] == counts["processed"] + counts["duplicates"], counts

    assert any(isinstance(m, Alert) and m.kind.value == "performance" for m in oracle)
    assert any(isinstance(m, Alert) and m.feature == "x" for m in oracle)
    assert trigger_keys(oracle)
    assert_sent_as_the_oracle(alerts_and_triggers(sent), alerts_and_triggers(oracle))
    assert_state_is_the_oracles(base, [spec], intake, run.published)

    # The performance reports too: a window's report sent again after a crash says what
    # it said the first time.
    assert_sent_as_the_oracle(sent, oracle)


# 2. A second worker joins, then leaves: five models over four partitions.

MODELS = 5
EVENTS_PER_MODEL = 6_000
PART = 2_000
"""Events per model published before the second worker joins, while it is in the group,
and after it left."""
DRIFT_FROM, DRIFT_TO = 2_300, 3_700
"""The drift of the one model that drifts: it begins once the second worker holds the model,
and ends early enough for the alert to resolve after the model came back."""
RESOLVE_AFTER = 800
FEATURES = ["x", "y"]
START = datetime(2026, 3, 1, tzinfo=UTC)


def model_ids(partitions: int) -> list[str]:
    """MODELS model ids, one on each partition at least (as Kafka's partitioner places keys)."""
    by_partition: dict[int, str] = {}
    spare: list[str] = []
    index = 0
    while len(by_partition) < partitions or len(by_partition) + len(spare) < MODELS:
        model = f"moving-{index}"
        place = partition_of(model, partitions)
        if place in by_partition:
            spare.append(model)
        else:
            by_partition[place] = model
        index += 1
    return sorted([*by_partition.values(), *spare][:MODELS])


def partition_of(model: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a model id's key."""
    return int(murmur2(model.encode()) & 0x7FFFFFFF) % partitions


def moving_spec(model: str) -> ModelSpec:
    return ModelSpec(
        model_id=model,
        model_version="1",
        task=TaskType.REGRESSION,
        features=[FeatureSpec(name=name, kind=FeatureKind.NUMERIC) for name in FEATURES],
        drift=DriftPolicy(warmup_events=1_000),
        alerts=AlertPolicy(resolve_after_events=RESOLVE_AFTER),
    )


def model_rows(models: Sequence[str]) -> dict[str, np.ndarray]:
    """Each model's feature values, N(0, 1), seeded per model."""
    return {
        model: np.random.default_rng(30 + number).normal(size=(EVENTS_PER_MODEL, len(FEATURES)))
        for number, model in enumerate(models)
    }


def interleaved(rows: dict[str, np.ndarray], start: int, end: int) -> list[Event]:
    """Events ``start`` to ``end`` of every model, taking turns."""
    return [
        PredictionEvent(
            model_id=model,
            model_version="1",
            event_id=f"{model}-{index}",
            event_time=START + timedelta(seconds=index),
            features=dict(zip(FEATURES, values[index].tolist(), strict=True)),
            prediction=float(values[index].sum()),
        )
        for index in range(start, end)
        for model, values in rows.items()
    ]


def member_id(worker: WorkerProcess) -> str | None:
    """The member id the worker's consumer got when it last joined its group (from its log)."""
    joined = re.findall(r"Joined group .* with member_id (\S+)", worker.log_text())
    return joined[-1] if joined else None


def partitions_of(settings: Settings, worker: WorkerProcess) -> set[int]:
    """The input partitions the worker holds, once its group is stable (none before)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        description = admin.describe_groups([settings.app_id])[settings.app_id]
    finally:
        admin.close()
    if description["group_state"] != "Stable":
        return set()
    return {
        partition
        for member in description["members"]
        if member["member_id"] == member_id(worker)
        for assigned in member["member_assignment"]["assigned_partitions"]
        if assigned["topic"] == settings.predictions_topic
        for partition in assigned["partitions"]
    }


def wait_for_partitions(settings: Settings, worker: WorkerProcess, others: int) -> set[int]:
    """The partitions a worker holds once it holds some, and the other members the rest."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.running, worker.log_text()
        try:
            members = group_assignments(
                settings.bootstrap_servers, settings.app_id, settings.predictions_topic
            )
            held = partitions_of(settings, worker)
        except KafkaError:  # the coordinator is busy with the rebalance
            members, held = [], set()
        if held and len(members) == others + 1 and all(members):
            return held
        time.sleep(0.5)
    raise AssertionError(f"the worker never held partitions beside {others} others")


def restored(worker: WorkerProcess, model: str, events: int) -> bool:
    """Whether the worker read the model's monitor back from the table, ``events`` in."""
    line = f"model {model} version 1: monitor restored from its saved state ({events} events in)"
    return line in worker.log_text()


def alert_lines(worker: WorkerProcess, model: str, status: str) -> list[str]:
    """The worker's log lines of alert messages of one status for one model."""
    marker = f" ALERT {status} "
    return [
        line
        for line in worker.log_text().splitlines()
        if marker in line and f" model {model} v1" in line
    ]


@dataclass
class JoinAndLeave:
    """What went through two workers, the second joining and leaving mid-stream."""

    first: WorkerProcess
    second: WorkerProcess
    published: list[InputMessage] = field(default_factory=list)
    drifting: str = ""
    """The model that drifts: one of those whose partitions the second worker took."""
    second_report: dict[str, Any] = field(default_factory=dict)
    """The second worker's ``/status`` before it left."""


def run_join_and_leave(
    base: Settings, tmp_path: Path, specs: Sequence[ModelSpec], rows: dict[str, np.ndarray]
) -> JoinAndLeave:
    """A third of the stream through the first worker; the second joins, and the drift
    begins on one of the models it took; the second third goes through both; the second
    worker leaves (SIGTERM), and the rest goes through the first. Each move waits until the
    group has committed all that was published."""
    partitions = base.topic_partitions
    producer = KafkaProducer(bootstrap_servers=base.bootstrap_servers, acks="all")
    register(producer, base, specs)

    def worker(name: str) -> WorkerProcess:
        settings = base.model_copy(update={"web_port": free_port(), "data_dir": tmp_path / name})
        return WorkerProcess(settings, tmp_path / f"{name}.log")

    def send(start: int, end: int) -> None:
        run.published += publish(producer, base, interleaved(rows, start, end))
        wait_until_caught_up(base.bootstrap_servers, base.app_id, base.predictions_topic)

    run = JoinAndLeave(worker("first"), worker("second"))
    try:
        run.first.start()
        send(0, PART)
        run.second.start()
        held = wait_for_partitions(base, run.second, others=1)
        assert held != set(range(partitions)), "the first worker kept no partition"
        moved = [spec.model_id for spec in specs if partition_of(spec.model_id, partitions) in held]
        assert moved, held
        run.drifting = moved[0]
        rows[run.drifting][DRIFT_FROM:DRIFT_TO, 0] += 1.0
        send(PART, 2 * PART)
        run.second_report = wait_for_worker(run.second.settings.web_port, run.second, bool)
        assert run.second.stop() == 0, run.second.log_text()
        send(2 * PART, EVENTS_PER_MODEL)
        assert run.first.stop() == 0, run.first.log_text()
    finally:
        producer.close()
        run.first.stop()
        run.second.stop()
    return run


@pytest.mark.timeout(300)
def test_a_worker_joining_then_leaving_moves_the_state_and_sends_the_oracles_alerts_once(
    worker_settings: Settings, tmp_path: Path
) -> None:
    base = worker_settings.model_copy(
        update={"web_enabled": True, "session_timeout_seconds": SESSION_TIMEOUT_SECONDS}
    )
    ensure_topics(base)
    specs = [moving_spec(model) for model in model_ids(base.topic_partitions)]
    run = run_join_and_leave(base, tmp_path, specs, model_rows([s.model_id for s in specs]))
    first, second, drifting = run.first, run.second, run.drifting

    # The drifting model's state went to the second worker once the first part of the
    # stream was done, and back to the first worker after the second part: the second
    # worker opened its alert, the first resolved it.
    assert run.second_report["topics"]["predictions"]["processed"] > 0
    assert restored(second, drifting, PART), second.log_text()
    assert restored(first, drifting, 2 * PART), first.log_text()
    assert alert_lines(second, drifting, "open"), second.log_text()
    assert alert_lines(first, drifting, "resolve"), first.log_text()
    assert "released" in first.log_text()

    oracle, intake = oracle_outputs(specs, base, run.published)
    sent = sent_by_workers(base)
    assert {m.model_id for m in oracle if isinstance(m, Alert)} == {drifting}
    assert {m.status.value for m in oracle if isinstance(m, Alert)} >= {"open", "resolve"}
    assert repeats(sent) == Counter(), "a message sent twice"
    assert_sent_as_the_oracle(sent, oracle)
    assert_state_is_the_oracles(base, specs, intake, run.published)
