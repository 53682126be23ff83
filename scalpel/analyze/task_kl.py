"""KL to the base on the training task, along the checkpoint's own samples (after Shenfeld et al. 2025, "RL's
Razor": this forward KL, not a weight-space distance, predicts forgetting).

Method. The rows are an evaluation's ``samples.jsonl`` of an in-domain benchmark for that checkpoint: the prompt
exactly as the model was fed (rendered text, tokenised without adding special tokens; checked against the recorded
``prompt_tokens``) and the checkpoint's sampled completion, plus the end-of-sequence token unless it was truncated.
At every completion position both models' next-token distributions are compared as in ``scalpel.analyze.kl``
(forward KL(base‖ckpt), reverse KL and total variation, token means). Deviation from RL's Razor, kept on purpose:
the questions are the task's held-out items (what the evaluation sampled), not the training questions themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from scalpel.analyze.kl import Example, batches, checkpoint_kl, completion_hidden, load_model, logprobs


def sample_examples(tokenizer, rows: list[dict], where: str = "samples") -> list[Example]:
    """Prompt + completion token ids of evaluation samples; ValueError when a prompt does not re-tokenise to the
    length the evaluation recorded (the scored positions would be misplaced)."""
    out = []
    for r in rows:
        prompt = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
        if "prompt_tokens" in r and len(prompt) != int(r["prompt_tokens"]):
            raise ValueError(f"{where}: item {r.get('item_id')}: the prompt re-tokenises to {len(prompt)} tokens, "
                             f"the evaluation fed {r['prompt_tokens']}")
        completion = tokenizer(r["completion"], add_special_tokens=False)["input_ids"]
        if str(r.get("truncated")) not in ("True", "true", "1"):
            completion = completion + [tokenizer.eos_token_id]
        if completion:
            out.append(Example(tuple(prompt + completion), len(prompt)))
    return out


def task_kl(base: str | Path, checkpoint: str | Path, samples: list[Path], max_examples: int | None = None,
            max_tokens: int = 4096) -> dict:
    """Token-mean forward/reverse KL and total variation of ``checkpoint`` against ``base`` on its own samples."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    rows = [(p, json.loads(line)) for p in samples for line in Path(p).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"no samples in {', '.join(map(str, samples))}")
    rows = rows[:max_examples]
    examples = [e for p, r in rows for e in sample_examples(tok, [r], str(p))]
    base_model, ck_model = load_model(base), load_model(checkpoint)
    sums = np.zeros(3)
    tokens = 0
    with torch.inference_mode():
        for b in batches(examples, max_tokens, "bucket", tok.pad_token_id or 0):
            lp = logprobs(base_model, completion_hidden(base_model, b))
            parts = checkpoint_kl(ck_model, b, lp)
            sums += [float(x.sum()) for x in parts]
            tokens += len(parts[0])
    fwd, rev, tv = (float(x) for x in sums / max(tokens, 1))
    return {"kl_forward_task": fwd, "kl_reverse_task": rev, "tv_task": tv, "tokens": tokens,
            "examples": len(examples)}
