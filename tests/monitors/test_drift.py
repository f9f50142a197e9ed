import math

import numpy as np
import pytest

from driftline.monitors.drift import AdwinDriftDetector, DriftFinding


def detections(detector: AdwinDriftDetector, values) -> list[int]:
    found = []
    for value in values:
        detector.update(float(value))
        if detector.drift_detected:
            found.append(detector.observations)
    return found


def test_a_seeded_mean_shift_is_detected_at_a_pinned_observation():
    rng = np.random.default_rng(42)
    values = np.concatenate([rng.normal(0, 1, 2_000), rng.normal(1, 1, 2_000)])
    assert detections(AdwinDriftDetector(), values)[:1] == [2_048]


@pytest.mark.parametrize("seed", range(10))
def test_a_stationary_stream_raises_no_drift(seed):
    values = np.random.default_rng(seed).normal(0, 1, 10_000)
    assert detections(AdwinDriftDetector(), values) == []


def test_the_evidence_matches_the_data_it_summarises():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 1_000), rng.normal(3, 1, 500)])
    detector = AdwinDriftDetector()
    first = detections(detector, values)[0]
    finding = detector.last_finding
    assert finding is not None
    assert finding.observation == first
    # The two means summarise exactly the values on either side of the
    # estimated change, within the detector's recent history.
    change = finding.change_observation
    assert finding.values_before + finding.values_after == detector.history
    assert finding.mean_before == pytest.approx(
        values[change - 1 - finding.values_before : change - 1].mean()
    )
    assert finding.mean_after == pytest.approx(values[change - 1 : first].mean())
    assert abs(change - 1_001) <= 5, "a 3-sigma step is placed within a few values"


def test_non_finite_values_are_refused_before_they_poison_the_window():
    detector = AdwinDriftDetector()
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            detector.update(bad)
    assert detector.observations == 0


@pytest.mark.parametrize(("delta", "clock"), [(0.0, 32), (1.0, 32), (0.002, 0)])
def test_invalid_parameters_are_refused(delta, clock):
    with pytest.raises(ValueError, match="must be"):
        AdwinDriftDetector(delta=delta, clock=clock)


def test_parameters_are_stored_under_their_own_names():
    detector = AdwinDriftDetector(delta=0.01, clock=16)
    assert (detector.delta, detector.clock) == (0.01, 16)


def first_finding(values) -> DriftFinding | None:
    detector = AdwinDriftDetector()
    for value in values:
        detector.update(float(value))
        if detector.drift_detected:
            return detector.last_finding
    return None


@pytest.mark.parametrize("seed", range(20))
def test_the_change_point_of_a_one_sigma_shift_is_found_close_to_the_truth(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 1, 3_000), rng.normal(1, 1, 1_000)])
    finding = first_finding(values)
    assert finding is not None
    assert finding.observation > 3_000, "a detection before the shift is a false alarm"
    assert abs(finding.change_observation - 3_001) <= 40
    assert finding.mean_after - finding.mean_before == pytest.approx(1.0, abs=0.5)
