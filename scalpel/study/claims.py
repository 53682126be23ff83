"""The paper's claims C1-C8 and C9-C12 (beyond the paper: why RL forgets less), measured on a study's
``index.json`` with 95 % CIs and a computed verdict.

Each claim is a list of *components*, each an estimate with the sign the paper predicts. Two kinds:

- accuracy components (C1, C2, C6, C7) compare per-item outcomes on identical item ids — an arm's final checkpoint
  against the base (a gain), or two arms paired by seed and item (a difference) — and their CI treats items and
  seeds as crossed random effects (``scalpel.study.stats``), so item sampling, seed variation and the base's own
  noise are in it; item ids not scored by every model involved are left out and counted (``unpaired_items``);
- components without an item level (C3 KL, C4/C5 weight updates, C8 reward gains) are per-seed quantities (paired
  by seed where two arms are compared, since both read the same question stream) with a Student-t CI over seeds.

The rule (``VERDICT_RULE``, stated in the report) judges a component only on seed variation it measured: with one
seed a component, and a claim whose components all have one seed, is *not judged*. Accuracy changes are in accuracy
points (0-1 scale); in-domain / out-of-domain are equal-weight means over the index's benchmark groups. Arms are
recognised by their configuration (see ``roles``), never by hand.

Beyond the paper: C9 compares on-policy SFT (``algorithm: self_sft``) with SFT on the item level, as C2 does; C10 is
a difference of R² (``scalpel.study.predictors``) with a percentile bootstrap over whole runs; C11 reads the update
structure (``scalpel.analyze.update_structure``) of the final checkpoints against the base, per seed; C12 the gap
base − GRPO in pass@k at the largest k (``scalpel.study.passk``), per seed.
"""

from __future__ import annotations

import math
import re
import statistics

from scalpel.study import passk, stats
from scalpel.study import predictors as P
from scalpel.study.runs import final_eval

NOT_JUDGED = "not judged (one seed)"
BASE = "base"
SEED_T = "seeds (Student t)"
VERDICT_RULE = (
    "Accuracy components (C1, C2, C6, C7) are means over seeds and items of paired per-item differences on "
    "identical item ids (arm − base for gains; arm − arm by seed and item for differences), with a 95 % CI from the "
    "crossed items × seeds random-effects variance (method of moments, Welch–Satterthwaite t), which includes item "
    "sampling, seed variation and the base's own noise, clipped to [−1, 1]. Components without an item level (C3 "
    "KL, C4/C5 weight updates, C8 reward gains) use a Student-t CI over seeds (mean ± t(0.975, n−1)·s/√n). A "
    "component agrees when its CI lies entirely on the predicted side of 0, disagrees when it lies entirely on the "
    "other side, and is unclear otherwise; with one seed it is not judged (its CI, item-level at best, omits seed "
    "variation). A claim is reproduced when all its components agree, contradicted when any disagrees, not judged "
    "(one seed) when all its components have one seed, inconclusive otherwise (and when a component has no data). "
    "C6: reproduced when one out-of-domain benchmark agrees with >0 and another with <0; contradicted when all lie "
    "on one side of 0. C10 (a difference of R² over every checkpoint) uses a percentile bootstrap over whole runs "
    "instead of a t interval; C9 and C11-C12 follow the rule above.")


def ci95(values: list[float]) -> tuple[float | None, list[float] | None]:
    """Mean and Student-t 95 % CI over seeds (None with fewer than 2 values)."""
    from scipy.stats import t

    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, None
    h = float(t.ppf(0.975, len(xs) - 1)) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, [m - h, m + h]


def _status(ci: list[float] | None, expect: str, seeds: int) -> str:
    if seeds == 1:
        return NOT_JUDGED
    if ci is None:
        return "unclear"
    if expect == "mixed":
        return "above 0" if ci[0] > 0 else "below 0" if ci[1] < 0 else "unclear"
    if (ci[0] > 0 and expect == ">0") or (ci[1] < 0 and expect == "<0"):
        return "agrees"
    if (ci[1] < 0 and expect == ">0") or (ci[0] > 0 and expect == "<0"):
        return "disagrees"
    return "unclear"


