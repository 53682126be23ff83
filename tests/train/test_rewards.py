"""GRPO rewards: TRL's signature, the paper's format rule (no text after </answer>), math-verify accuracy that never
gives a free 1.0, and a hard per-item timeout that holds off the main thread and never raises. The grader itself and
its extraction rules are tested in tests/test_grading.py."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalpel import grading
from scalpel.config import REWARD_NAMES
from scalpel.train.rewards import (
    REWARDS,
    accuracy_reward,
    build_reward_funcs,
    completion_text,
    format_reward,
    tag_count_reward,
)

SLACK = 4.0  # a replacement worker's start-up on a busy 2-core machine
pytestmark = pytest.mark.usefixtures("grader")  # the shared grader the rewards use, 1 s per item (tests/conftest.py)


def conv(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def good(answer: str, think: str = "Let me think.") -> str:
    return f"<think>\n{think}\n</think>\n<answer>\n{answer}\n</answer>"


TRL_KWARGS = dict(prompts=None, completion_ids=None, trainer_state=object(), log_extra=lambda *a, **k: None)

# ---------------------------------------------------------------------------------------------------------------
# Signature
# ---------------------------------------------------------------------------------------------------------------


def test_registry_and_trl_weights():
    funcs, weights = build_reward_funcs({"accuracy": 1.0, "format": 0.1})
    assert funcs == [accuracy_reward, format_reward] and weights == [1.0, 0.1]
    assert set(REWARDS) == set(REWARD_NAMES) == {"accuracy", "format", "tag_count"}  # config validates by name
    assert build_reward_funcs({"tag_count": 0})[1] == [0.0]  # logged, no effect on the advantage
    for bad in ({}, {"acuracy": 1.0}, {"format": float("nan")}, {"format": "0.1"}, {"format": True}):
        with pytest.raises(ValueError):
            build_reward_funcs(bad)


def test_completion_text_accepts_trl_shapes():
    assert completion_text("plain") == "plain"
    assert completion_text(conv("chat")) == "chat"
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert completion_text([{"role": "assistant", "content": parts}]) == "ab"
    assert completion_text([]) == "" and completion_text(None) == "" and completion_text([{"role": "assistant"}]) == ""


# ---------------------------------------------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------------------------------------------


def test_accuracy_basic_cases_conversational_and_plain():
    completions = [
        good("5"),  # correct
        good("6"),  # wrong
        good(r"The answer is $\boxed{\dfrac{1}{2}}$."),  # equivalent LaTeX
        r"no tags but \boxed{0.5} at the end",  # boxed fallback
        good("(1, 2)"),  # interval, no delimiters
        good("B"),  # multiple choice letter
        "<think>\nno answer at all\n</think>",  # no prediction
        good("5"),  # gold does not parse -> None
        good("5"),  # gold missing -> None
    ]
    answers = ["5", "5", r"\frac{1}{2}", "1/2", "(1,2)", "B", "3", r"\frac{1}{", None]
    expected = [1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, None, None]
    assert accuracy_reward(completions, answer=answers, **TRL_KWARGS) == expected
    assert accuracy_reward([conv(c) for c in completions], answer=answers, **TRL_KWARGS) == expected


def test_unparseable_gold_is_never_a_free_one():
    # open-r1 scores 1.0 when the gold fails to parse; here it is None (TRL turns it into NaN and skips it),
    # even when the prediction repeats the gold's text verbatim.
    golds = [r"\frac{1}{", "", "   ", r"\begin{"]
    rewards = accuracy_reward([good(g) for g in golds], answer=golds)
    assert rewards == [None] * len(golds)


def test_accuracy_numeric_golds_and_misuse():
    assert accuracy_reward([good("12")], answer=[12]) == [1.0]
    assert accuracy_reward([good("12")], answer=[float("nan")]) == [None]
    with pytest.raises(TypeError):
        accuracy_reward([good("1")])
    with pytest.raises(ValueError):
        accuracy_reward([good("1")], answer=["1", "2"])
    assert accuracy_reward([], answer=[]) == []


def test_accuracy_logs_timeouts_through_trl_log_metric(grader):
    logged = {}
    hang = r"10^{10^{10}}"  # sympy evaluates the power: minutes and gigabytes
    start = time.monotonic()
    rewards = accuracy_reward([good("1"), good("2")], answer=[hang, "2"],
                              log_metric=lambda name, value: logged.__setitem__(name, value))
    assert time.monotonic() - start < grader.timeout + SLACK
    assert rewards == [0.0, 1.0]
    assert logged["accuracy/timeouts"] == 1.0


def test_accuracy_off_the_main_thread(grader):
    """math-verify's own (signal) timeout raises off the main thread; ours does not care which thread calls."""
    out = {}

    def run(name, answer):
        out[name] = accuracy_reward([good(answer), good("0")], answer=[answer, answer])

    threads = [threading.Thread(target=run, args=(f"t{i}", str(i + 1))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert out == {f"t{i}": [1.0, 0.0] for i in range(3)}

    with ThreadPoolExecutor(2) as pool:  # a hanging item on a worker thread still comes back in time
        start = time.monotonic()
        result = pool.submit(accuracy_reward, [good(r"\boxed{9^{9^{9}}}")], answer=["1"]).result(timeout=30)
        assert result == [0.0] and time.monotonic() - start < grader.timeout + SLACK


# ---------------------------------------------------------------------------------------------------------------
# format and tag_count
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    (good("5"), 1.0),
    (good("5") + "\n", 1.0),  # whitespace-only tail allowed (decoders often leave a newline before EOS)
    (good("5") + " \n\t ", 1.0),
    ("<think>\n\n</think>\n<answer>\n\n</answer>", 1.0),  # empty bodies allowed, as in open-r1
    ("<think>\na\nb\n</think>\n<answer>\nx\ny\n</answer>", 1.0),  # multi-line bodies
    (good("5") + "\n<think>", 0.0),  # the paper's tag spam (Fig. 10/14): open-r1's MULTILINE regex scored 1.0
    (good("5") + "\n</answer></answer><tag>", 0.0),
    (good("5") + "\nDone.", 0.0),
    (" " + good("5"), 0.0),  # nothing before <think>
    ("<think>\n</think>\n<answer>\n5\n</answer>", 0.0),  # "<think>\n</think>" shares one newline
    ("<think>\nx\n</think>\n<answer>\n</answer>", 0.0),
    ("<think>x</think><answer>5</answer>", 0.0),  # no newlines
    ("<think>\nx\n</think>\n\n<answer>\n5\n</answer>", 0.0),  # blank line between blocks
    ("<think>\nx\n</think>\n<answer>\n5\n</answer>\n<answer>\n6\n</answer>", 0.0),
    ("<think>\na <think> b\n</think>\n<answer>\n5\n</answer>", 0.0),  # a tag inside a body
    ("<think>\nx\n</think>\n<answer>\n5", 0.0),  # truncated
    ("", 0.0),
])
def test_format_reward(text, expected):
    assert format_reward([text]) == [expected]
    assert format_reward([conv(text)], **TRL_KWARGS) == [expected]


