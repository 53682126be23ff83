"""The suite runner: (model, benchmark) pairs -> per-sample JSONL + a summary with CIs and pass@k. Resumable.

Layout of ``out_dir`` for one model::

    <benchmark>/samples.jsonl   one row per (item, sample): item id, rendered prompt, completion, extracted answer,
                                gold, correct, tokens, truncated, seed
    <benchmark>/summary.json    accuracy, 95 % CI, pass@k, mean completion tokens, truncation rate, skipped rows,
                                sampling parameters, seeds, system prompt and its source, data origin, run key
    summary.json, table.md      every benchmark of this model

A pair is finished when its summary.json exists with the same run key (model, benchmark, samples, sampling,
limit, system prompt); finished pairs are skipped, so a rerun only does what is missing, and a model whose pairs
are all finished is not even loaded. Files are written to a temporary name and renamed (atomic). For a study,
``evaluate_models({"base": dir, "grpo/seed0/checkpoint-20": dir, ...}, out_root)`` runs the same over many models
into ``out_root/<name>/`` and writes one combined table.

Order of failure: bad model dir, unknown benchmark, unreadable data (missing file / wrong columns) all fail before
the model is loaded or anything is generated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from scalpel import atomic, grading
from scalpel.data import benchmarks as B
from scalpel.data.prompts import PAPER_SYSTEM_PROMPT
from scalpel.errors import UserError
from scalpel.evaluate import metrics, prompting, scoring
from scalpel.evaluate.backends import (
    check_model_dir,
    is_hub_id,
    load_tokenizer,
    make_backend,
)
from scalpel.hub import local_model
from scalpel.safetensors import weight_files

log = logging.getLogger(__name__)
RESULT_FORMAT = "scalpel-eval/1"


@dataclass
class EvalConfig:
    """What to evaluate and how. Defaults are the paper's sampling (temperature 0.7, top_p 0.95)."""

    suite: str | None = None  # a name in scalpel.data.benchmarks.SUITES
    benchmarks: list[str] = field(default_factory=list)  # names; added to the suite's
    samples: int = 1  # completions per item (pass@k for k = 1, 2, 4, ... <= samples)
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int | None = None  # None: each benchmark's own budget
    seed: int = 0
    limit: int | None = None  # first N items of each benchmark
    backend: str = "hf"
    batch_size: int = 32
    system_prompt: str | None = None  # explicit override, rendered as a system message
    no_system_prompt: bool = False
    data_dir: str | None = None
    sources: dict[str, str] = field(default_factory=dict)  # benchmark -> local file
    world: str | None = None  # micro-world dir (auto-detected above the model dir)
    generic: list[dict] = field(default_factory=list)  # [{path, question, answer, id, name}]
    threads: int | None = None  # torch CPU threads
    trust_remote_code: bool = False
    dtype: str = "auto"
    progress: bool = False
    score_workers: int | None = None  # maths grading processes (None: the shared grader's, scalpel.grading)

    def benchmark_list(self) -> list[B.Benchmark]:
        names = (B.suite(self.suite) if self.suite else []) + [n for n in self.benchmarks if n]
        out, seen = [], set()
        for n in names:
            if n not in seen:
                seen.add(n)
                out.append(B.get(n))
        for g in self.generic:
            b = B.generic_maths(g["path"], question=g.get("question", "problem"), answer=g.get("answer", "answer"),
                                id=g.get("id"), name=g.get("name"))
            out.append(b)
        if not out:
            raise UserError("nothing to evaluate: pass --suite NAME and/or --benchmarks a,b (or --generic FILE)")
        return out


def _model_identity(model: str | Path) -> dict:
    if is_hub_id(model):
        return {"model": str(model)}
    p = Path(model).resolve()
    weights = weight_files(p)
    return {"model": str(p), "weights": [[w.name, w.stat().st_size, int(w.stat().st_mtime)] for w in weights]}


def find_world(model: str | Path, explicit: str | Path | None):
    """The micro-world for micro-world benchmarks: ``explicit``, else a world manifest at or above the model."""
    from scalpel.microworld import World, WorldError

    if explicit is not None:
        try:
            return World.open(explicit)
        except WorldError as exc:
            raise UserError(f"--world: {exc}") from exc
    if is_hub_id(model):
        return None
    d = Path(model).resolve()
    for cand in [d, *list(d.parents)[:3]]:
        mf = cand / "manifest.json"
        if mf.is_file():
            try:
                if json.loads(mf.read_text()).get("format", "").startswith("scalpel-microworld"):
                    return World.open(cand)
            except (OSError, ValueError, AttributeError):
                continue
    return None


