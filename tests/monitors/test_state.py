"""The one state format: its validators refuse a bad state with a ValueError and nothing
else, and every stateful monitor writes states in it that read back to the same bytes."""

import importlib
import inspect
import json
import math
import pkgutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import driftline.monitors
from driftline.monitors.aligning import SummaryAligner
from driftline.monitors.estimation import (
    ConfidenceEstimator,
    EstimatedWindow,
    Expectation,
    IsotonicCalibrator,
)
from driftline.monitors.feature_drift import CategoricalDrift, NumericDrift
from driftline.monitors.model import ModelMonitor
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.performance import PerformanceMonitor, _Window
from driftline.monitors.positions import Position
from driftline.monitors.sequential import (
    BernoulliCusum,
    ChiSquareCusum,
    LocationCusum,
    ScaleCusum,
    SerialDependence,
)
from driftline.monitors.state import (
    MAX_INTEGER,
    STATE_VERSION,
    Stateful,
    check_header,
    header,
    integer_field,
    is_integer,
    number_field,
    numbers_field,
)
from driftline.monitors.summarise import VersionSummariser
from driftline.monitors.summary_monitor import SummaryMonitor
from driftline.monitors.summary_performance import SummaryPerformance
from driftline.monitors.window_metrics import HitCounts, RealizedMetrics, UncertaintySummary
from driftline.schemas import (
    DriftPolicy,
    FeatureKind,
    FeatureSpec,
    KafkaPosition,
    ModelSpec,
    PredictionEvent,
)
from driftline.schemas.summaries import Outcome, VersionSummary, WindowCount

# Any value a JSON document can hold (with Python's NaN and infinities, which
# json.loads also reads), integers far beyond a float's range among them.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(2**63 - 2, 2**64)
    | st.integers(min_value=2**1024)
    | st.floats()
    | st.text(max_size=8)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def refused(call: Callable[[], object]) -> bool:
    """Whether ``call`` refused with a ValueError; any other exception fails the test."""
    try:
        call()
    except ValueError:
        return True
    return False


# -- the header ------------------------------------------------------------------------


def test_a_header_names_its_kind_and_the_current_version_first():
    state = {**header("Window"), "count": 2}
    assert list(state)[:2] == ["kind", "version"]
    assert state["kind"] == "Window"
    assert state["version"] == STATE_VERSION
    check_header(json.loads(json.dumps(state)), "Window")


@given(JSON)
def test_anything_but_a_mapping_is_refused(value):
    assume(not isinstance(value, dict))
    with pytest.raises(ValueError, match="mapping"):
        check_header(value, "Window")


@given(st.one_of(st.text(), JSON))
def test_a_state_of_another_kind_is_refused(kind):
    assume(kind != "Window")
    with pytest.raises(ValueError, match="kind"):
        check_header({**header("Window"), "kind": kind}, "Window")


@given(JSON)
def test_a_version_other_than_the_current_integer_is_refused(version):
    assume(not (is_integer(version) and version == STATE_VERSION))
    with pytest.raises(ValueError, match="version"):
        check_header({**header("Window"), "version": version}, "Window")


@pytest.mark.parametrize("field", ["kind", "version"])
def test_a_state_missing_a_header_field_is_refused(field):
    state = header("Window")
    del state[field]
    with pytest.raises(ValueError, match=field):
        check_header(state, "Window")


@pytest.mark.parametrize("version", [True, float(STATE_VERSION)])
def test_a_version_equal_to_the_current_one_but_not_an_integer_is_refused(version):
    assert version == STATE_VERSION  # what a plain comparison would let through
    with pytest.raises(ValueError, match="version"):
        check_header({**header("Window"), "version": version}, "Window")


# -- fields ----------------------------------------------------------------------------


@given(st.integers(), st.integers(-3, 3))
def test_an_integer_field_is_read_when_it_reaches_its_minimum(value, minimum):
    state = {"count": value}
    if minimum <= value <= MAX_INTEGER:
        read = integer_field(state, "count", minimum)
        assert read == value
        assert type(read) is int
    else:
        with pytest.raises(ValueError, match="count"):
            integer_field(state, "count", minimum)


