"""Weight-update analysis: planted truth on tiny models, the streaming reader's errors, and the kernel's accuracy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from scalpel.analyze import kernels
from scalpel.analyze.architectures import ArchitectureError, selector
from scalpel.analyze.checkpoints import Checkpoint, CheckpointError
from scalpel.analyze.synthetic import to_bf16_bits, write_safetensors
from scalpel.analyze.weight_table import read_table
from scalpel.analyze.weights import analyze_weights

from .conftest import save_variant

Q = 2.0 ** -20  # planted updates are integers × Q on a base quantised to 2^-12: base + ΔW is exact in fp32


def _quantise(m):
    for p in m.parameters():
        p.copy_(torch.round(p * 2**12) / 2**12)


def _equal_sv_update(rows: int, cols: int, r: int) -> np.ndarray:
    """r outer products of ±1 vectors on disjoint supports: rank r, all singular values equal."""
    d = np.zeros((rows, cols))
    rng = np.random.default_rng(1)
    for i in range(r):
        u = rng.choice([-1.0, 1.0], 8)
        v = rng.choice([-1.0, 1.0], 4)
        d[8 * i:8 * i + 8, 4 * i:4 * i + 4] = np.outer(u, v)
    return d


@pytest.fixture(scope="module")
def planted(tiny, tmp_path_factory):
    """Base (quantised), an identical checkpoint and one with two planted updates; analysed once."""
    _, model, tok = tiny
    root = tmp_path_factory.mktemp("planted")
    base = save_variant(model, tok, root / "base", _quantise)
    from transformers import AutoModelForCausalLM

    qmodel = AutoModelForCausalLM.from_pretrained(str(base))
    equal = save_variant(qmodel, tok, root / "run/checkpoint-1")
    d_up = _equal_sv_update(64, 32, 3)
    rng = np.random.default_rng(2)
    d_gate = rng.integers(-3, 4, (64, 2)).astype(float) @ rng.integers(-3, 4, (2, 32)).astype(float)

    def plant(m):
        m.model.layers[1].mlp.up_proj.weight += torch.tensor(d_up * Q, dtype=torch.float32)
        m.model.layers[2].mlp.gate_proj.weight += torch.tensor(d_gate * Q, dtype=torch.float32)

    changed = save_variant(qmodel, tok, root / "run/checkpoint-2", plant)
    out = root / "out"
    table = analyze_weights(base, [equal, changed], out, progress=False, threads=1)
    return {"base": base, "equal": equal, "changed": changed, "out": out, "rows": read_table(table),
            "d_up": d_up, "d_gate": d_gate}


def _row(rows, step, layer, matrix):
    return next(r for r in rows if r["step"] == step and r["layer"] == layer and r["matrix"] == matrix)


def test_checkpoint_equal_to_base_has_zero_update(planted):
    rows = [r for r in planted["rows"] if r["step"] == 1]
    assert len(rows) == 3 * 7
    for r in rows:
        assert r["fro_delta"] == 0.0 and r["rel_fro"] == 0.0 and r["rms_delta"] == 0.0
        assert r["unchanged_exact"] == 1.0 and r["unchanged_atol"] == 1.0
        assert r["numerical_rank"] == 0


def test_planted_update_norm_and_rank_are_exact(planted):
    rows = planted["rows"]
    up = _row(rows, 2, 1, "up")
    want = math.sqrt((planted["d_up"] ** 2).sum()) * Q
    assert abs(up["fro_delta"] - want) / want < 1e-6
    assert up["numerical_rank"] == 3
    assert abs(up["effective_rank"] - 3.0) < 1e-6  # equal singular values: exp(entropy) = rank
    assert abs(up["stable_rank"] - 3.0) < 1e-6
    assert abs(up["rms_delta"] - want / math.sqrt(64 * 32)) / up["rms_delta"] < 1e-6
    assert up["unchanged_exact"] == pytest.approx(1 - 3 * 32 / (64 * 32))
    gate = _row(rows, 2, 2, "gate")
    want = math.sqrt((planted["d_gate"] ** 2).sum()) * Q
    assert abs(gate["fro_delta"] - want) / want < 1e-6
    assert gate["numerical_rank"] == np.linalg.matrix_rank(planted["d_gate"]) == 2
    assert gate["topk_energy"] == pytest.approx(1.0)
    for r in rows:  # nothing else moved
        if r["step"] == 2 and (r["layer"], r["matrix"]) not in ((1, "up"), (2, "gate")):
            assert r["fro_delta"] == 0.0


def test_base_norm_matches_fp64(planted):
    ck = Checkpoint(planted["base"])
    r = _row(planted["rows"], 2, 1, "up")
    w = ck.array(r["tensor"]).astype(np.float64)
    assert r["fro_base"] == pytest.approx(math.sqrt(w @ w), rel=1e-12)
    assert r["rel_fro"] == pytest.approx(r["fro_delta"] / r["fro_base"], rel=1e-12)


def test_summary_lists_excluded_tensors(planted):
    summary = json.loads((planted["out"] / "weights.json").read_text())
    reasons = {e["tensor"]: e["reason"] for e in summary["excluded"]}
    assert "lm_head" in reasons["lm_head.weight"]
    assert "embedding" in reasons["model.embed_tokens.weight"]
    assert "q_norm" in reasons["model.layers.0.self_attn.q_norm.weight"]
    assert reasons["model.layers.0.post_attention_layernorm.weight"] == "layer norm"
    assert summary["architecture"] == "olmo2"
    assert [c["step"] for c in summary["checkpoints"]] == [1, 2]


def test_figures_heatmaps_gif_and_lines(planted):
    figs = planted["out"] / "figures"
    assert (figs / "heatmap_run_step000001.png").is_file() and (figs / "heatmap_run_step000002.png").is_file()
    with Image.open(figs / "heatmap_run.gif") as gif:
        assert gif.n_frames == 2
    assert (figs / "lines_run.png").is_file()


def test_base_topk_share_and_randomised_path(tiny, tmp_path):
    """ΔW along W_base's top singular pair lies wholly in its top-k directions; the randomised SVD (forced by
    exact_max=8) still finds a planted rank exactly."""
    _, model, tok = tiny
    base = save_variant(model, tok, tmp_path / "base")
    w = model.model.layers[0].self_attn.q_proj.weight.detach().double()
    u, s, vh = torch.linalg.svd(w)
    d_q = (0.05 * torch.outer(u[:, 0], vh[0])).float()
    rng = np.random.default_rng(3)
    d_down = torch.tensor(rng.standard_normal((32, 2)) @ rng.standard_normal((2, 64)) * 1e-2, dtype=torch.float32)

    def edit(m):
        m.model.layers[0].self_attn.q_proj.weight += d_q
        m.model.layers[1].mlp.down_proj.weight += d_down

    ck = save_variant(model, tok, tmp_path / "ck", edit)
    rows = read_table(analyze_weights(base, [ck], tmp_path / "out", exact_max=8, topk=4, figures=False,
                                      progress=False, threads=1))
    q = _row(rows, 0, 0, "q")
    assert q["base_topk_share_out"] > 0.999 and q["base_topk_share_in"] > 0.999
    down = _row(rows, 0, 1, "down")
    assert down["sv_method"].startswith("randomized")
    assert down["numerical_rank"] == 2
    assert down["topk_energy"] == pytest.approx(1.0, abs=1e-5)


def test_sharded_checkpoint_reads_like_single_file(tiny, tmp_path, planted):
    _, model, tok = tiny
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(planted["changed"]))
    sharded = tmp_path / "run/checkpoint-2"
    m.save_pretrained(str(sharded), max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    rows = read_table(analyze_weights(planted["base"], [sharded], tmp_path / "out", spectrum=False,
                                      figures=False, progress=False, threads=1))
    ref = [r for r in planted["rows"] if r["step"] == 2]
    assert [r["fro_delta"] for r in rows] == [r["fro_delta"] for r in ref]


def test_pickle_checkpoint_is_refused_without_loading(tmp_path, planted, monkeypatch):
    import pickle

    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "config.json").write_text((planted["base"] / "config.json").read_text())
    (bad / "pytorch_model.bin").write_bytes(pickle.dumps({"x": 1}))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called on a pickle"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load called"))
    with pytest.raises(CheckpointError, match="pickle"):
        analyze_weights(planted["base"], [bad], tmp_path / "out", progress=False)


def test_mismatched_architecture_and_missing_tensor(tmp_path, planted):
    from scalpel.analyze.synthetic import tiny_model

    other = tmp_path / "other"
    tiny_model(other, layers=3, hidden=48, heads=4)
    with pytest.raises(ArchitectureError, match="hidden_size"):
        analyze_weights(planted["base"], [other], tmp_path / "o1", progress=False)
    # same config, one analysed tensor dropped
    src = Checkpoint(planted["equal"])
    keep = [(n, i.dtype, i.shape) for n, i in src.tensors.items() if n != "model.layers.1.mlp.up_proj.weight"]
    holed = tmp_path / "holed"
    holed.mkdir()
    (holed / "config.json").write_text((planted["equal"] / "config.json").read_text())
    write_safetensors(holed / "model.safetensors", keep, lambda n, d, s: np.array(src.array(n)))
    with pytest.raises(CheckpointError, match="lacks tensors.*up_proj"):
        analyze_weights(planted["base"], [holed], tmp_path / "o2", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        analyze_weights(planted["base"], [tmp_path / "nope"], tmp_path / "o3", progress=False)


# ------------------------------------------------------------------------------------------- the kernel


def _f32_of_bf16(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def test_bf16_kernel_matches_fp64_reference_and_shows_rounding():
    """A small update (σ = 1e-5 on |w| ~ 0.02) mostly rounds away in bf16: the exact-unchanged fraction is high
    *because of rounding*, and below_bf16_resolution says so; an fp32 copy of the same update is never equal."""
    rng = np.random.default_rng(0)
    n = 3 * kernels.BLOCK + 123  # not a multiple of the block
    w = rng.standard_normal(n).astype(np.float32) * 0.02
    upd = w + rng.standard_normal(n).astype(np.float32) * 1e-5
    b, c = to_bf16_bits(w), to_bf16_bits(upd)
    st = kernels.diff_stats(b, [c, b], "BF16", atol=1e-6, rtol=2**-8)
    wb, wc = _f32_of_bf16(b), _f32_of_bf16(c)
    d = wc - wb
    ref = [d @ d, wb @ wb, np.count_nonzero(b == c), np.count_nonzero(np.abs(d) <= np.float32(1e-6)),
           np.count_nonzero(np.abs(d) < np.abs(wb) * 2**-8)]
    np.testing.assert_allclose(st[0][:2], ref[:2], rtol=1e-7)  # fp32 within 256-element chunks, fp64 across
    assert list(st[0][2:]) == ref[2:]  # counts exact
    assert st[1][0] == 0 and st[1][2] == n
    assert 0.5 < st[0][2] / n < 0.99  # "unchanged" in bf16 ...
    f32 = kernels.diff_stats(w, [upd], "F32")[0]
    assert f32[2] / n < 1e-3  # ... though (nearly) every fp32 entry moved
    assert f32[4] / n > 0.9  # and most of those moves are below one bf16 step


def test_bf16_kernel_groups_do_not_change_results():
    """Checkpoints are reduced GROUP at a time next to one read of the base (padded groups, prefetch near the end
    of the tensor): each checkpoint's statistics are the same alone, padded, or split across groups."""
    rng = np.random.default_rng(1)
    n = kernels.BLOCK + kernels.CHUNK * 3 + 7  # a partial block and a partial chunk
    w = rng.standard_normal(n).astype(np.float32) * 0.02
    b = to_bf16_bits(w)
    cks = [to_bf16_bits(w + rng.standard_normal(n).astype(np.float32) * s)
           for s in (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)]
    together = kernels.diff_stats(b, cks, "BF16")  # a group of 4, then a padded group of 2
    for i, c in enumerate(cks):
        np.testing.assert_array_equal(kernels.diff_stats(b, [c], "BF16")[0], together[i])
    assert together[0][2] == n and together[5][2] < n // 10


