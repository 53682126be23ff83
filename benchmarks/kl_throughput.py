"""KL-to-base throughput: ``scalpel.analyze.kl.kl_curve`` vs a naive padded loop, side by side.

Setup: the micro-world base model (``--world DIR``; default: build the test-size world under --dir) and 3
checkpoints = base + small Gaussian perturbations of every matrix, on MATH-500 (question + solution, from
../shared/data/benchmarks; the world's held-out maths + teacher solutions when absent), rendered with the base's
chat template. Both implementations render the same examples and score the same completion tokens.

- naive: for each checkpoint, batches of --batch examples in data order, right-padded to the batch's longest,
  full forward of base and checkpoint, log-softmax over the whole (batch × length × vocab) logits, KL masked to
  completion tokens. The base forward is repeated for every checkpoint.
- fast: ``kl_curve`` (length-bucketed batches of ≤ --max-tokens tokens, LM head and log-softmax only on completion
  positions, in row chunks, base log-probs computed once and reused), and the same with packing.

Reported: completion tokens scored per second (tokens × checkpoints / wall time, model loading included in both)
and the largest difference between the two implementations' KL values.

    .venv/bin/python benchmarks/kl_throughput.py --world /tmp/mw-demo
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def naive_kl(base: Path, cks: list[Path], examples, batch: int, pad: int) -> list[float]:
    from scalpel.analyze.kl import load_model

    base_model = load_model(base)
    out = []
    for ck in cks:
        model = load_model(ck)
        total, n = 0.0, 0
        for i in range(0, len(examples), batch):
            group = examples[i:i + batch]
            length = max(len(e.ids) for e in group)
            ids = torch.full((len(group), length), pad)
            mask = torch.zeros((len(group), length), dtype=torch.long)
            score = torch.zeros((len(group), length), dtype=torch.bool)
            for r, e in enumerate(group):
                ids[r, :len(e.ids)] = torch.tensor(e.ids)
                mask[r, :len(e.ids)] = 1
                score[r, e.start - 1:len(e.ids) - 1] = True
            with torch.no_grad():
                lp = torch.log_softmax(base_model(input_ids=ids, attention_mask=mask).logits.float(), -1)
                lq = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
                kl = (lp.exp() * (lp - lq)).sum(-1)
            total += kl[score].double().sum().item()
            n += int(score.sum())
        out.append(total / n)
        del model
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default=None, help="micro-world directory (default: build the test size)")
    ap.add_argument("--dir", default="/tmp/scalpel-bench-kl")
    ap.add_argument("--data", default=None, help="KL data (default: math500 if found, else the world)")
    ap.add_argument("--max-examples", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8, help="naive loop's batch size (examples)")
    ap.add_argument("--max-tokens", type=int, default=4096, help="fast path's tokens per batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scalpel.analyze import kl as K

    root = Path(args.dir)
    if args.world:
        world_dir = Path(args.world)
    else:
        from scalpel import config
        from scalpel.microworld import build

        world_dir = build(config.load(None, ["microworld.size=test"]).microworld, root / "world").dir
    base = world_dir / "model"
    cks = []
    for j, scale in enumerate((0.01, 0.03, 0.1)):
        ck = root / f"run/checkpoint-{(j + 1) * 100}"
        if not (ck / "model.safetensors").is_file():
            m = AutoModelForCausalLM.from_pretrained(str(base))
            gen = torch.Generator().manual_seed(j)
            with torch.no_grad():
                for p in m.parameters():
                    if p.dim() == 2:
                        p += scale * p.std() * torch.randn(p.shape, generator=gen)
            m.save_pretrained(str(ck))
            AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(ck))
        cks.append(ck)
    data = args.data
    if data is None:
        try:
            K.load_pairs("math500")
            data = "math500"
        except Exception:
            data = str(world_dir)
    tok = AutoTokenizer.from_pretrained(str(base))
    pairs = K.load_pairs(data)[0][:args.max_examples]
    examples = K.render(tok, pairs, max_length=2048)
    n_tok = sum(e.n_scored for e in examples)
    lengths = sorted(len(e.ids) for e in examples)
    print(f"{len(examples)} examples of {data}, {n_tok} completion tokens, lengths {lengths[0]}..{lengths[-1]} "
          f"(median {lengths[len(lengths) // 2]}), {len(cks)} checkpoints, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    res = {"data": data, "examples": len(examples), "tokens": n_tok, "checkpoints": len(cks)}
    t = time.perf_counter()
    naive = naive_kl(base, cks, examples, args.batch, tok.pad_token_id)
    res["naive_s"] = time.perf_counter() - t
    for mode in ("bucket", "pack"):
        t = time.perf_counter()
        out = K.kl_curve(base, cks, data, root / f"out-{mode}", max_examples=args.max_examples, mode=mode,
                         max_tokens=args.max_tokens, figures=False, progress=False)
        res[f"{mode}_s"] = time.perf_counter() - t
        fast = [r["kl_forward"] for r in json.loads(out.read_text())["results"]]
        res[f"{mode}_max_abs_diff"] = max(abs(a - b) for a, b in zip(fast, naive))
        res[f"{mode}_kl"] = fast
    res["naive_kl"] = naive
    res["load_avg_after"] = os.getloadavg()[0]
    tps = lambda s: n_tok * len(cks) / s  # noqa: E731
    print(f"{'implementation':28s} {'seconds':>8s} {'tokens/s':>10s} {'speed-up':>9s} {'max |ΔKL|':>10s}")
    print(f"{'naive padded loop':28s} {res['naive_s']:8.2f} {tps(res['naive_s']):10.0f} {1.0:9.2f}")
    for mode in ("bucket", "pack"):
        s = res[f"{mode}_s"]
        print(f"{'kl_curve (' + mode + ')':28s} {s:8.2f} {tps(s):10.0f} {res['naive_s'] / s:9.2f} "
              f"{res[mode + '_max_abs_diff']:10.2e}")
    print("KL per checkpoint (naive):", " ".join(f"{x:.4f}" for x in naive))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
