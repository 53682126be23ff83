"""`scalpel study` end to end on the tiny study: what it produces, that a rerun redoes nothing, and errors."""

from __future__ import annotations

import json

import pytest

from scalpel.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


def test_index_lists_every_arm_seed_checkpoint_and_output(finished_study, index):
    assert index["format"] == "scalpel-study/1"
    assert {(r["arm"], r["seed"]) for r in index["runs"]} == {
        (a, s) for a in ("grpo", "sft", "sft-freeze-mlp", "sft-qk-only", "grpo-hard") for s in (0, 1)}
    assert index["jobs"]["failed"] == {} and index["jobs"]["done"] == index["jobs"]["total"]
    assert set(index["base"]["eval"]) == set(index["benchmarks"]["all"])
    assert index["benchmarks"]["in_domain"] == ["mw_maths_easy", "mw_maths_hard", "mw_fewshot_maths"]
    for r in index["runs"]:
        assert r["status"] == "complete"
        assert [c["step"] for c in r["checkpoints"]] == [0, 1, 2, 3]
        for c in r["checkpoints"]:
            assert (finished_study / c["path"] / "model.safetensors").is_file()
        assert [k["step"] for k in r["kl"]] == [1, 2, 3]
        assert sorted(r["weights"]["by_step"], key=int) == ["1", "2", "3"]
        assert r["train"]["curves"]["loss"]["step"] == [1, 2, 3]
        if r["arm"] == "grpo-hard":  # evaluate: false (claim C8 reads its training rewards): analysed, not evaluated
            assert r["eval"] == {} and r["passk"] == {} and r["samples"] == []
            continue
        assert sorted(r["eval"], key=int) == ["2", "3"]  # 2 evenly spaced evaluated checkpoints, final included
        assert set(r["eval"]["3"]) == set(index["benchmarks"]["all"])
        assert set(r["passk"]["3"]) == set(index["benchmarks"]["in_domain"])
    frozen = next(r for r in index["runs"] if r["arm"] == "sft-freeze-mlp")["weights"]["by_step"]["3"]["rel_fro"]
    assert frozen["gate"][1] == 0 and frozen["up"][1] == 0 and frozen["down"][1] == 0 and frozen["gate"][0] > 0
    qk = next(r for r in index["runs"] if r["arm"] == "sft-qk-only")["weights"]["by_step"]["3"]["rel_fro"]
    assert all(v == 0 for m in ("v", "o", "gate", "up", "down") for v in qk[m]) and all(v > 0 for v in qk["q"])
    hard = next(r for r in index["runs"] if r["arm"] == "grpo-hard")
    manifest = json.loads((finished_study / hard["dir"] / "checkpoint-3" / "manifest.json").read_text())
    assert all(q.startswith("maths_hard.") for block in manifest["questions"] for q in block)
    assert index["analysis"]["trace"] is None and not (finished_study / "logs" / "trace-base.log").exists()
    assert (finished_study / index["report"]["html"]).is_file() and (finished_study / "report/summary.md").is_file()
    claims = json.loads((finished_study / "claims.json").read_text())
    assert [c["id"] for c in claims["claims"]] == [f"C{i}" for i in range(1, 13)]
    assert claims["roles"] == {"grpo": "grpo", "sft": "sft", "sft_freeze_mlp": "sft-freeze-mlp",
                               "sft_qk_only": "sft-qk-only", "grpo_easy": "grpo", "grpo_hard": "grpo-hard",
                               "self_sft": None}
    # a component can lose a seed (a 3-step GRPO run whose groups all score alike does not move): not judged
    assert all(c["verdict"] in ("reproduced", "contradicted", "inconclusive", "not judged (one seed)")
               for c in claims["claims"])
    t = index["timings"]["phases"]
    assert {"base model (micro-world build or resolve)", "jobs (wall)", "report"} <= set(t)


def test_rerun_of_a_finished_study_redoes_nothing(finished_study, study_file, capsys):
    before = {p: p.stat().st_mtime_ns for p in (finished_study / "runs").rglob("model.safetensors")}
    evals = {p: p.stat().st_mtime_ns for p in (finished_study / "eval").rglob("samples.jsonl")}
    assert main(["study", str(study_file), "--out", str(finished_study)]) == 0
    out = capsys.readouterr().out
    assert "job(s) to run" not in out and "already done" in out
    assert "base model, greedy, held-out:" in out and "facts_mcq" in out  # the micro-world's table, up front
    assert before == {p: p.stat().st_mtime_ns for p in (finished_study / "runs").rglob("model.safetensors")}
    assert evals == {p: p.stat().st_mtime_ns for p in (finished_study / "eval").rglob("samples.jsonl")}


def test_a_changed_config_is_refused_before_any_compute(finished_study, study_file, capsys):
    code = main(["study", str(study_file), "--out", str(finished_study), "--set", "study.train.steps=4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "study.train.steps" in err and "another --out" in err


def test_a_study_written_before_a_field_was_added_still_resumes(study_file, tmp_path):
    """config.json of an older scalpel lacks fields added since (study.launch, arms[].trained): it is compared as
    this version reads it, so their defaults are no change."""
    from scalpel import config
    from scalpel.study.runner import check_config

    cfg = config.load(study_file)
    old = cfg.model_dump(mode="json")
    del old["study"]["launch"]
    for arm in old["study"]["arms"]:
        del arm["trained"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    check_config(cfg, tmp_path)
    with pytest.raises(config.ConfigError, match="study.train.steps"):
        check_config(config.load(study_file, ["study.train.steps=4"]), tmp_path)


def test_bad_study_inputs_name_the_field(tmp_path, capsys, study_file):
    assert main(["study", str(study_file), "--out", str(tmp_path / "x"), "--set", "study.workers=0"]) == 2
    assert "study.workers" in capsys.readouterr().err
    assert main(["study", str(study_file), "--out", str(tmp_path / "y"), "--set",
                 "study.arms.0.tiers=[olympiad]", "--set", "study.data.source=openr1"]) == 2
    assert "tiers" in capsys.readouterr().err
