"""OpenR1-Math-220k loading: the paper's filters (extended, cn_k12, 4096 tokens), targets built from the first
correct R1 generation in the exact format the rewards score 1.0, and no silent loss — every rejected row counted
by reason. Runs on ``tests/fixtures/openr1_math_sample.jsonl``, 22 rows in the real schema, malformed ones included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalpel import grading
from scalpel.data import openr1
from scalpel.data.openr1 import (
    HUB_ID,
    REASONS,
    build_target,
    load_openr1,
    token_lengths,
)
from scalpel.data.prompts import PAPER_SYSTEM_PROMPT, chat_template, messages

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "openr1_math_sample.jsonl"
KEPT = ["01", "02", "15", "16", "17", "18", "20", "22"]
REJECTED = {"invalid_json": 1, "wrong_type": 3, "missing_field": 1, "length_mismatch": 1, "wrong_source": 1,
            "empty_problem": 1, "duplicate_uuid": 1, "no_correct_generation": 1, "malformed_generation": 1,
            "unparseable_answer": 2, "too_long": 1}


def load(*args, **kwargs):
    """load_openr1 with the session's shared grader (by default each load starts its own, one worker per core)."""
    kwargs.setdefault("grader", grading.default_grader())
    return load_openr1(*args, **kwargs)


def short(rows) -> list[str]:
    return [r["id"][-2:] for r in rows]


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level tokenizer (one token per UTF-8 byte) with scalpel's chat template: lengths are predictable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  pad_token="<|pad|>")
    tok.chat_template = chat_template(PAPER_SYSTEM_PROMPT)
    return tok


@pytest.fixture(scope="module")
def loaded(tokenizer):
    return load(FIXTURE, tokenizer=tokenizer, max_tokens=4096)


def test_every_row_is_kept_or_counted_by_reason(loaded):
    rows, report = loaded
    assert short(rows) == KEPT
    assert report.total == 22 and report.kept == len(KEPT)
    assert dict(report.rejected) == REJECTED
    assert report.total == report.kept + sum(report.rejected.values())
    assert set(report.rejected) <= set(REASONS)
    assert all(report.examples[r] for r in REJECTED)
    assert "line 12" in report.examples["invalid_json"] and "line 8" in report.examples["duplicate_uuid"][0]
    assert "6743 tokens" in report.examples["too_long"][0]
    assert report.max_tokens_kept is not None and report.max_tokens_kept <= 4096
    json.dumps(report.as_dict())  # goes into the checkpoint manifest
    assert all("kept" in line or "rejected" in line for line in report.summary().splitlines())


def test_rows_are_ready_for_the_trainer(loaded):
    rows, _ = loaded
    for row in rows:
        assert set(row) == {"id", "question", "answer", "target"}
        assert row["question"] == row["question"].strip() and row["answer"]


def test_targets_score_full_reward(loaded):
    """An SFT target is what a perfect GRPO completion looks like: format 1.0, tag count 1.0, accuracy 1.0."""
    from scalpel.train.rewards import accuracy_reward, format_reward, tag_count_reward

    rows, _ = loaded
    targets = [r["target"] for r in rows]
    assert format_reward(targets) == [1.0] * len(rows)
    assert tag_count_reward(targets) == [1.0] * len(rows)
    assert accuracy_reward(targets, answer=[r["answer"] for r in rows]) == [1.0] * len(rows)


def test_target_comes_from_the_first_correct_well_formed_generation(loaded):
    by_id = {r["id"][-2:]: r for r in loaded.rows}
    assert "gcd" in by_id["02"]["target"]  # generation 0 was wrong
    assert "\\sqrt{49} = \\boxed{7}" in by_id["16"]["target"]  # generation 0 was correct but had two </think>
    assert by_id["20"]["target"].endswith("<answer>\n\\boxed{70}\n</answer>")  # correctness null is not "correct"
    assert by_id["15"]["target"].startswith("<think>\nOkay")  # R1 omitted the opening <think>
    one = by_id["01"]["target"]
    assert one.startswith("<think>\nOkay, so I need to solve this.") and "\n</think>\n<answer>\nTo solve" in one
    assert one.endswith("\\(\\boxed{5}\\).\n</answer>")


