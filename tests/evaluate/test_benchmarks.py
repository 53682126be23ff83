"""Benchmark loaders: real files (when ../shared is there), GPQA-Diamond and MMLU-Pro fixtures in their public
schemas, generic maths files with a column mapping, and errors that name the path and the expected columns."""

from __future__ import annotations

import json
import random

import pytest

from scalpel.errors import DataError, UserError
from scalpel.data import benchmarks as B
from scalpel.data.files import read_table
from scalpel.data.items import LETTERS


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def load(name, **ctx):
    return B.get(name).load(B.LoadContext(**ctx))


@pytest.mark.shared
@pytest.mark.parametrize("name, n", [("math500", 500), ("aime24", 30), ("gsm8k", 1319), ("gsm8k_5shot", 1319),
                                     ("mmlu_stem", 3018), ("ifeval", 541)])
def test_real_files_load_with_usable_golds(shared_benchmarks, name, n):
    items, origin = load(name, data_dir=shared_benchmarks)
    assert len(items) == n and origin.startswith(str(shared_benchmarks))
    assert all(it.gold is not None for it in items)
    assert len({it.id for it in items}) == n  # ids are unique


@pytest.mark.shared
def test_gsm8k_5shot_turns_and_mmlu_letter_mapping(shared_benchmarks):
    [item], _ = load("gsm8k_5shot", data_dir=shared_benchmarks, limit=1)
    msgs = item.messages()
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 5 + ["user"]
    assert all("####" in m["content"] and "<<" not in m["content"] for m in msgs[1:10:2])
    assert msgs[-1]["content"].startswith("Janet")
    rows = [json.loads(x) for x in (shared_benchmarks / "mmlu_stem_test.jsonl").read_text().splitlines()[:50]]
    items, _ = load("mmlu_stem", data_dir=shared_benchmarks, limit=50)
    for r, it in zip(rows, items):
        assert it.gold == "ABCD"[r["answer"]]
        assert f"{it.gold}) {r['choices'][r['answer']]}" in it.question


def test_gpqa_fixture_schema_shuffle_and_unusable_gold(fixtures, tmp_path):
    items, origin = load("gpqa_diamond", sources={"gpqa_diamond": fixtures / "gpqa_diamond_fixture.jsonl"})
    assert origin.endswith("gpqa_diamond_fixture.jsonl") and len(items) == 3
    rows = [json.loads(x) for x in (fixtures / "gpqa_diamond_fixture.jsonl").read_text().splitlines()]
    for r, it in zip(rows[:2], items[:2]):
        assert it.choices[LETTERS.index(it.gold)] == r["Correct Answer"]
        assert sorted(it.choices) == sorted([r["Correct Answer"]] + [r[f"Incorrect Answer {k}"] for k in (1, 2, 3)])
        assert it.choices.index(r["Correct Answer"]) == random.Random(f"gpqa:{r['Record ID']}").randrange(4)
    assert items[2].gold is None  # no correct answer: skipped and counted by the runner
    again, _ = load("gpqa_diamond", sources={"gpqa_diamond": fixtures / "gpqa_diamond_fixture.jsonl"})
    assert [i.question for i in again] == [i.question for i in items]  # the shuffle is deterministic
    # the same rows as parquet (the hub's format)
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "gpqa.parquet")
    items_pq, _ = load("gpqa_diamond", sources={"gpqa_diamond": tmp_path / "gpqa.parquet"})
    assert [i.question for i in items_pq] == [i.question for i in items]


def test_mmlu_pro_fixture_ten_options_and_na(fixtures):
    items, _ = load("mmlu_pro", sources={"mmlu_pro": fixtures / "mmlu_pro_fixture.jsonl"})
    assert [len(i.choices) for i in items] == [10, 4, 3]
    assert items[0].gold == "C" and "J) 14" in items[0].question and "one of A, B, C, D, E, F, G, H, I, J" in \
        items[0].question
    assert items[1].gold == "B" and "N/A" not in items[1].question
    assert items[2].gold is None  # answer letter outside its options


