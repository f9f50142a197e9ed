"""The information limit of a change: how soon any detector can find it, at best.

For a change from distribution P to distribution Q, no test whose false
alarms come on average ``arl`` events apart finds the change, on average,
in fewer than about ``log(arl) / KL(Q || P)`` events (Lorden, 1971); the
CUSUM that knows Q comes that close. A change that builds up (a ramp) tells
less at first: the limit is then the number of events by which the
Kullback-Leibler divergences of the events since the change add up to
``log(arl)``. The detection benchmark reports each scenario's median delay
divided by that limit, which says how far a detector is from perfect rather
than how it compares with a weaker peer.

A category the reference never saw has no share there, and so an infinite
divergence: one event of it would tell the change. A reference of ``n``
events cannot tell a share below about ``1 / n`` from none, so such a
category counts with a share of ``1 / n`` before the change
(:func:`floored`), ``n`` the events of the reference the detector learns.

    >>> round(Information.constant(normal_location(1.0)).limit(1e6), 1)
    27.6
    >>> round(categorical({"a": 0.5, "b": 0.5}, {"a": 0.25, "b": 0.75}), 4)
    0.1308
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats

HORIZON = 1_000_000
"""Events after a change within which a limit is looked for; beyond it there is none."""


@dataclass(frozen=True)
class Information:
    """What the events after a change tell: ``per_event(k)`` is the Kullback-Leibler
    divergence (in nats) of the ``k``-th event after it (``k`` from 1) from the
    distribution before."""

    per_event: Callable[[np.ndarray], np.ndarray]
    description: str

    @classmethod
    def constant(cls, divergence: float) -> Information:
        """An abrupt change: every event after it tells ``divergence``."""
        if not divergence > 0:
            raise ValueError(f"a change tells a positive divergence, got {divergence}")
        return cls(lambda k: np.full(k.shape, divergence), f"KL {divergence:.4g} per event")

    @classmethod
    def ramp(cls, divergence_at: Callable[[np.ndarray], np.ndarray], width: int) -> Information:
        """A change that builds up over ``width`` events: ``divergence_at(fraction)`` is the
        divergence of an event once the change has gone ``fraction`` (0 to 1) of its way."""
        return cls(
            lambda k: divergence_at(np.minimum(1.0, k / width)),
            f"ramp over {width:,} events, KL {float(divergence_at(np.ones(1))[0]):.4g} at its end",
        )

    def limit(self, arl: float) -> float | None:
        """Events from the change until the divergences add up to ``log(arl)``; None if
        they do not within :data:`HORIZON` events. A fraction for an abrupt change
        (Lorden's bound is an expectation), whole events for a ramp."""
        target = math.log(arl)
        first = float(self.per_event(np.ones(1))[0])
        if np.all(self.per_event(np.array([1.0, 2.0, float(HORIZON)])) == first):
            return target / first  # constant
        k = np.arange(1, HORIZON + 1, dtype=float)
        total = np.cumsum(self.per_event(k))
        reached = int(np.searchsorted(total, target))
        return None if reached >= HORIZON else float(reached + 1)


def normal_location(shift: float) -> float:
    """KL(N(shift, 1) || N(0, 1)): a shift of ``shift`` standard deviations."""
    return shift * shift / 2.0


def normal_scale(ratio: float) -> float:
    """KL(N(0, ratio**2) || N(0, 1)): the standard deviation multiplied by ``ratio``.

    >>> round(normal_scale(2**0.5), 4)  # the variance doubles
    0.1534
    """
    variance = ratio * ratio
    return 0.5 * (variance - 1.0 - math.log(variance))


def ar1_location(shift: float, rho: float) -> float:
    """KL rate of a mean shift of ``shift`` marginal sds in a Gaussian AR(1) of lag-1
    correlation ``rho``: its innovations (sd ``sqrt(1 - rho**2)``) shift by
    ``shift * (1 - rho)``, so each event tells ``shift**2 (1 - rho) / (2 (1 + rho))``:
    correlated events tell less than independent ones.

    >>> round(ar1_location(1.0, 0.5), 4)
    0.1667
    """
    return shift * shift * (1.0 - rho) / (2.0 * (1.0 + rho))


def poisson(before: float, after: float) -> float:
    """KL(Poisson(after) || Poisson(before))."""
    return after * math.log(after / before) + before - after


def categorical(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """KL(after || before) of two distributions over categories (every category
    ``after`` gives a share must have one ``before``: see :func:`floored`)."""
    total = 0.0
    for category, share in after.items():
        if share > 0:
            prior = before.get(category, 0.0)
            if prior <= 0:
                raise ValueError(f"category {category!r} has no share before: floor it")
            total += share * math.log(share / prior)
    return total


def floored(
    shares: Mapping[str, float], categories: set[str], reference_events: int
) -> dict[str, float]:
    """``shares`` with every category of ``categories`` it lacks at ``1 / reference_events``,
    the others scaled down to make room (see the module's docstring)."""
    missing = sorted(categories - {c for c, s in shares.items() if s > 0})
    floor = 1.0 / reference_events
    scale = 1.0 - floor * len(missing)
    return {c: s * scale for c, s in shares.items()} | dict.fromkeys(missing, floor)


LogDensity = Callable[[float], float]


def continuous(before: LogDensity, after: LogDensity, low: float, high: float) -> float:
    """KL(after || before) of two densities given by their logarithms, integrated
    numerically over [low, high] (where the mass of ``after`` must lie).

    >>> round(continuous(stats.norm().logpdf, stats.norm(0.5).logpdf, -30, 30), 6)
    0.125
    """

    def integrand(x: float) -> float:
        log_q = float(after(x))
        if log_q == -math.inf:
            return 0.0
        return math.exp(log_q) * (log_q - float(before(x)))

    value, _ = integrate.quad(integrand, low, high, limit=400, epsabs=1e-12, epsrel=1e-10)
    return float(value)


def mixture(share: float, second: float = 4.0) -> LogDensity:
    """The log-density of ``1 - share`` of N(0, 1) and ``share`` of N(``second``, 1)."""
    return lambda x: float(
        np.logaddexp(
            math.log1p(-share) + stats.norm.logpdf(x),
            math.log(share) + stats.norm.logpdf(x - second),
        )
    )
