"""Detection benchmark: delay, misses and false alarms of drift detectors.

Runs each detector configuration on the seeded streams of
:mod:`benchmarks.scenarios` and prints, per scenario and configuration, the
median and mean detection delay, the miss rate, the false alarms per 1,000
events per feature and the cost per update; then whether our defaults meet the
issue's targets. See benchmarks/README.md.

    python benchmarks/detection.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script. The project keeps its root off sys.path (PYTHONSAFEPATH=1);
    # append it, after the installed packages, so `benchmarks` can be imported.
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import argparse
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from river import drift

from benchmarks.scenarios import BY_NAME, REFERENCE_SIZE, WARMUP, Feature, Stream, select

DEFAULT_SEEDS = 50
QUICK_SEEDS = 5
DEFAULT_ARL = 1e6
MAX_WORKERS = 2
# KSWIN costs about 200 us per update: it gets fewer seeds, and only the first
# events of the stationary streams.
KSWIN_MAX_SEEDS = 10
KSWIN_MAX_EVENTS = 20_000
WITHIN = 2_000  # "detected within 2,000 events", the category-share target
WITHIN_LONG = 3_000  # "detected within 3,000 events", the target beside the limit
LIMIT_FACTOR = 1.25  # "a median delay within 1.25 times the information limit"


# -- metrics -------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """What one run of one detector on one stream scored.

    ``false_alarms`` counts, over all features, the alarms raised on monitored
    events before the first change point (on the whole stream if it has none);
    ``monitored`` is the number of those feature-events. ``delays`` has one entry
    per change point: the number of events from the change point to the first
    alarm on any feature, counting the alarming event (an alarm on the first
    changed event is a delay of 1), or None for a miss: no alarm before the next
    change point or the end of the stream.
    """

    false_alarms: int
    monitored: int
    delays: tuple[int | None, ...]


def score(
    alarms: Sequence[Sequence[int]],
    change_points: Sequence[int],
    n_events: int,
    monitor_start: int = 0,
) -> Score:
    """Score alarm indices (0-based in the stream, one list per feature)."""
    if change_points and change_points[0] < monitor_start:
        raise ValueError(f"change point {change_points[0]} is inside the warm-up")
    first_change = change_points[0] if change_points else n_events
    false_alarms = sum(
        1 for feature in alarms for a in feature if monitor_start <= a < first_change
    )
    monitored = len(alarms) * (first_change - monitor_start)
    delays: list[int | None] = []
    for k, start in enumerate(change_points):
        end = change_points[k + 1] if k + 1 < len(change_points) else n_events
        hits = [a for feature in alarms for a in feature if start <= a < end]
        delays.append(min(hits) - start + 1 if hits else None)
    return Score(false_alarms, monitored, tuple(delays))


@dataclass(frozen=True)
class Run:
    scenario: str
    detector: str
    seed: int
    n_events: int
    n_features: int
    change_points: tuple[int, ...]
    monitor_start: int
    false_alarms: int
    monitored: int
    delays: tuple[int | None, ...]
    seconds: float
    updates: int
    error: str | None = None


@dataclass
class Summary:
    scenario: str
    detector: str
    events: int
    seeds: int
    change_points: int
    median_delay: float | None
    mean_delay: float | None
    miss_rate: float | None
    false_alarms: int
    monitored_events: int
    false_alarms_per_1000: float | None
    detected_within_2000: float | None
    us_per_event: float | None
    errors: list[str] = field(default_factory=list)
    limit: float | None = None
    """The scenario's information limit (benchmarks/limits.py), where it is known."""
    detected_within_3000: float | None = None

    @property
    def delay_over_limit(self) -> float | None:
        """The median delay in units of the information limit (1 is perfect)."""
        if self.median_delay is None or self.limit is None:
            return None
        return self.median_delay / self.limit


def summarize(runs: Sequence[Run], limit: float | None = None) -> Summary:
    """Pool the runs of one scenario and detector (all with the same names)."""
    ok = [r for r in runs if r.error is None]
    delays = [d for r in ok for d in r.delays]
    detected = [d for d in delays if d is not None]
    monitored = sum(r.monitored for r in ok)
    false_alarms = sum(r.false_alarms for r in ok)
    updates = sum(r.updates for r in ok)
    return Summary(
        scenario=runs[0].scenario,
        detector=runs[0].detector,
        events=max(r.n_events for r in runs),
        seeds=len(ok),
        change_points=len(delays),
        median_delay=float(statistics.median(detected)) if detected else None,
        mean_delay=float(statistics.fmean(detected)) if detected else None,
        miss_rate=(len(delays) - len(detected)) / len(delays) if delays else None,
        false_alarms=false_alarms,
        monitored_events=monitored,
        false_alarms_per_1000=1000 * false_alarms / monitored if monitored else None,
        detected_within_2000=(
            sum(1 for d in detected if d <= WITHIN) / len(delays) if delays else None
        ),
        us_per_event=1e6 * sum(r.seconds for r in ok) / updates if updates else None,
        errors=sorted({r.error for r in runs if r.error is not None}),
        limit=limit,
        detected_within_3000=(
            sum(1 for d in detected if d <= WITHIN_LONG) / len(delays) if delays else None
        ),
    )


