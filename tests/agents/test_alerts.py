from samples import a_feature_drift

from driftline.agents.alerts import alert_id, drift_alert
from driftline.schemas import Alert, AlertKind, KafkaPosition

DRIFT = a_feature_drift("x", observation=100)
DRIFT_KIND = AlertKind.DRIFT


def test_an_alert_carries_the_test_evidence_and_where_the_change_began():
    source = KafkaPosition(topic="p", partition=3, offset=41)
    alert = drift_alert("m", "1", DRIFT, source)
    assert (alert.model_id, alert.model_version, alert.feature) == ("m", "1", "x")
    evidence = alert.evidence
    assert evidence.kind == "drift"
    assert (evidence.test, evidence.direction) == ("location_cusum", "up")
    assert evidence.statistic > evidence.threshold
    assert evidence.change_observation == 71
    assert evidence.change_positions == [KafkaPosition(topic="p", partition=3, offset=70)]
    assert evidence.current.quantiles == {"0.5": 2.9}
    assert "median 0.1 -> 2.9" in alert.summary
    assert alert.source == source
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_alert_ids_depend_on_what_drifted_and_when_only():
    ids = {
        alert_id(DRIFT_KIND, "m", "1", "x", "100"),
        alert_id(DRIFT_KIND, "m", "2", "x", "100"),
        alert_id(DRIFT_KIND, "m", "1", "y", "100"),
        alert_id(DRIFT_KIND, "m", "1", "x", "101"),
        alert_id(AlertKind.DATA_QUALITY, "m", "1", "x", "100"),
    }
    assert len(ids) == 5
    assert drift_alert("m", "1", DRIFT, None).alert_id == alert_id(DRIFT_KIND, "m", "1", "x", "71")


def test_a_drift_of_the_models_uncertainty_is_an_uncertainty_alert():
    uncertain = a_feature_drift("(uncertainty)", observation=100)
    alert = drift_alert("m", "1", uncertain, None)
    assert alert.kind is AlertKind.UNCERTAINTY
    assert alert.evidence.kind == "drift"
    assert alert.alert_id != drift_alert("m", "1", a_feature_drift("x", 100), None).alert_id


def test_a_realized_performance_alarm_keeps_its_id_wherever_a_replay_puts_its_change_point():
    from datetime import UTC, datetime

    from driftline.agents.alerts import performance_alert
    from driftline.monitors.performance import PerformanceFinding
    from driftline.schemas import PerformanceBasis

    def finding(change: int, alarm: int | None) -> PerformanceFinding:
        return PerformanceFinding(
            basis=PerformanceBasis.REALIZED,
            metric="error_rate",
            reference=0.2,
            current=0.45,
            test="error_rate_cusum",
            statistic=15.0,
            threshold=14.5,
            arl=1e6,
            observations=2_400,
            event_id="l1",
            event_time=datetime(2026, 1, 1, tzinfo=UTC),
            change_observation=change,
            alarm=alarm,
        )

    def id_of(change: int, alarm: int | None) -> str:
        return performance_alert("m", "1", finding(change, alarm), None).alert_id

    assert id_of(2_100, 1) == id_of(2_160, 1)  # the first alarm, taken in another order
    assert id_of(2_100, 1) != id_of(2_100, 2)
    assert id_of(2_100, None) != id_of(2_160, None)  # a finding without its number