def _benchmark_seed(base: int, name: str) -> int:
    return base * 100_003 + zlib.crc32(name.encode()) % 100_000


def _run_key(identity: dict, bench: B.Benchmark, cfg: EvalConfig, max_new: int, system: prompting.SystemPrompt,
             origin: str) -> str:
    blob = {"format": RESULT_FORMAT, "model": identity, "benchmark": bench.name, "origin": origin,
            "samples": cfg.samples, "temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": max_new,
            "seed": cfg.seed, "limit": cfg.limit, "system": system.to_json(), "backend": cfg.backend}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _finished(path: Path, key: str) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("key") == key else None


def _usable_golds(bench: B.Benchmark, items: list[B.Item], grader: grading.Grader) -> list[bool]:
    ok = [it.gold is not None for it in items]
    if bench.scorer in ("maths", "gsm8k"):
        idx = [i for i, o in enumerate(ok) if o]
        checked = scoring.check_golds([items[i].gold for i in idx], grader=grader)
        for i, c in zip(idx, checked):
            ok[i] = c
    elif bench.scorer == "ifeval":
        from scalpel.evaluate import ifeval

        known = set(ifeval.instruction_ids())
        ok = [o and all(i in known for i in it.extra["ifeval"]["instruction_id_list"]) for o, it in zip(ok, items)]
    return ok


def summarize(rows: list[dict], samples: int) -> dict:
    """Metrics over per-sample rows of one (model, benchmark)."""
    by_item: dict[str, list[dict]] = {}
    for r in rows:
        by_item.setdefault(r["item_id"], []).append(r)
    per_item = [[bool(r["correct"]) for r in sorted(rs, key=lambda r: r["sample"])] for rs in by_item.values()]
    acc = metrics.accuracy_ci(per_item)
    out = {
        "accuracy": acc["accuracy"], "ci95": acc["ci95"], "stderr": acc["stderr"], "n_items": acc["n_items"],
        "samples_per_item": samples, "n_completions": len(rows), "n_effective": acc["n_effective"],
        "pass_at_k": metrics.pass_at_ks(per_item),
        "mean_completion_tokens": (sum(r["num_tokens"] for r in rows) / len(rows)) if rows else None,
        "truncation_rate": (sum(bool(r["truncated"]) for r in rows) / len(rows)) if rows else None,
        "prompt_too_long": sum(bool(r.get("prompt_too_long")) for r in rows),
        "no_answer_extracted": sum(r["extracted"] is None for r in rows),
        "scoring_errors": sum(r.get("error") is not None for r in rows),
    }
    if rows and rows[0].get("details") and "loose" in rows[0]["details"]:  # IFEval's other three numbers
        loose = [[bool(r["details"]["loose"]) for r in rs] for rs in by_item.values()]
        out["ifeval"] = {
            "prompt_level_strict": acc["accuracy"],
            "prompt_level_loose": metrics.accuracy_ci(loose)["accuracy"],
            "prompt_level_loose_ci95": metrics.accuracy_ci(loose)["ci95"],
            "instruction_level_strict": _mean([x for r in rows for x in r["details"]["strict_per_instruction"]]),
            "instruction_level_loose": _mean([x for r in rows for x in r["details"]["loose_per_instruction"]]),
        }
    return out


def _mean(xs: list) -> float | None:
    return sum(map(bool, xs)) / len(xs) if xs else None


