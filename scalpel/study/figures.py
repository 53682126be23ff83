"""The report's figures, drawn from ``index.json`` alone (the paper's Figures 1-7 and 12 and ours beyond them).

Every function takes the index and returns a matplotlib Figure (or None when the study has no data for it), so the
report decides where it goes; bands are ± one standard deviation over seeds unless a caption says otherwise.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from matplotlib.figure import Figure

from scalpel.analyze import plots
from scalpel.analyze.architectures import MATRICES
from scalpel.analyze.weight_table import grid
from scalpel.study.predictors import forgetting_points, linear_fit
from scalpel.study.runs import by_arm

SMOOTH = 5  # steps in the moving average of per-step training curves


def _smooth(y: list[float], k: int = SMOOTH) -> list[float]:
    if k <= 1 or len(y) < k:
        return list(y)
    c = np.convolve(np.asarray(y, float), np.ones(k) / k, mode="valid")
    return [float(v) for v in np.concatenate([np.full(k - 1, np.nan), c])]


def _seed_band(series: list[tuple[list, list]]) -> tuple[list, list, list] | None:
    """Mean and sd over seeds of curves sampled at (mostly) the same x."""
    if not series:
        return None
    xs = sorted(set().union(*[set(x) for x, _ in series]))
    maps = [dict(zip(x, y)) for x, y in series]
    mean, sd, keep = [], [], []
    for x in xs:
        vals = [m[x] for m in maps if x in m and m[x] is not None and not math.isnan(m[x])]
        if vals:
            keep.append(x)
            mean.append(statistics.fmean(vals))
            sd.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
    return (keep, mean, sd) if keep else None


def training_curves(index: dict, algorithm: str, keys: dict[str, str], title: str, ylabel: str) -> Figure | None:
    curves = {}
    for arm, runs in by_arm(index).items():
        if runs[0]["algorithm"] != algorithm:
            continue
        for key, name in keys.items():
            series = [(c["step"], _smooth(c["value"])) for r in runs if (c := r["train"]["curves"].get(key))]
            band = _seed_band(series)
            if band:
                curves[f"{arm}: {name}"] = band
    if not curves:
        return None
    return plots.curves_figure(curves, f"{title} (moving average of {SMOOTH} steps; band ± sd over seeds)",
                               "training step", ylabel)


def _accuracy_bar(index: dict, who: str, bench: str) -> tuple[float | None, tuple[float, float]]:
    """Mean accuracy and its (bounded) 95 % CI as error-bar lengths; no bar when the models share no item."""
    from scalpel.study.claims import accuracy

    try:
        a = accuracy(index, who, bench)
    except ValueError:
        a = None
    if a is None:
        return None, (0.0, 0.0)
    return a["mean"], (a["mean"] - a["ci95"][0], a["ci95"][1] - a["mean"])


def benchmark_bars(index: dict, arms: list[str] | None = None, title: str = "") -> Figure | None:
    """Base vs each arm's final checkpoint per benchmark: mean over seeds and items, bars ± the 95 % CI (crossed
    items × seeds for arms, items for the base; Wilson-bounded, so no bar leaves [0, 1])."""
    from scalpel.study.claims import BASE

    benches = index["benchmarks"]["all"]
    names = ["base"] + [a for a in by_arm(index) if arms is None or a in arms]
    groups, errs = {}, {}
    for name in names:
        bars = [_accuracy_bar(index, BASE if name == "base" else name, b) for b in benches]
        groups[name], errs[name] = [m for m, _ in bars], [e for _, e in bars]
    if all(v is None for vs in groups.values() for v in vs):
        return None
    fig = plots.figure(max(6.0, 1.3 * len(benches) + 2), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(groups)
    for i, (name, vals) in enumerate(groups.items()):
        x = np.arange(len(benches)) + i * width
        y = [np.nan if v is None else v for v in vals]
        e = np.array(errs[name], float).T
        ax.bar(x, y, width, label=name, yerr=e, capsize=2)
    ax.set_xticks(np.arange(len(benches)) + 0.4 - width / 2, benches, rotation=20, fontsize=8)
    ax.set_ylabel("accuracy (final checkpoint)")
    ax.set_ylim(0, 1)
    ax.set_title(title or "benchmarks: base vs arms (mean over seeds and items, 95 % CI over items × seeds)",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def kl_curves(index: dict) -> Figure | None:
    curves = {}
    for arm, runs in by_arm(index).items():
        band = _seed_band([([0] + [k["step"] for k in r["kl"]], [0.0] + [k["kl_forward"] for k in r["kl"]])
                           for r in runs if r.get("kl")])
        if band:
            curves[arm] = band
    if not curves:
        return None
    return plots.curves_figure(curves, "KL(base ‖ checkpoint) per completion token (band ± sd over seeds)",
                               "training step", "mean per-token KL")


def weight_heatmaps(index: dict) -> tuple[list[tuple[str, Figure]], list[tuple[str, list[Figure]]]]:
    """Final-checkpoint heatmap per arm (first seed, one colour scale for all arms) and GIF frames per arm."""
    first = {}
    for r in index["runs"]:
        if (r.get("weights") or {}).get("by_step"):
            first.setdefault(r["arm"], r)
    if not first:
        return [], []
    vmax = max(float(np.nanmax(grid(s["rel_fro"]))) for r in first.values()
               for s in r["weights"]["by_step"].values() if s.get("rel_fro"))
    finals, gifs = [], []
    for arm, r in first.items():
        by = r["weights"]["by_step"]
        steps = sorted(by, key=int)
        fig = plots.heatmap_figure(grid(by[steps[-1]]["rel_fro"]), MATRICES,
                                   f"{arm} (seed {r['seed']}) step {steps[-1]}: ‖ΔW‖/‖W‖", vmax, label="‖ΔW‖/‖W‖")
        finals.append((arm, fig))
        gifs.append((arm, [plots.heatmap_figure(grid(by[s]["rel_fro"]), MATRICES,
                                                f"{arm} (seed {r['seed']}) step {s}: ‖ΔW‖/‖W‖", vmax,
                                                label="‖ΔW‖/‖W‖") for s in steps]))
    return finals, gifs


def update_lines(index: dict, column: str, title: str, ylabel: str) -> Figure | None:
    curves = {}
    for arm, runs in by_arm(index).items():
        series = []
        for r in runs:
            by = (r.get("weights") or {}).get("by_step") or {}
            pts = [(int(s), statistics.fmean([v for vs in d[column].values() for v in vs]))
                   for s, d in by.items() if d.get(column)]
            if pts:
                pts.sort()
                series.append(([p[0] for p in pts], [p[1] for p in pts]))
        band = _seed_band(series)
        if band:
            curves[arm] = band
    if not curves:
        return None
    return plots.curves_figure(curves, title + " (mean over layers and matrices; band ± sd over seeds)",
                               "training step", ylabel)


def passk_curves(index: dict) -> Figure | None:
    benches = index["benchmarks"]["in_domain"]
    fig = plots.figure(4.2 * max(1, len(benches)), 3.6)
    drawn = False
    for i, b in enumerate(benches):
        ax = fig.add_subplot(1, len(benches), i + 1)
        rows = {"base": [index["base"].get("passk", {}).get(b)]}
        for arm, runs in by_arm(index).items():
            rows[arm] = [(r.get("passk") or {}).get(max(r["passk"], key=int), {}).get(b) if r.get("passk") else None
                         for r in runs]
        for name, summaries in rows.items():
            curves = [s["pass_at_k"] for s in summaries if s and s.get("pass_at_k")]
            if not curves:
                continue
            ks = sorted({int(k.removeprefix("pass@")) for c in curves for k in c})
            ys = [statistics.fmean([c[f"pass@{k}"] for c in curves if f"pass@{k}" in c]) for k in ks]
            ax.plot(ks, ys, marker="o", markersize=3, label=name)
            drawn = True
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k")
        ax.set_title(b, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("pass@k (unbiased estimator), base vs final checkpoints (mean over seeds)", fontsize=9)
    fig.tight_layout()
    return fig if drawn else None


def kl_forgetting_points(index: dict) -> list[dict]:
    """(KL to base, out-of-domain accuracy change) at every checkpoint that has both, for every run."""
    return [{**p, "kl": p["kl_forward"]} for p in forgetting_points(index) if p["kl_forward"] is not None]


def fit(points: list[dict]) -> dict | None:
    """Least-squares line ood_change = a + b·KL and its R²."""
    return linear_fit([p["kl"] for p in points], [p["ood_change"] for p in points])


def kl_scatter(index: dict) -> tuple[Figure | None, dict]:
    pts = kl_forgetting_points(index)
    if not pts:
        return None, {}
    fits = {}
    fig = plots.figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    for alg in sorted({p["algorithm"] for p in pts}):
        sub = [p for p in pts if p["algorithm"] == alg]
        f = fit(sub)
        fits[alg] = f
        lab = alg + (f" (R² = {f['r2']:.2f}, n = {f['n']})" if f and f["r2"] is not None else "")
        sc = ax.scatter([p["kl"] for p in sub], [p["ood_change"] for p in sub], s=14, alpha=0.7, label=lab)
        if f:
            xs = np.linspace(min(p["kl"] for p in sub), max(p["kl"] for p in sub), 20)
            ax.plot(xs, f["intercept"] + f["slope"] * xs, color=sc.get_facecolor()[0], lw=1)
    allfit = fit(pts)
    fits["all"] = allfit
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("KL(base ‖ checkpoint), per token")
    ax.set_ylabel("out-of-domain accuracy change vs base")
    ax.set_title("does KL to base predict forgetting? every evaluated checkpoint of every arm" +
                 (f" (all: R² = {allfit['r2']:.2f})" if allfit and allfit["r2"] is not None else ""), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, fits


def predictor_bars(table: list[dict]) -> Figure | None:
    """R² of each forgetting predictor with its run-bootstrap 95 % CI (``scalpel.study.predictors``)."""
    rows = [r for r in table if r["r2"] is not None]
    if not rows:
        return None
    fig = plots.figure(6.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    lo = [r["r2"] - (r["ci95"] or [r["r2"]] * 2)[0] for r in rows]
    hi = [(r["ci95"] or [r["r2"]] * 2)[1] - r["r2"] for r in rows]
    ax.bar(x, [r["r2"] for r in rows], yerr=[lo, hi], capsize=3, color="#4c72b0")
    ax.set_xticks(x, [r["predictor"] for r in rows], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("R² vs out-of-domain change")
    ax.set_title("which quantity predicts forgetting? every evaluated checkpoint of every arm", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
