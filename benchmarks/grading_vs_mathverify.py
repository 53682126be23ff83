"""scalpel's grader side by side with plain math-verify on any maths JSONL: identical-answer recall and
shifted-answer acceptance (a quality script, not a timed test).

For every row, the gold answer is written back as the model's answer (``<answer>GOLD</answer>``: must grade correct)
and, when it has a number, with its last number shifted (must grade wrong). Plain math-verify is
``verify(parse("\\boxed{gold}"), parse("\\boxed{pred}"))``; scalpel is the shared grader (``scalpel.grading``) on the
completion, as the GRPO reward and the evaluation grade it. The gold is the ``--column`` value (default: the first
of answer / gold / final_answer present); a GSM8k-style answer keeps what follows ``####``.

    .venv/bin/python benchmarks/grading_vs_mathverify.py FILE.jsonl [FILE …] [--column answer] [--limit N]

(.json, .parquet and .csv are read too; rows without a gold are left out.)

Rows whose scalpel outcome is not the expected one are listed with ``--show N``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import warnings
from pathlib import Path

from math_verify import parse, verify

from scalpel import grading
from scalpel.data.files import read_table
from scalpel.data.items import gsm8k_gold

COLUMNS = ("answer", "gold", "final_answer")
_LAST_INT = re.compile(r"\d+(?!.*\d)", re.DOTALL)


def shifted(gold: str, by: int = 7) -> str | None:
    """The gold with its last integer run increased by ``by`` (None: no digit); 2.5 -> 2.12, never 2.50."""
    m = _LAST_INT.search(gold)
    if not m:
        return None
    new = int(m.group()) + by
    if gold[:m.start()].endswith(".") and new % 10 == 0:
        new += 1
    return gold[:m.start()] + str(new) + gold[m.end():]


def golds_of(path: Path, column: str | None, limit: int | None) -> list[str]:
    rows = [r for r in read_table(path) if isinstance(r, dict)]  # unreadable lines are skipped
    col = column or next((c for c in COLUMNS if any(c in r for r in rows)), None)
    if col is None:
        raise SystemExit(f"{path}: no column among {COLUMNS}; pass --column")
    golds = []
    for r in rows[:limit]:
        value = r.get(col)
        if value is None or not str(value).strip():
            continue
        value = str(value)
        golds.append((gsm8k_gold(value) or value) if "####" in value else value.strip())
    return golds


def plain_math_verify(gold: str, pred: str) -> bool:
    try:
        return bool(verify(parse(f"\\boxed{{{gold}}}"), parse(f"\\boxed{{{pred}}}")))
    except Exception:  # noqa: BLE001 - a crash is a miss, as for any caller of the plain library
        return False


def measure(golds: list[str], grader: grading.Grader) -> dict:
    pairs = [(g, g, True) for g in golds] + [(g, s, False) for g in golds if (s := shifted(g)) is not None]
    completions = [f"<think>\nworking\n</think>\n<answer>\n{p}\n</answer>" for _, p, _ in pairs]
    outcomes = grader.grade_answers([g for g, _, _ in pairs], [grading.extract_answer(c) for c in completions])
    plain = [plain_math_verify(g, p) for g, p, _ in pairs]
    n_id = len(golds)
    n_sh = len(pairs) - n_id
    return {
        "rows": n_id, "shifted_rows": n_sh,
        "recall": (sum(o == grading.CORRECT for o in outcomes[:n_id]), sum(plain[:n_id])),
        "accepted": (sum(o == grading.CORRECT for o in outcomes[n_id:]), sum(plain[n_id:])),
        "gold_unparseable": sum(o == grading.GOLD_UNPARSEABLE for o in outcomes[:n_id]),
        "misses": [(g, p, o, mv) for (g, p, want), o, mv in zip(pairs, outcomes, plain)
                   if (o == grading.CORRECT) != want],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--column", default=None, help=f"gold answer column (default: first of {', '.join(COLUMNS)})")
    ap.add_argument("--limit", type=int, default=None, help="first N rows of each file")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--show", type=int, default=0, help="list up to N rows scalpel grades unexpectedly")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    grader = grading.Grader(workers=args.workers, timeout=args.timeout)
    print(f"{'file':<32} {'rows':>5} | {'identical correct':^23} | {'shifted accepted':^23} | gold unusable")
    print(f"{'':<32} {'':>5} | {'scalpel':>11} {'math-verify':>11} | {'scalpel':>11} {'math-verify':>11} |")
    try:
        for path in args.files:
            r = measure(golds_of(path, args.column, args.limit), grader)

            def pct(k: int, n: int) -> str:
                return f"{k}/{n}" if n else "-"

            print(f"{path.name[:32]:<32} {r['rows']:>5} | {pct(r['recall'][0], r['rows']):>11} "
                  f"{pct(r['recall'][1], r['rows']):>11} | {pct(r['accepted'][0], r['shifted_rows']):>11} "
                  f"{pct(r['accepted'][1], r['shifted_rows']):>11} | {r['gold_unparseable']}")
            for gold, pred, outcome, mv in r["misses"][: args.show]:
                print(f"    gold {gold!r} pred {pred!r}: scalpel {outcome}, math-verify {mv}")
    finally:
        grader.close()


if __name__ == "__main__":
    main()
