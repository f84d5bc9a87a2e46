"""Bootstrap confidence intervals and paired bootstrap tests over evaluation items (cases or contexts).

A statistic is a function of a matrix of item indices (one resample per row) that returns one value
per row, so that means vectorise and corpus-level metrics (BLEU, Distinct-n) recompute from their
per-item parts. Resamples come from a seeded generator: the same seed gives the same intervals, and a
paired test resamples the *same* items for both systems (Koehn, 2004).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Statistic = Callable[[np.ndarray], np.ndarray]


def resamples(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def mean_of(values) -> Statistic:
    """The mean of per-item values; items without a value (None / NaN) are left out."""
    v = np.array([np.nan if x is None else float(x) for x in values], dtype=float)

    def statistic(idx: np.ndarray) -> np.ndarray:
        picked = v[idx]
        counts = (~np.isnan(picked)).sum(1)
        sums = np.nansum(picked, 1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    return statistic


def _value(statistic: Statistic, n: int) -> float:
    return float(statistic(np.arange(n)[None, :])[0])


def interval(statistic: Statistic, n: int, *, samples: int, seed: int, level: float = 0.95) -> dict:
    """Point value and percentile bootstrap interval: ``{"value", "low", "high"}`` (None when undefined)."""
    if n == 0:
        return {"value": None, "low": None, "high": None}
    value = _value(statistic, n)
    boot = statistic(resamples(n, samples, seed))
    boot = boot[~np.isnan(boot)]
    if np.isnan(value) or boot.size == 0:
        return {"value": None, "low": None, "high": None}
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return {"value": value, "low": float(low), "high": float(high)}


def paired_test(system: Statistic, base: Statistic, n: int, *, samples: int, seed: int,
                level: float = 0.95) -> dict:
    """Difference system − base with its bootstrap interval and a two-sided p-value: twice the
    share of resamples whose difference falls on the other side of zero (capped at 1)."""
    if n == 0:
        return {"delta": None, "low": None, "high": None, "p": None}
    delta = _value(system, n) - _value(base, n)
    idx = resamples(n, samples, seed)
    boot = system(idx) - base(idx)
    boot = boot[~np.isnan(boot)]
    if np.isnan(delta) or boot.size == 0:
        return {"delta": None, "low": None, "high": None, "p": None}
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    p = min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0)))
    return {"delta": delta, "low": float(low), "high": float(high), "p": float(p)}
