"""The statistics core: Kafka-free, clock-free, deterministic monitors.

Everything here is fed events one at a time (``update``) and read through
properties, in the manner of River. Time comes from the events, never from
a clock, so the same stream always gives the same findings.
"""

from driftline.monitors.dedup import Arrival, RecentEventIds
from driftline.monitors.drift import AdwinDriftDetector, DriftFinding
from driftline.monitors.model import FeatureDrift, ModelFindings, ModelMonitor
from driftline.monitors.quality import (
    DataQualityMonitor,
    QualityFinding,
    RateCheck,
    ValueCheck,
    classify_value,
)

__all__ = [
    "AdwinDriftDetector",
    "Arrival",
    "DataQualityMonitor",
    "DriftFinding",
    "FeatureDrift",
    "ModelFindings",
    "ModelMonitor",
    "QualityFinding",
    "RateCheck",
    "RecentEventIds",
    "ValueCheck",
    "classify_value",
]
