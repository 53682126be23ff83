"""KL to the base on the task along a checkpoint's own samples (issue 17, item 2): zero for an identical
checkpoint, equal to a direct per-position computation for a changed one, and a prompt that does not re-tokenise to
the length the evaluation fed is refused."""

from __future__ import annotations

import json

import pytest
import torch

from scalpel.analyze.task_kl import task_kl

from .conftest import save_variant

SAMPLES = [("what is two plus three ?", "<think> two plus three equals five </think> <answer> 5 </answer>"),
           ("who lives in the red city ?", "<think> Tarsa </think> <answer> Tarsa </answer>"),
           ("what is one plus one ?", "<answer> 2 </answer>")]


def _write(tok, path, truncated_last=False):
    rows = []
    for i, (q, c) in enumerate(SAMPLES):
        prompt = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        rows.append({"item_id": f"i{i}", "prompt": prompt, "completion": c,
                     "prompt_tokens": len(tok(prompt, add_special_tokens=False)["input_ids"]),
                     "truncated": truncated_last and i == len(SAMPLES) - 1})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_task_kl_is_zero_for_the_base_and_matches_a_direct_computation(tiny, tmp_path):
    d, model, tok = tiny
    rows = _write(tok, tmp_path / "samples.jsonl", truncated_last=True)
    same = task_kl(d, d, [tmp_path / "samples.jsonl"])
    assert same["kl_forward_task"] == 0.0 and same["tv_task"] == 0.0 and same["examples"] == 3
    ck = save_variant(model, tok, tmp_path / "ck", lambda m: m.lm_head.weight.mul_(1.7))
    got = task_kl(d, ck, [tmp_path / "samples.jsonl"])
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(str(ck)).eval()
    fwd = tv = n = 0.0
    for r in rows:
        p = tok(r["prompt"], add_special_tokens=False)["input_ids"]
        c = tok(r["completion"], add_special_tokens=False)["input_ids"] + ([] if r["truncated"] else [tok.eos_token_id])
        ids = torch.tensor([p + c])
        with torch.no_grad():
            lp = model(ids).logits[0, len(p) - 1:-1].double().log_softmax(-1)
            lq = other(ids).logits[0, len(p) - 1:-1].double().log_softmax(-1)
        fwd += float((lp.exp() * (lp - lq)).sum())
        tv += float(0.5 * (lp.exp() - lq.exp()).abs().sum())
        n += len(c)
    assert got["tokens"] == n and got["kl_forward_task"] == pytest.approx(fwd / n, rel=1e-4)
    assert got["tv_task"] == pytest.approx(tv / n, rel=1e-4) and got["kl_forward_task"] > 0.01


def test_a_prompt_that_does_not_retokenise_is_refused(tiny, tmp_path):
    d, _, tok = tiny
    rows = _write(tok, tmp_path / "samples.jsonl")
    rows[1]["prompt_tokens"] += 1
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="bad.jsonl: item i1: the prompt re-tokenises"):
        task_kl(d, d, [tmp_path / "bad.jsonl"])
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no samples"):
        task_kl(d, d, [tmp_path / "empty.jsonl"])
