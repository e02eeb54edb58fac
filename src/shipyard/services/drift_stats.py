"""The drift statistics, computed from sketches: the same numbers SciPy gives on the values.

A numeric sketch is a cumulative distribution known at sorted points and taken as linear
between them (see ``shipyard.domain.drift_sketches``). For exact sketches (every distinct
value is a point) that is the empirical distribution itself, and every statistic here equals
SciPy's on the values: ``wasserstein_distance``, ``ks_2samp``, ``chisquare``,
``jensenshannon``. For a large table the reference is known at 513 quantile points; the
Wasserstein distance is then exact up to the spread of values inside each of its 512 bins
(measured: within 1% of SciPy's, ``docs/drift.md``). The Kolmogorov-Smirnov statistic stays
exact whenever the reference is exact, because a current window is counted at every
reference point.

P-values: SciPy computes them when it is installed (it comes with ``shipyard[ml]``), with the
same choice of exact or asymptotic distribution as ``ks_2samp``; without SciPy the
chi-squared tail comes from the regularized incomplete gamma function below and the
Kolmogorov-Smirnov one from Kolmogorov's limiting distribution (Stephens' correction).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from shipyard.domain.drift_sketches import NumericSketch

__all__ = [
    "cdf",
    "chi2_sf",
    "chisquare_test",
    "fill_zeroes",
    "histogram",
    "jensenshannon_distance",
    "ks_test",
    "percents",
    "psi",
    "sturges_edges",
    "wasserstein_normed",
    "z_test",
]

Floats = npt.NDArray[np.float64]
_KS_EXACT_LIMIT = 10_000  # scipy's ks_2samp computes exact p-values up to this size


def cdf(sketch: NumericSketch, at: Floats) -> tuple[Floats, Floats]:
    """The share of finite values ``< at`` and ``<= at``, linear between the sketch's points.

    Args:
        sketch: a numeric sketch with at least one finite value.
        at: sorted points to evaluate at.

    Returns:
        (left limits, values) of the cumulative distribution at ``at``.
    """
    points = np.asarray(sketch.points, dtype=np.float64)
    n = float(sketch.finite)
    below = np.asarray(sketch.below, dtype=np.float64) / n
    upto = np.asarray(sketch.upto, dtype=np.float64) / n
    k = np.searchsorted(points, at, side="right") - 1
    left = np.zeros(len(at))
    right = np.zeros(len(at))
    inside = k >= 0
    kk = k[inside]
    hit = points[kk] == at[inside]
    # between point k and k + 1 the distribution climbs linearly from upto[k] to below[k + 1]
    nxt = np.minimum(kk + 1, len(points) - 1)
    span = points[nxt] - points[kk]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(span > 0, (at[inside] - points[kk]) / span, 1.0)
    between = upto[kk] + (below[nxt] - upto[kk]) * frac
    between = np.where(kk == len(points) - 1, upto[kk], between)
    left[inside] = np.where(hit, below[kk], between)
    right[inside] = np.where(hit, upto[kk], between)
    return left, right


def _merged(a: NumericSketch, b: NumericSketch) -> tuple[Floats, Floats, Floats]:
    at = np.union1d(np.asarray(a.points, dtype=np.float64), np.asarray(b.points, np.float64))
    a_left, a_right = cdf(a, at)
    b_left, b_right = cdf(b, at)
    return at, a_left - b_left, a_right - b_right


def wasserstein_normed(a: NumericSketch, b: NumericSketch) -> tuple[float, float]:
    """The first Wasserstein distance, and that distance over max(reference std, 0.001).

    Args:
        a: the reference.
        b: the current window.

    Returns:
        (normed distance, distance), as Evidently's ``wasserstein`` test computes them.
    """
    at, d_left, d_right = _merged(a, b)
    if len(at) < 2:
        return 0.0, 0.0
    # on [at[i], at[i + 1]] the difference of the two distributions is linear: from its value
    # at at[i] to its left limit at at[i + 1]
    d0, d1, width = d_right[:-1], d_left[1:], np.diff(at)
    same = d0 * d1 >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = (d0**2 + d1**2) / (2 * (np.abs(d0) + np.abs(d1)))
    area = np.where(same, np.abs(d0 + d1) / 2, np.nan_to_num(crossing))
    distance = float(np.sum(width * area))
    return distance / max(a.std, 0.001), distance


def ks_test(a: NumericSketch, b: NumericSketch) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test, two-sided, as ``scipy.stats.ks_2samp``.

    Returns:
        (D, p-value).
    """
    _, d_left, d_right = _merged(a, b)
    d = float(max(np.max(np.abs(d_left), initial=0.0), np.max(np.abs(d_right), initial=0.0)))
    n1, n2 = a.finite, b.finite
    stats = _scipy("stats")
    if stats is None:  # pragma: no cover - scipy comes with shipyard[ml]
        return d, _kolmogorov_p(d, n1 * n2 / (n1 + n2))
    if a.exact and b.exact and max(n1, n2) <= _KS_EXACT_LIMIT:
        values_a = np.repeat(np.asarray(a.points), np.diff([0, *a.upto]))
        values_b = np.repeat(np.asarray(b.points), np.diff([0, *b.upto]))
        with warnings.catch_warnings():  # scipy warns when it falls back to asymptotics
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ks_2samp(values_a, values_b)
        return float(result.statistic), float(result.pvalue)
    en = n1 * n2 / (n1 + n2)
    return d, float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def _scipy(module: str) -> Any:
    """A SciPy module, or None when SciPy is not installed."""
    try:
        return importlib.import_module(f"scipy.{module}")
    except ImportError:  # pragma: no cover - scipy comes with shipyard[ml]
        return None


