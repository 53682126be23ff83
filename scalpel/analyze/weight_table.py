"""The weight-update table on disk (``weights.csv`` / ``.jsonl``): its columns and what each means, writing and
reading it, and the layer × matrix grids heatmaps are drawn from.

Kept apart from ``weights.py`` (which computes the table with compiled kernels) so the study's index and figures
read it without importing the analysis.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from scalpel import atomic
from scalpel.analyze.architectures import MATRICES

COLUMNS: dict[str, str] = {
    "label": "arm / run label of the checkpoint",
    "step": "training step (from checkpoint-N), else the checkpoint's position in the list",
    "checkpoint": "checkpoint path",
    "layer": "decoder layer index (0 = nearest the embeddings)",
    "matrix": "q, k, v, o (attention) or gate, up, down (MLP)",
    "tensor": "tensor name in the checkpoint",
    "rows": "output dimension", "cols": "input dimension", "numel": "entries",
    "dtype": "stored dtype (safetensors)",
    "fro_delta": "‖ΔW‖_F, fp64-accumulated",
    "fro_base": "‖W_base‖_F",
    "rel_fro": "‖ΔW‖_F / ‖W_base‖_F (the paper's normalised Frobenius norm)",
    "rms_delta": "‖ΔW‖_F / √numel (root-mean-square entry update)",
    "unchanged_exact": "fraction of entries bit-identical in the stored dtype (bf16 rounding inflates it)",
    "unchanged_atol": "fraction of entries with |Δ| ≤ atol",
    "below_bf16_resolution": "fraction with |Δ| < |W_base|/256: updates a bf16 copy cannot represent",
    "atol": "absolute tolerance used for unchanged_atol",
    "sv_method": "exact SVD, randomized(q=...) or none; spectrum columns are empty when --no-spectrum",
    "numerical_rank": "#σ > σ₁·max(m,n)·eps(fp32) (capped at q when randomised)",
    "effective_rank": "exp(entropy of σ/Σσ) (Roy & Vetterli); over the top q values when randomised",
    "stable_rank": "‖ΔW‖_F² / σ₁²",
    "topk_energy": "Σ_{i≤k} σ_i² / ‖ΔW‖_F²",
    "base_topk_share_out": "‖U_kᵀ ΔW‖² / ‖ΔW‖², U_k = top-k left singular vectors of W_base (chance: k/rows)",
    "base_topk_share_in": "‖ΔW V_k‖² / ‖ΔW‖², V_k = top-k right singular vectors of W_base (chance: k/cols)",
    "topk": "k used for the top-k columns",
}


def write_table(rows: list[dict], path: Path) -> Path:
    """CSV (``.csv``) or JSON lines (``.jsonl``), columns in ``COLUMNS`` order; floats at full precision."""
    with atomic.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        if path.suffix == ".jsonl":
            for r in rows:
                fh.write(json.dumps({c: r.get(c) for c in COLUMNS}) + "\n")
        else:
            w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
            w.writeheader()
            for r in rows:
                w.writerow({c: r.get(c) for c in COLUMNS})
    return path


def read_table(path: str | Path) -> list[dict]:
    """Rows of a table written by ``write_table`` (numbers parsed back)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            for k, v in r.items():
                if k in ("label", "checkpoint", "matrix", "tensor", "dtype", "sv_method") or v == "":
                    continue
                r[k] = float(v) if any(ch in v for ch in ".eEn") else int(v)
            out.append(r)
    return out


def grid(per_matrix: Mapping[str, Sequence[float]], n_layers: int | None = None) -> np.ndarray:
    """Layer × matrix array (columns in ``MATRICES`` order, NaN where there is no value) of one checkpoint's
    column, from ``{matrix: [value per layer]}`` (the form ``index.json`` stores)."""
    n = n_layers if n_layers is not None else max(len(v) for v in per_matrix.values())
    g = np.full((n, len(MATRICES)), np.nan)
    for j, m in enumerate(MATRICES):
        for i, v in enumerate(per_matrix.get(m, [])):
            g[i, j] = v
    return g


def grids(rows: list[dict], value: str = "rel_fro") -> dict[tuple[str, int], np.ndarray]:
    """``{(label, step): layer × matrix array}`` of one column, for heatmaps."""
    n_layers = 1 + max(int(r["layer"]) for r in rows)
    per: dict[tuple[str, int], dict[str, list[float]]] = {}
    for r in rows:
        column = per.setdefault((r["label"], int(r["step"])), {}).setdefault(r["matrix"], [math.nan] * n_layers)
        column[int(r["layer"])] = float(r[value])
    return {key: grid(by_matrix, n_layers) for key, by_matrix in per.items()}
