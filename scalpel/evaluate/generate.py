"""Batched generation with transformers (CPU or GPU): left padding, KV cache, stop at EOS or a stop string.

Prompts are sorted by length and batched, so padding is small; results come back in the caller's order. Prompts
are either rendered strings (tokenized without adding special tokens: the chat template wrote them) or token id
lists (what ``apply_chat_template(tokenize=True)`` returned, so no re-tokenization can drift from training).
Sampling is seeded per (call seed, batch), so a rerun with the same batch size reproduces the same completions
on the same device. A prompt that leaves no room in the model's context (``max_position_embeddings``) gets an
empty, truncated completion with ``prompt_too_long=True`` instead of running past the positions the model knows;
other prompts get ``min(max_new_tokens, context - batch width)`` new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # hit max_new_tokens (or the context end) without EOS / stop string
    prompt_too_long: bool = False


def context_length(model) -> int | None:
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def generate(
    model,
    tokenizer,
    prompts: list[str] | list[list[int]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    stop: list[str] | None = None,
    progress: bool = False,
) -> list[Completion]:
    """Generate one completion per already-rendered prompt (the chat template has been applied by the caller).

    ``temperature == 0`` means greedy decoding. Text after a stop string is cut off, the stop string is kept
    (``</answer>`` is part of the format being scored).
    """
    if not prompts:
        return []
    tokenizer.padding_side = "left"  # a saved padding side does not always survive save/load
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [list(p) if not isinstance(p, str) else tokenizer(p, add_special_tokens=False)["input_ids"]
               for p in prompts]
    out: list[Completion | None] = [None] * len(prompts)
    ctx = context_length(model)
    runnable = []
    for i, ids in enumerate(encoded):
        if ctx is not None and len(ids) >= ctx:
            out[i] = Completion(text="", num_tokens=0, truncated=True, prompt_too_long=True)
        else:
            runnable.append(i)
    order = sorted(runnable, key=lambda i: len(encoded[i]))
    do_sample = temperature > 0
    gen_kwargs = dict(do_sample=do_sample, pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id)
    if do_sample:
        gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=None)
    else:
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    if stop:
        gen_kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    try:
        for b, idx in enumerate(tqdm(batches, desc="generate", unit="batch", disable=not progress)):
            width = max(len(encoded[i]) for i in idx)
            budget = max_new_tokens if ctx is None else max(1, min(max_new_tokens, ctx - width))
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i], dtype=torch.long)
                mask[row, width - len(encoded[i]) :] = 1
            if do_sample:
                torch.manual_seed(seed * 1_000_003 + b)
            with torch.no_grad():
                seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                      max_new_tokens=budget, **gen_kwargs)
            for row, i in enumerate(idx):
                new = seqs[row, width:].tolist()
                ended = tokenizer.eos_token_id in new
                if ended:
                    new = new[: new.index(tokenizer.eos_token_id)]
                while new and new[-1] == pad_id:
                    new.pop()
                text = tokenizer.decode(new, skip_special_tokens=True)
                stopped = False
                for s in stop or []:
                    at = text.find(s)
                    if at >= 0:
                        text, stopped = text[: at + len(s)], True
                out[i] = Completion(text=text, num_tokens=len(new), truncated=not (ended or stopped))
    finally:
        model.train(was_training)
    return out  # type: ignore[return-value]
