"""Scaling benchmark: one busy model keyed by event id, watched in two stages by 1 and 2 workers.

One model (20 numeric features) is published once, keyed by event id, over
every partition of a predictions topic of a local Kafka broker (started here
unless ``--bootstrap-servers`` names one); for comparison, the same events
keyed by model id on a topic of their own. Then, each from a fresh consumer
group with output topics of its own (so no run reads another's summaries or
warm-up reference), and ``--repeats`` times in turns:

- **by model id, 1 worker:** the model watched event by event, on one worker;
- **by event id, N workers** for each N of ``--workers``: each worker summarises
  its partitions' batches (stage 1), and the worker that owns the version's
  summaries partition tests the summaries (stage 2).

Per run: events/s from the first progress until every prediction is settled
(processed, dead-lettered or a duplicate) and until the last summary is
taken; the CPU time of each stage, read from the workers' own ``/status``
(``cpu_seconds`` of the predictions agent, stage 1, and of the summaries
agent, stage 2) and of the processes; the summaries' count and bytes. Then
the arithmetic for a larger deployment (``--target-partitions``,
``--target-rate``) from the measured costs. See benchmarks/README.md.

    python benchmarks/hot_model.py --events 100000 --repeats 2 --json out.json
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
import math
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from benchmarks.probes import cpu_seconds, free_port, own_topics, settled
from benchmarks.probes import worker_status as read_status
from benchmarks.throughput import exit_on_sigterm, kafka, progress
from benchmarks.traffic import HOT_MODEL, Layout, model_specs, prediction_events, publish_events
from benchmarks.traffic import publish_specs as register_specs
from driftline.schemas import KeyedBy
from driftline.streams.settings import Settings
from driftline.streams.topics import end_offsets, ensure_topics
from driftline.worker_process import WorkerProcess

BY_MODEL_ID = Layout("by-model-id", "1 model x 20 numeric features, keyed by model id", 1)
POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Options:
    """What to run, and how big."""

    events: int = 100_000
    repeats: int = 2
    workers: tuple[int, ...] = (1, 2)
    partitions: int = 8
    """Partitions of every topic: the hot model's events spread over all of them."""
    baseline: bool = True
    """Also run the same events keyed by model id, on one worker."""
    warmup_events: int = 1_000
    """The spec's drift warm-up (no reference is registered): short, so the steady state
    that scaling is about dominates."""
    target_partitions: int = 64
    target_rate: float = 1_000_000.0
    timeout: float = 900.0


# The traffic, published once.


@dataclass(frozen=True, slots=True)
class Traffic:
    """The shared input topics: the registry and one predictions topic per keying."""

    settings: Settings
    """Settings naming the registry topic (read by every run)."""
    predictions: dict[KeyedBy, str]
    events: int


def publish_traffic(servers: str, options: Options, workdir: Path) -> Traffic:
    """Register the model under each keying and publish the same events under each."""
    prefix = f"hot-{uuid.uuid4().hex[:6]}"
    base = Settings.model_validate(
        {
            "bootstrap_servers": servers,
            "app_id": prefix,
            "data_dir": workdir / prefix,
            "topic_partitions": options.partitions,
        }
        | own_topics(prefix)
    )
    ensure_topics(base)
    keyings = [KeyedBy.EVENT_ID] + ([KeyedBy.MODEL_ID] if options.baseline else [])
    predictions = {}
    for keyed_by in keyings:
        layout = HOT_MODEL if keyed_by is KeyedBy.EVENT_ID else BY_MODEL_ID
        spec = model_specs(layout, options.partitions, options.warmup_events)[0]
        spec = spec.model_copy(update={"model_id": f"hot-{keyed_by.value.replace('_', '-')}"})
        settings = base.model_copy(
            update={"predictions_topic": f"{prefix}-predictions-{keyed_by.value}"}
        )
        ensure_topics(settings)
        register_specs(settings, [spec])
        progress(f"publishing {options.events:,} events keyed by {keyed_by.value}")
        publish_events(settings, prediction_events([spec], options.events), keyed_by=keyed_by)
        predictions[keyed_by] = settings.predictions_topic
        published = sum(end_offsets(servers, settings.predictions_topic).values())
        if published != options.events:
            raise RuntimeError(f"published {options.events} events, the topic holds {published}")
    return Traffic(base, predictions, options.events)


