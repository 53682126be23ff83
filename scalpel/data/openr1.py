"""OpenR1-Math-220k as SFT/GRPO training rows ``{id, question, answer, target}``, with every rejected row counted.

The paper (Sec. 3, App. B.1): the *extended* config, only ``source == "cn_k12"`` (~91k questions), and no example
whose chat-templated prompt + R1 completion exceeds 4096 tokens. Source: the hub id (``datasets.load_dataset``,
config ``extended``), a local ``.jsonl``/``.json``/``.parquet`` file, or a directory of them (a hub snapshot:
``DIR/extended/*.parquet`` is used when present).

Target. The SFT target is built from the *first* R1 generation that math-verify marked correct
(``correctness_math_verify[i] is True``) and that is well formed. R1 writes
``<think>\\nREASONING\\n</think>\\n\\nFINAL`` where FINAL is a short worked solution ending in ``\\boxed{X}``.
The target is

    <think>\\nREASONING\\n</think>\\n<answer>\\nFINAL\\n</answer>

i.e. the reasoning goes in ``think`` and R1's whole final text (not only X) goes in ``answer``: SFT then trains on
every token R1 wrote, as in the paper, and the format is exactly the one the system prompt asks for and
``format_reward`` scores 1.0 (the accuracy reward finds the ``\\boxed{X}`` inside ``<answer>``). Well formed means:
exactly one ``</think>``, at most one ``<think>`` and only at the start (R1 sometimes omits it), non-empty reasoning
and final text, and no ``<think>``/``</think>``/``<answer>``/``</answer>`` inside either part. A correct generation
that is malformed is skipped for the next correct one; the row is rejected only when none is usable.

Rejection reasons (checked in this order; each row counts under its first failure):
``invalid_json`` (a line that is not JSON), ``wrong_type`` (a row that is not an object), ``missing_field``
(problem, answer, source, uuid, generations, correctness_math_verify absent or null), ``wrong_type`` (one of those
of the wrong type: strings, a list of strings, a list of booleans/nulls), ``length_mismatch`` (generations vs
correctness_math_verify), ``wrong_source`` (from the hub, decided on the source column alone), ``empty_problem``,
``duplicate_uuid`` (the first row with a uuid wins), ``no_correct_generation``, ``malformed_generation``,
``unparseable_answer`` for an empty gold, ``too_long``, then ``unparseable_answer`` (math-verify cannot parse the
gold: the accuracy reward would skip the question, so GRPO could not learn from it) or ``answer_timeout`` (parsing
it hit the grader's timeout).
``total == kept + sum(rejected)`` always; ``OpenR1Report`` also keeps a few row references per reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from scalpel.data.prompts import PAPER_SYSTEM_PROMPT, messages

log = logging.getLogger(__name__)

HUB_ID = "open-r1/OpenR1-Math-220k"
COLUMNS = ("problem", "solution", "answer", "problem_type", "question_type", "source", "uuid",
           "is_reasoning_complete", "generations", "correctness_math_verify", "correctness_llama",
           "finish_reasons", "correctness_count", "messages")
REQUIRED = ("problem", "answer", "source", "uuid", "generations", "correctness_math_verify")
REASONS = ("invalid_json", "wrong_type", "missing_field", "length_mismatch", "wrong_source", "empty_problem",
           "duplicate_uuid", "no_correct_generation", "malformed_generation", "too_long", "unparseable_answer",
           "answer_timeout")
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_EXAMPLES_PER_REASON = 5


@dataclass
class OpenR1Report:
    """What happened to every input row. ``total == kept + sum(rejected.values())``."""

    source: str
    filters: dict
    total: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few row references
    max_tokens_kept: int | None = None  # longest kept prompt + target, when a tokenizer was given
    fingerprint: str = ""  # sha256 of the kept rows, in order

    def reject(self, reason: str, ref: str) -> None:
        assert reason in REASONS, reason
        self.rejected[reason] += 1
        refs = self.examples.setdefault(reason, [])
        if len(refs) < _EXAMPLES_PER_REASON:
            refs.append(ref)

    def as_dict(self) -> dict:
        return {"source": self.source, "filters": self.filters, "total": self.total, "kept": self.kept,
                "rejected": {r: self.rejected[r] for r in REASONS if self.rejected[r]},
                "examples": self.examples, "max_tokens_kept": self.max_tokens_kept,
                "fingerprint": self.fingerprint}

    def summary(self) -> str:
        lines = [f"OpenR1-Math-220k from {self.source}: kept {self.kept:,} of {self.total:,} rows"]
        for reason in REASONS:
            if self.rejected[reason]:
                examples = ", ".join(self.examples[reason][:3])
                lines.append(f"  rejected {self.rejected[reason]:>7,}  {reason}  (e.g. {examples})")
        return "\n".join(lines)


class OpenR1Data(NamedTuple):
    rows: list[dict]  # {"id", "question", "answer", "target"}
    report: OpenR1Report


def build_target(generation: str) -> str | None:
    """``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>`` from one R1 generation; None when it is malformed."""
    if not isinstance(generation, str) or generation.count("</think>") != 1 or generation.count("<think>") > 1:
        return None
    head, final = generation.split("</think>")
    head = head.lstrip()
    if "<think>" in head and not head.startswith("<think>"):
        return None
    reasoning = head.removeprefix("<think>").strip()
    final = final.strip()
    if not reasoning or not final or any(t in reasoning or t in final for t in _TAGS):
        return None
    return f"<think>\n{reasoning}\n</think>\n<answer>\n{final}\n</answer>"


def load_openr1(source: str | Path = HUB_ID, *, config: str = "extended", split: str = "train",
                sources: Sequence[str] | None = ("cn_k12",), tokenizer=None, max_tokens: int | None = 4096,
                system_prompt: str | None = PAPER_SYSTEM_PROMPT, check_answers: bool = True,
                grader=None) -> OpenR1Data:
    """Load, filter and convert OpenR1-Math-220k; returns ``(rows, report)``.

    Args:
        source: hub id, or a local .jsonl/.json/.parquet file or directory.
        config, split: for the hub (and the ``DIR/config`` sub-directory of a snapshot).
        sources: keep rows whose ``source`` is one of these (``None``: keep all).
        tokenizer: renders ``messages(question, system_prompt)`` + the target with its chat template to count
            tokens; ``None`` skips the length filter (the report's ``filters`` says so).
        max_tokens: reject rows whose prompt + target is longer (paper: 4096).
        system_prompt: the system prompt the trainer will use (``None``: the template's default).
        check_answers: reject golds math-verify cannot parse, with ``grader`` (default: a grader with one worker per
            core for this pass, closed afterwards).
    """
    path = Path(source)
    is_local = path.exists()
    text = str(source)
    if not is_local and (path.suffix in {".jsonl", ".json", ".parquet"} or text.count("/") != 1
                         or text.startswith((".", "/", "~"))):
        raise FileNotFoundError(f"OpenR1 source {text!r} is neither an existing file/directory nor a hub id")
    records = _local_records(path, config) if is_local else _hub_records(str(source), config, split, sources)
    filters = {"config": config, "split": split, "sources": list(sources) if sources is not None else None,
               "max_tokens": max_tokens if tokenizer is not None else None,
               "tokenizer": getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
               "length_filter": ("skipped (no tokenizer)" if tokenizer is None else
                                 "skipped (max_tokens=None)" if not max_tokens else "on"),
               "system_prompt": system_prompt, "check_answers": check_answers}
    return records_to_rows(records, source=str(source), filters=filters, sources=sources, tokenizer=tokenizer,
                           max_tokens=max_tokens, system_prompt=system_prompt, check_answers=check_answers,
                           grader=grader)


def records_to_rows(records: Iterable[tuple[str, object]], *, source: str = "<records>", filters: dict | None = None,
                    sources: Sequence[str] | None = ("cn_k12",), tokenizer=None, max_tokens: int | None = 4096,
                    system_prompt: str | None = PAPER_SYSTEM_PROMPT, check_answers: bool = True,
                    grader=None) -> OpenR1Data:
    """The filtering core over ``(row reference, record)`` pairs; a record may be an ``_Invalid`` marker or a count
    of rows already dropped for their source (``_Skipped``)."""
    report = OpenR1Report(source=source, filters=filters or {})
    wanted = set(sources) if sources is not None else None
    seen: set[str] = set()
    candidates: list[tuple[str, dict]] = []  # (ref, row)
    for ref, rec in records:
        if isinstance(rec, _Skipped):
            report.total += rec.count
            report.rejected["wrong_source"] += rec.count
            report.examples.setdefault("wrong_source", []).extend(rec.refs[:_EXAMPLES_PER_REASON])
            continue
        report.total += 1
        reason, row = _check(rec, wanted, seen)
        if reason:
            report.reject(reason, _ref(ref, rec))
        else:
            candidates.append((ref, row))

    lengths: dict[int, int] = {}
    if tokenizer is not None and max_tokens and candidates:  # before the gold check: it is the cheaper filter
        counts = token_lengths(tokenizer, [(row["question"], row["target"]) for _, row in candidates], system_prompt)
        kept = []
        for (ref, row), n in zip(candidates, counts):
            if n > max_tokens:
                report.reject("too_long", f"{ref} (uuid={row['id']}, {n} tokens)")
            else:
                kept.append((ref, row))
                lengths[id(row)] = n
        candidates = kept

    if check_answers and candidates:
        from scalpel import grading

        own = grader is None  # a one-off pass over up to ~91k golds: use every core, then let the workers go
        grader = grading.Grader(workers=os.cpu_count() or 1) if own else grader
        try:
            outcomes = grader.grade([(row["answer"], []) for _, row in candidates])
        finally:
            if own:
                grader.close()
        kept = []
        for (ref, row), outcome in zip(candidates, outcomes):
            if outcome == grading.GOLD_OK:
                kept.append((ref, row))
            else:
                timed_out = outcome in grading.FAILED
                report.reject("answer_timeout" if timed_out else "unparseable_answer", f"{ref} (uuid={row['id']})")
        candidates = kept

    if lengths:
        report.max_tokens_kept = max((lengths[id(row)] for _, row in candidates), default=None)
    rows = [row for _, row in candidates]
    report.kept = len(rows)
    report.fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert report.total == report.kept + sum(report.rejected.values())
    log.info("%s", report.summary())
    return OpenR1Data(rows, report)


def token_lengths(tokenizer, pairs: Sequence[tuple[str, str]], system_prompt: str | None,
                  batch_size: int = 256) -> list[int]:
    """Token count of each chat-templated ``messages(question, system_prompt)`` + assistant target."""
    out: list[int] = []
    for start in range(0, len(pairs), batch_size):
        texts = [tokenizer.apply_chat_template(messages(q, system_prompt) + [{"role": "assistant", "content": t}],
                                               tokenize=False)
                 for q, t in pairs[start:start + batch_size]]
        out.extend(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
    return out


# ---------------------------------------------------------------------------------------------------------------


class _Invalid(NamedTuple):
    error: str


class _Skipped(NamedTuple):
    count: int
    refs: list[str]


def _ref(ref: str, rec) -> str:
    uuid = rec.get("uuid") if isinstance(rec, dict) else None
    return f"{ref} (uuid={uuid})" if isinstance(uuid, str) else ref


def _check(rec, wanted: set[str] | None, seen: set[str]) -> tuple[str | None, dict | None]:
    if isinstance(rec, _Invalid):
        return "invalid_json", None
    if not isinstance(rec, dict):
        return "wrong_type", None
    if any(rec.get(k) is None for k in REQUIRED):
        return "missing_field", None
    gens, correct = rec["generations"], rec["correctness_math_verify"]
    if not all(isinstance(rec[k], str) for k in ("problem", "answer", "source", "uuid")):
        return "wrong_type", None
    if not isinstance(gens, list) or not all(isinstance(g, str) for g in gens):
        return "wrong_type", None
    if not isinstance(correct, list) or not all(c is None or isinstance(c, bool) for c in correct):
        return "wrong_type", None
    if len(gens) != len(correct):
        return "length_mismatch", None
    if wanted is not None and rec["source"] not in wanted:
        return "wrong_source", None
    question = rec["problem"].strip()
    if not question:
        return "empty_problem", None
    if rec["uuid"] in seen:
        return "duplicate_uuid", None
    seen.add(rec["uuid"])
    correct_gens = [g for g, ok in zip(gens, correct) if ok is True]
    if not correct_gens:
        return "no_correct_generation", None
    target = next((t for g in correct_gens if (t := build_target(g)) is not None), None)
    if target is None:
        return "malformed_generation", None
    answer = rec["answer"].strip()
    if not answer:
        return "unparseable_answer", None
    return None, {"id": rec["uuid"], "question": question, "answer": answer, "target": target}


def _local_records(path: Path, config: str) -> Iterator[tuple[str, object]]:
    if path.is_dir():
        root = path / config if (path / config).is_dir() else path
        files = sorted(root.rglob("*.parquet")) or sorted(root.rglob("*.jsonl")) or sorted(root.rglob("*.json"))
        if not files:
            raise FileNotFoundError(f"no .parquet/.jsonl/.json files under {root}")
    else:
        files = [path]
    for f in files:
        name = f.name if len(files) > 1 else ""
        prefix = f"{name}:" if name else ""
        if f.suffix == ".parquet":
            yield from _parquet_records(f, prefix)
        elif f.suffix == ".json" and f.read_text(encoding="utf-8", errors="replace").lstrip().startswith("["):
            try:
                items = json.loads(f.read_text(encoding="utf-8"))
            except ValueError as e:
                yield f"{prefix}file", _Invalid(str(e))
                continue
            for i, rec in enumerate(items):
                yield f"{prefix}item {i}", rec
        else:
            with open(f, encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        yield f"{prefix}line {lineno}", json.loads(line)
                    except ValueError as e:
                        yield f"{prefix}line {lineno}", _Invalid(str(e))


def _parquet_records(path: Path, prefix: str) -> Iterator[tuple[str, object]]:
    import pyarrow.parquet as pq

    offset = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for i, rec in enumerate(batch.to_pylist()):
            yield f"{prefix}row {offset + i}", rec
        offset += batch.num_rows


def _hub_records(hub_id: str, config: str, split: str, sources: Sequence[str] | None) -> Iterator[tuple[str, object]]:
    import datasets

    ds = datasets.load_dataset(hub_id, config, split=split)
    indices: Sequence[int] = range(len(ds))
    if sources is not None and "source" in ds.column_names:
        # Drop other sources from the source column alone: their (large) generations are never decoded.
        wanted = set(sources)
        column = list(ds["source"])
        indices = [i for i, s in enumerate(column) if s in wanted]
        dropped = [i for i, s in enumerate(column) if s not in wanted]
        if dropped:
            yield "", _Skipped(len(dropped), [f"row {i}" for i in dropped[:_EXAMPLES_PER_REASON]])
        ds = ds.select(indices)
    for i, rec in zip(indices, ds):
        yield f"row {i}", rec
