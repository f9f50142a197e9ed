"""Estimation benchmark: how closely estimated accuracy tracks realized accuracy.

A classifier's predictions are generated with their class probabilities and
labels drawn from the true P(label | inputs), on seeded synthetic streams.
The estimator (:mod:`driftline.monitors.estimation`) is calibrated on the
first 2,000 labelled predictions; the rest of the stream is cut into
windows (1,000 predictions by default), half of them before the inputs
shift and half after. Each window's estimate, made from the probabilities
alone, is compared with its realized accuracy, computed from all its labels.

Printed per scenario: the realized (and estimated) accuracy before and after
the shift, the mean absolute error of the estimate over all windows and
seeds in percentage points, its largest error and its mean (signed) error;
the sampling floor, the mean absolute error an exact estimate would still
show because a window's realized accuracy is itself a draw; and for binary
tasks the mean absolute error of the F1 estimate. Then whether the issue's
target holds: a mean absolute error of at most 3 points on every scenario
whose P(label | inputs) stays put (covariate shift, or none). A concept
shift, where it moves, is shown too, but no estimate from the model's scores
can follow it and it is left out of the target.

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/estimation.py [--seeds N] [--window W] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit, softmax

from driftline.monitors.estimation import ConfidenceEstimator, EstimatedWindow

DEFAULT_SEEDS = 40
DEFAULT_WINDOW = 1_000
REFERENCE = 2_000
WINDOWS_BEFORE = 8
WINDOWS_AFTER = 8
TARGET_MAE = 3.0  # percentage points
MAX_WORKERS = 2

Array = npt.NDArray[np.float64]


# -- streams -------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """One seeded stream: the model's probabilities and the true labels, in order.

    The first ``REFERENCE`` predictions come from the distribution before the
    shift, then ``WINDOWS_BEFORE`` windows before it and ``WINDOWS_AFTER``
    after. Predictions are the most probable class.
    """

    classes: tuple[str, ...]
    probabilities: Array  # (n, classes)
    labels: npt.NDArray[np.int64]  # index into classes

    @property
    def predictions(self) -> npt.NDArray[np.int64]:
        return np.asarray(np.argmax(self.probabilities, axis=1), dtype=np.int64)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # (rng, count, after_shift) -> (model probabilities, true probabilities)
    draw: Callable[[np.random.Generator, int, bool], tuple[Array, Array]]
    classes: tuple[str, ...] = ("no", "yes")
    in_scope: bool = True

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    def generate(self, seed: int, window: int) -> Stream:
        """The stream of ``seed``: the same seed always gives the same stream."""
        rng = np.random.default_rng([zlib.crc32(self.name.encode()), seed])
        before = REFERENCE + WINDOWS_BEFORE * window
        model_0, true_0 = self.draw(rng, before, False)
        model_1, true_1 = self.draw(rng, WINDOWS_AFTER * window, True)
        model, truth = np.vstack([model_0, model_1]), np.vstack([true_0, true_1])
        # Labels are drawn from the true P(label | inputs): realized accuracy is noisy.
        cumulative = np.cumsum(truth, axis=1)
        u = rng.random(len(truth))[:, None]
        labels = np.minimum((u > cumulative).sum(axis=1), len(self.classes) - 1)
        return Stream(self.classes, model, labels.astype(np.int64))


def _binary(probability: Array) -> Array:
    return np.column_stack([1.0 - probability, probability])


def logistic(
    *,
    before: tuple[float, float],
    after: tuple[float, float],
    slope: float = 3.0,
    slope_after: float | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    share_after: float = 0.5,
    df: float | None = None,
) -> Callable[[np.random.Generator, int, bool], tuple[Array, Array]]:
    """A binary task on one input ``z``: P(yes | z) = sigmoid(``slope`` z).

    ``z`` is ``side * m + s * noise`` with ``side`` = +1 or -1 (+1 with share
    1/2, ``share_after`` after the shift), ``(m, s)`` = ``before`` or
    ``after``, and normal noise, or Student t with ``df`` degrees of freedom.
    The model's logit is ``scale * slope * z + offset``: ``scale`` above 1 is
    overconfident, below 1 underconfident. ``slope_after`` changes P(yes | z)
    after the shift: a concept shift.
    """

    def draw(rng: np.random.Generator, count: int, shifted: bool) -> tuple[Array, Array]:
        m, s = after if shifted else before
        share = share_after if shifted else 0.5
        side = np.where(rng.random(count) < share, 1.0, -1.0)
        noise = rng.standard_t(df, count) if df is not None else rng.standard_normal(count)
        z = side * m + s * noise
        true_slope = slope_after if shifted and slope_after is not None else slope
        truth = expit(true_slope * z)
        model = expit(scale * slope * z + offset)
        return _binary(model), _binary(truth)

    return draw


def softmax_mixture(
    *,
    temperature: float = 1.0,
    centre_share: float = 0.5,
    sharpness: float = 2.5,
    bias: tuple[float, float, float] = (0.0, 0.0, 0.0),
    after_weights: tuple[float, float, float] = (0.2, 0.3, 0.5),
) -> Callable[[np.random.Generator, int, bool], tuple[Array, Array]]:
    """Three classes in the plane: P(k | x) = softmax(``sharpness`` x . u_k).

    The ``u_k`` are unit vectors 120 degrees apart. Inputs are a mixture of
    three normal clusters at ``1.2 u_k`` (weights 1/3 each); after the shift
    the clusters' weights become 0.2, 0.3, 0.5 scaled by ``1 - centre_share``,
    and a cluster at the origin (where the classes meet) takes
    ``centre_share``. The model's logits are the true ones divided by
    ``temperature`` (below 1: overconfident).
    """
    angles = np.deg2rad([90.0, 210.0, 330.0])
    units = np.column_stack([np.cos(angles), np.sin(angles)])
    centres = np.vstack([1.2 * units, np.zeros((1, 2))])

    def draw(rng: np.random.Generator, count: int, shifted: bool) -> tuple[Array, Array]:
        if shifted:
            weights = np.array([*after_weights, 0.0]) * (1 - centre_share)
            weights[3] = centre_share
        else:
            weights = np.array([1.0, 1.0, 1.0, 0.0]) / 3
        cluster = rng.choice(4, size=count, p=weights)
        x = centres[cluster] + 0.6 * rng.standard_normal((count, 2))
        logits = sharpness * x @ units.T
        model = softmax(logits / temperature + np.asarray(bias), axis=1)
        return model, softmax(logits, axis=1)

    return draw


SHIFT = {"before": (1.0, 0.5), "after": (0.3, 0.5)}
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "binary-calibrated",
        "calibrated logistic model; inputs move toward the boundary",
        logistic(**SHIFT),
    ),
    Scenario(
        "binary-overconfident",
        "same, model logit x2.5 (overconfident)",
        logistic(**SHIFT, scale=2.5),
    ),
    Scenario(
        "binary-skewed",
        "model logit x0.6 - 0.8 (underconfident, leaning 'no'); class mix 50/50 -> 70/30",
        logistic(**SHIFT, scale=0.6, offset=-0.8, share_after=0.7),
    ),
    Scenario(
        "3-class-mixture",
        "3-class softmax, temperature 0.7 (overconfident); half the inputs move to the centre",
        softmax_mixture(temperature=0.7),
        classes=("a", "b", "c"),
    ),
    Scenario(
        "3-class-leaning",
        "3-class softmax, temperature 1.6 (underconfident) and logit +1.5 for 'a'; "
        "the mix moves to 'a' and the centre",
        softmax_mixture(
            temperature=1.6, bias=(1.5, 0.0, 0.0), after_weights=(0.7, 0.15, 0.15), centre_share=0.3
        ),
        classes=("a", "b", "c"),
    ),
    Scenario(
        "heavy-tailed",
        "inputs with Student t(3) noise, overconfident model (x2); inputs move toward the boundary",
        logistic(before=(1.2, 0.5), after=(0.3, 0.5), scale=2.0, df=3.0),
    ),
    Scenario(
        "stationary",
        "control: overconfident model (x2.5), no shift",
        logistic(before=(1.0, 0.5), after=(1.0, 0.5), scale=2.5),
    ),
    Scenario(
        "concept-shift",
        "OUT OF SCOPE, shown for honesty: P(yes | z) flattens (slope 3 -> 1), inputs stay",
        logistic(before=(1.0, 0.5), after=(1.0, 0.5), slope_after=1.0),
        in_scope=False,
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}


# -- one run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One seed of one scenario: per window, realized and estimated figures."""

    scenario: str
    seed: int
    realized: tuple[float, ...]
    estimated: tuple[float, ...]
    floor: tuple[float, ...]  # sqrt(2/pi) * standard error: the MAE of an exact estimate
    raw: tuple[float, ...]  # the model's own mean confidence in its predictions
    realized_f1: tuple[float | None, ...]
    estimated_f1: tuple[float | None, ...]


