import math

import pytest
from pydantic import ValidationError
from samples import an_alert

from driftline.schemas import DeadLetter, DeadLetterReason, DriftAlert, DriftEvidence, KafkaPosition


def test_an_alert_round_trips_through_json():
    original = an_alert(KafkaPosition(topic="t", partition=0, offset=99))
    assert DriftAlert.model_validate_json(original.model_dump_json()) == original


def test_an_alert_refuses_non_finite_evidence():
    with pytest.raises(ValidationError):
        DriftEvidence.model_validate({**an_alert().evidence.model_dump(), "mean_after": math.nan})


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
