"""The suite runner end to end: the micro-world base model's full suite table with CIs, the real benchmarks on a
10-item slice, resumability, skipped-and-counted unusable golds, and bad inputs failing before generation."""

from __future__ import annotations

import json
import shutil

import pytest

import scalpel.evaluate.runner as runner
from scalpel.cli import main
from scalpel.data import benchmarks as B
from scalpel.data import loaders
from scalpel.errors import UserError
from scalpel.evaluate.runner import (
    EvalConfig,
    evaluate_model,
    evaluate_models,
    format_table,
)


def _no_backend(*a, **k):
    raise AssertionError("the model was loaded although nothing needed generating")


def test_microworld_base_model_full_suite_table(test_world, tmp_path, monkeypatch, capsys):
    out = tmp_path / "base"
    cfg = EvalConfig(suite="microworld", samples=2, threads=1)
    res = evaluate_model(test_world.model_dir, out, cfg, name="base")
    assert list(res) == B.SUITES["microworld"]
    for name, s in res.items():
        task = B.get(name).options["task"]
        n = len(test_world.items(task, "heldout"))
        assert s["n_items"] == n and s["n_completions"] == 2 * n and s["samples_per_item"] == 2
        lo, hi = s["ci95"]
        assert 0 <= lo <= s["accuracy"] <= hi <= 1 and hi > lo
        assert set(s["pass_at_k"]) == {"pass@1", "pass@2"} and s["pass_at_k"]["pass@1"] == pytest.approx(
            s["accuracy"])
        assert s["skipped_unusable_gold"] == 0 and s["truncation_rate"] is not None
        assert s["system_prompt"]["text"] == test_world.system_prompt
        assert len(s["sampling"]["seeds"]) == 2 and s["sampling"]["temperature"] == 0.7
        rows = [json.loads(x) for x in (out / name / "samples.jsonl").read_text().splitlines()]
        assert len(rows) == 2 * n
        assert set(rows[0]) >= {"item_id", "prompt", "completion", "extracted", "gold", "correct", "seed"}
    table = (out / "table.md").read_text()
    assert all(name in table for name in res) and "95% CI" in table
    with capsys.disabled():
        print("\nmicro-world test-size base model, 2 samples/item, T=0.7 top_p=0.95\n" + format_table({"base": res},
                                                                                                     markdown=False))
    # resumable: nothing left to do -> the model is not even loaded; results identical
    monkeypatch.setattr(runner, "make_backend", _no_backend)
    again = evaluate_model(test_world.model_dir, out, cfg, name="base")
    assert again == json.loads((out / "summary.json").read_text())["benchmarks"] == res
    assert not list(out.rglob(".*tmp*"))  # atomic writes leave no temporaries
    # a changed setting is a different run: it is redone, not served from the old files
    with pytest.raises(AssertionError, match="model was loaded"):
        evaluate_model(test_world.model_dir, out, EvalConfig(suite="microworld", samples=1), name="base")


@pytest.mark.shared
def test_real_benchmarks_run_end_to_end_on_a_10_item_slice(test_world, shared_benchmarks, tmp_path):
    cfg = EvalConfig(suite="local", limit=10, max_new_tokens=24, data_dir=str(shared_benchmarks), threads=1)
    res = evaluate_model(test_world.model_dir, tmp_path / "real", cfg)
    assert list(res) == B.SUITES["local"]
    for name, s in res.items():
        assert s["n_items"] == 10 and s["accuracy"] is not None and s["ci95"][1] > 0, name
        assert s["origin"].startswith(str(shared_benchmarks))
        assert s["system_prompt"]["source"].endswith("manifest.json (system_prompt)")
        rows = [json.loads(x) for x in (tmp_path / "real" / name / "samples.jsonl").read_text().splitlines()]
        assert len(rows) == 10 and all(isinstance(r["correct"], bool) for r in rows)
    assert "ifeval" in res["ifeval"] and res["ifeval"]["ifeval"]["prompt_level_loose"] is not None
    # prompts longer than the model's context (the 5-shot ones, for the test model) are flagged, counted, scored
    # wrong -- never run past the positions the model knows
    ctx = json.loads((test_world.model_dir / "config.json").read_text())["max_position_embeddings"]
    for name in res:
        rows = [json.loads(x) for x in (tmp_path / "real" / name / "samples.jsonl").read_text().splitlines()]
        assert [r["prompt_too_long"] for r in rows] == [r["prompt_tokens"] >= ctx for r in rows]
        assert res[name]["prompt_too_long"] == sum(r["prompt_too_long"] for r in rows)
        assert not any(r["correct"] for r in rows if r["prompt_too_long"])