# One run: a fresh group of workers until every event and every summary is settled.


@dataclass(frozen=True, slots=True)
class Mark:
    """One look at the running workers, their figures added up."""

    at: float
    settled: int
    """Predictions processed, dead-lettered or counted as duplicates."""
    cpu: float
    """The processes' CPU time."""
    stage_1: float
    """CPU time of the predictions agents (the first stage)."""
    stage_2: float
    """CPU time of the summaries agents (the second stage)."""
    summaries: int
    """Summaries taken."""


STEADY_FROM = 0.2
"""The share of the events settled from which a run counts as steady: the warm-up (its
summaries carry rows, the second stage builds the reference) is over well before."""


def look(members: list[WorkerProcess], reports: list[dict[str, Any] | None], at: float) -> Mark:
    """The workers' figures now, from their last reports and their processes."""

    def cpu_of(topic: str) -> float:
        return sum(
            float((r or {}).get("topics", {}).get(topic, {}).get("cpu_seconds", 0.0))
            for r in reports
        )

    return Mark(
        at,
        sum(settled(report) or 0 for report in reports),
        sum(cpu_seconds(worker.pid) for worker in members),
        cpu_of("predictions"),
        cpu_of("summaries"),
        sum(settled(report, "summaries") or 0 for report in reports),
    )


def run_settings(traffic: Traffic, keyed_by: KeyedBy, tag: str, workdir: Path) -> Settings:
    """Settings of one run: the shared registry and predictions, every other topic its own."""
    prefix = f"{traffic.settings.app_id}-{tag}"
    shared = {
        "predictions_topic": traffic.predictions[keyed_by],
        "models_topic": traffic.settings.models_topic,
    }
    return traffic.settings.model_copy(
        update=own_topics(prefix) | shared | {"app_id": prefix, "data_dir": workdir / prefix}
    )


def run_workers(
    traffic: Traffic, keyed_by: KeyedBy, count: int, tag: str, workdir: Path, timeout: float
) -> dict[str, Any]:
    """``count`` workers in one group on the traffic keyed by ``keyed_by``: their figures."""
    settings = run_settings(traffic, keyed_by, tag, workdir)
    ensure_topics(settings)
    members = [
        WorkerProcess(
            settings.model_copy(
                update={
                    "web_enabled": True,
                    "web_port": free_port(),
                    "data_dir": settings.data_dir / f"worker-{index}",
                }
            ),
            workdir / f"{tag}-worker-{index}.log",
        )
        for index in range(count)
    ]
    started = time.monotonic()
    for worker in members:
        worker.start()
    try:
        return _follow(members, settings, traffic.events, started, timeout)
    finally:
        for worker in members:
            worker.stop()


def _follow(
    members: list[WorkerProcess],
    settings: Settings,
    expected: int,
    started: float,
    timeout: float,
) -> dict[str, Any]:
    reports: list[dict[str, Any] | None] = [None] * len(members)
    idle = first = steady = settled_at = None
    summary_ends: dict[int, int] | None = None
    while True:
        for worker in members:
            if not worker.running:
                raise RuntimeError(f"a worker exited: {worker.log_text()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the run took over {timeout:.0f} s ({members[0].log_path})")
        reports = [
            read_status(worker.settings.web_port) or report
            for worker, report in zip(members, reports, strict=True)
        ]
        mark = look(members, reports, time.monotonic() - started)
        if mark.settled == 0:
            idle = mark
        elif first is None:
            first = mark
        if steady is None and STEADY_FROM * expected <= mark.settled < expected:
            steady = mark
        if settled_at is None and mark.settled >= expected:
            settled_at = mark
        if settled_at is not None:
            ends = end_offsets(settings.bootstrap_servers, settings.summaries_topic)
            if ends == summary_ends and mark.summaries >= sum(ends.values()):
                assert first is not None
                begin = first if first.settled < expected else (idle or first)
                figures = _figures(members, reports, settings, (begin, settled_at, mark), expected)
                # A run too short to be seen in between counts whole.
                return figures | steady_figures(steady or begin, mark)
            summary_ends = ends
        time.sleep(POLL_SECONDS)


