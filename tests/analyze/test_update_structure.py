"""Update structure (issue 17, item 3): tolerance sparsity against an fp64 / torch-bf16 reference on planted
updates, update rank on planted low-rank updates, principal-weight share, and the two references on a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scalpel.analyze.synthetic import to_bf16_bits
from scalpel.analyze.update_structure import (
    analyze_structure,
    bf16_half_ulp,
    matrix_structure,
    principal_mask,
    update_rank,
)

from .conftest import save_variant


def _bf16_base(shape, seed=0) -> np.ndarray:
    """Random weights exactly representable in bf16 (so a bf16 ULP of each is unambiguous), as fp32."""
    w = np.random.default_rng(seed).normal(0, 0.05, shape).astype(np.float32)
    return torch.from_numpy(w).bfloat16().float().numpy()


def _reference_half_ulp(w: np.ndarray) -> np.ndarray:
    """½ the gap from w to the next bf16 number away from zero, by torch.nextafter in bf16 (independent of frexp)."""
    b = torch.from_numpy(np.abs(w)).bfloat16()
    return 0.5 * (torch.nextafter(b, torch.tensor(float("inf"), dtype=torch.bfloat16)).double() - b.double()).numpy()


def test_half_ulp_matches_bf16_spacing():
    w = _bf16_base((64, 48))
    w.flat[:3] = [0.0, 1.0, -2.0 ** -130]  # zero, a power of two, a subnormal
    np.testing.assert_array_equal(bf16_half_ulp(w), _reference_half_ulp(w))


def test_tolerance_fractions_against_fp64_reference_on_planted_updates():
    rng = np.random.default_rng(1)
    w = _bf16_base((96, 64))
    ulp = 2 * _reference_half_ulp(w)
    # per entry: no change, a sub-fp32 nudge that rounds away, multiples of the bf16 ULP either side of ½, and
    # absolute steps either side of 1e-5; each step points away from zero, so the ULP above |w| is the one that counts
    kinds = rng.integers(0, 8, w.shape)
    step = np.select([kinds == 0, kinds == 1, kinds == 2, kinds == 3, kinds == 4, kinds == 5, kinds == 6],
                     [0.0, np.abs(w) * 1e-9, 0.3 * ulp, 0.49 * ulp, 0.51 * ulp, 0.9e-5, 1.1e-5], 2.0 * ulp)
    new = (w.astype(np.float64) + np.sign(w) * step).astype(np.float32)  # stored in fp32, as training writes it
    got = matrix_structure(w.reshape(-1), new.reshape(-1), "F32", "F32", w.shape)

    d = new.astype(np.float64) - w.astype(np.float64)  # fp64 reference, element by element
    assert got["changed_exact"] == pytest.approx(np.mean(new.view(np.uint32) != w.view(np.uint32)), abs=0)
    assert got["changed_atol"] == pytest.approx(np.mean(np.abs(d) > 1e-5), abs=0)
    assert got["changed_half_ulp"] == pytest.approx(np.mean(np.abs(d) >= _reference_half_ulp(w)), abs=0)
    # meaning of the half-ULP column: exactly the updates a bf16 copy of the checkpoint keeps
    kept = torch.from_numpy(new).bfloat16().float().numpy() != w
    assert got["changed_half_ulp"] == pytest.approx(kept.mean(), abs=0)
    # the planted categories come out where they were put
    assert got["changed_exact"] == pytest.approx(np.mean(kinds >= 2), abs=0)
    assert 0 < got["changed_atol"] < got["changed_exact"]


def test_bf16_storage_bit_changes_are_the_half_ulp_changes():
    w = _bf16_base((40, 30), seed=3)
    rng = np.random.default_rng(4)
    new = w + rng.choice([0.0, 1e-4, -3e-3], w.shape).astype(np.float32)
    wb, nb = to_bf16_bits(w), to_bf16_bits(new)
    got = matrix_structure(wb, nb, "BF16", "BF16", w.shape)
    assert got["changed_exact"] == pytest.approx(got["changed_half_ulp"], abs=0)
    assert got["changed_exact"] == pytest.approx(np.mean(wb != nb), abs=0)


@pytest.mark.parametrize("r", [0, 1, 3, 7])
def test_update_rank_of_planted_low_rank_update(r):
    rng = np.random.default_rng(r)
    base = np.round(rng.normal(0, 0.05, (48, 32)) * 2 ** 12) / 2 ** 12  # quantised: base + Δ exact in fp32
    delta = rng.integers(-3, 4, (48, r)).astype(float) @ rng.integers(-3, 4, (r, 32)).astype(float) * 2.0 ** -20
    new = (base + delta).astype(np.float32)
    assert np.array_equal(new.astype(np.float64) - base, delta)
    got = matrix_structure(base.astype(np.float32).reshape(-1), new.reshape(-1), "F32", "F32", base.shape)
    assert got["update_rank"] == pytest.approx(np.linalg.matrix_rank(delta) / 32)
    assert update_rank(torch.from_numpy(delta)) == pytest.approx(np.linalg.matrix_rank(delta) / 32)


def test_principal_mask_is_top_entries_of_rank_k_approximation():
    rng = np.random.default_rng(5)
    w = rng.normal(size=(30, 20))
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    approx = np.abs((u[:, :3] * s[:3]) @ vh[:3])
    expected = approx >= np.sort(approx, axis=None)[-60]  # top 10 % of 600 entries
    mask = principal_mask(torch.from_numpy(w), k=3, fraction=0.1).numpy()
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="principal_fraction"):
        principal_mask(torch.from_numpy(w), fraction=1.5)


def test_principal_share_on_and_off_the_principal_weights():
    rng = np.random.default_rng(6)
    w = (np.outer(rng.normal(size=40), rng.normal(size=24)) + 0.01 * rng.normal(size=(40, 24))).astype(np.float32)
    mask = principal_mask(torch.from_numpy(w.astype(np.float64)), k=1, fraction=0.1)
    m = mask.numpy()
    on, off = w.copy(), w.copy()
    on[m] += 1e-2
    off[~m & (rng.random(w.shape) < 0.3)] += 1e-2
    for new, share in ((on, 1.0), (off, 0.0)):
        got = matrix_structure(w.reshape(-1), new.reshape(-1), "F32", "F32", w.shape, principal=mask)
        assert got["principal_share"] == share
        assert got["principal_enrichment"] == pytest.approx(share / m.mean())
    got = matrix_structure(w.reshape(-1), w.reshape(-1), "F32", "F32", w.shape, principal=mask)
    assert np.isnan(got["principal_share"]) and got["update_rank"] == 0.0 and got["changed_exact"] == 0.0


def test_bad_input_is_named():
    a = np.zeros(6, np.float32)
    with pytest.raises(ValueError, match="sizes differ"):
        matrix_structure(a, np.zeros(5, np.float32), "F32", "F32", (2, 3))
    with pytest.raises(ValueError, match="atol"):
        matrix_structure(a, a, "F32", "F32", (2, 3), atol=-1.0)
    with pytest.raises(ValueError, match="at least one checkpoint"):
        analyze_structure("base", [], "out")


def test_run_against_base_and_previous_checkpoint(tiny, tmp_path):
    """checkpoint-1 moves layer 0's q, checkpoint-2 then moves layer 1's down: against the base, step 2 shows
    both; against its previous checkpoint, only the down projection."""
    d, model, tok = tiny
    base = save_variant(model, tok, tmp_path / "base")

    def first(m):  # a rank-4 update of 4 rows
        gen = torch.Generator().manual_seed(0)
        m.model.layers[0].self_attn.q_proj.weight[:4] += 0.01 * (1 + torch.rand(4, 32, generator=gen))

    def second(m):
        first(m)
        m.model.layers[1].mlp.down_proj.weight[:, :2] += 0.01

    c1 = save_variant(model, tok, tmp_path / "run/checkpoint-1", first)
    c2 = save_variant(model, tok, tmp_path / "run/checkpoint-2", second)
    summary = json.loads(analyze_structure(base, [c2, c1], tmp_path / "out").read_text())
    rows = [json.loads(x) for x in (tmp_path / "out/structure.jsonl").read_text().splitlines()]

    def changed(step, reference):
        return {(r["layer"], r["matrix"]) for r in rows if r["step"] == step and r["reference"] == reference
                and r["changed_exact"] > 0}

    assert changed(1, "base") == changed(1, "previous") == {(0, "q")}
    assert changed(2, "base") == {(0, "q"), (1, "down")}
    assert changed(2, "previous") == {(1, "down")}
    assert {r["ref_step"] for r in rows if r["step"] == 2 and r["reference"] == "previous"} == {1}
    q = next(r for r in rows if r["step"] == 1 and r["reference"] == "base" and (r["layer"], r["matrix"]) == (0, "q"))
    assert q["changed_atol"] == pytest.approx(4 / 32) and q["update_rank"] == pytest.approx(4 / 32)
    by = {(s["step"], s["reference"]): s for s in summary["summary"]}
    n_entries = sum(r["rows"] * r["cols"] for r in rows if r["step"] == 1 and r["reference"] == "base")
    assert by[(1, "base")]["changed_exact"] == pytest.approx(4 * 32 / n_entries)
    assert by[(2, "previous")]["changed_exact"] < by[(2, "base")]["changed_exact"]
