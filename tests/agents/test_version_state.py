"""A version's state saved once per batch: a restart changes nothing a user can see.

The oracle is one intake that sees every event once. A "restarted" run is
an intake that processes batches and saves its state after each, then a
new intake on the same store, handed the events again from an earlier
batch (the offsets a crash did not commit): together they must send
exactly the oracle's messages.
"""

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.agents.intake import InputMessage, InputTopic, Intake
from driftline.agents.outputs import Destination, Output
from driftline.agents.registry import ModelRegistry, ReferenceRegistration, Registration
from driftline.agents.version_state import STATE_FORMAT, reference_key, state_key
from driftline.monitors.reference import build_reference
from driftline.schemas import FeatureSpec, KafkaPosition, LabelEvent, ModelSpec, PredictionEvent
from driftline.simulate import simulated_classifier_spec, simulated_classifier_traffic
from driftline.streams.settings import Settings

START = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = ["a", "b", "c"]
EVENTS = 9_000
DRIFT_FROM = 3_500
BATCH = 500


def model_spec() -> ModelSpec:
    return ModelSpec(
        model_id="m",
        model_version="1",
        task="regression",
        features=[FeatureSpec(name=name, kind="numeric") for name in FEATURES],
        drift={"warmup_events": 1_000},
        alerts={"resolve_after_events": 1_500},
    )


def messages(seed: int = 5, drift_to: int = EVENTS) -> list[InputMessage]:
    """Events with a shift of feature "a" from DRIFT_FROM to ``drift_to``."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(EVENTS, len(FEATURES)))
    rows[DRIFT_FROM:drift_to, 0] += 1.0
    made = []
    for index, row in enumerate(rows):
        event = PredictionEvent(
            model_id="m",
            model_version="1",
            event_id=f"e{index}",
            event_time=START + timedelta(seconds=index),
            features=dict(zip(FEATURES, row.tolist(), strict=True)),
            prediction=float(row.sum()),
        )
        source = KafkaPosition(topic="predictions", partition=0, offset=index)
        made.append(
            InputMessage(
                InputTopic.PREDICTIONS, orjson.dumps(event.model_dump(mode="json")), b"m", source
            )
        )
    return made


def intake(
    store: dict[str, bytes] | None,
    *,
    registered: bool = False,
    model: ModelSpec | None = None,
    labels: dict[bytes, bytes] | None = None,
) -> Intake:
    """An intake of the model's spec (and a registered reference), saving its state in
    ``store`` and its label join in ``labels``, rebuilt from it as a worker's table is."""
    model = model or model_spec()
    registry = ModelRegistry()
    registry.apply(Registration(model))
    if registered:
        training = np.random.default_rng(1).normal(size=(3_000, len(FEATURES)))
        columns = {name: training[:, i].tolist() for i, name in enumerate(FEATURES)}
        registry.apply(
            ReferenceRegistration(build_reference(model, columns, source="test", ordered=False))
        )
    made = Intake(Settings(), registry, state_store=store, label_store=labels)
    made.labels.join.rebuild()
    return made


def feed(target: Intake, batch: Sequence[InputMessage]) -> list[bytes]:
    """One batch through the intake, its state saved as a worker saves it; the alerts and
    triggers it sent."""
    outputs: list[Output] = target.handle_batch(batch)
    target.flush_state()
    return [output.value for output in outputs if output.destination in SENT]


SENT = (Destination.ALERTS, Destination.RETRAIN_TRIGGERS, Destination.PERFORMANCE)
"""What a user sees of a version: its alerts, triggers and performance reports."""


def run(
    events: list[InputMessage],
    restarts: Sequence[tuple[int, int]] = (),
    *,
    registered: bool = False,
    model: ModelSpec | None = None,
) -> tuple[list[bytes], int]:
    """The messages sent by batches of ``BATCH`` events, with a new intake at each restart:
    ``(at, replayed)`` starts it at batch ``at``, handed the ``replayed`` batches before it
    again. How many events the restarted intakes counted as duplicates, too."""
    store: dict[str, bytes] = {}
    labels: dict[bytes, bytes] = {}
    current = intake(store, registered=registered, model=model, labels=labels)
    starts = dict(restarts)
    sent: list[bytes] = []
    duplicates = 0
    batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
    for number, batch in enumerate(batches):
        if number in starts:
            duplicates += _counted_duplicates(current)
            current = intake(store, registered=registered, model=model, labels=labels)
            for again in batches[number - starts[number] : number]:
                sent += feed(current, again)
        sent += feed(current, batch)
    return sent, duplicates + _counted_duplicates(current)


def _counted_duplicates(target: Intake) -> int:
    topics = target.counters.topics
    return topics[InputTopic.PREDICTIONS].duplicates + topics[InputTopic.LABELS].duplicates


@pytest.fixture(scope="module")
def drifting() -> list[InputMessage]:
    return messages()


@pytest.fixture(scope="module")
def oracle(drifting: list[InputMessage]) -> list[bytes]:
    sent, duplicates = run(drifting)
    assert duplicates == 0
    return sent