@given(JSON)
def test_an_integer_field_that_is_no_integer_is_refused(value):
    assume(not is_integer(value))
    with pytest.raises(ValueError, match="count"):
        integer_field({"count": value}, "count", minimum=-(2**2000))


@pytest.mark.parametrize("value", [MAX_INTEGER + 1, 2**64, 10**400])
def test_an_integer_beyond_64_bits_is_refused(value):
    assert integer_field({"count": MAX_INTEGER}, "count") == MAX_INTEGER
    with pytest.raises(ValueError, match="count"):
        integer_field({"count": value}, "count")


def test_a_missing_field_is_refused():
    with pytest.raises(ValueError, match="count"):
        integer_field({}, "count")
    with pytest.raises(ValueError, match="total"):
        number_field({}, "total")


@given(
    st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
)
def test_a_number_field_is_read_as_a_float_when_it_reaches_its_minimum(value, minimum):
    state = {"total": value}
    if value >= minimum:
        read = number_field(state, "total", minimum)
        assert read == float(value)
        assert type(read) is float
    else:
        with pytest.raises(ValueError, match="total"):
            number_field(state, "total", minimum)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**400)])
def test_a_number_field_that_is_not_finite_as_a_float_is_refused(value):
    with pytest.raises(ValueError, match="finite"):
        number_field({"total": value}, "total")


@given(JSON)
def test_a_number_field_that_is_no_number_is_refused(value):
    assume(isinstance(value, bool) or not isinstance(value, int | float))
    with pytest.raises(ValueError, match="total"):
        number_field({"total": value}, "total")


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60)))
def test_a_list_of_finite_numbers_is_read_as_floats(values):
    read = numbers_field({"knots": values}, "knots")
    assert read == [float(value) for value in values]
    assert all(type(value) is float for value in read)


@given(st.lists(JSON, min_size=1, max_size=4), st.data())
def test_a_list_holding_anything_but_a_finite_number_is_refused(values, data):
    not_finite = st.sampled_from([math.nan, math.inf, -math.inf]) | st.integers(min_value=2**1024)
    not_a_number = st.none() | st.booleans() | st.text(max_size=8) | st.lists(SCALARS, max_size=2)
    bad = data.draw(not_finite | not_a_number)
    values[data.draw(st.integers(0, len(values) - 1))] = bad
    with pytest.raises(ValueError, match="knots"):
        numbers_field({"knots": values}, "knots")


@given(JSON)
def test_a_list_field_that_is_no_list_is_refused(value):
    assume(not isinstance(value, list))
    with pytest.raises(ValueError, match="knots"):
        numbers_field({"knots": value}, "knots")


@given(st.dictionaries(st.sampled_from(["kind", "version", "count"]) | st.text(), JSON))
def test_every_validator_of_any_state_reads_it_or_refuses_it_with_a_value_error(state):
    refused(lambda: check_header(state, "Window"))
    refused(lambda: integer_field(state, "count"))
    refused(lambda: number_field(state, "count"))
    refused(lambda: numbers_field(state, "count"))


# -- every stateful monitor ------------------------------------------------------------


def _cusum(detector: Any, values: Any) -> Any:
    detector.update_many(values)
    return detector


def _calibrator() -> IsotonicCalibrator:
    rng = np.random.default_rng(3)
    scores = rng.random(400)
    return IsotonicCalibrator().fit(scores, rng.random(400) < scores)


def _estimator() -> ConfidenceEstimator:
    rng = np.random.default_rng(4)
    estimator = ConfidenceEstimator(["no", "yes"], positive_class="yes")
    for p in rng.random(300).tolist():
        label = "yes" if rng.random() < p else "no"
        estimator.learn({"no": 1.0 - p, "yes": p}, "yes" if p >= 0.5 else "no", label)
    estimator.fit()
    return estimator


def _window() -> EstimatedWindow:
    window = EstimatedWindow()
    for p in np.random.default_rng(5).random(40).tolist():
        window.add(Expectation(max(p, 1.0 - p), p, p >= 0.5))
    return window


def _numeric() -> NumericDrift:
    rng = np.random.default_rng(6)
    detector = NumericDrift.from_reference_values(rng.normal(0.0, 1.0, 2_000), arl=1e4)
    detector.update_many(rng.normal(0.5, 1.0, 500))
    return detector


