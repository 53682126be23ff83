"""``scalpel eval``: a model dir on a suite of benchmarks -> per-sample JSONL, summaries with CIs and pass@k."""

from __future__ import annotations

import argparse
import logging
import sys

from scalpel.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    from scalpel.data.benchmarks import BENCHMARKS, SUITES

    suites = "; ".join(f"{k}: {', '.join(v)}" for k, v in SUITES.items())
    p = sub.add_parser(
        "eval", help="evaluate a model (base or checkpoint) on a benchmark suite",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate with the model's own chat template and its training system prompt, score, and write "
        "OUT/<benchmark>/samples.jsonl + summary.json (accuracy, 95% CI, pass@k, length, truncation) and "
        "OUT/table.md. Finished benchmarks are skipped on a rerun.\n\n"
        f"suites: {suites}\nbenchmarks: {', '.join(BENCHMARKS)}",
    )
    p.add_argument("--model", required=True, help="HF model dir (safetensors + tokenizer with chat template)")
    p.add_argument("--suite", default=None, help=f"benchmark suite ({', '.join(SUITES)})")
    p.add_argument("--benchmarks", default="", help="comma-separated benchmark names (added to --suite)")
    p.add_argument("--samples", type=int, default=1, help="completions per item (pass@k up to k=samples; default 1)")
    p.add_argument("--limit", type=int, default=None, help="first N items of every benchmark")
    p.add_argument("--out", default=None, help="output dir (default: eval/<model dir name>)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="generation backend (default hf)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (default 0.7; 0 = greedy)")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling (default 0.95)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="override every benchmark's token budget")
    p.add_argument("--seed", type=int, default=0, help="base seed (per-benchmark, per-sample seeds are recorded)")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per generation batch (hf backend)")
    sp = p.add_mutually_exclusive_group()
    sp.add_argument("--system-prompt", default=None,
                    help="system prompt to use instead of the checkpoint's (rendered as a system message)")
    sp.add_argument("--no-system-prompt", action="store_true", help="render no system message")
    p.add_argument("--data-dir", default=None,
                   help="dir with local benchmark files (default: $SCALPEL_BENCHMARKS or ../shared/data/benchmarks)")
    p.add_argument("--data", action="append", default=[], metavar="NAME=FILE",
                   help="local file for one benchmark, e.g. --data gpqa_diamond=gpqa.parquet (repeatable)")
    p.add_argument("--generic", action="append", default=[], metavar="FILE",
                   help="add a maths benchmark from a local jsonl/json/parquet/csv (see --generic-columns)")
    p.add_argument("--generic-columns", default="question=problem,answer=answer",
                   help="column mapping for --generic files (default question=problem,answer=answer[,id=COL])")
    p.add_argument("--world", default=None, help="micro-world dir for mw_* benchmarks (default: found above --model)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default="auto")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the model dir (off)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-benchmark log lines")
    p.set_defaults(func=_eval)


def _parse_kv(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for v in values:
        k, sep, path = v.partition("=")
        if not sep or not k or not path:
            raise UserError(f"{flag} {v!r}: expected NAME=FILE")
        out[k.strip()] = path.strip()
    return out


def config_from_args(args: argparse.Namespace):
    from scalpel.data.benchmarks import parse_columns
    from scalpel.evaluate.runner import EvalConfig

    cols = parse_columns(args.generic_columns)
    generic = [{"path": f, **cols} for f in args.generic]
    for name, v in (("--samples", args.samples), ("--limit", args.limit), ("--batch-size", args.batch_size),
                    ("--max-new-tokens", args.max_new_tokens), ("--threads", args.threads)):
        if v is not None and v < 1:
            raise UserError(f"{name} must be >= 1, got {v}")
    if args.temperature < 0 or not 0 < args.top_p <= 1:
        raise UserError("--temperature must be >= 0 and --top-p in (0, 1]")
    return EvalConfig(
        suite=args.suite, benchmarks=[b.strip() for b in args.benchmarks.split(",") if b.strip()],
        samples=args.samples, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        seed=args.seed, limit=args.limit, backend=args.backend, batch_size=args.batch_size,
        system_prompt=args.system_prompt, no_system_prompt=args.no_system_prompt, data_dir=args.data_dir,
        sources=_parse_kv(args.data, "--data"), world=args.world, generic=generic, threads=args.threads,
        trust_remote_code=args.trust_remote_code, dtype=args.dtype, progress=not args.quiet,
    )


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from scalpel.evaluate.runner import evaluate_model, format_table

    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    else:
        logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    cfg = config_from_args(args)
    out = Path(args.out) if args.out else Path("eval") / Path(args.model.rstrip("/")).name
    name = Path(args.model.rstrip("/")).name
    results = evaluate_model(args.model, out, cfg, name=name)
    print(format_table({name: results}, markdown=False))
    print(f"\nresults in {out}/ (samples.jsonl and summary.json per benchmark, table.md)")
    return 0
