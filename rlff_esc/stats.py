"""Bootstrap confidence intervals, paired bootstrap tests and AUC: the statistics of every stage
(evaluation, the ladders, the reward model's held-out metrics, the agents' validity check).

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


def ratio_of(numerators, denominators) -> Statistic:
    """Sum of numerators over sum of denominators of the drawn items: a share pooled over clusters
    (e.g. pairs grouped by context, since pairs of one context are not independent)."""
    num, den = np.asarray(numerators, float), np.asarray(denominators, float)

    def statistic(idx: np.ndarray) -> np.ndarray:
        return num[idx].sum(1) / den[idx].sum(1)

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


def auc(positive, negative) -> float:
    """P(a random positive scores above a random negative), ties counting half (ROC AUC); NaN when
    either side is empty."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    greater = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(greater + 0.5 * ties)


def groups_interval(statistic: Callable[..., float], groups: list[np.ndarray], *, samples: int = 1000,
                    seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile interval ``[low, high]`` of ``statistic(*groups)`` when each group is an independent
    sample resampled on its own (AUC's positives and negatives); non-finite draws are left out, None
    when none is finite."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        value = statistic(*[g[rng.integers(0, len(g), len(g))] for g in groups])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return None
    tail = (1 - level) / 2 * 100
    return [float(v) for v in np.percentile(values, [tail, 100 - tail])]
