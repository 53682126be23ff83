"""KL divergence to the base model across training (paper §4.1, Figure 4).

Method. Each evaluation example is a question and a reference solution rendered with the base model's chat template
(user turn = question, assistant turn = solution; the template's own default system prompt applies, as it would
for any consumer of the checkpoint). For every position whose next token belongs to the assistant turn (solution
tokens and the end-of-turn token the template writes) we compare the next-token distributions of base (p) and
checkpoint (q):  KL(p‖q) = Σ_v p_v (log p_v − log q_v)  ("forward", the paper's direction: how surprised the
checkpoint is by what the base would say), KL(q‖p) ("reverse") and the total variation ½Σ_v |p_v − q_v| (bounded,
symmetric: a candidate forgetting predictor of ``scalpel.study.predictors``). Reported: the mean over all such
tokens of all examples (token-weighted, as the paper's "average per-token KL"), with a standard error over
examples.

Data: MATH-500 (``math500`` / ``HuggingFaceH4/MATH-500``: problem + solution), a micro-world directory (held-out
maths items: question + ``neutral`` solution, a style neither the base's pretraining, GRPO's own samples nor SFT's
teacher traces use — the analogue of MATH-500's human-written solutions; ``--solution-field teacher`` or
``solution`` gives the SFT-target or base-style curves) or any JSON/JSONL file.

Efficiency (vs the naive padded loop of ``benchmarks/kl_throughput.py``): sequences are length-bucketed (or packed
with per-sequence ``position_ids`` and ``use_cache=False``; without the latter transformers silently lets packed
sequences attend to each other), the LM head and log-softmax run only on completion positions and in row chunks,
and the base model's log-probabilities are computed once and reused for every checkpoint while they fit in
``cache_gb`` (otherwise the data is split into groups that do; the base forward is still never repeated).
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from scalpel import atomic
from scalpel.analyze import plots
from scalpel.analyze.checkpoints import Checkpoint, CheckpointRef, describe
from scalpel.errors import UserError
from scalpel.data import rows as rows_mod
from scalpel.data.files import default_data_dir, read_table
from scalpel.data.sources import MATH500
from scalpel.hub import local_model
from scalpel.integrity import verify

log = logging.getLogger(__name__)

MATH500_NAMES = ("math500", "math-500", MATH500.hub_id.lower())
QUESTION_FIELDS = ("problem", "question", "prompt")
SOLUTION_FIELDS = ("solution", "teacher", "response", "completion")


@dataclass(frozen=True)
class Example:
    """Token ids of one rendered conversation; ``start`` = index of the first assistant-turn (completion) token."""

    ids: tuple[int, ...]
    start: int

    @property
    def n_scored(self) -> int:
        return len(self.ids) - self.start


@dataclass
class Batch:
    """Model inputs plus ``select``: flat indices into (rows × length) of the positions that predict a completion
    token, and ``example``: which example each selected position belongs to."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    position_ids: torch.Tensor | None
    select: torch.Tensor
    example: torch.Tensor


# ------------------------------------------------------------------------------------------------ data


