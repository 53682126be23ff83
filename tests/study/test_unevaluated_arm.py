"""An arm marked ``evaluate: false`` (the demo's GRPO on the hard tier, which claim C8 reads only through its training
rewards) is trained and analysed but never evaluated, and the flag does not change what its training is keyed by."""

from __future__ import annotations

from scalpel import config
from scalpel.study import jobs
from scalpel.train.arms import arm_fingerprint


def cfg(evaluate: bool):
    return config.validate({"study": {
        "model": "microworld", "data": {"source": "microworld"}, "seeds": [0, 1],
        "train": {"steps": 2, "global_batch": 4}, "grpo": {"num_generations": 2}, "eval": {"passk_samples": 2},
        "arms": [{"name": "grpo", "algorithm": "grpo", "lr": 1e-3},
                 {"name": "grpo-hard", "algorithm": "grpo", "lr": 1e-3, "tiers": ["olympiad"],
                  "evaluate": evaluate}]}})


def test_unevaluated_arm_is_trained_and_analysed_but_not_evaluated():
    names = {j.name for j in jobs.plan(cfg(False))}
    for seed in (0, 1):
        assert {f"train-grpo-hard-s{seed}", f"kl-grpo-hard-s{seed}", f"weights-grpo-hard-s{seed}"} <= names
        assert f"eval-grpo-hard-s{seed}" not in names and f"passk-grpo-hard-s{seed}" not in names
        assert {f"eval-grpo-s{seed}", f"passk-grpo-s{seed}"} <= names
    assert {j.name for j in jobs.plan(cfg(True))} - names == {f"{k}-grpo-hard-s{s}" for k in ("eval", "passk")
                                                                for s in (0, 1)}


def test_the_flag_does_not_change_the_training_fingerprint():
    on, off = cfg(True), cfg(False)
    assert arm_fingerprint(on, on.study.arms[1]) == arm_fingerprint(off, off.study.arms[1])
