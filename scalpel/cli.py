"""The ``scalpel`` command. Each concept module registers its own subcommands, so this file stays an index.

Errors a user can fix (``scalpel.errors.UserError``: bad config, bad path, bad argument; and a missing or existing
file) are printed as one clear message with exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from scalpel.errors import UserError

# Modules exposing ``register(subparsers)``; order = order in ``scalpel --help``.
COMMAND_MODULES = [
    "scalpel.config_cli",
    "scalpel.microworld.cli",
    "scalpel.analyze.cli",
    "scalpel.evaluate.cli",
    "scalpel.grading.cli",
    "scalpel.train.cli",
    "scalpel.study.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scalpel",
        description="Controlled RL-vs-SFT post-training studies: matched GRPO and SFT arms, evaluation, "
        "checkpoint analyses (KL, weight updates, causal tracing) and one report. Runs on a CPU with the "
        "built-in micro-world, or on a GPU node with a real model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, FileExistsError) as exc:
        print(f"scalpel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
