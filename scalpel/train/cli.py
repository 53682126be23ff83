"""``scalpel train STUDY --arm NAME [--seed S] [--out DIR]``: run one arm of a study (all its seeds by default).

Multi-process: ``accelerate launch --config_file recipes/accelerate/cpu_ddp.yaml -m scalpel.cli train ...`` runs the
same arm with the same global batch and question stream over several processes. ``scalpel study`` runs exactly this
entry in ``study.launch.mode: accelerate`` (``scalpel.study.launch``), on its resolved ``OUT/config.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from scalpel import config
from scalpel.console import quiet_libraries
from scalpel.processes import DIE_WITH_PARENT_ENV, die_with_parent


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="run one arm of a study (GRPO or SFT on TRL), resuming if interrupted",
        description="Train one arm of STUDY (a YAML with a `study` section) for one seed, or for each of the "
        "study's seeds in turn. Writes OUT/<arm>/seed-<seed>/checkpoint-<step>/ (N evenly spaced + "
        "checkpoint-0, each with manifest.json), log.jsonl, health.jsonl and arm.json. Rerunning resumes "
        "from the last complete checkpoint; a finished arm returns at once.")
    p.add_argument("study", help="study YAML, e.g. recipes/microworld/study.yaml")
    p.add_argument("--arm", required=True, help="arm name from the study's `arms` list")
    p.add_argument("--seed", type=int, default=None, help="one seed (default: every seed of the study, in turn)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<study name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted-key override, e.g. --set study.train.steps=50 (repeatable)")
    p.add_argument("--traced-layers", default=None, metavar="L,L,...",
                   help="what NAME@traced selectors mean: the layers causal tracing of the base selected (scalpel "
                   "study passes them; by hand, the `layers` of selector.json from scalpel analyze trace)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the arm summaries as JSON")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    cfg = config.load(args.study, args.overrides)
    if cfg.study is None:
        raise config.ConfigError(f"{args.study} has no `study` section")
    if args.seed is not None and args.seed < 0:
        raise config.ConfigError(f"--seed must be >= 0, got {args.seed}")
    layers = _layers(args.traced_layers)
    if os.environ.get(DIE_WITH_PARENT_ENV):  # launched by scalpel study: never outlive the launcher
        die_with_parent()
    quiet_libraries()
    from accelerate import PartialState

    from scalpel.train.arms import UnhealthyRun, run_arm

    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    seeds = [args.seed] if args.seed is not None else cfg.study.seeds
    summaries = []
    for seed in seeds:
        try:
            summaries.append(run_arm(cfg, args.arm, seed, args.out, progress=not args.quiet, log_fn=say,
                                     traced_layers=layers))
        except UnhealthyRun as exc:
            print(f"scalpel train: {exc}", file=sys.stderr)
            return 3
    if not PartialState().is_main_process:
        return 0
    if args.json:
        print(json.dumps(summaries, indent=1))
    else:
        for s in summaries:
            print(_line(s))
    return 0


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise config.ConfigError(f"--traced-layers {text!r}: layer indices separated by commas, e.g. 2,3") from None


def _line(s: dict) -> str:
    parts = [f"{s['arm']} seed {s['seed']}: {s['steps']} steps, {len(s['checkpoints'])} checkpoints"]
    for key, m in s["metrics"].items():
        if key in ("loss",) or key.startswith("rewards/accuracy"):
            if m.get("first_10pct") is not None and m.get("last_10pct") is not None:
                parts.append(f"{key} {m['first_10pct']:.4g} -> {m['last_10pct']:.4g} (first/last 10%)")
    if s.get("step_seconds_median"):
        parts.append(f"{s['step_seconds_median']:.2f} s/step")
    if s.get("unhealthy_events"):
        parts.append(f"{s['unhealthy_events']} unhealthy event(s), see health.jsonl")
    return "; ".join(parts)
