"""``scalpel microworld build|inspect``."""

from __future__ import annotations

import argparse

from scalpel import config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("microworld", help="build or inspect the synthetic world and its tiny base model",
                       description="The micro-world: synthetic maths + invented-fact tasks and a tiny "
                       "OLMo-2-architecture base model pretrained by scalpel, so a whole study runs on a CPU.")
    msub = p.add_subparsers(dest="microworld_command", metavar="ACTION", required=True)
    b = msub.add_parser("build", help="build (or reuse the cached) micro-world",
                        description="Generate the tasks, train the tokenizer, pretrain the base model and evaluate "
                        "it. Deterministic per (config, seed); cached by config hash, so a second build returns at "
                        "once.")
    b.add_argument("--size", choices=["test", "demo"], default=None, help="preset (default: demo)")
    b.add_argument("--seed", type=int, default=None, help="world + pretraining seed (default 0)")
    b.add_argument("--out", default=None, help="output directory (default: $SCALPEL_CACHE or ~/.cache/scalpel)")
    b.add_argument("--config", default=None, help="YAML config whose `microworld` section to use")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. --set microworld.pretrain.steps=1200")
    b.add_argument("--force", action="store_true", help="replace an existing micro-world of another config at --out")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_build)
    i = msub.add_parser("inspect", help="show sample items and the base model's held-out accuracy",
                        description="Print sample items of every task and the base model's greedy accuracy on "
                        "each held-out task (recorded at build time; --recompute re-runs it).")
    i.add_argument("dir", help="micro-world directory")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--recompute", action="store_true", help="re-evaluate instead of reading the build's record")
    i.set_defaults(func=_inspect)


def _build(args: argparse.Namespace) -> int:
    from scalpel.microworld import build
    from scalpel.microworld.inspect import report

    overrides = list(args.overrides)
    if args.size is not None:
        overrides.append(f"microworld.size={args.size}")
    if args.seed is not None:
        if args.seed < 0:
            raise config.ConfigError(f"--seed must be >= 0, got {args.seed}")
        overrides.append(f"microworld.seed={args.seed}")
    cfg = config.load(args.config, overrides).microworld
    world = build(cfg, args.out, force=args.force, progress=not args.quiet)
    print(report(world))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from scalpel.microworld import World
    from scalpel.microworld.inspect import report

    print(report(World.open(args.dir), as_json=args.json, recompute=args.recompute))
    return 0
