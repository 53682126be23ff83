"""Forgetting predictors (issue 17, item 2): on a synthetic index where one predictor is planted to determine the
out-of-domain change and the others are noise, that predictor's R² is ~1 and the best, the others' are not."""

from __future__ import annotations

import numpy as np
import pytest

from scalpel.study.predictors import PREDICTORS, forgetting_points, predictor_r2, predictor_table, r2_difference

MATRICES = ("q", "k", "v", "o", "gate", "up", "down")
STEPS = (5, 10, 15, 20)
BASE_OOD = 0.6


def synthetic_index(planted: str, seed: int = 0) -> dict:
    """2 arms × 2 seeds × 4 evaluated steps: ``planted`` = 0.01 + 0.5·(forgetting) + noise 1e-4, every other
    predictor an independent uniform draw."""
    rng = np.random.default_rng(seed)
    runs = []
    for arm in ("grpo", "sft"):
        for s in (0, 1):
            ev, kl, weights, task = {}, [], {}, {}
            for step in STEPS:
                loss = rng.uniform(0, 0.3)
                vals = {k: rng.uniform(0.01, 1.0) for k in PREDICTORS}
                vals[planted] = 0.01 + 0.5 * loss + rng.normal(0, 1e-4)
                ev[str(step)] = {"ood_a": {"accuracy": BASE_OOD - loss}, "ood_b": {"accuracy": BASE_OOD - loss},
                                 "maths": {"accuracy": 0.5}}
                kl.append({"step": step, **{k: vals[k] for k in ("kl_forward", "kl_reverse", "tv")}})
                task[str(step)] = {"kl_forward_task": vals["kl_forward_task"], "tokens": 100}
                weights[str(step)] = {  # the mean over layers and matrices is the value
                    "rel_fro": {m: [vals["rel_fro"]] * 2 for m in MATRICES},
                    "unchanged_atol": {m: [1.0 - vals["changed_fraction"]] * 2 for m in MATRICES}}
            runs.append({"arm": arm, "algorithm": arm, "seed": s, "eval": ev, "kl": kl, "task_kl": task,
                         "weights": {"by_step": weights}})
    return {"benchmarks": {"in_domain": ["maths"], "out_of_domain": ["ood_a", "ood_b"]},
            "base": {"eval": {"ood_a": {"accuracy": BASE_OOD}, "ood_b": {"accuracy": BASE_OOD},
                              "maths": {"accuracy": 0.4}}},
            "runs": runs}


@pytest.mark.parametrize("planted", list(PREDICTORS))
def test_the_planted_predictor_has_the_highest_r2(planted):
    index = synthetic_index(planted)
    table = {r["predictor"]: r for r in predictor_table(index, boot=300)}
    assert set(table) == set(PREDICTORS)
    best = table[planted]
    assert best["n_points"] == 16 and best["n_runs"] == 4
    assert best["r2"] > 0.999 and best["ci95"][0] > 0.99 and best["slope"] == pytest.approx(-2.0, rel=1e-2)
    for name, row in table.items():
        if name != planted:
            assert row["r2"] < 0.5 and row["ci95"][0] < row["r2"] < row["ci95"][1]
    diff = r2_difference(index, planted, next(k for k in PREDICTORS if k != planted), boot=300)
    assert diff["ci95"][0] > 0 and diff["n_runs"] == 4


def test_r2_is_squared_correlation_over_points_that_have_the_predictor():
    index = synthetic_index("kl_forward", seed=3)
    pts = forgetting_points(index)
    assert len(pts) == 16 and {p["ood_change"] for p in pts} <= {p["ood_change"] for p in pts}
    for p in pts[:5]:  # a checkpoint without total variation (a KL job of an older scalpel) is left out
        p["tv"] = None
    row = predictor_r2(pts, "tv", boot=200)
    kept = [p for p in pts if p["tv"] is not None]
    expected = np.corrcoef([p["tv"] for p in kept], [p["ood_change"] for p in kept])[0, 1] ** 2
    assert row["n_points"] == 11 and row["r2"] == pytest.approx(expected)


def test_unmeasured_or_degenerate_data_gives_no_number():
    index = synthetic_index("rel_fro")
    for r in index["runs"]:
        r["kl"] = []
    row = next(r for r in predictor_table(index, boot=50) if r["predictor"] == "kl_forward")
    assert row["n_points"] == 0 and row["r2"] is None and row["ci95"] is None
    one_run = [p for p in forgetting_points(index) if (p["arm"], p["seed"]) == ("sft", 0)]
    row = predictor_r2(one_run, "rel_fro")
    assert row["r2"] is not None and row["ci95"] is None  # one run: no resampling of runs possible
    del index["base"]["eval"]["ood_b"]
    assert forgetting_points(index) == []  # no base out-of-domain accuracy: no change to predict