# -- detectors -----------------------------------------------------------------------


class NumericDetector(Protocol):
    def update(self, x: float) -> bool: ...

    def update_many(self, xs: npt.NDArray[np.float64]) -> list[int]: ...


class CategoricalDetector(Protocol):
    def update(self, category: str) -> bool: ...


@dataclass(frozen=True)
class Ours:
    """How to build our detectors (behind these protocols, so that the benchmark
    does not depend on anything else of driftline)."""

    numeric: Callable[[npt.NDArray[np.float64], float, int], NumericDetector]
    categorical: Callable[[list[str], float, int], CategoricalDetector]


@cache
def ours() -> Ours:
    """driftline.monitors.feature_drift's detectors; ImportError if it cannot be imported."""
    from driftline.monitors.feature_drift import CategoricalDrift, NumericDrift

    def numeric(reference: npt.NDArray[np.float64], arl: float, seed: int) -> NumericDetector:
        # As the worker does with a reference taken from a stream: in order.
        detector: NumericDetector = NumericDrift.from_reference_values(
            reference, arl=arl, seed=seed, ordered=True
        )
        return detector

    def categorical(reference: list[str], arl: float, seed: int) -> CategoricalDetector:
        detector: CategoricalDetector = CategoricalDrift.from_reference_values(
            reference, arl=arl, seed=seed
        )
        return detector

    return Ours(numeric, categorical)


@dataclass(frozen=True)
class DetectorConfig:
    name: str
    description: str
    family: Literal["river", "ours"]
    reference: Literal["none", "warmup", "registered"] = "none"
    max_seeds: int | None = None
    max_events: int | None = None


DETECTORS: dict[str, DetectorConfig] = {
    c.name: c
    for c in (
        DetectorConfig("adwin", "River drift.ADWIN(), defaults", "river"),
        DetectorConfig("page-hinkley", "River drift.PageHinkley(), defaults", "river"),
        DetectorConfig(
            "kswin",
            "River drift.KSWIN(seed=seed), defaults",
            "river",
            max_seeds=KSWIN_MAX_SEEDS,
            max_events=KSWIN_MAX_EVENTS,
        ),
        DetectorConfig(
            "ours-defaults",
            "NumericDrift/CategoricalDrift, reference = the first 2,000 events (not monitored)",
            "ours",
            "warmup",
        ),
        DetectorConfig(
            "ours-registered",
            "NumericDrift/CategoricalDrift, reference = 10,000 independent pre-change events",
            "ours",
            "registered",
        ),
    )
}

RIVER: dict[str, Callable[[int], Any]] = {
    "adwin": lambda seed: drift.ADWIN(),
    "page-hinkley": lambda seed: drift.PageHinkley(),
    "kswin": lambda seed: drift.KSWIN(seed=seed),
}


def run_river(name: str, feature: Feature, seed: int) -> list[int]:
    """Alarm indices of River's detector over the whole feature.

    River's detectors watch numbers: a categorical feature is fed as the 0/1
    indicator of its tracked category. They reset themselves after an alarm.
    """
    detector = RIVER[name](seed)
    if feature.kind == "categorical":
        values = (feature.values == feature.tracked).astype(np.float64).tolist()
    else:
        values = feature.values.tolist()
    alarms = []
    for i, x in enumerate(values):
        detector.update(x)
        if detector.drift_detected:
            alarms.append(i)
    return alarms


def run_ours(
    feature: Feature, reference: npt.NDArray[Any], start: int, arl: float, seed: int
) -> tuple[list[int], float]:
    """Alarm indices of our detector from ``start`` on, and the seconds it took."""
    impl = ours()
    values = feature.values[start:]
    if feature.kind == "categorical":
        detector = impl.categorical([str(c) for c in reference], arl, seed)
        began = time.perf_counter()
        alarms = [i for i, c in enumerate(values.tolist()) if detector.update(c)]
    else:
        numeric = impl.numeric(np.asarray(reference, dtype=np.float64), arl, seed)
        began = time.perf_counter()
        alarms = list(numeric.update_many(values))
    seconds = time.perf_counter() - began
    return [start + int(i) for i in alarms], seconds


