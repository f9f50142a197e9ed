import json
import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from driftline.schemas import (
    Alert,
    AlertKind,
    AlertStatus,
    DataQualityEvidence,
    DeadLetter,
    DeadLetterReason,
    DistributionSummary,
    DriftEvidence,
    KafkaPosition,
    PerformanceReport,
    QualityCheck,
    RetrainTrigger,
    Severity,
    TrainingWindow,
    TriggerReason,
)

WHEN = datetime(2026, 1, 1, tzinfo=UTC)

DRIFT = DriftEvidence(
    test="location_cusum",
    direction="up",
    statistic=13.1,
    threshold=12.5,
    expected_events_between_false_alarms=4e6,
    observations=100,
    change_observation=71,
    change_event_time=WHEN,
    change_positions=[KafkaPosition(topic="t", partition=0, offset=70)],
    reference=DistributionSummary(count=2000, quantiles={"0.5": 0.1}),
    current=DistributionSummary(count=30, quantiles={"0.5": 2.9}),
    distances={"ks": 0.9},
)

QUALITY = DataQualityEvidence(
    check=QualityCheck.OUT_OF_RANGE,
    window=1000,
    window_index=2,
    observations=400,
    violations=31,
    rate=31 / 400,
    tolerated_rate=0.01,
    threshold=25,
    alpha=1e-4,
    p_value=1e-9,
    examples=["-1.0", "1e6"],
)


def an_alert(evidence: DriftEvidence | DataQualityEvidence = DRIFT, **changes) -> Alert:
    fields = {
        "alert_id": "a-1",
        "kind": AlertKind.DRIFT if isinstance(evidence, DriftEvidence) else AlertKind.DATA_QUALITY,
        "model_id": "m",
        "model_version": "1",
        "feature": "x",
        "summary": "x moved",
        "event_id": "e-100",
        "event_time": WHEN,
        "evidence": evidence,
        "source": KafkaPosition(topic="t", partition=0, offset=99),
    }
    return Alert(**{**fields, **changes})


def a_trigger() -> RetrainTrigger:
    return RetrainTrigger(
        trigger_id="t-1",
        idempotency_key="m/1/71",
        model_id="m",
        model_version="1",
        event_time=WHEN,
        reasons=[TriggerReason(kind=AlertKind.DRIFT, alert_id="a-1", summary="x moved")],
        training_window=TrainingWindow(
            start_event_time=WHEN,
            start_positions=[KafkaPosition(topic="t", partition=0, offset=70)],
        ),
    )


@pytest.mark.parametrize("evidence", [DRIFT, QUALITY], ids=["drift", "data_quality"])
def test_an_alert_round_trips_through_json_with_its_kind_of_evidence(evidence):
    original = an_alert(evidence)
    parsed = Alert.model_validate_json(original.model_dump_json())
    assert parsed == original
    assert type(parsed.evidence) is type(evidence)


def test_an_alert_opens_as_a_warning_unless_it_says_otherwise():
    alert = an_alert()
    assert (alert.status, alert.severity) == (AlertStatus.OPEN, Severity.WARNING)
    payload = json.loads(alert.model_dump_json())
    assert payload["status"] == "open"
    assert payload["evidence"]["kind"] == "drift"
    resolved = an_alert(status=AlertStatus.RESOLVE, severity=Severity.CRITICAL)
    assert json.loads(resolved.model_dump_json())["severity"] == "critical"


def test_the_evidence_is_read_by_its_kind():
    payload = json.loads(an_alert(QUALITY).model_dump_json())
    assert isinstance(Alert.model_validate_json(json.dumps(payload)).evidence, DataQualityEvidence)
    # Drift fields under the data-quality kind are refused, not read as drift.
    payload["evidence"] = {**json.loads(DRIFT.model_dump_json()), "kind": "data_quality"}
    with pytest.raises(ValidationError) as caught:
        Alert.model_validate_json(json.dumps(payload))
    assert all(error["loc"][:2] == ("evidence", "data_quality") for error in caught.value.errors())


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [(None, "union_tag_not_found"), ("latency", "union_tag_invalid")],
)
def test_evidence_without_a_known_kind_is_refused(kind, error_type):
    payload = json.loads(an_alert().model_dump_json())
    if kind is None:
        del payload["evidence"]["kind"]
    else:
        payload["evidence"]["kind"] = kind
    with pytest.raises(ValidationError) as caught:
        Alert.model_validate_json(json.dumps(payload))
    assert [error["type"] for error in caught.value.errors()] == [error_type]