def _kolmogorov_p(d: float, en: float) -> float:
    """Kolmogorov's limiting distribution with Stephens' small-sample correction."""
    lam = (math.sqrt(en) + 0.12 + 0.11 / math.sqrt(en)) * d
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return float(min(max(2 * total, 0.0), 1.0))


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for a chi-squared variable with ``dof`` degrees of freedom."""
    if dof <= 0 or math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 0.0
    if x <= 0:
        return 1.0
    return _gamma_q(dof / 2, x / 2)


def _gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (Numerical Recipes 6.2)."""
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300  # continued fraction (modified Lentz)
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-16:
            break
    return math.exp(log_front) * h


def chisquare_test(
    reference: Mapping[Any, float], current: Mapping[Any, float]
) -> tuple[float, float]:
    """Evidently's chi-squared test: current counts against reference shares scaled to them.

    Args:
        reference: value -> count in the reference.
        current: value -> count in the current window.

    Returns:
        (chi-squared, p-value); a value the reference never had gives (inf, 0).
    """
    keys = list(reference.keys() | current.keys())
    n_ref = sum(reference.values())
    n_cur = sum(current.values())
    observed = np.array([current.get(k, 0) for k in keys], dtype=np.float64)
    expected = np.array([reference.get(k, 0) for k in keys], dtype=np.float64) * (n_cur / n_ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = float(np.sum((observed - expected) ** 2 / expected))
    special = _scipy("special")
    if special is None:  # pragma: no cover - scipy comes with shipyard[ml]
        return stat, chi2_sf(stat, len(keys) - 1)
    return stat, float(special.chdtrc(len(keys) - 1, stat)) if len(keys) > 1 else math.nan


def z_test(reference: Mapping[Any, float], current: Mapping[Any, float]) -> tuple[float, float]:
    """Evidently's two-proportion z-test for columns of at most two values.

    Returns:
        (z, two-sided p-value).
    """
    keys = sorted(reference.keys() | current.keys(), key=str)
    if len(keys) == 1:  # both sides hold the same single value
        return 0.0, 1.0
    n1, n2 = sum(reference.values()), sum(current.values())
    p1 = 1 - reference.get(keys[0], 0) / n1  # share of "not the first value", as Evidently
    p2 = 1 - current.get(keys[0], 0) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p1 - p2) / spread if spread > 0 else 0.0
    return z, math.erfc(abs(z) / math.sqrt(2))


def percents(
    reference: Mapping[Any, float], current: Mapping[Any, float], fill: bool
) -> tuple[Floats, Floats]:
    """Shares per value over the values of both sides (Evidently's ``get_binned_data``)."""
    keys = list(reference.keys() | current.keys())
    n_ref, n_cur = sum(reference.values()), sum(current.values())
    ref = np.array([reference.get(k, 0) / n_ref for k in keys], dtype=np.float64)
    cur = np.array([current.get(k, 0) / n_cur for k in keys], dtype=np.float64)
    return (fill_zeroes(ref), fill_zeroes(cur)) if fill else (ref, cur)


def fill_zeroes(shares: Floats) -> Floats:
    """Evidently's replacement of empty shares (so that logarithms stay finite)."""
    nonzero = shares[shares != 0]
    if nonzero.size == 0:
        return shares
    smallest = float(nonzero.min())
    out = shares.copy()
    out[out == 0] = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return out


def jensenshannon_distance(ref: Floats, cur: Floats) -> float:
    """``scipy.spatial.distance.jensenshannon`` (natural logarithm) of two share vectors."""
    p = ref / ref.sum()
    q = cur / cur.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    return float(math.sqrt(max(float(np.sum(left) + np.sum(right)) / 2, 0.0)))


def psi(ref: Floats, cur: Floats) -> float:
    """Population stability index of two share vectors (empty shares already filled)."""
    return float(np.sum((ref - cur) * np.log(ref / cur)))


def sturges_edges(low: float, high: float, n: int) -> Floats:
    """``numpy.histogram_bin_edges(values, "sturges")`` from the range and size alone."""
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / (math.log2(n) + 1.0)
    bins = max(1, math.ceil((high - low) / width))
    return np.linspace(low, high, bins + 1)


def histogram(sketch: NumericSketch, edges: Floats) -> Floats:
    """Values per bin ``[edges[i], edges[i + 1])``, the last bin closed, as numpy.histogram."""
    left, right = cdf(sketch, edges)
    at = left.copy()
    at[-1] = right[-1]  # the last bin holds its right edge
    return np.diff(at) * sketch.finite