def steady_figures(steady: Mark, done: Mark) -> dict[str, float]:
    """Each stage's CPU time from the first look with ``STEADY_FROM`` of the events settled to
    the end: what the stages cost once the warm-up is over."""
    events = done.settled - steady.settled
    summaries = done.summaries - steady.summaries
    stage_1, stage_2 = done.stage_1 - steady.stage_1, done.stage_2 - steady.stage_2
    return {
        "steady_events": events,
        "stage_1_cpu_us_per_event": 1e6 * stage_1 / events if events else math.nan,
        "stage_2_cpu_us_per_event": 1e6 * stage_2 / events if events else math.nan,
        "stage_2_over_stage_1": stage_2 / stage_1 if stage_1 else math.nan,
        "events_per_summary": events / summaries if summaries else math.nan,
        "stage_2_cpu_us_per_summary": 1e6 * stage_2 / summaries if summaries else math.nan,
    }


def _figures(
    members: list[WorkerProcess],
    reports: list[dict[str, Any] | None],
    settings: Settings,
    marks: tuple[Mark, Mark, Mark],
    expected: int,
) -> dict[str, Any]:
    """One run's whole figures: rates, each stage's CPU time per event, the summaries."""
    begin, settled_at, done = marks
    timed = expected - begin.settled

    def topic_total(topic: str, count: str) -> float:
        return sum(float((r or {}).get("topics", {}).get(topic, {}).get(count, 0)) for r in reports)

    sizes = summary_sizes(settings)
    steady = [size for size, warming_up in sizes if not warming_up]
    return {
        "workers": len(members),
        "events": expected,
        "events_per_second": timed / (settled_at.at - begin.at),
        "events_per_second_to_last_summary": timed / (done.at - begin.at),
        "process_cpu_us_per_event": 1e6 * (done.cpu - begin.cpu) / timed,
        "whole_stage_1_cpu_us_per_event": 1e6 * done.stage_1 / expected,
        "whole_stage_2_cpu_us_per_event": 1e6 * done.stage_2 / expected,
        "processed": topic_total("predictions", "processed"),
        "dead_lettered": topic_total("predictions", "dead_lettered"),
        "summaries": len(sizes),
        "summaries_taken": done.summaries,
        "summary_bytes_mean": statistics.fmean(size for size, _ in sizes) if sizes else 0.0,
        "steady_summary_bytes_mean": statistics.fmean(steady) if steady else math.nan,
        "alerts": [dict((r or {}).get("alerts", {})) for r in reports],
    }


