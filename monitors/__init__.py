"""The statistics core: Kafka-free, clock-free, deterministic monitors.

Everything here is fed events one at a time (``update``) or in batches
(``update_many``) and read through properties, in the manner of River. Time
comes from the events, never from a clock, so the same stream always gives
the same findings; state is plain data (``to_state``), never pickled.
"""

from driftline.monitors.dedup import Arrival, RecentEventIds
from driftline.monitors.feature_drift import CategoricalDrift, DriftAlarm, NumericDrift
from driftline.monitors.model import DriftFinding, ModelFindings, ModelMonitor
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.quality import (
    DataQualityMonitor,
    QualityFinding,
    RateCheck,
    ValueCheck,
    classify_value,
)

__all__ = [
    "Arrival",
    "CategoricalDrift",
    "DataQualityMonitor",
    "DriftAlarm",
    "DriftFinding",
    "ModelFindings",
    "ModelMonitor",
    "MultivariateDrift",
    "NumericDrift",
    "QualityFinding",
    "RateCheck",
    "RecentEventIds",
    "ValueCheck",
    "classify_value",
]