def test_the_oracle_alerts_the_drift_and_keeps_it_open(oracle: list[bytes]) -> None:
    of_a = [item["status"] for item in map(orjson.loads, oracle) if item.get("feature") == "a"]
    assert of_a[0] == "open"
    assert "resolve" not in of_a


def test_a_restart_during_a_drift_sends_what_the_oracle_sends(
    drifting: list[InputMessage], oracle: list[bytes]
) -> None:
    # The alert opens near event 4,000; a restart at 6,500 that replays two batches.
    sent, duplicates = run(drifting, [(13, 2)])
    assert sent == oracle
    assert duplicates == 2 * BATCH


def test_restarts_before_during_and_after_the_warmup_change_nothing(
    drifting: list[InputMessage], oracle: list[bytes]
) -> None:
    sent, duplicates = run(drifting, [(1, 1), (2, 0), (5, 3), (9, 1), (16, 2)])
    assert sent == oracle
    assert duplicates == (1 + 0 + 3 + 1 + 2) * BATCH


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(1, EVENTS // BATCH - 1), min_size=1, max_size=3, unique=True),
    st.integers(0, 3),
    st.booleans(),
)
def test_any_restarts_change_nothing(
    drifting: list[InputMessage], at: list[int], replayed: int, registered: bool
) -> None:
    restarts = [(number, min(replayed, number)) for number in sorted(at)]
    expected, _ = run(drifting, registered=registered)
    assert run(drifting, restarts, registered=registered)[0] == expected


def test_without_saved_state_a_restart_resolves_the_drift_falsely(
    drifting: list[InputMessage], oracle: list[bytes]
) -> None:
    # What the saved state prevents: a new intake with nothing saved learns the drift as normal.
    batches = [drifting[i : i + BATCH] for i in range(0, EVENTS, BATCH)]
    first, second = intake(None), intake(None)
    sent = [value for batch in batches[:13] for value in feed(first, batch)]
    sent += [value for batch in batches[13:] for value in feed(second, batch)]
    assert sent != oracle


def saved_after(events: list[InputMessage], count: int) -> dict[str, bytes]:
    """The store of an intake that processed the first ``count`` events, in batches."""
    store: dict[str, bytes] = {}
    first = intake(store)
    for start in range(0, count, BATCH):
        feed(first, events[start : start + BATCH])
    return store


def test_a_state_of_an_unknown_format_is_refused_and_the_version_starts_afresh(
    drifting: list[InputMessage], caplog: pytest.LogCaptureFixture
) -> None:
    store = saved_after(drifting, 3_000)
    key = state_key("m", "1")
    record = orjson.loads(store[key])
    assert record["format"] == STATE_FORMAT
    assert record["monitor"]["events"] == 3_000
    assert reference_key("m", "1") in store  # the warm-up reference, apart
    store[key] = orjson.dumps({**record, "format": STATE_FORMAT + 1})
    second = intake(store)
    feed(second, drifting[3_000:3_500])
    assert second.monitors[("m", "1")].events == 500
    assert "cannot be read" in caplog.text


