"""Property-based fuzzing: >= 10,000 generated and pathological completions through every GRPO reward and every
evaluation scorer. No call raises, every result is in range, and every call stays within its timeout budget."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalpel.data.items import Item
from scalpel.evaluate.scoring import score_items
from scalpel.train.rewards import accuracy_reward, format_reward, tag_count_reward

pytestmark = [pytest.mark.slow]
BATCHES, PER_BATCH = 100, 100  # 10,000 completions per reward / scorer
SLACK = 5.0

TOKENS = ["<think>", "</think>", "<answer>", "</answer>", "\n", " ", r"\boxed{", "{", "}", r"\frac", "^", "_", "$",
          r"\sqrt", r"\left(", r"\right)", r"\text{", r"\infty", "x", "=", ",", ".", "(", ")", "-", "+", "/", "\\",
          "0", "1", "7", "42", "99999999999999999999", "A", "B", "C", "D", "####", "The answer is", "ö", "中", "😀",
          "\x00", "\u202e", "\ud800"]
BIG = "9" * 5000
PATHOLOGICAL = ["", " ", "\x00" * 50, "{" * 5000, "}" * 5000, "<answer>" * 200, "</answer>" * 200, BIG,
                rf"<answer>\boxed{{{BIG}}}</answer>", r"\boxed{10^{10^{10}}}", "<answer>" + "\\frac{1}{" * 200 +
                "</answer>", "#### " + BIG, "A" * 20000, "<think>\n" + "x" * 50000 + "\n</think>\n<answer>\n5\n</answer>",
                "\\" * 3000, "∑∫√∞ 中文 \u200b\u202e", "<answer>\nB) Tarsa\n</answer>" * 100]
texts = st.one_of(  # pathological strings are 1 draw in 8: several of them hang math-verify until the timeout
    st.lists(st.sampled_from(TOKENS), max_size=60).map("".join),
    st.lists(st.sampled_from(TOKENS), max_size=20).map("".join),
    st.text(max_size=200),
    st.text(max_size=20),
    st.integers().map(str),
    st.from_regex(r"<answer>\n-?[0-9]{1,6}\n</answer>", fullmatch=True),
    st.sampled_from(PATHOLOGICAL),
    st.lists(st.sampled_from(TOKENS), max_size=10).map(lambda t: "<think>\n" + "".join(t) + "\n</think>\n<answer>\n"
                                                        + "".join(reversed(t)) + "\n</answer>"),
)
batches = st.lists(texts, min_size=PER_BATCH, max_size=PER_BATCH)
SETTINGS = settings(max_examples=BATCHES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(autouse=True)
def short_timeout(grader, monkeypatch):
    """0.25 s per maths item (the default is seconds): hung items cost the budget, not the test suite's time."""
    monkeypatch.setattr(grader, "timeout", 0.25)


def conv(t: str) -> list[dict]:
    return [{"role": "assistant", "content": t}]


@SETTINGS
@given(batch=batches)
def test_format_and_tag_count_rewards(batch, tally):
    for fn, allowed in ((format_reward, {0.0, 1.0}), (tag_count_reward, {0.0, 0.25, 0.5, 0.75, 1.0})):
        out = fn([conv(t) for t in batch])
        assert len(out) == len(batch) and set(out) <= allowed
        tally(f"fuzzed completions: {fn.__name__}", len(batch))


@SETTINGS
@given(batch=batches, golds=st.lists(st.sampled_from(["5", r"\frac{1}{2}", "(1,2)", BIG, r"\frac{1}{", "", "x=3"]),
                                     min_size=PER_BATCH, max_size=PER_BATCH))
def test_accuracy_reward(grader, batch, golds, tally):
    graded = grader.stats.graded
    start = time.monotonic()
    out = accuracy_reward([conv(t) for t in batch], answer=golds)
    elapsed = time.monotonic() - start
    assert len(out) == len(batch) and all(r is None or r in (0.0, 1.0) for r in out)
    assert elapsed < max(1, grader.stats.graded - graded) * grader.timeout + SLACK
    tally("fuzzed completions: accuracy_reward", len(batch))


