"""Everything driftline reads from or writes to Kafka, as pydantic models.

This package is the ground floor: it imports nothing else of driftline, so
producers and consumers in Python can use it alone, and its JSON Schemas
(``driftline schemas export DIR``) can be handed to producers in other
languages.

>>> from driftline.schemas import PredictionEvent
>>> event = PredictionEvent.model_validate_json(
...     b'{"model_id": "churn", "model_version": "3", "event_id": "e-1",'
...     b' "event_time": "2026-01-01T00:00:00Z", "features": {"x": 0.5},'
...     b' "prediction": 1}'
... )
>>> event.features["x"]
0.5
"""

from driftline.schemas._base import WireModel
from driftline.schemas.events import (
    FeatureEvent,
    LabelEvent,
    PredictionEvent,
    PredictionInterval,
)
from driftline.schemas.outputs import (
    Alert,
    AlertKind,
    AlertStatus,
    DataQualityEvidence,
    DeadLetter,
    DeadLetterReason,
    DistributionSummary,
    DriftEvidence,
    GroupEvidence,
    KafkaPosition,
    PerformanceBasis,
    PerformanceEvidence,
    PerformanceReport,
    QualityCheck,
    ReportStage,
    RetrainTrigger,
    Severity,
    TrainingWindow,
    TriggerReason,
)
from driftline.schemas.reference import CategoricalCounts, NumericSketch, ReferenceProfile
from driftline.schemas.registry import (
    AlertPolicy,
    DriftPolicy,
    FeatureKind,
    FeatureSpec,
    KeyedBy,
    ModelSpec,
    PerformancePolicy,
    RetrainPolicy,
    TaskType,
    registry_key,
)

WIRE_MODELS: dict[str, type[WireModel]] = {
    "prediction-event": PredictionEvent,
    "feature-event": FeatureEvent,
    "label-event": LabelEvent,
    "model-spec": ModelSpec,
    "reference-profile": ReferenceProfile,
    "alert": Alert,
    "retrain-trigger": RetrainTrigger,
    "dead-letter": DeadLetter,
    "performance-report": PerformanceReport,
}
"""Every message on the wire by the name of its JSON Schema file."""

__all__ = [
    "WIRE_MODELS",
    "Alert",
    "AlertKind",
    "AlertPolicy",
    "AlertStatus",
    "CategoricalCounts",
    "DataQualityEvidence",
    "DeadLetter",
    "DeadLetterReason",
    "DistributionSummary",
    "DriftEvidence",
    "DriftPolicy",
    "FeatureEvent",
    "FeatureKind",
    "FeatureSpec",
    "GroupEvidence",
    "KafkaPosition",
    "KeyedBy",
    "LabelEvent",
    "ModelSpec",
    "NumericSketch",
    "PerformanceBasis",
    "PerformanceEvidence",
    "PerformancePolicy",
    "PerformanceReport",
    "PredictionEvent",
    "PredictionInterval",
    "QualityCheck",
    "ReferenceProfile",
    "ReportStage",
    "RetrainPolicy",
    "RetrainTrigger",
    "Severity",
    "TaskType",
    "TrainingWindow",
    "TriggerReason",
    "WireModel",
    "registry_key",
]
