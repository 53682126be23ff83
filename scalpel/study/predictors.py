"""Which quantity predicts forgetting? R² of each candidate against the out-of-domain accuracy change, over every
evaluated checkpoint of every arm (after Shenfeld et al. 2025, "RL's Razor": forward KL to the base on the training
task predicts forgetting better than weight-space distances).

A *point* is one evaluated checkpoint of one run: ``ood_change`` = its mean accuracy over the out-of-domain
benchmarks − the base's (both from the index's evaluation summaries), and the predictors measured at that step:

- ``kl_forward_task``: mean per-token KL(base‖ckpt) on the in-domain task along the checkpoint's own evaluation
  samples (``scalpel.analyze.task_kl``, written by the study's evaluation job): RL's Razor's predictor, on the task's
  held-out questions rather than the training questions themselves.
- ``kl_forward`` / ``kl_reverse`` / ``tv``: mean per-token KL(base‖ckpt), KL(ckpt‖base) and total variation on the
  held-out KL text (``scalpel.analyze.kl``; the study's KL job).
- ``rel_fro``: mean over layers and matrices of ‖ΔW‖_F/‖W_base‖_F (the weights job).
- ``changed_fraction``: mean over layers and matrices of 1 − ``unchanged_atol`` (entries with |Δ| > the weights
  job's atol).

Each predictor's R² is that of the least-squares line ``ood_change ~ a + b·x`` (= squared Pearson correlation), on
the points that have it. Its 95 % CI is a percentile bootstrap that resamples *runs* (a run's checkpoints share a
trajectory, so they are not independent points), ``BOOT`` resamples from a fixed seed; resamples in which x or y
does not vary are dropped and counted. With few runs the interval is wide: that is the information there is.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from scalpel.study.runs import mean_accuracy

PREDICTORS: dict[str, str] = {
    "kl_forward_task": "KL(base‖ckpt) per token, in-domain task, the checkpoint's own samples",
    "kl_forward": "KL(base‖ckpt) per token, held-out text",
    "kl_reverse": "KL(ckpt‖base) per token, held-out text",
    "tv": "total variation per token, held-out text",
    "rel_fro": "mean ‖ΔW‖/‖W‖ over matrices",
    "changed_fraction": "mean fraction of entries changed (|Δ| > atol)",
}
BOOT = 2000
NOTE = ("One point per evaluated checkpoint of every run: out-of-domain accuracy change vs the base against each "
        "predictor at that step. R² of the least-squares line (= squared correlation); 95 % CI: percentile "
        "bootstrap over whole runs (a run's checkpoints are not independent). KL and TV are measured on the "
        "held-out KL text, the task KL on the in-domain benchmarks along each checkpoint's own samples.")


def _weights_at(run: dict, step: int, column: str) -> float | None:
    per = (((run.get("weights") or {}).get("by_step") or {}).get(str(step)) or {}).get(column)
    xs = [v for layers in (per or {}).values() for v in layers if v is not None and math.isfinite(v)]
    return statistics.fmean(xs) if xs else None


def forgetting_points(index: dict) -> list[dict]:
    """Every evaluated checkpoint with its out-of-domain change and whichever predictors were measured there."""
    ood = index["benchmarks"]["out_of_domain"]
    base = mean_accuracy(index["base"]["eval"], ood)
    if base is None:
        return []
    pts = []
    for r in index["runs"]:
        kl = {k["step"]: k for k in r.get("kl") or []}
        for step, ev in sorted((r.get("eval") or {}).items(), key=lambda kv: int(kv[0])):
            a = mean_accuracy(ev, ood)
            if a is None:
                continue
            s = int(step)
            k = kl.get(s, {})
            task = (r.get("task_kl") or {}).get(str(s)) or {}
            changed = _weights_at(r, s, "unchanged_atol")
            pts.append({"arm": r["arm"], "algorithm": r["algorithm"], "seed": r["seed"], "step": s,
                        "ood_change": a - base, "kl_forward_task": task.get("kl_forward_task"),
                        "kl_forward": k.get("kl_forward"), "kl_reverse": k.get("kl_reverse"),
                        "tv": k.get("tv"), "rel_fro": _weights_at(r, s, "rel_fro"),
                        "changed_fraction": None if changed is None else 1.0 - changed})
    return pts


def linear_fit(x, y) -> dict | None:
    """Least-squares line y = a + b·x and its R²; None with fewer than 3 points or no spread in x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    b, a = np.polyfit(x, y, 1)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - (a + b * x)) ** 2).sum()) / ss_tot if ss_tot > 0 else None
    return {"slope": float(b), "intercept": float(a), "r2": r2, "n": len(x)}