def load_pairs(data: str | Path, question_field: str | None = None, solution_field: str | None = None
               ) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(question, solution) pairs from a dataset name, a micro-world directory or a JSON/JSONL file, and the
    malformed rows left out ({reason: rows}), which ``kl.json`` reports."""
    text = str(data)
    path = Path(text)
    if path.is_dir() and (path / "manifest.json").is_file():  # a micro-world
        from scalpel.microworld import World

        world = World.open(path)
        rows = world.items("maths_easy", "heldout") + world.items("maths_hard", "heldout")
        return _pairs(rows, question_field or "question", solution_field or "neutral", str(path))
    if path.is_file():
        return _pairs(read_table(path), question_field, solution_field, str(path))
    if text.lower() in MATH500_NAMES:  # MATH-500's problem + solution, from the benchmarks' own source
        shared = default_data_dir()
        if shared is not None and (shared / MATH500.file).is_file():
            return load_pairs(shared / MATH500.file, question_field, solution_field)
        try:
            import datasets

            rows = list(datasets.load_dataset(MATH500.hub_id, MATH500.hub_config, split=MATH500.hub_split))
        except Exception as exc:  # offline, or no such dataset: say what to do instead
            raise UserError(f"cannot load MATH-500: no {MATH500.file} in {shared or '../shared/data/benchmarks'} "
                            f"and the hub failed ({type(exc).__name__}); pass --data PATH/{MATH500.file} or set "
                            f"SCALPEL_BENCHMARKS") from None
        return _pairs(rows, question_field, solution_field, MATH500.hub_id)
    if path.suffix in (".json", ".jsonl") or os.sep in text:
        raise FileNotFoundError(f"--data {text}: no such file; give a JSON/JSONL file, a micro-world directory or "
                                f"'math500'")
    raise UserError(f"--data {text!r} is not a known dataset (known: math500) nor an existing file or micro-world "
                    f"directory")


def _pairs(rows: list[dict], qf: str | None, sf: str | None, where: str
           ) -> tuple[list[tuple[str, str]], dict[str, int]]:
    first = next((r for r in rows if isinstance(r, dict)), None)
    if first is None:
        raise UserError(f"{where} has no rows")
    keys = first.keys()
    qf = qf or next((f for f in QUESTION_FIELDS if f in keys), None)
    sf = sf or next((f for f in SOLUTION_FIELDS if f in keys), None)
    if qf not in keys or sf not in keys:
        raise UserError(f"{where}: rows have fields {sorted(keys)}; name the question and solution fields with "
                        f"--question-field/--solution-field")
    pairs, rejected = rows_mod.convert(rows, lambda n, r: (rows_mod.text(r[qf], "question"),
                                                           rows_mod.text(r[sf], "solution")), key=lambda p: p)
    if rejected:
        log.warning("%s: rejected %d malformed row(s): %s", where, sum(rejected.values()), rejected)
    if not pairs:
        raise UserError(f"{where}: no usable (question, solution) rows ({rejected})")
    return pairs, rejected


def render(tokenizer, pairs: list[tuple[str, str]], system: str | None = None, max_length: int | None = None
           ) -> list[Example]:
    """Chat-template each pair; the completion starts where the generation prompt ends (the template must make the
    prompt an exact prefix of prompt + completion; otherwise the longest common prefix is used)."""
    out = []
    for q, s in pairs:
        msgs = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": q}]
        p_text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        f_text = tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": s}], tokenize=False)
        p_ids = tokenizer(p_text, add_special_tokens=False)["input_ids"]
        f_ids = tokenizer(f_text, add_special_tokens=False)["input_ids"]
        start = 0
        while start < min(len(p_ids), len(f_ids)) and p_ids[start] == f_ids[start]:
            start += 1
        if max_length is not None:
            f_ids = f_ids[:max_length]
        if start < 1 or len(f_ids) - start < 1:  # nothing to score (or no context to score it from)
            continue
        out.append(Example(tuple(f_ids), start))
    if not out:
        raise UserError("no example has a completion token to score (check --max-length and the chat template)")
    return out


# --------------------------------------------------------------------------------------------- batching


def batches(examples: list[Example], max_tokens: int = 4096, mode: str = "bucket", pad_id: int = 0
            ) -> Iterator[Batch]:
    """Batches of at most ``max_tokens`` tokens (rows × padded length), no compute wasted on padding.

    ``bucket``: sort by length and right-pad within a batch (padding is only the length spread of neighbours).
    ``pack``: concatenate sequences into rows of ≤ ``max_tokens`` with restarting ``position_ids`` (no padding at
    all; needs ``use_cache=False`` in the forward, which ``completion_hidden`` passes). Meant for GPUs with
    variable-length flash attention: CPU SDPA computes the whole row × row attention and masks it, which made
    ``pack`` 2.7x slower than ``bucket`` on MATH-500 here (benchmarks/kl_throughput.py).
    """
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
    if mode == "bucket":
        group: list[int] = []
        for i in order:
            longest = max([len(examples[j].ids) for j in group] + [len(examples[i].ids)])
            if group and longest * (len(group) + 1) > max_tokens:
                yield _padded(examples, group, pad_id)
                group = []
            group.append(i)
        if group:
            yield _padded(examples, group, pad_id)
    elif mode == "pack":
        row: list[int] = []
        for i in order[::-1]:  # longest first fills rows best
            if row and sum(len(examples[j].ids) for j in row) + len(examples[i].ids) > max_tokens:
                yield _packed(examples, row)
                row = []
            row.append(i)
        if row:
            yield _packed(examples, row)
    else:
        raise ValueError(f"mode must be bucket or pack, not {mode!r}")


def _padded(examples: list[Example], idx: list[int], pad_id: int) -> Batch:
    """Right-padded rows and *no* attention mask: under causal attention a real token never sees the pads after
    it, so the mask is redundant, and without one SDPA takes its fast causal path (~1.4x faster here)."""
    length = max(len(examples[i].ids) for i in idx)
    ids = torch.full((len(idx), length), pad_id, dtype=torch.long)
    select, owner = [], []
    for r, i in enumerate(idx):
        e = examples[i]
        ids[r, :len(e.ids)] = torch.tensor(e.ids)
        select.extend(r * length + t for t in range(e.start - 1, len(e.ids) - 1))
        owner.extend([i] * e.n_scored)
    return Batch(ids, None, None, torch.tensor(select), torch.tensor(owner))


def _packed(examples: list[Example], idx: list[int]) -> Batch:
    ids, pos, select, owner = [], [], [], []
    for i in idx:
        e = examples[i]
        off = len(ids)
        ids.extend(e.ids)
        pos.extend(range(len(e.ids)))
        select.extend(off + t for t in range(e.start - 1, len(e.ids) - 1))
        owner.extend([i] * e.n_scored)
    return Batch(torch.tensor([ids]), None, torch.tensor([pos]), torch.tensor(select), torch.tensor(owner))


# ------------------------------------------------------------------------------------------------ maths


@torch.inference_mode()
def completion_hidden(model, batch: Batch) -> torch.Tensor:
    """Final hidden states at the selected positions, ``(n_selected, hidden)`` (LM head not yet applied)."""
    out = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           position_ids=batch.position_ids, use_cache=False)
    h = out.last_hidden_state
    return h.reshape(-1, h.shape[-1])[batch.select]


@torch.inference_mode()
def logprobs(model, hidden: torch.Tensor, chunk_rows: int = 256) -> torch.Tensor:
    """Next-token log-probabilities (fp32) from final hidden states, LM head + log-softmax in row chunks."""
    head = model.get_output_embeddings()
    return torch.cat([torch.log_softmax(head(hidden[i:i + chunk_rows]).float(), dim=-1)
                      for i in range(0, len(hidden), chunk_rows)])


@torch.inference_mode()
def kl_from_logprobs(lp_base: torch.Tensor, lp_ck: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row KL(base‖ck), KL(ck‖base) and total variation ½Σ|p − q| in fp64 sums of fp32 terms; exactly 0 when
    the rows are equal."""
    d = lp_base - lp_ck
    p, q = lp_base.exp(), lp_ck.exp()
    fwd = (p * d).sum(-1, dtype=torch.float64)
    rev = (q * -d).sum(-1, dtype=torch.float64)
    tv = 0.5 * (p - q).abs().sum(-1, dtype=torch.float64)
    return fwd.clamp_min(0.0), rev.clamp_min(0.0), tv