@pytest.mark.parametrize(
    "damage",
    [
        lambda record: {**record, "monitor": {"spec": record["monitor"]["spec"]}},
        lambda record: {**record, "fence": "nowhere"},
        lambda record: {**record, "lifecycle": None},
    ],
)
def test_a_damaged_state_never_crashes_the_intake(
    drifting: list[InputMessage], damage: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    store = saved_after(drifting, 2_000)
    key = state_key("m", "1")
    store[key] = orjson.dumps(damage(orjson.loads(store[key])))
    second = intake(store)
    feed(second, drifting[2_000:2_500])
    counters = second.counters.topics[InputTopic.PREDICTIONS]
    assert counters.processed + counters.duplicates == 500
    assert counters.dead_lettered == 0


def test_a_monitor_that_starts_afresh_counts_no_quiet_time_during_its_warmup(
    drifting: list[InputMessage],
) -> None:
    # The saved monitor is unreadable at a restart during the drift: the new one warms up
    # (1,000 events) on drifted data, which then looks normal. The alerts read back must not
    # resolve on the warm-up's events: not before 1,000 + 1,500 quiet events after it.
    store = saved_after(drifting, 6_500)
    key = state_key("m", "1")
    store[key] = orjson.dumps({**orjson.loads(store[key]), "monitor": {"damaged": True}})
    second = intake(store)
    sent = [
        orjson.loads(v)
        for s in range(6_500, EVENTS, BATCH)
        for v in feed(second, drifting[s : s + BATCH])
    ]
    resolved = [int(item["event_id"][1:]) for item in sent if item.get("status") == "resolve"]
    assert second.monitors[("m", "1")].events == EVENTS - 6_500
    # Event e<i> is the version's event i + 1: resolved after the warm-up and 1,500 more.
    assert resolved
    assert min(resolved) + 1 - 6_500 == 1_000 + 1_500


def test_a_version_released_by_a_rebalance_is_read_back_when_its_partition_returns(
    drifting: list[InputMessage], oracle: list[bytes]
) -> None:
    store: dict[str, bytes] = {}
    worker = intake(store)
    sent: list[bytes] = []
    for number, start in enumerate(range(0, EVENTS, BATCH)):
        if number in (4, 11):
            assert worker.release({("predictions", 1)}) == []  # not its partition
            assert worker.release({("predictions", 0)}) == [("m", "1")]
            assert worker.monitor_count == 0
        sent += feed(worker, drifting[start : start + BATCH])
    assert sent == oracle


def classifier_messages() -> list[InputMessage]:
    """A classifier's predictions and their labels (200 events later), its accuracy falling
    from event 6,000 on, each topic's messages at their own offsets."""
    offsets = {InputTopic.PREDICTIONS: 0, InputTopic.LABELS: 0}
    made = []
    for event in simulated_classifier_traffic(12_000, shift_at=6_000, seed=4):
        topic = InputTopic.LABELS if isinstance(event, LabelEvent) else InputTopic.PREDICTIONS
        source = KafkaPosition(topic=topic.value, partition=0, offset=offsets[topic])
        offsets[topic] += 1
        value = orjson.dumps(event.model_dump(mode="json"))
        made.append(InputMessage(topic, value, event.model_id.encode(), source))
    return made


def test_a_classifiers_performance_and_label_join_go_on_across_restarts() -> None:
    model = simulated_classifier_spec()
    traffic = classifier_messages()
    expected, duplicates = run(traffic, model=model)
    assert duplicates == 0
    kinds = [orjson.loads(value).get("kind") for value in expected]
    assert "performance" in kinds  # a realized performance alert, with the reports
    restarts = [(3, 1), (12, 2), (16, 0), (25, 3), (36, 1)]
    sent, replayed = run(traffic, restarts, model=model)
    assert sent == expected
    assert replayed == sum(BATCH for _, again in restarts for _ in range(again))


def resent(events: list[InputMessage], indices: Sequence[int], offset: int) -> list[InputMessage]:
    """Events sent again by a producer (a retry): the same bytes at later offsets."""
    return [
        InputMessage(
            events[index].topic,
            events[index].value,
            events[index].key,
            KafkaPosition(topic="predictions", partition=0, offset=offset + n),
        )
        for n, index in enumerate(indices)
    ]


def test_a_producers_retry_of_an_event_from_before_a_restart_is_still_a_duplicate(
    drifting: list[InputMessage],
) -> None:
    """The ids remembered for duplicates are saved with the state: a retry that reaches the
    restarted worker, past every fence, is recognised as the first worker would have."""
    store: dict[str, bytes] = {}
    first = intake(store)
    for start in range(0, 2_000, BATCH):
        feed(first, drifting[start : start + BATCH])
    without_ids = {key: value for key, value in store.items() if not key.startswith('["arr')}
    retries = resent(drifting, [10, 1_500, 1_999], offset=EVENTS)  # past every fence
    restarted = intake(store)
    feed(restarted, drifting[2_000:2_500] + retries)
    assert _counted_duplicates(restarted) == 3
    # Without the saved ids, the retries count as new events.
    forgetful = intake(without_ids)
    feed(forgetful, drifting[2_000:2_500] + retries)
    assert _counted_duplicates(forgetful) == 0


def test_saved_ids_older_than_the_window_are_deleted_from_the_store(
    drifting: list[InputMessage],
) -> None:
    """Ids are kept for the duplicate window of event time (events here are a second apart):
    the chunks all of whose ids left it are deleted, so the store stays bounded."""
    store: dict[str, bytes] = {}
    target = Intake(
        Settings(duplicate_window_seconds=1_000), intake(None).registry, state_store=store
    )
    for start in range(0, 4_000, BATCH):
        feed(target, drifting[start : start + BATCH])
    chunks = [orjson.loads(key) for key in store if key.startswith('["arrivals"')]
    numbers = sorted(key[3] for key in chunks if len(key) == 4)
    # 8 chunks of 500 s written; with the watermark at 3,999 s, events up to 2,999 s are late.
    assert numbers == [6, 7]
    head = orjson.loads(store['["arrivals","predictions","m"]'])
    assert (head["first"], head["next"]) == (6, 8)


def test_a_warm_up_reference_registered_since_the_save_restores_the_monitor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A version keyed by event id publishes the reference its warm-up built; a worker that
    # saved its state before reading it back saved it with no registered reference.
    store: dict[str, bytes] = {}
    events = messages()
    first = intake(store)
    feed(first, events[:1_500])
    warmup = first.monitors[("m", "1")].reference
    assert warmup is not None
    second = intake(store)
    second.registry.apply(ReferenceRegistration(warmup))
    with caplog.at_level("INFO", logger="driftline"):
        feed(second, events[1_500:2_000])
    assert "its reference changed" not in caplog.text
    assert "monitor restored from its saved state (1500 events in)" in caplog.text
