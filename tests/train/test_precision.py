"""Claim (issue 16, item 5): with dtype bfloat16 an arm keeps fp32 master weights and trains in bf16 autocast, so
a tiny learning rate still moves the weights; pure-bfloat16 (AdamW on bf16 weights) leaves almost all of them
where they were, and says so. One SFT step at lr 1e-6 on the test-size micro-world, on CPU."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _one_step(smoke_cfg, tmp_path, dtype: str, logs: list[str]):
    from scalpel import config
    from scalpel.train.arms import run_arm

    cfg = config.validate(config.apply_overrides(smoke_cfg.model_dump(mode="json"), [
        f"study.train.dtype={dtype}", "study.train.steps=1", "study.train.checkpoints=1",
        "study.train.warmup_ratio=0.0", "study.train.global_batch=4", "study.arms=[{name: sft, algorithm: sft, "
        "lr: 1.0e-6}]"]))
    run_arm(cfg, "sft", 1, tmp_path / dtype, progress=False, log_fn=logs.append)
    rd = tmp_path / dtype / "sft" / "seed-1"
    before, after = (load_file(str(rd / f"checkpoint-{s}" / "model.safetensors")) for s in (0, 1))
    return before, after


def _changed_share(before: dict, after: dict) -> float:
    """Share of the block matrices' entries that differ between two checkpoints (compared as float32)."""
    changed = total = 0
    for name, w in before.items():
        if any(m in name for m in MATRICES):
            a, b = w.float(), after[name].float()
            changed += int((a != b).sum())
            total += a.numel()
    return changed / total


@pytest.mark.slow
def test_tiny_lr_moves_fp32_master_weights_and_not_pure_bf16_ones(smoke_cfg, quiet, tmp_path):
    mixed_logs: list[str] = []
    before, after = _one_step(smoke_cfg, tmp_path, "bfloat16", mixed_logs)
    assert {w.dtype for w in after.values()} == {torch.float32}  # master weights, saved as they are
    mixed = _changed_share(before, after)
    pure_logs: list[str] = []
    before_bf16, after_bf16 = _one_step(smoke_cfg, tmp_path, "pure-bfloat16", pure_logs)
    pure = _changed_share(before_bf16, after_bf16)
    print(f"entries changed by one step at lr 1e-6: fp32 master {mixed:.1%}, pure bf16 {pure:.1%}")
    assert mixed > 0.9, mixed
    assert pure < 0.1, pure
    assert any("pure-bfloat16" in line and "rounds to nothing" in line for line in pure_logs)
    assert not any("rounds to nothing" in line for line in mixed_logs)
