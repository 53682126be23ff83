"""Claim (issue 16, item 8): `study.train.report_to` reaches TRL's config, and changing it changes no run's key
(a study can be followed in W&B / Trackio / TensorBoard without retraining anything)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalpel import config

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "olmo2-7b" / "study.yaml"


def _cfg(*overrides):
    return config.load(RECIPE, list(overrides))


@pytest.mark.parametrize("where", ["wandb", "trackio", "tensorboard"])
def test_report_to_reaches_the_trl_config_and_no_key(where, tmp_path):
    from scalpel.study.jobs import plan
    from scalpel.train import grpo, sft
    from scalpel.train.arms import _common_args, arm_fingerprint, batch_plan

    off, on = _cfg(), _cfg(f"study.train.report_to={where}")
    assert off.study.train.report_to == "none"
    for arm_off, arm_on in zip(off.study.arms, on.study.arms):
        assert arm_fingerprint(off, arm_off) == arm_fingerprint(on, arm_on)
        bp = batch_plan(on.study, arm_on, 7)
        module = grpo if arm_on.algorithm == "grpo" else sft
        kwargs = module.config_kwargs(on.study, _common_args(on.study, arm_on, 42, tmp_path, bp, 571, False))
        assert kwargs["report_to"] == where
    cfg_off, cfg_on = off.model_dump(mode="json"), on.model_dump(mode="json")
    assert [j.key(cfg_off) for j in plan(off)] == [j.key(cfg_on) for j in plan(on)]


def test_an_unknown_tracker_names_the_choices():
    with pytest.raises(config.ConfigError, match=r"study.train.report_to: .*'none', 'wandb', 'trackio' or "
                       r"'tensorboard'"):
        _cfg("study.train.report_to=mlflow")
