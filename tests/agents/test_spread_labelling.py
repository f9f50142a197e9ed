"""Labels of a classifier keyed by event id: joined in the partitions of their predictions by
the first stage, measured by the second, against one intake fed the same traffic keyed by
model id (the oracle)."""

import zlib
from collections import defaultdict
from datetime import timedelta
from math import ceil

import numpy as np
import orjson
import pytest

from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry, Registration
from driftline.agents.spread_labelling import partition_model
from driftline.monitors.positions import Position
from driftline.schemas import (
    Alert,
    DeadLetter,
    KeyedBy,
    LabelEvent,
    ModelSpec,
    PerformanceReport,
    PredictionEvent,
)
from driftline.schemas.summaries import VersionSummary
from driftline.simulate import START, simulated_classifier_spec, simulated_classifier_traffic
from driftline.streams.settings import Settings

PARTITIONS = 8
PLAIN = simulated_classifier_spec(window=400, reference_labels=600)
SPREAD = PLAIN.model_copy(update={"keyed_by": KeyedBy.EVENT_ID})
TOPICS = {InputTopic.PREDICTIONS: "driftline.predictions", InputTopic.LABELS: "driftline.labels"}


def intake_with(spec: ModelSpec, **settings: float) -> Intake:
    registry = ModelRegistry()
    intake = Intake(Settings(topic_partitions=PARTITIONS, **settings), registry)
    registry.apply(Registration(spec))
    return intake


def partition_of(event: PredictionEvent | LabelEvent) -> int:
    key = event.prediction_id if isinstance(event, LabelEvent) else event.event_id
    return zlib.crc32(key.encode()) % PARTITIONS


