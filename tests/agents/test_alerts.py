from samples import a_feature_drift

from driftline.agents.alerts import drift_alert, drift_alert_id
from driftline.schemas import DriftAlert, KafkaPosition

DRIFT = a_feature_drift("x", observation=100)


def test_an_alert_carries_the_detector_evidence_and_where_it_was_seen():
    source = KafkaPosition(topic="p", partition=3, offset=41)
    alert = drift_alert("m", "1", DRIFT, source)
    assert (alert.model_id, alert.model_version, alert.feature) == ("m", "1", "x")
    assert alert.evidence.change_observation == 71
    assert alert.evidence.values_after == 30
    assert alert.evidence.mean_after == 2.9
    assert alert.source == source
    assert DriftAlert.model_validate_json(alert.model_dump_json()) == alert


def test_alert_ids_depend_on_what_drifted_and_when_only():
    ids = {
        drift_alert_id("m", "1", "x", 100),
        drift_alert_id("m", "2", "x", 100),
        drift_alert_id("m", "1", "y", 100),
        drift_alert_id("m", "1", "x", 101),
    }
    assert len(ids) == 4
    assert drift_alert("m", "1", DRIFT, None).alert_id == drift_alert_id("m", "1", "x", 100)
