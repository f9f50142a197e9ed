import dataclasses
import itertools
import json
import math
import pickle
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binom

from driftline.monitors.feature_rows import FeatureMatrix
from driftline.monitors.quality import (
    DataQualityMonitor,
    QualityFinding,
    RateCheck,
    ValueCheck,
    classify_value,
)
from driftline.schemas import (
    DataQualityEvidence,
    FeatureKind,
    FeatureSpec,
    ModelSpec,
    QualityCheck,
    TaskType,
)


def model(*features: FeatureSpec, window: int = 1_000) -> ModelSpec:
    return ModelSpec(
        model_id="m",
        model_version="1",
        task=TaskType.REGRESSION,
        features=list(features),
        quality_window=window,
    )


def numeric(name: str = "x", **fields) -> FeatureSpec:
    return FeatureSpec(name=name, kind=FeatureKind.NUMERIC, **fields)


def alarms(check: RateCheck, violations) -> list[int]:
    """The observations (from 0) at which ``check`` alarmed."""
    found = []
    for i, violated in enumerate(violations):
        check.update(bool(violated))
        if check.alarm:
            found.append(i)
    return found


# Thresholds


@pytest.mark.parametrize(
    ("window", "rate", "alpha"),
    [(1_000, 0.01, 1e-4), (100, 0.05, 0.01), (50, 0.3, 1e-3), (10_000, 0.001, 1e-6), (7, 0.5, 0.1)],
)
def test_the_threshold_is_the_smallest_count_whose_binomial_tail_is_within_alpha(
    window, rate, alpha
):
    threshold = RateCheck(window, rate, alpha).threshold
    assert 1 <= threshold <= window
    assert binom.sf(threshold - 1, window, rate) <= alpha
    if threshold > 1:
        assert binom.sf(threshold - 2, window, rate) > alpha
    linear = next(k for k in range(1, window + 1) if binom.sf(k - 1, window, rate) <= alpha)
    assert threshold == linear


def test_a_zero_tolerance_alarms_on_the_first_violation():
    check = RateCheck(window=100, tolerated_rate=0.0, alpha=1e-4)
    assert check.threshold == 1
    assert alarms(check, [False] * 10 + [True]) == [10]
    assert check.p_value == 0.0


def test_a_check_that_no_count_could_fail_never_alarms():
    for check in (RateCheck(10, 1.0, 0.01), RateCheck(3, 0.5, 0.1)):
        assert check.threshold == check.window + 1
        assert alarms(check, [True] * 100) == []


# The must-show: a missing-rate jump is found fast, clean streams stay quiet


def first_alarm_after_missing_jump(seed: int, jump: int) -> list[int]:
    rng = np.random.default_rng(seed)
    missing = (np.arange(10_000) >= jump) & (rng.random(10_000) < 0.3)
    values = rng.normal(50, 10, 10_000)
    monitor = DataQualityMonitor(model(numeric("tenure")))
    found = []
    for i in range(10_000):
        result = monitor.update({} if missing[i] else {"tenure": float(values[i])})
        found.extend(i for finding in result.findings if finding.check is QualityCheck.MISSING)
        assert all(finding.check is QualityCheck.MISSING for finding in result.findings)
    return found


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("jump", [5_000, 5_437])
def test_a_missing_rate_jump_from_0_to_30_percent_alarms_within_about_100_events(seed, jump):
    # The threshold is 25 missing values in a window of 1,000 (tolerated 1%,
    # alpha 1e-4); at 30% they take 82 events at the median, 135 at the 99.9th
    # percentile (negative binomial), so the bound is 150.
    found = first_alarm_after_missing_jump(seed, jump)
    assert found, "the jump was never detected"
    assert jump <= found[0] <= jump + 150
    assert len(found) == 1, "a lasting problem alarms once"


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("missing_rate", [0.005, 0.0])
def test_a_clean_stream_of_100_000_events_never_alarms(seed, missing_rate):
    rng = np.random.default_rng(seed)
    missing = rng.random(100_000) < missing_rate
    values = rng.uniform(0, 100, 100_000)
    monitor = DataQualityMonitor(model(numeric("tenure", minimum=0, maximum=100)))
    for i in range(100_000):
        result = monitor.update({} if missing[i] else {"tenure": float(values[i])})
        assert result.findings == [], f"false alarm at event {i}"
    assert monitor.observations == 100_000