def evaluate_model(model: str | Path, out_dir: str | Path, cfg: EvalConfig | None = None, *,
                   name: str | None = None) -> dict[str, dict]:
    """Evaluate one model on the configured benchmarks; returns {benchmark: summary}. Resumable (module doc)."""
    cfg = cfg or EvalConfig()
    out_dir = Path(out_dir)
    name = name or Path(str(model)).name
    model = local_model(model, trust_remote_code=cfg.trust_remote_code)  # a hub id: its cached snapshot
    check_model_dir(model)  # 1. fail fast on a bad model dir
    benches = cfg.benchmark_list()  # 2. unknown benchmark names
    if cfg.samples < 1:
        raise UserError(f"--samples must be >= 1, got {cfg.samples}")
    tokenizer = load_tokenizer(model, cfg.trust_remote_code)
    world = None
    if any(b.scorer == "microworld" for b in benches):
        world = find_world(model, cfg.world)
    fallback, fb_source = (world.system_prompt, f"{world.dir}/manifest.json (system_prompt)") if world is not None \
        else (PAPER_SYSTEM_PROMPT, "the paper's training system prompt (scalpel.data.prompts.PAPER_SYSTEM_PROMPT)")
    system = prompting.resolve_system_prompt(tokenizer, None if is_hub_id(model) else model,
                                             override=cfg.system_prompt, no_system=cfg.no_system_prompt,
                                             fallback=fallback, fallback_source=fb_source)
    ctx = B.LoadContext(sources=dict(cfg.sources), data_dir=cfg.data_dir, world=world, limit=cfg.limit)
    identity = _model_identity(model)

    # 3. load every benchmark's data before loading the model: missing files / wrong schemas fail here
    plans, results = [], {}
    for bench in benches:
        items, origin = bench.load(ctx)
        if ctx.rejected.get(bench.name):
            log.warning("%s / %s: rejected %d malformed row(s): %s", name, bench.name,
                        sum(ctx.rejected[bench.name].values()), ctx.rejected[bench.name])
        max_new = cfg.max_new_tokens or bench.max_new_tokens
        key = _run_key(identity, bench, cfg, max_new, system, origin)
        done = _finished(out_dir / bench.name / "summary.json", key)
        if done is not None:
            log.info("%s / %s: finished earlier, skipped", name, bench.name)
            results[bench.name] = done
        else:
            plans.append((bench, items, origin, max_new, key, ctx.rejected.get(bench.name, {})))

    if plans:
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        backend = make_backend(cfg.backend, model, tokenizer, dtype=cfg.dtype, batch_size=cfg.batch_size,
                               trust_remote_code=cfg.trust_remote_code, progress=cfg.progress) \
            if cfg.backend == "hf" else make_backend(cfg.backend, model, tokenizer, dtype=cfg.dtype,
                                                     trust_remote_code=cfg.trust_remote_code)
        grader = grading.Grader(workers=cfg.score_workers) if cfg.score_workers else grading.default_grader()
        try:
            for bench, items, origin, max_new, key, rejected in plans:
                results[bench.name] = _run_benchmark(backend, tokenizer, bench, items, origin, max_new, key, cfg,
                                                     system, identity, name, out_dir / bench.name, grader, rejected)
        finally:
            if cfg.score_workers:
                grader.close()
    ordered = {b.name: results[b.name] for b in benches}
    write_model_summary(out_dir, name, ordered)
    return ordered


