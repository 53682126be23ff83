"""Loaders: a benchmark's rows (``scalpel.data.sources``) -> items (``scalpel.data.items``), one per row schema.

Malformed rows are left out and counted per reason in ``LoadContext.rejected`` (``scalpel.data.rows.convert``).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable

from scalpel.data import rows as rows_mod
from scalpel.data.items import LETTERS, Item, gsm8k_gold, gsm8k_solution, mcq_prompt
from scalpel.data.sources import GSM8K_TRAIN, LoadContext, read_source
from scalpel.errors import DataError, UserError

if TYPE_CHECKING:
    from scalpel.data.benchmarks import Benchmark


def rows_to_items(b: Benchmark, rows: list, make: Callable[[int, dict], Item | None],
                  ctx: LoadContext) -> list[Item]:
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


def load_maths(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    q, a, i = b.options["question"], b.options["answer"], b.options.get("id")
    return rows_to_items(b, rows, lambda n, r: Item(
        id=str(r[i]) if i and r.get(i) is not None else f"{b.name}.{n:05d}", question=_question(r[q]),
        gold=_usable(r[a])), ctx), origin


def load_gsm8k(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    shots: list[tuple[str, str]] = []
    k = b.options.get("shots", 0)
    if k:
        train, train_origin = read_source("gsm8k_train", GSM8K_TRAIN, ctx)
        shots = [(r["question"], gsm8k_solution(r["answer"])) for r in train[:k]]
        if len(shots) < k:
            raise DataError(f"{train_origin} has {len(shots)} rows; {b.name} needs {k} few-shot examples")
        origin += f" + {k} shots from {train_origin}"
    items = rows_to_items(b, rows, lambda n, r: Item(id=f"gsm8k.{n:04d}", question=_question(r["question"]),
                                                     gold=gsm8k_gold(_text(r["answer"])), shots=list(shots)), ctx)
    return items, origin


def load_mmlu(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
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


def load_mmlu_pro(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
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


def load_gpqa(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
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
                    gold=LETTERS[pos] if correct else None, choices=choices,
                    extra={"domain": r.get("High-level domain")})

    return rows_to_items(b, rows, make, ctx), origin


def load_ifeval(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    rows, origin = read_source(b.name, b.source, ctx)
    def make(n: int, r: dict) -> Item:
        kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in _list(r["kwargs"])]
        ids = [_text(i) for i in _list(r["instruction_id_list"])]
        ok = bool(ids) and len(kwargs) == len(ids)
        row = {"key": r["key"], "prompt": _question(r["prompt"]), "instruction_id_list": ids, "kwargs": kwargs}
        return Item(id=f"ifeval.{r['key']}", question=row["prompt"], gold="; ".join(ids) if ok else None,
                    extra={"ifeval": row})

    return rows_to_items(b, rows, make, ctx), origin


def load_microworld(b: Benchmark, ctx: LoadContext) -> tuple[list[Item], str]:
    if ctx.world is None:
        raise UserError(f"benchmark {b.name} needs a micro-world: pass --world DIR (the directory that holds "
                        "manifest.json), or evaluate the world's model/ directory so it is found by itself")
    task, split = b.options["task"], b.options.get("split", "heldout")
    rows = ctx.world.items(task, split)
    items = rows_to_items(b, rows, lambda n, r: Item(id=_text(r["id"]), question=_question(r["question"]),
                                                     gold=_usable(r.get("answer")), choices=r.get("choices"),
                                                     shots=[tuple(s) for s in r.get("shots") or []],
                                                     extra={"microworld": r}), ctx)
    return items, f"{ctx.world.dir}/tasks/{task}.{split}.jsonl"
