"""``scalpel study FILE`` and ``scalpel demo``: the whole study in one resumable command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scalpel import config

DEMO = Path(__file__).with_name("demo.yaml")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study", help="the whole study: base -> arms x seeds -> evaluation -> analyses -> report (resumable)",
        description="Build the micro-world if needed, train every arm for every seed, evaluate the base and the "
        "arms' checkpoints, run the analyses (KL, weights, causal tracing), compute the paper's claims over seeds "
        "and write OUT/index.json, OUT/claims.json and OUT/report/index.html. Rerun after a crash or kill: only "
        "unfinished work is redone. Jobs run side by side in study.workers processes; logs in OUT/logs/.")
    p.add_argument("study", help="study YAML (e.g. recipes/microworld/study.yaml)")
    p.add_argument("--plan", action="store_true", help="print what the study would do (launch layout, batch per "
                   "optimizer step, memory per GPU, jobs with their exact commands, every TRL config field) and exit; "
                   "loads and runs nothing. The layout is study.launch's (e.g. --set study.launch.processes=2)")
    _common(p)
    p.set_defaults(func=_study)
    d = sub.add_parser(
        "demo", help="the micro-world study at default settings (what `make demo` runs)",
        description=f"Run the demo study ({DEMO.name}: base + GRPO + SFT + SFT with mid-layer MLPs frozen + SFT "
        "training only Q/K, matched on both maths tiers, + GRPO on each tier alone, 3 seeds) on the demo-size "
        "micro-world, with every analysis and the report. On 2 idle CPU cores: about 3 minutes for the one-off "
        "micro-world build, then about 12 minutes of jobs (most of it SFT training).")
    _common(d)
    d.set_defaults(func=_demo, study=str(DEMO))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="study directory (default: studies/<study name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted-key override, e.g. --set study.seeds=[0] (repeatable)")
    p.add_argument("--workers", type=int, default=None, help="jobs side by side (default: study.workers)")


def _study(args: argparse.Namespace) -> int:
    from scalpel.console import quiet_libraries
    from scalpel.study.runner import StudyFailed, run_study

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"study.workers={args.workers}")
    cfg = config.load(args.study, overrides)
    if cfg.study is None:
        raise config.ConfigError(f"{args.study} has no `study` section")
    out = Path(args.out) if args.out else Path("studies") / cfg.study.name
    if getattr(args, "plan", False):
        from scalpel.study.plan import describe

        print(describe(cfg, out), end="")
        return 0
    quiet_libraries()
    try:
        index = run_study(cfg, out, say=lambda *a: print(*a, flush=True))
    except StudyFailed as exc:
        print(f"scalpel study: {exc}", file=sys.stderr)
        return 1
    print(f"index: {index}")
    summary = index.parent / "report" / "summary.md"
    if summary.is_file():
        print(summary.read_text().split("## Benchmarks")[0])
    return 0


def _demo(args: argparse.Namespace) -> int:
    return _study(args)
