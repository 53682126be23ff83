"""scalpel.study.stats against simulations with known truth: coverage of a planted effect, the base's noise inside
the interval, an unbiased variance, bounded intervals and pairing by item id. Fast: numpy only, fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from scalpel.evaluate.metrics import wilson
from scalpel.study import stats
from scalpel.study.claims import ci95

GH_X, GH_W = np.polynomial.hermite_e.hermegauss(80)
GH_W = GH_W / GH_W.sum()


def mean_expit(mu: float, sd: float) -> float:
    """E[expit(N(mu, sd²))] by Gauss–Hermite quadrature: the population accuracy of a logit-normal model."""
    return float((GH_W * expit(mu + sd * GH_X)).sum())


def simulate(rng, n_studies: int, seeds: int, items: int, benches: int = 1, samples: int = 1, mu: float = -0.3,
             sd_item: float = 1.5, gain: float = 0.4, sd_gain: float = 0.3, sd_seed: float = 0.15,
             sd_inter: float = 0.3) -> dict:
    """Studies of an arm against a base on the same items: item difficulty (logit), a planted gain that varies by item,
    a seed effect shared by the seed's benchmarks, seed × item interaction, Binomial(samples) outcomes. Returns the
    coverage of the true gain / the true arm accuracy by the 95 % intervals, and the mean MDC."""
    sd_arm = float(np.sqrt(sd_item ** 2 + sd_gain ** 2 + sd_seed ** 2 + sd_inter ** 2))
    true_acc = mean_expit(mu + gain, sd_arm)
    true_gain = true_acc - mean_expit(mu, sd_item)
    hit_gain = hit_acc = 0
    mdc = []
    for _ in range(n_studies):
        seed_effect = rng.normal(0, sd_seed, (seeds, 1))
        diffs, accs = [], []
        for _ in range(benches):
            theta = rng.normal(mu, sd_item, items)
            base = rng.binomial(samples, expit(theta)) / samples
            logit = theta + gain + rng.normal(0, sd_gain, items) + seed_effect + rng.normal(0, sd_inter, (seeds, items))
            arm = rng.binomial(samples, expit(logit)) / samples
            diffs.append((arm - base, 1 / benches))
            accs.append((arm, 1 / benches))
        g = stats.crossed(diffs)
        lo, hi = stats.difference_ci(g)
        hit_gain += lo <= true_gain <= hi
        mdc.append(stats.half_width(g))
        lo, hi = stats.accuracy_ci(stats.crossed(accs))
        hit_acc += lo <= true_acc <= hi
    return {"gain": hit_gain / n_studies, "accuracy": hit_acc / n_studies, "mdc": float(np.mean(mdc)),
            "true_gain": true_gain}


@pytest.mark.parametrize("design", [
    {"seeds": 3, "items": 100},
    {"seeds": 5, "items": 60, "samples": 4},
    {"seeds": 3, "items": 80, "benches": 3},
], ids=["3 seeds x 100 items", "5 seeds x 60 items x 4 samples", "3 seeds x 3 benchmarks x 80 items"])
def test_coverage_of_a_planted_effect_is_close_to_95_percent(design):
    rng = np.random.default_rng(20240613)
    r = simulate(rng, 600, **design)
    print(f"\n{design}: planted gain {r['true_gain']:.4f}; coverage of the gain {r['gain']:.3f}, of the arm's "
          f"accuracy {r['accuracy']:.3f} over 600 studies; mean MDC {r['mdc']:.3f}")
    assert 0.92 <= r["gain"] <= 0.985
    assert 0.92 <= r["accuracy"] <= 0.985


def gaussian_crossed(rng, S: int, n: int, sa: float, sc: float, se: float, reps: int = 3000) -> dict:
    """Mean over ``reps`` designs d = a_i + c_s + e_si of the estimate V, of Owen's Q_items + Q_seeds, and the
    variance of the mean itself, next to the true Var(mean d)."""
    means, vs, owen = [], [], []
    for _ in range(reps):
        d = rng.normal(0, sa, (1, n)) + rng.normal(0, sc, (S, 1)) + rng.normal(0, se, (S, n))
        e = stats.crossed([(d, 1.0)])
        means.append(e.mean)
        vs.append(e.var)
        owen.append(d.mean(0).var(ddof=1) / n + d.mean(1).var(ddof=1) / S)
    return {"true": sa ** 2 / n + sc ** 2 / S + se ** 2 / (n * S), "empirical": float(np.var(means)),
            "V": float(np.mean(vs)), "owen": float(np.mean(owen))}


def test_the_variance_estimate_is_unbiased_and_counts_the_residual_once():
    rng = np.random.default_rng(7)
    clear = gaussian_crossed(rng, 3, 50, 0.3, 0.2, 0.5)  # every component well above 0
    assert clear["empirical"] == pytest.approx(clear["true"], rel=0.08)  # the simulation agrees with the formula
    assert clear["V"] == pytest.approx(clear["true"], rel=0.05)  # and the estimator with both
    noisy = gaussian_crossed(rng, 3, 50, 0.3, 0.1, 0.7)  # a large residual, as with one completion per item
    # setting a negative seed component to 0 only widens, a little; counting the residual twice widens more
    assert noisy["true"] <= noisy["V"] <= 1.12 * noisy["true"] < 1.3 * noisy["true"] < noisy["owen"]


def test_the_base_noise_is_inside_the_interval():
    """The arm is fixed (near-deterministic checkpoints: seeds barely differ), the base is redrawn: the estimate
    moves with the base's noise, and the crossed interval covers where it moves — a CI over seeds does not."""
    rng = np.random.default_rng(3)
    S, n = 3, 120
    p_base = expit(rng.normal(-0.2, 1.0, n))
    arm_one = (rng.random(n) < expit(rng.normal(0.3, 2.5, n))).astype(float)
    arm = np.repeat(arm_one[None, :], S, axis=0)
    flips = rng.random((S, n)) < 0.03  # seeds differ on ~3 % of items
    arm[flips] = 1 - arm[flips]
    target = arm.mean() - p_base.mean()  # the gain, averaged over the base's sampling noise
    ests, crossed_hits, seed_t_hits, vs = [], 0, 0, []
    draws = 400
    for _ in range(draws):
        base = (rng.random(n) < p_base).astype(float)
        e = stats.crossed([(arm - base[None, :], 1.0)])
        lo, hi = stats.difference_ci(e)
        crossed_hits += lo <= target <= hi
        ests.append(e.mean)
        vs.append(e.var)
        _, ci = ci95(list(e.per_seed))  # the old rule: Student t over per-seed gains
        seed_t_hits += ci[0] <= target <= ci[1]
    print(f"\nbase redrawn {draws} times: sd of the estimate {np.std(ests):.4f}, mean crossed SE "
          f"{np.sqrt(np.mean(vs)):.4f}; coverage crossed {crossed_hits / draws:.3f}, t over seeds "
          f"{seed_t_hits / draws:.3f}")
    assert np.mean(vs) >= np.var(ests)  # the base's own variance is part of V
    assert crossed_hits / draws >= 0.93
    assert seed_t_hits / draws < 0.8  # the test can fail: a CI over seeds leaves the base out (measured 0.65)


