"""pass@k equals brute-force enumeration; accuracy CIs cover, shrink with more samples, and respect clustering."""

from __future__ import annotations

import itertools
import random

import pytest

from scalpel.evaluate.metrics import accuracy_ci, ks_for, pass_at_k, pass_at_ks, wilson


def brute_pass_at_k(outcomes: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(range(len(outcomes)), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(outcomes, k), abs=1e-12)


def test_pass_at_k_edges_and_validation():
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)
    assert ks_for(1) == [1] and ks_for(7) == [1, 2, 4] and ks_for(8) == [1, 2, 4, 8]


def test_pass_at_ks_averages_items_and_pass1_is_accuracy():
    per_item = [[True, False, False, False], [True, True, True, True], [False] * 4]
    pk = pass_at_ks(per_item)
    assert list(pk) == ["pass@1", "pass@2", "pass@4"]
    assert pk["pass@1"] == pytest.approx(accuracy_ci(per_item)["accuracy"])
    assert pk["pass@4"] == pytest.approx(2 / 3)
    assert pk["pass@2"] == pytest.approx((brute_pass_at_k(per_item[0], 2) + 1 + 0) / 3)


def test_ci_shrinks_with_more_samples_for_independent_items():
    rng = random.Random(0)
    widths = {}
    for samples in (1, 4, 16):
        per_item = [[rng.random() < 0.4 for _ in range(samples)] for _ in range(100)]
        r = accuracy_ci(per_item)
        widths[samples] = r["ci95"][1] - r["ci95"][0]
        assert r["ci95"][0] <= r["accuracy"] <= r["ci95"][1]
    assert widths[1] > widths[4] > widths[16]
    # ~1/sqrt(total samples) when items are exchangeable: 4x samples ~ half the width
    assert widths[1] / widths[4] == pytest.approx(2.0, rel=0.25)


def test_ci_does_not_shrink_when_samples_only_repeat_the_item():
    """All-or-nothing items: more samples add no information; the interval stays at the item-level width."""
    items = [i % 3 == 0 for i in range(60)]
    one = accuracy_ci([[x] for x in items])
    many = accuracy_ci([[x] * 16 for x in items])
    assert many["accuracy"] == one["accuracy"]
    assert many["ci95"][1] - many["ci95"][0] == pytest.approx(one["ci95"][1] - one["ci95"][0], rel=0.05)


def test_ci_with_one_sample_is_wilson_over_items_and_covers_extremes():
    per_item = [[True]] * 7 + [[False]] * 3
    r = accuracy_ci(per_item)
    assert r["ci95"] == pytest.approx(list(wilson(0.7, 10)))
    zero = accuracy_ci([[False]] * 10)
    assert zero["accuracy"] == 0.0 and zero["ci95"][0] == 0.0 and 0.2 < zero["ci95"][1] < 0.35
    assert accuracy_ci([])["accuracy"] is None


def test_ci_coverage_by_simulation():
    """The nominal 95 % interval covers the true mean in ~95 % of simulated evaluations (clustered items)."""
    rng = random.Random(1)
    covered, trials = 0, 400
    for _ in range(trials):
        per_item = []
        for _ in range(40):
            p = rng.betavariate(2, 3)  # true mean 0.4, items of varying difficulty
            per_item.append([rng.random() < p for _ in range(4)])
        lo, hi = accuracy_ci(per_item)["ci95"]
        covered += lo <= 0.4 <= hi
    assert 0.90 <= covered / trials <= 0.99
