"""The claims are computed from index.json and nothing else: doctored numbers change the verdicts as the stated
rule says, on the tiny study's real index and on hand-made values."""

from __future__ import annotations

import copy

import pytest

from scalpel.study.claims import ci95, component, compute_claims


def by_id(claims: dict) -> dict:
    return {c["id"]: c for c in claims["claims"]}


def set_final(index: dict, arm: str, values: dict[int, dict[str, float]]) -> None:
    """Set the final-checkpoint accuracy of ``arm`` per seed and benchmark."""
    for r in index["runs"]:
        if r["arm"] == arm and r["seed"] in values:
            final = max(r["eval"], key=int)
            for b, v in values[r["seed"]].items():
                r["eval"][final][b]["accuracy"] = v


def doctor(index: dict, in_gain: tuple[float, float], ood_change: tuple[float, float], arm: str = "grpo") -> dict:
    ix = copy.deepcopy(index)
    ind, ood = ix["benchmarks"]["in_domain"], ix["benchmarks"]["out_of_domain"]
    base = ix["base"]["eval"]
    set_final(ix, arm, {s: {**{b: base[b]["accuracy"] + in_gain[s] for b in ind},
                            **{b: base[b]["accuracy"] + ood_change[s] for b in ood}} for s in (0, 1)})
    return ix


def test_c1_follows_the_numbers_in_the_index(index):
    agree = by_id(compute_claims(doctor(index, (0.10, 0.11), (-0.05, -0.052))))["C1"]
    assert agree["verdict"] == "reproduced"
    assert agree["components"][0]["mean"] == pytest.approx(0.105)
    against = by_id(compute_claims(doctor(index, (-0.10, -0.11), (-0.05, -0.06))))["C1"]
    assert against["verdict"] == "contradicted"
    unclear = by_id(compute_claims(doctor(index, (0.10, -0.10), (-0.05, -0.06))))["C1"]
    assert unclear["verdict"] == "inconclusive"


def test_c2_is_paired_by_seed(index):
    ix = doctor(doctor(index, (0.02, 0.03), (-0.01, -0.012)), (0.20, 0.22), (-0.30, -0.31), arm="sft")
    c2 = by_id(compute_claims(ix))["C2"]
    assert c2["verdict"] == "reproduced"
    assert c2["components"][0]["per_seed"] == {0: pytest.approx(0.18), 1: pytest.approx(0.19)}
    flipped = doctor(doctor(index, (0.20, 0.22), (-0.30, -0.31)), (0.02, 0.03), (-0.01, -0.012), arm="sft")
    assert by_id(compute_claims(flipped))["C2"]["verdict"] == "contradicted"


def test_c3_c4_read_kl_and_weights_from_the_index(index):
    ix = copy.deepcopy(index)
    for r in ix["runs"]:
        scale = 10.0 if r["arm"] == "sft" else 1.0
        for k in r["kl"]:
            k["kl_forward"] = scale * (1.0 if r["arm"] == "sft" else k["step"] / 3) * (1 + 0.01 * r["seed"])
    assert by_id(compute_claims(ix))["C3"]["verdict"] == "reproduced"
    for r in ix["runs"]:
        for k in r["kl"]:
            k["kl_forward"] = (0.1 if r["arm"] == "sft" else 5.0) * (1 + 0.01 * r["seed"])
    assert by_id(compute_claims(ix))["C3"]["verdict"] == "contradicted"


def test_c6_needs_one_task_helped_and_one_hurt(index):
    ood = index["benchmarks"]["out_of_domain"]
    assert len(ood) >= 2
    base_sft = {s: {b: 0.5 for b in ood} for s in (0, 1)}
    ix = copy.deepcopy(index)
    set_final(ix, "sft", base_sft)
    set_final(ix, "sft-freeze-mlp", {s: {ood[0]: 0.6 + 0.01 * s, ood[1]: 0.4 - 0.01 * s} for s in (0, 1)})
    assert by_id(compute_claims(ix))["C6"]["verdict"] == "reproduced"
    set_final(ix, "sft-freeze-mlp", {s: {b: 0.6 + 0.01 * s for b in ood} for s in (0, 1)})
    assert by_id(compute_claims(ix))["C6"]["verdict"] == "contradicted"


def test_missing_arms_or_one_seed_give_inconclusive(index):
    ix = copy.deepcopy(index)
    ix["arms"] = [a for a in ix["arms"] if a["name"] != "grpo-hard"]
    ix["runs"] = [r for r in ix["runs"] if r["arm"] != "grpo-hard"]
    c = compute_claims(ix)
    assert c["roles"]["grpo_hard"] is None and by_id(c)["C8"]["verdict"] == "inconclusive"
    one = copy.deepcopy(index)
    one["runs"] = [r for r in one["runs"] if r["seed"] == 0]
    assert all(c["verdict"] == "inconclusive" for c in compute_claims(one)["claims"])


def test_ci95_uses_student_t():
    m, ci = ci95([1.0, 2.0, 3.0])
    assert m == 2.0 and ci == pytest.approx([2 - 4.302652729911275 / 3 ** 0.5, 2 + 4.302652729911275 / 3 ** 0.5])
    assert ci95([1.0]) == (1.0, None) and ci95([]) == (None, None)
    assert component("x", {0: 0.1, 1: 0.2, 2: 0.15}, ">0")["status"] == "agrees"
    assert component("x", {0: 0.1, 1: 0.2, 2: 0.15}, "<0")["status"] == "disagrees"
    assert component("x", {0: -0.1, 1: 0.2}, ">0")["status"] == "unclear"