def test_open_r1_format_regex_let_the_papers_tag_spam_through_ours_does_not():
    import re

    open_r1 = r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$"  # open-r1's format_reward, as the paper ran it
    spam = good("5") + "\n</answer>\n<answer>\n</think>\n<tag><tag>"  # Fig. 14: correct answer, then XML tags
    assert re.match(open_r1, spam, re.DOTALL | re.MULTILINE)
    assert format_reward([spam]) == [0.0]


@pytest.mark.parametrize("text, expected", [
    (good("5"), 1.0),
    ("<think>\nx\n</think>\n", 0.5),
    ("\n<answer>\n5\n</answer>", 0.5),
    (good("5") + good("6"), 0.0),  # every marker twice
    ("nothing", 0.0),
])
def test_tag_count_reward_matches_open_r1(text, expected):
    assert tag_count_reward([text, conv(text)]) == [expected, expected]


# ---------------------------------------------------------------------------------------------------------------
# Robustness: pathological and random strings
# ---------------------------------------------------------------------------------------------------------------

BIG = "9" * 1000
PATHOLOGICAL = [
    r"\boxed{10^{10^{10}}}", r"\boxed{" + "{" * 2000 + "5" + "}" * 2000 + "}", "{" * 10_000, "}" * 10_000,
    BIG, rf"\boxed{{{BIG}}}", rf"\boxed{{{BIG}.{BIG}}}", r"\boxed{1000000!}", r"\boxed{\frac{1}{0}}",
    r"\boxed{\frac{", r"\boxed{\sqrt{", r"\left( \right", r"$$$$", r"\begin{pmatrix}1&2", r"\boxed{x^x^x^x^x^x}",
    r"\boxed{", r"\boxed", "<answer>" * 50, "</answer>" * 50, "<answer>\\boxed{</answer>",
    "<answer>\n" + "\\frac{1}{" * 300 + "\n</answer>", "∑∫√∞ π ≤ ≥ ≠ ½ ⅓ 𝔸 中文 答案 \u200b\u202e",
    "\x00\x01\x7f",
    "\ud800 lone surrogate", "<answer>1e100000</answer>", "<answer>" + "+".join(["x"] * 3000) + "</answer>",
    "<answer>" + "1" * 100_000 + "</answer>", r"\boxed{\int_0^1 x^{10^{10}} dx}", r"\boxed{(-1)^{1/2}}",
    r"\boxed{0.\overline{3}}", r"\boxed{\text{\text{\text{}}}}", "\\" * 5000, r"\boxed{\\}",
]
GOLDS = ["5", r"\frac{1}{2}", "(1,2)", "B", BIG, r"10^{10^{10}}", r"\frac{1}{", "", r"\sqrt{", "∞", "x=3"]


