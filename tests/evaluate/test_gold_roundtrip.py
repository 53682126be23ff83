"""Every MATH-500 / AIME24 / GSM8k gold answer, fed back as a completion in the expected format, scores correct;
perturbed answers score wrong. Runs math-verify in the worker pool (2 processes); ~1850 golds x 3 completions."""

from __future__ import annotations

import re

import pytest

from scalpel.data import benchmarks as B
from scalpel.evaluate import scoring as S

pytestmark = pytest.mark.shared

_INT = re.compile(r"-?\d+")


def perturb(items: list[B.Item]) -> list[str]:
    """Integers -> n+1; anything else -> the gold of another item with a different gold string."""
    out = []
    for k, it in enumerate(items):
        g = it.gold.strip()
        if _INT.fullmatch(g.replace(",", "")):
            out.append(str(int(g.replace(",", "")) + 1))
            continue
        j = (k + 7) % len(items)
        while items[j].gold.strip() == g:
            j = (j + 1) % len(items)
        out.append(items[j].gold)
    return out


def failures(items, scores):
    return [(it.id, it.gold, s.extracted, s.error) for it, s in zip(items, scores) if not s.correct]


@pytest.mark.parametrize("name, n", [("math500", 500), ("aime24", 30), ("gsm8k", 1319)])
def test_golds_round_trip_and_perturbations_fail(shared_benchmarks, name, n):
    bench = B.get(name)
    items, _ = bench.load(B.LoadContext(data_dir=shared_benchmarks))
    assert len(items) == n
    tagged = [f"<think>\nworking\n</think>\n<answer>\n{it.gold}\n</answer>" for it in items]
    scores = S.score_items(bench.scorer, items, tagged)
    assert all(s.gold_ok for s in scores)
    assert failures(items, scores) == []
    wrong = [f"<answer>\n{p}\n</answer>" for p in perturb(items)]
    scored_right = [(it.id, it.gold, p) for it, p, s in
                    zip(items, perturb(items), S.score_items(bench.scorer, items, wrong)) if s.correct]
    assert scored_right == []


@pytest.mark.slow
@pytest.mark.parametrize("name, template", [
    ("math500", "Therefore the answer is $\\boxed{{{gold}}}$."),  # no answer tag: the last \boxed{} is used
    ("aime24", "Therefore the answer is $\\boxed{{{gold}}}$."),
    ("gsm8k", "3 + 4 = 7.\n#### {gold}"),  # GSM8k's own format, as in its 5-shot examples
])
def test_golds_round_trip_in_the_other_accepted_formats(shared_benchmarks, name, template):
    bench = B.get(name)
    items, _ = bench.load(B.LoadContext(data_dir=shared_benchmarks))
    scores = S.score_items(bench.scorer, items, [template.format(gold=it.gold) for it in items])
    assert failures(items, scores) == []


_LAST_INT = re.compile(r"\d+(?!.*\d)", re.DOTALL)


@pytest.mark.parametrize("name", ["math500", "aime24", "gsm8k"])
def test_golds_with_their_last_number_shifted_score_wrong(shared_benchmarks, name):
    """Last-number false positives on our own benchmarks: a gold whose last number is shifted (``52_8`` ->
    ``52_15``, ``(-2, 5]`` -> ``(-2, 12]``) must never be accepted; plain math-verify accepts 8 of MATH-500's."""
    bench = B.get(name)
    items, _ = bench.load(B.LoadContext(data_dir=shared_benchmarks))
    shifted = [(it, _LAST_INT.sub(lambda m: str(int(m.group()) + 7), it.gold)) for it in items
               if _LAST_INT.search(it.gold)]
    assert len(shifted) > 0.9 * len(items)
    scores = S.score_items(bench.scorer, [it for it, _ in shifted], [f"<answer>\n{s}\n</answer>" for _, s in shifted])
    assert [(it.id, it.gold, s) for (it, s), sc in zip(shifted, scores) if sc.correct] == []
