"""How long does a micro-world build take on this machine? (Acceptance: demo <= 5 min, test <= 30 s on 2 cores.)

Builds into a fresh temporary directory (no cache), prints per-phase seconds from the manifest and the ratio to the
budget. Usage: .venv/bin/python benchmarks/microworld_build.py [--size demo|test] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from scalpel import config
from scalpel.microworld import build

BUDGET = {"demo": 300.0, "test": 30.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", choices=["demo", "test"], default="demo")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    overrides = [f"microworld.size={args.size}", f"microworld.seed={args.seed}"]
    if args.threads:
        overrides.append(f"microworld.threads={args.threads}")
    cfg = config.load(None, overrides).microworld
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        world = build(cfg, os.path.join(tmp, "w"), progress=False, log=lambda *_: None)
        wall = time.perf_counter() - t0
    pt = world.manifest["pretrain"]
    print(json.dumps({
        "size": args.size, "threads": cfg.threads, "load_average_1min": os.getloadavg()[0],
        "wall_seconds": round(wall, 1), "pretrain_seconds": pt["seconds"],
        "other_seconds (world, tokenizer, eval, save)": round(wall - pt["seconds"], 1),
        "pretrain_tokens_per_second": pt["tokens_per_second"], "parameters": pt["parameters"],
        "budget_seconds": BUDGET[args.size], "fraction_of_budget": round(wall / BUDGET[args.size], 3),
        "base_accuracy": {t: a["accuracy"] for t, a in world.manifest["eval"].items()},
    }, indent=2))


if __name__ == "__main__":
    main()