def _categorical() -> CategoricalDrift:
    rng = np.random.default_rng(7)
    detector = CategoricalDrift.from_reference_values(
        rng.choice(list("abc"), 2_000).tolist(), arl=1e4
    )
    for value in rng.choice(list("abcd"), 300).tolist():
        detector.update(value)
    return detector


def _multivariate() -> MultivariateDrift:
    rng = np.random.default_rng(8)
    correlation = np.array([[1.0, 0.6], [0.6, 1.0]])
    detector = MultivariateDrift(["a", "b"], correlation, arl=1e4)
    for a, b in rng.multivariate_normal([0.0, 0.0], correlation, 300).tolist():
        detector.update({"a": a, "b": b})
    return detector


def _model() -> ModelMonitor:
    rng = np.random.default_rng(9)
    features = [FeatureSpec(name="x", kind=FeatureKind.NUMERIC)]
    monitor = ModelMonitor(
        ModelSpec(model_id="m", model_version="1", task="regression", features=features)
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index, x in enumerate(rng.normal(0.0, 1.0, 200).tolist()):
        monitor.update(
            PredictionEvent(
                model_id="m",
                model_version="1",
                event_id=f"e{index}",
                event_time=start + timedelta(seconds=index),
                features={"x": x},
            )
        )
    return monitor


def _summary_monitor() -> SummaryMonitor:
    rng = np.random.default_rng(10)
    features = [
        FeatureSpec(name="x", kind=FeatureKind.NUMERIC),
        FeatureSpec(name="c", kind=FeatureKind.CATEGORICAL),
    ]
    spec = ModelSpec(
        model_id="m",
        model_version="1",
        task="regression",
        features=features,
        drift=DriftPolicy(warmup_events=100),
    )
    monitor, summariser = SummaryMonitor(spec), VersionSummariser(spec)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for batch in range(6):
        events = [
            PredictionEvent(
                model_id="m",
                model_version="1",
                event_id=f"e{batch}-{index}",
                event_time=start + timedelta(seconds=batch * 60 + index),
                features={"x": float(rng.normal()), "c": str(rng.choice(["a", "b"]))},
            )
            for index in range(50)
        ]
        where = [Position("predictions", 0, batch * 50 + index) for index in range(50)]
        summary = summariser.summarise(events, where, partition=("predictions", 0))
        assert summary is not None
        monitor.update_summary(summary)
        if monitor.reference is not None and summariser.reference is None:
            summariser.use_reference(monitor.reference)
    return monitor


def _aligner() -> SummaryAligner:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    aligner = SummaryAligner()
    for partition, second in ((0, 5), (1, 9)):
        time = start + timedelta(seconds=second)
        aligner.offer(
            VersionSummary(
                model_id="m",
                model_version="1",
                events=1,
                checked=1,
                spread=3,
                source=KafkaPosition(topic="p", partition=partition, offset=second),
                last_offset=second,
                first_event_time=time,
                last_event_time=time,
                last_event_id=f"e{second}",
            )
        )
    assert aligner.waiting == 2
    return aligner


PERFORMANCE_SPEC = ModelSpec(
    model_id="m",
    model_version="1",
    task="classification",
    classes=["no", "yes"],
    features=[],
    performance={"window": 50, "reference_labels": 100, "positive_class": "yes"},
)
"""The spec of the performance monitor tried here: its state leaves the spec to its owner."""


def _performance() -> PerformanceMonitor:
    """A classifier's performance monitor past its reference, with windows still open."""
    rng = np.random.default_rng(10)
    monitor = PerformanceMonitor(PERFORMANCE_SPEC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index, p in enumerate(rng.random(300).tolist()):
        event = PredictionEvent(
            model_id="m",
            model_version="1",
            event_id=f"e{index}",
            event_time=start + timedelta(seconds=index),
            probabilities={"no": 1.0 - p, "yes": p},
        )
        record, _ = monitor.predicted(event)
        if index < 240:
            label = "yes" if rng.random() < p else "no"
            monitor.labelled(record, label, event_id=f"l{index}", label_time=event.event_time)
    return monitor


def _summary_performance() -> SummaryPerformance:
    """A classifier's performance from summaries of two partitions, past its reference, with
    windows still open and some settled."""
    rng = np.random.default_rng(12)
    monitor = SummaryPerformance(PERFORMANCE_SPEC)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    share = PERFORMANCE_SPEC.performance.window // 2
    for batch in range(12):
        partition, first = batch % 2, (batch // 2) * 25
        time = start + timedelta(seconds=batch)
        outcomes = [
            Outcome(
                (first + n) // share,
                time,
                "yes" if p > 0.5 else "no",
                {"no": 1.0 - p, "yes": p},
                first + n,
                "yes" if rng.random() < p else "no",
                f"l{batch}-{n}",
                time,
                first + n,
            )
            for n, p in enumerate(rng.random(25).tolist())
        ]
        monitor.update_summary(
            VersionSummary(
                model_id="m",
                model_version="1",
                source=KafkaPosition(topic="p", partition=partition, offset=first),
                last_offset=first + 24,
                events=25,
                checked=0,
                first_event_time=time,
                last_event_time=time,
                last_event_id=f"e{batch}",
                spread=2,
                predicted=[WindowCount(first // share, 25)],
                outcomes=outcomes if batch < 10 else [],
            )
        )
    return monitor


def _performance_window() -> _Window:
    return next(reversed(_performance()._windows.values()))


def _uncertainty() -> UncertaintySummary:
    summary = UncertaintySummary()
    summary.update_many("margin", np.random.default_rng(11).random(300))
    return summary


FACTORIES: dict[type, Callable[[], Any]] = {
    LocationCusum: lambda: _cusum(LocationCusum(4.0), np.linspace(-1.0, 2.0, 300)),
    ScaleCusum: lambda: _cusum(ScaleCusum(4.0), np.linspace(-2.0, 2.0, 300)),
    BernoulliCusum: lambda: _cusum(BernoulliCusum(0.2, 4.0), np.arange(300) % 3 == 0),
    ChiSquareCusum: lambda: _cusum(ChiSquareCusum(3, 4.0), np.linspace(0.0, 6.0, 300)),
    SerialDependence: lambda: _cusum(SerialDependence(), np.sin(np.arange(300.0))),
    IsotonicCalibrator: _calibrator,
    ConfidenceEstimator: _estimator,
    EstimatedWindow: _window,
    NumericDrift: _numeric,
    CategoricalDrift: _categorical,
    MultivariateDrift: _multivariate,
    ModelMonitor: _model,
    SummaryMonitor: _summary_monitor,
    SummaryAligner: _aligner,
    PerformanceMonitor: _performance,
    SummaryPerformance: _summary_performance,
    _Window: _performance_window,
    UncertaintySummary: _uncertainty,
}
"""A monitor of each stateful class, part way through its stream."""

READERS: dict[type, Callable[[Any], Any]] = {
    PerformanceMonitor: lambda state: PerformanceMonitor.from_state(PERFORMANCE_SPEC, state),
    SummaryPerformance: lambda state: SummaryPerformance.from_state(PERFORMANCE_SPEC, state),
    _Window: lambda state: _Window.from_state(
        state, RealizedMetrics(["no", "yes"], "yes"), HitCounts("yes")
    ),
}
"""How the classes whose ``from_state`` takes more than the state read one: the
performance monitor takes its spec, a window of it new metrics made from the spec."""


def read(cls: type, state: Any) -> Any:
    """``cls.from_state(state)``, with what more the class takes (see :data:`READERS`)."""
    reader = READERS.get(cls, cls.from_state)  # type: ignore[attr-defined]
    return reader(state)


def stateful_classes() -> set[type]:
    """Every concrete class of the core that writes a state and reads one back."""
    found = set()
    for info in pkgutil.iter_modules(driftline.monitors.__path__):
        module = importlib.import_module(f"driftline.monitors.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            reads = isinstance(inspect.getattr_static(cls, "from_state", None), classmethod)
            writes = callable(getattr(cls, "to_state", None))
            if cls.__module__ == module.__name__ and cls is not Stateful and reads and writes:
                found.add(cls)
    return {cls for cls in found if not inspect.isabstract(cls)}


def test_every_stateful_monitor_of_the_core_is_tried_here():
    assert stateful_classes() == set(FACTORIES)


@pytest.mark.parametrize("cls", list(FACTORIES), ids=lambda cls: cls.__name__)
def test_a_state_read_back_from_json_is_written_again_to_the_same_bytes(cls):
    monitor = FACTORIES[cls]()
    assert isinstance(monitor, Stateful)
    text = json.dumps(monitor.to_state())
    restored = read(cls, json.loads(text))
    assert type(restored) is cls
    assert json.dumps(restored.to_state()) == text


HEADED = [LocationCusum, ScaleCusum, BernoulliCusum, ChiSquareCusum, SerialDependence]
HEADED += [IsotonicCalibrator, ConfidenceEstimator, EstimatedWindow]
HEADED += [UncertaintySummary, PerformanceMonitor, SummaryPerformance]
"""The classes whose states carry a header: they are stored and read on their own."""


@pytest.mark.parametrize("cls", list(FACTORIES), ids=lambda cls: cls.__name__)
def test_exactly_the_states_stored_on_their_own_carry_a_header(cls):
    state = FACTORIES[cls]().to_state()
    if cls in HEADED:
        assert list(state)[:2] == ["kind", "version"]
        check_header(state, cls.__name__)
    else:
        assert "version" not in state


# States as the core wrote them before its state format was gathered into one
# module: they must still load, and write back to the same bytes.
SAVED = [
    '{"kind": "LocationCusum", "version": 1, "threshold": 2.0, "shift": 0.5, '
    '"variance_factor": 1.0, "sums": [11274289152, 0], "starts": [1, null], '
    '"observations": 3, "drift_detected": true, "direction": 1, "change_observation": 1}',
    '{"kind": "ScaleCusum", "version": 1, "threshold": 2.0, "ratio": 2.0, '
    '"variance_factor": 1.0, "sums": [13397518344, 0], "starts": [1, null], '
    '"observations": 2, "drift_detected": true, "direction": 1, "change_observation": 1}',
    '{"kind": "BernoulliCusum", "version": 1, "p0": 0.25, "threshold": 2.0, "ratio": 1.5, '
    '"sums": [4441313013, 0], "starts": [1, null], "observations": 4, '
    '"drift_detected": false, "direction": 0, "change_observation": 0}',
    '{"kind": "ChiSquareCusum", "version": 1, "dim": 2, "threshold": 2.0, "inflation": 1.5, '
    '"variance_factor": 1.0, "sums": [2553507917], "starts": [3], "observations": 3, '
    '"drift_detected": false, "direction": 0, "change_observation": 0}',
    '{"kind": "SerialDependence", "version": 1, "halflife": 10.0, "prior_rho": 0.0, '
    '"prior_weight": 200.0, "weight": 176.04314565076163, "total": 349.2785398804207, '
    '"last": -0.25, "observations": 3}',
    '{"kind": "IsotonicCalibrator", "version": 1, "count": 4, "knots": [0.2, 0.4, 0.6, 0.8], '
    '"values": [0.0, 0.5, 0.5, 1.0]}',
    '{"kind": "EstimatedWindow", "version": 1, "count": 2, "binary": true, "correct": 1.25, '
    '"variance": 0.4375, "true_positives": 0.75, "false_positives": 0.25, '
    '"false_negatives": 0.5}',
    '{"kind": "ConfidenceEstimator", "version": 1, "classes": ["no", "yes"], '
    '"positive_class": "yes", "min_reference": 50, "min_class_reference": 200, "seen": [], '
    '"scores": [0.75], "outcomes": [false], "predictions": ["yes"], "calibrator": null, '
    '"class_calibrators": {}, "reference": {}}',
    # The monitors' first layout of these states, as they come new.
    '{"kind": "UncertaintySummary", "version": 1, "values": {"margin": '
    '"AAAAAAAA0D8AAAAAAADgPwAAAAAAAOg/"}, "seen": {"margin": 3}, "strides": {"margin": 1}, '
    '"sealed": null}',
    '{"kind": "PerformanceMonitor", "version": 1, "model": ["m", "1"], "arl": 1000000.0, '
    '"predictions": 0, "labelled": 0, "expired": 0, "windows": [], "estimator": {"kind": '
    '"ConfidenceEstimator", "version": 1, "classes": ["no", "yes"], "positive_class": '
    '"yes", "min_reference": 50, "min_class_reference": 200, "seen": [], "scores": [], '
    '"outcomes": [], "predictions": [], "calibrator": null, "class_calibrators": {}, '
    '"reference": {}}, "estimated_from": null, "estimated_after": null, '
    '"reference_errors": {"count": 0, "bits": ""}, "reference_error": null, "error_test": '
    'null, "error_alarm": null, "since_reference": {"kind": "RealizedMetrics", "version": '
    '1, "count": 0, "metrics": {"accuracy": {"matrix": {"samples": 0, "weight": 0, "hits": '
    '0.0, "rows": [], "columns": [], "cells": []}}, "precision": {"matrix": {"samples": 0, '
    '"weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}}, "recall": '
    '{"matrix": {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}}, "f1": {"matrix": {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], '
    '"columns": [], "cells": []}}, "log_loss": {"mean": [0.0, 0.0]}, "roc_auc": '
    '{"matrices": [{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}, {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}]}}}, "changes": {"times": {"micros": [], "offsets": []}, "positions": '
    '{"topics": [], "topic": [], "partition": [], "offset": []}}, "latched_quiet": null, '
    '"estimate_latched": false, "delays": "", "recent_errors": {"count": 0, "bits": ""}, '
    '"last_estimate": {}, "last_realized": {}, "coming": [], "outcomes": []}',
    '{"kind": "SummaryPerformance", "version": 1, "model": ["m", "1"], "arl": 1000000.0, '
    '"predictions": 0, "labelled": 0, "expired": 0, "windows": [], "estimator": null, '
    '"estimated_from": null, "estimated_after": null, "reference_errors": {"count": 0, '
    '"bits": ""}, "reference_error": null, "error_test": null, "error_alarm": null, '
    '"since_reference": {"kind": "RealizedMetrics", "version": 1, "count": 0, "metrics": '
    '{"accuracy": {"matrix": {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], '
    '"columns": [], "cells": []}}, "precision": {"matrix": {"samples": 0, "weight": 0, '
    '"hits": 0.0, "rows": [], "columns": [], "cells": []}}, "recall": {"matrix": '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}}, '
    '"f1": {"matrix": {"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], '
    '"cells": []}}, "log_loss": {"mean": [0.0, 0.0]}, "roc_auc": {"matrices": '
    '[{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": []}, '
    '{"samples": 0, "weight": 0, "hits": 0.0, "rows": [], "columns": [], "cells": '
    '[]}]}}}, "changes": {"times": {"micros": [], "offsets": []}, "positions": {"topics": '
    '[], "topic": [], "partition": [], "offset": []}}, "latched_quiet": null, '
    '"estimate_latched": false, "delays": "", "recent_errors": {"count": 0, "bits": ""}, '
    '"last_estimate": {}, "last_realized": {}, "coming": [], "outcomes": [], '
    '"settled_windows": []}',
]


@pytest.mark.parametrize("text", SAVED, ids=lambda text: json.loads(text)["kind"])
def test_a_state_saved_before_loads_and_is_written_back_to_the_same_bytes(text):
    kinds = {cls.__name__: cls for cls in HEADED}
    cls = kinds[json.loads(text)["kind"]]
    assert json.dumps(read(cls, json.loads(text)).to_state()) == text


def test_every_kind_with_a_header_has_a_state_saved_before():
    assert {json.loads(text)["kind"] for text in SAVED} == {cls.__name__ for cls in HEADED}


STATES = {cls: FACTORIES[cls]().to_state() for cls in HEADED}
MISSING = object()


@pytest.mark.parametrize("cls", HEADED, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_a_damaged_state_is_read_or_refused_with_a_value_error(cls, data):
    state = dict(STATES[cls])
    key = data.draw(st.sampled_from(sorted(state)), label="field")
    damage = data.draw(st.just(MISSING) | JSON, label="value")
    if damage is MISSING:
        del state[key]
    else:
        state[key] = damage
    accepted = not refused(lambda: read(cls, state))
    if key == "kind":
        assert accepted == (state.get("kind") == cls.__name__)
    elif key == "version":
        version = state.get("version")
        assert accepted == (is_integer(version) and version == STATE_VERSION)