def items_for(scorer: str, n: int, test_world=None, ifeval_rows=None) -> list[Item]:
    if scorer in ("maths", "gsm8k"):
        golds = ["5", r"\frac{1}{2}", "(1,2)", "-3.5", r"\sqrt{2}"]
        return [Item(f"i{k}", "q", golds[k % len(golds)]) for k in range(n)]
    if scorer == "mcq":
        return [Item(f"i{k}", "q", "ABCD"[k % 4], choices=["one", "two", "three", "four"]) for k in range(n)]
    if scorer == "ifeval":
        return [Item(f"i{k}", r["prompt"], "", extra={"ifeval": r}) for k, r in
                zip(range(n), (ifeval_rows[k % len(ifeval_rows)] for k in range(n)))]
    if scorer == "microworld":
        its = [it for task in ("maths_easy", "facts_mcq", "fewshot_maths", "instruct")
               for it in test_world.items(task, "heldout")[:5]]
        return [Item(f"i{k}", "q", str(its[k % len(its)]["answer"]), extra={"microworld": its[k % len(its)]})
                for k in range(n)]
    raise AssertionError(scorer)


@pytest.fixture(scope="module")
def ifeval_rows(shared_benchmarks):
    path = shared_benchmarks / "ifeval_input_data.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()[:60] if x.strip()]


@pytest.mark.parametrize("scorer", ["maths", "gsm8k", "mcq", "microworld", "ifeval"])
def test_every_scorer(scorer, grader, test_world, request, tally):
    rows = request.getfixturevalue("ifeval_rows") if scorer == "ifeval" else None
    items = items_for(scorer, PER_BATCH, test_world, rows)

    @SETTINGS
    @given(batch=batches)
    def run(batch):
        graded = grader.stats.graded
        start = time.monotonic()
        scores = score_items(scorer, items, batch, grader=grader)
        elapsed = time.monotonic() - start
        assert len(scores) == len(batch) and all(isinstance(s.correct, bool) for s in scores)
        if scorer in ("maths", "gsm8k"):
            assert elapsed < max(1, grader.stats.graded - graded) * grader.timeout + SLACK
        tally(f"fuzzed completions: scorer {scorer}", len(batch))

    run()


# ---------------------------------------------------------------------------------------------------------------
# scalpel grade: fuzzed input files (rows of any shape, broken lines, odd values) never crash it
# ---------------------------------------------------------------------------------------------------------------

VALUES = st.one_of(texts, st.none(), st.booleans(), st.integers(), st.floats(), st.lists(texts, max_size=3),
                   st.lists(st.fixed_dictionaries({"role": st.just("assistant"), "content": texts}), max_size=2),
                   st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
ROWS = st.one_of(
    st.fixed_dictionaries({"gold": VALUES, "completion": VALUES}, optional={"id": VALUES}),
    st.fixed_dictionaries({"gold": st.sampled_from(["5", r"\frac{1}{2}", "3:30 p.m.", "13 n, 5 d", r"\frac{1}{"]),
                           "completion": texts}),
    st.dictionaries(st.sampled_from(["gold", "completion", "id", "other"]), VALUES, max_size=4),
    VALUES,
)
LINES = st.lists(st.one_of(ROWS.map(lambda r: json.dumps(r)), st.text(max_size=50).map(lambda t: t.replace("\n", " "))),
                 max_size=30)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(lines=LINES, fmt=st.sampled_from(["jsonl", "csv"]))
def test_grade_command_on_fuzzed_files(grader, tmp_path, lines, fmt, tally):
    from scalpel.errors import UserError
    from scalpel.grading import cli as grade_cli

    path = tmp_path / f"fuzz.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    else:  # a CSV of the same lines, split at commas, under a gold,completion,id header
        path.write_text("gold,completion,id\n" + "\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    start = time.monotonic()
    try:
        graded, rejected = grade_cli.grade_file(path, grader=grader)
    except UserError as exc:
        assert str(path) in str(exc)
        return
    assert time.monotonic() - start < max(1, len(graded)) * grader.timeout + SLACK
    if fmt == "jsonl":
        assert len(graded) + sum(rejected.values()) == sum(1 for x in lines if x.strip())
    assert all(g["outcome"] in (*grade_cli.OUTCOMES, "crashed", "error") for g in graded)
    assert len({g["id"] for g in graded}) == len(graded)
    summary = grade_cli.summary(graded, rejected)
    json.dumps([graded, summary])
    grade_cli.render(str(path), summary)
    tally("fuzzed rows: scalpel grade", len(lines))