@pytest.mark.parametrize("generation, ok", [
    ("<think>\nr\n</think>\n\nfinal \\boxed{1}", True),
    ("r\n</think>\nfinal", True),  # no opening tag
    ("  <think>r</think>f", True),
    ("<think>\nr\n</think>\n\n", False),  # no final text
    ("<think>\n\n</think>\nfinal", False),  # no reasoning
    ("<think>\nr\n</think>\nf\n</think>\ng", False),
    ("<think>\nr</think>f<answer>x</answer>", False),  # tags inside the final text
    ("a <think> r </think> f", False),  # <think> not at the start
    ("<think>\nr truncated", False),
    ("", False),
])
def test_build_target(generation, ok):
    target = build_target(generation)
    assert (target is not None) == ok
    if ok:
        assert target.startswith("<think>\n") and target.endswith("\n</answer>")


def test_source_filter_is_configurable(tokenizer):
    rows, report = load(FIXTURE, tokenizer=tokenizer, sources=None)
    assert "03" in short(rows) and report.rejected["wrong_source"] == 0
    rows, report = load(FIXTURE, tokenizer=tokenizer, sources=["olympiads"])
    assert short(rows) == ["03"] and report.rejected["wrong_source"] == 15  # all that reach the source check


def test_length_filter(tokenizer):
    rows, report = load(FIXTURE)  # no tokenizer: no length filter, and the report says so
    assert "11" in short(rows) and report.rejected["too_long"] == 0
    assert report.filters["length_filter"].startswith("skipped")
    rows, report = load(FIXTURE, tokenizer=tokenizer, max_tokens=600)
    assert report.max_tokens_kept <= 600 and report.rejected["too_long"] > 1
    assert report.total == report.kept + sum(report.rejected.values())


def test_token_lengths_match_apply_chat_template(tokenizer, loaded):
    row = loaded.rows[0]
    convo = messages(row["question"], PAPER_SYSTEM_PROMPT) + [{"role": "assistant", "content": row["target"]}]
    ids = tokenizer.apply_chat_template(convo, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert token_lengths(tokenizer, [(row["question"], row["target"])], PAPER_SYSTEM_PROMPT) == [len(ids)]


def test_answer_checks(tokenizer):
    rows, report = load(FIXTURE, tokenizer=tokenizer, check_answers=False)
    assert "10" in short(rows) and report.rejected["unparseable_answer"] == 1  # the empty answer still goes

    class SlowGrader:  # the gold parse of one row times out
        def grade(self, items):
            return [grading.TIMEOUT if gold == "(1,2)" else grading.GOLD_OK for gold, _ in items]

    rows, report = load(FIXTURE, tokenizer=tokenizer, grader=SlowGrader())
    assert "17" not in short(rows) and report.rejected["answer_timeout"] == 1


def _typed_rows() -> list[dict]:
    """The fixture's rows that a columnar file can hold (one type per column)."""
    out = []
    for line in FIXTURE.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("answer"), str) and not isinstance(rec.get("generations"), str):
            out.append(rec)
    return out


def test_parquet_file_directory_and_hub_give_the_same_rows(tmp_path, tokenizer, loaded, monkeypatch):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = _typed_rows()
    assert len(records) == 18
    snapshot = tmp_path / "snapshot" / "extended"
    snapshot.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(records), snapshot / "train-00000-of-00001.parquet")

    expected = {r: n for r, n in REJECTED.items() if r not in ("invalid_json", "wrong_type")}
    for source in (snapshot / "train-00000-of-00001.parquet", tmp_path / "snapshot"):
        rows, report = load(source, tokenizer=tokenizer)
        assert rows == loaded.rows and report.fingerprint == loaded.report.fingerprint
        assert dict(report.rejected) == expected

    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return datasets.Dataset.from_list(records)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows, report = load(tokenizer=tokenizer)
    assert calls == [(HUB_ID, "extended", "train")]
    assert rows == loaded.rows and dict(report.rejected) == expected
    assert report.examples["wrong_source"] == ["row 2"]


def test_bad_source_paths():
    with pytest.raises(FileNotFoundError):
        load_openr1("no/such/file.jsonl")
    with pytest.raises(FileNotFoundError):
        load_openr1("./missing-dir")


def test_fingerprint_is_stable_and_content_sensitive(tokenizer, loaded):
    again = load_openr1(FIXTURE, tokenizer=tokenizer)  # its own one-off grader this time
    assert again.report.fingerprint == loaded.report.fingerprint
    first = json.loads(FIXTURE.read_text().splitlines()[0])
    fewer = openr1.records_to_rows([("r", first)], tokenizer=tokenizer, grader=grading.default_grader())
    assert fewer.report.fingerprint != loaded.report.fingerprint and short(fewer.rows) == ["01"]