def test_at_the_tolerated_rate_false_alarms_per_window_are_at_most_alpha():
    window, rate, alpha, windows = 100, 0.05, 0.01, 5_000
    check = RateCheck(window, rate, alpha)
    violations = np.random.default_rng(11).random(window * windows) < rate
    found = alarms(check, violations)
    # Windows reaching the threshold follow the exact binomial tail...
    counts = violations.reshape(windows, window).sum(axis=1)
    reached = int((counts >= check.threshold).sum())
    tail = binom.sf(check.threshold - 1, window, rate)
    assert tail <= alpha
    assert abs(reached - windows * tail) <= 4 * math.sqrt(windows * tail)
    # ...and alarms are those windows, less the ones right after an alarm.
    assert len(found) <= reached
    assert len(found) <= windows * alpha + 3 * math.sqrt(windows * alpha)
    assert len({i // window for i in found}) == len(found)


# Each check fires on its own problem, and only there

CASES = {
    "out_of_range": (
        numeric(minimum=0, maximum=100),
        lambda rng: rng.uniform(0, 100),
        150.0,
        QualityCheck.OUT_OF_RANGE,
    ),
    "unseen_category": (
        FeatureSpec(name="x", kind=FeatureKind.CATEGORICAL, categories=["a", "b", "c"]),
        lambda rng: rng.choice("abc"),
        "z",
        QualityCheck.UNSEEN_CATEGORY,
    ),
    "string_for_number": (
        numeric(),
        lambda rng: rng.gauss(0, 1),
        "0.5",
        QualityCheck.TYPE_VIOLATION,
    ),
    "bool_for_number": (
        numeric(),
        lambda rng: rng.gauss(0, 1),
        True,
        QualityCheck.TYPE_VIOLATION,
    ),
    "number_for_bool": (
        FeatureSpec(name="x", kind=FeatureKind.BOOLEAN),
        lambda rng: rng.random() < 0.5,
        1.0,
        QualityCheck.TYPE_VIOLATION,
    ),
    "number_for_category": (
        FeatureSpec(name="x", kind=FeatureKind.CATEGORICAL),
        lambda rng: rng.choice(["a", "b"]),
        3.0,
        QualityCheck.TYPE_VIOLATION,
    ),
}


def findings_of(feature: FeatureSpec, clean, bad, jump: int | None, seed: int = 0):
    rng = random.Random(seed)
    monitor = DataQualityMonitor(model(feature, window=500))
    found = []
    for i in range(6_000):
        broken = jump is not None and i >= jump and rng.random() < 0.3
        for finding in monitor.update({"x": bad if broken else clean(rng)}).findings:
            found.append((i, finding))
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_check_fires_on_a_jump_of_its_own_violations(case):
    feature, clean, bad, check = CASES[case]
    found = findings_of(feature, clean, bad, jump=3_000)
    assert [finding.check for _, finding in found] == [check]
    ((at, finding),) = found
    # 16 violations (the threshold for 500 at 1%) at 30% take 52 events at
    # the median, 107 at the 99.99th percentile.
    assert 3_000 <= at <= 3_120
    assert finding.examples == (json.dumps(bad),)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", range(3))
def test_no_check_fires_on_a_clean_stream(case, seed):
    feature, clean, bad, _ = CASES[case]
    assert findings_of(feature, clean, bad, jump=None, seed=seed) == []


# Classifying values


def test_bools_are_not_numbers_and_numbers_are_not_bools():
    number, flag = numeric(), FeatureSpec(name="b", kind=FeatureKind.BOOLEAN)
    assert classify_value(number, True, True).type_violation
    assert classify_value(number, False, True).numeric is None
    assert classify_value(flag, 1.0, True).type_violation
    assert classify_value(flag, 0.0, True).numeric is None
    assert classify_value(flag, True, True).numeric == 1.0
    assert classify_value(flag, False, True).numeric == 0.0


def test_out_of_range_values_stay_usable_numbers():
    check = classify_value(numeric(minimum=0, maximum=1), 7.5, True)
    assert check.out_of_range
    assert not check.type_violation
    assert check.numeric == 7.5


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, "1.0"])
def test_non_finite_and_non_numbers_are_type_violations_for_a_numeric_feature(value):
    check = classify_value(numeric(), value, True)
    assert check.type_violation
    assert check.numeric is None


def test_absent_and_null_are_missing():
    for value, present in [(None, True), (None, False), (3.0, False)]:
        assert classify_value(numeric(), value, present) == ValueCheck(missing=True)


