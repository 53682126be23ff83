"""The comparison rules (scalpel.grading.compare), run in this process: identity first, compound answers, times,
quantities and text compared completely, math-verify for the rest; and one extraction path for every scorer."""

from __future__ import annotations

import time

import pytest

from scalpel.grading import compare as C
from scalpel.grading.extract import answer_candidates, extract_answer, find_answer
from scalpel.microworld import tasks


@pytest.fixture(scope="module")
def comparer() -> C.Comparer:
    return C.Comparer()


def grade(comparer: C.Comparer, gold: str, prediction: str) -> str:
    return comparer.grade(gold, answer_candidates(extract_answer(f"<answer>{prediction}</answer>")) or [""])


def test_canonical_form_drops_what_does_not_change_an_answer():
    assert C.canonical(r"$3 \dfrac{1}{2}$\text{ hours}.") == r"3 \frac{1}{2} hours"
    assert C.canonical(r"\left( -2, 5 \right]") == "( -2, 5 ]"
    assert C.identity_key(C.canonical(r"\( 52_{8} \)")) == C.identity_key("52_8")
    assert C.identity_key("(B)") == "b"


@pytest.mark.parametrize("gold, prediction", [
    # answers whose last number differs from the gold's (plain math-verify accepts some), and more of those shapes
    (r"$-2 < x \leq 5 : (-2, 5]$", r"$-2 < x \leq 5 : (-2, 9]$"),
    (r"$-2 < x \leq 5$ : $(-2, 5]$", r"$-2 < x \leq 5$ : $(-2, 9]$"),
    (r"$-2 < x \leq 5 : (-2, 5]$", "(-2, 9]"),
    ("$x^2-3x+2=0$", "$x^2-3x+2=7$"),
    ("13 n, 5 d", "13 n, 12 d"),
    ("13 n, 5 d", "13 n"),
    ("10 ft x 18 ft", "10 ft x 25 ft"),
    ("$10$ ft x $18$ ft", "$10$ ft x $25$ ft"),
    ("3:30 p.m.", "3:37 p.m."),
    ("3:30 p.m.", "3:30 a.m."),
    ("12 (marbles)", "13 (marbles)"),
    ("12 (marbles)", "12 (apples)"),
    (r"$3 \frac{1}{2}$ hours", r"$3 \frac{1}{3}$ hours"),
    ("all real numbers", "all real"),
    ("52_8", "52_15"),
    ("2x", "2"),  # a one-letter "unit" is a variable: it cannot be dropped
    ("10", "$10$ ft x $18$ ft"),  # a compound prediction is not the one-part gold it starts with
])
def test_shifted_or_partial_answers_are_wrong(comparer, gold, prediction):
    assert grade(comparer, gold, prediction) == C.WRONG


@pytest.mark.parametrize("gold, prediction", [
    ("12 (marbles)", "12"), ("12 (marbles)", "12 marbles"), (r"$3 \frac{1}{2}$ hours", "3.5 hours"),
    (r"$3 \frac{1}{2}$ hours", "7/2 hours"), ("3:30 p.m.", "15:30"), ("3:30 p.m.", "3:30 PM"),
    (r"$-2 < x \leq 5 : (-2, 5]$", "(-2, 5]"), ("13 n, 5 d", "5 d, 13 n"), ("10 ft x 18 ft", "18 ft by 10 ft"),
    ("no solution", "No solution."), (r"\text{Evelyn}", "Evelyn"), ("无解", r"$\text{无解}$"),
    ("1, 2, 3", r"\{3, 2, 1\}"), ("x = 1 or x = 2", "x = 2, x = 1"), (r"\$18.90", "18.90"), ("x=3", "3"),
    (r"\frac{270}7\text{ degrees}", r"\frac{270}{7}"), ("52_8", "52_{8}"), ("B", r"\text{(B)}"),
])
def test_equivalent_answers_are_correct(comparer, gold, prediction):
    assert grade(comparer, gold, prediction) == C.CORRECT


@pytest.mark.parametrize("gold", ["5", "all real numbers", "3:30 p.m.", "13 n, 5 d", r"\frac{1}{2}", "甲", "x=3"])
def test_identical_is_correct_and_empty_never_is(comparer, gold):
    assert grade(comparer, gold, gold) == C.CORRECT
    for empty in ("", "  ", r"\text{}", "$$", r"\boxed{}"):
        assert comparer.grade(gold, answer_candidates(empty) or [empty]) == C.NO_PREDICTION
    assert comparer.grade(gold, []) == C.GOLD_OK


@pytest.mark.parametrize("gold", [r"\frac{1}{", "", "   ", r"\text{}", "}", r"\sqrt{"])
def test_unusable_golds_match_nothing_not_even_themselves(comparer, gold):
    assert comparer.grade(gold, [gold]) == C.GOLD_UNPARSEABLE
    assert comparer.grade(gold, []) == C.GOLD_UNPARSEABLE


def test_prose_predictions_keep_math_verify_extraction(comparer):
    assert grade(comparer, "5", "The answer is $5$.") == C.CORRECT
    assert grade(comparer, r"\frac{1}{2}", "So it is $0.5$ in the end") == C.CORRECT
    assert grade(comparer, "5", "The answer is $6$.") == C.WRONG
    assert grade(comparer, "5", "I do not know") == C.NO_PREDICTION


def test_structure_reading_is_linear_on_hostile_input():
    hostile = ["(" * 100_000, "1, " * 50_000, "a " * 100_000, "1:30 " * 40_000, "5 (" + "x" * 100_000 + ")",
               "\\text{" * 30_000 + "}" * 30_000]
    start = time.monotonic()
    for text in hostile:
        C.form(text)
    assert time.monotonic() - start < 10.0


@pytest.mark.parametrize("completion", [
    "<answer>\n12\n</answer>", "x \\boxed{3} then \\boxed{12}", "<answer></answer> \\boxed{4}", "5 + 7 = 12. #### 12",
    "#### 12\n\nmore", "<answer>\nowl\n</answer> #### 3", "nothing here", "", "<answer>1</answer><answer>2",
])
def test_micro_world_extracts_answers_by_the_shared_rules(completion):
    for hash_fallback in (False, True):
        found = find_answer(completion, hash_fallback)
        assert tasks.extract_answer(completion, hash_fallback) == (None if found is None else found[1])