def _run_benchmark(backend, tokenizer, bench: B.Benchmark, items: list[B.Item], origin: str, max_new: int, key: str,
                   cfg: EvalConfig, system: prompting.SystemPrompt, identity: dict, name: str, bdir: Path,
                   grader: grading.Grader, rejected: dict[str, int] | None = None) -> dict:
    t0 = time.perf_counter()
    usable = _usable_golds(bench, items, grader)
    skipped = [it.id for it, ok in zip(items, usable) if not ok]
    items = [it for it, ok in zip(items, usable) if ok]
    rendered = [prompting.render(tokenizer, it.messages(), system) for it in items]
    base_seed = _benchmark_seed(cfg.seed, bench.name)
    rows: list[dict] = []
    seeds = []
    for s in range(cfg.samples):
        seed = base_seed + s
        seeds.append(seed)
        comps = backend.generate([ids for _, ids in rendered], max_new_tokens=max_new, temperature=cfg.temperature,
                                 top_p=cfg.top_p, seed=seed, stop=list(bench.stop))
        scores = scoring.score_items(bench.scorer, items, [c.text for c in comps], grader=grader)
        for it, (text, ids), c, sc in zip(items, rendered, comps, scores):
            if not sc.gold_ok:  # cannot happen after the gold check; kept as a guard, never scored
                continue
            rows.append({"model": name, "benchmark": bench.name, "item_id": it.id, "sample": s, "seed": seed,
                         "prompt": text, "prompt_tokens": len(ids), "completion": c.text, "extracted": sc.extracted,
                         "gold": it.gold, "correct": bool(sc.correct), "num_tokens": c.num_tokens,
                         "truncated": c.truncated, "prompt_too_long": c.prompt_too_long, "error": sc.error,
                         "details": sc.details})
        log.info("%s / %s: sample %d/%d done", name, bench.name, s + 1, cfg.samples)
    summary = {
        "format": RESULT_FORMAT, "key": key, "model": name, "model_path": identity["model"], "benchmark": bench.name,
        "description": bench.description, "scorer": bench.scorer, "origin": origin,
        **summarize(rows, cfg.samples),
        "skipped_unusable_gold": len(skipped), "skipped_item_ids": skipped[:50],
        "rejected_rows": dict(rejected or {}),  # malformed rows, by reason (scalpel.data.loaders.rows_to_items)
        "sampling": {"temperature": cfg.temperature, "top_p": cfg.top_p, "max_new_tokens": max_new,
                     "stop": list(bench.stop), "seeds": seeds, "base_seed": cfg.seed, "backend": cfg.backend,
                     "batch_size": cfg.batch_size, "limit": cfg.limit},
        "system_prompt": system.to_json(), "seconds": round(time.perf_counter() - t0, 2),
        "versions": _versions(),
    }
    atomic.write_text(bdir / "samples.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic.write_text(bdir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False))
    return summary


def _versions() -> dict:
    from importlib.metadata import version

    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "math-verify": version("math-verify")}


# ---------------------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------------------


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def table_rows(summaries: Mapping[str, Mapping[str, dict]]) -> list[list[str]]:
    rows = []
    for model, bs in summaries.items():
        for bench, s in bs.items():
            lo, hi = s.get("ci95") or [None, None]
            pk = s.get("pass_at_k") or {}
            kmax = max(pk, key=lambda k: int(k.split("@")[1])) if pk else None
            rows.append([model, bench, _pct(s.get("accuracy")), f"[{_pct(lo)}, {_pct(hi)}]",
                         f"{kmax}={_pct(pk[kmax])}" if kmax and kmax != "pass@1" else "—",
                         str(s.get("n_items")), str(s.get("samples_per_item")),
                         "—" if s.get("mean_completion_tokens") is None else f"{s['mean_completion_tokens']:.0f}",
                         _pct(s.get("truncation_rate")), str(s.get("prompt_too_long", 0)),
                         str(s.get("skipped_unusable_gold", 0))])
    return rows


TABLE_HEADER = ["model", "benchmark", "acc %", "95% CI", "pass@k", "items", "samples", "tokens", "trunc %",
                "too long", "skipped"]


def format_table(summaries: Mapping[str, Mapping[str, dict]], markdown: bool = True) -> str:
    rows = table_rows(summaries)
    if markdown:
        lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(TABLE_HEADER)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*TABLE_HEADER)] + [fmt.format(*r) for r in rows])


def write_model_summary(out_dir: Path, name: str, summaries: Mapping[str, dict]) -> None:
    atomic.write_text(out_dir / "summary.json", json.dumps({"model": name, "benchmarks": summaries}, indent=2,
                                                        ensure_ascii=False))
    atomic.write_text(out_dir / "table.md", format_table({name: summaries}) + "\n")


def evaluate_models(models: Mapping[str, str | Path], out_root: str | Path, cfg: EvalConfig | None = None) -> dict:
    """The study phase: every model (base + checkpoints) on the same benchmarks -> {name: {benchmark: summary}}.

    Results go to ``out_root/<name>/``; ``out_root/summary.json`` and ``table.md`` hold all of them. All model dirs
    are checked before the first one is evaluated.
    """
    cfg = cfg or EvalConfig()
    out_root = Path(out_root)
    for m in models.values():
        check_model_dir(m)
    cfg.benchmark_list()
    results = {name: evaluate_model(path, out_root / name, cfg, name=name) for name, path in models.items()}
    atomic.write_text(out_root / "summary.json", json.dumps(results, indent=2, ensure_ascii=False))
    atomic.write_text(out_root / "table.md", format_table(results) + "\n")
    return results