class Topics:
    """Messages as Kafka would hold them, keyed by event id (labels by their prediction's)."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[InputTopic, int], int] = defaultdict(int)

    def message(
        self, event: PredictionEvent | LabelEvent, partition: int | None = None
    ) -> InputMessage:
        topic = InputTopic.LABELS if isinstance(event, LabelEvent) else InputTopic.PREDICTIONS
        partition = partition_of(event) if partition is None else partition
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] += 1
        return InputMessage(
            topic,
            event.model_dump_json().encode(),
            (event.prediction_id if isinstance(event, LabelEvent) else event.event_id).encode(),
            Position(TOPICS[topic], partition, offset),
            (START + timedelta(days=1)).timestamp(),
        )


def batches(traffic, size: int = 256) -> list[list[InputMessage]]:
    """The traffic in batches as one consumer of every partition reads it."""
    topics = Topics()
    messages = [topics.message(event) for event in traffic]
    return [messages[start : start + size] for start in range(0, len(messages), size)]


def alerts(outputs: list[Output]) -> list[Alert]:
    return [o.message for o in outputs if isinstance(o.message, Alert)]


def realized(outputs: list[Output]) -> list[Alert]:
    return [
        a for a in alerts(outputs) if a.kind.value == "performance" and a.status.value == "open"
    ]


def run(intake: Intake, traffic) -> list[Output]:
    outputs: list[Output] = []
    for batch in batches(traffic):
        outputs += intake.handle_batch(batch)
    return outputs + intake.flush_summaries()


@pytest.mark.parametrize("seed", [1, 2])
def test_a_falling_accuracy_is_alarmed_as_the_oracle_alarms_it(seed):
    traffic = list(simulated_classifier_traffic(8_000, shift_at=4_000, seed=seed))
    spread, oracle = intake_with(SPREAD), intake_with(PLAIN)
    found, expected = run(spread, traffic), run(oracle, traffic)
    [alarm], [truth] = realized(found), realized(expected)
    assert alarm.evidence.metric == truth.evidence.metric == "error_rate"
    shift_time = traffic[0].event_time + timedelta(seconds=400)  # event 4,000, 0.1 s apart
    assert alarm.evidence.change_event_time is not None
    # Labels are taken a batch of each partition at a time: about a batch of events apart.
    slack = timedelta(seconds=0.1 * 2 * 256)
    assert abs(alarm.event_time - truth.event_time) <= slack
    assert alarm.event_time > shift_time
    assert alarm.evidence.change_positions == truth.evidence.change_positions
    assert alarm.evidence.change_positions[0].topic == "driftline.predictions"
    assert alarm.source is not None
    assert alarm.source.topic == "driftline.labels"
    labels = spread.counters.topics[InputTopic.LABELS]
    assert labels.consumed == labels.processed == 8_000
    assert labels.dead_lettered == 0
    reports = [o.message for o in found if isinstance(o.message, PerformanceReport)]
    settled = [r for r in reports if r.stage.value == "settled"]
    assert len(settled) >= 8_000 // 400 - 2
    assert all(r.labelled == r.predictions for r in settled)
    assert sum(r.predictions for r in settled) >= 7_000
    # Estimated from the scores the summaries carry, as the oracle estimates from each
    # prediction's probabilities (the labels change, not the scores: the estimate holds).
    estimated = [r.estimated["accuracy"] for r in settled if r.estimated]
    oracle_reports = [o.message for o in expected if isinstance(o.message, PerformanceReport)]
    oracle_estimated = [
        r.estimated["accuracy"]
        for r in oracle_reports
        if r.stage.value == "settled" and r.estimated
    ]
    assert len(estimated) >= len(settled) - 3
    assert np.mean(estimated) == pytest.approx(np.mean(oracle_estimated), abs=0.01)


def toward_the_boundary(count: int, shift_at: int, delay: int, seed: int):
    """A calibrated classifier whose inputs crowd its decision boundary from ``shift_at`` on
    (its accuracy falls, and its probabilities show it); each label ``delay`` events after
    its prediction."""
    rng = np.random.default_rng(seed)
    traffic: list[PredictionEvent | LabelEvent] = []
    waiting: list[LabelEvent] = []
    for index in range(count):
        x = rng.normal(0.0, 1.5 if index < shift_at else 0.3)
        p = 1.0 / (1.0 + np.exp(-3.0 * x))
        time = START + timedelta(seconds=0.1 * index)
        event_id = f"e{index}"
        traffic.append(
            PredictionEvent(
                model_id=PLAIN.model_id,
                model_version=PLAIN.model_version,
                event_id=event_id,
                event_time=time,
                features={"x": float(x), "y": float(rng.normal())},
                prediction="defaulted" if p >= 0.5 else "repaid",
                probabilities={"repaid": float(1.0 - p), "defaulted": float(p)},
            )
        )
        waiting.append(
            LabelEvent(
                model_id=PLAIN.model_id,
                event_id=f"label-{event_id}",
                prediction_id=event_id,
                event_time=time + timedelta(seconds=0.1 * delay),
                label="defaulted" if rng.random() < p else "repaid",
            )
        )
        if index >= delay:
            traffic.append(waiting.pop(0))
    return traffic + waiting


def test_a_covariate_shift_is_alarmed_on_estimated_accuracy_as_the_oracle_alarms_it():
    """Labels 3,000 events late: the estimated-accuracy alert comes from the scores the first
    stages count, within a window of the single process's, and before the labels confirm."""
    traffic = toward_the_boundary(8_000, shift_at=4_000, delay=3_000, seed=5)
    spread, oracle = intake_with(SPREAD), intake_with(PLAIN)
    found, expected = run(spread, traffic), run(oracle, traffic)

    def opened(outputs: list[Output], kind: str) -> list[Alert]:
        return [a for a in alerts(outputs) if a.kind.value == kind and a.status.value == "open"]

    [alarm], [truth] = (
        opened(found, "estimated_performance"),
        opened(expected, "estimated_performance"),
    )
    window = timedelta(seconds=0.1 * PLAIN.performance.window)
    assert abs(alarm.event_time - truth.event_time) <= window
    assert alarm.event_time > START + timedelta(seconds=400)  # after the shift
    [confirmed] = opened(found, "performance")
    assert confirmed.event_time > alarm.event_time