def test_large_norm_is_accurate_where_fp32_accumulation_is_not():
    """The issue's pitfall: an fp32 reduction over ~1e8 elements was off ~1 %. fp32 storage accumulates in fp64;
    bf16 in fp32 only within 256-element chunks, then fp64 — both checked against an fp64 reference."""
    n = 20_000_000
    x = np.full(n, 0.1, np.float32) + np.random.default_rng(0).random(n, dtype=np.float32) * 1e-3
    z = np.zeros(n, np.float32)
    st = kernels.diff_stats(z, [x], "F32")[0]
    ref = float(np.dot(x.astype(np.float64), x.astype(np.float64)))
    assert abs(st[0] - ref) / ref < 1e-9
    bx = to_bf16_bits(x)
    st = kernels.diff_stats(np.zeros(n, np.uint16), [bx], "BF16")[0]
    fx = _f32_of_bf16(bx)
    ref = float(fx @ fx)
    assert abs(st[0] - ref) / ref < 1e-7 and abs(st[1]) == 0


def test_selector_strings():
    assert selector("mlp", [20, 21, 22, 23, 24, 25, 26]) == ["mlp@20-26"]
    assert selector("mlp", [5, 1, 2]) == ["mlp@1-2", "mlp@5"]
    assert selector("mlp", []) == []


def test_fp32_and_mixed_dtype_paths_agree():
    rng = np.random.default_rng(5)
    w = rng.standard_normal(1000).astype(np.float32)
    c = w + rng.standard_normal(1000).astype(np.float32) * 1e-3
    fast = kernels.diff_stats(w, [c], "F32")[0]
    slow = kernels._numpy_stats(w, "F32", c, "F32", 1e-6, 2**-8)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    mixed = kernels.diff_stats(to_bf16_bits(w), [c], "BF16", ["F32"])[0]
    d = c.astype(np.float64) - _f32_of_bf16(to_bf16_bits(w))
    assert mixed[0] == pytest.approx(d @ d, rel=1e-12)
