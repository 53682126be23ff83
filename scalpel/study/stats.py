"""Confidence intervals for paired, crossed evaluations: seeds × items, a model against a comparison on the same items.

Design. ``y[s, i]`` is a model's outcome on item ``i`` when trained with seed ``s`` (the item's mean correctness over
its samples), ``b[i]`` (or ``b[s, i]``) the comparison model's on the *same* item ids, ``d = y − b``. The estimate is
the mean of ``d`` over seeds and items. Seeds and items are both samples from populations the claim is about, and
they are crossed (every seed is scored on every item), so ``d`` follows the two-way random-effects model
``d[s, i] = μ + a_i + c_s + e_si`` (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat.; Searle, Casella &
McCulloch 1992, *Variance Components*, ch. 4). The base model is evaluated once, so its sampling noise is the same in
every seed's difference: it is part of ``a_i`` — exactly what a CI over seeds of per-seed gains leaves out.

Variance. ``Var(mean d) = σ²_a/I + σ²_c/S + σ²_e/(IS)``, estimated by the method of moments (two-way ANOVA) with
negative variance components set to 0. With ``Q_items = var_i(mean_s d)/I``, ``Q_seeds = var_s(mean_i d)/S`` and
``Q_res = MS_residual/(IS)``: ``V = (Q_items − Q_res)⁺ + (Q_seeds − Q_res)⁺ + Q_res``. Owen's simpler
``Q_items + Q_seeds`` counts the residual twice; with one completion per item the residual (the checkpoint's own
sampling noise and the seed × item interaction) is the largest component, so that form is 5-8 % wider and covers
96-97 %, where the moment estimator is unbiased (until a component is set to 0, which only widens) and covers close
to 95 % (simulations in ``tests/study/test_stats.py``). The interval is ``mean ± t·√V`` at Welch–Satterthwaite
degrees of freedom, which fall towards ``S − 1`` when the seed component dominates. Known limit: with 2-3 seeds and
a seed effect that dominates the variance, Satterthwaite's df are too optimistic and coverage drops to about
0.87-0.93 (both forms alike); a generalized pivotal quantity restores it, but at about 2.5x the width with 2 seeds
even when seeds do not matter, so the remedy is more seeds, not a wider rule.

Several benchmarks (e.g. "in-domain" = the mean over its benchmarks) form a weighted sum of per-benchmark means:
their items are disjoint but their seeds shared, so item and residual parts add per benchmark while the seed part is
estimated from the weighted per-seed means.

One seed: only the item component can be estimated (``V = Q_items``, df = I − 1). That interval is *item-level*: it
says nothing about seed variation and is labelled so (``Estimate.level``); the claims never judge on it.

Bounds. A difference of accuracies is clipped to [−1, 1]; an accuracy's interval is Wilson's (``metrics.wilson``) at
the effective number of trials ``p(1 − p)/V`` with the t quantile as z, as ``metrics.accuracy_ci`` does for items,
so it stays in [0, 1]. When nothing varies (every difference equal, or p ∈ {0, 1}) V = 0 carries no information: the
interval is then Wilson's for 0 discordant items out of I around the estimate (a difference) or Wilson's at n = I
(an accuracy) — 0/40 against 0/40 is ± 8.8 points, not [0, 0].

Minimum detectable change: the half-width ``t·√V`` of a gain's interval; an observed change smaller than it cannot
give an interval that excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scalpel.evaluate.metrics import Z95, wilson

CROSSED = "items × seeds (paired, crossed)"
ITEMS_ONLY = "items only (one seed)"
METHOD = ("Accuracy intervals pair per-item outcomes on identical item ids (arm − base for gains, arm − arm by seed "
          "and item for differences) and treat items and seeds as crossed random effects: 95 % CI = mean ± t·√V, V "
          "the method-of-moments variance of the mean over items and seeds (negative components set to 0), t at "
          "Welch–Satterthwaite degrees of freedom, so item sampling, seed variation and the base's own noise are "
          "all in it; differences are clipped to [−1, 1], accuracies use Wilson's interval at the effective n "
          "p(1−p)/V, so no interval leaves its range. With one seed the interval is item-level only. Minimum "
          "detectable change (MDC) = the half-width of a gain's CI.")


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds and items of a (weighted, multi-benchmark) crossed design and the variance of that mean."""

    mean: float
    var: float
    df: float | None  # Welch–Satterthwaite; None when var == 0
    seeds: int
    items: int  # over all benchmarks
    per_seed: tuple[float, ...]  # the weighted mean over items, per seed
    parts: dict  # variance of the mean by source: items, seeds, residual (seeds and residual need >= 2 seeds)
    fallback_items: float  # the weighted item count the zero-variance (Wilson) fallback uses

    @property
    def level(self) -> str:
        return CROSSED if self.seeds > 1 else ITEMS_ONLY


