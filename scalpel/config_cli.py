"""``scalpel config resolve``: show the fully resolved, validated configuration."""

from __future__ import annotations

import argparse

from scalpel import config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect configuration files", description="Inspect configuration files.")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    r = csub.add_parser(
        "resolve",
        help="print the resolved, validated config as JSON",
        description="Load FILE (YAML), apply --set overrides, fill defaults and size presets, validate, and "
        "print the whole tree as JSON. Exit code 2 with a message naming the field if anything is invalid.",
    )
    r.add_argument("file", nargs="?", help="YAML config (omit for all defaults)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted-key override, e.g. --set microworld.seed=3 (repeatable; value parsed as YAML)")
    r.set_defaults(func=_resolve)


def _resolve(args: argparse.Namespace) -> int:
    print(config.to_json(config.load(args.file, args.overrides)))
    return 0
