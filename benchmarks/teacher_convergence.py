"""Does the micro-world's teacher carry capability the base lacks? SFT on its traces until held-out accuracy stops
rising, then compare with the base (the R1 analogue must make the model a better reasoner, not only a wordier one).

    .venv/bin/python benchmarks/teacher_convergence.py [--world DIR] [--steps 600] [--lr 1e-3] [--every 100]

Trains one SFT arm with scalpel's own trainer (TRL SFTTrainer) on the teacher traces of the chosen tiers' train
questions, saving a checkpoint every ``--every`` steps, and scores the base and every checkpoint greedily on the
held-out split of every task (``microworld.inspect.evaluate_base``: exact match on the extracted answer). Prints one
row per model and the gain of the best checkpoint over the base with a paired 95 % interval over items. The issue's
bar: >= 20 points on easy maths and clearly above the base on hard maths.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def study_config(world: str, steps: int, lr: float, batch: int, every: int, tiers: list[str], seed: int) -> dict:
    return {"study": {
        "name": "teacher-convergence", "model": world, "data": {"source": "microworld", "tiers": tiers},
        "match": "questions", "seeds": [seed],
        "train": {"steps": steps, "global_batch": 4 * batch, "lr_scheduler": "constant_with_warmup",
                  "warmup_ratio": 0.05, "max_grad_norm": 1.0, "checkpoints": max(1, steps // every),
                  "max_length": 512, "threads": 1},
        "grpo": {"num_generations": 4},
        "arms": [{"name": "sft", "algorithm": "sft", "lr": lr}],
    }}


def paired_gain(a: list[bool], b: list[bool]) -> tuple[float, list[float]]:
    """Mean of b − a over items (paired by position) and its 95 % CI: the claims' statistics with one seed."""
    import numpy as np

    from scalpel.study import stats

    est = stats.crossed([(np.asarray([b], dtype=float) - np.asarray([a], dtype=float), 1.0)])
    return est.mean, stats.difference_ci(est)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", default=None, help="built micro-world dir (default: build the demo world, cached)")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=16, help="SFT sequences per optimizer step")
    ap.add_argument("--every", type=int, default=100, help="checkpoint (and evaluation) interval in steps")
    ap.add_argument("--tiers", default="k12,olympiad", help="train tiers, comma-separated")
    ap.add_argument("--limit", type=int, default=300, help="held-out items per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    ap.add_argument("--json", default=None, help="also write the table here")
    args = ap.parse_args(argv)

    import torch

    from scalpel import config
    from scalpel.microworld import World, build
    from scalpel.microworld.inspect import evaluate_base, load_model
    from scalpel.train.arms import run_arm
    from scalpel.train.checkpoints import complete_checkpoints
    from scalpel.train.cli import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(1)
    world = World.open(args.world) if args.world else build(config.load().microworld, progress=True)
    cfg = config.validate(study_config(str(world.dir), args.steps, args.lr, args.batch, args.every,
                                       args.tiers.split(","), args.seed), "teacher_convergence")
    out = Path(args.out or tempfile.mkdtemp(prefix="teacher-convergence-"))
    run_arm(cfg, "sft", args.seed, out, progress=True)
    run = out / "sft" / f"seed-{args.seed}"
    rows = {}
    for name, path in [("base", world.model_dir)] + [(f"step {s}", p) for s, p in complete_checkpoints(run).items()
                                                    if s > 0]:
        model, tok = load_model(path)
        rows[name] = evaluate_base(world, model=model, tokenizer=tok, limit=args.limit, details=True)
        print(name, {t: round(r["accuracy"] * 100, 1) for t, r in rows[name].items()}, flush=True)
    tasks = list(rows["base"])
    print(f"\nSFT on teacher traces ({args.tiers}), lr {args.lr}, {args.batch} sequences/step; greedy held-out "
          f"accuracy % on {args.limit} items per task (world {world.dir})")
    print(f"{'model':<12}" + "".join(f"{t:>15}" for t in tasks))
    for name, r in rows.items():
        print(f"{name:<12}" + "".join(f"{r[t]['accuracy'] * 100:>15.1f}" for t in tasks))
    best = max((n for n in rows if n != "base"), key=lambda n: rows[n]["maths_easy"]["accuracy"])
    print(f"\nbest checkpoint on easy maths: {best}; gain over base, points [paired 95 % CI over items]:")
    for t in tasks:
        m, ci = paired_gain(rows["base"][t]["per_item"], rows[best][t]["per_item"])
        print(f"  {t:<15} {m * 100:+6.1f} [{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "best": best}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
