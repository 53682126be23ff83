"""Scoring on crafted completions: answer tags, boxed, GSM8k's ####, MCQ letters; scoring never raises and never
hangs (math-verify's signal timeouts only work on the main thread), and a maths score agrees with the GRPO accuracy
reward on the same completion (one grader, scalpel.grading, whose own tests are in tests/test_grading.py)."""

from __future__ import annotations

import threading
import time

import pytest

from scalpel import grading
from scalpel.data.items import LETTERS, Item, gsm8k_gold, mcq_prompt
from scalpel.evaluate import scoring as S


def test_maths_scores_record_the_extracted_answer():
    c = "<think>\nmaybe \\boxed{3}\n</think>\n<answer>\n\\frac{1}{2}\n</answer>"
    got = S.score_items("maths", [Item("x", "q", "1/2")] * 4,
                        [c, "so \\boxed{\\frac{a}{b}} or \\boxed{\\sqrt{\\frac{1}{4}}}", "no answer here 1/2", "<answer>\n7"])
    assert [s.extracted for s in got] == ["\\frac{1}{2}", "\\boxed{\\sqrt{\\frac{1}{4}}}", None, None]
    assert [s.correct for s in got] == [True, True, False, False]


@pytest.mark.parametrize("gold, completion, correct", [
    ("\\frac{1}{2}", "<answer>1/2</answer>", True),
    ("\\frac{1}{2}", "<answer>0.5</answer>", True),
    ("\\frac 34", "<answer>\\frac{3}{4}</answer>", True),
    ("\\$18.90", "<answer>18.90</answer>", True),
    ("(-\\infty, 2) \\cup (3, \\infty)", "<answer>(-\\infty,2)\\cup(3,\\infty)</answer>", True),
    ("10", "<answer>The answer is 10.</answer>", True),
    ("10", "<answer>$10$</answer>", True),
    ("10", "the total is \\boxed{10}", True),
    ("10", "<answer>11</answer>", False),
    ("10", "<answer></answer>", False),
    ("10", "I don't know", False),
    ("2\\sqrt{5}", "<answer>\\sqrt{20}</answer>", True),
    ("2\\sqrt{5}", "<answer>2</answer>", False),
])
def test_maths_scoring_examples(gold, completion, correct):
    [s] = S.score_items("maths", [Item("x", "q", gold)], [completion])
    assert s.gold_ok and s.correct is correct


def test_gsm8k_gold_and_hash_fallback():
    assert gsm8k_gold("so 3+4=7\n#### 7") == "7"
    assert gsm8k_gold("#### 1,234") == "1234"
    assert gsm8k_gold("#### -5") == "-5"
    assert gsm8k_gold("no final answer") is None
    assert gsm8k_gold("#### about seven") is None
    items = [Item("a", "q", "1234")] * 3
    got = S.score_items("gsm8k", items, ["It is 1,234 in total. #### 1234", "<answer>1,234</answer>",
                                         "#### 1235"])
    assert [s.correct for s in got] == [True, True, False]


def test_unparseable_gold_is_unusable_never_correct():
    [s] = S.score_items("maths", [Item("x", "q", "\\text{}")], ["<answer>\\text{}</answer>"])
    assert s.gold_ok is False and s.correct is False and s.error
    assert S.check_golds(["7", "\\frac{1}{2}", ""]) == [True, True, False]


def test_mcq_letter_extraction():
    choices = ["Paris", "Rome", "Oslo", "Bern"]
    cases = {"<answer>B</answer>": "B", "<answer>(C)</answer>": "C", "<answer>D) Bern</answer>": "D",
             "<answer>\\boxed{A}</answer>": "A", "<answer>Oslo</answer>": "C", "<answer>b</answer>": None,
             "<answer>E</answer>": None, "The answer is (B).": "B", "\\boxed{D}": "D", "no idea": None,
             "<answer>A. Paris</answer>": "A", "<answer>Answer: C</answer>": "C"}
    for completion, letter in cases.items():
        assert S.extract_letter(completion, 4, choices) == letter, completion


def test_mmlu_letter_mapping_and_prompt():
    prompt = mcq_prompt("Which city is the capital of Italy?", ["Paris", "Rome", "Oslo", "Bern"])
    assert "A) Paris\nB) Rome\nC) Oslo\nD) Bern" in prompt and "<answer>" in prompt
    item = Item("m", prompt, "B", choices=["Paris", "Rome", "Oslo", "Bern"])
    got = S.score_items("mcq", [item] * 4, ["<answer>B</answer>", "<answer>A</answer>", "<answer>Rome</answer>",
                                            "B"])
    assert [s.correct for s in got] == [True, False, True, False]
    assert LETTERS[:10] == "ABCDEFGHIJ"
    assert S.extract_letter("<answer>J</answer>", 10) == "J" and S.extract_letter("<answer>J</answer>", 4) is None


