"""Seeded streams for the detection benchmark, each with its change points.

A scenario turns a seed into a :class:`Stream`: one or more features, each a
sequence of values, and the indices at which the distribution changes. The same
seed always gives the same stream. Change scenarios have :data:`N_BEFORE` events
before the change and :data:`N_AFTER` after it; stationary ones have
:data:`STATIONARY_EVENTS` events and no change. Every synthetic stream also comes
with an independent sample of :data:`REFERENCE_SIZE` events from its pre-change
distribution, the "registered reference".

Groups:

- ``issue``: the scenarios the issue names, with targets for our defaults.
- ``real-looking``: what real features look like (heavy tails, skew, ties,
  mixtures, autocorrelation), each stationary and with a change.
- ``river-synth``: River's ``ConceptDriftStream`` on SEA and Agrawal. These are
  concept drifts: the inputs keep their distribution and only the label's
  relation to them changes, so the ``*-inputs`` scenarios measure what a data
  drift detector sees there (nothing, if it is right) and the ``*-label``
  scenarios watch the label as a categorical stream, whose shares do move.
- ``changepoint-data``: the labelled series of the Turing change-point dataset
  shipped in River's wheel (``river.drift.datasets``), with the change points
  most annotators agree on.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from river.datasets import synth
from river.drift import datasets as cpd
from scipy import signal, stats

from benchmarks import limits
from benchmarks.limits import Information

N_BEFORE = 5_000
N_AFTER = 5_000
STATIONARY_EVENTS = 100_000
REFERENCE_SIZE = 10_000
WARMUP = 2_000
GRADUAL_WIDTH = 2_000
# Annotations closer than this are one change point (the margin of the Turing
# change-point benchmark's own evaluation).
ANNOTATION_MARGIN = 5
# Width of the switch in River's ConceptDriftStream (see _river_drift).
RIVER_DRIFT_WIDTH = 30

FeatureKind = Literal["numeric", "categorical"]
Values = npt.NDArray[Any]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Feature:
    """One monitored feature of a stream.

    ``values`` holds floats for a numeric feature and strings for a categorical
    one. ``reference`` is an independent sample of the pre-change distribution,
    or None where there is none (recorded data). ``tracked`` is the category
    whose 0/1 indicator detectors of numbers (River's) watch.
    """

    name: str
    kind: FeatureKind
    values: Values
    reference: Values | None = None
    tracked: str | None = None


@dataclass(frozen=True)
class Stream:
    """Features of equal length, the indices where the distribution changes,
    and how many leading events a warm-up reference takes."""

    features: tuple[Feature, ...]
    change_points: tuple[int, ...]
    warmup: int = WARMUP

    @property
    def n_events(self) -> int:
        return len(self.features[0].values)

    def truncated(self, n_events: int) -> Stream:
        """The first ``n_events`` events, keeping the change points inside them."""
        if n_events >= self.n_events:
            return self
        return Stream(
            features=tuple(
                Feature(f.name, f.kind, f.values[:n_events], f.reference, f.tracked)
                for f in self.features
            ),
            change_points=tuple(cp for cp in self.change_points if cp < n_events),
            warmup=self.warmup,
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    description: str
    generate: Callable[[int], Stream]
    # False where the change leaves the monitored features' distribution as it
    # was (a concept drift seen through its inputs): every alarm there is a false
    # alarm, and the right miss rate is 1.
    monitored_change: bool = True
    # What the events after the change tell (see benchmarks/limits.py), where
    # it is known, given the events of the reference a detector learns (a
    # category it never saw counts at one of them): the information limit.
    information: Callable[[int], Information] | None = None

    def limit(self, arl: float, reference_events: int) -> float | None:
        """Events after the change no detector with false alarms ``arl`` events apart can
        beat on average (see benchmarks/limits.py); None where it is not known."""
        if self.information is None or not self.monitored_change:
            return None
        return self.information(reference_events).limit(arl)

    @property
    def stationary(self) -> bool:
        return "stationary" in self.name


def rng_for(seed: int, name: str, stream: int = 0) -> np.random.Generator:
    """An independent generator per (seed, scenario, stream)."""
    key = zlib.crc32(name.encode())
    return np.random.default_rng(np.random.SeedSequence([seed, key, stream]))


Sampler = Callable[[np.random.Generator, int], Floats]


def _normal(mean: float = 0.0, sd: float = 1.0) -> Sampler:
    return lambda rng, n: rng.normal(mean, sd, n)


def _student_t3(shift: float = 0.0) -> Sampler:
    return lambda rng, n: rng.standard_t(3, n) + shift


def _lognormal(log_mean: float = 0.0) -> Sampler:
    return lambda rng, n: rng.lognormal(log_mean, 1.0, n)


def _poisson(lam: float) -> Sampler:
    return lambda rng, n: rng.poisson(lam, n).astype(np.float64)


def _mixture(share: float) -> Sampler:
    """N(0, 1) with a share of N(4, 1)."""

    def sample(rng: np.random.Generator, n: int) -> Floats:
        second = rng.random(n) < share
        return rng.normal(0.0, 1.0, n) + 4.0 * second

    return sample


AR_RHO = 0.5


def _ar1(mean: float = 0.0, rho: float = AR_RHO) -> Sampler:
    """A stationary AR(1) series with marginal N(mean, 1)."""

    def sample(rng: np.random.Generator, n: int) -> Floats:
        noise = rng.normal(0.0, np.sqrt(1.0 - rho * rho), n)
        noise[0] = rng.normal()
        series: Floats = signal.lfilter([1.0], [1.0, -rho], noise)
        return series + mean

    return sample


def numeric_scenario(
    name: str,
    group: str,
    description: str,
    before: Sampler,
    after: Sampler | None,
    divergence: float | None = None,
) -> Scenario:
    """One numeric feature: ``before``, then ``after`` (stationary if None), which tells
    ``divergence`` (KL(after || before)) per event."""

    def generate(seed: int) -> Stream:
        rng = rng_for(seed, name)
        reference = before(rng_for(seed, name, stream=1), REFERENCE_SIZE)
        if after is None:
            values = before(rng, STATIONARY_EVENTS)
            return Stream((Feature("x", "numeric", values, reference),), ())
        values = np.concatenate([before(rng, N_BEFORE), after(rng, N_AFTER)])
        return Stream((Feature("x", "numeric", values, reference),), (N_BEFORE,))

    information = None if divergence is None else _constant(divergence)
    return Scenario(name, group, description, generate, information=information)


def _constant(divergence: float) -> Callable[[int], Information]:
    """The information of an abrupt change, whatever the reference."""
    change = Information.constant(divergence)
    return lambda reference_events: change


def _gradual(name: str, description: str, width: int = GRADUAL_WIDTH) -> Scenario:
    """N(0, 1) whose mean ramps linearly to 1 sd over ``width`` events."""

    def generate(seed: int) -> Stream:
        rng = rng_for(seed, name)
        reference = rng_for(seed, name, stream=1).normal(size=REFERENCE_SIZE)
        values = rng.normal(size=N_BEFORE + N_AFTER)
        values[N_BEFORE:] += np.minimum(1.0, np.arange(1, N_AFTER + 1) / width)
        return Stream((Feature("x", "numeric", values, reference),), (N_BEFORE,))

    ramp = Information.ramp(limits.normal_location, width)
    return Scenario(name, "issue", description, generate, information=lambda _: ramp)


CATEGORIES = ("a", "b", "c", "d", "e")
CATEGORY_SHARES = (0.20, 0.35, 0.25, 0.12, 0.08)
TRACKED_CATEGORY = "a"


def shifted_shares(shares: Sequence[float], index: int, share: float) -> list[float]:
    """``shares`` with ``shares[index]`` set to ``share``, the others scaled alike."""
    scale = (1.0 - share) / (1.0 - shares[index])
    return [share if i == index else s * scale for i, s in enumerate(shares)]


def _category_share(name: str, description: str, new_share: float) -> Scenario:
    after = shifted_shares(CATEGORY_SHARES, CATEGORIES.index(TRACKED_CATEGORY), new_share)
    return _categorical(name, description, dict(zip(CATEGORIES, after, strict=True)))


NEW_CATEGORY = "f"


def _categorical(
    name: str, description: str, after: Mapping[str, float], tracked: str = TRACKED_CATEGORY
) -> Scenario:
    """Categories at :data:`CATEGORY_SHARES`, then at the shares ``after`` (which may name
    a category the reference never has: its share before is floored, see
    benchmarks/limits.py, at one event of the warm-up reference)."""
    before = dict(zip(CATEGORIES, CATEGORY_SHARES, strict=True))
    categories = sorted(before.keys() | after.keys())
    after_shares = [after.get(c, 0.0) for c in categories]
    before_shares = [before.get(c, 0.0) for c in categories]

    def generate(seed: int) -> Stream:
        rng = rng_for(seed, name)
        labels = np.array(categories)
        values = np.concatenate(
            [
                rng.choice(labels, N_BEFORE, p=before_shares),
                rng.choice(labels, N_AFTER, p=after_shares),
            ]
        )
        reference = rng_for(seed, name, stream=1).choice(labels, REFERENCE_SIZE, p=before_shares)
        feature = Feature("category", "categorical", values, reference, tracked)
        return Stream((feature,), (N_BEFORE,))

    def information(reference_events: int) -> Information:
        floor = limits.floored(before, set(categories), reference_events)
        return Information.constant(limits.categorical(floor, after))

    return Scenario(name, "issue", description, generate, information=information)


# -- River's synthetic concept drifts ----------------------------------------------

Rows = Iterable[tuple[Mapping[Any, Any], Any]]


def _table(rows: Rows, n: int) -> tuple[list[Mapping[Any, Any]], list[Any]]:
    xs: list[Mapping[Any, Any]] = []
    ys: list[Any] = []
    for x, y in itertools.islice(rows, n):
        xs.append(x)
        ys.append(y)
    return xs, ys


def _river_drift(
    name: str,
    description: str,
    make: Callable[[int], Any],
    make_drift: Callable[[int], Any],
    tracked: str,
    watch: Literal["inputs", "label"],
) -> Scenario:
    """``ConceptDriftStream`` switching quickly from ``make`` to ``make_drift``.

    River's sigmoid is centred on ``position`` (1-based), so the change point is
    0-based ``N_BEFORE``, drawn from either concept with even odds. The width is
    the narrowest River can compute there (``exp`` overflows below about 28):
    the drift concept already draws 12% of the events 15 before the change, 2%
    of those 30 before, and 98% of those 30 after.
    """

    def generate(seed: int) -> Stream:
        seeds = [int(s) for s in rng_for(seed, name).integers(0, 2**31 - 1, size=4)]
        stream = synth.ConceptDriftStream(
            stream=make(seeds[0]),
            drift_stream=make_drift(seeds[1]),
            seed=seeds[2],
            position=N_BEFORE + 1,
            width=RIVER_DRIFT_WIDTH,
        )
        xs, ys = _table(stream, N_BEFORE + N_AFTER)
        ref_xs, ref_ys = _table(make(seeds[3]), REFERENCE_SIZE)
        if watch == "label":
            values = np.array([str(y) for y in ys])
            reference = np.array([str(y) for y in ref_ys])
            feature = Feature("label", "categorical", values, reference, tracked)
            return Stream((feature,), (N_BEFORE,))
        features = tuple(
            Feature(
                str(key),
                "numeric",
                np.array([float(x[key]) for x in xs]),
                np.array([float(x[key]) for x in ref_xs]),
            )
            for key in xs[0]
        )
        return Stream(features, (N_BEFORE,))

    return Scenario(name, "river-synth", description, generate, monitored_change=watch == "label")


# -- River's labelled change-point series -------------------------------------------


def consensus_change_points(
    annotations: Mapping[str, Sequence[int]], margin: int = ANNOTATION_MARGIN
) -> list[int]:
    """Change points marked by more than half of the annotators.

    Annotations within ``margin`` of each other (chained) are one change point,
    placed at the earliest of them. Annotators who marked nothing count: they
    said the series has no change.
    """
    points = sorted((p, who) for who, marks in annotations.items() for p in marks)
    clusters: list[list[tuple[int, str]]] = []
    for point, who in points:
        if clusters and point - clusters[-1][-1][0] <= margin:
            clusters[-1].append((point, who))
        else:
            clusters.append([(point, who)])
    return [
        cluster[0][0]
        for cluster in clusters
        if len({who for _, who in cluster}) > len(annotations) / 2
    ]


@dataclass(frozen=True)
class ChangePointSeries:
    name: str
    dataset: Callable[[], Any]
    columns: tuple[str, ...]  # for a dict target: the columns watched
    description: str


def _brent_rows(dataset: Any) -> Rows:
    """River ships the daily series from 1987, but its labels index the benchmark's
    version: from 2000 on, every 10th observation."""
    rows = [(x, y) for x, y in dataset if x["day"].year >= 2000]
    return rows[::10]


CHANGEPOINT_SERIES = (
    ChangePointSeries(
        "cpd-airline", cpd.AirlinePassengers, ("passengers",), "monthly JFK passengers"
    ),
    ChangePointSeries("cpd-apple", cpd.Apple, ("Close", "Volume"), "Apple close price and volume"),
    ChangePointSeries("cpd-bitcoin", cpd.Bitcoin, ("price",), "bitcoin market price"),
    ChangePointSeries("cpd-brent", cpd.BrentSpotPrice, ("price",), "Brent crude spot price"),
    ChangePointSeries("cpd-occupancy", cpd.Occupancy, ("V1", "V2", "V3", "V4"), "room sensors"),
    ChangePointSeries("cpd-run-log", cpd.RunLog, ("Pace", "Distance"), "interval training"),
    ChangePointSeries("cpd-uk-coal", cpd.UKCoalEmploy, ("employment",), "UK coal employment"),
)


def load_change_point_series(series: ChangePointSeries) -> Stream:
    """A recorded series with its consensus change points.

    Its warm-up reference is the first half of the events before the first change
    (at most :data:`WARMUP`), so that some pre-change events remain monitored.
    """
    dataset = series.dataset()
    rows: Rows = _brent_rows(dataset) if series.name == "cpd-brent" else dataset
    ys = [y for _, y in rows]
    if isinstance(ys[0], Mapping):
        columns = [np.array([float(y[c]) for y in ys]) for c in series.columns]
    else:
        columns = [np.array([float(y) for y in ys])]
    change_points = tuple(consensus_change_points(dataset.annotations))
    n_events = len(columns[0])
    first = change_points[0] if change_points else n_events
    features = tuple(
        Feature(name, "numeric", values)
        for name, values in zip(series.columns, columns, strict=True)
    )
    return Stream(features, change_points, warmup=min(WARMUP, first // 2))


def _recorded(series: ChangePointSeries) -> Scenario:
    return Scenario(
        series.name,
        "changepoint-data",
        f"{series.description} (River's drift datasets), consensus change points",
        lambda seed: load_change_point_series(series),
    )


# -- the catalogue -------------------------------------------------------------------

_T3_SD = float(np.sqrt(3.0))
# exp(N(mu, 1)) has mean exp(mu + 1/2) and sd sqrt(e - 1) exp(mu + 1/2): this
# log-mean raises the mean by one pre-change sd (a scale change of about x2.3).
_LOGNORMAL_SHIFTED = float(np.log(np.exp(0.5) * (1.0 + np.sqrt(np.e - 1.0))) - 0.5)
_AR_SHIFT = 1.0

SCENARIOS: tuple[Scenario, ...] = (
    numeric_scenario(
        "stationary-normal", "issue", "N(0,1), 100,000 events, no change", _normal(), None
    ),
    *(
        numeric_scenario(
            f"mean-shift-{shift:g}sd",
            "issue",
            f"N(0,1) -> N({shift:g},1)",
            _normal(),
            _normal(shift),
            limits.normal_location(shift),
        )
        for shift in (0.25, 0.5, 1.0, 2.0)
    ),
    numeric_scenario(
        "variance-x2",
        "issue",
        "N(0,1) -> N(0,2): variance doubles",
        _normal(),
        _normal(0, 2**0.5),
        limits.normal_scale(2**0.5),
    ),
    _gradual("gradual-1sd-2000", "N(0,1), mean ramps linearly to 1 sd over 2,000 events"),
    _gradual("gradual-1sd-3000", "N(0,1), mean ramps linearly to 1 sd over 3,000 events", 3_000),
    _category_share(
        "category-share-20-35",
        "5 categories; 'a' goes from 20% to 35%, the others shrink proportionally",
        0.35,
    ),
    _categorical(
        "category-new-3pct",
        "5 categories; a new one, 'f', takes 3% of the events, the others shrink proportionally",
        dict(zip(CATEGORIES, (0.97 * share for share in CATEGORY_SHARES), strict=True))
        | {NEW_CATEGORY: 0.03},
        tracked=NEW_CATEGORY,
    ),
    _categorical(
        "category-shares-several",
        "5 categories; all shares move at once: 20/35/25/12/8% -> 26/29/20/15/10%",
        dict(zip(CATEGORIES, (0.26, 0.29, 0.20, 0.15, 0.10), strict=True)),
    ),
    numeric_scenario(
        "student-t3-stationary", "real-looking", "Student t, 3 dof, no change", _student_t3(), None
    ),
    numeric_scenario(
        "student-t3-shift-1sd",
        "real-looking",
        "Student t, 3 dof; location + 1 sd (sqrt 3)",
        _student_t3(),
        _student_t3(_T3_SD),
        limits.continuous(stats.t(3).logpdf, stats.t(3, loc=_T3_SD).logpdf, -np.inf, np.inf),
    ),
    numeric_scenario(
        "lognormal-stationary", "real-looking", "lognormal(0, 1), no change", _lognormal(), None
    ),
    numeric_scenario(
        "lognormal-shift-1sd",
        "real-looking",
        "lognormal(0, 1) -> lognormal(0.84, 1): scale x2.3, mean + 1 sd",
        _lognormal(),
        _lognormal(_LOGNORMAL_SHIFTED),
        limits.normal_location(_LOGNORMAL_SHIFTED),  # the divergence of their logarithms
    ),
    numeric_scenario(
        "poisson3-stationary", "real-looking", "Poisson(3): integers, many ties", _poisson(3), None
    ),
    numeric_scenario(
        "poisson3-shift-1sd",
        "real-looking",
        "Poisson(3) -> Poisson(3 + sqrt 3): mean + 1 sd",
        _poisson(3),
        _poisson(3 + 3**0.5),
        limits.poisson(3, 3 + 3**0.5),
    ),
    numeric_scenario(
        "mixture-stationary",
        "real-looking",
        "70% N(0,1) + 30% N(4,1), no change",
        _mixture(0.3),
        None,
    ),
    numeric_scenario(
        "mixture-share-30-50",
        "real-looking",
        "mixture; N(4,1)'s share 30% -> 50% (mean + 0.38 sd)",
        _mixture(0.3),
        _mixture(0.5),
        limits.continuous(limits.mixture(0.3), limits.mixture(0.5), -np.inf, np.inf),
    ),
    numeric_scenario(
        "mixture-share-30-40",
        "real-looking",
        "mixture; N(4,1)'s share 30% -> 40% (the modes' weights move by 0.1: mean + 0.19 sd)",
        _mixture(0.3),
        _mixture(0.4),
        limits.continuous(limits.mixture(0.3), limits.mixture(0.4), -np.inf, np.inf),
    ),
    numeric_scenario(
        "ar1-stationary",
        "real-looking",
        "AR(1), rho 0.5, marginal N(0,1), no change",
        _ar1(),
        None,
    ),
    numeric_scenario(
        "ar1-shift-1sd",
        "real-looking",
        "AR(1), rho 0.5; mean + 1 marginal sd",
        _ar1(),
        _ar1(_AR_SHIFT),
        limits.ar1_location(_AR_SHIFT, AR_RHO),
    ),
    _river_drift(
        "sea-inputs",
        "SEA variant 0 -> 1 (threshold 8 -> 9): its 3 inputs, unchanged by the drift",
        lambda s: synth.SEA(variant=0, seed=s),
        lambda s: synth.SEA(variant=1, seed=s),
        "True",
        "inputs",
    ),
    _river_drift(
        "sea-label",
        "SEA variant 0 -> 1: the label as a category, 'True' from 68% to 59.5%",
        lambda s: synth.SEA(variant=0, seed=s),
        lambda s: synth.SEA(variant=1, seed=s),
        "True",
        "label",
    ),
    _river_drift(
        "agrawal-inputs",
        "Agrawal function 0 -> 2: its 9 inputs (as numbers), unchanged by the drift",
        lambda s: synth.Agrawal(classification_function=0, seed=s),
        lambda s: synth.Agrawal(classification_function=2, seed=s),
        "1",
        "inputs",
    ),
    _river_drift(
        "agrawal-label",
        "Agrawal function 0 -> 2: the label as a category, '1' from 67% to 53%",
        lambda s: synth.Agrawal(classification_function=0, seed=s),
        lambda s: synth.Agrawal(classification_function=2, seed=s),
        "1",
        "label",
    ),
    *(_recorded(series) for series in CHANGEPOINT_SERIES),
)

BY_NAME: dict[str, Scenario] = {s.name: s for s in SCENARIOS}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(s.group for s in SCENARIOS))


def select(names: Iterable[str] | None) -> list[Scenario]:
    """Scenarios by name or group name, in catalogue order; all of them for None."""
    if names is None:
        return list(SCENARIOS)
    wanted = set()
    for name in names:
        if name in BY_NAME:
            wanted.add(name)
        elif name in GROUPS:
            wanted.update(s.name for s in SCENARIOS if s.group == name)
        else:
            known = ", ".join([*GROUPS, *BY_NAME])
            raise KeyError(f"unknown scenario {name!r}; known: {known}")
    return [s for s in SCENARIOS if s.name in wanted]