def test_a_label_that_comes_before_its_prediction_rides_with_the_prediction_summary():
    first = intake_with(SPREAD)
    [prediction] = [e for e in simulated_classifier_traffic(1, shift_at=10, label_delay=0)][:1]
    [label] = [e for e in simulated_classifier_traffic(1, shift_at=10, label_delay=0)][1:]
    topics = Topics()
    # The label waits; its batch still says how far the partition's labels have come.
    [heartbeat] = first.process_batch(first.read_many([topics.message(label)]))
    assert isinstance(heartbeat.message, VersionSummary)
    assert heartbeat.message.of_labels
    assert heartbeat.message.outcomes == []
    assert heartbeat.message.last_event_time == label.event_time
    outputs = first.process_batch(first.read_many([topics.message(prediction)]))
    [summary] = [o.message for o in outputs if isinstance(o.message, VersionSummary)]
    assert [o.label_id for o in summary.outcomes] == [label.event_id]
    assert summary.predicted == [(0, 1)]
    score = prediction.probabilities[SPREAD.positive_class]
    assert summary.scored == [(0, prediction.prediction, int(score * 200), [1])]
    assert summary.outcomes[0].prediction_offset == 0


def test_labels_joined_in_a_batch_of_labels_go_in_a_summary_without_events():
    first = intake_with(SPREAD)
    traffic = list(simulated_classifier_traffic(50, shift_at=100, label_delay=50))
    topics = Topics()
    predictions = [topics.message(e) for e in traffic if isinstance(e, PredictionEvent)]
    labels = [topics.message(e) for e in traffic if isinstance(e, LabelEvent)]
    first.process_batch(first.read_many(predictions))
    outputs = first.process_batch(first.read_many(labels))
    summaries = [o.message for o in outputs if isinstance(o.message, VersionSummary)]
    assert {s.source.partition for s in summaries} == {m.source.partition for m in labels}
    assert all(s.events == 0 and s.source.topic == "driftline.labels" for s in summaries)
    assert sum(len(s.outcomes) for s in summaries) == 50
    assert all(o.destination is Destination.SUMMARIES for o in outputs)


def test_a_label_in_another_partition_than_its_prediction_becomes_an_orphan():
    first = intake_with(SPREAD, label_retention_seconds=60.0)
    traffic = [e for e in simulated_classifier_traffic(3_000, shift_at=10_000, label_delay=10)]
    topics = Topics()
    label = next(e for e in traffic if isinstance(e, LabelEvent))
    wrong = (partition_of(label) + 1) % PARTITIONS
    outputs = first.process_batch(first.read_many([topics.message(label, wrong)]))
    rest = [topics.message(e) for e in traffic if e is not label]
    for start in range(0, len(rest), 500):
        outputs += first.process_batch(first.read_many(rest[start : start + 500]))
    letters = [o.message for o in outputs if isinstance(o.message, DeadLetter)]
    assert [letter.reason.value for letter in letters] == ["orphan_label"]
    assert letters[0].source.partition == wrong


def test_each_partition_is_a_model_of_its_own_to_the_join():
    first = intake_with(SPREAD)
    traffic = list(simulated_classifier_traffic(200, shift_at=1_000, label_delay=20))
    topics = Topics()
    first.process_batch(first.read_many([topics.message(e) for e in traffic]))
    stored = {key.decode() for key in first.labels.join.store}
    names = {partition_model(SPREAD.model_id, p) for p in range(PARTITIONS)}
    assert any(name in key for key in stored for name in names)
    assert not any(f'["{SPREAD.model_id}"' in key for key in stored)


def test_the_first_labels_of_a_partition_taken_over_go_in_small_summaries():
    first = intake_with(SPREAD)
    traffic = list(simulated_classifier_traffic(3_200, shift_at=10_000, label_delay=3_200))
    topics = Topics()
    predictions = [topics.message(e) for e in traffic if isinstance(e, PredictionEvent)]
    labels = [topics.message(e) for e in traffic if isinstance(e, LabelEvent)]
    first.process_batch(first.read_many(predictions))
    partition = labels[0].source.partition
    own = [m for m in labels if m.source.partition == partition]
    assert len(own) > 300

    def sizes(messages: list[InputMessage]) -> list[int]:
        outputs = first.process_batch(first.read_many(messages))
        return [len(o.message.outcomes) for o in outputs if isinstance(o.message, VersionSummary)]

    assert sizes(own[:150]) == [64, 64, 22]  # new here: what a hand-over counts twice is small
    assert sizes(own[150:-100]) == [len(own) - 250]  # then a batch's labels in one summary
    first.release({("driftline.labels", partition)})
    assert sizes(own[-100:]) == [64, 36]  # taken again: small again


