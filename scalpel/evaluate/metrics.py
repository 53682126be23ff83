"""Accuracy with a confidence interval, and the unbiased pass@k estimator.

Accuracy is the mean of correct over items x samples. Its 95 % interval treats items as clusters: samples of one
item are correlated (an easy item is right in most samples), so counting items x samples as independent trials
would overstate the precision. We compute the cluster-robust standard error of the mean (between-item variance of
per-item accuracies / number of items), turn it into an effective number of trials
``n_eff = p(1-p) / se^2`` clipped to [items, items x samples], and report the Wilson score interval at ``n_eff``.
With one sample per item this is the plain Wilson interval over items; with many samples of independent items it
approaches the Wilson interval over all samples; when items are all-or-nothing extra samples do not narrow it.

pass@k (Chen et al., 2021): with n samples of which c are correct, ``1 - C(n-c, k) / C(n, k)``, averaged over
items, reported for k = 1, 2, 4, ... <= n (pass@1 equals accuracy); ``pass_at_k_curve`` gives every k up to the
samples, as Yue et al. (2025, "Does Reinforcement Learning Really Incentivize Reasoning Capacity in LLMs Beyond the
Base Model?") plot it to find where the base model overtakes the RL-trained one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples drawn without replacement from n is correct)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - prod_{i=n-c+1}^{n} (1 - k/i): numerically stable form of 1 - C(n-c,k)/C(n,k)
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def ks_for(n: int) -> list[int]:
    """1, 2, 4, ... up to n."""
    out, k = [], 1
    while k <= n:
        out.append(k)
        k *= 2
    return out


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # exact at p = 0 or 1


def accuracy_ci(per_item: Sequence[Sequence[bool]], z: float = Z95) -> dict:
    """Mean accuracy over items x samples with a cluster-aware 95 % Wilson interval (see module docstring)."""
    per_item = [list(s) for s in per_item if len(s)]
    m = len(per_item)
    total = sum(len(s) for s in per_item)
    if m == 0:
        return {"accuracy": None, "ci95": [None, None], "stderr": None, "n_items": 0, "n_samples_total": 0,
                "n_effective": 0}
    correct = sum(sum(map(bool, s)) for s in per_item)
    p = correct / total
    if m > 1:
        means = [sum(map(bool, s)) / len(s) for s in per_item]
        mu = sum(means) / m
        se = math.sqrt(sum((x - mu) ** 2 for x in means) / (m - 1) / m)
    else:
        se = 0.0
    if se > 0 and 0 < p < 1:
        n_eff = min(float(total), max(float(m), p * (1 - p) / se**2))
    else:  # no spread between items (or all right / all wrong): the count of items is what we know for sure
        n_eff = float(m) if m > 1 else float(total)
    lo, hi = wilson(p, n_eff, z)
    return {"accuracy": p, "ci95": [lo, hi], "stderr": se, "n_items": m, "n_samples_total": total,
            "n_effective": n_eff}


def pass_at_ks(per_item: Sequence[Sequence[bool]]) -> dict[str, float]:
    """Mean unbiased pass@k over items for k = 1, 2, 4, ... <= the smallest sample count."""
    per_item = [list(s) for s in per_item if len(s)]
    if not per_item:
        return {}
    n_min = min(len(s) for s in per_item)
    return {f"pass@{k}": sum(pass_at_k(len(s), sum(map(bool, s)), k) for s in per_item) / len(per_item)
            for k in ks_for(n_min)}


def pass_at_k_curve(counts: Sequence[tuple[int, int]]) -> list[float]:
    """Mean unbiased pass@k over items for every k = 1 .. the smallest sample count, from per-item (n, c)."""
    if not counts:
        raise ValueError("pass_at_k_curve: no items")
    n_min = min(n for n, _ in counts)
    return [sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in range(1, n_min + 1)]
