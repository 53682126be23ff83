"""The paper's claims C1-C8, measured on a study's ``index.json`` with a 95 % CI over seeds and a computed verdict.

Each claim is a list of *components*: a per-seed quantity (e.g. SFT's minus GRPO's in-domain gain, paired by seed,
since both arms read the same question stream) and the sign the paper predicts. The rule, stated in the report:

- a component *agrees* when its 95 % CI over seeds (mean ± t₀.₉₇₅,ₙ₋₁ · s/√n) lies entirely on the predicted side of
  0, *disagrees* when it lies entirely on the other side, and is *unclear* otherwise (or with fewer than 2 seeds);
- a claim is **reproduced** when every component agrees, **contradicted** when any component disagrees, and
  **inconclusive** otherwise. C6 ("helps some out-of-domain tasks, hurts others") is reproduced when at least one
  out-of-domain benchmark's component agrees with ">0" and another with "<0", contradicted when every one lies on
  the same side of 0, inconclusive otherwise.

Accuracy changes are final checkpoint minus base, in accuracy points (0-1 scale); in-domain / out-of-domain are
the means over the index's benchmark groups. Arms are recognised by their configuration (see ``roles``), never
by hand.
"""

from __future__ import annotations

import math
import re
import statistics

VERDICT_RULE = ("A component agrees when its 95 % CI over seeds (mean ± t(0.975, n−1)·s/√n) lies entirely on the "
                "predicted side of 0, disagrees when it lies entirely on the other side, and is unclear otherwise "
                "(or with < 2 seeds). A claim is reproduced when all its components agree, contradicted when any "
                "disagrees, inconclusive otherwise. C6: reproduced when one out-of-domain benchmark agrees with >0 "
                "and another with <0; contradicted when all lie on one side of 0.")


def ci95(values: list[float]) -> tuple[float | None, list[float] | None]:
    from scipy.stats import t

    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None, None
    m = statistics.fmean(xs)
    if len(xs) < 2:
        return m, None
    h = float(t.ppf(0.975, len(xs) - 1)) * statistics.stdev(xs) / math.sqrt(len(xs))
    return m, [m - h, m + h]


def component(label: str, values: dict[int, float | None], expect: str) -> dict:
    vals = {s: v for s, v in values.items() if v is not None and math.isfinite(v)}
    m, ci = ci95(list(vals.values()))
    if ci is None:
        status = "unclear"
    elif (ci[0] > 0 and expect == ">0") or (ci[1] < 0 and expect == "<0"):
        status = "agrees"
    elif (ci[1] < 0 and expect == ">0") or (ci[0] > 0 and expect == "<0"):
        status = "disagrees"
    else:
        status = "unclear"
    return {"label": label, "expect": expect, "per_seed": vals, "mean": m, "ci95": ci, "n": len(vals),
            "status": status}


# ---------------------------------------------------------------------------------------------------------------
# Reading the index
# ---------------------------------------------------------------------------------------------------------------


def roles(index: dict) -> dict[str, str | None]:
    """Which arm plays which part, from the arms' configuration."""
    arms = index["arms"]

    def first(pred):
        return next((a["name"] for a in arms if pred(a)), None)

    plain = lambda a: not a.get("freeze") and not a.get("tiers") and a.get("epochs", 1) == 1  # noqa: E731
    return {
        "grpo": first(lambda a: a["algorithm"] == "grpo" and plain(a)),
        "sft": first(lambda a: a["algorithm"] == "sft" and plain(a)),
        "sft_freeze_mlp": first(lambda a: a["algorithm"] == "sft" and a.get("freeze") and any(
            str(s).startswith("mlp@") for s in (a["freeze"].get("freeze") or []))),
        "sft_qk_only": first(lambda a: a["algorithm"] == "sft" and a.get("freeze") and sorted(
            a["freeze"].get("train_only") or []) == ["k_proj", "q_proj"]),
        "grpo_hard": first(lambda a: a["algorithm"] == "grpo" and not a.get("freeze")
                           and (a.get("tiers") or []) == ["olympiad"]),
    }


def _runs(index: dict, arm: str | None) -> dict[int, dict]:
    return {r["seed"]: r for r in index["runs"] if arm is not None and r["arm"] == arm}


def _final(run: dict) -> dict:
    ev = run.get("eval") or {}
    return ev[max(ev, key=int)] if ev else {}


def _acc(ev: dict, benches: list[str]) -> float | None:
    xs = [ev[b]["accuracy"] for b in benches if b in ev and ev[b].get("accuracy") is not None]
    return statistics.fmean(xs) if xs and len(xs) == len(benches) else None