def _r2(points: list[dict], predictor: str) -> float | None:
    x = np.array([p[predictor] for p in points], float)
    y = np.array([p["ood_change"] for p in points], float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1] ** 2)


def _with(points: list[dict], *predictors: str) -> tuple[list[dict], list[list[dict]]]:
    """The points that have every one of ``predictors``, and the same points grouped by run."""
    pts = [p for p in points if all(p.get(k) is not None and math.isfinite(p[k]) for k in predictors)]
    runs: dict[tuple, list[dict]] = {}
    for p in pts:
        runs.setdefault((p["arm"], p["seed"]), []).append(p)
    return pts, list(runs.values())


def _bootstrap(runs: list[list[dict]], stat, boot: int, seed: int) -> tuple[list[float] | None, int]:
    """Percentile 95 % CI of ``stat(points)`` over resamples of whole runs, and how many resamples had no value."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(boot):
        v = stat([p for i in rng.integers(0, len(runs), len(runs)) for p in runs[i]])
        if v is not None:
            draws.append(v)
    ci = [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))] if draws else None
    return ci, boot - len(draws)


def predictor_r2(points: list[dict], predictor: str, boot: int = BOOT, seed: int = 0) -> dict:
    """R² of ``ood_change`` on ``predictor`` over the points that have it, with a run-cluster bootstrap CI."""
    pts, runs = _with(points, predictor)
    out = {"predictor": predictor, "meaning": PREDICTORS.get(predictor, predictor), "n_points": len(pts),
           "n_runs": len(runs), "r2": _r2(pts, predictor), "ci95": None, "slope": None, "dropped_resamples": 0}
    if out["r2"] is None:
        return out
    out["slope"] = linear_fit([p[predictor] for p in pts], [p["ood_change"] for p in pts])["slope"]
    if len(runs) > 1:
        out["ci95"], out["dropped_resamples"] = _bootstrap(runs, lambda sel: _r2(sel, predictor), boot, seed)
    return out


def predictor_table(index: dict, boot: int = BOOT, seed: int = 0) -> list[dict]:
    """One row per predictor (``PREDICTORS`` order): R², its bootstrap CI, slope and how many points/runs."""
    pts = forgetting_points(index)
    return [predictor_r2(pts, name, boot, seed) for name in PREDICTORS]


def c10_kl(index: dict) -> str:
    """The KL claim C10 compares: on the task along the arm's own samples (the issue's, RL's Razor's) when the
    study measured it, else on the held-out text."""
    task = any(p.get("kl_forward_task") is not None for p in forgetting_points(index))
    return "kl_forward_task" if task else "kl_forward"


def r2_difference(index: dict, better: str, worse: str, boot: int = BOOT, seed: int = 0) -> dict:
    """R²(better) − R²(worse) on the points that have both, with the same run-cluster bootstrap (paired: one
    resample of runs serves both), for claim C10."""
    pts, runs = _with(forgetting_points(index), better, worse)

    def diff(sel: list[dict]) -> float | None:
        a, b = _r2(sel, better), _r2(sel, worse)
        return None if a is None or b is None else a - b

    out = {"mean": diff(pts), "ci95": None, "n_points": len(pts), "n_runs": len(runs),
           "n_seeds": len({p["seed"] for p in pts})}
    if out["mean"] is not None and len(runs) > 1:
        out["ci95"], _ = _bootstrap(runs, diff, boot, seed)
    return out


def predictor_rows(table: list[dict]) -> list[list[str]]:
    """The report's table of ``predictor_table``: best R² first."""
    rows = [["predictor", "R² [95 % CI, runs resampled]", "slope", "checkpoints", "runs"]]
    for r in sorted(table, key=lambda r: -1.0 if r["r2"] is None else r["r2"], reverse=True):
        ci = "" if r["ci95"] is None else f" [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
        rows.append([f"{r['predictor']}: {r['meaning']}", "–" if r["r2"] is None else f"{r['r2']:.2f}{ci}",
                     "–" if r["slope"] is None else f"{r['slope']:+.3g}", str(r["n_points"]), str(r["n_runs"])])
    return rows
