"""``scalpel demo`` and ``scalpel study`` hand the study they were given, with every ``--set`` applied, to the runner;
the demo study (scalpel/study/demo.yaml, never run by the suite: it takes ~25 min) loads and casts every claim's arm;
and a study directory is locked against a second study."""

from __future__ import annotations

import pytest

from scalpel import cli, config
from scalpel.study import runner
from scalpel.study.claims import roles
from scalpel.study.cli import DEMO


@pytest.fixture()
def handed(monkeypatch, tmp_path):
    """The config each ``scalpel study``/``demo`` call hands to ``run_study`` (which is not run)."""
    seen = []

    def fake_run_study(cfg, out, say=print):
        seen.append((cfg, out))
        return tmp_path / "index.json"

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    return seen


def test_demo_loads_and_every_claim_has_its_arm(handed, tmp_path):
    assert cli.main(["demo", "--out", str(tmp_path / "d")]) == 0
    [(cfg, out)] = handed
    assert cfg.study.name == "demo" and out == tmp_path / "d"
    assert cfg == config.load(DEMO)
    cast = roles({"arms": [{**a.model_dump(mode="json"), "train_tiers": cfg.study.train_tiers(a)}
                           for a in cfg.study.arms]})  # as index.json lists them
    assert all(v for k, v in cast.items() if k != "self_sft"), cast  # C1-C8 each find the arm they compare
    assert (cast["grpo"], cast["grpo_easy"], cast["grpo_hard"]) == ("grpo", "grpo-easy", "grpo-hard")


def test_set_and_workers_reach_the_study(handed, tmp_path):
    argv = ["demo", "--out", str(tmp_path / "d"), "--set", "study.seeds=[7]", "--set", "study.train.steps=3",
            "--workers", "1"]
    assert cli.main(argv) == 0
    [(cfg, _)] = handed
    assert cfg.study.seeds == [7] and cfg.study.train.steps == 3 and cfg.study.workers == 1
    assert cli.main(["demo", "--set", "study.train.stepz=3"]) == 2  # a misspelt key is an error, not ignored
    assert len(handed) == 1


def test_a_study_directory_admits_one_study_at_a_time(tmp_path):
    with runner.study_lock(tmp_path / "s"):
        with pytest.raises(config.ConfigError, match="in use by another scalpel study"):
            with runner.study_lock(tmp_path / "s"):
                pass
    with runner.study_lock(tmp_path / "s"):  # released when the first study ends
        pass
