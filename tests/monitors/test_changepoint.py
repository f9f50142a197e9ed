import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.monitors.changepoint import estimate_mean_change


@pytest.mark.parametrize("seed", range(10))
def test_a_step_in_the_mean_is_placed_near_where_it_happened(seed):
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(0, 1, 150), rng.normal(2, 1, 100)])
    change = estimate_mean_change(values.tolist())
    assert abs(change.split - 150) <= 5
    assert change.mean_before == pytest.approx(values[: change.split].mean())
    assert change.mean_after == pytest.approx(values[change.split :].mean())


def test_it_matches_a_brute_force_search():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 60)
    n = len(values)
    scores = [
        abs(values[:k].mean() - values[k:].mean()) * np.sqrt(k * (n - k) / n) for k in range(1, n)
    ]
    assert estimate_mean_change(values.tolist()).split == int(np.argmax(scores)) + 1


@given(st.lists(st.floats(-1e6, 1e6), max_size=50))
def test_the_split_always_lies_inside_the_values(values):
    change = estimate_mean_change(values)
    assert 0 <= change.split <= len(values)
    if len(values) >= 2:
        assert 1 <= change.split <= len(values) - 1
