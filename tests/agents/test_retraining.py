"""Retraining triggers from performance alerts: once per change, with a training window."""

from datetime import UTC, datetime, timedelta

from driftline.agents.alerts import performance_alert
from driftline.agents.retraining import RetrainDecider
from driftline.monitors.performance import PerformanceFinding
from driftline.schemas import Alert, KafkaPosition, ModelSpec, PerformanceBasis

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
