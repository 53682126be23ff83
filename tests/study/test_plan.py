"""Claim (issue 16, items 3 and 6): `scalpel study --plan` shows, for the paper's recipe on its GPU layout and
without loading or running anything, the launch layout, the questions and completions per optimizer step of every
arm, a memory estimate per GPU, the job graph with each training job's exact command, and every TRL config field
with scalpel's choices marked. The whole output is snapshotted (tests/study/plan_olmo2-7b.txt;
SCALPEL_UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change). The model's shape comes from OLMo-2-7B's
config.json (tests/fixtures/olmo2-7b-config, transcribed from the hub) in an offline hub cache."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scalpel.cli import main

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("plan_olmo2-7b.txt")
PAPER = ["study", "recipes/olmo2-7b/study.yaml", "--plan", "--out", "runs/paper"]
OLMO2_7B = REPO / "tests" / "fixtures" / "olmo2-7b-config"


@pytest.fixture(autouse=True)
def olmo2_config_cached(hub_cache, populate_cache):
    populate_cache(hub_cache, "allenai/OLMo-2-1124-7B-Instruct", OLMO2_7B)


def _plan(capsys, monkeypatch, *extra: str) -> str:
    monkeypatch.chdir(REPO)
    assert main(PAPER + list(extra)) == 0
    return capsys.readouterr().out


def _batch_row(text: str, arm: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if re.match(rf"^  {re.escape(arm)}\s+(grpo|sft)\s", ln))
    return re.split(r"\s{2,}", line.strip())


def test_the_papers_plan_matches_its_snapshot(capsys, monkeypatch):
    text = _plan(capsys, monkeypatch)
    if os.environ.get("SCALPEL_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text()


def test_figure_15_default_reading_is_112_completions_per_step(capsys, monkeypatch):
    text = _plan(capsys, monkeypatch)
    assert _batch_row(text, "grpo") == ["grpo", "grpo", "4", "112 completions (4 x 28)", "16 x 1 x 7", "571"]
    assert _batch_row(text, "sft") == ["sft", "sft", "112", "112 sequences (1 per question)", "16 x 1 x 7", "571"]
    assert "  * per_device_train_batch_size = 16" in text and "    gradient_accumulation_steps = 1" in text
    assert "precision: fp32 master weights" in text
    server = "vLLM server around it: CUDA_VISIBLE_DEVICES=7 trl vllm-serve --model allenai/OLMo-2-1124-7B-Instruct"
    assert server in text
    assert ("command: CUDA_VISIBLE_DEVICES=0,1,2,3,4,5,6 OMP_NUM_THREADS=1 SCALPEL_DIE_WITH_PARENT=1 python -m "
            "accelerate.commands.launch --config_file recipes/accelerate/zero2.yaml --num_processes 7") in text


def test_trls_reading_is_one_field_away(capsys, monkeypatch):
    """TRL reads Figure 15's 16 per device x 4 accumulation x 7 GPUs as 448 completions (16 questions) per step."""
    text = _plan(capsys, monkeypatch, "--set", "study.train.global_batch=448")
    assert _batch_row(text, "grpo") == ["grpo", "grpo", "16", "448 completions (16 x 28)", "16 x 4 x 7", "571"]
    assert "  * gradient_accumulation_steps = 4   (TRL default: 1)" in text


def test_a_layout_that_cannot_share_the_batch_is_refused(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(PAPER + ["--set", "study.launch.gpus=[0,1,2,3,4]", "--set", "study.launch.vllm_server.gpus=[5]"]) == 2
    assert "study.train.global_batch" in capsys.readouterr().err


def test_memory_per_gpu_of_the_papers_layout(capsys, monkeypatch):
    """OLMo-2-7B: 7.30B parameters. ZeRO-2 over 7 GPUs: bf16 weights 2P = 13.6 GiB, gradients 2P/7 = 1.9, fp32
    master + AdamW 12P/7 = 11.7; the vLLM server holds 13.6 GiB of weights and 112 completions x 2012 tokens x
    512 KiB per token (2 x 32 layers x 32 heads x 128 x 2 bytes) = 110.0 GiB of KV cache, more than one 80 GB GPU at
    0.7: vLLM pages it, running fewer completions at once."""
    text = _plan(capsys, monkeypatch)
    assert "7.30B parameters, from config.json of allenai/OLMo-2-1124-7B-Instruct in the Hugging Face cache" in text
    grpo = next(ln for ln in text.splitlines() if ln.startswith("  training grpo:"))
    assert "DeepSpeed ZeRO-2: weights 13.6 + gradients 1.9 + fp32 master and AdamW 11.7" in grpo
    assert "(b=16 x s=2012 tokens, logits fused)" in grpo
    qk = next(ln for ln in text.splitlines() if ln.startswith("  training sft-qk-only:"))
    assert "gradients 0.3 + fp32 master and AdamW 1.7" in qk  # only q_proj and k_proj train: T = 2 x 4096² x 32
    assert "generation (vLLM server): weights 13.6 + KV cache 110.0 (112 completions x 2012 tokens)" in text


def test_without_the_models_config_the_plan_says_how_to_get_it(capsys, monkeypatch):
    text = _plan(capsys, monkeypatch, "--set", "study.model=allenai/not-cached")
    assert "memory per GPU: needs the config.json of allenai/not-cached" in text and "hf download" in text
