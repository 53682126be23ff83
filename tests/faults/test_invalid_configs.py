"""Invalid study configurations: each fails before any compute (no training, no model load, exit code 2) with a
message that names the offending field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scalpel.cli import main

REPO = Path(__file__).resolve().parents[2]

# (override(s), field the message must name)
CASES = [
    (["study.train.steps=0"], "study.train.steps"),
    (["study.train.global_batch=6"], "global_batch"),
    (["study.arms.0.algorithm=ppo"], "study.arms.0.algorithm"),
    (["study.arms.0.lr=-1"], "study.arms.0.lr"),
    (["study.seeds=[1, 1]"], "seeds"),
    (["study.arms.1.name=grpo"], "duplicate arm name"),
    (["study.arms.2.freeze.freeze=[mlp@7-9]"], "study.arms.2.freeze"),
    (["study.arms.2.freeze.freeze=[nonexistent_proj]"], "study.arms.2.freeze"),
    (["study.grpo.rewards={bogus: 1.0}"], "rewards"),
    (["study.eval.passk_arms=[nope]"], "eval.passk_arms"),
    (["study.workers=0"], "study.workers"),
    (["study.data.source=hub"], "study.data.source"),
    (["study.arms.0.tiers=[olympiad]", "study.data.source=openr1"], "tiers"),
    (["study.colour=blue"], "study.colour"),
    (["study.train.lr_scheduler=exotic"], "study.train.lr_scheduler"),
    (["study.grpo.temperature=0"], "study.grpo.temperature"),
    (["study.eval.top_p=1.5"], "study.eval.top_p"),
    (["study.analysis.kl_max_examples=0"], "study.analysis.kl_max_examples"),
    (["study.model=not a/valid/model"], "study.model"),
    (["study.arms.9.lr=1"], "study.arms"),
    (["study.train.warmup_ratio=1.5"], "study.train.warmup_ratio"),
    (["study.grpo.loss_type=ppo"], "study.grpo.loss_type"),
]


@pytest.fixture(scope="module")
def study_file(test_world, tmp_path_factory) -> Path:
    data = yaml.safe_load((REPO / "recipes/microworld/smoke.yaml").read_text())
    data["study"]["model"] = str(test_world.dir)
    data["study"]["arms"].append({"name": "grpo-hard", "algorithm": "grpo", "lr": 1e-4, "tiers": ["olympiad"]})
    path = tmp_path_factory.mktemp("cfg") / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("overrides,field", CASES, ids=[c[1] + ":" + c[0][0] for c in CASES])
def test_invalid_study_config_fails_before_compute(overrides, field, study_file, tmp_path, capsys, tally):
    out = tmp_path / "study"
    args = ["study", str(study_file), "--out", str(out)] + [a for o in overrides for a in ("--set", o)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert field in err, err
    assert not (out / "runs").exists() and not (out / "logs").exists()  # nothing was trained or evaluated
    tally("invalid configs caught")
