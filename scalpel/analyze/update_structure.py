"""Update structure, measured the ways the literature does: how many entries changed, the update's rank, and
whether the changed entries sit on the base weight's principal directions.

For each analysed matrix (q, k, v, o, gate, up, down of every layer) and each checkpoint, ΔW = W_new − W_ref is
taken twice: against the base (``reference = "base"``) and against the previous checkpoint of the same run
(``reference = "previous"``; the first checkpoint's previous is the base). Δ is formed in fp64 from the stored
values, so it is exact for bf16 and fp32 storage.

Definitions (each next to its source):

- ``changed_exact``: fraction of entries whose stored bits differ (Mukherjee et al. 2025, "Reinforcement Learning
  Finetunes Small Subnetworks in Large Language Models": an entry is updated when it is not bit-identical in the
  checkpoint's dtype; across dtypes, when the values differ). In a bf16 checkpoint a step smaller than half a bf16
  ULP rounds away, so there this counts *representable* changes, not gradient support.
- ``changed_atol``: fraction with |Δ| > ``atol`` = 1e-5 (the tolerance of Mukherjee et al.'s released code, which
  counts |Δ| ≤ 1e-5 as unchanged).
- ``changed_half_ulp``: fraction with |Δ| ≥ ½ ULP_bf16(w_ref), ULP_bf16(w) = 2^(⌊log₂|w|⌋ − 7) (the spacing of
  bf16 values just above |w|; 2^-133, the smallest bf16 subnormal, for |w| < 2^-126). An update below it vanishes
  when the checkpoint is cast to bf16: the "precision gate" of "The Path Not Taken" (Zhu et al. 2025), which argues
  that apparent RL sparsity is partly bf16 hiding micro-updates.
- ``update_rank`` = rank(ΔW) / min(rows, cols), rank numerical: #σ_i > σ₁ · max(rows, cols) · eps(fp32) (the rule of
  ``torch.linalg.matrix_rank`` on an fp32 ΔW, which Mukherjee et al. report as "update rank": RL's sparse updates
  are nevertheless nearly full-rank). 0 when ΔW = 0.
- ``principal_share``: of the entries changed at ``atol``, the share that are *principal weights* — the top
  ``principal_fraction`` of entries by magnitude of W_ref's rank-k approximation U_k Σ_k V_kᵀ (the "principal
  weights" of Liu et al. 2025, LIFT, which "The Path Not Taken" uses to show RLVR updates avoid them while SFT
  targets them). Chance is ``principal_fraction``; ``principal_enrichment`` = share / fraction (< 1: off the
  principals, > 1: on them). Empty (NaN) when no entry changed. When nearly every entry changes (fp32 weights under
  AdamW: 97-99 % at 1e-5 in the micro-world) the share is chance by construction; it tells something only for
  sparse updates (bf16 storage, or a larger ``atol``).

Aggregates (``summarize``) weight each matrix by its entry count for fractions and average ``update_rank`` over
matrices. Beyond the sources: both references in one pass, every definition side by side on the same checkpoints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from scalpel import atomic
from scalpel.analyze import kernels
from scalpel.analyze.checkpoints import Checkpoint, CheckpointRef, check_compatible, describe
from scalpel.analyze.spectrum import EXACT_MAX, OVERSAMPLE, randomized_svd
from scalpel.hub import local_model
from scalpel.integrity import verify

ATOL = 1e-5
TOPK = 8
PRINCIPAL_FRACTION = 0.1
BF16_MANTISSA_BITS = 7
BF16_MIN_NORMAL_EXP = -126
BF16_MIN_ULP = 2.0 ** -133
FRACTIONS = ("changed_exact", "changed_atol", "changed_half_ulp")
COLUMNS: dict[str, str] = {
    "label": "arm / run label", "step": "training step of the checkpoint",
    "reference": "base, or previous (the run's previous checkpoint; the base for the first)",
    "ref_step": "step of the reference (-1: the base)", "layer": "decoder layer",
    "matrix": "q, k, v, o, gate, up, down",
    "rows": "output dimension", "cols": "input dimension",
    "changed_exact": "fraction of entries not bit-identical in the stored dtype (Mukherjee et al. 2025)",
    "changed_atol": "fraction with |Δ| > atol (1e-5 in Mukherjee et al.'s code)",
    "changed_half_ulp": "fraction with |Δ| ≥ ½ bf16 ULP of the reference weight (survives a bf16 cast)",
    "update_rank": "numerical rank(ΔW) / min(rows, cols), tolerance σ₁·max(rows, cols)·eps(fp32)",
    "principal_share": "share of the atol-changed entries that are principal weights of W_ref (LIFT / Path Not "
                       "Taken); chance = principal_fraction",
    "principal_enrichment": "principal_share / principal_fraction (< 1: the update avoids the principal weights)",
}


def bf16_half_ulp(w: np.ndarray) -> np.ndarray:
    """½ · the spacing of bf16 numbers just above |w| (see module docstring), elementwise, in fp64."""
    a = np.abs(np.asarray(w, dtype=np.float64))
    _, e = np.frexp(a)  # a = m · 2^e with m in [0.5, 1): ⌊log₂ a⌋ = e − 1
    ulp = np.ldexp(1.0, e - 1 - BF16_MANTISSA_BITS)
    ulp = np.where(a < 2.0 ** BF16_MIN_NORMAL_EXP, BF16_MIN_ULP, ulp)
    return 0.5 * ulp


def principal_mask(w: torch.Tensor, k: int = TOPK, fraction: float = PRINCIPAL_FRACTION,
                   exact_max: int = EXACT_MAX) -> torch.Tensor:
    """Boolean mask of W's principal weights: the top ``fraction`` of entries by |(U_k Σ_k V_kᵀ)_ij|."""
    if not 0 < fraction < 1:
        raise ValueError(f"principal_fraction must be in (0, 1), got {fraction}")
    if k < 1:
        raise ValueError(f"principal k must be >= 1, got {k}")
    k = min(k, *w.shape)
    if min(w.shape) <= exact_max:
        u, s, vh = torch.linalg.svd(w.double(), full_matrices=False)
    else:
        u, s, vh = randomized_svd(w.float(), k + OVERSAMPLE)
    approx = (u[:, :k] * s[:k]) @ vh[:k]
    n_top = max(1, round(fraction * w.numel()))
    mask = torch.zeros(w.numel(), dtype=torch.bool)
    mask[torch.topk(approx.abs().flatten(), n_top).indices] = True
    return mask.view(w.shape)


