"""Claim (issue 16, items 3 and 6): `scalpel study --plan` shows, for the paper's recipe on its GPU layout and
without loading or running anything, the questions and completions per optimizer step of every arm, the job graph,
the command lines, and every TRL config field with scalpel's choices marked. The whole output is snapshotted
(tests/study/plan_olmo2-7b.txt; SCALPEL_UPDATE_SNAPSHOTS=1 rewrites it after a deliberate change)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scalpel.cli import main

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("plan_olmo2-7b.txt")
PAPER = ["study", "recipes/olmo2-7b/study.yaml", "--plan", "--processes", "7", "--gpu", "--out", "runs/paper"]


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
    assert "CUDA_VISIBLE_DEVICES=7 trl vllm-serve --model allenai/OLMo-2-1124-7B-Instruct" in text


def test_trls_reading_is_one_field_away(capsys, monkeypatch):
    """TRL reads Figure 15's 16 per device x 4 accumulation x 7 GPUs as 448 completions (16 questions) per step."""
    text = _plan(capsys, monkeypatch, "--set", "study.train.global_batch=448")
    assert _batch_row(text, "grpo") == ["grpo", "grpo", "16", "448 completions (16 x 28)", "16 x 4 x 7", "571"]
    assert "  * gradient_accumulation_steps = 4   (TRL default: 1)" in text


def test_a_layout_that_cannot_share_the_batch_is_refused(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(PAPER[:4] + ["5", "--gpu"]) == 2
    assert "study.train.global_batch" in capsys.readouterr().err