def test_categories_are_kept_seen_or_not():
    plan = FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL, categories=["free", "pro"])
    assert classify_value(plan, "pro", True).category == "pro"
    unseen = classify_value(plan, "gold", True)
    assert unseen.unseen_category
    assert unseen.category == "gold"
    assert unseen.numeric is None


@st.composite
def feature_specs(draw):
    kind = draw(st.sampled_from(FeatureKind))
    fields = {"nullable": draw(st.booleans())}
    if kind is FeatureKind.NUMERIC:
        bounds = sorted(
            draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=2))
        )
        fields["minimum"] = draw(st.none() | st.just(bounds[0]))
        fields["maximum"] = draw(st.none() | st.just(bounds[1]))
    if kind is FeatureKind.CATEGORICAL:
        labels = st.text(min_size=1, max_size=5)
        fields["categories"] = draw(st.none() | st.lists(labels, min_size=1, unique=True))
    return FeatureSpec(name="f", kind=kind, **fields)


feature_values = st.none() | st.booleans() | st.floats() | st.integers() | st.text()


@given(feature_specs(), feature_values, st.booleans())
def test_classifying_never_raises_and_never_lets_a_non_finite_number_through(spec, value, present):
    check = classify_value(spec, value, present)
    flags = [check.missing, check.type_violation, check.out_of_range, check.unseen_category]
    assert sum(flags) <= 1
    assert check.missing == (not present or value is None)
    if check.numeric is not None:
        assert math.isfinite(check.numeric)
        assert spec.kind is not FeatureKind.CATEGORICAL
        assert not isinstance(value, str)
    if isinstance(value, bool) and present:
        assert check.type_violation == (spec.kind is not FeatureKind.BOOLEAN)


# Windows and the alarm lifecycle


@given(
    st.integers(1, 20),
    st.floats(0, 1),
    st.floats(1e-6, 0.5),
    st.lists(st.booleans(), max_size=300),
)
def test_a_rate_check_alarms_at_most_once_per_window(window, rate, alpha, violations):
    check = RateCheck(window, rate, alpha)
    windows = []
    for i, violated in enumerate(violations):
        check.update(violated, example=str(i % 7))
        assert check.window_index == i // window
        assert 1 <= check.observations <= window
        assert len(check.examples) == len(set(check.examples)) <= 5
        if check.alarm:
            windows.append(check.window_index)
            assert check.violations == check.threshold
            assert check.p_value <= alpha
    assert len(windows) == len(set(windows))


@given(
    st.integers(1, 20),
    st.floats(0, 0.5),
    st.lists(st.tuples(st.booleans(), st.integers(0, 45)), max_size=30),
)
def test_clean_runs_taken_at_once_leave_a_check_as_update_many_leaves_it(window, rate, runs):
    together, apart = RateCheck(window, rate, 0.01), RateCheck(window, rate, 0.01)
    for violating, count in runs:
        if violating:  # a violation, then a clean run, through both
            violated = np.zeros(count + 1, dtype=bool)
            violated[0] = True
            marks = together.update_many(violated, str)
            assert [(i, mark is None) for i, mark in marks] == [
                (i, mark is None) for i, mark in apart.update_many(violated, str)
            ]
            continue
        marks = together.take_clean(count)
        expected = apart.update_many(np.zeros(count, dtype=bool), str)
        assert [(i, mark is None) for i, mark in marks] == [
            (i, mark is None) for i, mark in expected
        ]
        assert together.to_state() == apart.to_state()
        assert (together.alarm, together.alarming) == (apart.alarm, apart.alarming)


