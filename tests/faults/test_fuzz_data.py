"""Fuzzed data: every loader gets files mixing good rows with >= 10 kinds of malformed ones. Good rows load, each
bad one is rejected and counted under a reason, and nothing raises; an evaluation over such a file runs to the end
and reports the counts in its summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalpel.data import benchmarks as B

HUGE = "x" * 300_000
UNICODE = "Wie viel ist 2+2? \u202e\u200b 中文 😀 \U0001d538"  # odd but valid: must load


def bad_values(field: str) -> dict[str, object]:
    """kind -> a replacement value for ``field`` (None entry: the field is deleted)."""
    return {"missing field": None, "empty string": "", "whitespace only": "   ", "list instead of text": [1, 2],
            "object instead of text": {"a": 1}, "null": "__null__", "huge string": HUGE, "boolean": True}


def write_jsonl(path: Path, rows: list) -> Path:
    lines = []
    for r in rows:
        lines.append(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def fuzz_rows(good, field: str, dup_key: str | None) -> tuple[list, int, int]:
    """Good rows + one malformed row per kind; returns (rows, n_good, n_bad)."""
    rows = [good(i) for i in range(4)] + [{**good(90), field: UNICODE}]
    n_bad = 0
    for kind, value in bad_values(field).items():
        r = good(100 + n_bad)
        if value is None:
            del r[field]
        else:
            r[field] = None if value == "__null__" else value
        rows.append(r)
        n_bad += 1
    rows += ["{this is not json", "[1, 2, 3]", "42"]  # invalid JSON, an array row, a number row
    n_bad += 3
    if dup_key is not None:
        rows.append(good(0))  # the same id again
        n_bad += 1
    return rows, 5, n_bad


LOADERS = {
    # benchmark: (good row factory, field to break, id-carrying field or None)
    "math500": (lambda i: {"problem": f"What is {i} + 1?", "answer": str(i + 1), "unique_id": f"u{i}"}, "problem",
                None),
    "gsm8k": (lambda i: {"question": f"Tom has {i} apples.", "answer": f"He has {i}.\n#### {i}"}, "question", None),
    "mmlu": (lambda i: {"question": f"Q{i}?", "choices": ["a", "b", "c", "d"], "answer": i % 4,
                        "subject": "abstract_algebra"}, "question", None),
    "mmlu_pro": (lambda i: {"question": f"Q{i}?", "options": ["a", "b", "c", "d"], "answer": "A",
                            "question_id": i}, "question", "question_id"),
    "gpqa_diamond": (lambda i: {"Question": f"Q{i}?", "Correct Answer": "yes", "Incorrect Answer 1": "no",
                                "Incorrect Answer 2": "maybe", "Incorrect Answer 3": "never", "Record ID": f"r{i}"},
                     "Question", "Record ID"),
    "ifeval": (lambda i: {"key": i, "prompt": f"Write {i} words.", "instruction_id_list": ["length_constraints:number_words"],
                          "kwargs": [{"relation": "at least", "num_words": i + 1}]}, "prompt", "key"),
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_benchmark_loaders_reject_and_count_malformed_rows(name, tmp_path, tally):
    good, field, dup = LOADERS[name]
    rows, n_good, n_bad = fuzz_rows(good, field, dup)
    path = write_jsonl(tmp_path / f"{name}.jsonl", rows)
    ctx = B.LoadContext(sources={name: str(path)})
    items, origin = B.get(name).load(ctx)
    assert len(items) == n_good, [i.question[:40] for i in items]
    assert any(UNICODE in it.question for it in items)
    rejected = ctx.rejected[name]
    assert sum(rejected.values()) == n_bad, rejected
    assert len(rejected) >= 6 and "invalid JSON" in rejected, rejected
    tally("malformed rows rejected (benchmark loaders)", n_bad)


def test_an_evaluation_over_a_fuzzed_file_runs_to_the_end(test_world, tmp_path, tally):
    from scalpel.evaluate.runner import EvalConfig, evaluate_model

    good, field, _ = LOADERS["math500"]
    rows, n_good, n_bad = fuzz_rows(lambda i: {**good(i), "id": f"q{i}"}, field, "id")
    rows.append({"problem": "unparseable gold", "answer": r"\frac{", "id": "qbad"})
    path = write_jsonl(tmp_path / "fuzz.jsonl", rows)
    cfg = EvalConfig(generic=[{"path": str(path), "question": "problem", "answer": "answer", "id": "id",
                               "name": "fuzz"}], max_new_tokens=4, temperature=0.0)
    res = evaluate_model(test_world.model_dir, tmp_path / "out", cfg)["fuzz"]
    assert res["n_items"] == n_good and sum(res["rejected_rows"].values()) == n_bad
    assert res["skipped_unusable_gold"] == 1
    tally("malformed rows rejected (evaluation run)", n_bad + 1)


def test_kl_pairs_and_trace_facts_reject_and_count(tmp_path, tally):
    from scalpel.analyze import kl, trace

    good = lambda i: {"problem": f"What is {i}+1?", "solution": f"{i}+1 = {i + 1}"}  # noqa: E731
    rows, n_good, n_bad = fuzz_rows(good, "problem", "problem")
    path = write_jsonl(tmp_path / "kl.jsonl", rows)
    pairs, rejected = kl.load_pairs(path)
    assert len(pairs) == n_good and sum(rejected.values()) == n_bad
    tally("malformed rows rejected (KL texts)", n_bad)

    fact = lambda i: {"id": f"f{i}", "prompt": f"Tovak{i} lives in", "subject": f"Tovak{i}", "target": " Tarsa"}  # noqa: E731
    rows, n_good, n_bad = fuzz_rows(fact, "subject", "id")
    rows.append({"id": "f-odd", "prompt": "Somebody lives in", "subject": "Nobody", "target": " Tarsa"})
    path = write_jsonl(tmp_path / "facts.jsonl", rows)
    facts = trace.load_facts(path)
    assert len(facts) == n_good - 1  # the unicode subject is not in its prompt either
    tally("malformed rows rejected (tracing facts)", n_bad + 2)