def update_rank(delta: torch.Tensor) -> float:
    """rank(ΔW) / min(shape) with numpy/torch's default tolerance for an fp32 matrix (module docstring)."""
    m, n = delta.shape
    if not bool(delta.any()):
        return 0.0
    rtol = max(m, n) * float(np.finfo(np.float32).eps)
    return int(torch.linalg.matrix_rank(delta.double(), rtol=rtol)) / min(m, n)


def matrix_structure(ref: np.ndarray, new: np.ndarray, ref_dtype: str, new_dtype: str, shape: tuple[int, int], *,
                     atol: float = ATOL, principal: torch.Tensor | None = None) -> dict[str, float]:
    """The structure columns of one ΔW = new − ref; ``ref``/``new`` are flat stored arrays (bf16 as uint16 bits),
    ``principal`` the reference's principal mask (None: no principal columns)."""
    if ref.size != new.size or ref.size != shape[0] * shape[1]:
        raise ValueError(f"sizes differ: reference {ref.size}, new {new.size}, shape {shape}")
    if atol < 0:
        raise ValueError(f"atol must be >= 0, got {atol}")
    w = kernels.as_float(ref, ref_dtype).astype(np.float64)
    d = kernels.as_float(new, new_dtype).astype(np.float64) - w
    n = d.size
    if ref_dtype == new_dtype:
        bits = np.dtype(f"u{ref.dtype.itemsize}")
        same = ref.view(bits) == new.view(bits)
    else:  # "bit-identical" has no meaning across dtypes: equal values
        same = d == 0
    ad = np.abs(d)
    changed = ad > atol
    out = {"changed_exact": np.count_nonzero(~same) / n, "changed_atol": np.count_nonzero(changed) / n,
           "changed_half_ulp": np.count_nonzero(ad >= bf16_half_ulp(w)) / n,
           "update_rank": update_rank(torch.from_numpy(d).view(shape))}
    share = math.nan
    if principal is not None and changed.any():
        share = np.count_nonzero(changed & principal.numpy().reshape(-1)) / np.count_nonzero(changed)
    if principal is not None:
        frac = principal.float().mean().item()
        out.update(principal_share=share, principal_enrichment=share / frac)
    return out


def _pairs(refs: list[CheckpointRef]) -> list[tuple[int, int | None]]:
    """(checkpoint index, index of the same label's previous checkpoint or None for the base), per checkpoint."""
    out, last = [], {}
    for i in sorted(range(len(refs)), key=lambda i: (refs[i].label, refs[i].step)):
        out.append((i, last.get(refs[i].label)))
        last[refs[i].label] = i
    return sorted(out)


