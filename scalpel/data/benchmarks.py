"""Benchmark registry: each benchmark = a loader (hub id or local file -> items), a prompt builder and a scorer kind.

The paper's suite (Figure 3): MATH-500, AIME24, GSM8k (0-shot and 5-shot), GPQA-Diamond, MMLU, MMLU-Pro, IFEval;
the micro-world's analogues (easy/hard maths, facts multiple choice, few-shot maths, instruction following); and
``generic_maths``, any local jsonl/parquet with a column mapping.

Where rows come from, first match wins:
1. an explicit file (``sources={"math500": "path.jsonl"}``, ``scalpel eval --data math500=path.jsonl``);
2. ``<data_dir>/<file name>`` (``--data-dir``, env ``SCALPEL_BENCHMARKS``, else ``../shared/data/benchmarks``
   beside the repository, when it exists);
3. the hub: ``datasets.load_dataset(hub_id, config, split=...)`` (needs network; on our CPU machines it fails and
   says which file to pass instead).
The origin is recorded in every summary. Files are read where they are, never copied.

An item's ``gold`` is ``None`` when the row has no usable gold answer (e.g. a GSM8k answer without ``#### N``); the
runner skips such rows before generation and counts them. Maths golds are additionally checked by the scorer
(math-verify must parse them). Prompts are message lists *without* a system message: the system prompt is decided
by the evaluation (``scalpel.evaluate.prompting``) so that it matches training.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from scalpel.errors import DataError, UserError
from scalpel.data import rows as rows_mod

ScorerKind = Literal["maths", "gsm8k", "mcq", "ifeval", "microworld"]
LETTERS = "ABCDEFGHIJ"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Item:
    """One benchmark question, ready for prompting and scoring."""

    id: str
    question: str  # the final user message
    gold: str | None  # None: no usable gold (row skipped and counted)
    choices: list[str] | None = None  # multiple choice: option texts, gold is a letter
    shots: list[tuple[str, str]] = field(default_factory=list)  # few-shot (user, assistant) turns before question
    extra: dict[str, Any] = field(default_factory=dict)  # scorer inputs (IFEval row, micro-world item)

    def messages(self) -> list[dict[str, str]]:
        """The conversation to render (no system message: see ``scalpel.evaluate.prompting``)."""
        turns: list[dict[str, str]] = []
        for q, a in self.shots:
            turns += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        return turns + [{"role": "user", "content": self.question}]


@dataclass(frozen=True)
class Source:
    """Where a benchmark's rows live and which columns each row must have."""

    hub_id: str | None
    hub_config: str | None = None
    hub_split: str = "test"
    file: str | None = None  # file name looked up in the data dir
    columns: tuple[str, ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()  # at least one column of each group (e.g. MMLU's subject|type)

    def describe(self) -> str:
        hub = f"hub {self.hub_id}" + (f" ({self.hub_config})" if self.hub_config else "") + f" split {self.hub_split}"
        return hub + (f" or file {self.file}" if self.file else "")


@dataclass
class LoadContext:
    """How to find files: explicit per-benchmark files, a data dir, a micro-world dir, a row limit."""

    sources: dict[str, str | Path] = field(default_factory=dict)
    data_dir: str | Path | None = None
    world: Any = None  # scalpel.microworld.World, for micro-world benchmarks
    limit: int | None = None
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # benchmark -> {reason: rows}, filled by load


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


# ---------------------------------------------------------------------------------------------------------------
# Reading rows: local jsonl / json / parquet / csv, or the hub. Schema errors name the path and expected columns.
# ---------------------------------------------------------------------------------------------------------------


def default_data_dir() -> Path | None:
    env = os.environ.get("SCALPEL_BENCHMARKS")
    if env:
        return Path(env)
    for root in (REPO_ROOT, Path.cwd()):  # the checkout (editable install), or a run from the repo root
        shared = root.parent / "shared" / "data" / "benchmarks"
        if shared.is_dir():
            return shared
    return None


def rows_to_items(b: "Benchmark", rows: list, make: Callable[[int, dict], "Item | None"],
                  ctx: "LoadContext") -> list["Item"]:
    """``scalpel.data.rows.convert`` for benchmark items (unique ids, a non-empty question of sane length); the
    rejected rows are counted in ``ctx.rejected[b.name]``."""
    def checked(n: int, r: dict) -> Item | None:
        it = make(n, r)
        if it is not None:
            rows_mod.text(it.question, "question")
        return it

    items, reasons = rows_mod.convert(rows, checked, key=lambda it: it.id)
    if reasons:
        ctx.rejected[b.name] = reasons
    return items


def read_table(path: str | Path) -> list[dict]:
    """Rows of a local .jsonl / .json / .parquet / .csv file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist (or is not a file)")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".jsonl", ".jsonl.gz"):
            import gzip

            opener = gzip.open if suffix.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                return [rows_mod.parse_json_line(line, n) for n, line in enumerate(f, 1) if line.strip()]
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {"data": [...]} or column-oriented {"col": [...]}
                if len(data) == 1 and isinstance(next(iter(data.values())), list) and \
                        all(isinstance(r, dict) for r in next(iter(data.values()))):
                    data = next(iter(data.values()))
                else:
                    keys = list(data)
                    data = [dict(zip(keys, vals)) for vals in zip(*(data[k] for k in keys))]
            return list(data)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if suffix == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read benchmark file {path}: {exc}") from exc
    raise DataError(f"benchmark file {path}: unsupported format {suffix!r} (use .jsonl, .json, .parquet or .csv)")


def check_columns(rows: list[dict], origin: str, columns: tuple[str, ...],
                  any_of: tuple[tuple[str, ...], ...] = ()) -> None:
    first = next((r for r in rows if isinstance(r, dict)), None)
    if first is None:
        raise DataError(f"{origin} has no rows; expected rows with columns {', '.join(columns)}")
    have = set(first)
    missing = [c for c in columns if c not in have] + [" or ".join(g) for g in any_of if not have & set(g)]
    if missing:
        expected = list(columns) + [" or ".join(g) for g in any_of]
        raise DataError(
            f"{origin} does not have the expected columns: missing {', '.join(missing)}; expected "
            f"{', '.join(expected)}; found {', '.join(sorted(have))}"
        )


def read_source(name: str, source: Source, ctx: LoadContext) -> tuple[list[dict], str]:
    """Rows for benchmark ``name`` (explicit file > data dir > hub) and their origin, schema-checked."""
    explicit = ctx.sources.get(name)
    if explicit is not None:
        rows, origin = read_table(explicit), str(explicit)
    else:
        data_dir = Path(ctx.data_dir) if ctx.data_dir is not None else default_data_dir()
        local = data_dir / source.file if data_dir is not None and source.file else None
        if local is not None and local.is_file():
            rows, origin = read_table(local), str(local)
        else:
            rows, origin = _read_hub(name, source, local)
    check_columns(rows, origin, source.columns, source.any_of)
    return rows, origin


def _read_hub(name: str, source: Source, tried: Path | None) -> tuple[list[dict], str]:
    if source.hub_id is None:
        raise DataError(f"benchmark {name} has no hub id: pass its file with --data {name}=FILE")
    try:
        from datasets import load_dataset

        ds = load_dataset(source.hub_id, source.hub_config, split=source.hub_split)
    except Exception as exc:  # offline, gated, renamed: tell the user what to pass instead
        where = f" (no local file at {tried})" if tried is not None else ""
        raise DataError(
            f"benchmark {name}: cannot load {source.describe()} from the hub{where}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Pass a local file with --data {name}=FILE "
            f"(columns {', '.join(source.columns + tuple(' or '.join(g) for g in source.any_of))}) or --data-dir DIR"
        ) from exc
    origin = f"hub:{source.hub_id}" + (f"/{source.hub_config}" if source.hub_config else "") + f"@{source.hub_split}"
    return [dict(r) for r in ds], origin


# ---------------------------------------------------------------------------------------------------------------
# Gold answers and prompts
# ---------------------------------------------------------------------------------------------------------------

_GSM8K_GOLD = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_GSM8K_CALC = re.compile(r"<<[^<>]*>>")


def gsm8k_gold(answer: str) -> str | None:
    """GSM8k's final answer: the number after ``####`` (thousands separators removed), or None."""
    m = _GSM8K_GOLD.search(str(answer or ""))
    if not m:
        return None
    value = m.group(1).replace(",", "").replace("$", "").strip()
    return value if re.fullmatch(r"-?\d+(\.\d+)?", value) else None


def gsm8k_solution(answer: str) -> str:
    """A GSM8k reference solution without its calculator annotations ``<<48/2=24>>`` (used as few-shot turns)."""
    return _GSM8K_CALC.sub("", answer).strip()


def mcq_prompt(question: str, choices: list[str]) -> str:
    letters = LETTERS[: len(choices)]
    options = "\n".join(f"{letters[i]}) {c}" for i, c in enumerate(choices))
    return (
        "Answer the following multiple choice question. Think step by step, then give only the letter of the "
        f"correct option (one of {', '.join(letters)}) inside <answer></answer>, for example <answer>{letters[0]}"
        f"</answer>.\n\n{question.strip()}\n\n{options}"
    )


def _text(value: Any) -> str:
    return rows_mod.text(value, empty_ok=True)


def _question(value: Any) -> str:
    return rows_mod.text(value, "question")


def _list(value: Any) -> list:
    return rows_mod.as_list(value)


def _usable(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# ---------------------------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------------------------


def _load_maths(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    q, a, i = b.options["question"], b.options["answer"], b.options.get("id")
    return rows_to_items(b, rows, lambda n, r: Item(
        id=str(r[i]) if i and r.get(i) is not None else f"{b.name}.{n:05d}", question=_question(r[q]),
        gold=_usable(r[a])), ctx), origin


def _load_gsm8k(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    shots: list[tuple[str, str]] = []
    k = b.options.get("shots", 0)
    if k:
        train, train_origin = read_source("gsm8k_train", GSM8K_TRAIN, ctx)
        shots = [(r["question"], gsm8k_solution(r["answer"])) for r in train[:k]]
        if len(shots) < k:
            raise DataError(f"{train_origin} has {len(shots)} rows; {b.name} needs {k} few-shot examples")
        origin += f" + {k} shots from {train_origin}"
    return rows_to_items(b, rows, lambda n, r: Item(id=f"gsm8k.{n:04d}", question=_question(r["question"]),
                                                    gold=gsm8k_gold(_text(r["answer"])), shots=list(shots)), ctx), origin


def _load_mmlu(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    subjects = b.options.get("subjects")

    def make(n: int, r: dict) -> Item | None:
        subject = r.get("subject", r.get("type"))
        if subjects and subject not in subjects:
            return None
        choices = [_text(c) for c in _list(r["choices"])]
        ans = r["answer"]
        if isinstance(ans, str) and ans.strip().upper() in LETTERS[: len(choices)] and not ans.strip().isdigit():
            gold = ans.strip().upper()
        else:
            try:
                idx = int(ans)
                gold = LETTERS[idx] if 0 <= idx < len(choices) else None
            except (TypeError, ValueError):
                gold = None
        return Item(id=f"{b.name}.{subject}.{n:05d}", question=mcq_prompt(_question(r["question"]), choices), gold=gold,
                    choices=choices, extra={"subject": subject})

    return rows_to_items(b, rows, make, ctx), origin


def _load_mmlu_pro(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    def make(n: int, r: dict) -> Item:
        choices = [_text(c) for c in _list(r["options"]) if c is not None and str(c).strip() and str(c) != "N/A"]
        gold = str(r.get("answer") or "").strip().upper() or None
        if gold is None and r.get("answer_index") is not None:
            gold = LETTERS[int(r["answer_index"])]
        if gold is not None and (len(gold) != 1 or gold not in LETTERS[: len(choices)]):
            gold = None
        qid = r.get("question_id", n)
        return Item(id=f"mmlu_pro.{qid}", question=mcq_prompt(_question(r["question"]), choices), gold=gold,
                    choices=choices, extra={"category": r.get("category")})

    return rows_to_items(b, rows, make, ctx), origin


def _load_gpqa(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    """GPQA rows hold the correct answer and three incorrect ones; the position of the correct one is drawn from a
    generator seeded by the record id (``random.Random("gpqa:" + id)``), so the order is fixed across runs."""
    rows, origin = read_source(b.name, b.source, ctx)
    def make(n: int, r: dict) -> Item:
        rid = str(r.get("Record ID") or n)
        correct = _usable(r["Correct Answer"])
        wrong = [_text(r[f"Incorrect Answer {k}"]).strip() for k in (1, 2, 3)]
        pos = random.Random(f"gpqa:{rid}").randrange(4)
        choices = wrong[:pos] + [correct or ""] + wrong[pos:]
        return Item(id=f"gpqa.{rid}", question=mcq_prompt(_question(r["Question"]), choices),
                    gold=LETTERS[pos] if correct else None, choices=choices, extra={"domain": r.get("High-level domain")})

    return rows_to_items(b, rows, make, ctx), origin


def _load_ifeval(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    def make(n: int, r: dict) -> Item:
        kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in _list(r["kwargs"])]
        ids = [_text(i) for i in _list(r["instruction_id_list"])]
        ok = bool(ids) and len(kwargs) == len(ids)
        row = {"key": r["key"], "prompt": _question(r["prompt"]), "instruction_id_list": ids, "kwargs": kwargs}
        return Item(id=f"ifeval.{r['key']}", question=row["prompt"], gold="; ".join(ids) if ok else None,
                    extra={"ifeval": row})

    return rows_to_items(b, rows, make, ctx), origin


def _load_microworld(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    if ctx.world is None:
        raise UserError(f"benchmark {b.name} needs a micro-world: pass --world DIR (the directory that holds "
                        "manifest.json), or evaluate the world's model/ directory so it is found by itself")
    task, split = b.options["task"], b.options.get("split", "heldout")
    rows = ctx.world.items(task, split)
    items = rows_to_items(b, rows, lambda n, r: Item(id=_text(r["id"]), question=_question(r["question"]),
                                                     gold=_usable(r.get("answer")), choices=r.get("choices"),
                                                     extra={"microworld": r}), ctx)
    return items, f"{ctx.world.dir}/tasks/{task}.{split}.jsonl"


# ---------------------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------------------

# The 18 STEM subjects of the shared ``mmlu_stem_test.jsonl`` (3018 questions).
MMLU_STEM_SUBJECTS = (
    "abstract_algebra", "astronomy", "college_biology", "college_chemistry", "college_computer_science",
    "college_mathematics", "college_physics", "computer_security", "conceptual_physics", "electrical_engineering",
    "elementary_mathematics", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_mathematics", "high_school_physics", "high_school_statistics", "machine_learning",
)

GSM8K_TRAIN = Source("openai/gsm8k", "main", "train", "gsm8k_train_head200.jsonl", ("question", "answer"))
_MATH500 = Source("HuggingFaceH4/MATH-500", None, "test", "math500_test.jsonl", ("problem", "answer"))
_AIME24 = Source("HuggingFaceH4/aime_2024", None, "train", "aime24_test.jsonl", ("problem", "answer"))
_GSM8K = Source("openai/gsm8k", "main", "test", "gsm8k_test.jsonl", ("question", "answer"))
_MMLU_COLS = dict(columns=("question", "choices", "answer"), any_of=(("subject", "type"),))
_GPQA_COLS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

# Token budgets: the real-model defaults leave room for a <think> block (the paper trained with 1500-token
# completions); the micro-world's are a little over its pretrained answer lengths.
REAL_MAX_NEW_TOKENS = 2048

BENCHMARKS: dict[str, Benchmark] = {}


def register(b: Benchmark) -> Benchmark:
    if b.name in BENCHMARKS:
        raise ValueError(f"benchmark {b.name} registered twice")
    BENCHMARKS[b.name] = b
    return b


register(Benchmark("math500", "MATH-500 (Lightman et al.), 500 competition problems; math-verify extractive match",
                   "maths", REAL_MAX_NEW_TOKENS, _load_maths, _MATH500,
                   options={"question": "problem", "answer": "answer", "id": "unique_id"}))
register(Benchmark("aime24", "AIME 2024, 30 problems (integer answers); math-verify", "maths", 4096, _load_maths,
                   _AIME24, options={"question": "problem", "answer": "answer", "id": "id"}))
register(Benchmark("gsm8k", "GSM8k test, 0-shot; gold after ####", "gsm8k", 1024, _load_gsm8k, _GSM8K))
register(Benchmark("gsm8k_5shot", "GSM8k test, 5-shot (first 5 train rows as chat turns); gold after ####",
                   "gsm8k", 1024, _load_gsm8k, _GSM8K, options={"shots": 5}))
register(Benchmark("mmlu", "MMLU, all 57 subjects (cais/mmlu), 4-way letter in <answer>", "mcq",
                   REAL_MAX_NEW_TOKENS, _load_mmlu, Source("cais/mmlu", "all", "test", None, **_MMLU_COLS)))
register(Benchmark("mmlu_stem", "MMLU, 18 STEM subjects (the shared mmlu_stem_test.jsonl), letter in <answer>",
                   "mcq", REAL_MAX_NEW_TOKENS, _load_mmlu,
                   Source("cais/mmlu", "all", "test", "mmlu_stem_test.jsonl", **_MMLU_COLS),
                   options={"subjects": MMLU_STEM_SUBJECTS}))
register(Benchmark("mmlu_pro", "MMLU-Pro (TIGER-Lab), up to 10 options, 0-shot CoT, letter in <answer>", "mcq",
                   REAL_MAX_NEW_TOKENS, _load_mmlu_pro,
                   Source("TIGER-Lab/MMLU-Pro", None, "test", "mmlu_pro_test.jsonl", ("question", "options"),
                          any_of=(("answer", "answer_index"),))))
register(Benchmark("gpqa_diamond", "GPQA-Diamond (198), options shuffled per record id, letter in <answer>", "mcq",
                   REAL_MAX_NEW_TOKENS, _load_gpqa,
                   Source("Idavidrein/gpqa", "gpqa_diamond", "train", "gpqa_diamond.jsonl", _GPQA_COLS)))
register(Benchmark("ifeval", "IFEval (541 prompts), lm-eval's instruction checks; accuracy = prompt-level strict",
                   "ifeval", REAL_MAX_NEW_TOKENS, _load_ifeval,
                   Source("google/IFEval", None, "train", "ifeval_input_data.jsonl",
                          ("key", "prompt", "instruction_id_list", "kwargs"))))

# Budgets are about twice the teacher's trace (the SFT target: ~70 tokens on easy maths, ~90 on hard), not the
# base's terse one: after SFT every answer is written in that style, and a budget cut to the base's length would
# score SFT's checkpoints as wrong for being verbose (the paper's budgets are generous for the same reason).
_MW = {"maths_easy": ("easy integer word problems (k12 tier)", 144),
       "maths_hard": ("hard integer word problems (olympiad tier)", 192),
       "facts_mcq": ("facts about invented people, 4-way multiple choice (MMLU analogue)", 96),
       "fewshot_maths": ("few-shot easy maths, answer after #### (GSM8k 5-shot analogue)", 96),
       "instruct": ("checkable instructions (IFEval analogue)", 96)}
for _task, (_desc, _tokens) in _MW.items():
    register(Benchmark(f"mw_{_task}", f"micro-world {_desc}, held-out split", "microworld", _tokens,
                       _load_microworld, None, options={"task": _task}))

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
        return _load_maths(b, ctx2)

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
