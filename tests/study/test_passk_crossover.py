"""pass@k as Yue et al. measure it (issue 17, item 4): every k up to the samples, checked against enumeration of
all k-subsets of the samples, base and arm on shared item ids, and the k where the base overtakes the arm."""

from __future__ import annotations

import itertools
import statistics

import pytest

from scalpel.evaluate.metrics import pass_at_k_curve
from scalpel.study.passk import arm_curves, gap_at_max_k, overtake_k, passk_table


def brute_curve(per_item: dict[str, list[bool]], n: int) -> list[float]:
    """Mean over items of the share of k-subsets of the first n samples with a correct one, k = 1..n."""
    out = []
    for k in range(1, n + 1):
        vals = [statistics.fmean(any(s[i] for i in sub) for sub in itertools.combinations(range(n), k))
                for s in per_item.values()]
        out.append(statistics.fmean(vals))
    return out


def counts(per_item: dict[str, list[bool]]) -> dict[str, list[int]]:
    return {i: [len(s), sum(s)] for i, s in per_item.items()}


# The base is right on few samples of many items (broad coverage), the arm on most samples of fewer items (sharp).
BASE = {"a": [1, 0, 0, 0, 0, 0], "b": [0, 0, 1, 0, 0, 0], "c": [0, 0, 0, 0, 0, 1], "d": [1, 1, 0, 0, 0, 0],
        "x": [1, 0, 0, 0, 0, 0]}
ARM = {0: {"a": [1, 1, 1, 1, 1, 1], "b": [0] * 6, "c": [0] * 6, "d": [1, 1, 1, 1, 1, 0]},
       1: {"a": [1, 1, 1, 1, 0, 1], "b": [1, 0, 0, 0, 0, 0], "c": [0] * 6, "d": [1, 1, 1, 1, 1, 1],
           "y": [1, 1, 1, 1, 1, 1]}}


def index() -> dict:
    runs = [{"arm": "grpo", "seed": s, "passk": {"100": {"maths": {"counts": counts(per_item)}}}}
            for s, per_item in ARM.items()]
    runs.append({"arm": "sft", "seed": 0, "passk": {}})
    return {"benchmarks": {"in_domain": ["maths"]}, "base": {"passk": {"maths": {"counts": counts(BASE)}}},
            "runs": runs}


@pytest.mark.parametrize("n", [1, 3, 6])
def test_curve_matches_enumeration_of_subsets(n):
    per_item = {**{i: s[:n] for i, s in BASE.items()}, **{f"s{i}": s[:n] for i, s in ARM[1].items()}}
    got = pass_at_k_curve([(len(s), sum(s)) for s in per_item.values()])
    assert got == pytest.approx(brute_curve(per_item, n), abs=1e-12)
    with pytest.raises(ValueError, match="no items"):
        pass_at_k_curve([])


def test_base_and_arm_on_shared_items_and_the_overtaking_k():
    c = arm_curves(index(), "grpo", "maths")
    shared = ["a", "b", "c", "d"]  # x: base only, y: seed 1 only
    assert c["items"] == 4 and c["k"] == list(range(1, 7))
    assert c["base"] == pytest.approx(brute_curve({i: BASE[i] for i in shared}, 6))
    per_seed = {s: brute_curve({i: ARM[s][i] for i in shared}, 6) for s in ARM}
    mean = [statistics.fmean(v) for v in zip(*per_seed.values())]
    assert c["arm"] == pytest.approx(mean)
    expected = next(k for k in range(1, 7) if c["base"][k - 1] > mean[k - 1])
    assert c["arm_leads_at_1"] and c["overtake_k"] == expected and expected > 1
    for s in ARM:
        assert c["per_seed"][s]["gap_at_max_k"] == pytest.approx(c["base"][-1] - per_seed[s][-1])
    assert gap_at_max_k(index(), "grpo") == {s: pytest.approx(c["per_seed"][s]["gap_at_max_k"]) for s in ARM}
    assert set(passk_table(index())) == {"grpo"}  # sft has no pass@k counts: left out, not zero
    assert gap_at_max_k(index(), "sft") == {} and gap_at_max_k(index(), None) == {}


def test_overtake_k_edges():
    assert overtake_k([0.1, 0.5, 0.9], [0.3, 0.5, 0.8]) == 3  # a tie is not overtaking
    assert overtake_k([0.1, 0.2], [0.3, 0.4]) is None
    assert overtake_k([0.5], [0.4]) == 1
    with pytest.raises(ValueError, match="different lengths"):
        overtake_k([0.1], [0.1, 0.2])