def test_pathological_strings_never_raise_and_stay_within_the_timeout(grader, monkeypatch):
    monkeypatch.setattr(grader, "timeout", 0.5)  # many of these hang: keep the test short
    for text in PATHOLOGICAL:
        for fn in (format_reward, tag_count_reward):
            out = fn([text, good(text), conv(text)])
            assert all(r in (0.0, 0.25, 0.5, 0.75, 1.0) for r in out)
    # accuracy: as completions (bare and inside <answer>), then as golds; each item is bounded by the timeout
    for completions, answers in (
        (PATHOLOGICAL + [conv(good(t)) for t in PATHOLOGICAL], ["5"] * 2 * len(PATHOLOGICAL)),
        ([good("5")] * len(PATHOLOGICAL), PATHOLOGICAL),
    ):
        graded, timeouts = grader.stats.graded, grader.stats.outcomes[grading.TIMEOUT]
        start = time.monotonic()
        out = accuracy_reward(completions, answer=answers)
        elapsed = time.monotonic() - start
        assert len(out) == len(answers) and all(r in (0.0, 1.0, None) for r in out)
        n_timeouts = grader.stats.outcomes[grading.TIMEOUT] - timeouts
        assert n_timeouts >= 1  # the huge exponents really do hang math-verify
        assert elapsed < (grader.stats.graded - graded) * grader.timeout + SLACK
        assert elapsed < n_timeouts * grader.timeout + SLACK + 10  # hung items do not pile up start-up costs


LATEX_TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "\n", " ", r"\boxed{", "{", "}", r"\frac", r"\dfrac",
                "^", "_", "$", r"\(", r"\)", r"\[", r"\]", r"\sqrt", r"\{", r"\}", r"\left(", r"\right)", r"\text{",
                r"\infty", r"\pi", "x", "y", "=", ",", ".", "(", ")", "[", "]", "-", "+", "/", "!", "%", "\\",
                "0", "1", "2", "7", "10", "99999999999999999999", "ö", "中", "😀", "\x00"]
texts = st.one_of(
    st.lists(st.sampled_from(LATEX_TOKENS), max_size=40).map("".join),
    st.text(max_size=60),
    st.builds(good, st.lists(st.sampled_from(LATEX_TOKENS), max_size=12).map("".join)),
)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(texts, min_size=1, max_size=20))
def test_format_and_tag_count_on_random_strings(batch):
    formats, tags = format_reward(batch), tag_count_reward([conv(t) for t in batch])
    assert len(formats) == len(tags) == len(batch)
    for f, t in zip(formats, tags):
        assert f in (0.0, 1.0) and t in (0.0, 0.25, 0.5, 0.75, 1.0)
        if f == 1.0:
            assert t == 1.0  # the strict format implies every tag exactly once


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(texts, st.one_of(st.sampled_from(GOLDS), texts)), min_size=1, max_size=30))
def test_accuracy_on_random_batches(grader, batch):
    completions, answers = zip(*batch)
    graded = grader.stats.graded
    start = time.monotonic()
    out = accuracy_reward([conv(c) for c in completions], answer=list(answers), trainer_state=None)
    elapsed = time.monotonic() - start
    assert len(out) == len(batch) and all(r is None or r in (0.0, 1.0) for r in out)
    assert not any(isinstance(r, float) and math.isnan(r) for r in out)
    assert elapsed < max(1, grader.stats.graded - graded) * grader.timeout + SLACK