def summary_sizes(settings: Settings) -> list[tuple[int, bool]]:
    """The byte size of every summary the run's first stages sent, and whether it carried
    warm-up rows (the version had no reference yet)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=3_000,
    )
    try:
        partitions = consumer.partitions_for_topic(settings.summaries_topic) or set()
        consumer.assign([TopicPartition(settings.summaries_topic, p) for p in partitions])
        consumer.seek_to_beginning()
        return [
            (len(record.value or b""), bool(orjson.loads(record.value or b"{}").get("warmup")))
            for record in consumer
        ]
    finally:
        consumer.close()


# The whole run, and the arithmetic for a larger deployment.


def cases(options: Options) -> list[tuple[str, KeyedBy, int]]:
    """Each case as (name, keying, workers), in the order they take turns."""
    wanted = [
        (f"by event id, {n} worker{'s' if n > 1 else ''}", KeyedBy.EVENT_ID, n)
        for n in options.workers
    ]
    if options.baseline:
        wanted.insert(0, ("by model id, 1 worker", KeyedBy.MODEL_ID, 1))
    return wanted


def run(options: Options, bootstrap_servers: str | None = None) -> dict[str, Any]:
    """Every figure the options ask for, as plain data."""
    started = time.monotonic()
    figures: dict[str, Any] = {"options": asdict(options), "cases": {}}
    with (
        tempfile.TemporaryDirectory(prefix="hot-model-") as scratch,
        kafka(bootstrap_servers, Path(scratch)) as servers,
    ):
        workdir = Path(scratch)
        traffic = publish_traffic(servers, options, workdir)
        for repeat in range(options.repeats):
            for name, keyed_by, workers in cases(options):
                tag = f"{keyed_by.value.replace('_', '-')}-{workers}w-{repeat}"
                progress(f"{name}, run {repeat + 1}")
                result = run_workers(traffic, keyed_by, workers, tag, workdir, options.timeout)
                progress(f"{name}, run {repeat + 1}: {result['events_per_second']:,.0f} events/s")
                figures["cases"].setdefault(name, []).append(result)
    figures["medians"] = {name: medians(runs) for name, runs in figures["cases"].items()}
    figures["arithmetic"] = arithmetic(figures["medians"], options)
    figures["elapsed_seconds"] = time.monotonic() - started
    return figures


NUMBERS = (
    "events_per_second",
    "events_per_second_to_last_summary",
    "process_cpu_us_per_event",
    "stage_1_cpu_us_per_event",
    "stage_2_cpu_us_per_event",
    "stage_2_over_stage_1",
    "whole_stage_1_cpu_us_per_event",
    "whole_stage_2_cpu_us_per_event",
    "summaries",
    "summary_bytes_mean",
    "steady_summary_bytes_mean",
    "events_per_summary",
    "stage_2_cpu_us_per_summary",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median of each figure over a case's runs (NaN figures left out)."""
    result = {}
    for name in NUMBERS:
        values = [float(run[name]) for run in runs if not math.isnan(float(run[name]))]
        result[name] = statistics.median(values) if values else math.nan
    return result


def arithmetic(by_case: dict[str, dict[str, float]], options: Options) -> dict[str, Any]:
    """What ``target_rate`` events/s of one model over ``target_partitions`` partitions takes,
    from the measured costs of the first two-stage case (one worker, the fewest).

    - Stage-1 workers: the rate over what one worker carried alone (at most one per
      partition has work).
    - Summary traffic and stage-2 load, two ways. As measured: summaries of the measured
      events each (a worker then held all the partitions, so a batch was shared by them
      all: the most summaries). At the target: a worker at capacity takes full batches
      (``DRIFTLINE_BATCH_MAX_EVENTS``) over the partitions it holds, target partitions
      over workers.
    - Stage-2 load: summaries a second times the measured CPU time of one, as a share of
      one core: it all lands on the one worker owning the version's summaries partition.
    """
    two_stage = [figures for name, figures in by_case.items() if name.startswith("by event id")]
    if not two_stage:
        return {}
    one = two_stage[0]
    per_worker = one["events_per_second"]
    workers = math.ceil(options.target_rate / per_worker)
    batch = Settings.model_fields["batch_max_events"].default
    partitions_per_worker = max(options.target_partitions / workers, 1.0)
    result: dict[str, Any] = {
        "rate": options.target_rate,
        "partitions": options.target_partitions,
        "events_per_second_per_worker": per_worker,
        "stage_1_workers": workers,
        "stage_1_workers_fit_partitions": workers <= options.target_partitions,
        "batch_max_events": batch,
    }
    for case, events_per_summary in (
        ("measured", one["events_per_summary"]),
        ("target", batch / partitions_per_worker),
    ):
        if not events_per_summary > 0:  # not measured
            continue
        summaries_per_second = options.target_rate / events_per_summary
        result[case] = {
            "events_per_summary": events_per_summary,
            "summaries_per_second": summaries_per_second,
            "summary_megabytes_per_second": summaries_per_second
            * one["steady_summary_bytes_mean"]
            / 1e6,
            "stage_2_core_share": summaries_per_second * one["stage_2_cpu_us_per_summary"] / 1e6,
        }
    return result


# The table.


