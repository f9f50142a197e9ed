"""A model keyed by event id through the intake: events of eight partitions summarised, the
summaries tested, as workers do them (summaries out, then in) and as an intake alone does."""

import zlib
from datetime import timedelta

from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry, ReferenceRegistration, Registration
from driftline.monitors import ModelMonitor
from driftline.monitors.positions import Position
from driftline.monitors.summary_monitor import SummaryMonitor
from driftline.schemas import (
    Alert,
    DeadLetter,
    KeyedBy,
    ModelSpec,
    PredictionEvent,
    ReferenceProfile,
)
from driftline.schemas.summaries import VersionSummary
from driftline.simulate import START, simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings

PARTITIONS = 8
SPREAD = simulated_model_spec().model_copy(update={"keyed_by": KeyedBy.EVENT_ID})


def intake_with(spec: ModelSpec) -> Intake:
    registry = ModelRegistry()
    intake = Intake(Settings(topic_partitions=PARTITIONS), registry)
    registry.apply(Registration(spec))
    return intake


def rounds(events: list[PredictionEvent], batch: int = 64) -> list[list[InputMessage]]:
    """The events as eight partitions carry them keyed by event id, in batches of one
    partition, a round of every partition's next batch at a time."""
    by_partition: dict[int, list[InputMessage]] = {p: [] for p in range(PARTITIONS)}
    for event in events:
        partition = zlib.crc32(event.event_id.encode()) % PARTITIONS
        offset = len(by_partition[partition])
        by_partition[partition].append(
            InputMessage(
                InputTopic.PREDICTIONS,
                event.model_dump_json().encode(),
                event.event_id.encode(),
                Position("driftline.predictions", partition, offset),
                (START + timedelta(days=1)).timestamp(),
            )
        )
    batches = []
    for start in range(0, max(map(len, by_partition.values())), batch):
        for messages in by_partition.values():
            if messages[start : start + batch]:
                batches.append(messages[start : start + batch])
    return batches


def alerts(outputs: list[Output]) -> list[Alert]:
    return [o.message for o in outputs if isinstance(o.message, Alert)]


def test_an_intake_alone_is_both_stages_and_finds_the_drift_after_its_warm_up():
    intake = intake_with(SPREAD)
    events = list(simulated_predictions(8_000, shift_at=5_000, seed=3))
    outputs: list[Output] = []
    for batch in rounds(events):
        outputs += intake.handle_batch(batch)
    assert not [
        o for o in outputs if o.destination in (Destination.SUMMARIES, Destination.REFERENCES)
    ]
    found = alerts(outputs)
    opened = {a.feature for a in found if a.status.value == "open" and a.feature}
    assert "x" in opened
    assert "y" not in opened
    first_x = min((a for a in found if a.feature == "x"), key=lambda a: a.event_time)
    assert first_x.event_time >= events[5_000].event_time
    assert intake.registry.reference(SPREAD.model_id, SPREAD.model_version) is not None
    counters = intake.counters.topics[InputTopic.PREDICTIONS]
    assert (counters.consumed, counters.processed, counters.dead_lettered) == (8_000, 8_000, 0)
    summaries = intake.counters.topics[InputTopic.SUMMARIES]
    assert summaries.consumed == summaries.processed > 0
    assert isinstance(intake.monitors[(SPREAD.model_id, SPREAD.model_version)], SummaryMonitor)


def test_workers_send_summaries_keyed_by_version_and_the_warm_up_reference_once():
    first, second = intake_with(SPREAD), intake_with(SPREAD)
    events = list(simulated_predictions(6_000, shift_at=4_000, seed=5))
    references: list[ReferenceProfile] = []
    found: list[Alert] = []
    offset = 0
    for batch in rounds(events):
        outputs = first.process_batch(first.read_many(batch))
        summaries = [o for o in outputs if o.destination is Destination.SUMMARIES]
        assert len(summaries) == 1  # one partition's batch, one version: one summary
        assert summaries[0].key == SPREAD.registry_key()
        summary = summaries[0].message
        assert isinstance(summary, VersionSummary)
        assert summary.spread == PARTITIONS
        assert summary.source.partition == batch[0].source.partition
        message = InputMessage(
            InputTopic.SUMMARIES,
            summaries[0].value,
            summaries[0].key,
            Position("driftline.summaries", 3, offset),
        )
        offset += 1
        tested = second.process_summaries([message])
        assert second.process_summaries([message]) == []  # sent again: taken already
        for output in tested:
            if output.destination is Destination.REFERENCES:
                assert isinstance(output.message, ReferenceProfile)
                references.append(output.message)
                monitor = second.monitors[(SPREAD.model_id, SPREAD.model_version)]
                for intake in (first, second):  # as both read the references topic
                    intake.registry.apply(ReferenceRegistration(output.message))
                # Its own reference back: the monitor goes on, with what it holds back.
                assert second.monitors[(SPREAD.model_id, SPREAD.model_version)] is monitor
        found += alerts(tested)
    assert len(references) == 1
    assert {a.feature for a in found if a.status.value == "open" and a.feature} >= {"x"}
    assert second.counters.topics[InputTopic.SUMMARIES].duplicates == offset


