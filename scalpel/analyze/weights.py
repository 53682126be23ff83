"""Weight-update maps: how much, how sparsely and in what directions each matrix moved (paper §4.2, Figs. 5/6).

Method. For every layer and matrix type (q, k, v, o, gate, up, down) and every checkpoint, ΔW = W_ckpt − W_base:
- ``rel_fro`` = ‖ΔW‖_F / ‖W_base‖_F (the paper's "normalised Frobenius norm": scale-free across matrix types)
  and ``rms_delta`` = ‖ΔW‖_F / √numel (the typical per-entry update, comparable to a learning rate);
- update sparsity: ``unchanged_exact`` (bit-identical in the stored dtype), ``unchanged_atol`` (|Δ| ≤ atol) and
  ``below_bf16_resolution`` (|Δ| < |W_base|/256, i.e. below one bf16 step at |w|). In a bf16 checkpoint a small
  optimiser step rounds away, so ``unchanged_exact`` near 1 there means "below resolution", not "sparse update";
  for fp32 checkpoints the last column shows how much of the update a bf16 copy would erase;
- optionally the spectrum of ΔW (see ``spectrum.py``).
Excluded, as in the paper: q_norm/k_norm, layer norms, embeddings, lm_head (listed in the summary with a reason).

Beyond the paper: sparsity and spectrum columns; any number of checkpoints and arms in one pass (tensor-major: the
base tensor is read once for all checkpoints); exact fp64 accumulation. Streaming: tensors are memory-mapped one
at a time and reduced by a compiled one-pass kernel (``kernels.py``), so memory stays a few tensors' worth.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from scalpel import atomic
from scalpel.analyze import kernels, plots
from scalpel.analyze.architectures import MATRICES
from scalpel.analyze.weight_table import COLUMNS, grids, write_table
from scalpel.analyze.checkpoints import (
    Checkpoint,
    CheckpointRef,
    check_compatible,
    describe,
)
from scalpel.analyze.spectrum import (
    EXACT_MAX,
    SPECTRUM_COLUMNS,
    spectrum_stats,
    top_directions,
)
from scalpel.hub import local_model
from scalpel.integrity import verify

BF16_RTOL = 2.0 ** -8

def weight_rows(base: Checkpoint, cks: list[Checkpoint], refs: list[CheckpointRef], *, spectrum: bool = True,
                topk: int = 8, atol: float = 1e-6, exact_max: int = EXACT_MAX, progress: bool = True):
    """Yield one table row per (layer, matrix, checkpoint), tensor-major so each base tensor is read once."""
    arch = base.architecture
    analysed = arch.analysed(base.n_layers)
    names = [n for _, _, n in analysed]
    for ck in cks:
        check_compatible(base, ck, names)
    for layer, matrix, name in tqdm(analysed, desc="weights", unit="tensor", disable=not progress):
        info = base.tensors[name]
        rows, cols = info.shape
        b = base.array(name)
        arrays = [ck.array(name) for ck in cks]
        stats = kernels.diff_stats(b, arrays, info.dtype, [ck.tensors[name].dtype for ck in cks],
                                   atol=atol, rtol=BF16_RTOL)
        dirs = None
        if spectrum:
            exact = min(rows, cols) <= exact_max
            wb = np.array(kernels.as_float(b, info.dtype), dtype=np.float64 if exact else np.float32)  # own copy
            dirs = top_directions(torch.from_numpy(wb).view(rows, cols), topk, exact_max)
            del wb
        for ref, ck, a, st in zip(refs, cks, arrays, stats):
            fro2, base2, n_eq, n_atol, n_rel = st
            n = info.numel
            row = {
                "label": ref.label, "step": ref.step, "checkpoint": str(ref.path), "layer": layer,
                "matrix": matrix, "tensor": name, "rows": rows, "cols": cols, "numel": n, "dtype": info.dtype,
                "fro_delta": math.sqrt(fro2), "fro_base": math.sqrt(base2),
                "rel_fro": math.sqrt(fro2 / base2) if base2 > 0 else float("nan"),
                "rms_delta": math.sqrt(fro2 / n),
                "unchanged_exact": n_eq / n, "unchanged_atol": n_atol / n, "below_bf16_resolution": n_rel / n,
                "atol": atol,
            }
            if spectrum:
                exact = min(rows, cols) <= exact_max
                d = kernels.delta(b, a, info.dtype, ck.tensors[name].dtype, fp64=exact)
                row.update(spectrum_stats(torch.from_numpy(d).view(rows, cols), fro2, topk, dirs, exact_max))
                del d
            else:
                row.update({c: "" for c in SPECTRUM_COLUMNS})
            row["topk"] = topk if spectrum else ""
            yield row
        del b, arrays


def excluded_tensors(base: Checkpoint) -> list[dict[str, str]]:
    """Every tensor the analysis leaves out, with the reason (the paper's exclusions, made visible)."""
    arch = base.architecture
    analysed = {n for _, _, n in arch.analysed(base.n_layers)}
    return [{"tensor": n, "reason": arch.exclusion_reason(n)} for n in sorted(base.tensors) if n not in analysed]


def draw_figures(rows: list[dict], out_dir: Path, value: str = "rel_fro", shared_scale: bool = True,
                 vmax: float | None = None) -> list[Path]:
    """Heatmap PNG per checkpoint, a GIF across each label's checkpoints and per-type mean lines (Figs. 5/6).

    ``shared_scale``: one colour scale for every label (arms comparable at a glance); otherwise one per label.
    Within a GIF the scale is always shared, so frames are comparable. ``vmax`` fixes the scale outright.
    """
    g = grids(rows, value)
    written: list[Path] = []
    labels = sorted({k[0] for k in g})
    top = vmax if vmax is not None else (max(np.nanmax(a) for a in g.values()) if shared_scale else None)
    for label in labels:
        keys = sorted(k for k in g if k[0] == label)
        scale = top if top is not None else max(np.nanmax(g[k]) for k in keys)
        figs = []
        for key in keys:
            fig = plots.heatmap_figure(g[key], MATRICES, f"{label} step {key[1]}: {value}", scale,
                                       label=COLUMNS[value].split(" (")[0])
            written.append(plots.save_png(fig, out_dir / f"heatmap_{plots.slug(label)}_step{key[1]:06d}.png"))
            figs.append(fig)
        if len(figs) > 1:
            written.append(plots.save_gif(figs, out_dir / f"heatmap_{plots.slug(label)}.gif"))
        steps = [k[1] for k in keys]
        series = {m: [float(np.nanmean(g[k][:, j])) for k in keys] for j, m in enumerate(MATRICES)}
        fig = plots.lines_figure(steps, series, f"{label}: mean {value} over layers, per matrix type",
                                 "training step", value)
        written.append(plots.save_png(fig, out_dir / f"lines_{plots.slug(label)}.png"))
    return written


def analyze_weights(base: str | Path, checkpoints: list[str | Path], out_dir: str | Path, *,
                    labels: list[str] | None = None, spectrum: bool = True, topk: int = 8, atol: float = 1e-6,
                    exact_max: int = EXACT_MAX, threads: int = 2, fmt: str = "csv", figures: bool = True,
                    shared_scale: bool = True, vmax: float | None = None, value: str = "rel_fro",
                    progress: bool = True) -> Path:
    """Analyse every checkpoint against ``base``; write ``weights.{csv|jsonl}``, ``weights.json`` (settings,
    checkpoints, excluded tensors, column meanings) and figures into ``out_dir``. Returns the table's path."""
    out_dir = Path(out_dir)
    if not checkpoints:
        raise ValueError("give at least one checkpoint to compare with the base")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"fmt must be csv or jsonl, not {fmt!r}")
    kernels.set_threads(threads)
    base = local_model(base)  # a hub id: its cached snapshot
    refs = describe(checkpoints, labels)
    for path in [base] + [r.path for r in refs]:
        verify(path, tokenizer=False)
    with Checkpoint(base) as b:
        cks = [Checkpoint(r.path) for r in refs]
        try:
            arch = b.architecture
            rows = list(weight_rows(b, cks, refs, spectrum=spectrum, topk=topk, atol=atol, exact_max=exact_max,
                                    progress=progress))
            excluded = excluded_tensors(b)
        finally:
            for c in cks:
                c.close()
    table = write_table(rows, out_dir / f"weights.{fmt}")
    written = draw_figures(rows, out_dir / "figures", value, shared_scale, vmax) if figures else []
    summary = {
        "base": str(base), "architecture": arch.name,
        "checkpoints": [{"path": str(r.path), "label": r.label, "step": r.step} for r in refs],
        "settings": {"spectrum": spectrum, "topk": topk, "atol": atol, "bf16_rtol": BF16_RTOL,
                     "exact_svd_max_dim": exact_max},
        "table": table.name, "columns": COLUMNS, "excluded": excluded,
        "figures": [str(p.relative_to(out_dir)) for p in written],
        "mean_rel_fro": {f"{r.label}@{r.step}": {m: float(np.mean([x["rel_fro"] for x in rows
                                                                    if x["checkpoint"] == str(r.path)
                                                                    and x["matrix"] == m])) for m in MATRICES}
                         for r in refs},
    }
    atomic.write_json(out_dir / "weights.json", summary)  # last: its presence means the table is complete
    return table
