"""The grading corpus (tests/grading/corpus.jsonl): answers of shapes easy to mis-grade (plain math-verify does),
each gold written back as the model's answer (must be correct), with its last number shifted (must be wrong), and
in a few other forms, each with its expected outcome, graded through the path the reward and the evaluation use."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from scalpel import grading

CORPUS = Path(__file__).with_name("corpus.jsonl")
SHAPES = {"number_paren_unit", "mixed_number_unit", "text", "interval_inequality", "equation", "quantity_list",
          "clock_time"}


@pytest.fixture(autouse=True)
def patient(grader, monkeypatch):
    """10 s per item: math-verify solves some equations for ~0.5 s, and the machine may be busy."""
    monkeypatch.setattr(grader, "timeout", 10.0)


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_corpus_has_30_identical_and_30_wrong_answers_of_every_shape(corpus):
    identical = Counter(r["shape"] for r in corpus if r["prediction"] == r["gold"] and r["expected"] == "correct")
    wrong = Counter(r["shape"] for r in corpus if r["expected"] == "wrong")
    assert set(identical) == set(wrong) == SHAPES
    assert min(identical.values()) >= 30 and min(wrong.values()) >= 30
    assert {r["expected"] for r in corpus} == {"correct", "wrong"}


def test_every_corpus_item_gets_its_expected_outcome(corpus, grader):
    completions = [f"<think>\nworking\n</think>\n<answer>\n{r['prediction']}\n</answer>" for r in corpus]
    outcomes = grader.grade_answers([r["gold"] for r in corpus], [grading.extract_answer(c) for c in completions])
    unexpected = [(r["shape"], r["gold"], r["prediction"], r["note"], o)
                  for r, o in zip(corpus, outcomes) if o != r["expected"]]
    assert unexpected == []


def test_identical_answers_are_correct_in_every_accepted_format(corpus, grader):
    golds = sorted({r["gold"] for r in corpus})
    for template in ("Therefore the answer is $\\boxed{{{gold}}}$.", "<answer>{gold}</answer>"):
        answers = [grading.extract_answer(template.format(gold=g)) for g in golds]
        assert [g for g, o in zip(golds, grader.grade_answers(golds, answers)) if o != grading.CORRECT] == []
