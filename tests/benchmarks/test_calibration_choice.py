"""The calibration choice benchmark's tests on the reference, against their definitions."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import calibration_choice as choice
finally:
    sys.path.remove(ROOT)


def binary_reference(seed: int, scale: float, count: int = 2_000):
    """Scores of a model whose logit is ``scale`` times the truth's, and the outcomes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.5, count)
    outcomes = rng.random(count) < 1.0 / (1.0 + np.exp(-z))
    return 1.0 / (1.0 + np.exp(-scale * z)), outcomes


def test_roc_auc_is_the_mann_whitney_statistic_over_its_pairs():
    scores, outcomes = binary_reference(1, 1.0, 500)
    scores = np.round(scores, 2)  # with ties
    u = stats.mannwhitneyu(scores[outcomes], scores[~outcomes]).statistic
    expected = u / (outcomes.sum() * (~outcomes).sum())
    assert choice.roc_auc(scores, outcomes) == pytest.approx(expected)


def test_the_expected_calibration_error_weighs_each_bins_gap():
    scores = np.array([0.1, 0.1, 0.3, 0.3, 0.6, 0.6, 0.9, 0.9])
    outcomes = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    # Four bins of two: gaps 0.1, 0.2, 0.4, 0.1, each a quarter of the scores.
    assert choice.expected_calibration_error(scores, outcomes, bins=4) == pytest.approx(0.2)


def test_stratified_splits_hold_out_a_share_of_each_outcome():
    outcomes = np.arange(1_000) % 4 == 0
    for train, test in choice.stratified_splits(outcomes, 5, 0.1, seed=3):
        assert sorted([*train, *test]) == list(range(1_000))
        assert (outcomes[test].sum(), (~outcomes[test]).sum()) == (25, 75)


@pytest.mark.parametrize("test", sorted(choice.TEST_FUNCTIONS))
def test_each_test_calibrates_an_overconfident_model(test):
    calibrates = choice.TEST_FUNCTIONS[test]
    assert all(calibrates(*binary_reference(seed, 2.5)) for seed in range(5))


def test_hosmer_lemeshow_rejects_a_calibrated_model_about_as_often_as_its_level():
    rejected = [choice.hosmer_lemeshow_calibrates(*binary_reference(s, 1.0)) for s in range(60)]
    assert np.mean(rejected) <= 3 * choice.LEVEL


def test_a_run_scores_every_method_on_every_window():
    scenario, _ = choice.BY_NAME["calibrated-3-class"]
    run = choice.run(scenario, seed=0, reference=1_000, window=500)
    windows = choice.WINDOWS_BEFORE + choice.WINDOWS_AFTER
    assert sorted(run.errors) == sorted(choice.METHODS)
    assert all(len(errors) == windows for errors in run.errors.values())
    assert all(0.0 <= share <= 1.0 for share in run.raw_maps.values())
    assert np.mean(run.errors["never"]) < 0.05  # the model is calibrated: raw is close