def _gain(index: dict, run: dict, benches: list[str]) -> float | None:
    base, fin = _acc(index["base"]["eval"], benches), _acc(_final(run), benches)
    return None if base is None or fin is None else fin - base


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


def mid_layers(index: dict, role_names: dict) -> list[int]:
    """The freezing arm's layers (mlp@A-B), else the middle half of the model."""
    arm = next((a for a in index["arms"] if a["name"] == role_names.get("sft_freeze_mlp")), None)
    if arm:
        for s in arm["freeze"].get("freeze") or []:
            m = re.fullmatch(r"mlp@(\d+)(?:-(\d+))?", str(s))
            if m:
                a, b = int(m.group(1)), int(m.group(2) or m.group(1))
                return list(range(a, b + 1))
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
    gain_in = lambda run: _gain(index, run, ind)  # noqa: E731
    gain_ood = lambda run: _gain(index, run, ood)  # noqa: E731
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

    claims = [
        ("C1", "GRPO: small in-domain gain, small out-of-domain loss", [
            component(f"GRPO in-domain gain ({r['grpo']})", _per_seed(index, r["grpo"], gain_in), ">0"),
            component("GRPO out-of-domain change", _per_seed(index, r["grpo"], gain_ood), "<0")]),
        ("C2", "SFT: larger in-domain gain and larger out-of-domain loss than GRPO", [
            component("SFT − GRPO in-domain gain", _paired(index, r["sft"], r["grpo"], gain_in), ">0"),
            component("SFT − GRPO out-of-domain change", _paired(index, r["sft"], r["grpo"], gain_ood), "<0")]),
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
            component(f"{b}: SFT-frozen-MLP − SFT accuracy", _paired(
                index, r["sft_freeze_mlp"], r["sft"], lambda run, b=b: _acc(_final(run), [b])), "mixed")
            for b in ood]),
        ("C7", "Training only Q/K is worse across the board", [
            component("in-domain: Q/K-only − SFT accuracy", _paired(
                index, r["sft_qk_only"], r["sft"], lambda run: _acc(_final(run), ind)), "<0"),
            component("out-of-domain: Q/K-only − SFT accuracy", _paired(
                index, r["sft_qk_only"], r["sft"], lambda run: _acc(_final(run), ood)), "<0")]),
        ("C8", "GRPO learns on easy questions, not on hard ones", [
            component("GRPO (easy tier): training accuracy-reward gain, last − first 10 % of steps",
                      _per_seed(index, r["grpo"], _reward_gain), ">0"),
            component("GRPO hard-tier − easy-tier reward gain", _paired(index, r["grpo_hard"], r["grpo"],
                                                                          _reward_gain), "<0")]),
    ]
    out = []
    for cid, text, comps in claims:
        out.append({"id": cid, "claim": text, "components": comps, "verdict": _verdict(cid, comps)})
    return {"rule": VERDICT_RULE, "roles": r, "mid_layers": mids, "claims": out}


def _verdict(cid: str, comps: list[dict]) -> str:
    if not comps or any(c["n"] == 0 for c in comps):
        return "inconclusive"
    if cid == "C6":
        lo = [c for c in comps if c["ci95"] and c["ci95"][1] < 0]
        hi = [c for c in comps if c["ci95"] and c["ci95"][0] > 0]
        if lo and hi:
            return "reproduced"
        if comps and all(c["mean"] is not None for c in comps) and (
                all(c["mean"] > 0 for c in comps) or all(c["mean"] < 0 for c in comps)) and (
                len(lo) == len(comps) or len(hi) == len(comps)):
            return "contradicted"
        return "inconclusive"
    if any(c["status"] == "disagrees" for c in comps):
        return "contradicted"
    if all(c["status"] == "agrees" for c in comps):
        return "reproduced"
    return "inconclusive"


def format_table(claims: dict, markdown: bool = True) -> str:
    """The claims table as markdown (the report renders its own HTML from the same dict)."""
    lines = ["| claim | measured (mean, 95 % CI over seeds) | verdict |", "|---|---|---|"]
    for c in claims["claims"]:
        parts = [f"{x['label']}: {fmt_value(x)}" for x in c["components"]]
        lines.append(f"| {c['id']} {c['claim']} | {'<br>'.join(parts)} | **{c['verdict']}** |")
    return "\n".join(lines)


def fmt_value(x: dict) -> str:
    if x["mean"] is None:
        return "no data"
    r = lambda v: round(v, 12) + 0.0  # noqa: E731 - float noise such as 2e-18 prints as 0
    ci = f" [{r(x['ci95'][0]):+.3g}, {r(x['ci95'][1]):+.3g}]" if x["ci95"] else " (one seed: no CI)"
    return f"{r(x['mean']):+.3g}{ci} (n={x['n']}, {x['status']})"
