"""Information limits of changes: Lorden's bound, and the divergences it rests on."""

import doctest
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

# benchmarks/ is a folder at the repository root, not part of the installed package,
# and the root is kept off sys.path: put it there just for this import.
ROOT = str(Path(__file__).resolve().parents[2])
sys.path.insert(0, ROOT)
try:
    from benchmarks import limits
    from benchmarks.limits import Information
    from benchmarks.scenarios import BY_NAME, REFERENCE_SIZE, SCENARIOS, WARMUP
finally:
    sys.path.remove(ROOT)


def test_an_abrupt_change_has_lordens_limit():
    assert Information.constant(0.5).limit(1e6) == pytest.approx(math.log(1e6) / 0.5)
    with pytest.raises(ValueError, match="positive"):
        Information.constant(0.0)


def test_a_ramps_limit_is_where_its_divergences_add_up_to_the_log_arl():
    ramp = Information.ramp(limits.normal_location, 2_000)
    limit = ramp.limit(1e6)
    assert limit is not None
    k = np.arange(1, int(limit) + 1, dtype=float)
    total = np.cumsum(ramp.per_event(k))
    assert total[-1] >= math.log(1e6) > total[-2]
    # it tells less than the abrupt change to the ramp's end, so it takes longer
    assert limit > Information.constant(limits.normal_location(1.0)).limit(1e6)


def test_a_change_that_tells_too_little_has_no_limit():
    fading = Information(lambda k: 1e-3 / (k * k), "fading")
    assert fading.limit(1e6) is None


@pytest.mark.parametrize(
    ("closed_form", "before", "after"),
    [
        (limits.normal_location(0.5), stats.norm(), stats.norm(0.5)),
        (limits.normal_scale(2**0.5), stats.norm(), stats.norm(scale=2**0.5)),
        (limits.normal_scale(0.5), stats.norm(), stats.norm(scale=0.5)),
    ],
)
def test_the_numeric_divergence_agrees_with_closed_forms(closed_form, before, after):
    numeric = limits.continuous(before.logpdf, after.logpdf, -np.inf, np.inf)
    assert numeric == pytest.approx(closed_form, rel=1e-7)


def test_the_poisson_divergence_is_the_sum_over_counts():
    counts = np.arange(0, 200)
    q, p = stats.poisson(3 + 3**0.5).pmf(counts), stats.poisson(3).pmf(counts)
    direct = float(np.sum(q * np.log(q / p)))
    assert limits.poisson(3, 3 + 3**0.5) == pytest.approx(direct, rel=1e-9)


def test_the_mixture_density_is_a_density_and_equal_mixtures_do_not_diverge():
    density = limits.mixture(0.3)
    mass = limits.continuous(lambda x: 0.0, density, -np.inf, np.inf)  # E[log q]: finite
    assert math.isfinite(mass)
    total, _ = integrate.quad(lambda x: math.exp(density(x)), -40, 40)
    assert total == pytest.approx(1.0, abs=1e-9)
    assert limits.continuous(density, density, -np.inf, np.inf) == pytest.approx(0.0, abs=1e-12)
    assert limits.continuous(density, limits.mixture(0.4), -np.inf, np.inf) > 0


def test_categories_never_seen_before_count_at_one_event_of_the_reference():
    before = {"a": 0.5, "b": 0.5}
    with pytest.raises(ValueError, match="floor"):
        limits.categorical(before, {"a": 0.5, "c": 0.5})
    floored = limits.floored(before, {"a", "b", "c"}, 1_000)
    assert floored["c"] == pytest.approx(1e-3)
    assert sum(floored.values()) == pytest.approx(1.0)
    bigger = limits.floored(before, {"a", "b", "c"}, 10_000)
    after = {"a": 0.45, "b": 0.5, "c": 0.05}
    # a larger reference rules out more: the new category tells more, the limit is lower
    assert limits.categorical(bigger, after) > limits.categorical(floored, after)


def test_the_cusum_that_knows_the_change_comes_close_to_the_limit():
    # Lorden: no detector beats the limit on average; the CUSUM of the exact likelihood
    # ratio, with threshold log(arl), is within its overshoot of it.
    arl, shift = 1e4, 1.0
    limit = Information.constant(limits.normal_location(shift)).limit(arl)
    rng = np.random.default_rng(7)
    delays = []
    for _ in range(400):
        ratios = shift * rng.normal(shift, 1.0, 400) - shift * shift / 2
        statistic, delay = 0.0, None
        for index, ratio in enumerate(ratios, start=1):
            statistic = max(0.0, statistic + ratio)
            if statistic >= math.log(arl):
                delay = index
                break
        assert delay is not None
        delays.append(delay)
    assert limit is not None
    assert limit <= np.mean(delays) <= 1.5 * limit


def test_every_scenario_whose_change_is_known_exactly_has_a_limit():
    for scenario in SCENARIOS:
        limit = scenario.limit(1e6, WARMUP)
        if scenario.stationary or not scenario.monitored_change:
            assert limit is None, scenario.name
        elif scenario.group in ("issue", "real-looking"):
            assert limit is not None, scenario.name
            assert 1 < limit < 3_000, scenario.name
    new = BY_NAME["category-new-3pct"]
    assert new.limit(1e6, REFERENCE_SIZE) < new.limit(1e6, WARMUP)


def test_the_docstring_examples_hold():
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner()
    for test in finder.find(limits, limits.__name__):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 5
    assert result.failed == 0
