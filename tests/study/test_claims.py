"""The claims are computed from index.json and nothing else: doctored numbers change the verdicts as the stated
rule says, on the tiny study's real index (its per-item outcomes replaced by planted ones) and on hand-made values."""

from __future__ import annotations

import copy
import math

import pytest

from scalpel.analyze.architectures import MATRICES
from scalpel.study import stats
from scalpel.study.claims import NOT_JUDGED, ci95, component, compute_claims, mid_layers, roles

N = 1000  # planted items per benchmark: every accuracy with three decimals is exact


def by_id(claims: dict) -> dict:
    return {c["id"]: c for c in claims["claims"]}


def planted(index: dict) -> dict:
    """A copy of the real index with N items per benchmark: the base right on every odd item (accuracy 0.5), every
    evaluated checkpoint scored like the base until ``set_final`` says otherwise."""
    ix = copy.deepcopy(index)
    base = [i % 2 for i in range(N)]
    for b in ix["benchmarks"]["all"]:
        ix["item_ids"][b] = [f"{b}.{i:04d}" for i in range(N)]
        ix["base"]["eval"][b]["outcomes"] = list(base)
        for r in ix["runs"]:
            for ev in r["eval"].values():
                ev[b]["outcomes"] = list(base)
    return ix


def flipped(accuracy: float) -> list[int]:
    """The base's outcomes with the first wrong items made right (a gain) or the first right items made wrong (a
    loss) until the accuracy is ``accuracy``: a larger gain contains a smaller one's items, as nested skills would."""
    k = round((accuracy - 0.5) * N)
    out = [i % 2 for i in range(N)]
    for j in range(abs(k)):
        out[2 * j + (0 if k > 0 else 1)] = 1 if k > 0 else 0
    return out


def set_final(index: dict, arm: str, values: dict[int, dict[str, float]]) -> None:
    """Set the final-checkpoint outcomes of ``arm`` per seed and benchmark so that its accuracy is the value."""
    for r in index["runs"]:
        if r["arm"] == arm and r["seed"] in values:
            final = max(r["eval"], key=int)
            for b, v in values[r["seed"]].items():
                r["eval"][final][b]["outcomes"] = flipped(v)


def doctor(ix: dict, in_gain: tuple[float, float], ood_change: tuple[float, float], arm: str = "grpo") -> dict:
    """``arm``'s final checkpoints in a planted index: the base plus the in-domain gain and the out-of-domain change
    of seeds 0 and 1."""
    ind, ood = ix["benchmarks"]["in_domain"], ix["benchmarks"]["out_of_domain"]
    set_final(ix, arm, {s: {**{b: 0.5 + in_gain[s] for b in ind}, **{b: 0.5 + ood_change[s] for b in ood}}
                        for s in (0, 1)})
    return ix


def test_the_index_pairs_base_and_checkpoints_on_identical_items(index):
    for b in index["benchmarks"]["all"]:
        ids = index["item_ids"][b]
        base = index["base"]["eval"][b]
        assert len(ids) == base["n_items"] == len(base["outcomes"]) and None not in base["outcomes"]
        assert sum(base["outcomes"]) / len(ids) == pytest.approx(base["accuracy"])
        for r in index["runs"]:
            for ev in r["eval"].values():
                assert len(ev[b]["outcomes"]) == len(ids) and None not in ev[b]["outcomes"]
                assert sum(ev[b]["outcomes"]) / len(ids) == pytest.approx(ev[b]["accuracy"])
    c1 = by_id(compute_claims(index))["C1"]["components"][0]
    assert c1["unpaired_items"] == {b: 0 for b in index["benchmarks"]["in_domain"]}
    assert c1["items"] == {b: len(index["item_ids"][b]) for b in index["benchmarks"]["in_domain"]}


def test_c1_follows_the_numbers_in_the_index(index):
    agree = by_id(compute_claims(doctor(planted(index), (0.10, 0.11), (-0.05, -0.052))))["C1"]
    assert agree["verdict"] == "reproduced"
    assert agree["components"][0]["mean"] == pytest.approx(0.105)
    assert agree["components"][0]["per_seed"] == {0: pytest.approx(0.10), 1: pytest.approx(0.11)}
    assert agree["components"][0]["method"] == stats.CROSSED and agree["components"][0]["n"] == 2
    against = by_id(compute_claims(doctor(planted(index), (-0.10, -0.11), (-0.05, -0.06))))["C1"]
    assert against["verdict"] == "contradicted"
    unclear = by_id(compute_claims(doctor(planted(index), (0.10, -0.10), (-0.05, -0.06))))["C1"]
    assert unclear["verdict"] == "inconclusive"