def test_a_persistent_problem_alarms_once_and_a_recurrence_after_a_clean_window_again():
    check = RateCheck(window=100, tolerated_rate=0.01, alpha=1e-3)
    bad, clean = [i % 5 == 0 for i in range(100)], [False] * 100
    found = alarms(check, bad * 4 + clean + bad)
    assert [i // 100 for i in found] == [0, 5]
    assert check.alarming


def test_a_window_that_ends_at_the_threshold_keeps_the_check_quiet():
    check = RateCheck(window=10, tolerated_rate=0.0, alpha=0.01)
    # One violation per window is at the threshold (1): never a clean window.
    assert alarms(check, ([False] * 9 + [True]) * 5) == [9]


def test_an_alarm_on_the_last_observation_reports_the_whole_window():
    check = RateCheck(window=10, tolerated_rate=0.0, alpha=0.01)
    alarms(check, [False] * 9 + [True])
    assert (check.alarm, check.window_index, check.observations, check.violations) == (
        True,
        0,
        10,
        1,
    )
    check.update(False)
    assert (check.alarm, check.window_index, check.observations, check.violations) == (
        False,
        1,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("window", "rate", "alpha"), [(0, 0.1, 0.01), (10, 1.5, 0.01), (10, 0.1, 0)]
)
def test_invalid_parameters_are_refused(window, rate, alpha):
    with pytest.raises(ValueError, match="must be"):
        RateCheck(window, rate, alpha)


def test_parameters_are_stored_under_their_own_names():
    check = RateCheck(window=10, tolerated_rate=0.1, alpha=0.01)
    assert (check.window, check.tolerated_rate, check.alpha) == (10, 0.1, 0.01)
    spec = model(numeric())
    monitor = DataQualityMonitor(spec, alpha=0.02)
    assert (monitor.spec, monitor.alpha) == (spec, 0.02)


# The monitor


def applied_checks(monitor: DataQualityMonitor, feature: str) -> set[str]:
    applied = set()
    for check in QualityCheck:
        try:
            monitor.rate_check(feature, check)
        except KeyError:
            continue
        applied.add(check.value)
    return applied


def test_checks_apply_to_the_features_the_spec_says():
    spec = model(
        numeric("plain"),
        numeric("bounded", maximum=1),
        numeric("optional", nullable=True),
        numeric("optional_checked", nullable=True, max_missing_rate=0.2),
        FeatureSpec(name="plan", kind=FeatureKind.CATEGORICAL, categories=["a"]),
        FeatureSpec(name="free", kind=FeatureKind.CATEGORICAL),
        FeatureSpec(name="flag", kind=FeatureKind.BOOLEAN),
    )
    monitor = DataQualityMonitor(spec)
    applied = {feature.name: applied_checks(monitor, feature.name) for feature in spec.features}
    assert applied == {
        "plain": {"missing", "type_violation"},
        "bounded": {"missing", "type_violation", "out_of_range"},
        "optional": {"type_violation"},
        "optional_checked": {"missing", "type_violation"},
        "plan": {"missing", "type_violation", "unseen_category"},
        "free": {"missing", "type_violation"},
        "flag": {"missing", "type_violation"},
    }
    assert monitor.rate_check("optional_checked", QualityCheck.MISSING).tolerated_rate == 0.2
    with pytest.raises(KeyError):
        monitor.rate_check("optional", QualityCheck.MISSING)


def test_update_gives_every_spec_feature_classified_once():
    spec = model(
        numeric("x", maximum=1),
        FeatureSpec(name="b", kind=FeatureKind.BOOLEAN),
        FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL),
    )
    values = DataQualityMonitor(spec).update({"x": 2.5, "b": True}).values
    assert {name: check.numeric for name, check in values.items()} == {
        "x": 2.5,
        "b": 1.0,
        "c": None,
    }
    assert values["x"].out_of_range
    assert values["c"].missing


def test_unexpected_features_are_counted_not_stored():
    monitor = DataQualityMonitor(model(numeric()))
    for i in range(1_000):
        result = monitor.update({"x": 1.0, f"intruder-{i}": 1.0, f"stranger-{i}": "y"})
        assert set(result.values) == {"x"}
    assert monitor.unexpected_features == 2_000
    assert monitor.observations == 1_000
    state = pickle.dumps(monitor)
    assert b"intruder-" not in state
    assert b"stranger-" not in state


def test_examples_are_truncated_json_and_missing_values_have_none():
    spec = model(numeric("x"), FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL), window=10)
    monitor = DataQualityMonitor(spec, alpha=0.5)
    long_text = "é" + "a" * 500
    findings = []
    for _ in range(3):
        findings += monitor.update({"x": long_text}).findings
    by_check = {(f.feature, f.check): f for f in findings}
    (example,) = by_check["x", QualityCheck.TYPE_VIOLATION].examples
    assert example == json.dumps(long_text)[:100]
    assert len(example) == 100
    assert by_check["c", QualityCheck.MISSING].examples == ()