def component(label: str, values: dict[int, float | None], expect: str) -> dict:
    """A per-seed quantity with a Student-t CI over seeds."""
    vals = {s: v for s, v in values.items() if v is not None and math.isfinite(v)}
    m, ci = ci95(list(vals.values()))
    return {"label": label, "expect": expect, "method": SEED_T, "per_seed": vals, "mean": m, "ci95": ci,
            "n": len(vals), "status": _status(ci, expect, len(vals))}


def item_component(index: dict, label: str, left: str | None, right: str | None, benches: list[str],
                   expect: str) -> dict:
    """An accuracy difference ``left − right`` (right: an arm or ``BASE``), paired by seed and item, crossed CI."""
    out = {"label": label, "expect": expect, "method": stats.CROSSED, "per_seed": {}, "mean": None, "ci95": None,
           "n": 0, "status": "unclear"}
    if left is None or right is None:
        return {**out, "note": "no such arm in this study"}
    try:
        cmp = paired(index, left, right, benches)
    except ValueError as exc:
        return {**out, "note": str(exc)}
    if cmp is None:
        return {**out, "note": "no per-item outcomes for these arms"}
    est = cmp["estimate"]
    ci = stats.difference_ci(est)
    return {**out, "method": est.level, "per_seed": dict(zip(cmp["seeds"], est.per_seed)), "mean": est.mean,
            "ci95": ci, "n": est.seeds, "items": cmp["items"], "unpaired_items": cmp["unpaired"],
            "half_width": stats.half_width(est), "df": est.df, "variance": est.parts,
            "status": _status(ci, expect, est.seeds)}


# ---------------------------------------------------------------------------------------------------------------
# Per-item outcomes: pairing and the crossed estimates the claims and the report share
# ---------------------------------------------------------------------------------------------------------------


def _item_map(index: dict, ev: dict, bench: str) -> dict[str, float] | None:
    """{item id: mean correctness} of one evaluation on one benchmark, None when it has no per-item outcomes."""
    vals = (ev.get(bench) or {}).get("outcomes")
    if vals is None:
        return None
    ids = (index.get("item_ids") or {}).get(bench)
    if ids is None or len(ids) != len(vals):
        raise ValueError(f"index.json: {bench}: {len(vals)} outcomes but {'no' if ids is None else len(ids)} item "
                         f"ids in item_ids[{bench!r}]")
    return {i: v for i, v in zip(ids, vals) if v is not None}


def _evals(index: dict, who: str | None) -> dict[int, dict]:
    """seed -> evaluation of ``who``'s final checkpoint (``BASE``: the base, as seed 0)."""
    if who == BASE:
        return {0: index["base"]["eval"]}
    return {s: final_eval(r) for s, r in _runs(index, who).items()}


def paired(index: dict, left: str | None, right: str | None, benches: list[str]) -> dict | None:
    """``left`` minus ``right`` (an arm, ``BASE``, or None: ``left``'s own accuracy) on ``benches`` (equal
    weights), paired by seed and item id: the crossed estimate, the seeds, per benchmark the items used and the item
    ids left out because some model involved was not scored on them. None when no seed has per-item outcomes;
    ValueError when the models share no item id."""
    ls = _evals(index, left) if left is not None else {}
    rs = None if right is None else ({s: index["base"]["eval"] for s in ls} if right == BASE
                                     else _evals(index, right))
    maps = {s: {b: (_item_map(index, ls[s], b), None if rs is None else _item_map(index, rs[s], b))
                for b in benches} for s in ls if rs is None or s in rs}
    seeds = sorted(s for s, m in maps.items() if all(a is not None and (rs is None or r is not None)
                                                     for a, r in m.values()))
    if not seeds or not benches:
        return None
    blocks, items, unpaired = [], {}, {}
    for b in benches:
        models = {f"{left} seed {s}": maps[s][b][0] for s in seeds}
        if rs is not None:
            models.update({f"{right} seed {s}" if right != BASE else BASE: maps[s][b][1] for s in seeds})
        try:
            ids, rows, dropped = stats.align(models)
        except ValueError as exc:
            raise ValueError(f"{b}: {exc}") from None
        d = rows if rs is None else rows[:len(seeds)] - rows[len(seeds):]  # the base's one row serves every seed
        blocks.append((d, 1.0 / len(benches)))
        items[b], unpaired[b] = len(ids), dropped
    return {"estimate": stats.crossed(blocks), "seeds": seeds, "items": items, "unpaired": unpaired}