def stored_in(intake: Intake, partition: int) -> int:
    name = partition_model(SPREAD.model_id, partition)
    return sum(1 for key in intake.labels.join.store if f'["{name}","' in key.decode())


def test_once_a_partition_had_a_label_every_partition_keeps_its_predictions_in_the_store():
    intake = intake_with(SPREAD)
    traffic = list(simulated_classifier_traffic(400, shift_at=1_000, label_delay=400))
    topics = Topics()
    predictions = [e for e in traffic if isinstance(e, PredictionEvent)]
    label = next(e for e in traffic if isinstance(e, LabelEvent))
    first = [m for m in map(topics.message, predictions[:200])]
    intake.process_batch(intake.read_many(first))
    assert intake.labels.join.held_predictions == 200  # no label anywhere: in memory
    intake.process_batch(intake.read_many([topics.message(label)]))
    other = (partition_of(label) + 1) % PARTITIONS
    before = stored_in(intake, other)
    later = [topics.message(e) for e in predictions[200:] if partition_of(e) == other]
    intake.process_batch(intake.read_many(later))
    # The other partition had no label, but the model had: its predictions wait in the store.
    assert stored_in(intake, other) == before + len(later) + sum(
        1 for e in predictions[:200] if partition_of(e) == other
    )


def test_predictions_held_in_a_partition_handed_over_are_kept_for_its_next_owner():
    store: dict[bytes, bytes] = {}
    registry = ModelRegistry()
    intake = Intake(Settings(topic_partitions=PARTITIONS), registry, label_store=store)
    registry.apply(Registration(SPREAD))
    traffic = list(simulated_classifier_traffic(400, shift_at=1_000, label_delay=400))
    topics = Topics()
    predictions = [e for e in traffic if isinstance(e, PredictionEvent)]
    labels = {e.prediction_id: e for e in traffic if isinstance(e, LabelEvent)}
    held = predictions[0]
    partition = partition_of(held)
    intake.process_batch(intake.read_many([topics.message(held)]))  # held in memory
    other = next(e for e in predictions if partition_of(e) != partition)
    intake.process_batch(intake.read_many([topics.message(other)]))
    intake.process_batch(intake.read_many([topics.message(labels[other.event_id])]))
    assert stored_in(intake, partition) == 0
    assert intake.keep_held({("driftline.predictions", partition)}) == 1
    assert stored_in(intake, partition) == 1
    # The next owner reads the store back, and joins the held prediction's label.
    successor_registry = ModelRegistry()
    successor = Intake(
        Settings(topic_partitions=PARTITIONS), successor_registry, label_store=dict(store)
    )
    successor_registry.apply(Registration(SPREAD))
    successor.labels.join.rebuild()
    outputs = successor.process_batch(successor.read_many([topics.message(labels[held.event_id])]))
    [summary] = [o.message for o in outputs if isinstance(o.message, VersionSummary)]
    assert [o.label_id for o in summary.outcomes] == [labels[held.event_id].event_id]


def owner_of(store: dict[bytes, bytes], **settings: float) -> Intake:
    """An intake that takes partitions over: the label join's store is shared, read back."""
    registry = ModelRegistry()
    intake = Intake(Settings(topic_partitions=PARTITIONS, **settings), registry, label_store=store)
    registry.apply(Registration(SPREAD))
    intake.labels.join.rebuild()
    return intake


def handed_over_keys(store: dict[bytes, bytes]) -> list[bytes]:
    return [key for key in store if b'"#handed-over"' in key]