def f1_score(predicted: npt.NDArray[np.bool_], positive: npt.NDArray[np.bool_]) -> float | None:
    tp = int(np.sum(predicted & positive))
    wrong = int(np.sum(predicted != positive))
    return 2 * tp / (2 * tp + wrong) if tp + wrong else None


def run(scenario: Scenario, seed: int, window: int) -> Run:
    stream = scenario.generate(seed, window)
    classes = list(stream.classes)
    positive = classes[1] if scenario.binary else None
    predictions = stream.predictions
    rows = stream.probabilities.tolist()
    estimator = ConfidenceEstimator(classes, positive)
    for i in range(REFERENCE):
        estimator.learn(
            dict(zip(classes, rows[i], strict=True)),
            classes[predictions[i]],
            classes[stream.labels[i]],
        )
    estimator.fit()
    realized, estimated, floor, raw = [], [], [], []
    realized_f1, estimated_f1 = [], []
    for start in range(REFERENCE, len(rows), window):
        stop = start + window
        estimate = EstimatedWindow()
        for i in range(start, stop):
            probabilities = dict(zip(classes, rows[i], strict=True))
            estimate.add(estimator.expect(probabilities, classes[predictions[i]]))
        right = predictions[start:stop] == stream.labels[start:stop]
        realized.append(float(right.mean()))
        estimated.append(estimate.accuracy or 0.0)
        floor.append(math.sqrt(2 / math.pi) * (estimate.accuracy_standard_error or 0.0))
        raw.append(float(stream.probabilities[start:stop].max(axis=1).mean()))
        if scenario.binary:
            realized_f1.append(
                f1_score(predictions[start:stop] == 1, stream.labels[start:stop] == 1)
            )
            estimated_f1.append(estimate.f1)
    return Run(
        scenario.name,
        seed,
        tuple(realized),
        tuple(estimated),
        tuple(floor),
        tuple(raw),
        tuple(realized_f1),
        tuple(estimated_f1),
    )