def run_detector(
    config: DetectorConfig, scenario: str, stream: Stream, seed: int, arl: float
) -> Run | None:
    """One run, or None when the configuration does not apply to the stream."""
    if config.max_events is not None and not stream.change_points:
        stream = stream.truncated(config.max_events)
    if config.reference == "registered" and any(f.reference is None for f in stream.features):
        return None  # recorded data: there is no independent pre-change sample
    start = stream.warmup if config.reference == "warmup" else 0
    alarms: list[list[int]] = []
    seconds = 0.0
    error = None
    try:
        for feature in stream.features:
            if config.family == "river":
                began = time.perf_counter()
                alarms.append(run_river(config.name, feature, seed))
                seconds += time.perf_counter() - began
                continue
            reference = feature.values[:start] if start else feature.reference
            assert reference is not None
            found, took = run_ours(feature, reference, start, arl, seed)
            alarms.append(found)
            seconds += took
    except (ValueError, RuntimeError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    result = score(alarms, stream.change_points, stream.n_events, start) if not error else None
    return Run(
        scenario=scenario,
        detector=config.name,
        seed=seed,
        n_events=stream.n_events,
        n_features=len(stream.features),
        change_points=stream.change_points,
        monitor_start=start,
        false_alarms=result.false_alarms if result else 0,
        monitored=result.monitored if result else 0,
        delays=result.delays if result else (),
        seconds=seconds,
        updates=(stream.n_events - start) * len(stream.features),
        error=error,
    )


# -- running -------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    scenario: str
    seed: int
    detectors: tuple[str, ...]
    arl: float


def run_task(task: Task) -> list[Run]:
    stream = BY_NAME[task.scenario].generate(task.seed)
    runs = []
    for name in task.detectors:
        run = run_detector(DETECTORS[name], task.scenario, stream, task.seed, task.arl)
        if run is not None:
            runs.append(run)
    return runs


def plan(scenarios: Sequence[str], detectors: Sequence[str], seeds: int, arl: float) -> list[Task]:
    """One task per scenario and seed, with the detectors that take that seed;
    the longest streams first, so the two workers finish together."""
    tasks = []
    for scenario in scenarios:
        for seed in range(seeds):
            names = tuple(d for d in detectors if seed < (DETECTORS[d].max_seeds or seeds))
            if names:
                tasks.append(Task(scenario, seed, names, arl))
    first = {"stationary": 0, "agrawal": 1, "sea": 2}

    def order(task: Task) -> int:
        return min((v for k, v in first.items() if k in task.scenario), default=3)

    return sorted(tasks, key=order)


def execute(tasks: Sequence[Task], workers: int, progress: bool = True) -> list[Run]:
    """Run the tasks, in this process for one worker, else in a pool of ``workers``."""
    if workers <= 1:
        return _collect(map(run_task, tasks), len(tasks), progress)
    with multiprocessing.get_context().Pool(workers) as pool:
        results = pool.imap_unordered(run_task, tasks, chunksize=1)
        return _collect(results, len(tasks), progress)


def _collect(results: Iterable[list[Run]], total: int, progress: bool) -> list[Run]:
    runs: list[Run] = []
    began = time.monotonic()
    for done, batch in enumerate(results, 1):
        runs.extend(batch)
        if progress and (done == total or done % max(1, total // 10) == 0):
            elapsed = time.monotonic() - began
            print(f"  {done}/{total} streams, {elapsed:.0f} s", file=sys.stderr, flush=True)
    return runs


def summaries(
    runs: Sequence[Run], scenarios: Sequence[str], detectors: Sequence[str], arl: float
) -> list[Summary]:
    out = []
    for scenario in scenarios:
        for detector in detectors:
            group = [r for r in runs if r.scenario == scenario and r.detector == detector]
            if group:
                limit = BY_NAME[scenario].limit(arl, reference_events(DETECTORS[detector]))
                out.append(summarize(sorted(group, key=lambda r: r.seed), limit))
    return out


def reference_events(detector: DetectorConfig) -> int:
    """How many events of the pre-change distribution the detector learns from (River's,
    which learn as they go, count as a warm-up)."""
    return REFERENCE_SIZE if detector.reference == "registered" else WARMUP


# -- the targets -------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    scenario: str
    text: str
    met: Callable[[Summary], bool]
    shown: Callable[[Summary], str]


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


TARGETS = (
    Target(
        "stationary-normal",
        "<= 0.01 false alarms per 1,000 events per feature",
        lambda s: s.false_alarms_per_1000 is not None and s.false_alarms_per_1000 <= 0.01,
        lambda s: (
            f"{_fmt(s.false_alarms_per_1000, 4)} ({s.false_alarms} in "
            f"{s.monitored_events:,} events)"
        ),
    ),
    Target(
        "mean-shift-1sd",
        "median delay <= 60 and no misses",
        lambda s: s.median_delay is not None and s.median_delay <= 60 and s.miss_rate == 0,
        lambda s: f"median {_fmt(s.median_delay)}, miss rate {_fmt(s.miss_rate, 3)}",
    ),
    Target(
        "mean-shift-0.5sd",
        "median delay <= 150 and no misses",
        lambda s: s.median_delay is not None and s.median_delay <= 150 and s.miss_rate == 0,
        lambda s: f"median {_fmt(s.median_delay)}, miss rate {_fmt(s.miss_rate, 3)}",
    ),
    Target(
        "variance-x2",
        "median delay <= 200",
        lambda s: s.median_delay is not None and s.median_delay <= 200,
        lambda s: f"median {_fmt(s.median_delay)}, miss rate {_fmt(s.miss_rate, 3)}",
    ),
    Target(
        "category-share-20-35",
        "detected within 2,000 events in >= 95% of seeds",
        lambda s: s.detected_within_2000 is not None and s.detected_within_2000 >= 0.95,
        lambda s: (
            f"{_fmt(None if s.detected_within_2000 is None else 100 * s.detected_within_2000)}%"
            f" of {s.change_points}"
        ),
    ),
)


def limit_target(scenario: str) -> Target:
    """Issue 16's target for a change whose information limit is known."""
    return Target(
        scenario,
        f"detected within {WITHIN_LONG:,} events in >= 95% of seeds, "
        f"median delay <= {LIMIT_FACTOR:g} x the limit",
        lambda s: (
            s.detected_within_3000 is not None
            and s.detected_within_3000 >= 0.95
            and s.delay_over_limit is not None
            and s.delay_over_limit <= LIMIT_FACTOR
        ),
        lambda s: (
            f"{_fmt(None if s.detected_within_3000 is None else 100 * s.detected_within_3000)}%"
            f" within, median {_fmt(s.median_delay)} = {_fmt(s.delay_over_limit, 2)} x "
            f"{_fmt(s.limit)}"
        ),
    )


def check_targets(results: Sequence[Summary], detector: str) -> list[dict[str, Any]]:
    checks = []
    by_scenario = {s.scenario: s for s in results if s.detector == detector}
    limited = [limit_target(s.scenario) for s in by_scenario.values() if s.limit is not None]
    for target in (*TARGETS, *limited):
        summary = by_scenario.get(target.scenario)
        status = "not run"
        shown = ""
        if summary is not None and summary.seeds:
            status = "PASS" if target.met(summary) else "FAIL"
            shown = target.shown(summary)
        checks.append(
            {
                "detector": detector,
                "scenario": target.scenario,
                "target": target.text,
                "status": status,
                "measured": shown,
            }
        )
    return checks


# -- output --------------------------------------------------------------------------

COLUMNS = (
    ("scenario", 22, "<"),
    ("detector", 15, "<"),
    ("events", 7, ">"),
    ("seeds", 5, ">"),
    ("median delay", 12, ">"),
    ("mean delay", 10, ">"),
    ("miss rate", 9, ">"),
    ("limit", 7, ">"),
    ("÷limit", 6, ">"),
    ("FA/1k/feat", 10, ">"),
    ("us/event", 8, ">"),
)


def table(results: Sequence[Summary]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            f"{c:{align}{width}}" for c, (_, width, align) in zip(cells, COLUMNS, strict=True)
        )

    lines = [line([c[0] for c in COLUMNS]), line(["-" * c[1] for c in COLUMNS])]
    previous = None
    for s in results:
        if previous is not None and s.scenario != previous:
            lines.append("")
        previous = s.scenario
        if not s.seeds:
            lines.append(line([s.scenario, s.detector, f"{s.events:,}", "0", *["n/a"] * 7]))
            lines.append(f"    {'; '.join(s.errors)}")
            continue
        lines.append(
            line(
                [
                    s.scenario,
                    s.detector,
                    f"{s.events:,}",
                    str(s.seeds),
                    _fmt(s.median_delay),
                    _fmt(s.mean_delay),
                    _fmt(s.miss_rate, 2),
                    _fmt(s.limit),
                    _fmt(s.delay_over_limit, 2),
                    _fmt(s.false_alarms_per_1000, 4),
                    _fmt(s.us_per_event, 2),
                ]
            )
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/detection.py",
        description="Detection delay, misses and false alarms of drift detectors.",
    )
    parser.add_argument("--seeds", type=int, help=f"seeds per scenario (default {DEFAULT_SEEDS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SEEDS} seeds: a smoke run")
    parser.add_argument(
        "--scenarios", help="comma-separated scenario or group names (default: all)"
    )
    parser.add_argument(
        "--detectors",
        help=f"comma-separated, from {', '.join(DETECTORS)} (default: all)",
    )
    parser.add_argument("--arl", type=float, default=DEFAULT_ARL, help="our detectors' ARL")
    parser.add_argument("--workers", type=int, default=MAX_WORKERS, help="processes, at most 2")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--list", action="store_true", help="list scenarios and detectors")
    return parser.parse_args(argv)


def _split(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for s in select(None):
            print(f"{s.name:24} {s.group:17} {s.description}")
        print()
        for d in DETECTORS.values():
            print(f"{d.name:24} {d.description}")
        return 0
    try:
        scenarios = [s.name for s in select(_split(args.scenarios))]
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    detectors = _split(args.detectors) or list(DETECTORS)
    unknown = [d for d in detectors if d not in DETECTORS]
    if unknown:
        print(f"unknown detectors {unknown}; known: {', '.join(DETECTORS)}", file=sys.stderr)
        return 2
    seeds = args.seeds or (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    workers = max(1, min(MAX_WORKERS, args.workers))
    if any(DETECTORS[d].family == "ours" for d in detectors):
        try:
            ours()
        except ImportError as exc:
            print(f"cannot import our detectors ({exc}); run River's alone with", file=sys.stderr)
            print("--detectors adwin,page-hinkley,kswin", file=sys.stderr)
            return 2

    tasks = plan(scenarios, detectors, seeds, args.arl)
    print(
        f"{len(scenarios)} scenarios, {len(detectors)} detectors, {seeds} seeds, {workers} workers",
        file=sys.stderr,
    )
    began = time.monotonic()
    runs = execute(tasks, workers)
    elapsed = time.monotonic() - began
    results = summaries(runs, scenarios, [d for d in DETECTORS if d in detectors], args.arl)

    print(table(results))
    print()
    unchanged = [n for n in scenarios if not BY_NAME[n].monitored_change]
    if unchanged:
        print(
            f"{', '.join(unchanged)}: the change leaves these features' distribution as it was,"
            " so alarms after it are false alarms too, and a miss rate of 1.00 is right."
        )
    notes = [
        "FA/1k/feat: false alarms per 1,000 monitored events per feature; delays in events;"
        " limit: the change's information limit at the detectors' ARL (benchmarks/limits.py),"
        " ÷limit: the median delay over it."
    ]
    if "kswin" in detectors:
        notes.append(
            f"KSWIN: at most {KSWIN_MAX_SEEDS} seeds, and the first {KSWIN_MAX_EVENTS:,} events"
            " of the stationary streams."
        )
    if any(DETECTORS[d].family == "ours" for d in detectors):
        notes.append(f"Our detectors: ARL {args.arl:g} per feature.")
    print(" ".join([*notes, f"{elapsed:.0f} s."]))
    checks = []
    for detector in (d for d in detectors if DETECTORS[d].family == "ours"):
        checks.extend(check_targets(results, detector))
    if checks:
        print()
        print("The issue's targets (they apply to ours-defaults):")
        for c in checks:
            print(
                f"  {c['status']:7} {c['detector']:15} {c['scenario']:21} "
                f"{c['target']}" + (f": {c['measured']}" if c["measured"] else "")
            )
    if args.json:
        document = {
            "settings": {
                "seeds": seeds,
                "arl": args.arl,
                "kswin_max_seeds": KSWIN_MAX_SEEDS,
                "kswin_max_events": KSWIN_MAX_EVENTS,
                "scenarios": {n: BY_NAME[n].description for n in scenarios},
                "unchanged_features": unchanged,
                "detectors": {d: DETECTORS[d].description for d in detectors},
            },
            "summaries": [asdict(s) | {"delay_over_limit": s.delay_over_limit} for s in results],
            "targets": checks,
            "runs": [
                asdict(r) for r in sorted(runs, key=lambda r: (r.scenario, r.detector, r.seed))
            ],
        }
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
