"""``scalpel grade FILE``: completions made elsewhere (vLLM, lighteval, lm-eval …) graded with the reward's rules.

A row is ``gold``, ``completion`` and optionally ``id`` (column names can be changed); a completion may be a string
or a chat message list. The answer is found and compared exactly as by the GRPO accuracy reward (``extract``,
``compare``), in the same worker pool with the same per-item timeout. One outcome per row: ``correct``, ``wrong``,
``no_prediction``, ``gold_unparseable`` or ``timeout`` (``crashed`` / ``error`` / ``unavailable`` if a worker dies
or cannot start). Malformed rows are rejected and counted by reason, as every loader of outside data does
(``scalpel.data.rows``); a file that cannot be read, or has no row with the gold and completion columns, is an
error naming the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scalpel.errors import UserError
from scalpel.data import rows as rows_mod
from scalpel.grading import extract
from scalpel.grading.pool import Grader, default_grader

OUTCOMES = ("correct", "wrong", "no_prediction", "gold_unparseable", "timeout")


@dataclass(frozen=True)
class Row:
    id: str
    gold: str
    completion: str


def grade_file(path: str | Path, *, gold: str = "gold", completion: str = "completion", id: str | None = "id",
               hash_fallback: bool = False, grader: Grader | None = None) -> tuple[list[dict], dict[str, int]]:
    """``(graded rows, {reason: rejected rows})`` of a .jsonl / .json / .parquet / .csv file. Raises ``UserError``
    (naming the file) when it cannot be read or no row has the gold and completion columns."""
    from scalpel.data.files import read_table

    table = read_table(path)
    dicts = [r for r in table if isinstance(r, dict)]
    if dicts and not any(gold in r and completion in r for r in dicts):
        seen = sorted({k for r in dicts[:100] for k in r})[:20]
        raise UserError(f"{path}: no row has both columns {gold!r} and {completion!r} (columns seen: "
                        f"{', '.join(map(str, seen)) or 'none'}); name them with --gold / --completion")
    rows, rejected = parse_rows(table, gold=gold, completion=completion, id=id)
    return grade_rows(rows, hash_fallback=hash_fallback, grader=grader), rejected


def parse_rows(table: list, *, gold: str = "gold", completion: str = "completion",
               id: str | None = "id") -> tuple[list[Row], dict[str, int]]:
    """Rows to grade, and the rejected ones counted by reason (missing field, wrong type, duplicate id …)."""
    def make(n: int, r: dict) -> Row:
        value = r[completion]
        if isinstance(value, (list, tuple, Mapping)):  # a chat transcript: the last message's text
            from scalpel.train.rewards import completion_text

            value = completion_text(value)
        row_id = r.get(id) if id else None
        if row_id is None:
            row_id = str(n)
        elif not isinstance(row_id, (str, int)) or isinstance(row_id, bool):
            raise rows_mod.Reject(f"id is not text or an integer ({type(row_id).__name__})")
        return Row(str(row_id), rows_mod.text(r[gold], "gold"),
                   rows_mod.text(value, "completion", empty_ok=True))

    return rows_mod.convert(table, make, key=lambda row: row.id)


def grade_rows(rows: list[Row], *, hash_fallback: bool = False, grader: Grader | None = None) -> list[dict]:
    """One ``{"id", "outcome", "prediction"}`` per row, in order. Never raises (the grader does not)."""
    predictions = [extract.extract_answer(r.completion, hash_fallback) for r in rows]
    outcomes = (grader or default_grader()).grade_answers([r.gold for r in rows], predictions)
    return [{"id": r.id, "outcome": o, "prediction": p} for r, p, o in zip(rows, predictions, outcomes)]


def summary(graded: list[dict], rejected: dict[str, int]) -> dict:
    """Counts per outcome, accuracy over the rows whose gold is usable, and the rejected rows by reason."""
    counts = Counter(g["outcome"] for g in graded)
    usable = len(graded) - counts["gold_unparseable"]
    return {"rows": len(graded), "outcomes": {o: counts.get(o, 0) for o in (*OUTCOMES, *sorted(set(counts) -
                                                                                        set(OUTCOMES)))},
            "accuracy": counts["correct"] / usable if usable else None,
            "rejected_rows": sum(rejected.values()), "rejected": dict(rejected)}


# ---------------------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "grade", help="grade completions made elsewhere with the reward's maths rules",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Grade a .jsonl / .json / .parquet / .csv of (gold, completion[, id]) rows with the rules of "
        "the GRPO accuracy reward and the evaluation (answer from the last <answer>…</answer>, else the last "
        "\\boxed{…}). Writes one JSON line per row (id, outcome, prediction) to --out or stdout and a summary to "
        "stderr (--summary: also as JSON).\n\noutcomes: " + ", ".join(OUTCOMES),
    )
    p.add_argument("file", help="rows of gold, completion[, id]")
    p.add_argument("--gold", default="gold", help="gold answer column (default gold)")
    p.add_argument("--completion", default="completion", help="completion column: text or chat messages")
    p.add_argument("--id", default="id", help="id column (default id; rows without one are numbered)")
    p.add_argument("--hash-fallback", action="store_true",
                   help="also accept a final '#### N' when there is no answer tag or box (GSM8k-style few-shot)")
    p.add_argument("--out", default=None, help="per-row outcomes as JSONL (default: stdout)")
    p.add_argument("--summary", default=None, help="also write the summary as JSON here")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per item before its worker is killed")
    p.add_argument("--workers", type=int, default=None, help="grading processes (default: min(2, cpus))")
    p.set_defaults(func=_grade)


def _grade(args: argparse.Namespace) -> int:
    from scalpel import atomic

    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    grader = Grader(workers=args.workers, timeout=args.timeout)
    try:
        graded, rejected = grade_file(args.file, gold=args.gold, completion=args.completion, id=args.id or None,
                                      hash_fallback=args.hash_fallback, grader=grader)
    finally:
        grader.close()
    lines = "".join(json.dumps(g) + "\n" for g in graded)  # ASCII: a lone surrogate in a completion cannot break it
    if args.out:
        atomic.write_text(args.out, lines)
    else:
        sys.stdout.write(lines)
    result = summary(graded, rejected)
    if args.summary:
        atomic.write_json(args.summary, result)
    print(render(args.file, result), file=sys.stderr)
    if not graded:
        raise UserError(f"{args.file}: no row could be graded ({result['rejected_rows']} rejected: "
                        f"{result['rejected'] or 'the file is empty'})")
    return 0


def render(path: str, s: dict) -> str:
    acc = "n/a" if s["accuracy"] is None else f"{100 * s['accuracy']:.1f} %"
    counts = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items())
    text = f"{path}: {s['rows']} rows graded, accuracy {acc} ({counts})"
    if s["rejected_rows"]:
        text += f"; {s['rejected_rows']} rows rejected: " + ", ".join(f"{k} {v}" for k, v in s["rejected"].items())
    return text
