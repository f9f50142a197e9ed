"""Everything driftline reads from or writes to Kafka, as pydantic models.

This package is the ground floor: it imports nothing else of driftline, so
producers and consumers in Python can use it alone, and its JSON Schemas can
be handed to producers in other languages.

>>> from driftline.schemas import PredictionEvent
>>> event = PredictionEvent.model_validate_json(
...     b'{"model_id": "churn", "model_version": "3", "event_id": "e-1",'
...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"x": 0.5},'
...     b' "prediction": 1}'
... )
>>> event.features["x"]
0.5
"""

from driftline.schemas.events import PredictionEvent
from driftline.schemas.outputs import (
    DeadLetter,
    DeadLetterReason,
    DriftAlert,
    DriftEvidence,
    KafkaPosition,
)

__all__ = [
    "DeadLetter",
    "DeadLetterReason",
    "DriftAlert",
    "DriftEvidence",
    "KafkaPosition",
    "PredictionEvent",
]