def test_evidence_refuses_non_finite_numbers():
    with pytest.raises(ValidationError):
        DriftEvidence.model_validate({**DRIFT.model_dump(), "mean_after": math.nan})
    with pytest.raises(ValidationError):
        DataQualityEvidence.model_validate({**QUALITY.model_dump(), "p_value": math.inf})


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rate": 1.5}, "rate"),
        ({"violations": 0}, "violations"),
        ({"window": 0}, "window"),
        ({"alpha": 1.0}, "alpha"),
        ({"examples": [str(n) for n in range(11)]}, "examples"),
        ({"check": "too_big"}, "check"),
    ],
)
def test_data_quality_evidence_is_bounded(change, field):
    with pytest.raises(ValidationError) as caught:
        DataQualityEvidence.model_validate_json(
            json.dumps({**json.loads(QUALITY.model_dump_json()), **change})
        )
    assert caught.value.errors()[0]["loc"][0] == field


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "latency"}, "kind"),
        ({"status": "closed"}, "status"),
        ({"severity": "info"}, "severity"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time"),
        ({"summary": None}, "summary"),
        ({"feature": ""}, "feature"),
        ({"source": {"topic": "t", "partition": -1, "offset": 0}}, "source"),
    ],
)
def test_alert_fields_are_checked_by_name(change, field):
    payload = {**json.loads(an_alert().model_dump_json()), **change}
    with pytest.raises(ValidationError) as caught:
        Alert.model_validate_json(json.dumps(payload))
    assert caught.value.errors()[0]["loc"][0] == field


def test_a_retrain_trigger_round_trips_and_needs_a_reason():
    trigger = a_trigger()
    assert RetrainTrigger.model_validate_json(trigger.model_dump_json()) == trigger
    payload = {**json.loads(trigger.model_dump_json()), "reasons": []}
    with pytest.raises(ValidationError) as caught:
        RetrainTrigger.model_validate_json(json.dumps(payload))
    assert caught.value.errors()[0]["loc"] == ("reasons",)


def test_a_dead_letter_round_trips_and_names_its_reason():
    letter = DeadLetter(
        reason=DeadLetterReason.INVALID_JSON,
        message="not JSON",
        source=KafkaPosition(topic="t", partition=1, offset=2),
        original="ew==",
    )
    parsed = DeadLetter.model_validate_json(letter.model_dump_json())
    assert parsed == letter
    assert '"reason":"invalid_json"' in letter.model_dump_json()


def test_a_dead_tombstone_has_no_original_but_must_say_so():
    letter = DeadLetter(
        reason=DeadLetterReason.EMPTY,
        message="no value",
        source=KafkaPosition(topic="t", partition=0, offset=0),
        key="m",
        original=None,
    )
    assert '"original":null' in letter.model_dump_json()
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
    payload = json.loads(letter.model_dump_json())
    del payload["original"]
    with pytest.raises(ValidationError) as caught:
        DeadLetter.model_validate_json(json.dumps(payload))
    assert caught.value.errors()[0]["loc"] == ("original",)


def a_report(**changes: object) -> PerformanceReport:
    fields: dict[str, object] = {
        "report_id": "r",
        "model_id": "m",
        "model_version": "1",
        "window": 1,
        "stage": "settled",
        "first_event_time": WHEN,
        "last_event_time": WHEN,
        "predictions": 1000,
        "labelled": 1000,
        "label_coverage": 1.0,
    }
    return PerformanceReport(**{**fields, **changes})


def test_a_report_written_before_estimated_predictions_reads_as_none_estimated():
    payload = json.loads(a_report(estimated_predictions=5).model_dump_json())
    assert payload["estimated_predictions"] == 5
    del payload["estimated_predictions"]
    older = PerformanceReport.model_validate_json(json.dumps(payload))
    assert older.estimated_predictions == 0
    assert not older.partially_estimated


@pytest.mark.parametrize(
    ("estimated", "partial"), [(0, False), (1, True), (5, True), (999, True), (1000, False)]
)
def test_a_window_is_partially_estimated_when_some_but_not_all_of_it_was(estimated, partial):
    report = a_report(estimated_predictions=estimated)
    assert report.partially_estimated is partial
    assert PerformanceReport.model_validate_json(report.model_dump_json()) == report


def test_estimated_predictions_cannot_be_negative():
    with pytest.raises(ValidationError) as caught:
        a_report(estimated_predictions=-1)
    assert caught.value.errors()[0]["loc"] == ("estimated_predictions",)
