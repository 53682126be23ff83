"""``scalpel analyze weights|kl|structure|trace``: the checkpoint analyses from the command line."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path


def _wrap(text: str) -> str:
    """Descriptions of raw-formatted parsers (kept raw for their examples) still wrap at 100 columns."""
    return textwrap.fill(text, 100, break_on_hyphens=False)


def _base_and_checkpoints(p: argparse.ArgumentParser, out: str) -> None:
    """The arguments every weight-space analysis shares: base, checkpoints, output directory, labels."""
    p.add_argument("--base", required=True, help="base model directory (safetensors)")
    p.add_argument("checkpoints", nargs="+", help="checkpoint directories (checkpoint-N names give the step)")
    p.add_argument("--out", default=out, help=f"output directory (default: {out})")
    p.add_argument("--label", action="append", default=None,
                   help="label (arm) for all checkpoints, or repeat once per checkpoint (default: parent dir)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="checkpoint analyses: weight updates, KL to base, causal tracing",
                       description="Analyses of a base model and its checkpoints (safetensors only; pickle "
                       "checkpoints are refused). Each writes a table/JSON and figures into --out.")
    asub = p.add_subparsers(dest="analyze_command", metavar="ANALYSIS", required=True)

    w = asub.add_parser(
        "weights", help="per layer × matrix update norms, sparsity and spectrum (Figs. 5/6)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("For every layer and matrix (q,k,v,o,gate,up,down) of each checkpoint versus the base: "
        "‖ΔW‖/‖W‖, ‖ΔW‖/√n, fraction unchanged (bit-identical; |Δ| ≤ atol; below bf16 resolution) and, unless "
        "--no-spectrum, effective rank / top-k energy of ΔW and its share in the base's top-k directions. "
        "Writes weights.csv (one row per checkpoint × layer × matrix), weights.json (settings, excluded tensors, "
        "column meanings) and figures/ (heatmap per checkpoint, GIF per run, per-type lines). Tensors are "
        "streamed from safetensors one at a time (sharded checkpoints too)."),
        epilog="example:\n  scalpel analyze weights --base runs/s/base runs/s/sft/42/checkpoint-* --out an/w")
    _base_and_checkpoints(w, "analysis/weights")
    w.add_argument("--no-spectrum", action="store_true", help="skip the SVD-based columns (much faster)")
    w.add_argument("--topk", type=int, default=8, help="k of the top-k spectrum columns (default 8)")
    w.add_argument("--atol", type=float, default=1e-6, help="|Δ| ≤ atol counts as unchanged (default 1e-6)")
    w.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="table format (default csv)")
    w.add_argument("--value", default="rel_fro", help="column mapped in the figures (default rel_fro)")
    w.add_argument("--per-label-scale", action="store_true",
                   help="one colour scale per label instead of one shared by all (GIF frames always share)")
    w.add_argument("--vmax", type=float, default=None, help="fix the colour scale's maximum (compare runs)")
    w.add_argument("--no-figures", action="store_true", help="table and JSON only")
    w.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.set_defaults(func=_weights)

    k = asub.add_parser(
        "kl", help="mean per-token KL(base‖ckpt) and reverse on question+solution texts (Fig. 4)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("Render each (question, solution) with the base's chat template and average, over the "
        "solution tokens, the KL between the next-token distributions of base and checkpoint, both directions. "
        "Writes kl.json, kl.csv and figures/kl_curve.png (one line per label/arm). The base's log-probs are "
        "computed once and reused for every checkpoint."),
        epilog=_wrap("--data: 'math500' (../shared/data/benchmarks/math500_test.jsonl or the hub), a micro-world "
                     "directory (held-out maths question + a solution in a neutral style no arm trains on; "
                     "--solution-field teacher or solution for the SFT-target or base-style text), or a JSON/JSONL "
                     "file.") + "\nexample:\n"
        "  scalpel analyze kl --base W/model runs/s/grpo/0/checkpoint-* --data W --out an/kl")
    k.add_argument("--base", required=True, help="base model directory")
    k.add_argument("checkpoints", nargs="+", help="checkpoint directories")
    k.add_argument("--data", required=True, help="math500 | micro-world dir | JSON/JSONL file")
    k.add_argument("--out", default="analysis/kl", help="output directory (default: analysis/kl)")
    k.add_argument("--label", action="append", default=None, help="as for `analyze weights`")
    k.add_argument("--system-prompt", default=None,
                   help="system prompt to render (default: whatever the chat template does without one)")
    k.add_argument("--question-field", default=None, help="field holding the question (default: auto)")
    k.add_argument("--solution-field", default=None, help="field holding the solution (default: auto)")
    k.add_argument("--max-examples", type=int, default=None, help="use the first N examples")
    k.add_argument("--max-length", type=int, default=2048, help="truncate rendered sequences (default 2048)")
    k.add_argument("--max-tokens", type=int, default=4096, help="tokens per forward batch (default 4096)")
    k.add_argument("--packing", action="store_true", help="pack sequences instead of length-bucketing")
    k.add_argument("--cache-gb", type=float, default=2.0, help="memory for cached base log-probs (default 2)")
    k.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    k.add_argument("--device", default="cpu")
    k.add_argument("--threads", type=int, default=2)
    k.add_argument("--no-figures", action="store_true")
    k.add_argument("--quiet", action="store_true")
    k.set_defaults(func=_kl)

    s = asub.add_parser(
        "structure", help="changed fraction at three tolerances, update rank, principal-weight share",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("For every layer and matrix of each checkpoint, against the base and against the "
        "run's previous checkpoint: the fraction of entries changed (not bit-identical; |Δ| > atol; |Δ| ≥ half a "
        "bf16 ULP of the reference weight), rank(ΔW)/min(shape), and the share of changed entries that are the "
        "reference's principal weights (definitions and sources in scalpel/analyze/update_structure.py). Writes "
        "structure.jsonl and structure.json (settings, column meanings, per-checkpoint summary)."),
        epilog="example:\n  scalpel analyze structure --base W/model runs/s/grpo/seed-0/checkpoint-* --out an/s")
    _base_and_checkpoints(s, "analysis/structure")
    s.add_argument("--atol", type=float, default=1e-5, help="|Δ| > atol counts as changed (default 1e-5)")
    s.add_argument("--topk", type=int, default=8, help="rank k of the principal-weight approximation (default 8)")
    s.add_argument("--principal-fraction", type=float, default=0.1,
                   help="fraction of entries that are principal weights (default 0.1)")
    s.set_defaults(func=_structure)

    t = asub.add_parser(
        "trace", help="causal tracing of fact recall (ROME; Fig. 12) and an MLP freezing selector",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_wrap("For facts the model answers correctly, corrupt the subject embeddings with noise "
        "(--noise × their std), restore one clean state (residual, MLP or attention output) at each layer and "
        "token, and average the indirect effect on the answer probability. Writes trace.json, figures/trace.png "
        "and selector.json: the layers whose MLP AIE exceeds --threshold, as a freezing selector (mlp@A-B)."),
        epilog="--facts: a micro-world's tasks/facts.jsonl (or the world dir), or a ROME known_1000.json.\n"
        "example:\n  scalpel analyze trace --model W/model --facts W/tasks/facts.jsonl --out an/trace")
    t.add_argument("--model", required=True, help="model directory")
    t.add_argument("--facts", required=True, help="facts file (JSONL micro-world or ROME JSON)")
    t.add_argument("--out", default="analysis/trace", help="output directory (default: analysis/trace)")
    t.add_argument("--noise", type=float, default=3.0, help="noise level in embedding stds (default 3)")
    t.add_argument("--samples", type=int, default=10, help="noise draws per fact (default 10)")
    t.add_argument("--window", type=int, default=None,
                   help="layers restored together for mlp/attn (default 10, or layers//4 under 20 layers)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-facts", type=int, default=None, help="trace at most N known facts")
    t.add_argument("--threshold", type=float, default=0.1, help="MLP AIE cut-off for the selector (default 0.1)")
    t.add_argument("--relative", action="store_true", help="threshold is a fraction of the largest MLP AIE")
    t.add_argument("--no-bos", action="store_true", help="do not prepend the BOS token to prompts")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--no-figures", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_trace)


def _weights(args: argparse.Namespace) -> int:
    from scalpel.analyze.weight_table import COLUMNS
    from scalpel.analyze.weights import analyze_weights

    if args.value not in COLUMNS:
        from scalpel.errors import UserError

        raise UserError(f"--value {args.value!r} is not a column; columns: {', '.join(COLUMNS)}")
    table = analyze_weights(args.base, args.checkpoints, args.out, labels=args.label,
                            spectrum=not args.no_spectrum, topk=args.topk, atol=args.atol, threads=args.threads,
                            fmt=args.format, figures=not args.no_figures, shared_scale=not args.per_label_scale,
                            vmax=args.vmax, value=args.value, progress=not args.quiet)
    summary = json.loads((Path(args.out) / "weights.json").read_text())
    print(f"wrote {table} ({len(summary['checkpoints'])} checkpoints, {len(summary['excluded'])} tensors excluded)")
    for key, means in summary["mean_rel_fro"].items():
        print(f"  {key}: mean ‖ΔW‖/‖W‖ " + " ".join(f"{m}={v:.3g}" for m, v in means.items()))
    return 0


def _kl(args: argparse.Namespace) -> int:
    from scalpel.analyze.kl import kl_curve

    path = kl_curve(args.base, args.checkpoints, args.data, args.out, labels=args.label, system=args.system_prompt,
                    max_examples=args.max_examples, max_length=args.max_length, max_tokens=args.max_tokens,
                    mode="pack" if args.packing else "bucket", cache_gb=args.cache_gb, dtype=args.dtype,
                    device=args.device, threads=args.threads, question_field=args.question_field,
                    solution_field=args.solution_field, figures=not args.no_figures, progress=not args.quiet)
    for r in json.loads(path.read_text())["results"]:
        print(f"{r['label']}@{r['step']}: KL(base‖ckpt) {r['kl_forward']:.4g} ± {r['kl_forward_se']:.2g}, "
              f"KL(ckpt‖base) {r['kl_reverse']:.4g} over {r['tokens']} tokens")
    print(f"wrote {path}")
    return 0


def _structure(args: argparse.Namespace) -> int:
    from scalpel.analyze.update_structure import analyze_structure

    path = analyze_structure(args.base, args.checkpoints, args.out, labels=args.label, atol=args.atol,
                             topk=args.topk, principal_fraction=args.principal_fraction)
    for r in json.loads(path.read_text())["summary"]:
        share = "n/a" if r["principal_share"] is None else f"{r['principal_share']:.3f}"
        print(f"{r['label']}@{r['step']} vs {r['reference']}: changed exact {r['changed_exact']:.4f}, "
              f"|Δ|>atol {r['changed_atol']:.4f}, ≥½ bf16 ULP {r['changed_half_ulp']:.4f}; update rank "
              f"{r['update_rank']:.3f}; principal share {share}")
    print(f"wrote {path}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    from scalpel.analyze.trace import causal_trace

    path = causal_trace(args.model, args.facts, args.out, noise=args.noise, samples=args.samples,
                        window=args.window, seed=args.seed, max_facts=args.max_facts, threshold=args.threshold,
                        relative=args.relative, bos=not args.no_bos, threads=args.threads,
                        figures=not args.no_figures, progress=not args.quiet)
    s = json.loads(path.read_text())
    print(f"{s['n_known']} of {s['n_facts']} facts known; p(answer) clean {s['p_clean_mean']:.3f}, corrupted "
          f"{s['p_corrupted_mean']:.3f}")
    for pos in ("last subject token", "last token"):
        print(f"  MLP AIE at {pos}: " + " ".join(f"{v:.3f}" for v in s["aie"]["mlp"][pos]))
    sel = s["selector"]
    print(f"selector (MLP AIE > {sel['cutoff']:.3g}): freeze: {json.dumps(sel['freeze'])}")
    print(f"wrote {path}")
    return 0
