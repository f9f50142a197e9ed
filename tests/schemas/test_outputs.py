from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from driftline.schemas import DeadLetter, DeadLetterReason, DriftAlert, DriftEvidence, KafkaPosition


def alert(**change) -> DriftAlert:
    fields = {
        "alert_id": "a" * 32,
        "model_id": "m",
        "model_version": "1",
        "feature": "x",
        "event_id": "e",
        "event_time": datetime(2026, 1, 1, tzinfo=UTC),
        "evidence": DriftEvidence(
            detector="adwin",
            delta=0.002,
            observations=100,
            mean_before=0.0,
            mean_after=3.0,
            window_before=60,
            window_after=40,
            change_observation=61,
        ),
        "source": KafkaPosition(topic="t", partition=0, offset=99),
    }
    return DriftAlert(**{**fields, **change})


def test_an_alert_round_trips_through_json():
    original = alert()
    assert DriftAlert.model_validate_json(original.model_dump_json()) == original


def test_an_alert_refuses_non_finite_evidence():
    with pytest.raises(ValidationError):
        alert(
            evidence=DriftEvidence.model_validate(
                {**alert().evidence.model_dump(), "mean_after": float("nan")}
            )
        )


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
