"""``scalpel grade FILE``: jsonl / csv / parquet rows of gold, completion[, id] in, one outcome per row and a
summary out, with the reward's rules; bad rows are rejected and counted, unreadable inputs are clear errors."""

from __future__ import annotations

import csv
import json

import pytest

from scalpel import cli
from scalpel.grading import cli as grade_cli

ROWS = [
    {"id": "a", "gold": "3:30 p.m.", "completion": "<think>\nx\n</think>\n<answer>\n15:30\n</answer>"},
    {"id": "b", "gold": "12 (marbles)", "completion": "so the answer is \\boxed{13}"},
    {"id": "c", "gold": "\\frac{1}{", "completion": "<answer>1</answer>"},
    {"id": "d", "gold": "5", "completion": "I give up"},
    {"id": "e", "gold": "x^2-3x+2=0",
     "completion": [{"role": "assistant", "content": "<answer>$x^2-3x+2=0$</answer>"}]},
]
EXPECTED = ["correct", "wrong", "gold_unparseable", "no_prediction", "correct"]


def write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "gold", "completion"])
            w.writeheader()
            w.writerows(r for r in rows if isinstance(r["completion"], str))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([r for r in rows if isinstance(r["completion"], str)]), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_one_outcome_per_row_and_a_summary(tmp_path, fmt, capsys):
    path = write(tmp_path / f"c.{fmt}", ROWS, fmt)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    assert cli.main(["grade", str(path), "--out", str(out), "--summary", str(summary)]) == 0
    graded = [json.loads(x) for x in out.read_text().splitlines()]
    n = len(graded)
    assert [g["outcome"] for g in graded] == EXPECTED[:n] and [g["id"] for g in graded] == list("abcde")[:n]
    s = json.loads(summary.read_text())
    assert s["rows"] == n and s["outcomes"]["correct"] == EXPECTED[:n].count("correct")
    assert s["accuracy"] == pytest.approx(EXPECTED[:n].count("correct") / (n - 1))  # the unusable gold is left out
    assert f"{n} rows graded" in capsys.readouterr().err


def test_bad_rows_are_rejected_and_counted(tmp_path, capsys):
    lines = [json.dumps(ROWS[0]), json.dumps(ROWS[0]), "not json", json.dumps({"id": "x", "completion": "1"}),
             json.dumps({"id": "y", "gold": "", "completion": "1"}), json.dumps([1, 2]),
             json.dumps({"id": {"no": 1}, "gold": "1", "completion": "1"}),
             json.dumps({"gold": 7, "completion": "<answer>7</answer>"})]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert cli.main(["grade", str(path)]) == 0
    captured = capsys.readouterr()
    graded = [json.loads(x) for x in captured.out.splitlines()]
    assert [g["outcome"] for g in graded] == ["correct", "correct"] and graded[1]["id"] == "7"  # numbered by row
    assert "6 rows rejected" in captured.err
    for reason in ("duplicate id", "invalid JSON", "missing field 'gold'", "empty gold", "row is not an object",
                   "id is not text"):
        assert reason in captured.err


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ('{"question": "q", "answer": "1"}\n', "no row has both columns 'gold' and 'completion'"),
    ("", "no row could be graded"),
    ("garbage\n", "no row could be graded"),
])
def test_unusable_inputs_are_clear_errors_naming_the_file(tmp_path, capsys, content, message):
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)
    assert cli.main(["grade", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_columns_can_be_renamed_and_hash_answers_accepted(tmp_path, grader):
    path = tmp_path / "lm_eval.jsonl"
    path.write_text(json.dumps({"doc_id": 3, "target": "18", "resp": "2 * 9 = 18\n#### 18"}) + "\n")
    graded, rejected = grade_cli.grade_file(path, gold="target", completion="resp", id="doc_id", grader=grader)
    assert graded[0]["outcome"] == "no_prediction" and rejected == {}
    graded, _ = grade_cli.grade_file(path, gold="target", completion="resp", id="doc_id", hash_fallback=True,
                                     grader=grader)
    assert graded == [{"id": "3", "outcome": "correct", "prediction": "18"}]