def test_rows_without_usable_gold_are_skipped_and_counted(test_world, tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"problem": "What is 2 + 3?", "answer": "5"},
        {"problem": "No gold here.", "answer": ""},
        {"problem": "Unparseable gold.", "answer": "\\text{}"},
    ]))
    cfg = EvalConfig(generic=[{"path": str(path), "question": "problem", "answer": "answer"}], max_new_tokens=8)
    s = evaluate_model(test_world.model_dir, tmp_path / "o", cfg)["maths_mine"]
    assert s["n_items"] == 1 and s["skipped_unusable_gold"] == 2
    assert s["skipped_item_ids"] == ["maths_mine.00001", "maths_mine.00002"]


def test_model_dir_without_weights_fails_before_generation(test_world, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "make_backend", _no_backend)
    monkeypatch.setattr(loaders, "read_source", lambda *a, **k: pytest.fail("data loaded before the model was checked"))
    broken = tmp_path / "ckpt"
    shutil.copytree(test_world.model_dir, broken)
    (broken / "model.safetensors").unlink()
    cfg = EvalConfig(suite="local")
    with pytest.raises(UserError, match="no weights"):
        evaluate_model(broken, tmp_path / "o", cfg)
    (broken / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="pickle weights"):
        evaluate_model(broken, tmp_path / "o", cfg)
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        evaluate_model(tmp_path / "does-not-exist", tmp_path / "o", cfg)
    with pytest.raises(UserError, match="model/"):
        evaluate_model(test_world.dir, tmp_path / "o", cfg)  # the world dir instead of its model/
    assert not (tmp_path / "o").exists()


def test_missing_benchmark_file_fails_before_the_model_is_loaded(test_world, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "make_backend", _no_backend)
    cfg = EvalConfig(benchmarks=["math500"], sources={"math500": str(tmp_path / "missing.jsonl")})
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        evaluate_model(test_world.model_dir, tmp_path / "o", cfg)


def test_vllm_backend_is_guarded(test_world, tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; this checks the message on machines without it")
    cfg = EvalConfig(benchmarks=["mw_instruct"], limit=1, backend="vllm")
    with pytest.raises(UserError, match="vLLM"):
        evaluate_model(test_world.model_dir, tmp_path / "o", cfg)


def test_study_phase_over_base_and_checkpoint(test_world, checkpoint_dir, tmp_path):
    cfg = EvalConfig(benchmarks=["mw_facts_mcq", "mw_instruct"], limit=4, world=str(test_world.dir),
                     max_new_tokens=8)
    res = evaluate_models({"base": test_world.model_dir, "sft/seed0/checkpoint-10": checkpoint_dir},
                          tmp_path / "eval", cfg)
    assert set(res) == {"base", "sft/seed0/checkpoint-10"}
    table = (tmp_path / "eval" / "table.md").read_text()
    assert table.count("mw_facts_mcq") == 2
    # same prompts for base (manifest system prompt) and checkpoint (template default)
    rows = {m: [json.loads(x) for x in (tmp_path / "eval" / m / "mw_instruct" / "samples.jsonl").read_text()
                .splitlines()] for m in res}
    assert [r["prompt"] for r in rows["base"]] == [r["prompt"] for r in rows["sft/seed0/checkpoint-10"]]


def test_cli_eval_and_user_errors(test_world, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["eval", "--model", str(test_world.model_dir), "--benchmarks", "mw_instruct,mw_maths_easy",
               "--limit", "3", "--samples", "2", "--max-new-tokens", "8", "--out", str(out), "--quiet",
               "--threads", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mw_instruct" in printed and "pass@2" in printed and (out / "mw_instruct" / "summary.json").is_file()
    assert main(["eval", "--model", str(tmp_path / "nope"), "--suite", "microworld", "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["eval", "--model", str(test_world.model_dir), "--benchmarks", "bogus", "--quiet"]) == 2
    assert "unknown benchmark 'bogus'" in capsys.readouterr().err
    assert main(["eval", "--model", str(test_world.model_dir), "--suite", "microworld", "--samples", "0"]) == 2
    assert main(["eval", "--model", str(test_world.model_dir), "--benchmarks", "gsm8k",
                 "--data", "gsm8k=" + str(tmp_path / "x.jsonl"), "--quiet"]) == 2
    assert "x.jsonl" in capsys.readouterr().err