@torch.inference_mode()
def checkpoint_kl(model, batch: Batch, lp_base: torch.Tensor, chunk_rows: int = 256
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-selected-position forward KL, reverse KL and total variation of ``model`` against cached base
    log-probs."""
    h = completion_hidden(model, batch)
    head = model.get_output_embeddings()
    parts = [kl_from_logprobs(lp_base[i:i + chunk_rows],
                              torch.log_softmax(head(h[i:i + chunk_rows]).float(), dim=-1))
             for i in range(0, len(h), chunk_rows)]
    return tuple(torch.cat(x) for x in zip(*parts))


# ----------------------------------------------------------------------------------------------- driver


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu"):
    """A causal LM from a safetensors directory (pickle checkpoints are refused before transformers sees them)."""
    from transformers import AutoModelForCausalLM

    Checkpoint(path).close()  # validates: exists, safetensors, not pickle
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, use_safetensors=True)
    return model.to(device).eval()


def _groups(bs: list[Batch], vocab: int, cache_gb: float) -> list[list[Batch]]:
    """Split batches so each group's cached base log-probs (fp32, n_selected × vocab) fit in ``cache_gb``."""
    budget = cache_gb * 2 ** 30
    out: list[list[Batch]] = [[]]
    used = 0.0
    for b in bs:
        size = len(b.select) * vocab * 4
        if out[-1] and used + size > budget:
            out.append([])
            used = 0.0
        out[-1].append(b)
        used += size
    return out


def kl_curve(base: str | Path, checkpoints: list[str | Path], data: str | Path, out_dir: str | Path, *,
             labels: list[str] | None = None, system: str | None = None, max_examples: int | None = None,
             max_length: int | None = 2048, max_tokens: int = 4096, mode: str = "bucket", chunk_rows: int = 256,
             cache_gb: float = 2.0, dtype: str = "float32", device: str = "cpu", threads: int | None = None,
             question_field: str | None = None, solution_field: str | None = None, figures: bool = True,
             progress: bool = True) -> Path:
    """Mean per-token KL(base‖ckpt) and KL(ckpt‖base) for every checkpoint; writes ``kl.json`` (returned),
    ``kl.csv`` and ``figures/kl_curve.png`` / ``kl_reverse_curve.png`` (one line per label = arm)."""
    from transformers import AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    base = local_model(base)
    refs = describe(checkpoints, labels)
    for path in [base] + [r.path for r in refs]:
        verify(path, tokenizer=False)
    base_ck = Checkpoint(base)
    for r in refs:
        ck = Checkpoint(r.path)
        if ck.config.get("vocab_size") != base_ck.config.get("vocab_size"):
            raise UserError(f"{r.path} has vocab_size {ck.config.get('vocab_size')}, base {base} has "
                            f"{base_ck.config.get('vocab_size')}: KL needs the same vocabulary")
        ck.close()
    base_ck.close()
    tok = AutoTokenizer.from_pretrained(str(base))
    pairs, rejected = load_pairs(data, question_field, solution_field)
    examples = render(tok, pairs[:max_examples], system, max_length)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    bs = list(batches(examples, max_tokens, mode, pad))
    torch_dtype = getattr(torch, dtype)
    base_model = load_model(base, torch_dtype, device)
    vocab = base_model.get_output_embeddings().weight.shape[0]
    groups = _groups(bs, vocab, cache_gb)
    n_ex = len(examples)
    sums = {r.path: (np.zeros(n_ex), np.zeros(n_ex), np.zeros(n_ex)) for r in refs}  # per example: fwd, rev, tv
    counts = np.zeros(n_ex)
    for b in bs:
        np.add.at(counts, b.example.numpy(), 1)
    bar = tqdm(total=len(bs) * (1 + len(refs)), desc="kl", unit="batch", disable=not progress)
    for group in groups:  # usually one; with several, each checkpoint is loaded once per group
        cache = []
        for b in group:  # the base forward pass, once per batch for all checkpoints
            cache.append(logprobs(base_model, completion_hidden(base_model, b), chunk_rows))
            bar.update()
        for r in refs:
            model = load_model(r.path, torch_dtype, device)
            for b, lp in zip(group, cache):
                for acc, x in zip(sums[r.path], checkpoint_kl(model, b, lp, chunk_rows)):
                    np.add.at(acc, b.example.numpy(), x.numpy())
                bar.update()
            del model
        del cache
    bar.close()
    results = []
    for r in refs:
        n_tok = counts.sum()
        row = {"label": r.label, "step": r.step, "checkpoint": str(r.path)}
        for key, total in zip(("kl_forward", "kl_reverse", "tv"), sums[r.path]):
            row[key] = float(total.sum() / n_tok)
            row[key + "_se"] = float((total / counts).std(ddof=1) / math.sqrt(n_ex)) if n_ex > 1 else float("nan")
        results.append({**row, "tokens": int(n_tok), "examples": n_ex})
    return _write(out_dir, results, base, data, refs, figures,
                  {"system": system, "max_examples": max_examples, "rejected_rows": rejected,
                   "max_length": max_length, "mode": mode,
                   "max_tokens": max_tokens, "dtype": dtype, "cache_groups": len(groups)})


def _write(out_dir: Path, results: list[dict], base, data, refs: list[CheckpointRef], figures: bool,
           settings: dict) -> Path:
    with atomic.atomic_path(out_dir / "kl.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    written = []
    if figures:
        for key, name, ylabel in (("kl_forward", "kl_curve.png", "mean per-token KL(base ‖ checkpoint)"),
                                  ("kl_reverse", "kl_reverse_curve.png", "mean per-token KL(checkpoint ‖ base)")):
            curves = {}
            for label in dict.fromkeys(r["label"] for r in results):
                rows = sorted((r for r in results if r["label"] == label), key=lambda r: r["step"])
                x = [r["step"] for r in rows]
                y = [r[key] for r in rows]
                e = [0.0 if math.isnan(r[key + "_se"]) else r[key + "_se"] for r in rows]
                if x[0] > 0:  # the base itself is the step-0 point: KL 0 by definition
                    x, y, e = [0] + x, [0.0] + y, [0.0] + e
                curves[label] = (x, y, e)
            fig = plots.curves_figure(curves, f"KL to base on {Path(str(data)).name} (± s.e. over examples)",
                                      "training step", ylabel)
            written.append(str(plots.save_png(fig, out_dir / "figures" / name).relative_to(out_dir)))
    summary = {"base": str(base), "data": str(data), "settings": settings, "results": results, "figures": written,
               "definition": "mean over completion tokens of KL between next-token distributions; forward = "
                             "KL(base‖checkpoint), reverse = KL(checkpoint‖base); tv = total variation ½Σ|p − q|; se = "
                             "std of per-example means / √examples"}
    return atomic.write_json(out_dir / "kl.json", summary)
