"""Benchmark registry: each benchmark = a loader (hub id or local file -> items), a prompt builder and a scorer kind.

The paper's suite (Figure 3): MATH-500, AIME24, GSM8k (0-shot and 5-shot), GPQA-Diamond, MMLU, MMLU-Pro, IFEval;
the micro-world's analogues (easy/hard maths, facts multiple choice, few-shot maths, instruction following); and
``generic_maths``, any local jsonl/parquet with a column mapping. Where rows come from: ``scalpel.data.sources``;
how rows become items: ``scalpel.data.loaders``; the item itself: ``scalpel.data.items``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from scalpel.data.items import Item
from scalpel.data.loaders import (
    load_gpqa,
    load_gsm8k,
    load_ifeval,
    load_maths,
    load_microworld,
    load_mmlu,
    load_mmlu_pro,
)
from scalpel.data.sources import AIME24, GSM8K, MATH500, LoadContext, Source
from scalpel.errors import UserError

ScorerKind = Literal["maths", "gsm8k", "mcq", "ifeval", "microworld"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    scorer: ScorerKind
    max_new_tokens: int
    load_items: Callable[["Benchmark", LoadContext], tuple[list[Item], str]]  # -> (items, origin)
    source: Source | None = None
    stop: tuple[str, ...] = ("</answer>",)
    options: dict[str, Any] = field(default_factory=dict)

    def load(self, ctx: LoadContext | None = None) -> tuple[list[Item], str]:
        """All items (first ``ctx.limit`` when set) and a string saying where they came from."""
        ctx = ctx or LoadContext()
        items, origin = self.load_items(self, ctx)
        if ctx.limit is not None:
            items = items[: ctx.limit]
        return items, origin


# The 18 STEM subjects of the shared ``mmlu_stem_test.jsonl`` (3018 questions).
MMLU_STEM_SUBJECTS = (
    "abstract_algebra", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
    "college_mathematics", "college_physics", "computer_security", "conceptual_physics", "electrical_engineering",
    "elementary_mathematics", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning",
)

_MMLU_COLS = dict(columns=("question", "choices", "answer"), any_of=(("subject", "type"),))
_GPQA_COLS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

# Token budgets: the real-model defaults leave room for a <think> block (the paper trained with 1500-token
# completions); the micro-world's are set per task below.
REAL_MAX_NEW_TOKENS = 2048

BENCHMARKS: dict[str, Benchmark] = {}


def register(b: Benchmark) -> Benchmark:
    if b.name in BENCHMARKS:
        raise ValueError(f"benchmark {b.name} registered twice")
    BENCHMARKS[b.name] = b
    return b


register(Benchmark("math500", "MATH-500 (Lightman et al.), 500 competition problems; math-verify extractive match",
                   "maths", REAL_MAX_NEW_TOKENS, load_maths, MATH500,
                   options={"question": "problem", "answer": "answer", "id": "unique_id"}))
register(Benchmark("aime24", "AIME 2024, 30 problems (integer answers); math-verify", "maths", 4096, load_maths,
                   AIME24, options={"question": "problem", "answer": "answer", "id": "id"}))
register(Benchmark("gsm8k", "GSM8k test, 0-shot; gold after ####", "gsm8k", 1024, load_gsm8k, GSM8K))
register(Benchmark("gsm8k_5shot", "GSM8k test, 5-shot (first 5 train rows as chat turns); gold after ####",
                   "gsm8k", 1024, load_gsm8k, GSM8K, options={"shots": 5}))
register(Benchmark("mmlu", "MMLU, all 57 subjects (cais/mmlu), 4-way letter in <answer>", "mcq",
                   REAL_MAX_NEW_TOKENS, load_mmlu, Source("cais/mmlu", "all", "test", None, **_MMLU_COLS)))
register(Benchmark("mmlu_stem", "MMLU, 18 STEM subjects (the shared mmlu_stem_test.jsonl), letter in <answer>",
                   "mcq", REAL_MAX_NEW_TOKENS, load_mmlu,
                   Source("cais/mmlu", "all", "test", "mmlu_stem_test.jsonl", **_MMLU_COLS),
                   options={"subjects": MMLU_STEM_SUBJECTS}))
register(Benchmark("mmlu_pro", "MMLU-Pro (TIGER-Lab), up to 10 options, 0-shot CoT, letter in <answer>", "mcq",
                   REAL_MAX_NEW_TOKENS, load_mmlu_pro,
                   Source("TIGER-Lab/MMLU-Pro", None, "test", "mmlu_pro_test.jsonl", ("question", "options"),
                          any_of=(("answer", "answer_index"),))))
register(Benchmark("gpqa_diamond", "GPQA-Diamond (198), options shuffled per record id, letter in <answer>", "mcq",
                   REAL_MAX_NEW_TOKENS, load_gpqa,
                   Source("Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa_diamond.jsonl", _GPQA_COLS)))
register(Benchmark("ifeval", "IFEval (541 prompts), lm-eval's instruction checks; accuracy = prompt-level strict",
                   "ifeval", REAL_MAX_NEW_TOKENS, load_ifeval,
                   Source("google/IFEval", None, "train", "ifeval_input_data.jsonl",
                          ("key", "prompt", "instruction_id_list", "kwargs"))))

# Budgets are about twice the teacher's trace (the SFT target: 57 tokens on easy maths, up to 73 on hard), not the
# base's terse one: after SFT every answer is written in that style, and a budget cut to the base's length would
# score SFT's checkpoints as wrong for being verbose (the paper's budgets are generous for the same reason).
_MW = {"maths_easy": ("easy integer word problems (k12 tier)", 120),
       "maths_hard": ("hard integer word problems (olympiad tier)", 160),
       "facts_mcq": ("facts about invented people, 4-way multiple choice (MMLU analogue)", 96),
       "fewshot_maths": ("few-shot easy maths, answer after #### (GSM8k 5-shot analogue)", 96),
       "instruct": ("checkable instructions (IFEval analogue)", 96)}
for _task, (_desc, _tokens) in _MW.items():
    register(Benchmark(f"mw_{_task}", f"micro-world {_desc}, held-out split", "microworld", _tokens,
                       load_microworld, None, options={"task": _task}))

SUITES: dict[str, list[str]] = {
    "microworld": [f"mw_{t}" for t in _MW],
    "paper": ["math500", "aime24", "gsm8k", "gsm8k_5shot", "gpqa_diamond", "mmlu", "mmlu_pro", "ifeval"],
    # The paper's benchmarks whose real files are on our machines (../shared/data/benchmarks).
    "local": ["math500", "aime24", "gsm8k", "gsm8k_5shot", "mmlu_stem", "ifeval"],
}


def generic_maths(path: str | Path, *, question: str = "problem", answer: str = "answer", id: str | None = None,
                  name: str | None = None, max_new_tokens: int = REAL_MAX_NEW_TOKENS) -> Benchmark:
    """A maths benchmark from any local jsonl/json/parquet/csv: ``question`` and ``answer`` name its columns
    (the answer is a final answer math-verify can parse: a number or a LaTeX expression)."""
    path = Path(path)
    name = name or f"maths_{re.sub(r'[^A-Za-z0-9_]+', '_', path.name.split('.')[0])}"
    cols = (question, answer) + ((id,) if id else ())
    src = Source(None, None, "test", None, cols)

    def load(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
        ctx2 = LoadContext(sources={**ctx.sources, b.name: ctx.sources.get(b.name, path)}, data_dir=ctx.data_dir,
                           world=ctx.world, limit=ctx.limit, rejected=ctx.rejected)
        return load_maths(b, ctx2)

    return Benchmark(name, f"maths from {path} (question={question}, answer={answer})", "maths", max_new_tokens,
                     load, src, options={"question": question, "answer": answer, "id": id})


def parse_columns(spec: str) -> dict[str, str]:
    """``"question=problem,answer=final,id=uid"`` -> mapping; keys must be question, answer, id."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, col = part.partition("=")
        if not sep or key not in ("question", "answer", "id") or not col:
            raise UserError(f"bad column mapping {part!r} in {spec!r}: use question=COL,answer=COL[,id=COL]")
        out[key] = col
    return out


def get(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UserError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)} "
                        "(a local maths file: --generic FILE --generic-columns question=COL,answer=COL)") from None


def suite(name: str) -> list[str]:
    try:
        return list(SUITES[name])
    except KeyError:
        raise UserError(f"unknown suite {name!r}; known: {', '.join(SUITES)}") from None
