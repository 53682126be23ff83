"""``DIR/index.json``: everything a study produced, with the numbers the claims and the report are computed from.

The index is the one interface between running a study and reading it: ``scalpel.study.claims`` and
``scalpel.study.report`` read nothing else for their numbers (figures of weight maps re-read the weight tables it
points to), so a doctored index changes the claims, and a report can be rebuilt from an index alone.

Per-item outcomes, which the paired statistics need (``scalpel.study.stats``), are stored compactly: the sorted item
ids of each benchmark once (``item_ids``), and in every evaluation summary (the base's and each evaluated
checkpoint's) an ``outcomes`` list aligned to them — mean correctness over the item's samples, null where that model
was not scored on the item.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scalpel import atomic
from scalpel.analyze.weight_table import read_table
from scalpel.config import Config
from scalpel.provenance import git_commit, library_versions
from scalpel.study.jobs import (
    Context,
    Job,
    benchmarks_of,
    eval_dir,
    in_domain_of,
    run_dir,
)

FORMAT = "scalpel-study/1"
CURVE_KEYS = ("loss", "grad_norm", "reward", "rewards/accuracy_reward/mean", "rewards/format_reward/mean",
              "completions/mean_length", "learning_rate")
SAMPLES_PER_RUN = 3


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _eval_summaries(d: Path, benches: list[str], outcomes: bool = False, counts: bool = False) -> dict:
    """Per benchmark, the evaluation's summary numbers; with ``outcomes``, also its per-item outcomes as
    {item id: mean correctness} (``align_outcomes`` turns them into lists aligned to the index's item ids); with
    ``counts``, {item id: [samples, correct]} (the pass@k curves to k = samples need them)."""
    out = {}
    for b in benches:
        s = _json(d / b / "summary.json")
        if s is not None:
            out[b] = {"accuracy": s["accuracy"], "ci95": s["ci95"], "n_items": s["n_items"],
                      "samples_per_item": s["samples_per_item"], "pass_at_k": s.get("pass_at_k", {}),
                      "mean_completion_tokens": s.get("mean_completion_tokens")}
            if outcomes:
                out[b]["outcomes"] = item_outcomes(d / b / "samples.jsonl")
            if counts:
                out[b]["counts"] = item_counts(d / b / "samples.jsonl")
    return out


def item_counts(path: Path) -> dict[str, list[int]] | None:
    """{item id: [samples, correct samples]} from an evaluation's ``samples.jsonl`` (None if absent)."""
    if not Path(path).is_file():
        return None
    hits: dict[str, list[int]] = {}
    for r in atomic.read_jsonl(path):
        if "item_id" in r and "correct" in r:
            nc = hits.setdefault(str(r["item_id"]), [0, 0])
            nc[0] += 1
            nc[1] += bool(r["correct"])
    return hits


def item_outcomes(path: Path) -> dict[str, float] | None:
    """{item id: mean correctness over its samples} from an evaluation's ``samples.jsonl`` (None if absent)."""
    counts = item_counts(path)
    return None if counts is None else {i: c / n for i, (n, c) in counts.items()}


def _compact(v: float | None) -> float | int | None:
    return None if v is None else int(v) if v in (0.0, 1.0) else round(v, 6)


def align_outcomes(evals: list[dict], benches: list[str]) -> dict[str, list[str]]:
    """Per benchmark, the sorted ids of every item any of ``evals`` was scored on (returned, stored once in the
    index as ``item_ids``); each evaluation's outcomes become a list aligned to them, None where that model was not
    scored on the item — so pairing is by id, and a mismatch is visible, never assumed away."""
    ids = {b: sorted({i for ev in evals for i in ((ev.get(b) or {}).get("outcomes") or {})}) for b in benches}
    for ev in evals:
        for b, summary in ev.items():
            m = summary.get("outcomes")
            if isinstance(m, dict):
                summary["outcomes"] = [_compact(m.get(i)) for i in ids[b]]
    return ids


def _curves(rd: Path) -> dict:
    from scalpel.train.arms import read_log

    rows = [e for e in read_log(rd) if "step" in e]
    out = {}
    for k in CURVE_KEYS:
        pts = [(e["step"], e[k]) for e in rows if isinstance(e.get(k), (int, float)) and math.isfinite(e[k])]
        if pts:
            out[k] = {"step": [p[0] for p in pts], "value": [p[1] for p in pts]}
    return out


def _health(rd: Path) -> dict:
    path = rd / "health.jsonl"
    events = atomic.read_jsonl(path)
    shown = []
    for e in events[:5]:
        comps = e.get("completions") or []
        shown.append({"step": e.get("step"), "kind": e.get("kind"), "unhealthy": e.get("unhealthy"),
                      "example": (comps[0].get("completion") if comps else e.get("detail")) or ""})
    return {"events": len(events), "unhealthy": sum(bool(e.get("unhealthy")) for e in events),
            "kinds": sorted({e.get("kind") for e in events}), "first": shown}


def _weights(d: Path) -> dict:
    """Per step: mean over layers per matrix, and the per-layer values, of the weight-table columns we plot."""
    path = d / "weights.csv"
    if not path.is_file():
        return {}
    cols = ("rel_fro", "unchanged_exact", "unchanged_atol", "below_bf16_resolution", "effective_rank", "topk_energy",
            "base_topk_share_out")
    steps: dict[int, dict] = {}
    for r in read_table(path):
        s = steps.setdefault(int(r["step"]), {c: {} for c in cols})
        for c in cols:
            if r.get(c) not in (None, ""):
                s[c].setdefault(r["matrix"], {})[int(r["layer"])] = float(r[c])
    out = {}
    for step, per in sorted(steps.items()):
        out[str(step)] = {c: {m: [v[k] for k in sorted(v)] for m, v in per[c].items()} for c in cols if per[c]}
    return {"table": str(path), "by_step": out}


def _structure(d: Path) -> list[dict]:
    """Per checkpoint and reference (base / previous): changed fractions, update rank, principal share."""
    s = _json(d / "structure.json")
    return s["summary"] if s else []


def _kl(d: Path) -> list[dict]:
    s = _json(d / "kl.json")
    if not s:
        return []
    return [{k: r[k] for k in ("step", "kl_forward", "kl_reverse", "kl_forward_se", "tv", "tokens") if k in r}
            for r in sorted(s["results"], key=lambda r: r["step"])]


def _samples(d: Path, benches: list[str]) -> list[dict]:
    out = []
    for b in benches:
        path = d / b / "samples.jsonl"
        if not path.is_file():
            continue
        with open(path) as fh:
            for line, _ in zip(fh, range(1)):
                r = json.loads(line)
                out.append({"benchmark": b, "item_id": r["item_id"], "prompt": r["prompt"][-600:],
                            "completion": r["completion"][:1200], "gold": r["gold"], "correct": r["correct"]})
        if len(out) >= SAMPLES_PER_RUN:
            break
    return out


def build_index(out: Path, cfg: Config, ctx: Context, jobs: list[Job], done: set[str], failed: dict[str, str],
                timings: dict) -> dict:
    study = cfg.study
    mw = ctx.world is not None
    benches = benchmarks_of(study, mw)
    in_domain = in_domain_of(study, mw)
    job_seconds: dict[str, float] = {}
    for j in jobs:
        m = _json(out / ".done" / f"{j.name}.json")
        if m and j.name in done:
            job_seconds[j.kind] = job_seconds.get(j.kind, 0.0) + float(m.get("seconds", 0))
    runs = []
    for arm in study.arms:
        for seed in study.seeds:
            rd = run_dir(out, arm.name, seed)
            from scalpel.train.checkpoints import complete_checkpoints

            cks = complete_checkpoints(rd)
            ed = eval_dir(out, "eval", arm.name, seed)
            pd = eval_dir(out, "passk", arm.name, seed)
            evals = {int(p.name.removeprefix("step-")): _eval_summaries(p, benches, outcomes=True)
                     for p in sorted(ed.glob("step-*")) if p.name.removeprefix("step-").isdigit()}
            final = max(evals) if evals else None
            summary = _json(rd / "arm.json") or {}
            runs.append({
                "arm": arm.name, "algorithm": arm.algorithm, "seed": seed, "dir": str(rd.relative_to(out)),
                "status": summary.get("status", "incomplete"),
                "checkpoints": [{"step": s, "path": str(p.relative_to(out))} for s, p in cks.items()],
                "train": {"summary": {k: summary.get(k) for k in ("steps", "questions_seen", "trainable",
                                                                  "step_seconds_median", "metrics", "match")},
                          "curves": _curves(rd), "health": _health(rd)},
                "eval": {str(s): v for s, v in sorted(evals.items())},
                "task_kl": {p.name.removeprefix("step-"): _json(p / "task_kl.json") for p in sorted(ed.glob("step-*"))
                            if (p / "task_kl.json").is_file()},
                "passk": {str(int(p.name.removeprefix("step-"))): _eval_summaries(p, in_domain, counts=True)
                          for p in sorted(pd.glob("step-*"))},
                "kl": _kl(out / "analysis" / "kl" / arm.name / f"seed-{seed}"),
                "weights": _weights(out / "analysis" / "weights" / arm.name / f"seed-{seed}"),
                "structure": _structure(out / "analysis" / "structure" / arm.name / f"seed-{seed}"),
                "samples": _samples(ed / f"step-{final}", benches) if final is not None else [],
            })
    base_eval = _eval_summaries(eval_dir(out, "eval"), benches, outcomes=True)
    item_ids = align_outcomes([base_eval] + [ev for r in runs for ev in r["eval"].values()], benches)
    trace = _json(out / "analysis" / "trace" / "trace.json")
    world_manifest = _json(Path(ctx.world) / "manifest.json") if mw else None
    return {
        "format": FORMAT, "study": study.name, "out": str(out),
        "arms": [{**a.model_dump(mode="json"), "train_tiers": study.train_tiers(a)} for a in study.arms],
        "seeds": list(study.seeds),
        "benchmarks": {"all": benches, "in_domain": in_domain, "out_of_domain": [b for b in benches
                                                                                 if b not in in_domain]},
        "item_ids": item_ids,
        "base": {"model": ctx.base_model, "world": ctx.world, "system_prompt": ctx.system_prompt,
                 "eval": base_eval,
                 "passk": _eval_summaries(eval_dir(out, "passk"), in_domain, counts=True),
                 "samples": _samples(eval_dir(out, "eval"), benches)},
        "runs": runs,
        "analysis": {"trace": _json(out / "analysis" / "trace" / "skipped.json") if trace is None else {
            "path": "analysis/trace/trace.json", "n_known": trace["n_known"], "n_facts": trace["n_facts"],
            "p_clean_mean": trace["p_clean_mean"], "p_corrupted_mean": trace["p_corrupted_mean"],
            "aie": trace["aie"], "selector": trace["selector"],
            "figures": [f"analysis/trace/{f}" for f in trace.get("figures", [])]}},
        "jobs": {"total": len(jobs), "done": len(done), "failed": failed,
                 "seconds_by_kind": {k: round(v, 1) for k, v in job_seconds.items()}},
        "provenance": {"config": cfg.model_dump(mode="json"), "versions": library_versions(), "commit": git_commit(),
                       "world": None if world_manifest is None else {k: world_manifest.get(k) for k in
                                                                      ("key", "seed", "size", "hashes")},
                       "data_fingerprints": {f"{r['arm']}/seed-{r['seed']}": _json(
                           out / r["dir"] / "arm.json").get("data_fingerprint") if _json(out / r["dir"] / "arm.json")
                           else None for r in runs}},
    }

