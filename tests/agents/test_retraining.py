"""Retraining triggers: once per change, with a training window, and when they can come."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.agents.alerts import performance_alert
from driftline.agents.retraining import RetrainDecider
from driftline.monitors.performance import PerformanceFinding
from driftline.schemas import (
    Alert,
    AlertKind,
    AlertStatus,
    GroupEvidence,
    KafkaPosition,
    ModelSpec,
    PerformanceBasis,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def spec(**retraining: object) -> ModelSpec:
    return ModelSpec(
        model_id="m",
        model_version="1",
        task="classification",
        classes=["a", "b"],
        features=[],
        retraining=retraining,
    )


def fall(basis: PerformanceBasis, at: int, change: int) -> Alert:
    finding = PerformanceFinding(
        basis=basis,
        metric="error_rate" if basis is PerformanceBasis.REALIZED else "accuracy",
        reference=0.1,
        current=0.3,
        test="error_rate_cusum",
        statistic=15.0,
        threshold=14.5,
        arl=1e6,
        observations=at,
        event_id=f"l{at}",
        event_time=START + timedelta(seconds=at),
        change_observation=change,
        change_event_time=START + timedelta(seconds=change),
        change_position=KafkaPosition(topic="predictions", partition=3, offset=change),
    )
    return performance_alert("m", "1", finding, None)


def test_a_realized_fall_triggers_at_once_with_a_window_from_its_change():
    decider = RetrainDecider(spec())
    [trigger] = decider.observe([fall(PerformanceBasis.REALIZED, 5_200, 5_010)], now=5_200)
    window = trigger.training_window
    assert window is not None
    assert window.start_event_time == START + timedelta(seconds=5_010)
    assert [(p.partition, p.offset) for p in window.start_positions] == [(3, 5_010)]
    assert [r.kind.value for r in trigger.reasons] == ["performance"]
    assert trigger.reasons[0].evidence is not None
    again = RetrainDecider(spec()).observe([fall(PerformanceBasis.REALIZED, 5_200, 5_010)], 5_200)
    assert [t.idempotency_key for t in again] == [trigger.idempotency_key]


def test_one_trigger_per_cooldown_and_estimates_only_when_asked():
    decider = RetrainDecider(spec(cooldown_events=10_000))
    assert decider.observe([fall(PerformanceBasis.REALIZED, 1_000, 900)], now=1_000)
    assert not decider.observe([fall(PerformanceBasis.REALIZED, 8_000, 7_900)], now=8_000)
    assert decider.observe([fall(PerformanceBasis.REALIZED, 12_000, 11_900)], now=12_000)
    assert not RetrainDecider(spec()).observe([fall(PerformanceBasis.ESTIMATED, 900, 0)], 900)
    eager = RetrainDecider(spec(on_estimated_performance=True))
    assert eager.observe([fall(PerformanceBasis.ESTIMATED, 900, 0)], 900)
    assert not RetrainDecider(spec(enabled=False)).observe(
        [fall(PerformanceBasis.REALIZED, 900, 0)], 900
    )


def group(at: int, status: AlertStatus, number: int) -> Alert:
    """A model-level drift alert (``number`` tells changes apart) sent at clock ``at``."""
    return Alert(
        alert_id=f"group-{number}",
        kind=AlertKind.DRIFT,
        status=status,
        model_id="m",
        model_version="1",
        summary="subjects drifted together",
        event_id=f"e{at}",
        event_time=START + timedelta(seconds=at),
        evidence=GroupEvidence(members=[], subjects=["x"]),
    )


Step = tuple[int, str]
"""Events to let pass quietly, then what the next event brings."""

steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),
        st.sampled_from(["nothing", "open", "update", "resolve", "performance"]),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    steps=steps,
    sustained=st.integers(min_value=1, max_value=60),
    cooldown=st.integers(min_value=1, max_value=120),
    enabled=st.booleans(),
)
def test_quiet_events_before_due_at_may_be_skipped(
    steps: list[Step], sustained: int, cooldown: int, enabled: bool
) -> None:
    """A caller that skips ``observe([])`` of quiet events before ``due_at`` (the worker)
    gets the triggers, at the same clocks, of one that observes every event."""
    policy = {"drift_sustained_events": sustained, "cooldown_events": cooldown}
    every, skipping = (RetrainDecider(spec(enabled=enabled, **policy)) for _ in range(2))
    sent_every: list[tuple[int, str]] = []
    sent_skipping: list[tuple[int, str]] = []
    now, changes = 0, 0
    for quiet, what in steps:
        alerts: list[Alert] = []
        if what in ("open", "update", "resolve"):
            changes += what == "open"
            alerts = [group(now + quiet + 1, AlertStatus(what), changes)]
        elif what == "performance":
            alerts = [fall(PerformanceBasis.REALIZED, now + quiet + 1, now)]
        for _ in range(quiet):
            now += 1
            sent_every += [(now, t.idempotency_key) for t in every.observe([], now)]
            due = skipping.due_at
            if due is not None and now >= due:
                sent_skipping += [(now, t.idempotency_key) for t in skipping.observe([], now)]
            assert skipping.due_at is None or skipping.due_at > now
        now += 1
        sent_every += [(now, t.idempotency_key) for t in every.observe(alerts, now)]
        sent_skipping += [(now, t.idempotency_key) for t in skipping.observe(alerts, now)]
    assert sent_skipping == sent_every
    assert skipping.to_state() == every.to_state()
