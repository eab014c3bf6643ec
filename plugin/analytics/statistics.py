"""The tests behind the verdicts: Wald intervals, two-proportion z-tests and Welch mean
differences, all by normal approximation."""
from __future__ import annotations

import math
import statistics
from statistics import NormalDist

from plugin.analytics.results import Interval

_NORMAL = NormalDist()
MIN_EVENTS = 5  # conversions and non-conversions per group for the normal approximation


def _z(confidence: float) -> float:
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def difference_interval(x1: int, n1: int, x0: int, n0: int, confidence: float = 0.95) -> Interval:
    """p1 - p0 with a Wald interval: normal approximation, unpooled standard error."""
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    d = p1 - p0
    half = _z(confidence) * se
    return Interval(d, d - half, d + half, confidence)


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for p1 == p2, with the pooled standard error."""
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / se
    return z, 2 * (1 - _NORMAL.cdf(abs(z)))


def mean_difference(a: list[float], b: list[float], confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(a) - mean(b), low, high, two-sided p): normal approximation, Welch standard error."""
    d = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    if se == 0:
        return d, d, d, 1.0 if d == 0 else 0.0
    half = _z(confidence) * se
    return d, d - half, d + half, 2 * (1 - _NORMAL.cdf(abs(d / se)))


def too_few(n: int, x: int, min_group: int) -> bool:
    return n < min_group or x < MIN_EVENTS or n - x < MIN_EVENTS