def align(outcomes: Mapping[str, Mapping[str, float | None]]) -> tuple[list[str], np.ndarray, int]:
    """The item ids every model was scored on, the models' values on them (one row per model, in the mapping's
    order), and how many ids some model lacks (left out). Pairing is checked here, never assumed by position."""
    if not outcomes:
        raise ValueError("align: no models given")
    sets = {name: {i for i, v in m.items() if v is not None} for name, m in outcomes.items()}
    common = sorted(set.intersection(*sets.values()))
    if not common:
        sizes = ", ".join(f"{n}: {len(s)}" for n, s in sets.items())
        raise ValueError(f"no item id is shared by every model ({sizes} ids): nothing to pair")
    rows = np.array([[float(outcomes[n][i]) for i in common] for n in outcomes], dtype=float)
    return common, rows, len(set.union(*sets.values())) - len(common)


def _check_block(d: np.ndarray, w: float, seeds: int | None) -> np.ndarray:
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[1] < 2:
        raise ValueError(f"a block must be seeds x items with at least 2 items, got shape {d.shape}")
    if seeds is not None and d.shape[0] != seeds:
        raise ValueError(f"every block needs the same seeds (rows): {d.shape[0]} != {seeds}")
    if not np.isfinite(d).all():
        raise ValueError("a block contains a non-finite outcome")
    if not w > 0:
        raise ValueError(f"block weight must be > 0, got {w}")
    return d


def crossed(blocks: Sequence[tuple[np.ndarray, float]]) -> Estimate:
    """The weighted mean ``Σ_b w_b · mean(D_b)`` of seeds × items blocks (one per benchmark, rows = the same seeds)
    and its crossed random-effects variance (module docstring)."""
    if not blocks:
        raise ValueError("crossed: no blocks")
    ds = []
    for d, w in blocks:
        ds.append((_check_block(d, w, ds[0][0].shape[0] if ds else None), float(w)))
    S = ds[0][0].shape[0]
    per_seed = sum(w * d.mean(axis=1) for d, w in ds)
    mean = float(np.mean(per_seed))
    items = [(w * w * d.mean(axis=0).var(ddof=1) / d.shape[1], d.shape[1] - 1) for d, w in ds]  # (Q, df)
    if S == 1:
        terms = [(q, 1.0, k) for q, k in items]
        parts = {"items": sum(q for q, _ in items)}
    else:
        res = [(w * w * _ms_residual(d) / (d.shape[1] * S), (S - 1) * (d.shape[1] - 1)) for d, w in ds]
        q_seed = float(np.var(per_seed, ddof=1) / S)
        seed_part = q_seed - sum(q for q, _ in res)
        item_parts = [qi - qr for (qi, _), (qr, _) in zip(items, res)]
        terms = [(q_seed, float(seed_part > 0), S - 1)]
        terms += [(qi, float(p > 0), k) for (qi, k), p in zip(items, item_parts)]
        terms += [(qr, 1.0 - (seed_part > 0) - (p > 0), k) for (qr, k), p in zip(res, item_parts)]
        parts = {"items": sum(max(p, 0.0) for p in item_parts), "seeds": max(seed_part, 0.0),
                 "residual": sum(q for q, _ in res)}
    var, df = _combine(terms), _satterthwaite(terms)
    fallback = sum(w * d.shape[1] for d, w in ds) / sum(w for _, w in ds)
    return Estimate(mean=mean, var=var, df=df if var > 0 else None, seeds=S, items=sum(d.shape[1] for d, _ in ds),
                    per_seed=tuple(float(x) for x in per_seed), parts={k: float(v) for k, v in parts.items()},
                    fallback_items=float(fallback))


def _ms_residual(d: np.ndarray) -> float:
    S, n = d.shape
    r = d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + d.mean()
    return float((r * r).sum() / ((S - 1) * (n - 1)))


def _combine(terms: list[tuple[float, float, int]]) -> float:
    """V = Σ coefficient · Q (the coefficients encode which components were truncated at 0)."""
    return max(0.0, float(sum(c * q for q, c, _ in terms)))


def _satterthwaite(terms: list[tuple[float, float, int]]) -> float | None:
    v = _combine(terms)
    den = sum((c * q) ** 2 / k for q, c, k in terms if k > 0 and c != 0)
    return v * v / den if v > 0 and den > 0 else None


def t_quantile(df: float | None, level: float = 0.95) -> float:
    """Two-sided quantile of Student's t (the normal's when df is unknown)."""
    from scipy.stats import t

    return Z95 if df is None or not math.isfinite(df) else float(t.ppf(0.5 + level / 2, df))


def half_width(est: Estimate) -> float:
    """The CI half-width of a difference (the minimum detectable change of a gain)."""
    if est.var > 0:
        return t_quantile(est.df) * math.sqrt(est.var)
    return wilson(0.0, est.fallback_items)[1]


def difference_ci(est: Estimate) -> list[float]:
    """95 % CI of a difference of accuracies, inside [−1, 1]."""
    h = half_width(est)
    return [max(-1.0, est.mean - h), min(1.0, est.mean + h)]


def accuracy_ci(est: Estimate) -> list[float]:
    """95 % CI of an accuracy (the mean of outcomes in [0, 1]): Wilson at the effective n, inside [0, 1]."""
    p = min(1.0, max(0.0, est.mean))
    if est.var > 0 and 0 < p < 1:
        lo, hi = wilson(p, p * (1 - p) / est.var, t_quantile(est.df))
    else:
        lo, hi = wilson(p, est.fallback_items)
    return [lo, hi]
