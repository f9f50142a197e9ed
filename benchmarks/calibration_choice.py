"""Calibration choice benchmark: should the estimator leave calibrated probabilities raw?

The estimator (:mod:`driftline.monitors.estimation`) always calibrates the
model's probabilities on the reference with an isotonic map. NannyML's CBPE
first asks whether the reference needs it: it fits the map on 90% of the
reference and compares the expected calibration error (ECE, ten bins of
equal counts) of the raw and the calibrated scores on the other 10%, over ten
stratified splits pooled, and leaves the scores raw unless calibrating
lowers it. On a model whose probabilities are already calibrated, an
isotonic map fitted on a finite reference only adds its own noise; on a
miscalibrated one, leaving the scores raw would be a large error. So the
question is whether a test on the reference tells the two apart well enough
to gain on the first without losing on the second.

Compared, on seeded streams made as in ``benchmarks/estimation.py`` (a
reference, then ``WINDOWS_BEFORE`` windows before a covariate shift and
``WINDOWS_AFTER`` after it), each map of the estimator (the binary map, or
each class's confidence map) being chosen by:

- ``always``: calibrated, always (the estimator as it is);
- ``ece-cv``: NannyML's test above (raw also when the reference holds a
  single outcome, or when the raw scores rank it almost perfectly,
  ROC AUC above 0.999, as NannyML does);
- ``hosmer-lemeshow``: raw unless a Hosmer-Lemeshow test of the raw scores
  on the whole reference (ten bins of equal counts, chi-square with ten
  degrees of freedom, as for a model not fitted on that data) rejects their
  calibration at the 5% level;
- ``never``: raw, always: the model's own confidence, for scale.

Printed per scenario: the mean absolute error of each window's estimated
accuracy against its realized accuracy, in percentage points, over all
windows and seeds; the share of maps each test left raw; and each test's
paired difference from ``always`` (its mean over seeds, and the standard
error of that mean). A test helps clearly if it lowers the error on the
calibrated models by more than two standard errors and raises it on no
scenario by more than two. Neither does, at 2,000 reference labels or at
500 (``--reference 500``); the figures, and why the estimator keeps
calibrating, are in :class:`~driftline.monitors.estimation.ConfidenceEstimator`'s
docstring. A run of 100 seeds takes about a minute on two cores.

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/calibration_choice.py [--seeds N]
        [--reference N] [--window W] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: the project keeps its root off sys.path (PYTHONSAFEPATH=1);
    # append it, after the installed packages, so `benchmarks` can be imported.
    sys.path.append(str(Path(__file__).resolve().parents[1]))

import argparse
import itertools
import json
import math
import multiprocessing
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from benchmarks.estimation import SHIFT, Scenario, logistic, softmax_mixture
from driftline.monitors.estimation import ConfidenceEstimator, IsotonicCalibrator

DEFAULT_SEEDS = 100
DEFAULT_REFERENCE = 2_000
DEFAULT_WINDOW = 1_000
WINDOWS_BEFORE = 8
WINDOWS_AFTER = 8
MAX_WORKERS = 2
BINS = 10
SPLITS = 10
TEST_SHARE = 0.1
LEVEL = 0.05
METHODS = ("always", "ece-cv", "hosmer-lemeshow", "never")
TESTS = ("ece-cv", "hosmer-lemeshow")

Array = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]

SCENARIOS: tuple[tuple[Scenario, bool], ...] = (
    # (scenario, whether the model is calibrated)
    (
        Scenario(
            "calibrated-shift",
            "calibrated binary model; inputs move toward the boundary",
            logistic(**SHIFT),
        ),
        True,
    ),
    (
        Scenario(
            "calibrated-stationary",
            "calibrated binary model; no shift",
            logistic(before=(1.0, 0.5), after=(1.0, 0.5)),
        ),
        True,
    ),
    (
        Scenario(
            "calibrated-3-class",
            "calibrated 3-class softmax; half the inputs move to the centre",
            softmax_mixture(temperature=1.0),
            classes=("a", "b", "c"),
        ),
        True,
    ),
    (
        Scenario(
            "barely-overconfident",
            "binary, model logit x1.1; inputs move toward the boundary",
            logistic(**SHIFT, scale=1.1),
        ),
        False,
    ),
    (
        Scenario(
            "leaning",
            "binary, model logit +0.3 (leaning 'yes'); class mix 50/50 -> 70/30",
            logistic(**SHIFT, offset=0.3, share_after=0.7),
        ),
        False,
    ),
    (
        Scenario(
            "mildly-overconfident",
            "binary, model logit x1.25; inputs move toward the boundary",
            logistic(**SHIFT, scale=1.25),
        ),
        False,
    ),
    (
        Scenario(
            "mildly-underconfident",
            "binary, model logit x0.8; inputs move toward the boundary",
            logistic(**SHIFT, scale=0.8),
        ),
        False,
    ),
    (
        Scenario(
            "overconfident",
            "binary, model logit x2.5; inputs move toward the boundary",
            logistic(**SHIFT, scale=2.5),
        ),
        False,
    ),
    (
        Scenario(
            "overconfident-3-class",
            "3-class softmax, temperature 0.7; half the inputs move to the centre",
            softmax_mixture(temperature=0.7),
            classes=("a", "b", "c"),
        ),
        False,
    ),
)
BY_NAME = {scenario.name: (scenario, calibrated) for scenario, calibrated in SCENARIOS}


# -- the tests -----------------------------------------------------------------------


def expected_calibration_error(scores: Array, outcomes: Array, bins: int = BINS) -> float:
    """ECE over ``bins`` bins of equal counts of the sorted scores (NannyML's binning)."""
    order = np.argsort(scores, kind="stable")
    scores, outcomes = scores[order], outcomes[order]
    bins = min(bins, len(scores) // 2)
    width = len(scores) // bins
    edges = list(range(0, len(scores) + 1, width))
    edges[-1] = len(scores)
    return float(
        sum(
            (hi - lo) / len(scores) * abs(scores[lo:hi].mean() - outcomes[lo:hi].mean())
            for lo, hi in itertools.pairwise(edges)
        )
    )


def roc_auc(scores: Array, outcomes: Flags) -> float:
    """The ROC AUC of the scores for the outcomes (Mann-Whitney, ties counted half)."""
    ranks = stats.rankdata(scores)
    positives = int(outcomes.sum())
    negatives = len(outcomes) - positives
    return float(
        (ranks[outcomes].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


def stratified_splits(
    outcomes: Flags, splits: int, share: float, seed: int
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """``splits`` random (train, test) splits, ``share`` of each outcome in the test."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(outcomes), np.flatnonzero(~outcomes)]
    out = []
    for _ in range(splits):
        test = np.concatenate(
            [rng.permutation(g)[: max(1, round(share * len(g)))] for g in groups if len(g)]
        )
        train = np.setdiff1d(np.arange(len(outcomes)), test)
        out.append((train, np.sort(test)))
    return out


def ece_cv_calibrates(scores: Array, outcomes: Flags) -> bool:
    """NannyML's test: whether the isotonic map lowers the ECE on held-out reference."""
    if outcomes.all() or not outcomes.any():
        return False
    if roc_auc(scores, outcomes) > 0.999:
        return False
    raw, calibrated, truth = [], [], []
    for train, test in stratified_splits(outcomes, SPLITS, TEST_SHARE, seed=42):
        calibrator = IsotonicCalibrator().fit(scores[train], outcomes[train])
        raw.append(scores[test])
        calibrated.append(calibrator.calibrate_many(scores[test]))
        truth.append(outcomes[test].astype(np.float64))
    y = np.concatenate(truth)
    before = expected_calibration_error(np.concatenate(raw), y)
    after = expected_calibration_error(np.concatenate(calibrated), y)
    return before > after


def hosmer_lemeshow_calibrates(scores: Array, outcomes: Flags) -> bool:
    """Whether a Hosmer-Lemeshow test rejects the raw scores' calibration at ``LEVEL``."""
    order = np.argsort(scores, kind="stable")
    p, y = scores[order], outcomes[order].astype(np.float64)
    statistic = 0.0
    bins = min(BINS, len(p))
    for part_p, part_y in zip(np.array_split(p, bins), np.array_split(y, bins), strict=True):
        expected = float(part_p.sum())
        variance = float((part_p * (1.0 - part_p)).sum())
        if variance > 0.0:
            statistic += (float(part_y.sum()) - expected) ** 2 / variance
        elif float(part_y.sum()) != expected:
            return True  # certain scores that were wrong
    return bool(stats.chi2.sf(statistic, bins) < LEVEL)


TEST_FUNCTIONS: dict[str, Callable[[Array, Flags], bool]] = {
    "ece-cv": ece_cv_calibrates,
    "hosmer-lemeshow": hosmer_lemeshow_calibrates,
}


# -- one run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One seed of one scenario: each method's absolute window errors, and the maps left raw."""

    scenario: str
    seed: int
    errors: dict[str, tuple[float, ...]]  # |estimated - realized| per window, by method
    raw_maps: dict[str, float]  # share of the maps each test left raw
    floor: float  # the MAE an exact estimate would still show (mean over windows)


def draw(
    scenario: Scenario, seed: int, reference: int, window: int
) -> tuple[Array, npt.NDArray[np.int64]]:
    """The model's probabilities and the labels of one seeded stream."""
    rng = np.random.default_rng([zlib.crc32(scenario.name.encode()), seed, reference])
    model_0, true_0 = scenario.draw(rng, reference + WINDOWS_BEFORE * window, False)
    model_1, true_1 = scenario.draw(rng, WINDOWS_AFTER * window, True)
    model, truth = np.vstack([model_0, model_1]), np.vstack([true_0, true_1])
    cumulative = np.cumsum(truth, axis=1)
    u = rng.random(len(truth))[:, None]
    labels = np.minimum((u > cumulative).sum(axis=1), len(scenario.classes) - 1)
    return model, labels.astype(np.int64)


def run(scenario: Scenario, seed: int, reference: int, window: int) -> Run:
    probabilities, labels = draw(scenario, seed, reference, window)
    classes = list(scenario.classes)
    positive = classes[1] if scenario.binary else None
    predictions = np.argmax(probabilities, axis=1)
    rows = probabilities.tolist()
    estimator = ConfidenceEstimator(classes, positive)
    for i in range(reference):
        estimator.learn(
            dict(zip(classes, rows[i], strict=True)), classes[predictions[i]], classes[labels[i]]
        )
    estimator.fit()
    right = predictions == labels
    # The map of each prediction: 0 for the binary or shared map, 1 + k for class k's own.
    own = estimator.class_calibrators
    maps = np.array(
        [1 + predictions[i] if classes[predictions[i]] in own else 0 for i in range(len(rows))]
    )
    if scenario.binary:
        score = probabilities[:, 1]
        outcome = labels == 1
        raw = np.where(predictions == 1, score, 1.0 - score)
    else:
        score = probabilities.max(axis=1)
        outcome = right
        raw = score
    calibrated = np.array(
        [
            estimator.expect(
                dict(zip(classes, rows[i], strict=True)), classes[predictions[i]]
            ).p_correct
            for i in range(reference, len(rows))
        ]
    )
    raw = raw[reference:]
    later_maps = maps[reference:]
    choices: dict[str, Array] = {"always": calibrated, "never": raw}
    raw_maps: dict[str, float] = {}
    in_reference = np.arange(len(rows)) < reference
    for name in TESTS:
        chosen = calibrated.copy()
        kept_raw = 0
        used = np.unique(maps[in_reference])
        for map_ in used:
            # the shared map is fitted on the whole reference, a class's on its predictions
            rows_ = in_reference & (maps == map_) if map_ else in_reference
            if not TEST_FUNCTIONS[name](score[rows_], outcome[rows_]):
                kept_raw += 1
                chosen[later_maps == map_] = raw[later_maps == map_]
        choices[name] = chosen
        raw_maps[name] = kept_raw / len(used)
    count = (len(rows) - reference) // window
    realized = right[reference:].reshape(count, window).mean(axis=1)
    errors = {
        name: tuple(np.abs(values.reshape(count, window).mean(axis=1) - realized).tolist())
        for name, values in choices.items()
    }
    spread = np.sqrt((calibrated * (1.0 - calibrated)).reshape(count, window).sum(axis=1)) / window
    return Run(scenario.name, seed, errors, raw_maps, float(math.sqrt(2 / math.pi) * spread.mean()))


def _run(task: tuple[str, int, int, int]) -> Run:
    name, seed, reference, window = task
    return run(BY_NAME[name][0], seed, reference, window)


# -- summary -------------------------------------------------------------------------


@dataclass
class Summary:
    scenario: str
    description: str
    calibrated: bool
    seeds: int
    windows: int
    mae_pp: dict[str, float]
    raw_share: dict[str, float]
    difference_pp: dict[str, float]  # test minus always, mean over seeds
    difference_se_pp: dict[str, float]
    floor_pp: float


def summarize(scenario: Scenario, calibrated: bool, runs: Sequence[Run]) -> Summary:
    per_seed = {m: np.array([100 * np.mean(r.errors[m]) for r in runs]) for m in METHODS}
    differences = {t: per_seed[t] - per_seed["always"] for t in TESTS}
    return Summary(
        scenario=scenario.name,
        description=scenario.description,
        calibrated=calibrated,
        seeds=len(runs),
        windows=sum(len(r.errors["always"]) for r in runs),
        mae_pp={m: float(per_seed[m].mean()) for m in METHODS},
        raw_share={t: float(np.mean([r.raw_maps[t] for r in runs])) for t in TESTS},
        difference_pp={t: float(d.mean()) for t, d in differences.items()},
        difference_se_pp={
            t: float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
            for t, d in differences.items()
        },
        floor_pp=100 * float(np.mean([r.floor for r in runs])),
    )


def verdict(summaries: Sequence[Summary]) -> dict[str, bool]:
    """Whether each test helps clearly (see the module's docstring)."""
    out = {}
    for test in TESTS:
        gains = [
            s.difference_pp[test] < -2 * s.difference_se_pp[test] for s in summaries if s.calibrated
        ]
        losses = [s.difference_pp[test] > 2 * s.difference_se_pp[test] for s in summaries]
        out[test] = bool(gains) and all(gains) and not any(losses)
    return out


def table(summaries: Sequence[Summary], reference: int, window: int) -> str:
    header = (
        f"{'scenario':<22} {'cal':>3} "
        + " ".join(f"{m:>15}" for m in METHODS)
        + f" {'floor':>5}  "
        + "  ".join(f"{t + ' - always':>24}" for t in TESTS)
        + "  "
        + "  ".join(f"{t + ' raw':>19}" for t in TESTS)
    )
    lines = [
        f"Mean absolute error of window accuracy (pp), windows of {window:,} predictions, "
        f"calibrated on the first {reference:,}",
        "",
        header,
        "-" * len(header),
    ]
    for s in summaries:
        lines.append(
            f"{s.scenario:<22} {'yes' if s.calibrated else 'no':>3} "
            + " ".join(f"{s.mae_pp[m]:>15.2f}" for m in METHODS)
            + f" {s.floor_pp:>5.2f}  "
            + "  ".join(
                f"{s.difference_pp[t]:>+15.2f} ± {s.difference_se_pp[t]:>5.2f}" for t in TESTS
            )
            + "  "
            + "  ".join(f"{100 * s.raw_share[t]:>18.0f}%" for t in TESTS)
        )
    lines.append("")
    for s in summaries:
        lines.append(f"  {s.scenario}: {s.description} ({s.seeds} seeds, {s.windows} windows)")
    lines += [
        "",
        "cal: whether the model's probabilities are calibrated; floor: the error an exact "
        "estimate would still show;",
        "test - always: the test's error minus always calibrating, mean over seeds ± its "
        "standard error; raw: the share of maps the test left raw.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per scenario")
    parser.add_argument(
        "--reference", type=int, default=DEFAULT_REFERENCE, help="labelled reference predictions"
    )
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="predictions a window")
    parser.add_argument(
        "--scenarios", default="", help="comma-separated scenario names (default: all)"
    )
    parser.add_argument("--workers", type=int, default=MAX_WORKERS)
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the summaries")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.window < 1 or args.reference < 50:
        parser.error("--seeds must be at least 2, --window positive, --reference at least 50")
    names = [n for n in args.scenarios.split(",") if n] or list(BY_NAME)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(BY_NAME)}")
    tasks = [(n, seed, args.reference, args.window) for n in names for seed in range(args.seeds)]
    workers = max(1, min(args.workers, MAX_WORKERS))
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            runs = pool.map(_run, tasks, chunksize=1)
    else:
        runs = [_run(task) for task in tasks]
    summaries = [summarize(*BY_NAME[n], [r for r in runs if r.scenario == n]) for n in names]
    helps = verdict(summaries)
    print(table(summaries, args.reference, args.window))
    print()
    for test, yes in helps.items():
        print(f"{test}: {'helps clearly' if yes else 'does not help clearly'}")
    if args.json is not None:
        document = {
            "reference": args.reference,
            "window": args.window,
            "seeds": args.seeds,
            "helps": helps,
            "summaries": [asdict(s) for s in summaries],
        }
        with open(args.json, "w") as handle:
            handle.write(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
