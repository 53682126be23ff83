"""Packed rows vs padded batches for micro-world pretraining, side by side in one run on the same model and corpus.

The naive way (what pretraining did before): batches of ``--docs`` documents, length-sorted within windows of 4
batches, right-padded to the longest. Ours: the same documents packed into rows of ``row_length`` tokens, each
attending only to itself (``pretrain.pack``). Both run ``--steps`` optimizer steps from the same initial weights;
the script prints real (non-padding) tokens per second of each and their ratio.

    .venv/bin/python benchmarks/pretrain_packing.py [--size demo] [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch

from scalpel import config
from scalpel.data.prompts import MICROWORLD_SYSTEM_PROMPT
from scalpel.microworld.pretrain import encode_corpus, make_model, pack, packed_rows
from scalpel.microworld.tokenizer import train_tokenizer
from scalpel.microworld.world import generate


def padded_batches(lengths: list[int], docs: int, rng: random.Random, window: int = 4) -> list[list[int]]:
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for w in range(0, len(order), docs * window):
        chunk = sorted(order[w: w + docs * window], key=lambda i: lengths[i])
        batches += [chunk[i: i + docs] for i in range(0, len(chunk), docs)]
    rng.shuffle(batches)
    return batches


def run(model, opt, steps: int, make_batch) -> tuple[float, int, int]:
    tokens = slots = 0
    t0 = time.perf_counter()
    for step in range(steps):
        kwargs, real = make_batch(step)
        loss = model(**kwargs, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += real
        slots += kwargs["input_ids"].numel()
    return time.perf_counter() - t0, tokens, slots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["demo", "test"], default="demo")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--docs", type=int, default=32, help="documents per padded batch (the old default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, e.g. microworld.pretrain.row_length=512 (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = config.load(None, [f"microworld.size={args.size}", *args.set]).microworld
    world = generate(cfg)
    tok = train_tokenizer([d.text or f"{d.question}\n{d.answer}" for d in world.corpus], cfg.model.vocab_size)
    seqs, starts, _ = encode_corpus(world.corpus, tok, MICROWORLD_SYSTEM_PROMPT, cfg.model.max_position_embeddings)
    lengths = [len(s) for s in seqs]
    pad = tok.pad_token_id
    row_length = max(cfg.pretrain.row_length, max(lengths))

    batches = padded_batches(lengths, args.docs, random.Random(0))

    def padded(step):
        idx = batches[step]
        width = max(lengths[i] for i in idx)
        ids = torch.full((len(idx), width), pad)
        labels = torch.full((len(idx), width), -100)
        for r, i in enumerate(idx):
            ids[r, : lengths[i]] = torch.tensor(seqs[i])
            labels[r, starts[i]: lengths[i]] = ids[r, starts[i]: lengths[i]]
        return {"input_ids": ids, "labels": labels}, sum(lengths[i] for i in idx)

    rows = packed_rows(lengths, row_length, random.Random(0))
    per_step = cfg.pretrain.batch_size

    def packed(step):
        chunk = rows[step * per_step: (step + 1) * per_step]
        ids, labels, positions = pack(chunk, seqs, starts, row_length, pad)
        return ({"input_ids": ids, "labels": labels, "position_ids": positions},
                sum(lengths[i] for r in chunk for i in r))

    results = {}
    for name, make_batch in (("padded", padded), ("packed", packed)):
        model = make_model(cfg, tok)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain.lr)
        run(model, opt, 2, make_batch)  # warm-up (allocator, kernels)
        seconds, tokens, slots = run(model, opt, args.steps, make_batch)
        results[name] = {"tokens_per_second": round(tokens / seconds), "padding_share": round(1 - tokens / slots, 3),
                         "tokens_per_step": round(tokens / args.steps)}
    results["speed-up (packed / padded tokens per second)"] = round(
        results["packed"]["tokens_per_second"] / results["padded"]["tokens_per_second"], 2)
    print(json.dumps({"size": args.size, "threads": args.threads, "row_length": row_length, **results}, indent=2))


if __name__ == "__main__":
    main()