def test_one_seed_is_item_level():
    d = np.array([[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]])
    e = stats.crossed([(d, 1.0)])
    assert e.level == stats.ITEMS_ONLY and e.seeds == 1 and set(e.parts) == {"items"}
    assert e.var == pytest.approx(d.var(ddof=1) / 6) and e.df == pytest.approx(5)
    many = stats.crossed([(np.vstack([d, 1 - d]), 1.0)])
    assert many.level == stats.CROSSED and set(many.parts) == {"items", "seeds", "residual"}


def test_a_matrix_computed_by_hand():
    d = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    S, n = d.shape
    q_items = d.mean(0).var(ddof=1) / n
    q_seeds = d.mean(1).var(ddof=1) / S
    resid = d - d.mean(0) - d.mean(1)[:, None] + d.mean()
    q_res = (resid ** 2).sum() / ((S - 1) * (n - 1)) / (n * S)
    e = stats.crossed([(d, 1.0)])
    expect = max(q_items - q_res, 0) + max(q_seeds - q_res, 0) + q_res
    assert e.mean == pytest.approx(d.mean()) and e.var == pytest.approx(expect)
    assert e.per_seed == pytest.approx(tuple(d.mean(1)))


def test_accuracy_intervals_stay_in_zero_one():
    for d in (np.zeros((1, 40)), np.zeros((3, 40)), np.ones((1, 40)), np.ones((3, 40))):
        e = stats.crossed([(d, 1.0)])
        lo, hi = stats.accuracy_ci(e)
        p = float(d.mean())
        assert 0.0 <= lo <= p <= hi <= 1.0 and hi - lo > 0.05  # nothing varies, yet 40 items are not certainty
        assert (lo, hi) == pytest.approx(wilson(p, 40))
    lo, hi = stats.accuracy_ci(stats.crossed([(np.array([[0.0, 1.0]]), 1.0)]))  # two items, one seed
    assert 0.0 <= lo < 0.5 < hi <= 1.0
    rng = np.random.default_rng(11)
    for _ in range(500):
        S, n, k = rng.integers(1, 5), rng.integers(2, 7), rng.integers(1, 4)
        y = rng.binomial(k, rng.beta(0.3, 0.3), (S, n)) / k  # often all 0 or all 1
        e = stats.crossed([(y, 1.0)])
        lo, hi = stats.accuracy_ci(e)
        assert 0.0 <= lo <= e.mean <= hi <= 1.0, (y, lo, hi)
        b = rng.binomial(k, rng.beta(0.3, 0.3), (1, n)) / k
        g = stats.crossed([(y - b, 1.0)])
        lo, hi = stats.difference_ci(g)
        assert -1.0 <= lo <= g.mean <= hi <= 1.0, (y, b, lo, hi)


