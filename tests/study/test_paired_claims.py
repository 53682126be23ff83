"""Claims and report tables on synthetic index dicts (no model, no training): per-item pairing by id, single-seed
verdicts, bounded intervals, and how index.json stores per-item outcomes."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
from scipy.special import expit

from scalpel.study import stats
from scalpel.study.claims import BASE, NOT_JUDGED, compute_claims, gain, paired
from scalpel.study.index import align_outcomes, item_outcomes
from scalpel.study.report import benchmark_table, gain_table

ARMS = [{"name": "grpo", "algorithm": "grpo"}, {"name": "sft", "algorithm": "sft"},
        {"name": "sft-freeze-mlp", "algorithm": "sft", "freeze": {"freeze": ["mlp@1"]}},
        {"name": "sft-qk-only", "algorithm": "sft", "freeze": {"train_only": ["q_proj", "k_proj"]}},
        {"name": "grpo-hard", "algorithm": "grpo", "tiers": ["olympiad"]}]
IND, OOD = ["maths_easy", "maths_hard"], ["facts", "instruct"]
MATRICES = ("q", "k", "v", "o", "gate", "up", "down")
# logit shifts of each arm's final checkpoint per benchmark (the paper's direction for GRPO and SFT)
EFFECTS = {"grpo": {"maths_easy": 0.5, "maths_hard": 0.5, "facts": -0.4, "instruct": -0.4},
           "sft": {"maths_easy": 1.5, "maths_hard": 1.5, "facts": -2.0, "instruct": -2.0},
           "sft-freeze-mlp": {"maths_easy": 1.5, "maths_hard": 1.5, "facts": -1.0, "instruct": -3.0},
           "sft-qk-only": {"maths_easy": -0.5, "maths_hard": -0.5, "facts": -3.0, "instruct": -3.0}}


def outcomes(rng, logits: np.ndarray) -> list[int]:
    return [int(x) for x in rng.random(logits.size) < expit(logits)]


def synthetic_index(seeds=(0, 1, 2), n_items: int = 300, effects=EFFECTS, seed: int = 0, seed_sd: float = 0.03) -> dict:
    """An index with every field the claims read: per-item outcomes (item difficulty, planted arm effects, a small
    seed effect ``seed_sd`` on the logit and on the other quantities, Bernoulli draws), KL curves, weight-update
    tables and reward gains."""
    rng = np.random.default_rng(seed)
    benches = IND + OOD
    ids = {b: [f"{b}.{i:04d}" for i in range(n_items)] for b in benches}
    theta = {b: rng.normal(0.0, 1.2, n_items) for b in benches}

    def ev(shift: dict) -> dict:
        out = {}
        for b in benches:
            o = outcomes(rng, theta[b] + shift.get(b, 0.0))
            out[b] = {"accuracy": float(np.mean(o)), "outcomes": o}
        return out

    runs = []
    for arm in ARMS:
        name = arm["name"]
        for s in seeds:
            u = rng.normal(0, seed_sd)
            sft = arm["algorithm"] == "sft"
            kl = [{"step": 5, "kl_forward": (1.0 if sft else 0.1) * (1 + u)},
                  {"step": 10, "kl_forward": (1.2 if sft else 0.5) * (1 + u)}]
            rel = {m: [(0.02 if sft else 0.002) * (2.0 if m in ("q", "k") else 1.0) * (1 + u) * (1.5 if i in (1, 2)
                                                                                                else 1.0)
                       for i in range(4)] for m in MATRICES}
            runs.append({"arm": name, "algorithm": arm["algorithm"], "seed": s,
                         "eval": {"10": ev({b: v + u for b, v in effects.get(name, {}).items()})}, "kl": kl,
                         "weights": {"by_step": {"10": {"rel_fro": rel}}},
                         "train": {"summary": {"metrics": {"rewards/accuracy_reward/mean": {
                             "change": (0.3 if name == "grpo" else 0.01) + 0.01 * u}}}}})
    return {"arms": copy.deepcopy(ARMS), "seeds": list(seeds), "item_ids": ids,
            "benchmarks": {"all": benches, "in_domain": IND, "out_of_domain": OOD},
            "base": {"eval": ev({})}, "runs": runs}


def by_id(cl: dict) -> dict:
    return {c["id"]: c for c in cl["claims"]}


def test_planted_effects_give_the_planted_verdicts():
    cl = by_id(compute_claims(synthetic_index()))
    assert {k: cl[k]["verdict"] for k in ("C1", "C2", "C3", "C6", "C7", "C8")} == {
        "C1": "reproduced", "C2": "reproduced", "C3": "reproduced", "C6": "reproduced", "C7": "reproduced",
        "C8": "reproduced"}
    c1 = cl["C1"]["components"][0]
    assert c1["method"] == stats.CROSSED and c1["n"] == 3 and c1["items"] == {b: 300 for b in IND}
    assert c1["unpaired_items"] == {b: 0 for b in IND} and 0 < c1["half_width"] < 0.1
    assert cl["C3"]["components"][0]["method"] == "seeds (Student t)"
    flipped = synthetic_index(effects={"grpo": {b: -v for b, v in EFFECTS["grpo"].items()}, "sft": EFFECTS["sft"]})
    assert by_id(compute_claims(flipped))["C1"]["verdict"] == "contradicted"


def test_a_gain_is_paired_with_the_base_on_every_item():
    ix = synthetic_index(seeds=(0, 1))
    est = paired(ix, "grpo", BASE, ["facts"])["estimate"]
    runs = [r for r in ix["runs"] if r["arm"] == "grpo"]
    base = np.array(ix["base"]["eval"]["facts"]["outcomes"])
    per_seed = [np.mean(np.array(r["eval"]["10"]["facts"]["outcomes"]) - base) for r in runs]
    assert est.per_seed == pytest.approx(per_seed) and est.mean == pytest.approx(np.mean(per_seed))
    # the base's outcomes are in the interval: doctoring them moves the estimate and the CI with it
    ix2 = copy.deepcopy(ix)
    ix2["base"]["eval"]["facts"]["outcomes"] = [1 - v for v in base.tolist()]
    g2 = gain(ix2, "grpo", ["facts"])
    assert g2["mean"] == pytest.approx(est.mean + 2 * base.mean() - 1)


def test_unpaired_item_ids_are_left_out_and_counted():
    ix = synthetic_index(seeds=(0, 1))
    run = next(r for r in ix["runs"] if r["arm"] == "grpo" and r["seed"] == 1)
    vals = run["eval"]["10"]["maths_easy"]["outcomes"]
    for i in (3, 7, 11):
        vals[i] = None  # seed 1's checkpoint was not scored on three items
    ix["base"]["eval"]["maths_easy"]["outcomes"][20] = None  # nor the base on another
    c = by_id(compute_claims(ix))["C1"]["components"][0]
    assert c["items"]["maths_easy"] == 296 and c["unpaired_items"]["maths_easy"] == 4
    assert c["items"]["maths_hard"] == 300 and c["unpaired_items"]["maths_hard"] == 0
    keep = [i for i in range(300) if i not in (3, 7, 11, 20)]
    base = np.array(ix["base"]["eval"]["maths_easy"]["outcomes"], dtype=object)[keep].astype(float)
    arm = np.array(vals, dtype=object)[keep].astype(float)
    assert c["per_seed"][1] == pytest.approx(np.mean([np.mean(arm - base), np.mean(
        np.array(ix["runs"][1]["eval"]["10"]["maths_hard"]["outcomes"]) -
        np.array(ix["base"]["eval"]["maths_hard"]["outcomes"]))]))
    rows, notes = gain_table(ix)
    assert any("grpo / maths_easy: 4 item ids" in n for n in notes)


def test_models_that_share_no_item_are_an_error_that_names_the_benchmark():
    ix = synthetic_index(seeds=(0, 1))
    for r in ix["runs"]:
        if r["arm"] == "grpo":
            r["eval"]["10"]["facts"]["outcomes"] = [None] * 150 + [1] * 150
    ix["base"]["eval"]["facts"]["outcomes"] = [1] * 150 + [None] * 150
    with pytest.raises(ValueError, match=r"facts: no item id is shared by every model"):
        paired(ix, "grpo", BASE, ["facts"])
    c = by_id(compute_claims(ix))["C1"]
    assert c["verdict"] == "inconclusive" and c["components"][1]["mean"] is None
    assert "facts: no item id is shared" in c["components"][1]["note"]
    rows, notes = gain_table(ix)
    assert any(n.startswith("grpo / facts: facts: no item id") for n in notes)


def test_misaligned_outcomes_are_refused():
    ix = synthetic_index(seeds=(0, 1))
    ix["base"]["eval"]["facts"]["outcomes"].pop()
    with pytest.raises(ValueError, match=r"facts: 299 outcomes but 300 item ids"):
        paired(ix, "grpo", BASE, ["facts"])


@pytest.mark.parametrize("seed", range(12))
def test_one_seed_never_reproduces_or_contradicts(seed):
    rng = np.random.default_rng(seed)
    effects = {a: {b: float(rng.normal(0, 2.0)) for b in IND + OOD} for a in EFFECTS}  # large effects, any sign
    cl = compute_claims(synthetic_index(seeds=(seed,), effects=effects, seed=seed))
    verdicts = [c["verdict"] for c in cl["claims"]]
    # C9-C12 read arms and analyses this synthetic index lacks: no data, never a verdict either way
    assert verdicts[:8] == [NOT_JUDGED] * 8 and set(verdicts[8:]) <= {NOT_JUDGED, "inconclusive"}
    for c in cl["claims"]:
        for x in (x for x in c["components"] if x["n"] or c["id"] in [f"C{i}" for i in range(1, 9)]):
            assert x["status"] == NOT_JUDGED and x["n"] == 1
            if x["method"] == stats.ITEMS_ONLY:  # accuracy: an item-level interval, labelled as such
                assert x["ci95"] is not None and x["ci95"][0] < x["mean"] < x["ci95"][1]
            elif x["method"] != "runs (percentile bootstrap)":  # C10's bootstrap over runs: not judged either
                assert x["method"] == "seeds (Student t)" and x["ci95"] is None


def test_a_one_seed_arm_is_not_judged_beside_judged_ones():
    ix = synthetic_index()
    ix["runs"] = [r for r in ix["runs"] if r["arm"] != "grpo" or r["seed"] == 0]
    cl = by_id(compute_claims(ix))
    assert cl["C1"]["verdict"] == NOT_JUDGED
    assert cl["C2"]["components"][0]["n"] == 1 and cl["C2"]["verdict"] == NOT_JUDGED
    assert cl["C7"]["verdict"] == "reproduced"  # Q/K-only vs SFT: three seeds each


NUM = r"[+-]?\d+(?:\.\d+)?"


def cells(rows: list[list[str]]) -> list[tuple[float, float, float]]:
    out = []
    for row in rows[1:]:
        for c in row[1:]:
            m = re.match(rf"({NUM}) \[({NUM}), ({NUM})\]", c)
            if m:
                out.append(tuple(float(g) for g in m.groups()))
    return out


@pytest.mark.parametrize("seeds", [(0,), (0, 1), (0, 1, 2)])
def test_report_tables_stay_in_range_at_floors_and_ceilings(seeds):
    ix = synthetic_index(seeds=seeds, n_items=12)
    ix["base"]["eval"]["facts"]["outcomes"] = [1] * 12  # base at the ceiling
    ix["base"]["eval"]["maths_hard"]["outcomes"] = [0] * 12  # and at the floor
    for r in ix["runs"]:
        r["eval"]["10"]["facts"]["outcomes"] = [0] * 12 if r["arm"] == "sft" else [1] * 12
        r["eval"]["10"]["maths_hard"]["outcomes"] = [0] * 12
    acc = benchmark_table(ix)
    assert len(acc) == 1 + 1 + len(ARMS) and len(cells(acc)) == (1 + len(ARMS)) * 4
    for m, lo, hi in cells(acc):
        assert 0 <= lo <= m <= hi <= 100 and hi > lo
    gains, _ = gain_table(ix)
    assert gains[0] == ["change over base"] + IND + OOD + ["in-domain mean", "out-of-domain mean"]
    for m, lo, hi in cells(gains):
        assert -100 <= lo <= m <= hi <= 100 and hi > lo
    sft = next(r for r in gains if r[0] == "sft")
    assert sft[3].startswith("-100.0 [-100.0, ") and "(MDC " in sft[3]
    if len(seeds) == 1:
        assert all("item-level" in r[0] for r in acc[1:])


def test_index_stores_outcomes_by_item_id(tmp_path):
    def write(d, rows):
        (d / "b").mkdir(parents=True)
        (d / "b" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write(tmp_path / "base", [{"item_id": i, "sample": s, "correct": c} for i, s, c in
                              [("x", 0, True), ("y", 0, False), ("z", 0, True), ("x", 1, False), ("y", 1, False),
                               ("z", 1, True)]])
    write(tmp_path / "ck", [{"item_id": i, "sample": 0, "correct": c} for i, c in [("z", False), ("w", True),
                                                                                   ("x", True)]])
    base = {"b": {"outcomes": item_outcomes(tmp_path / "base" / "b" / "samples.jsonl")}}
    ck = {"b": {"outcomes": item_outcomes(tmp_path / "ck" / "b" / "samples.jsonl")}}
    assert base["b"]["outcomes"] == {"x": 0.5, "y": 0.0, "z": 1.0}
    ids = align_outcomes([base, ck], ["b"])
    assert ids == {"b": ["w", "x", "y", "z"]}
    assert base["b"]["outcomes"] == [None, 0.5, 0, 1] and ck["b"]["outcomes"] == [1, 1, None, 0]
    assert item_outcomes(tmp_path / "missing.jsonl") is None