@pytest.mark.parametrize("labels_first", [True, False])
def test_predictions_held_by_a_model_without_a_label_are_handed_over_and_held_again(
    labels_first: bool,
):
    store: dict[bytes, bytes] = {}
    traffic = list(simulated_classifier_traffic(2_400, shift_at=10_000, label_delay=2_400))
    topics = Topics()
    predictions = [e for e in traffic if isinstance(e, PredictionEvent)]
    labels = [e for e in traffic if isinstance(e, LabelEvent)]
    partition = partition_of(predictions[0])
    own = [e for e in predictions if partition_of(e) == partition]
    first = owner_of(store)
    first.process_batch(first.read_many([topics.message(e) for e in own[:-10]]))
    assert first.labels.join.held_predictions == len(own) - 10  # no label anywhere: in memory
    assert first.keep_held({("driftline.predictions", partition)}) == len(own) - 10
    assert first.labels.join.held_predictions == 0
    assert stored_in(first, partition) == 0  # not in the store as a labelled model's wait
    assert len(handed_over_keys(store)) == 1 + ceil((len(own) - 10) / 1_000)
    successor = owner_of(store)
    later = [topics.message(e) for e in own[-10:]]
    own_labels = [topics.message(e) for e in labels if partition_of(e) == partition]
    outputs: list[Output] = []
    if labels_first:
        outputs += successor.process_batch(successor.read_many(own_labels[:-10]))
        outputs += successor.process_batch(successor.read_many(later))
    else:
        outputs += successor.process_batch(successor.read_many(later))
        # Still without a label: all held in memory again, none in the store.
        assert successor.labels.join.held_predictions == len(own)
        assert stored_in(successor, partition) == 0
        outputs += successor.process_batch(successor.read_many(own_labels[:-10]))
    outputs += successor.process_batch(successor.read_many(own_labels[-10:]))
    assert not [o for o in outputs if isinstance(o.message, DeadLetter)]
    summaries = [o.message for o in outputs if isinstance(o.message, VersionSummary)]
    joined = sorted(outcome.label_id for s in summaries for outcome in s.outcomes)
    assert joined == sorted(e.event_id for e in labels if partition_of(e) == partition)
    assert handed_over_keys(store) == []  # read once, then gone


def test_predictions_handed_over_and_never_labelled_are_counted_unlabelled_once():
    store: dict[bytes, bytes] = {}
    traffic = list(simulated_classifier_traffic(4_000, shift_at=10_000, label_delay=4_000))
    topics = Topics()
    partition = 3
    own = [
        topics.message(e)
        for e in traffic
        if isinstance(e, PredictionEvent) and partition_of(e) == partition
    ]
    cap = {"held_predictions_before_first_label": 200}
    outputs: list[Output] = []
    owner = owner_of(store, **cap)
    for start in range(0, len(own), 120):  # handed over between every batch
        outputs += owner.process_batch(owner.read_many(own[start : start + 120]))
        owner.keep_held({("driftline.predictions", partition)})
        owner = owner_of(store, **cap)
    outputs += owner.flush_summaries()
    summaries = [o.message for o in outputs if isinstance(o.message, VersionSummary)]
    unlabelled = sum(count for s in summaries for _, count in s.unlabelled)
    held = sum(
        len(orjson.loads(store[key]))
        for key in handed_over_keys(store)
        if len(orjson.loads(key)) == 5
    )
    assert sum(count for s in summaries for _, count in s.predicted) == len(own)
    assert held == 200
    assert unlabelled + held == len(own)


def test_what_a_partition_s_next_owner_reads_again_is_neither_counted_nor_joined_twice():
    # The store is written before the offsets are committed: a worker that takes the
    # partition over reads again what the store already holds.
    store: dict[bytes, bytes] = {}

    def owner() -> Intake:
        registry = ModelRegistry()
        intake = Intake(Settings(topic_partitions=PARTITIONS), registry, label_store=store)
        registry.apply(Registration(SPREAD))
        intake.labels.join.rebuild()
        return intake

    traffic = list(simulated_classifier_traffic(800, shift_at=10_000, label_delay=100))
    topics = Topics()
    messages = [topics.message(e) for e in traffic]
    first = owner()
    before = first.process_batch(first.read_many(messages[:1_000]))
    successor = owner()
    again = successor.process_batch(successor.read_many(messages[:1_000]))
    rest = successor.process_batch(successor.read_many(messages[1_000:]))
    summaries = [o.message for o in before + again + rest if isinstance(o.message, VersionSummary)]
    labels = successor.counters.topics[InputTopic.LABELS]
    assert not [o for o in again + rest if isinstance(o.message, DeadLetter)]
    assert labels.duplicates == sum(1 for m in messages[:1_000] if m.topic is InputTopic.LABELS)
    assert sum(count for s in summaries for _, count in s.predicted) == 800
    assert sum(len(s.outcomes) for s in summaries) == 800