def test_difference_intervals_are_clipped_and_never_degenerate():
    same = stats.crossed([(np.zeros((3, 40)), 1.0)])  # 0/40 against 0/40 in every seed
    assert same.var == 0 and stats.difference_ci(same) == pytest.approx([-wilson(0.0, 40)[1], wilson(0.0, 40)[1]])
    assert stats.half_width(same) == pytest.approx(0.0876, abs=1e-3)
    flipped = stats.crossed([(np.ones((2, 40)), 1.0)])  # every item wrong -> right
    lo, hi = stats.difference_ci(flipped)
    assert hi == 1.0 and 0.85 < lo < 1.0
    near = stats.crossed([(-np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]), 1.0)])
    assert stats.difference_ci(near)[0] == -1.0


def test_pairing_is_by_item_id():
    base = {"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}
    ckpt = {"d": 1.0, "c": 1.0, "b": 1.0, "e": 0.0}  # other order, one id missing, one extra
    ids, rows, dropped = stats.align({"ckpt": ckpt, "base": base})
    assert ids == ["b", "c", "d"] and dropped == 2
    assert rows.tolist() == [[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]
    ids, rows, dropped = stats.align({"x": {"a": 1.0, "b": None}, "y": {"a": 0.0, "b": 1.0}})
    assert ids == ["a"] and dropped == 1  # None = not scored on that item
    with pytest.raises(ValueError, match=r"no item id is shared by every model \(ckpt: 1, base: 1 ids\)"):
        stats.align({"ckpt": {"x": 1.0}, "base": {"y": 1.0}})


def test_bad_blocks_are_refused():
    with pytest.raises(ValueError, match="at least 2 items"):
        stats.crossed([(np.ones((3, 1)), 1.0)])
    with pytest.raises(ValueError, match="same seeds"):
        stats.crossed([(np.ones((3, 4)), 0.5), (np.ones((2, 4)), 0.5)])
    with pytest.raises(ValueError, match="non-finite"):
        stats.crossed([(np.array([[0.0, np.nan]]), 1.0)])