def _run(task: tuple[str, int, int]) -> Run:
    name, seed, window = task
    return run(BY_NAME[name], seed, window)


# -- summary -------------------------------------------------------------------------


@dataclass
class Summary:
    scenario: str
    description: str
    classes: int
    in_scope: bool
    seeds: int
    windows: int
    realized_before: float
    realized_after: float
    estimated_before: float
    estimated_after: float
    mae_pp: float
    max_error_pp: float
    bias_pp: float
    floor_pp: float
    raw_mae_pp: float
    f1_mae_pp: float | None
    meets_target: bool | None


def summarize(scenario: Scenario, runs: Sequence[Run]) -> Summary:
    realized = np.array([r.realized for r in runs])
    estimated = np.array([r.estimated for r in runs])
    errors = 100 * (estimated - realized)
    f1_errors = [
        100 * abs(e - r)
        for run_ in runs
        for r, e in zip(run_.realized_f1, run_.estimated_f1, strict=True)
        if r is not None and e is not None
    ]
    mae = float(np.mean(np.abs(errors)))
    return Summary(
        scenario=scenario.name,
        description=scenario.description,
        classes=len(scenario.classes),
        in_scope=scenario.in_scope,
        seeds=len(runs),
        windows=errors.size,
        realized_before=float(realized[:, :WINDOWS_BEFORE].mean()),
        realized_after=float(realized[:, WINDOWS_BEFORE:].mean()),
        estimated_before=float(estimated[:, :WINDOWS_BEFORE].mean()),
        estimated_after=float(estimated[:, WINDOWS_BEFORE:].mean()),
        mae_pp=mae,
        max_error_pp=float(np.max(np.abs(errors))),
        bias_pp=float(np.mean(errors)),
        floor_pp=100 * float(np.mean([r.floor for r in runs])),
        raw_mae_pp=100 * float(np.mean(np.abs(np.array([r.raw for r in runs]) - realized))),
        f1_mae_pp=float(np.mean(f1_errors)) if f1_errors else None,
        meets_target=mae <= TARGET_MAE if scenario.in_scope else None,
    )


