"""Realized-performance detectors: false alarms and delay on streams of right and wrong.

Compares the worker's test (a two-sided Bernoulli CUSUM on the error
indicator, against the error rate of the first 2,000 labels plus two
standard errors, with the model's false-alarm budget) with River's FHDDM,
HDDM_W and DDM at their defaults: FHDDM is fed correctness (1 right), as it
watches for a fall; DDM and HDDM_W are fed errors (1 wrong), as they watch
for a rise. Each River detector first sees the same 2,000 reference labels.
Accuracy is stationary at several levels (false alarms per 100,000 labels)
or falls at label 10,000 (labels from the fall to the first alarm; a miss if
none within 20,000).

    python benchmarks/performance.py [--seeds N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from river import drift

from driftline.monitors.performance import reference_error_rate
from driftline.monitors.sequential import BernoulliCusum, lorden_threshold

REFERENCE = 2_000
FALL_AT = 10_000
LENGTH = 100_000
AFTER = 20_000
ARL = 1e6


@dataclass(frozen=True)
class Scenario:
    name: str
    before: float
    after: float | None  # None: stationary


SCENARIOS = [
    Scenario("stationary accuracy 0.95", 0.95, None),
    Scenario("stationary accuracy 0.9", 0.9, None),
    Scenario("stationary accuracy 0.7", 0.7, None),
    Scenario("stationary accuracy 0.5", 0.5, None),
    Scenario("accuracy 0.9 -> 0.7", 0.9, 0.7),
    Scenario("accuracy 0.9 -> 0.8", 0.9, 0.8),
    Scenario("accuracy 0.7 -> 0.6", 0.7, 0.6),
]

Detector = Callable[[np.ndarray], list[int]]
"""Takes the correctness stream (after the reference labels), returns alarm indices."""


def ours(reference: np.ndarray) -> Detector:
    p0 = reference_error_rate(1.0 - float(reference.mean()), len(reference))

    def run(right: np.ndarray) -> list[int]:
        cusum = BernoulliCusum(p0, lorden_threshold(ARL, sides=2), ratio=1.5)
        alarms, start = [], 0
        errors = (~right).astype(np.int8)
        while start < len(errors):
            hit = cusum.update_many(errors[start:])
            if hit is None:
                break
            if cusum.direction > 0:
                alarms.append(start + hit)
            cusum.reset()
            start += hit + 1
        return alarms

    return run


def river(make: Callable[[], object], *, errors: bool) -> Callable[[np.ndarray], Detector]:
    """A River detector, fed errors (DDM, HDDM_W watch a rise) or correctness (FHDDM, a fall)."""

    def build(reference: np.ndarray) -> Detector:
        def run(right: np.ndarray) -> list[int]:
            detector: object = make()
            for value in reference:
                detector.update(int(not value) if errors else int(value))  # type: ignore[attr-defined]
            alarms = []
            for index, value in enumerate(right):
                detector.update(int(not value) if errors else int(value))  # type: ignore[attr-defined]
                if detector.drift_detected:  # type: ignore[attr-defined]
                    alarms.append(index)
            return alarms

        return run

    return build


DETECTORS: dict[str, Callable[[np.ndarray], Detector]] = {
    "ours": ours,
    "FHDDM": river(drift.binary.FHDDM, errors=False),
    "HDDM_W": river(drift.binary.HDDMW, errors=True),
    "DDM": river(drift.binary.DDM, errors=True),
}


def score(scenario: Scenario, name: str, seeds: int) -> dict[str, float | None]:
    false_alarms, delays, misses = 0, [], 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        length = LENGTH if scenario.after is None else FALL_AT + AFTER
        accuracy = np.full(length, scenario.before)
        if scenario.after is not None:
            accuracy[FALL_AT:] = scenario.after
        right = rng.random(REFERENCE + length) < np.concatenate(
            [np.full(REFERENCE, scenario.before), accuracy]
        )
        alarms = DETECTORS[name](right[:REFERENCE])(right[REFERENCE:])
        if scenario.after is None:
            false_alarms += len(alarms)
            continue
        false_alarms += sum(1 for a in alarms if a < FALL_AT)
        later = [a - FALL_AT + 1 for a in alarms if a >= FALL_AT]
        if later:
            delays.append(later[0])
        else:
            misses += 1
    if scenario.after is None:
        return {"false_alarms_per_100k": false_alarms / (seeds * LENGTH) * 1e5}
    return {
        "median_delay": statistics.median(delays) if delays else None,
        "miss_rate": misses / seeds,
        "false_alarms_before": false_alarms / seeds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {
        scenario.name: {name: score(scenario, name, args.seeds) for name in DETECTORS}
        for scenario in SCENARIOS
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for scenario, by_detector in results.items():
        print(scenario)
        for name, figures in by_detector.items():
            shown = ", ".join(
                f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}"
                for key, value in figures.items()
            )
            print(f"  {name:7s} {shown}")


if __name__ == "__main__":
    main()