def report(figures: dict[str, Any]) -> str:
    options = figures["options"]
    lines = [
        f"== one model, {options['events']:,} events over {options['partitions']} partitions, "
        f"medians of {options['repeats']} ==",
        f"{'case':<26} {'events/s':>9} {'to last':>9} {'proc µs/ev':>10} {'stage 1':>8} "
        f"{'stage 2':>8} {'2/1':>6} {'summaries':>9} {'bytes':>7} {'µs/summ':>8}",
        "(events/s until every prediction is settled, and until the last summary is taken; "
        "CPU µs an event: the processes' over the run, then stage 1's and stage 2's once "
        f"{STEADY_FROM:.0%} of the events are settled; summaries in all; bytes of one "
        "without warm-up rows; stage 2's CPU µs a summary once steady)",
    ]
    for name, m in figures["medians"].items():
        lines.append(
            f"{name:<26} {m['events_per_second']:>9,.0f} "
            f"{m['events_per_second_to_last_summary']:>9,.0f} "
            f"{m['process_cpu_us_per_event']:>10.1f} {m['stage_1_cpu_us_per_event']:>8.2f} "
            f"{m['stage_2_cpu_us_per_event']:>8.2f} {pct(m['stage_2_over_stage_1']):>6} "
            f"{m['summaries']:>9,.0f} {number(m['steady_summary_bytes_mean']):>7} "
            f"{m['stage_2_cpu_us_per_summary']:>8,.0f}"
        )
    sums = figures["arithmetic"]
    if sums:
        lines += [
            "",
            f"== {sums['rate']:,.0f} events/s of one model over {sums['partitions']} partitions "
            "(from the 1-worker two-stage costs) ==",
            f"stage-1 workers: {sums['stage_1_workers']} at "
            f"{sums['events_per_second_per_worker']:,.0f} events/s each"
            + ("" if sums["stage_1_workers_fit_partitions"] else " (more than the partitions)"),
        ]
        for case, title in (
            ("measured", "summaries as measured"),
            ("target", f"full batches of {sums['batch_max_events']:,} over a worker's partitions"),
        ):
            each = sums.get(case)
            if each is None:
                lines.append(f"{title}: not measured")
                continue
            lines.append(
                f"{title}: {each['events_per_summary']:,.0f} events a summary, "
                f"{each['summaries_per_second']:,.0f} summaries/s, "
                f"{each['summary_megabytes_per_second']:,.1f} MB/s, stage 2 "
                f"{pct(each['stage_2_core_share'])} of one core"
            )
    lines += ["", f"took {figures['elapsed_seconds']:,.0f} s"]
    return "\n".join(lines)


def number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


# The command line.


def parse_options(argv: Sequence[str] | None = None) -> tuple[Options, argparse.Namespace]:
    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=defaults.events)
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument(
        "--workers", default="1,2", help="comma-separated worker counts of the two-stage runs"
    )
    parser.add_argument("--partitions", type=int, default=defaults.partitions)
    parser.add_argument(
        "--warmup-events", type=int, default=defaults.warmup_events, help="the spec's warm-up"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the run keyed by model id")
    parser.add_argument("--target-partitions", type=int, default=defaults.target_partitions)
    parser.add_argument("--target-rate", type=float, default=defaults.target_rate)
    parser.add_argument("--timeout", type=float, default=defaults.timeout, help="s per run")
    parser.add_argument("--bootstrap-servers", help="use this broker instead of starting one")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    workers = tuple(int(n) for n in args.workers.split(",") if n.strip())
    if not workers or min(workers) < 1 or max(workers) > args.partitions:
        parser.error("--workers: counts from 1 to the partitions")
    options = Options(
        events=args.events,
        repeats=args.repeats,
        workers=workers,
        partitions=args.partitions,
        warmup_events=args.warmup_events,
        baseline=not args.no_baseline,
        target_partitions=args.target_partitions,
        target_rate=args.target_rate,
        timeout=args.timeout,
    )
    return options, args


def main(argv: Sequence[str] | None = None) -> None:
    options, args = parse_options(argv)
    figures = run(options, args.bootstrap_servers)
    figures["command"] = " ".join(["benchmarks/hot_model.py", *(argv or sys.argv[1:])])
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    main()
