"""Batched vs one-prompt-at-a-time generation on the micro-world demo model, side by side in one run.

    .venv/bin/python benchmarks/generation_throughput.py [--world DIR] [--prompts 64] [--batch-size 32]

Both modes decode greedily the same held-out prompts (every micro-world task, rendered with the world's system
prompt exactly as ``scalpel eval`` renders them) with ``scalpel.evaluate.generate.generate``, so they do identical
work and must produce identical completions (checked). Measurements alternate between the two modes (``--repeats``)
so a change in machine load hits both; the best repeat of each is reported. The target is batched
>= 3x sequential throughput in new tokens per second. ``--check`` exits 1 below that.

Without ``--world`` the demo world is built (or reused from the cache: ``scalpel microworld build``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--world", default=None, help="micro-world dir (default: build/reuse the demo world)")
    ap.add_argument("--prompts", type=int, default=64, help="number of prompts (default 64)")
    ap.add_argument("--batch-size", type=int, default=32, help="batch size of the batched mode (default 32)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="new tokens per prompt at most (default 48)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    ap.add_argument("--repeats", type=int, default=2, help="alternating measurements per mode (default 2)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 if batched < 3x sequential")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from scalpel.evaluate.backends import load_tokenizer
    from scalpel.evaluate.generate import generate
    from scalpel.evaluate.prompting import render, resolve_system_prompt
    from scalpel.microworld import World, build

    torch.set_num_threads(args.threads)
    if args.world:
        world = World.open(args.world)
    else:
        from scalpel import config

        world = build(config.load(None, ["microworld.size=demo"]).microworld, progress=True)
    tok = load_tokenizer(world.model_dir)
    model = AutoModelForCausalLM.from_pretrained(world.model_dir, use_safetensors=True)
    system = resolve_system_prompt(tok, world.model_dir)
    tasks = ["maths_easy", "maths_hard", "facts_mcq", "fewshot_maths", "instruct"]
    pool = [it for t in tasks for it in world.items(t, "heldout")]
    items = [pool[(i * 7919) % len(pool)] for i in range(args.prompts)]  # a fixed mix of every task
    prompts = [render(tok, [{"role": "user", "content": it["question"]}], system)[1] for it in items]
    kw = dict(max_new_tokens=args.max_new_tokens, temperature=0.0, stop=["</answer>"])

    def sequential():
        return [generate(model, tok, [p], batch_size=1, **kw)[0] for p in prompts]

    def batched():
        return generate(model, tok, prompts, batch_size=args.batch_size, **kw)

    generate(model, tok, prompts[:2], batch_size=2, **kw)  # warm-up (allocator, kernels)
    times = {"sequential": [], "batched": []}
    outs = {}
    for _ in range(args.repeats):
        for name, fn in (("sequential", sequential), ("batched", batched)):
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    same = [a.text for a in outs["sequential"]] == [b.text for b in outs["batched"]]
    new_tokens = sum(c.num_tokens for c in outs["batched"])
    best = {k: min(v) for k, v in times.items()}
    result = {
        "world": str(world.dir), "size": world.manifest["config"]["size"], "prompts": len(prompts),
        "prompt_tokens_mean": sum(map(len, prompts)) / len(prompts), "new_tokens": new_tokens,
        "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "threads": args.threads,
        "seconds": times, "tokens_per_s": {k: new_tokens / v for k, v in best.items()},
        "speedup": best["sequential"] / best["batched"], "identical_completions": same,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"world {result['world']} ({result['size']}), {len(prompts)} prompts "
              f"(mean {result['prompt_tokens_mean']:.0f} tokens), {new_tokens} new tokens, greedy, "
              f"{args.threads} thread(s)")
        for k in ("sequential", "batched"):
            bs = 1 if k == "sequential" else args.batch_size
            print(f"  {k:<10} batch {bs:>3}: {best[k]:7.2f} s  {result['tokens_per_s'][k]:8.1f} new tokens/s   "
                  f"(repeats: {', '.join(f'{t:.2f}' for t in times[k])} s)")
        print(f"  speedup {result['speedup']:.1f}x (target >= 3x); identical completions: {same}")
    if not same:
        print("warning: batched and sequential completions differ (padding bug or numerical noise)", file=sys.stderr)
    return 1 if args.check and (result["speedup"] < 3 or not same) else 0


if __name__ == "__main__":
    sys.exit(main())