def table(summaries: Sequence[Summary], window: int) -> str:
    header = (
        f"{'scenario':<22} {'cls':>3} {'realized before->after':>23} "
        f"{'estimated before->after':>24} {'MAE':>5} {'max':>5} {'bias':>5} "
        f"{'floor':>5} {'raw':>5} {'F1 MAE':>6}  target"
    )
    lines = [
        f"Estimated vs realized accuracy, windows of {window:,} predictions, "
        f"calibrated on the first {REFERENCE:,}; errors in percentage points",
        "",
        header,
        "-" * len(header),
    ]
    for s in summaries:
        f1 = "-" if s.f1_mae_pp is None else f"{s.f1_mae_pp:.2f}"
        target = {True: "PASS", False: "FAIL", None: "(out of scope)"}[s.meets_target]
        lines.append(
            f"{s.scenario:<22} {s.classes:>3} "
            f"{100 * s.realized_before:>11.1f}% ->{100 * s.realized_after:>6.1f}% "
            f"{100 * s.estimated_before:>12.1f}% ->{100 * s.estimated_after:>6.1f}% "
            f"{s.mae_pp:>5.2f} {s.max_error_pp:>5.2f} {s.bias_pp:>+5.2f} {s.floor_pp:>5.2f} "
            f"{s.raw_mae_pp:>5.2f} {f1:>6}  {target}"
        )
    lines.append("")
    for s in summaries:
        lines.append(f"  {s.scenario}: {s.description} ({s.seeds} seeds, {s.windows} windows)")
    lines += [
        "",
        "MAE, max: mean and largest |estimated - realized| over all windows and seeds; bias: "
        "mean signed error;",
        "floor: the MAE an exact estimate would still show, since a window's realized "
        "accuracy is itself a draw;",
        "raw: the MAE of the model's own mean confidence, uncalibrated; F1 MAE: of the "
        "estimated F1 of the positive class.",
    ]
    return "\n".join(lines)


def verdict(summaries: Sequence[Summary]) -> tuple[bool, str]:
    checked = [s for s in summaries if s.meets_target is not None]
    failed = [s.scenario for s in checked if not s.meets_target]
    met = not failed and bool(checked)
    worst = max(checked, key=lambda s: s.mae_pp) if checked else None
    detail = (
        f"worst {worst.scenario} at {worst.mae_pp:.2f} pp" if worst is not None else "none checked"
    )
    line = (
        f"Target (MAE <= {TARGET_MAE:g} pp on every in-scope scenario, {len(checked)} of them): "
        + ("MET" if met else f"NOT MET ({', '.join(failed)})")
        + f"; {detail}"
    )
    return met, line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per scenario")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="predictions a window")
    parser.add_argument(
        "--scenarios", default="", help="comma-separated scenario names (default: all)"
    )
    parser.add_argument("--workers", type=int, default=MAX_WORKERS)
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="write the summaries as JSON to PATH, or to stdout instead of the table",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.window < 1:
        parser.error("--seeds and --window must be positive")
    names = [n for n in args.scenarios.split(",") if n] or [s.name for s in SCENARIOS]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(BY_NAME)}")
    tasks = [(name, seed, args.window) for name in names for seed in range(args.seeds)]
    workers = max(1, min(args.workers, MAX_WORKERS))
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            runs = pool.map(_run, tasks, chunksize=1)
    else:
        runs = [_run(task) for task in tasks]
    summaries = [
        summarize(BY_NAME[name], [r for r in runs if r.scenario == name]) for name in names
    ]
    met, line = verdict(summaries)
    if args.json is not None:
        document = {
            "window": args.window,
            "reference": REFERENCE,
            "seeds": args.seeds,
            "target_mae_pp": TARGET_MAE,
            "target_met": met,
            "summaries": [asdict(s) for s in summaries],
        }
        text = json.dumps(document, indent=2)
        if args.json == "-":
            print(text)
            return 0
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    print(table(summaries, args.window))
    print()
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