def structure_rows(base: Checkpoint, cks: list[Checkpoint], refs: list[CheckpointRef], *, atol: float = ATOL,
                   topk: int = TOPK, principal_fraction: float = PRINCIPAL_FRACTION) -> Iterator[dict]:
    """One row per (checkpoint, reference, layer, matrix): each tensor of the base is read once for all."""
    analysed = base.architecture.analysed(base.n_layers)
    for ck in cks:
        check_compatible(base, ck, [n for _, _, n in analysed])
    pairs = _pairs(refs)
    for layer, matrix, name in analysed:
        info = base.tensors[name]
        shape = tuple(info.shape)
        arrays = [(base.array(name), info.dtype)] + [(ck.array(name), ck.tensors[name].dtype) for ck in cks]
        masks: dict[int, torch.Tensor] = {}  # by position in ``arrays`` (0 = base)

        def mask(j: int) -> torch.Tensor:
            if j not in masks:
                w = kernels.as_float(*arrays[j]).astype(np.float64)
                masks[j] = principal_mask(torch.from_numpy(w).view(shape), topk, principal_fraction)
            return masks[j]

        for i, prev in pairs:
            for reference, j in (("base", 0), ("previous", 0 if prev is None else prev + 1)):
                row = matrix_structure(arrays[j][0], arrays[i + 1][0], arrays[j][1], arrays[i + 1][1], shape,
                                       atol=atol, principal=mask(j))
                yield {"label": refs[i].label, "step": refs[i].step, "reference": reference,
                       "ref_step": -1 if j == 0 else refs[j - 1].step, "layer": layer, "matrix": matrix,
                       "rows": shape[0], "cols": shape[1], **row}


def _finite(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def summarize(rows: list[dict]) -> list[dict]:
    """Per (label, step, reference): entry-weighted changed fractions and principal share, mean update rank."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["label"], r["step"], r["reference"]), []).append(r)
    out = []
    for (label, step, reference), rs in sorted(groups.items()):
        sizes = np.array([r["rows"] * r["cols"] for r in rs], dtype=float)
        agg = {c: float(np.dot(sizes, [r[c] for r in rs]) / sizes.sum()) for c in FRACTIONS}
        changed = sizes * np.array([r["changed_atol"] for r in rs])
        shares = np.array([r.get("principal_share", math.nan) for r in rs])
        ok = ~np.isnan(shares) & (changed > 0)
        agg["principal_share"] = float(np.dot(changed[ok], shares[ok]) / changed[ok].sum()) if ok.any() else None
        agg["update_rank"] = float(np.mean([r["update_rank"] for r in rs]))
        out.append({"label": label, "step": step, "reference": reference, "ref_step": rs[0]["ref_step"], **agg})
    return out


def analyze_structure(base: str | Path, checkpoints: list[str | Path], out_dir: str | Path, *,
                      labels: list[str] | None = None, atol: float = ATOL, topk: int = TOPK,
                      principal_fraction: float = PRINCIPAL_FRACTION) -> Path:
    """Write ``structure.jsonl`` (one row per checkpoint × reference × matrix) and ``structure.json`` (settings,
    column meanings, per-checkpoint summary) into ``out_dir``; returns the summary's path."""
    if not checkpoints:
        raise ValueError("give at least one checkpoint to compare with the base")
    out_dir = Path(out_dir)
    base = local_model(base)  # a hub id: its cached snapshot
    refs = describe(checkpoints, labels)
    for path in [Path(base)] + [r.path for r in refs]:
        verify(path, tokenizer=False)
    with Checkpoint(base) as b:
        cks = [Checkpoint(r.path) for r in refs]
        try:
            rows = list(structure_rows(b, cks, refs, atol=atol, topk=topk, principal_fraction=principal_fraction))
        finally:
            for c in cks:
                c.close()
    with atomic.atomic_path(out_dir / "structure.jsonl") as tmp:
        tmp.write_text("".join(json.dumps({k: _finite(v) for k, v in r.items()}) + "\n" for r in rows))
    summary = {"base": str(base), "settings": {"atol": atol, "topk": topk, "principal_fraction": principal_fraction},
               "columns": COLUMNS, "table": "structure.jsonl", "summary": summarize(rows)}
    return atomic.write_json(out_dir / "structure.json", summary)