def accuracy(index: dict, who: str, bench: str) -> dict | None:
    """An arm's (or the base's) accuracy on one benchmark: mean over seeds and items, bounded crossed CI."""
    cmp = paired(index, who, None, [bench])
    if cmp is None:
        return None
    est = cmp["estimate"]
    return {"mean": est.mean, "ci95": stats.accuracy_ci(est), "level": est.level, "seeds": est.seeds,
            "items": est.items}


def gain(index: dict, arm: str, benches: list[str]) -> dict | None:
    """An arm's change over the base on ``benches`` (equal-weight mean), its CI and minimum detectable change."""
    cmp = paired(index, arm, BASE, benches)
    if cmp is None:
        return None
    est = cmp["estimate"]
    return {"mean": est.mean, "ci95": stats.difference_ci(est), "mdc": stats.half_width(est), "level": est.level,
            "seeds": est.seeds, "unpaired": sum(cmp["unpaired"].values())}


# ---------------------------------------------------------------------------------------------------------------
# Reading the index
# ---------------------------------------------------------------------------------------------------------------


def roles(index: dict) -> dict[str, str | None]:
    """Which arm plays which part, from the arms' configuration."""
    arms = index["arms"]

    def first(pred):
        return next((a["name"] for a in arms if pred(a)), None)

    plain = lambda a: not a.get("freeze") and not a.get("tiers")  # noqa: E731
    # The SFT arm of C1-C7 is the plain one with the fewest epochs (a study may add a longer one, as the paper's
    # 3-epoch arm), so a study whose only SFT arm runs several epochs still has one.
    sft = sorted((a for a in arms if a["algorithm"] == "sft" and plain(a)), key=lambda a: a.get("epochs", 1))
    return {
        "grpo": first(lambda a: a["algorithm"] == "grpo" and plain(a)),
        "sft": sft[0]["name"] if sft else None,
        "sft_freeze_mlp": first(lambda a: a["algorithm"] == "sft" and a.get("freeze") and any(
            str(s).startswith("mlp@") for s in (a["freeze"].get("freeze") or []))),
        "sft_qk_only": first(lambda a: a["algorithm"] == "sft" and a.get("freeze") and sorted(
            a["freeze"].get("train_only") or []) == ["k_proj", "q_proj"]),
        # C8 compares GRPO on each tier alone
        "grpo_easy": first(lambda a: a["algorithm"] == "grpo" and not a.get("freeze") and _trained_tiers(a) == ["k12"]),
        "grpo_hard": first(lambda a: a["algorithm"] == "grpo" and not a.get("freeze")
                           and _trained_tiers(a) == ["olympiad"]),
        # C9: on-policy SFT on the current model's own correct samples
        "self_sft": first(lambda a: a["algorithm"] == "self_sft" and plain(a)),
    }


def _trained_tiers(arm: dict) -> list[str]:
    """The maths tiers an index arm trained on; an index without ``train_tiers`` predates mixed-tier arms, whose
    plain arms trained on k12."""
    return arm.get("train_tiers") or arm.get("tiers") or ["k12"]


def _runs(index: dict, arm: str | None) -> dict[int, dict]:
    return {r["seed"]: r for r in index["runs"] if arm is not None and r["arm"] == arm}


def _per_seed(index: dict, arm: str | None, f) -> dict[int, float | None]:
    return {s: f(r) for s, r in _runs(index, arm).items()}