def test_a_batch_interleaving_partitions_gives_one_summary_a_partition():
    # A consumer's batch interleaves the partitions it reads: one summary each, not one a run.
    intake = intake_with(SPREAD)
    events = list(simulated_predictions(600, shift_at=600, seed=2))
    first, second = rounds(events, batch=40)[:2]
    interleaved = [message for pair in zip(first, second, strict=False) for message in pair]
    outputs = intake.process_batch(intake.read_many(interleaved))
    summaries = [o.message for o in outputs if o.destination is Destination.SUMMARIES]
    assert all(isinstance(summary, VersionSummary) for summary in summaries)
    by_partition = {s.source.partition: s for s in summaries}  # type: ignore[union-attr]
    assert len(summaries) == len(by_partition) == 2
    for batch in (first, second):
        summary = by_partition[batch[0].source.partition]
        assert summary.events == len(batch)  # type: ignore[union-attr]
        assert summary.source.offset == batch[0].source.offset  # type: ignore[union-attr]
        assert summary.last_offset == batch[-1].source.offset  # type: ignore[union-attr]


def summaries_of(outputs: list[Output]) -> list[VersionSummary]:
    found = [o.message for o in outputs if o.destination is Destination.SUMMARIES]
    assert all(isinstance(summary, VersionSummary) for summary in found)
    return found  # type: ignore[return-value]


def test_while_warming_up_a_summary_covers_no_more_events_than_it_forwards():
    # Every event of the warm-up reaches the second stage: a partition's batch larger than a
    # summary's rows is cut into summaries that forward all of them.
    intake = intake_with(SPREAD)
    events = list(simulated_predictions(24_000, shift_at=24_000, seed=4))
    first, batch = (b[:1_300] for b in rounds(events, batch=1_364)[::PARTITIONS][:2])
    intake.process_batch(intake.read_many(first[:10]))  # the partition is this worker's now
    summaries = summaries_of(intake.process_batch(intake.read_many(batch)))
    assert [(s.events, len(s.warmup)) for s in summaries] == [(500, 500), (500, 500), (300, 300)]
    offsets = [(s.source.offset, s.last_offset) for s in summaries]
    start = batch[0].source.offset
    assert offsets == [
        (start, start + 499),
        (start + 500, start + 999),
        (start + 1_000, start + 1_299),
    ]


def test_the_first_batch_of_a_partition_taken_over_goes_in_small_summaries():
    # Its batches may begin where the last owner's summaries did and end elsewhere: small
    # summaries bound what the second stage counts twice.
    registry = ModelRegistry()
    intake = Intake(Settings(topic_partitions=PARTITIONS), registry)
    registry.apply(Registration(SPREAD))
    warm = ModelMonitor(SPREAD)
    warm.update_many(list(simulated_predictions(3_000, shift_at=3_000, seed=1)))
    assert warm.reference is not None
    registry.apply(ReferenceRegistration(warm.reference))
    events = list(simulated_predictions(8_000, shift_at=8_000, seed=6))
    first, second, third = rounds(events, batch=300)[::PARTITIONS][:3]
    sizes = [
        [s.events for s in summaries_of(intake.process_batch(intake.read_many(b)))]
        for b in (first, second)
    ]
    assert sizes == [[64, 64, 64, 64, 44], [300]]  # the partition's first batch here, then not
    intake.release({(first[0].source.topic, first[0].source.partition)})
    again = summaries_of(intake.process_batch(intake.read_many(third)))
    assert [s.events for s in again] == [64, 64, 64, 64, 44]  # handed back: new here again
    assert sum(s.events for s in again) == len(third)


def test_what_is_no_summary_of_a_registered_spread_version_is_dead_lettered():
    intake = intake_with(SPREAD)
    plain = intake_with(simulated_model_spec())  # the same model, keyed by model id
    [batch, *_] = rounds(list(simulated_predictions(64, shift_at=100)))
    [summary] = [
        o
        for o in intake_with(SPREAD).process_batch(intake_with(SPREAD).read_many(batch))
        if o.destination is Destination.SUMMARIES
    ]
    at = Position("driftline.summaries", 0, 0)
    bad = InputMessage(InputTopic.SUMMARIES, b'{"model_id": "demo-model"}', None, at)
    [letter] = intake.process_summaries([bad])
    assert isinstance(letter.message, DeadLetter)
    assert letter.message.reason.value == "invalid_event"
    good = InputMessage(InputTopic.SUMMARIES, summary.value, summary.key, at)
    [letter] = plain.process_summaries([good])
    assert isinstance(letter.message, DeadLetter)
    assert letter.message.reason.value == "unknown_model"
    assert "keyed by event id" in letter.message.message


def test_the_recent_ids_of_a_spread_model_stay_in_memory():
    # Every worker reading its partitions has its ids; one saved record per model would be
    # written by all of them at once.
    registry = ModelRegistry()
    store: dict[str, bytes] = {}
    intake = Intake(Settings(topic_partitions=PARTITIONS), registry, state_store=store)
    registry.apply(Registration(SPREAD))
    [batch, *_] = rounds(list(simulated_predictions(64, shift_at=100)))
    intake.process_batch(intake.read_many(batch))
    assert intake.save_arrivals() == 0
    assert not [key for key in store if "arrivals" in key]
    assert intake.process_batch(intake.read_many(batch[:1])) == []  # a repeat, recognised
    assert intake.counters.topics[InputTopic.PREDICTIONS].duplicates == 1
