"""Rates with honest uncertainty: Wilson intervals and the two-proportion z-test.

Campaign results compare every rate with Kumamoto's baseline (34.4% open, 3.1%
click, both over delivered) and variants with each other; with small numbers a
rate alone misleads, so each comes with its 95% interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BASELINE_OPEN = 7373 / 21416   # 表７: 開封数 / 配信数 = 34.4%
BASELINE_CLICK = 671 / 21416   # 表７: クリック数 / 配信数 = 3.1%


@dataclass(frozen=True)
class Rate:
    hits: int
    total: int
    rate: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def wilson(hits: int, total: int) -> Rate:
    """The rate and its 95% Wilson score interval (good near 0% and with small totals), by scipy."""
    if total <= 0:
        return Rate(hits, total, None, None, None)
    if not 0 <= hits <= total:
        raise ValueError(f"{hits} hits out of {total}")
    # Imported here: scipy.stats takes a worker about 0.3 s and tens of MB to load, and only
    # staff reports need it (workers import this module through campaigns).
    from scipy.stats import binomtest

    interval = binomtest(hits, total).proportion_ci(confidence_level=0.95, method="wilson")
    low = 0.0 if hits == 0 else max(0.0, float(interval.low))  # exact at the edges, no float dust
    high = 1.0 if hits == total else min(1.0, float(interval.high))
    return Rate(hits, total, hits / total, low, high)


@dataclass(frozen=True)
class Comparison:
    z: float | None
    p_value: float | None
    verdict: str


def compare(a: Rate, b: Rate, names: tuple[str, str] = ("A", "B"), alpha: float = 0.05) -> Comparison:
    """Two-sided two-proportion z-test (pooled), worded for staff."""
    if not a.total or not b.total:
        return Comparison(None, None, "no difference yet (not enough deliveries)")
    pooled = (a.hits + b.hits) / (a.total + b.total)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.total + 1 / b.total))
    if se == 0:
        return Comparison(0.0, 1.0, "no difference yet")
    z = (b.hits / b.total - a.hits / a.total) / se
    p = math.erfc(abs(z) / math.sqrt(2))
    if p >= alpha:
        return Comparison(z, p, f"no difference yet (p={p:.3f})")
    better, worse = (names[1], names[0]) if z > 0 else (names[0], names[1])
    return Comparison(z, p, f"{better} is better than {worse}, p={p:.3f}" if p >= 0.001 else
                      f"{better} is better than {worse}, p<0.001")
