"""Throughput benchmark: the worker against the ceilings of its stack, in one run.

On one pre-produced predictions topic of a local Kafka broker (started here
unless ``--bootstrap-servers`` names one), each path reads every event,
``--repeats`` times, in turns:

- (a) a bare aiokafka consumer, ``getmany`` and ``orjson.loads`` (the ceiling);
- (b) a faust agent that only decodes, on the worker's own app settings
  (and (b') the same through ``driftline.streams.batching.take_batches``,
  when that module exists);
- (c) ``driftline worker`` as a process, from a fresh consumer group until
  its committed offsets reach the end (start-up reported apart);
- (d) replay, in a process of its own set up as ``driftline replay`` sets itself
  up, over the same events' bytes, in as many processes as the command takes
  (one per CPU, no more than the models, or two one after the other for one
  model); (d1) the same in one process.

Then, per layout: the worker's resident memory, and alert latency at half
the worker's measured rate. Once: the serialized state of a model monitor
after ``--state-events`` events, and the worker on broken input (every
event's JSON cut short, so each one is dead-lettered). With ``--scaling``:
100 models, half of their predictions never labelled, and the worker's
memory after them.
See benchmarks/README.md.

    python benchmarks/throughput.py --layout 1-model --repeats 1 --json out.json
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script. The project keeps its root off sys.path (PYTHONSAFEPATH=1);
    # append it, after the installed packages, so `benchmarks` can be imported.
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import importlib.util
import json
import math
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from benchmarks.alert_latency import latency_settings, measure_alert_latency, pooled
from benchmarks.probes import free_port, own_topics
from benchmarks.throughput_paths import (
    Bench,
    PathRun,
    median_or_none,
    run_bare_consumer,
    run_faust_decoder,
    run_replay,
    run_worker,
    watch_worker_run,
    worker_path_run,
)
from benchmarks.traffic import (
    LAYOUTS,
    SCALING,
    Layout,
    model_specs,
    prediction_events,
    publish_broken,
    publish_events,
    publish_specs,
)
from driftline.broker import LocalKafkaBroker
from driftline.monitors import ModelMonitor
from driftline.schemas import ModelSpec
from driftline.streams.settings import Settings
from driftline.streams.topics import end_offsets, ensure_topics

PATH_TITLES = {
    "a": "(a) aiokafka getmany + orjson",
    "b": "(b) faust agent, decode only",
    "b'": "(b') faust agent, take_batches",
    "c": "(c) driftline worker",
    "d": "(d) replay, as the command",
    "d1": "(d1) replay, one process",
}
BATCHING_MODULE = "driftline.streams.batching"
BATCHES_MARK = "'"
"""How the batch variant of a path is marked: (b') is (b) through ``take_batches``."""


@dataclass(frozen=True, slots=True)
class Options:
    """What to run, and how big."""

    events: int = 100_000
    repeats: int = 3
    layouts: tuple[str, ...] = ("1-model", "10-models")
    paths: tuple[str, ...] = ("a", "b", "c", "d", "d1")
    warmup_events: int | None = None
    """The specs' drift warm-up; None keeps the spec's default (what a new user gets)."""
    latency: bool = True
    latency_shifted_events: int = 1_000
    latency_trials: int = 1
    """Latency runs per layout, each on topics of its own; their alerts are pooled."""
    state_events: int = 10_000
    broken: bool = True
    broken_events: int = 50_000
    """Events of the broken-input case: 1 model, every event's JSON cut short."""
    scaling: bool = False
    scaling_events: int = 1_000_000
    timeout: float | None = None
    """Seconds any one run may take; None: scaled to the number of events."""

    def timeout_for(self, events: int) -> float:
        return self.timeout if self.timeout is not None else max(600.0, events / 50)


def progress(message: str) -> None:
    """One line on stderr, so the table on stdout stays clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# Topics and traffic.


def layout_settings(bootstrap_servers: str, name: str, workdir: Path) -> Settings:
    """Worker settings with topics named for this run only (a reused broker never mixes runs)."""
    prefix = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    topics = own_topics(prefix)
    return Settings.model_validate(
        {"bootstrap_servers": bootstrap_servers, "app_id": prefix, "data_dir": workdir / prefix}
        | topics
    )


def prepare_bench(bootstrap_servers: str, layout: Layout, options: Options, workdir: Path) -> Bench:
    """Create the layout's topics, register its models and publish its events once."""
    settings = layout_settings(bootstrap_servers, layout.name, workdir)
    ensure_topics(settings)
    specs = model_specs(layout, settings.topic_partitions, options.warmup_events)
    publish_specs(settings, specs)
    events = prediction_events(specs, options.events)
    lines = publish_events(settings, events, keep=True)
    ends = end_offsets(bootstrap_servers, settings.predictions_topic)
    rundir = workdir / settings.app_id  # each layout's logs and results apart
    rundir.mkdir(parents=True)
    bench = Bench(settings, specs, lines, ends, rundir, options.timeout_for(options.events))
    if bench.events != options.events:
        raise RuntimeError(f"published {options.events} events, the topic holds {bench.events}")
    return bench


# Running the paths.


def batching_available() -> bool:
    """Whether the project's batch consumption exists yet (path (b'))."""
    return importlib.util.find_spec(BATCHING_MODULE) is not None


def runners(paths: Sequence[str]) -> dict[str, Callable[[Bench, str], PathRun]]:
    """The runner of each path asked for, (b') with (b) when batching exists, in table order."""
    known: dict[str, Callable[[Bench, str], PathRun]] = {
        "a": run_bare_consumer,
        "b": run_faust_decoder,
        "b'": lambda bench, tag: run_faust_decoder(bench, tag, batches=True),
        "c": run_worker,
        "d": run_replay,
        "d1": lambda bench, tag: run_replay(bench, tag, processes=1),
    }
    wanted = set(paths) | ({"b'"} if "b" in paths and batching_available() else set())
    return {path: run for path, run in known.items() if path in wanted}


def run_paths(bench: Bench, options: Options) -> dict[str, list[PathRun | str]]:
    """Every path, ``options.repeats`` times, taking turns so that load drifts evenly.

    A path that fails leaves its error text in place of a run: (b') depends
    on an interface still being written, and must not sink the other figures.
    """
    runs: dict[str, list[PathRun | str]] = {}
    for repeat in range(options.repeats):
        for path, run in runners(options.paths).items():
            tag = f"{path.replace(BATCHES_MARK, '-batches')}-{repeat}"
            try:
                result: PathRun | str = run(bench, tag)
            except Exception as error:
                if path != "b'":
                    raise
                result = f"{type(error).__name__}: {error}"
            runs.setdefault(path, []).append(result)
            progress(f"{PATH_TITLES[path]}, run {repeat + 1}: {describe(result)}")
    return runs


def describe(run: PathRun | str) -> str:
    if isinstance(run, str):
        return f"failed: {run}"
    return (
        f"{run.events:,} events, {run.events_per_second:,.0f} events/s, "
        f"{run.cpu_us_per_event:,.1f} µs CPU/event"
    )


def path_summary(runs: list[PathRun | str]) -> dict[str, Any]:
    """Medians over a path's runs, with every run's figures."""
    done = [run for run in runs if isinstance(run, PathRun)]
    return {
        "runs": [run.figures() if isinstance(run, PathRun) else {"error": run} for run in runs],
        "events_per_second": median_or_none([run.events_per_second for run in done]),
        "cpu_us_per_event": median_or_none([run.cpu_us_per_event for run in done]),
        "startup_seconds": median_or_none([run.startup_seconds for run in done]),
        "events_consumed": [run.events for run in done],
    }


def ratios(summaries: dict[str, dict[str, Any]]) -> dict[str, float]:
    """c/a, c/b, d/a, d1/a (and b/a, c/b') of the median rates, where both were measured."""
    rate = {path: summary["events_per_second"] for path, summary in summaries.items()}
    wanted = [("c", "a"), ("c", "b"), ("d", "a"), ("d1", "a"), ("b", "a"), ("c", "b'")]
    return {
        f"{top}/{bottom}": rate[top] / rate[bottom]
        for top, bottom in wanted
        if rate.get(top) and rate.get(bottom)
    }


# Per layout: the paths, the worker's memory, alert latency.


def run_layout(
    bootstrap_servers: str, layout: Layout, options: Options, workdir: Path
) -> dict[str, Any]:
    """Everything measured on one layout, as plain data."""
    progress(f"{layout.title}: publishing {options.events:,} events")
    bench = prepare_bench(bootstrap_servers, layout, options, workdir)
    runs = run_paths(bench, options)
    summaries = {path: path_summary(path_runs) for path, path_runs in runs.items()}
    figures: dict[str, Any] = {
        "layout": layout.title,
        "models": layout.models,
        "features": layout.features,
        "events": bench.events,
        "event_bytes_mean": sum(map(len, bench.lines)) / len(bench.lines),
        "partitions_used": sum(1 for end in bench.ends.values() if end),
        "paths": summaries,
        "ratios": ratios(summaries),
    }
    worker_runs = [run for run in runs.get("c", []) if isinstance(run, PathRun)]
    if worker_runs:
        figures["worker_resident_bytes"] = statistics.median(
            run.details["resident_bytes"] for run in worker_runs
        )
        if options.latency:
            rate = summaries["c"]["events_per_second"] / 2
            progress(f"{layout.title}: alert latency at {rate:,.0f} events/s")
            figures["alert_latency"] = pooled(
                [
                    measure_alert_latency(
                        latency_settings(bench.settings, workdir, trial),
                        bench.specs,
                        rate=rate,
                        shifted_events=options.latency_shifted_events,
                        log=workdir / f"latency-{trial}.log",
                        timeout=options.timeout_for(options.events),
                    )
                    for trial in range(options.latency_trials)
                ]
            )
    return figures


# Once: the monitor's serialized state.


def monitor_state_size(spec: ModelSpec, events: int) -> dict[str, Any]:
    """Bytes of a :class:`ModelMonitor`'s JSON state after ``events`` events, per feature too.

    The reference profile is counted apart: it is the model's, not the detectors'.
    """
    monitor = ModelMonitor(spec)
    monitor.update_many(list(prediction_events([spec], events, seed=7)))
    state = monitor.to_state()
    total = len(orjson.dumps(state))
    reference = len(orjson.dumps(state["reference"]))
    features = len(monitor.monitored_features)
    return {
        "events": events,
        "monitored_features": features,
        "state_bytes": total,
        "reference_bytes": reference,
        "bytes_per_feature": total / features,
        "bytes_per_feature_without_reference": (total - reference) / features,
        "bytes_by_part": {key: len(orjson.dumps(value)) for key, value in state.items()},
    }


# Broken input: every event dead-lettered.


def run_broken(bootstrap_servers: str, options: Options, workdir: Path) -> dict[str, Any]:
    """The worker on ``broken_events`` events of 1 model whose JSON is cut short, each
    ``repeats`` times: what a producer with a bug costs a worker (a dead letter for each)."""
    layout = LAYOUTS["1-model"]
    settings = layout_settings(bootstrap_servers, "broken", workdir)
    ensure_topics(settings)
    specs = model_specs(layout, settings.topic_partitions, options.warmup_events)
    publish_specs(settings, specs)
    progress(f"broken input: publishing {options.broken_events:,} events, each cut short")
    published = publish_broken(settings, prediction_events(specs, options.broken_events))
    ends = end_offsets(bootstrap_servers, settings.predictions_topic)
    rundir = workdir / settings.app_id
    rundir.mkdir(parents=True)
    bench = Bench(settings, specs, [], ends, rundir, options.timeout_for(published))
    runs = []
    for repeat in range(options.repeats):
        run = run_worker(bench, f"c-{repeat}")
        if run.details["dead_lettered"] != published:
            raise RuntimeError(
                f"the worker dead-lettered {run.details['dead_lettered']} of {published} "
                f"broken events ({rundir})"
            )
        progress(f"broken input, (c) driftline worker, run {repeat + 1}: {describe(run)}")
        runs.append(run)
    return {"layout": layout.title, "events": published, "worker": path_summary(list(runs))}


# Optionally: 100 models, half the predictions never labelled.


def run_scaling(bootstrap_servers: str, options: Options, workdir: Path) -> dict[str, Any]:
    """The worker's resident memory after ``scaling_events`` predictions of 100 models,
    half of them followed by their label, half never."""
    settings = layout_settings(bootstrap_servers, SCALING.name, workdir)
    ensure_topics(settings)
    specs = model_specs(SCALING, settings.topic_partitions, options.warmup_events)
    publish_specs(settings, specs)
    progress(f"{SCALING.title}: publishing {options.scaling_events:,} events and half the labels")
    publish_events(settings, prediction_events(specs, options.scaling_events), labelled=2)
    ends = {
        topic: end_offsets(bootstrap_servers, topic)
        for topic in (settings.predictions_topic, settings.labels_topic)
    }
    worker_settings = settings.model_copy(
        update={"app_id": f"{settings.app_id}-c", "web_enabled": True, "web_port": free_port()}
    )
    progress(f"{SCALING.title}: running the worker")
    watch = watch_worker_run(
        worker_settings,
        workdir / "scaling.log",
        expected=options.scaling_events,
        ends_by_topic=ends,
        timeout=options.timeout_for(options.scaling_events),
    )
    run = worker_path_run(watch, options.scaling_events)
    labels = (watch.report or {}).get("labels", {})
    return {
        "layout": SCALING.title,
        "events": options.scaling_events,
        "labels_sent": sum(ends[settings.labels_topic].values()),
        "worker": run.figures(),
        "worker_resident_bytes": watch.resident_bytes,
        "waiting_in_join": labels.get("waiting_in_join"),
    }


# The whole run.


@contextlib.contextmanager
def kafka(bootstrap_servers: str | None, workdir: Path) -> Iterator[str]:
    """The bootstrap servers to use: those given, or a local broker's for the run."""
    if bootstrap_servers:
        yield bootstrap_servers
        return
    progress("starting a local Kafka broker")
    with LocalKafkaBroker(data_dir=workdir / "kafka") as broker:
        yield broker.bootstrap_servers


def run(options: Options, bootstrap_servers: str | None = None) -> dict[str, Any]:
    """Every figure the options ask for, as plain data."""
    started = time.monotonic()
    figures: dict[str, Any] = {"options": asdict(options), "layouts": {}}
    with (
        tempfile.TemporaryDirectory(prefix="throughput-") as scratch,
        kafka(bootstrap_servers, Path(scratch)) as servers,
    ):
        for name in options.layouts:
            figures["layouts"][name] = run_layout(servers, LAYOUTS[name], options, Path(scratch))
        spec = model_specs(LAYOUTS["1-model"], 1, options.warmup_events)[0]
        figures["monitor_state"] = monitor_state_size(spec, options.state_events)
        if options.broken:
            figures["broken"] = run_broken(servers, options, Path(scratch))
        if options.scaling:
            figures["scaling"] = run_scaling(servers, options, Path(scratch))
    figures["elapsed_seconds"] = time.monotonic() - started
    return figures


# The table.


def number(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def layout_table(figures: dict[str, Any], repeats: int) -> list[str]:
    lines = [
        f"== {figures['layout']}: {figures['events']:,} events of "
        f"{figures['event_bytes_mean']:.0f} bytes on {figures['partitions_used']} partition(s), "
        f"medians of {repeats} ==",
        f"{'path':<34} {'events/s':>10} {'CPU µs/event':>13} {'startup s':>10}",
    ]
    for path, summary in figures["paths"].items():
        lines.append(
            f"{PATH_TITLES[path]:<34} {number(summary['events_per_second']):>10} "
            f"{number(summary['cpu_us_per_event'], 1):>13} "
            f"{number(summary['startup_seconds'], 2):>10}"
        )
        errors = [run["error"] for run in summary["runs"] if "error" in run]
        lines += [f"    failed: {error}" for error in errors[:1]]
    measured = "  ".join(f"{k} {v:.3g}" for k, v in figures["ratios"].items())
    lines.append(f"ratios: {measured or '-'}")
    if "worker_resident_bytes" in figures:
        lines.append(f"worker resident memory at the end: {mib(figures['worker_resident_bytes'])}")
    if "alert_latency" in figures:
        lines.append(latency_line(figures["alert_latency"]))
    return lines


def latency_line(latency: dict[str, Any]) -> str:
    trials = latency.get("trials", [])
    each = (
        f" ({len(trials)} runs pooled; p99 of each: "
        + ", ".join(f"{number(trial['p99_seconds'], 3)} s" for trial in trials)
        + ")"
        if trials
        else ""
    )
    return (
        f"alert latency at {latency['rate_events_per_second']:,.0f} events/s: "
        f"p50 {number(latency['p50_seconds'], 3)} s, p99 {number(latency['p99_seconds'], 3)} s, "
        f"max {number(latency['max_seconds'], 3)} s over {latency['alerts_timed']} alerts{each}; "
        f"the worker settled the last event {latency['behind_at_end_seconds']:.1f} s after "
        "its produce"
    )


def mib(count: float) -> str:
    return f"{count / 2**20:,.0f} MiB"


def state_lines(state: dict[str, Any]) -> list[str]:
    return [
        f"== monitor state after {state['events']:,} events, "
        f"{state['monitored_features']} monitored features ==",
        f"serialized: {state['state_bytes'] / 1024:,.1f} KiB, "
        f"{state['bytes_per_feature'] / 1024:,.1f} KiB per feature; "
        f"without the reference profile ({state['reference_bytes'] / 1024:,.1f} KiB): "
        f"{state['bytes_per_feature_without_reference'] / 1024:,.1f} KiB per feature",
    ]


def broken_lines(broken: dict[str, Any]) -> list[str]:
    worker = broken["worker"]
    return [
        f"== broken input: {broken['layout']}, {broken['events']:,} events, each one's JSON "
        "cut short ==",
        f"(c) driftline worker: {number(worker['events_per_second'])} events/s, "
        f"{number(worker['cpu_us_per_event'], 1)} µs CPU/event (medians), every event "
        "dead-lettered",
    ]


def scaling_lines(scaling: dict[str, Any]) -> list[str]:
    worker = scaling["worker"]
    return [
        f"== scaling: {scaling['layout']}, {scaling['events']:,} events, "
        f"{scaling['labels_sent']:,} labels ==",
        f"worker: {number(worker['events_per_second'])} events/s; resident memory at the end "
        f"{mib(scaling['worker_resident_bytes'])}; waiting in the label join "
        f"{number(scaling['waiting_in_join'])}",
    ]


def report(figures: dict[str, Any]) -> str:
    repeats = figures["options"]["repeats"]
    lines: list[str] = []
    for layout in figures["layouts"].values():
        lines += [*layout_table(layout, repeats), ""]
    lines += state_lines(figures["monitor_state"])
    if "broken" in figures:
        lines += ["", *broken_lines(figures["broken"])]
    if "scaling" in figures:
        lines += ["", *scaling_lines(figures["scaling"])]
    lines += ["", f"took {figures['elapsed_seconds']:,.0f} s"]
    return "\n".join(lines)


# The command line.


def parse_options(argv: Sequence[str] | None = None) -> tuple[Options, argparse.Namespace]:
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--layout", choices=[*LAYOUTS, "both"], default="both")
    parser.add_argument(
        "--paths", default=",".join(defaults.paths), help="comma-separated, of a, b, c, d, d1"
    )
    parser.add_argument("--warmup-events", type=int, default=None, help="the specs' drift warm-up")
    parser.add_argument("--no-latency", action="store_true", help="skip the alert latency run")
    parser.add_argument(
        "--latency-shifted-events",
        type=int,
        default=defaults.latency_shifted_events,
        help="events per model after the shift, in the latency run",
    )
    parser.add_argument(
        "--latency-trials",
        type=int,
        default=defaults.latency_trials,
        help="latency runs per layout, their alerts pooled",
    )
    parser.add_argument("--state-events", type=int, default=defaults.state_events)
    parser.add_argument(
        "--no-broken", action="store_true", help="skip the broken-input case (dead letters)"
    )
    parser.add_argument("--broken-events", type=int, default=defaults.broken_events)
    parser.add_argument("--scaling", action="store_true", help="also the 100-model memory case")
    parser.add_argument("--scaling-events", type=int, default=defaults.scaling_events)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    paths = tuple(path.strip() for path in args.paths.split(",") if path.strip())
    if unknown := set(paths) - {"a", "b", "c", "d", "d1"}:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    if args.latency_trials < 1:
        parser.error("--latency-trials must be at least 1")
    options = Options(
        events=args.events,
        repeats=args.repeats,
        layouts=tuple(LAYOUTS) if args.layout == "both" else (args.layout,),
        paths=paths,
        warmup_events=args.warmup_events,
        latency=not args.no_latency,
        latency_shifted_events=args.latency_shifted_events,
        latency_trials=args.latency_trials,
        state_events=args.state_events,
        broken=not args.no_broken,
        broken_events=args.broken_events,
        scaling=args.scaling,
        scaling_events=args.scaling_events,
        timeout=args.timeout,
    )
    return options, args


def exit_on_sigterm(signum: int, frame: object) -> None:
    """Leave through the context managers, so the broker stops and scratch files go."""
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> None:
    options, args = parse_options(argv)
    figures = run(options, args.bootstrap_servers)
    figures["command"] = " ".join(["benchmarks/throughput.py", *(argv or sys.argv[1:])])
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    main()