def _paired(index: dict, a: str | None, b: str | None, f) -> dict[int, float | None]:
    ra, rb = _runs(index, a), _runs(index, b)
    out = {}
    for s in sorted(set(ra) & set(rb)):
        x, y = f(ra[s]), f(rb[s])
        out[s] = None if x is None or y is None else x - y
    return out


def _final_weights(run: dict, column: str = "rel_fro") -> dict[str, list[float]] | None:
    by = (run.get("weights") or {}).get("by_step") or {}
    return by[max(by, key=int)].get(column) if by else None


def _mean_update(run: dict, matrices=None, layers=None) -> float | None:
    w = _final_weights(run)
    if not w:
        return None
    xs = [v for m, per in w.items() if matrices is None or m in matrices
          for i, v in enumerate(per) if layers is None or i in layers]
    return statistics.fmean(xs) if xs else None


def _kl_final(run: dict) -> float | None:
    kl = run.get("kl") or []
    return kl[-1]["kl_forward"] if kl else None


def _kl_early_share(run: dict) -> float | None:
    """Share of the final KL reached at the first checkpoint at or after 25 % of training."""
    kl = run.get("kl") or []
    if not kl or not kl[-1]["kl_forward"]:
        return None
    total = kl[-1]["step"]
    early = next((r for r in kl if r["step"] >= 0.25 * total), None)
    return early["kl_forward"] / kl[-1]["kl_forward"] if early else None


def _reward_gain(run: dict) -> float | None:
    m = ((run.get("train") or {}).get("summary") or {}).get("metrics") or {}
    for k, v in m.items():
        if k.startswith("rewards/accuracy") and v.get("change") is not None:
            return v["change"]
    return None


def _changed(run: dict, column: str) -> float | None:
    """Entry-weighted changed fraction of the final checkpoint against the base (update structure summary)."""
    rows = [r for r in run.get("structure") or [] if r["reference"] == "base"]
    return max(rows, key=lambda r: r["step"])[column] if rows else None


def bootstrap_component(label: str, est: dict, expect: str) -> dict:
    """A statistic over every checkpoint of every run with a run-bootstrap CI (``predictors.r2_difference``); like
    every component, not judged when the runs have one seed."""
    seeds = est["n_seeds"] if est["mean"] is not None else 0
    return {"label": label, "expect": expect, "method": "runs (percentile bootstrap)", "per_seed": {},
            "mean": est["mean"], "ci95": est["ci95"], "n": seeds, "runs": est["n_runs"], "points": est["n_points"],
            "status": _status(est["ci95"], expect, seeds)}


def _frozen_selectors(index: dict, arm: dict) -> list:
    """The arm's freeze selectors; for mlp@traced, the concrete ones its runs trained with (arm.json)."""
    sel = arm["freeze"].get("freeze") or []
    if not any(str(s).endswith("@traced") for s in sel):
        return sel
    recorded = [((r.get("train") or {}).get("summary") or {}).get("trainable") or {}
                for r in _runs(index, arm["name"]).values()]
    return next((t["freeze"] for t in recorded if t.get("freeze")), [])