def test_c2_is_paired_by_seed(index):
    ix = doctor(doctor(planted(index), (0.02, 0.03), (-0.01, -0.012)), (0.20, 0.22), (-0.30, -0.31), arm="sft")
    c2 = by_id(compute_claims(ix))["C2"]
    assert c2["verdict"] == "reproduced"
    assert c2["components"][0]["per_seed"] == {0: pytest.approx(0.18), 1: pytest.approx(0.19)}
    swapped = doctor(doctor(planted(index), (0.20, 0.22), (-0.30, -0.31)), (0.02, 0.03), (-0.01, -0.012), arm="sft")
    assert by_id(compute_claims(swapped))["C2"]["verdict"] == "contradicted"


def test_c3_reads_kl_from_the_index(index):
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


def set_weights(index: dict, arm: str, value) -> None:
    """Replace the final weight-update map (‖ΔW‖/‖W‖ per matrix and layer) of every run of ``arm`` by
    ``value(seed, matrix, layer)``, over as many layers as the index's own maps have."""
    n = max(len(v) for r in index["runs"] for s in (r.get("weights") or {}).get("by_step", {}).values()
            for v in s["rel_fro"].values())
    for r in index["runs"]:
        if r["arm"] == arm:
            step = max(r["eval"], key=int)
            r["weights"] = {"by_step": {step: {"rel_fro": {m: [value(r["seed"], m, i) for i in range(n)]
                                                           for m in MATRICES}}}}


def test_c4_reads_the_size_and_the_qk_share_of_the_updates_from_the_index(index):
    ix = copy.deepcopy(index)
    set_weights(ix, "sft", lambda s, m, i: (2.0 if m in ("q", "k") else 1.0) * (1 + 0.01 * s))
    set_weights(ix, "grpo", lambda s, m, i: (0.2 if m in ("q", "k") else 0.1) * (1 + 0.02 * s))
    c4 = by_id(compute_claims(ix))["C4"]
    assert c4["verdict"] == "reproduced", c4
    assert [x["status"] for x in c4["components"]] == ["agrees"] * 3
    assert c4["components"][0]["per_seed"][0] == pytest.approx(math.log(10.0))  # (2·2 + 5·1)/7 ÷ (2·0.2 + 5·0.1)/7
    set_weights(ix, "sft", lambda s, m, i: (0.05 if m in ("q", "k") else 0.1) * (1 + 0.01 * s))  # smaller, not Q/K
    c4 = by_id(compute_claims(ix))["C4"]
    assert c4["verdict"] == "contradicted"
    assert [x["status"] for x in c4["components"]] == ["disagrees", "disagrees", "agrees"]


def test_c5_reads_the_mid_layer_mlp_share_from_the_index(index):
    ix = copy.deepcopy(index)
    mids = set(mid_layers(ix, roles(ix)))
    mlp = ("gate", "up", "down")
    uniform = lambda s, m, i: 1.0 + 0.01 * s  # noqa: E731
    mid_heavy = lambda s, m, i: (3.0 if m in mlp and i in mids else 1.0) * (1 + 0.01 * s)  # noqa: E731
    set_weights(ix, "sft", mid_heavy)
    set_weights(ix, "grpo", uniform)
    c5 = by_id(compute_claims(ix))["C5"]
    assert c5["verdict"] == "reproduced" and c5["components"][0]["per_seed"][0] > 0
    set_weights(ix, "sft", uniform)
    set_weights(ix, "grpo", mid_heavy)
    assert by_id(compute_claims(ix))["C5"]["verdict"] == "contradicted"


def test_c6_needs_one_task_helped_and_one_hurt(index):
    ood = index["benchmarks"]["out_of_domain"]
    assert len(ood) >= 2
    ix = planted(index)
    set_final(ix, "sft", {s: {b: 0.5 for b in ood} for s in (0, 1)})
    set_final(ix, "sft-freeze-mlp", {s: {ood[0]: 0.6 + 0.01 * s, ood[1]: 0.4 - 0.01 * s} for s in (0, 1)})
    assert by_id(compute_claims(ix))["C6"]["verdict"] == "reproduced"
    set_final(ix, "sft-freeze-mlp", {s: {b: 0.6 + 0.01 * s for b in ood} for s in (0, 1)})
    assert by_id(compute_claims(ix))["C6"]["verdict"] == "contradicted"