def test_scoring_never_raises_on_garbage():
    garbage = ["<answer>\\frac{</answer>", "\\boxed{\\begin{pmatrix}}",
               "<answer>\x00\x01</answer>", "<answer>9^{9^{9^{9}}}</answer>", None or "", "<answer>x = 4</answer>"]
    items = [Item(str(i), "q", "3") for i in range(len(garbage))]
    scores = S.score_items("maths", items, garbage)
    assert all(s.correct is False for s in scores)


def test_scoring_off_the_main_thread_works():
    out = {}

    def run():
        out["r"] = S.score_items("maths", [Item("a", "q", "7")] * 2, ["<answer>7</answer>", "<answer>8</answer>"])

    t = threading.Thread(target=run)
    t.start()
    t.join(120)
    assert [(s.gold_ok, s.correct, s.error) for s in out["r"]] == [(True, True, None), (True, False, None)]


def test_a_hanging_verification_is_killed_and_scored_wrong():
    grader = grading.Grader(workers=1, timeout=1.0)
    items = [Item(str(i), "q", g) for i, g in enumerate(["1", "2", "3", "4"])]
    completions = ["<answer>1</answer>", "\\boxed{9^{9^{9}}}", "<answer>3</answer>", "<answer>5</answer>"]
    try:
        t0 = time.perf_counter()
        res = S.score_items("maths", items, completions, grader=grader)
        assert time.perf_counter() - t0 < 60
    finally:
        grader.close()
    assert [s.correct for s in res] == [True, False, True, False]
    assert res[1].error == "timeout" and grader.stats.worker_kills == 1


# The reward and the evaluation grade one completion the same way: same extraction, same parsing, same grader.
AGREEMENT = [  # (gold, completion)
    ("5", "<think>\nx\n</think>\n<answer>\n5\n</answer>"),
    ("5", "<answer>6</answer>"),
    ("10", "<answer>The answer is 10.</answer>"),  # prose: parsed as is
    ("10", "<answer>$10$</answer>"),
    ("\\frac{1}{2}", "<answer>1/2</answer>"),  # bare: parsed as \boxed{1/2}
    ("\\frac{1}{2}", "<answer>\\frac 12</answer>"),
    ("\\frac{1}{2}", "no tags, so \\boxed{0.5} at the end"),
    ("\\frac{1}{2}", "\\boxed{1} then \\boxed{\\frac{1}{2}}"),  # the last box
    ("\\frac{1}{2}", "<answer>3</answer> but \\boxed{\\frac{1}{2}}"),  # the answer tag wins
    ("4", "<answer></answer> \\boxed{4}"),  # an empty answer tag is still the answer
    ("2", "<answer>1</answer> no wait <answer>2</answer>"),
    ("\\$18.90", "<answer>18.90</answer>"),
    ("\\$18.90", "<answer>\\$18.90</answer>"),
    ("2\\sqrt{5}", "<answer>\\sqrt{20}</answer>"),
    ("2\\sqrt{5}", "<answer>2</answer>"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "<answer>(-\\infty,2)\\cup(3,\\infty)</answer>"),
    ("(1,2)", "<answer>(1, 2)</answer>"),
    ("B", "<answer>B</answer>"),
    ("\\text{Evelyn}", "<answer>\\text{Evelyn}</answer>"),
    ("1234", "<answer>1,234</answer>"),
    ("7", "3 + 4 = 7 #### 7"),  # no hash fallback for maths (GSM8k's scorer adds it)
    ("7", "<answer>\n7"),  # unterminated
    ("7", "I don't know"),
    ("\\frac{1}{", "<answer>\\frac{1}{</answer>"),  # unparseable gold: skipped by both, never a free 1.0
    ("\\text{}", "<answer>\\text{}</answer>"),
]


def test_reward_and_eval_scorer_agree():
    from scalpel.train.rewards import accuracy_reward

    golds, completions = zip(*AGREEMENT)
    rewards = accuracy_reward(list(completions), answer=list(golds))
    scores = S.score_items("maths", [Item(str(i), "q", g) for i, g in enumerate(golds)], list(completions))
    assert [None if not s.gold_ok else float(s.correct) for s in scores] == rewards
    # and both are right: a spot check of the table above
    assert rewards[:4] == [1.0, 0.0, 1.0, 1.0] and rewards[-2:] == [None, None]
    assert rewards[8:10] == [0.0, 0.0] and rewards[11:15] == [1.0, 1.0, 1.0, 0.0]
