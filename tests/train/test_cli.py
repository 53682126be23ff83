"""`scalpel train`: user errors exit 2 with the field named; a run prints its summary; OpenR1 data flows through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalpel import cli
from scalpel.train import checkpoints as C

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "recipes" / "microworld" / "smoke.yaml"

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_unknown_arm_and_missing_study_are_user_errors(capsys, test_world, tmp_path):
    code, _, err = run(capsys, "train", SMOKE, "--arm", "ppo", "--set", f"study.model={test_world.dir}",
                       "--out", tmp_path)
    assert code == 2 and "--arm 'ppo'" in err and "grpo, sft" in err
    f = tmp_path / "mw.yaml"
    f.write_text("microworld: {size: test}\n")
    code, _, err = run(capsys, "train", f, "--arm", "grpo")
    assert code == 2 and "no `study` section" in err
    code, _, err = run(capsys, "train", SMOKE, "--arm", "sft", "--set", "study.model=/nonexistent/model")
    assert code == 2 and "study.model" in err


def test_train_prints_a_summary_and_a_rerun_returns_at_once(capsys, test_world, quiet, tmp_path):
    argv = ["train", SMOKE, "--arm", "sft-qk-only", "--seed", "3", "--out", tmp_path, "--quiet", "--json",
            "--set", f"study.model={test_world.dir}", "--set", "study.train.steps=2", "--set",
            "study.train.checkpoints=1"]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    (summary,) = json.loads(out)
    assert summary["arm"] == "sft-qk-only" and summary["seed"] == 3 and summary["checkpoints"] == [0, 2]
    code, out2, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out2) == [summary]


def test_openr1_data_source_trains_both_algorithms(test_world, quiet, tmp_path):
    """A study on OpenR1-Math-220k rows (the repo's small fixture in the real schema): rejected rows are counted
    in every manifest, the SFT target is the R1 trace, GRPO gets the gold answer."""
    from scalpel import config
    from scalpel.train.arms import run_arm

    cfg = config.load(SMOKE, [f"study.model={test_world.dir}", "study.train.steps=2", "study.train.checkpoints=1",
                              "study.data.source=openr1",
                              f"study.data.openr1.path={REPO / 'tests/fixtures/openr1_math_sample.jsonl'}",
                              "study.data.openr1.max_tokens=500"])
    for arm in ("sft", "grpo"):
        run_arm(cfg, arm, 1, tmp_path, progress=False, log_fn=lambda *_: None)
    m = {arm: C.read_manifest(tmp_path / arm / "seed-1" / "checkpoint-2") for arm in ("sft", "grpo")}
    assert m["sft"]["questions"] == m["grpo"]["questions"] and len(m["sft"]["questions"][0]) == 2
    report = m["sft"]["data"]["report"]
    assert m["sft"]["data"]["source"] == "openr1" and report["kept"] == m["sft"]["data"]["pool"] > 0
    assert report["total"] == report["kept"] + sum(report["rejected"].values()) and report["rejected"]


def test_traced_layers_reach_the_arm_and_bad_ones_are_user_errors(capsys, monkeypatch):
    """`scalpel study` passes a traced arm's layers to the `scalpel train` it launches as --traced-layers."""
    from scalpel.train import arms

    seen = {}

    def fake_run_arm(cfg, arm, seed, out, **kw):
        seen.update(arm=arm, traced_layers=kw["traced_layers"])
        raise arms.UnhealthyRun("stop here")  # scalpel train's exit 3: nothing after the call matters here

    monkeypatch.setattr(arms, "run_arm", fake_run_arm)
    code, _, err = run(capsys, "train", SMOKE, "--arm", "sft", "--seed", "1", "--traced-layers", "2,3")
    assert code == 3 and seen == {"arm": "sft", "traced_layers": [2, 3]}
    code, _, err = run(capsys, "train", SMOKE, "--arm", "sft", "--traced-layers", "2,x")
    assert code == 2 and "--traced-layers '2,x'" in err
