"""How unsure a model is of one prediction, as a number the drift tests can watch.

For a classifier the watched number is the margin between its two most
probable classes: near 0 the model hesitates between them, near 1 it is
sure. For a regressor it is the width of the prediction interval, when the
event carries one. Entropy and least confidence are offered as well, for
summaries; they move with the margin, so only the margin is watched, and a
model growing unsure raises one alert rather than three.

>>> round(margin({"stays": 0.7, "leaves": 0.2, "unsure": 0.1}), 6)
0.5
>>> round(entropy({"a": 0.5, "b": 0.5}), 6)
0.693147
>>> round(least_confidence({"a": 0.9, "b": 0.1}), 6)
0.1
"""

import math
from collections.abc import Mapping

from driftline.schemas import FeatureEvent, ModelSpec, PredictionEvent, TaskType


def margin(probabilities: Mapping[str, float]) -> float | None:
    """The top probability minus the second; None with fewer than two classes."""
    if len(probabilities) < 2:
        return None
    first, second = sorted(probabilities.values(), reverse=True)[:2]
    return first - second


def entropy(probabilities: Mapping[str, float]) -> float:
    """Shannon entropy of the class probabilities, in nats."""
    return -sum(p * math.log(p) for p in probabilities.values() if p > 0)


def least_confidence(probabilities: Mapping[str, float]) -> float:
    """One minus the top probability."""
    return 1.0 - max(probabilities.values(), default=1.0)


def uncertainty_of(spec: ModelSpec, event: PredictionEvent | FeatureEvent) -> float | None:
    """The watched uncertainty of one prediction: the margin, or the interval width.

    None when the event carries nothing to measure it by (a feature event, a
    classifier's prediction without probabilities, a regressor's without an
    interval).
    """
    if not isinstance(event, PredictionEvent):
        return None
    if spec.task is TaskType.CLASSIFICATION:
        return None if event.probabilities is None else margin(event.probabilities)
    if event.interval is None:
        return None
    return event.interval.upper - event.interval.lower