def test_a_finding_builds_the_wire_evidence_field_for_field():
    monitor = DataQualityMonitor(model(numeric(minimum=0), window=50), alpha=0.01)
    found: list[QualityFinding] = []
    for i in range(50):
        found += monitor.update({"x": -1.0 if i % 3 == 0 else 1.0}).findings
    (finding,) = found
    fields = dataclasses.asdict(finding)
    del fields["feature"]
    evidence = DataQualityEvidence(**(fields | {"examples": list(finding.examples)}))
    assert set(fields) == set(DataQualityEvidence.model_fields) - {"kind"}
    assert evidence.check is QualityCheck.OUT_OF_RANGE
    assert evidence.violations == evidence.threshold
    assert evidence.p_value <= evidence.alpha


# Batches


def batched_findings(monitor: DataQualityMonitor, batches: list[list[dict]]) -> list[tuple]:
    """Every alarm as (event, feature, check, violations, examples), batch by batch."""
    found, offset = [], 0
    for batch in batches:
        result = monitor.update_many(batch)
        for i, findings in sorted(result.findings.items()):
            found += [(offset + i, f.feature, f.check, f.violations, f.examples) for f in findings]
        offset += len(batch)
    return found


mostly_floats = st.floats(-5, 5) | st.sampled_from([math.nan, math.inf, 50.0, -50.0])
odd_values = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "zz"])


mixed_rows = st.lists(
    st.fixed_dictionaries(
        {"y": mostly_floats},
        optional={
            "x": mostly_floats | odd_values,
            "c": st.sampled_from(["a", "b", "zz"]) | odd_values,
            "unexpected": odd_values,  # in no spec: only counted
        },
    ),
    max_size=120,
)
"""Rows of every kind a spec's three features may get, floats-only columns or mixed ones."""

THREE_FEATURES = model(
    numeric("x", minimum=-4, maximum=4, max_type_violation_rate=0.05),
    numeric("y", maximum=3, max_out_of_range_rate=0.02),
    FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL, categories=["a", "b"]),
    window=10,
)
"""The spec those rows are checked against."""


@given(rows=mixed_rows, cuts=st.lists(st.integers(0, 120), max_size=4))
def test_batches_find_what_event_by_event_finds_whatever_the_values(rows, cuts):
    # Floats-only columns take a faster path than mixed ones: both must match update().
    spec = THREE_FEATURES
    one_by_one = DataQualityMonitor(spec)
    expected = [
        (i, f.feature, f.check, f.violations, f.examples)
        for i, row in enumerate(rows)
        for f in one_by_one.update(row).findings
    ]
    bounds = [0, *sorted(min(cut, len(rows)) for cut in cuts), len(rows)]
    batched = DataQualityMonitor(spec)
    batches = [rows[lo:hi] for lo, hi in itertools.pairwise(bounds)]
    assert batched_findings(batched, batches) == expected
    assert batched.unexpected_features == one_by_one.unexpected_features
    assert batched.to_state() == one_by_one.to_state()
    assert batched.alarming_checks() == one_by_one.alarming_checks()


@given(
    names=st.lists(st.sampled_from(["x", "y", "c", "unexpected"]), min_size=1, unique=True),
    values=st.lists(st.lists(mostly_floats, min_size=4, max_size=4), max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=3),
)
def test_rows_of_a_feature_matrix_are_checked_as_their_dicts_are(names, values, cuts):
    # A batch of rows of one matrix takes its columns as they are; the outcome is the dicts'.
    spec = THREE_FEATURES
    dicts = [dict(zip(names, row, strict=False)) for row in values]
    matrices, places = FeatureMatrix.gather(dicts)
    assert all(place is not None for place in places)
    rows = [matrices[0].row(place[1]) for place in places]  # type: ignore[index]
    bounds = [0, *sorted(min(cut, len(rows)) for cut in cuts), len(rows)]
    from_dicts, from_rows = DataQualityMonitor(spec), DataQualityMonitor(spec)
    for lo, hi in itertools.pairwise(bounds):
        expected, got = from_dicts.update_many(dicts[lo:hi]), from_rows.update_many(rows[lo:hi])
        assert got.findings == expected.findings
        assert got.numeric.keys() == expected.numeric.keys()
        for name, column in expected.numeric.items():
            np.testing.assert_array_equal(got.numeric[name], column)
        assert (got.categories, got.clears, got.alarms) == (
            expected.categories,
            expected.clears,
            expected.alarms,
        )
        assert got.whole == expected.whole
    assert from_rows.unexpected_features == from_dicts.unexpected_features
    assert from_rows.to_state() == from_dicts.to_state()


# Counting in one place, checking in another: a two-stage worker's data quality.