def mid_layers(index: dict, role_names: dict) -> list[int]:
    """The freezing arm's layers (mlp@A-B, or those mlp@traced resolved to), else the middle half of the model."""
    arm = next((a for a in index["arms"] if a["name"] == role_names.get("sft_freeze_mlp")), None)
    if arm:
        layers = set()
        for s in _frozen_selectors(index, arm):
            m = re.fullmatch(r"mlp@(\d+)(?:-(\d+))?", str(s))
            if m:
                layers |= set(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
        if layers:
            return sorted(layers)
    n = 0
    for r in index["runs"]:
        w = _final_weights(r)
        if w:
            n = max(len(v) for v in w.values())
            break
    return list(range(n // 4, max(n // 4 + 1, (3 * n) // 4)))


# ---------------------------------------------------------------------------------------------------------------
# The claims
# ---------------------------------------------------------------------------------------------------------------


def compute_claims(index: dict) -> dict:
    r = roles(index)
    ind, ood = index["benchmarks"]["in_domain"], index["benchmarks"]["out_of_domain"]
    mids = mid_layers(index, r)
    mlp = ("gate", "up", "down")

    def mid_share(run):
        a, b = _mean_update(run, mlp, set(mids)), _mean_update(run)
        return None if a is None or not b else a / b

    def qk_excess(run):
        a, b = _mean_update(run, ("q", "k")), _mean_update(run, ("v", "o", "gate", "up", "down"))
        return None if a is None or b is None else a - b

    def log_update(run):
        v = _mean_update(run)
        return math.log(v) if v else None

    kl = P.c10_kl(index)
    kl_where = "task, own samples" if kl == "kl_forward_task" else "held-out text"
    claims = [
        ("C1", "GRPO: small in-domain gain, small out-of-domain loss", [
            item_component(index, f"GRPO in-domain gain ({r['grpo']} − base)", r["grpo"], BASE, ind, ">0"),
            item_component(index, "GRPO out-of-domain change (− base)", r["grpo"], BASE, ood, "<0")]),
        ("C2", "SFT: larger in-domain gain and larger out-of-domain loss than GRPO", [
            item_component(index, "SFT − GRPO in-domain gain (= accuracy difference)", r["sft"], r["grpo"], ind,
                           ">0"),
            item_component(index, "SFT − GRPO out-of-domain change (= accuracy difference)", r["sft"], r["grpo"],
                           ood, "<0")]),
        ("C3", "KL to base: SFT early and high, GRPO gradual and low", [
            component("final KL(base‖·): SFT − GRPO", _paired(index, r["sft"], r["grpo"], _kl_final), ">0"),
            component("share of final KL reached by 25 % of training: SFT − GRPO",
                      _paired(index, r["sft"], r["grpo"], _kl_early_share), ">0")]),
        ("C4", "‖ΔW‖: SFT ≫ GRPO, Q/K move most", [
            component("log(mean ‖ΔW‖/‖W‖ SFT ÷ GRPO)", _paired(index, r["sft"], r["grpo"], log_update), ">0"),
            component("SFT: mean ‖ΔW‖/‖W‖ of Q,K − of the other matrices", _per_seed(index, r["sft"], qk_excess),
                      ">0"),
            component("GRPO: mean ‖ΔW‖/‖W‖ of Q,K − of the other matrices", _per_seed(index, r["grpo"], qk_excess),
                      ">0")]),
        ("C5", f"SFT moves mid-layer MLPs (layers {mids[0]}–{mids[-1]}) more" if mids else
         "SFT moves mid-layer MLPs more", [
            component("mid-layer MLP share of the update (÷ mean over all matrices): SFT − GRPO",
                      _paired(index, r["sft"], r["grpo"], mid_share), ">0")]),
        ("C6", "Freezing mid-layer MLPs helps some out-of-domain tasks and hurts others", [
            item_component(index, f"{b}: SFT-frozen-MLP − SFT accuracy", r["sft_freeze_mlp"], r["sft"], [b],
                           "mixed") for b in ood]),
        ("C7", "Training only Q/K is worse across the board", [
            item_component(index, "in-domain: Q/K-only − SFT accuracy", r["sft_qk_only"], r["sft"], ind, "<0"),
            item_component(index, "out-of-domain: Q/K-only − SFT accuracy", r["sft_qk_only"], r["sft"], ood,
                           "<0")]),
        ("C8", "GRPO learns on easy questions, not on hard ones", [
            component("GRPO (easy tier): training accuracy-reward gain, last − first 10 % of steps",
                      _per_seed(index, r["grpo_easy"], _reward_gain), ">0"),
            component("GRPO hard-tier − easy-tier reward gain", _paired(index, r["grpo_hard"], r["grpo_easy"],
                                                                          _reward_gain), "<0")]),
        ("C9", "On-policy SFT gains in-domain and forgets less than SFT", [
            item_component(index, f"self-SFT in-domain gain ({r['self_sft']} − base)", r["self_sft"], BASE, ind,
                           ">0"),
            item_component(index, "self-SFT − SFT out-of-domain change (= accuracy difference)", r["self_sft"],
                           r["sft"], ood, ">0")]),
        ("C10", "Forward KL to the base predicts forgetting better (higher R²) than ‖ΔW‖", [
            bootstrap_component(f"R²(KL(base‖ckpt), {kl_where}) − R²(mean ‖ΔW‖/‖W‖) vs out-of-domain change, all "
                                "checkpoints", P.r2_difference(index, kl, "rel_fro"), ">0")]),
        ("C11", "GRPO's update touches fewer entries than SFT's at every tolerance", [
            component(f"changed fraction ({what}): GRPO − SFT", _paired(index, r["grpo"], r["sft"],
                                                                        lambda run, c=col: _changed(run, c)), "<0")
            for col, what in (("changed_exact", "bit-identical"), ("changed_atol", "|Δ| > 1e-5"),
                              ("changed_half_ulp", "≥ ½ bf16 ULP"))]),
        ("C12", "The base model's pass@k overtakes GRPO's at large k", [
            component("pass@k at the largest k: base − GRPO (in-domain)", passk.gap_at_max_k(index, r["grpo"]),
                      ">0")]),
    ]
    out = []
    for cid, text, comps in claims:
        out.append({"id": cid, "claim": text, "components": comps, "verdict": _verdict(cid, comps)})
    return {"rule": VERDICT_RULE, "roles": r, "mid_layers": mids, "claims": out}


def _verdict(cid: str, comps: list[dict]) -> str:
    """The stated rule (VERDICT_RULE) applied to a claim's components."""
    if not comps or any(c["n"] == 0 for c in comps):
        return "inconclusive"
    if all(c["status"] == NOT_JUDGED for c in comps):
        return NOT_JUDGED
    if cid == "C6":
        lo = [c for c in comps if c["status"] == "below 0"]
        hi = [c for c in comps if c["status"] == "above 0"]
        if lo and hi:
            return "reproduced"
        if len(lo) == len(comps) or len(hi) == len(comps):
            return "contradicted"
        return "inconclusive"
    if any(c["status"] == "disagrees" for c in comps):
        return "contradicted"
    if all(c["status"] == "agrees" for c in comps):
        return "reproduced"
    return "inconclusive"


def format_table(claims: dict, markdown: bool = True) -> str:
    """The claims table as markdown (the report renders its own HTML from the same dict)."""
    lines = ["| claim | measured (estimate [95 % CI], design, status) | verdict |", "|---|---|---|"]
    for c in claims["claims"]:
        parts = [f"{x['label']}: {fmt_value(x)}" for x in c["components"]]
        lines.append(f"| {c['id']} {c['claim']} | {'<br>'.join(parts)} | **{c['verdict']}** |")
    return "\n".join(lines)


def _design(x: dict) -> str:
    if "runs" in x:
        return f"{x['runs']} runs × {x['points']} checkpoints, bootstrap over runs"
    if x.get("method") == SEED_T:
        return f"{x['n']} seed{'s' if x['n'] != 1 else ''}, t over seeds" if x["ci95"] else "one seed: no CI"
    items = sum((x.get("items") or {}).values())
    level = "item-level CI only" if x["n"] == 1 else "paired, crossed"
    left_out = sum((x.get("unpaired_items") or {}).values())
    return (f"{x['n']} seed{'s' if x['n'] != 1 else ''} × {items} items, {level}"
            + (f", {left_out} unpaired item ids left out" if left_out else ""))


def fmt_value(x: dict) -> str:
    if x["mean"] is None:
        return "no data" + (f" ({x['note']})" if x.get("note") else "")
    r = lambda v: round(v, 12) + 0.0  # noqa: E731 - float noise such as 2e-18 prints as 0
    ci = f" [{r(x['ci95'][0]):+.3g}, {r(x['ci95'][1]):+.3g}]" if x["ci95"] else ""
    return f"{r(x['mean']):+.3g}{ci} ({_design(x)}; {x['status']})"
