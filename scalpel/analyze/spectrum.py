"""Spectrum of a weight update ΔW: is it low-rank, and does it live where W_base is already strong?

Measures (σ = singular values of ΔW, descending):
- ``effective_rank`` = exp(H(p)), p_i = σ_i / Σσ (Roy & Vetterli 2007): r for r equal singular values, between 1
  and rank otherwise. On the randomised path it is taken over the top-q values only (documented in ``sv_method``).
- ``numerical_rank``: #σ_i > σ_1 · max(m, n) · eps(fp32) (numpy's ``matrix_rank`` rule; ΔW of stored values is
  exact in fp32). Capped at q on the randomised path.
- ``stable_rank`` = ‖ΔW‖_F² / σ_1² (robust, exact on both paths).
- ``topk_energy`` = Σ_{i≤k} σ_i² / ‖ΔW‖_F².
- ``base_topk_share_out`` = ‖U_kᵀ ΔW‖_F² / ‖ΔW‖_F² and ``base_topk_share_in`` = ‖ΔW V_k‖_F² / ‖ΔW‖_F², with U_k,
  V_k the top-k left/right singular vectors of W_base: the share of the update in the base's dominant output /
  input directions. A random ΔW scores k/rows and k/cols.
Small matrices (min dim ≤ ``exact_max``) use an exact fp64 SVD; larger ones a seeded randomised SVD (Halko et
al. 2011, q = k + oversampling, 2 power iterations) in fp32, so memory stays a few copies of one matrix.
"""

from __future__ import annotations

import math

import numpy as np
import torch

EXACT_MAX = 1024
OVERSAMPLE = 24
POWER_ITERS = 2


def randomized_svd(a: torch.Tensor, q: int, niter: int = POWER_ITERS, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-q singular triplets of ``a`` (Halko et al. Alg. 4.4), with a seeded Gaussian test matrix."""
    m, n = a.shape
    q = min(q, m, n)
    gen = torch.Generator().manual_seed(seed)
    omega = torch.randn(n, q, generator=gen, dtype=a.dtype)
    y, _ = torch.linalg.qr(a @ omega)
    for _ in range(niter):
        z, _ = torch.linalg.qr(a.T @ y)
        y, _ = torch.linalg.qr(a @ z)
    b = y.T @ a  # q × n
    ub, s, vh = torch.linalg.svd(b, full_matrices=False)
    return y @ ub, s, vh


def top_directions(w: torch.Tensor, k: int, exact_max: int = EXACT_MAX) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_k, V_k): the base matrix's top-k left and right singular vectors."""
    k = min(k, *w.shape)
    if min(w.shape) <= exact_max:
        u, _, vh = torch.linalg.svd(w.double(), full_matrices=False)
    else:
        u, _, vh = randomized_svd(w.float(), k + OVERSAMPLE)
    return u[:, :k].contiguous(), vh[:k].T.contiguous()


def spectrum_stats(delta: torch.Tensor, fro2: float, k: int, base_dirs: tuple[torch.Tensor, torch.Tensor] | None,
                   exact_max: int = EXACT_MAX) -> dict[str, float | int | str]:
    """Spectrum measures of one ΔW (see module docstring); ``fro2`` = ‖ΔW‖_F² from the exact fp64 pass."""
    m, n = delta.shape
    nan = float("nan")
    if fro2 == 0.0:
        return {"sv_method": "none (ΔW = 0)", "numerical_rank": 0, "effective_rank": 0.0, "stable_rank": 0.0,
                "topk_energy": nan, "base_topk_share_out": nan, "base_topk_share_in": nan}
    if min(m, n) <= exact_max:
        d = delta.double()
        s = torch.linalg.svdvals(d)
        method = "exact"
    else:
        d = delta.float()
        _, s, _ = randomized_svd(d, k + OVERSAMPLE)
        s = s.double()
        method = f"randomized(q={len(s)})"
    s = s.numpy()
    s1 = float(s[0])
    kept = s[s > s1 * max(m, n) * np.finfo(np.float32).eps]  # below this is round-off, not update
    rank = len(kept)
    p = kept / kept.sum()
    eff = float(math.exp(-(p * np.log(p)).sum()))
    out: dict[str, float | int | str] = {
        "sv_method": method, "numerical_rank": rank, "effective_rank": eff, "stable_rank": fro2 / (s1 * s1),
        "topk_energy": float((s[:k] ** 2).sum() / fro2),
        "base_topk_share_out": nan, "base_topk_share_in": nan,
    }
    if base_dirs is not None:
        u, v = base_dirs
        out["base_topk_share_out"] = float((u.T.to(d.dtype) @ d).pow(2).sum() / fro2)
        out["base_topk_share_in"] = float((d @ v.to(d.dtype)).pow(2).sum() / fro2)
    return out


SPECTRUM_COLUMNS = ("sv_method", "numerical_rank", "effective_rank", "stable_rank", "topk_energy",
                    "base_topk_share_out", "base_topk_share_in")
