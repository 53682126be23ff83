"""Claim (issue 16, items 3-4): every command that takes a model accepts a hub id, resolved through huggingface_hub's
cache with HF_HUB_OFFLINE=1, and the analyses (weights, KL, tracing), evaluation and a study's jobs get the local
snapshot directory. The cache is a real one: laid out offline by huggingface_hub's own cache functions and read
back by its ``scan_cache_dir``; no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scalpel import hub

from .conftest import save_variant

REPO_ID = "allenai/tiny-olmo2-test"
@pytest.fixture()
def cached_tiny(tiny, hub_cache, populate_cache):
    d, model, tok = tiny
    return populate_cache(hub_cache, REPO_ID, d)


def test_the_cache_is_the_librarys_own_layout(cached_tiny, hub_cache, tiny, populate_cache):
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(hub_cache)
    assert not info.warnings
    (repo,) = info.repos
    assert repo.repo_id == REPO_ID and set(repo.refs) == {"main"}
    (rev,) = repo.revisions
    assert rev.commit_hash == populate_cache.commit
    assert {f.file_name for f in rev.files} == {p.name for p in tiny[0].iterdir()}


def test_hub_id_resolves_to_the_cached_snapshot_offline(cached_tiny):
    assert hub.local_model(REPO_ID) == cached_tiny
    assert (cached_tiny / "model.safetensors").is_file()


def test_local_paths_are_returned_unchanged(tiny, tmp_path):
    assert hub.local_model(tiny[0]) == tiny[0]
    assert hub.local_model(tmp_path / "missing") == tmp_path / "missing"  # callers report a missing directory


def test_uncached_and_partly_cached_ids_are_clear_errors(hub_cache, tiny, populate_cache):
    with pytest.raises(hub.HubModelError, match=r"is not in the Hugging Face cache .* HF_HUB_OFFLINE=1 is set: "
                       r"download it once .*`hf download allenai/not-there`"):
        hub.local_model("allenai/not-there")
    populate_cache(hub_cache, "allenai/partial", tiny[0], drop="model.safetensors")
    with pytest.raises(hub.HubModelError, match="is only partly in the Hugging Face cache"):
        hub.local_model("allenai/partial")


def test_weights_and_kl_take_a_hub_id_as_the_base(cached_tiny, tiny, tmp_path):
    from scalpel.analyze.kl import kl_curve
    from scalpel.analyze.weights import analyze_weights

    _, model, tok = tiny
    same = save_variant(model, tok, tmp_path / "arm" / "checkpoint-1")
    analyze_weights(REPO_ID, [same], tmp_path / "w", spectrum=False, figures=False, progress=False, threads=1)
    summary = json.loads((tmp_path / "w" / "weights.json").read_text())
    assert summary["base"] == str(cached_tiny)
    assert all(v == 0.0 for v in summary["mean_rel_fro"]["arm@1"].values())
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"question": "what is two plus three ?", "solution": "<answer> five </answer>"}) + "\n")
    kl = json.loads(kl_curve(REPO_ID, [same], data, tmp_path / "kl", figures=False, progress=False).read_text())
    assert kl["base"] == str(cached_tiny)
    assert kl["results"][0]["kl_forward"] == pytest.approx(0.0, abs=1e-6)


def test_tracing_takes_a_hub_id(cached_tiny, tiny, tmp_path):
    from scalpel.analyze.trace import causal_trace

    _, model, tok = tiny
    facts = []
    for prompt, subject in [("Tovak Brell lives in", "Tovak Brell"), ("Mira Oslin likes the", "Mira Oslin")]:
        ids = tok(tok.bos_token + prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            top = model(input_ids=torch.tensor([ids])).logits[0, -1].argmax().item()
        facts.append({"id": prompt, "subject": subject, "prompt": prompt,
                      "target": " " + tok.convert_ids_to_tokens(top)})
    path = tmp_path / "facts.jsonl"
    path.write_text("".join(json.dumps(f) + "\n" for f in facts))
    summary = json.loads(causal_trace(REPO_ID, path, tmp_path / "t", samples=1, figures=False,
                                      progress=False).read_text())
    assert summary["model"] == str(cached_tiny) and summary["n_known"] >= 1


def test_evaluation_takes_a_hub_id(test_world, hub_cache, populate_cache, tmp_path):
    """On the micro-world's model (its BPE tokenizer works with generate's stop strings; the tiny word-level one
    does not)."""
    from scalpel.evaluate.runner import EvalConfig, evaluate_model

    snapshot = populate_cache(hub_cache, "scalpel/microworld-test", test_world.model_dir)
    data = tmp_path / "maths.jsonl"
    data.write_text(json.dumps({"problem": "what is two plus three ?", "answer": "5"}) + "\n")
    cfg = EvalConfig(generic=[{"path": str(data), "name": "tiny_maths"}], max_new_tokens=4, temperature=0.0,
                     score_workers=1)
    res = evaluate_model("scalpel/microworld-test", tmp_path / "eval", cfg, name="base")
    assert res["tiny_maths"]["n_items"] == 1
    assert json.loads((tmp_path / "eval" / "tiny_maths" / "summary.json").read_text())["model_path"] == str(snapshot)


def test_a_study_resolves_a_hub_base_once_and_its_jobs_get_the_snapshot(cached_tiny, tmp_path):
    """What issue 16 found: KL/weights/trace jobs got the hub id and verify() refused it. Now prepare() resolves
    it, and every job's Context carries the snapshot directory; the trace job of a real model without a facts
    file is skipped with its reason, not failed."""
    from scalpel import config
    from scalpel.integrity import verify
    from scalpel.study.jobs import Job, run_job
    from scalpel.study.runner import prepare

    cfg = config.load(Path(__file__).parents[2] / "recipes" / "olmo2-7b" / "study.yaml",
                      [f"study.model={REPO_ID}", "study.arms=[{name: sft, algorithm: sft, lr: 1.0e-5}]",
                       "study.launch={mode: in-process}"])  # the recipe's GPU layout: this machine has no GPU
    ctx, _ = prepare(cfg, tmp_path / "study", say=lambda *_: None)
    assert ctx.base_model == str(cached_tiny) and ctx.world is None
    verify(ctx.base_model, tokenizer=False)
    result = run_job(ctx, Job("trace", "trace-base", {}), log=lambda *_: None)
    assert "no facts file" in result["skipped"]
    skipped = json.loads((tmp_path / "study" / "analysis" / "trace" / "skipped.json").read_text())
    assert skipped["reason"] == result["skipped"]