def test_generic_maths_with_column_mapping(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"q": "1+1?", "final": "2", "uid": "a"},
                                                 {"q": "half of 1?", "final": "\\frac{1}{2}", "uid": "b"},
                                                 {"q": "no gold", "final": "", "uid": "c"}])
    cols = B.parse_columns("question=q,answer=final,id=uid")
    bench = B.generic_maths(path, **cols)
    items, origin = bench.load(B.LoadContext())
    assert bench.name == "maths_mine" and bench.scorer == "maths" and origin == str(path)
    assert [(i.id, i.question, i.gold) for i in items] == [("a", "1+1?", "2"), ("b", "half of 1?", "\\frac{1}{2}"),
                                                           ("c", "no gold", None)]
    with pytest.raises(UserError, match="question=COL"):
        B.parse_columns("problem=q")


def test_wrong_schema_names_path_and_expected_columns(tmp_path):
    bad = write_jsonl(tmp_path / "math.jsonl", [{"question": "x", "solution": "y"}])
    with pytest.raises(DataError) as e:
        load("math500", sources={"math500": bad})
    msg = str(e.value)
    assert str(bad) in msg and "problem" in msg and "answer" in msg and "found question, solution" in msg
    with pytest.raises(DataError, match="subject or type"):
        load("mmlu", sources={"mmlu": write_jsonl(tmp_path / "m.jsonl", [{"question": "q", "choices": [],
                                                                          "answer": 0}])})
    generic = B.generic_maths(bad, question="problem", answer="answer")
    with pytest.raises(DataError, match="expected problem, answer"):
        generic.load(B.LoadContext())


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load("gsm8k", sources={"gsm8k": tmp_path / "nowhere.jsonl"})
    with pytest.raises(DataError, match="unsupported format"):
        read_table(write_jsonl(tmp_path / "x.txt", [{}]))


def test_hub_unreachable_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DataError) as e:
        load("mmlu_pro", data_dir=tmp_path)  # no local file there -> the hub -> offline
    msg = str(e.value)
    assert "TIGER-Lab/MMLU-Pro" in msg and "--data mmlu_pro=FILE" in msg and "question, options" in msg


def test_gsm8k_unusable_gold_rows(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "a", "answer": "x #### 3"},
                                              {"question": "b", "answer": "no final answer"}])
    items, _ = load("gsm8k", sources={"gsm8k": path})
    assert [i.gold for i in items] == ["3", None]


def test_registry_and_suites():
    assert set(B.SUITES["paper"]) == {"math500", "aime24", "gsm8k", "gsm8k_5shot", "gpqa_diamond", "mmlu", "mmlu_pro",
                                      "ifeval"}
    assert B.SUITES["microworld"] == ["mw_maths_easy", "mw_maths_hard", "mw_facts_mcq", "mw_fewshot_maths",
                                      "mw_instruct"]
    assert all(n in B.BENCHMARKS for s in B.SUITES.values() for n in s)
    assert B.get("math500").source.hub_id == "HuggingFaceH4/MATH-500"
    with pytest.raises(UserError, match="unknown benchmark"):
        B.get("nope")
    with pytest.raises(UserError, match="unknown suite"):
        B.suite("nope")


def test_microworld_benchmarks_need_a_world():
    with pytest.raises(UserError, match="--world"):
        load("mw_maths_easy")


def test_microworld_items(test_world):
    items, origin = load("mw_facts_mcq", world=test_world)
    raw = test_world.items("facts_mcq", "heldout")
    assert len(items) == len(raw) and origin.endswith("facts_mcq.heldout.jsonl")
    assert items[0].question == raw[0]["question"] and items[0].gold == raw[0]["answer"]
    assert items[0].messages() == [{"role": "user", "content": raw[0]["question"]}]