def test_c7_compares_arms_paired_by_seed_and_item(index):
    ix = planted(index)
    ind, ood = ix["benchmarks"]["in_domain"], ix["benchmarks"]["out_of_domain"]
    set_final(ix, "sft", {s: {**{b: 0.7 for b in ind}, **{b: 0.3 for b in ood}} for s in (0, 1)})
    set_final(ix, "sft-qk-only", {s: {**{b: 0.55 + 0.01 * s for b in ind}, **{b: 0.2 for b in ood}} for s in (0, 1)})
    c7 = by_id(compute_claims(ix))["C7"]
    assert c7["verdict"] == "reproduced"
    assert c7["components"][0]["per_seed"] == {0: pytest.approx(-0.15), 1: pytest.approx(-0.14)}
    set_final(ix, "sft-qk-only", {s: {**{b: 0.8 for b in ind}, **{b: 0.2 for b in ood}} for s in (0, 1)})
    assert by_id(compute_claims(ix))["C7"]["verdict"] == "contradicted"


def test_missing_arms_give_inconclusive_and_one_seed_is_not_judged(index):
    ix = copy.deepcopy(index)
    ix["arms"] = [a for a in ix["arms"] if a["name"] != "grpo-hard"]
    ix["runs"] = [r for r in ix["runs"] if r["arm"] != "grpo-hard"]
    c = compute_claims(ix)
    assert c["roles"]["grpo_hard"] is None and by_id(c)["C8"]["verdict"] == "inconclusive"
    one = doctor(planted(index), (0.30, 0.30), (-0.30, -0.30))  # effects no item-level CI could miss ...
    one["runs"] = [r for r in one["runs"] if r["seed"] == 0]
    c = compute_claims(one)
    for claim in c["claims"]:  # ... are still not judged on one seed (inconclusive where a component has no data)
        complete = all(x["n"] > 0 for x in claim["components"])
        assert claim["verdict"] == (NOT_JUDGED if complete else "inconclusive"), claim
    assert {k for k, v in by_id(c).items() if v["verdict"] == NOT_JUDGED} >= {"C1", "C2", "C6", "C7"}
    c1 = by_id(c)["C1"]["components"][0]
    assert c1["method"] == stats.ITEMS_ONLY and c1["ci95"][0] > 0.25 and c1["status"] == NOT_JUDGED


def test_ci95_uses_student_t():
    m, ci = ci95([1.0, 2.0, 3.0])
    assert m == 2.0 and ci == pytest.approx([2 - 4.302652729911275 / 3 ** 0.5, 2 + 4.302652729911275 / 3 ** 0.5])
    assert ci95([1.0]) == (1.0, None) and ci95([]) == (None, None)
    assert component("x", {0: 0.1, 1: 0.2, 2: 0.15}, ">0")["status"] == "agrees"
    assert component("x", {0: 0.1, 1: 0.2, 2: 0.15}, "<0")["status"] == "disagrees"
    assert component("x", {0: -0.1, 1: 0.2}, ">0")["status"] == "unclear"
    assert component("x", {0: 0.1}, ">0")["status"] == NOT_JUDGED


def test_sft_role_is_the_plain_sft_arm_with_fewest_epochs():
    from scalpel.study.claims import roles

    sft = {"name": "sft", "algorithm": "sft"}
    longer = {"name": "sft-5ep", "algorithm": "sft", "epochs": 5}
    frozen = {"name": "f", "algorithm": "sft", "freeze": {"train_only": ["q_proj", "k_proj"]}}
    assert roles({"arms": [longer, sft, frozen]})["sft"] == "sft"
    assert roles({"arms": [frozen, longer]})["sft"] == "sft-5ep"  # a study whose only plain SFT arm runs 5 epochs
    assert roles({"arms": [frozen]})["sft"] is None


def test_c8_compares_grpo_on_each_tier_alone():
    """When the matched GRPO arm trains on both tiers, C8 reads the GRPO arm that trains on the easy tier alone (or
    has no easy-tier arm to read), never the mixed one under the easy-tier label."""
    from scalpel.study.claims import roles

    mixed = {"name": "grpo", "algorithm": "grpo", "tiers": None, "train_tiers": ["k12", "olympiad"]}
    easy = {"name": "grpo-easy", "algorithm": "grpo", "tiers": ["k12"], "train_tiers": ["k12"]}
    hard = {"name": "grpo-hard", "algorithm": "grpo", "tiers": ["olympiad"], "train_tiers": ["olympiad"]}
    r = roles({"arms": [mixed, easy, hard]})
    assert (r["grpo"], r["grpo_easy"], r["grpo_hard"]) == ("grpo", "grpo-easy", "grpo-hard")
    assert roles({"arms": [mixed, hard]})["grpo_easy"] is None
    plain = {"name": "grpo", "algorithm": "grpo", "tiers": None, "train_tiers": ["k12"]}
    assert roles({"arms": [plain, hard]})["grpo_easy"] == "grpo"
    assert roles({"arms": [{"name": "old", "algorithm": "grpo"}]})["grpo_easy"] == "old"  # index before train_tiers
