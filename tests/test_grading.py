"""scalpel.grading, the one maths grader of the rewards and the evaluation: extraction rules, and a pool of worker
processes whose per-item timeout holds off the main thread, kills and replaces hung workers, and never raises."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from scalpel import grading
from scalpel.grading import (
    answer_candidates,
    extract_answer,
    last_answer_tag,
    last_boxed,
)

SLACK = 4.0  # a replacement worker's start-up on a busy 2-core machine


def candidates(completion: str, hash_fallback: bool = False) -> list[str]:
    return answer_candidates(extract_answer(completion, hash_fallback))


# ---------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (r"\boxed{5}", "5"),
    (r"a \boxed{1} b \boxed{\frac{1}{2}} c", r"\frac{1}{2}"),
    (r"\boxed{\frac{1}{2}} and \boxed{x^{2}}", "x^{2}"),
    (r"\boxed{\boxed{5}}", r"\boxed{5}"),  # outermost of the last box
    (r"\boxed{a\{b\}}", r"a\{b\}"),  # escaped braces do not count
    (r"\boxed{3} then \boxed{", "3"),  # unterminated last box: the last complete one
    (r"\boxed {7}", "7"),
    (r"\fbox{8}", "8"),
    ("} } \\boxed{2}}}", "2"),
    (r"\boxed{", None),
    (r"\boxed{unclosed", None),
    ("no box", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_last_boxed_is_linear_on_hostile_input():
    text = "\\boxed{" * 50_000 + "{" * 50_000
    start = time.monotonic()
    assert last_boxed(text) is None
    assert time.monotonic() - start < 5.0


def test_extract_answer_prefers_last_answer_tag_then_last_boxed_then_hash_if_asked():
    c = "<think>\nmaybe \\boxed{3}\n</think>\n<answer>\n\\frac{1}{2}\n</answer>"
    assert extract_answer(c) == "\\frac{1}{2}"
    assert last_answer_tag("<answer>1</answer> x <answer> 2 </answer>") == "2"
    assert extract_answer("<answer>1</answer> no wait <answer>2</answer>") == "2"
    assert extract_answer("so \\boxed{\\frac{a}{b}} or \\boxed{\\sqrt{\\frac{1}{2}}}") == "\\boxed{\\sqrt{\\frac{1}{2}}}"
    assert extract_answer("no answer here 42") is None
    assert extract_answer("3 + 4 = 7 #### 7") is None
    assert extract_answer("3 + 4 = 7 #### 7", hash_fallback=True) == "7"
    assert extract_answer("<answer>\n7") is None and last_answer_tag("<answer>1") is None  # unterminated: none
    assert extract_answer(r"<answer></answer> \boxed{4}") is None  # the answer tag is authoritative, even empty
    assert extract_answer(r"<answer></answer> #### 4", hash_fallback=True) is None


def test_answer_candidates():
    assert candidates("<answer>\n\\frac12\n</answer>") == [r"\boxed{\frac12}", r"\frac12"]  # bare: boxed first
    assert candidates("<answer>$x=3$</answer>") == ["$x=3$"]  # has delimiters: as is
    assert candidates("<answer>The answer is 10.</answer>") == ["The answer is 10."]  # prose: as is
    assert candidates(r"think \boxed{4}") == [r"\boxed{4}"]
    assert candidates("#### 1,234", hash_fallback=True) == [r"\boxed{1,234}", "1,234"]
    assert candidates("nothing") == [] and answer_candidates(None) == [] and answer_candidates("") == []


# ---------------------------------------------------------------------------------------------------------------
# The grader
# ---------------------------------------------------------------------------------------------------------------


def test_golds_and_outcomes(grader):
    items = [("\\$18.90", candidates("<answer>18.90</answer>")), ("2\\sqrt{5}", [r"\boxed{\sqrt{20}}"]),
             ("2\\sqrt{5}", ["2"]), ("5", []), (r"\frac{1}{", []), (r"\text{}", [r"\text{}"]), ("5", ["\\text{}"])]
    assert grader.grade(items) == [grading.CORRECT, grading.CORRECT, grading.WRONG, grading.GOLD_OK,
                                   grading.GOLD_UNPARSEABLE, grading.GOLD_UNPARSEABLE, grading.NO_PREDICTION]


def test_hung_worker_is_killed_and_replaced_and_others_still_graded(grader):
    pids = {w.pid for w in grader._workers}
    kills = grader.stats.worker_kills
    items = [("1", [r"\boxed{2^{2^{2^{2^{2^{2}}}}}}"]), ("3", ["3"]), ("4", ["5"]), ("6", [r"\boxed{6}"])]
    start = time.monotonic()
    assert grader.grade(items) == [grading.TIMEOUT, grading.CORRECT, grading.WRONG, grading.CORRECT]
    assert time.monotonic() - start < grader.timeout + SLACK
    assert grader.stats.worker_kills == kills + 1
    killed = pids - {w.pid for w in grader._workers}
    assert len(killed) == 1
    assert len(grader._workers) == grader.n_workers  # replaced at once
    deadline = time.monotonic() + 5
    for pid in killed:  # really gone (killed and reaped by the zygote), not left running
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_worker_that_dies_mid_item_is_crashed_and_a_call_timeout_bounds_a_call():
    g = grading.Grader(workers=1, timeout=30.0)
    try:
        g.warm_up()
        result = {}
        items = [("1", [r"\boxed{9^{9^{9}}}"]), ("2", ["2"])]
        t = threading.Thread(target=lambda: result.setdefault("r", g.grade(items)))
        t.start()
        time.sleep(0.5)
        os.kill(g._workers[0].pid, 9)
        t.join(timeout=60)
        assert result["r"] == [grading.CRASHED, grading.CORRECT]

        g.call_timeout = 1.5  # the whole call, whatever the per-item timeout
        start = time.monotonic()
        out = g.grade([("1", [r"\boxed{9^{9^{9}}}"]), ("1", [r"\boxed{8^{8^{8}}}"])])
        assert out == [grading.TIMEOUT, grading.TIMEOUT]
        assert time.monotonic() - start < 1.5 + SLACK
    finally:
        g.close()


def test_duplicates_and_repeats_are_graded_once(grader):
    graded = grader.stats.graded
    items = [("41", ["41"])] * 28 + [("41", ["42"])] * 28  # a GRPO group of 56 with two distinct answers
    assert grader.grade(items) == [grading.CORRECT] * 28 + [grading.WRONG] * 28
    assert grader.stats.graded == graded + 2
    assert grader.grade(items[:1]) == [grading.CORRECT] and grader.stats.graded == graded + 2  # LRU hit


def test_unstartable_workers_mean_unavailable_not_an_exception(monkeypatch, caplog):
    g = grading.Grader(workers=1, timeout=1.0, startup_timeout=5.0)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    try:
        assert g.grade([("1", ["1"])]) == [grading.UNAVAILABLE]
        assert "fail to start" in caplog.text
    finally:
        g.close()


def test_malformed_items_never_raise(grader):
    out = grader.grade([(None, None), (5, ["5"]), ("5", [None])])
    assert out == [grading.GOLD_UNPARSEABLE, grading.CORRECT, grading.NO_PREDICTION]