@given(rows=mixed_rows)
def test_counting_a_batch_gives_its_violations_and_values_and_changes_nothing(rows):
    counting, checking = DataQualityMonitor(THREE_FEATURES), DataQualityMonitor(THREE_FEATURES)
    before = counting.to_state()
    tally = counting.count_many(rows)
    assert counting.to_state() == before
    checked = checking.update_many(rows)
    for name, feature in [("x", "numeric"), ("y", "numeric"), ("c", "categories")]:
        if feature == "numeric":
            np.testing.assert_array_equal(tally.numeric[name], checked.numeric[name])
        else:
            assert tally.categories[name] == checked.categories[name]
    one_by_one = [DataQualityMonitor(THREE_FEATURES).update(row).values for row in rows]
    for (name, check), (violations, examples) in tally.counts.items():
        offending = [values[name] for values in one_by_one if values[name].violates(check)]
        assert violations == len(offending) > 0
        assert len(examples) == len(set(examples)) <= 5
    for name in ("x", "y", "c"):
        for check in QualityCheck:
            if (name, check) not in tally.counts and check in checking._checks[name]:
                assert not any(values[name].violates(check) for values in one_by_one)
    assert tally.unexpected == checking.unexpected_features
    assert tally.events == len(rows)


def test_counts_of_a_lasting_problem_alarm_in_the_batch_its_window_reaches_the_threshold():
    # 25 missing values in a window of 1,000 alarm (tolerated 1%, alpha 1e-4).
    spec = model(numeric("tenure"))
    counted = DataQualityMonitor(spec)
    alarms = []
    for batch in range(20):
        missing = 0 if batch < 10 else 30  # 30% missing from event 1,000 on, 100 a batch
        found = counted.update_counts(100, {("tenure", QualityCheck.MISSING): (missing, [])})
        alarms += [(batch, finding.violations) for finding in found]
    # Window 1 (events 1,000-1,999) holds 30 a batch: the first batch reaching 25 is its first.
    assert alarms == [(10, 25)]
    assert counted.observations == 2_000
    assert counted.rate_check("tenure", QualityCheck.MISSING).alarming


@pytest.mark.parametrize("seed", range(3))
def test_counts_of_a_clean_stream_never_alarm(seed):
    rng = np.random.default_rng(seed)
    spec = model(numeric("tenure", minimum=0, maximum=100))
    counted = DataQualityMonitor(spec)
    for _ in range(1_000):
        size = int(rng.integers(1, 400))
        missing = int(rng.binomial(size, 0.005))
        out = int(rng.binomial(size, 0.002))
        counts = {
            ("tenure", QualityCheck.MISSING): (missing, []),
            ("tenure", QualityCheck.OUT_OF_RANGE): (out, ["-1.0"]),
        }
        assert counted.update_counts(size, {k: v for k, v in counts.items() if v[0]}) == []


def test_a_window_ending_within_a_batch_gets_the_batchs_share():
    counted = DataQualityMonitor(model(numeric("tenure"), window=100))
    counted.update_counts(90, {})
    # Half of this batch's 8 violations fall after the window's end: the next window has them.
    assert counted.update_counts(20, {("tenure", QualityCheck.MISSING): (8, [])}) == []
    check = counted.rate_check("tenure", QualityCheck.MISSING)
    assert (check.window_index, check.observations, check.violations) == (1, 10, 4)


def test_the_examples_go_with_the_first_violations():
    counted = DataQualityMonitor(model(numeric("tenure", minimum=0), window=10))
    threshold = counted.rate_check("tenure", QualityCheck.OUT_OF_RANGE).threshold
    found = counted.update_counts(
        10, {("tenure", QualityCheck.OUT_OF_RANGE): (10, ["-1.0", "-2.0"])}
    )
    assert [(f.violations, f.examples) for f in found] == [(threshold, ("-1.0", "-2.0"))]


@pytest.mark.parametrize(
    ("events", "counts", "message"),
    [
        (5, {("tenure", QualityCheck.MISSING): (6, [])}, "violations"),
        (5, {("tenure", QualityCheck.UNSEEN_CATEGORY): (1, [])}, "no unseen_category check"),
        (5, {("other", QualityCheck.MISSING): (1, [])}, "no missing check"),
        (-1, {}, "counts"),
    ],
)
def test_impossible_counts_are_refused_and_change_nothing(events, counts, message):
    counted = DataQualityMonitor(model(numeric("tenure")))
    before = counted.to_state()
    with pytest.raises(ValueError, match=message):
        counted.update_counts(events, counts)
    assert counted.to_state() == before
