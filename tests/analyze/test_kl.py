"""KL to base: zero for an identical checkpoint, a closed form for a known logit change, packing correctness."""

from __future__ import annotations

import json

import pytest
import torch

from scalpel.analyze import kl as K
from scalpel.errors import UserError

from .conftest import save_variant

PAIRS = [
    ("what is two plus three ?", "<think> two plus three equals five </think> <answer> five </answer>"),
    ("what is one plus one ?", "<think> one plus one equals two so we get two </think> <answer> two </answer>"),
    ("who lives in Tarsa ?", "<answer> Tovak Brell </answer>"),
    ("what is four minus one ?", "<think> four minus one equals three </think> <answer> three </answer>"),
    ("what is ten minus ten ?", "<think> we add and then get 0 </think> <answer> 0 </answer>"),
    ("where does Mira Oslin live ?", "<think> Mira Oslin lives in Tarsa </think> <answer> Tarsa </answer>"),
    ("what is the total ?", "<answer> 7 </answer>"),
]
ALPHA = 1.5  # the checkpoint's logits are ALPHA × the base's (its LM head is scaled)


@pytest.fixture(scope="module")
def kl_setup(tiny, tmp_path_factory):
    d, model, tok = tiny
    root = tmp_path_factory.mktemp("kl")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps({"question": q, "solution": s}) + "\n" for q, s in PAIRS))
    same = save_variant(model, tok, root / "arm/checkpoint-10")
    scaled = save_variant(model, tok, root / "arm/checkpoint-20", lambda m: m.lm_head.weight.mul_(ALPHA))
    return {"base": d, "model": model, "tok": tok, "data": data, "same": same, "scaled": scaled, "root": root}


def _closed_form(model, tok) -> tuple[float, float, float]:
    """Token-mean KL(p‖q), KL(q‖p) and total variation for q = softmax(α z), from the base logits z of each
    example alone: KL(p‖q) = (1−α) E_p[z] − LSE(z) + LSE(αz)."""
    fwd, rev, tv, n = 0.0, 0.0, 0.0, 0
    for e in K.render(tok, [tuple(p) for p in PAIRS]):
        with torch.no_grad():
            z = model(input_ids=torch.tensor([e.ids])).logits[0, e.start - 1:-1].double()
        p, q = torch.softmax(z, -1), torch.softmax(ALPHA * z, -1)
        lse, lse_a = torch.logsumexp(z, -1), torch.logsumexp(ALPHA * z, -1)
        fwd += ((1 - ALPHA) * (p * z).sum(-1) - lse + lse_a).sum().item()
        rev += ((ALPHA - 1) * (q * z).sum(-1) + lse - lse_a).sum().item()
        tv += 0.5 * (p - q).abs().sum().item()
        n += len(z)
    return fwd / n, rev / n, tv / n


def test_identical_checkpoint_has_zero_kl_and_known_shift_matches_closed_form(kl_setup):
    s = kl_setup
    path = K.kl_curve(s["base"], [s["same"], s["scaled"]], s["data"], s["root"] / "out", progress=False)
    res = {r["step"]: r for r in json.loads(path.read_text())["results"]}
    assert res[10]["kl_forward"] == 0.0 and res[10]["kl_reverse"] == 0.0 and res[10]["tv"] == 0.0
    fwd, rev, tv = _closed_form(s["model"], s["tok"])
    assert fwd > 0.05  # a real shift, not a vacuous check
    assert res[20]["kl_forward"] == pytest.approx(fwd, rel=1e-5)
    assert res[20]["kl_reverse"] == pytest.approx(rev, rel=1e-5)
    assert res[20]["tv"] == pytest.approx(tv, rel=1e-5) and 0 < tv < 1
    n_completion = sum(e.n_scored for e in K.render(s["tok"], PAIRS))
    assert res[20]["tokens"] == n_completion and res[20]["examples"] == len(PAIRS)
    assert (s["root"] / "out/figures/kl_curve.png").is_file() and (s["root"] / "out/kl.csv").is_file()


def test_packed_and_cache_groups_agree_with_bucketed(kl_setup, tmp_path):
    s = kl_setup
    ref = json.loads(K.kl_curve(s["base"], [s["scaled"]], s["data"], tmp_path / "a", figures=False,
                                progress=False).read_text())["results"][0]
    packed = json.loads(K.kl_curve(s["base"], [s["scaled"]], s["data"], tmp_path / "b", mode="pack",
                                   max_tokens=64, figures=False, progress=False).read_text())["results"][0]
    small_cache = json.loads(K.kl_curve(s["base"], [s["scaled"]], s["data"], tmp_path / "c", max_tokens=40,
                                        cache_gb=1e-6, figures=False, progress=False).read_text())
    assert small_cache["settings"]["cache_groups"] > 1
    for other in (packed, small_cache["results"][0]):
        assert other["kl_forward"] == pytest.approx(ref["kl_forward"], abs=1e-6)
        assert other["kl_reverse"] == pytest.approx(ref["kl_reverse"], abs=1e-6)


def test_packed_rows_attend_across_sequences_unless_use_cache_false(kl_setup):
    """The pitfall behind ``use_cache=False``: with a cache, transformers ignores the packed position_ids' sequence
    boundaries and later sequences attend to earlier ones."""
    s = kl_setup
    ex = K.render(s["tok"], PAIRS[:3])
    bucket = next(K.batches(ex, 4096, "bucket", s["tok"].pad_token_id))
    packed = next(K.batches(ex, 4096, "pack"))

    def by_example(h, owner):
        return torch.cat([h[owner == i] for i in range(len(ex))])

    ref = by_example(K.completion_hidden(s["model"], bucket), bucket.example)
    good = by_example(K.completion_hidden(s["model"], packed), packed.example)
    assert (good - ref).abs().max() < 1e-4
    with torch.inference_mode():
        h = s["model"].base_model(input_ids=packed.input_ids, position_ids=packed.position_ids,
                                  use_cache=True).last_hidden_state
    bad = by_example(h.reshape(-1, h.shape[-1])[packed.select], packed.example)
    assert (bad - ref).abs().max() > 1e-2


def test_base_forward_runs_once_for_all_checkpoints(kl_setup, tmp_path, monkeypatch):
    s = kl_setup
    calls = []
    real = K.completion_hidden
    monkeypatch.setattr(K, "completion_hidden", lambda m, b: calls.append(m.name_or_path) or real(m, b))
    K.kl_curve(s["base"], [s["same"], s["scaled"]], s["data"], tmp_path, max_tokens=64, figures=False,
               progress=False)
    n_batches = len(list(K.batches(K.render(s["tok"], PAIRS), 64)))
    assert calls.count(str(s["base"])) == n_batches
    assert calls.count(str(s["scaled"])) == n_batches


def test_data_sources(kl_setup, tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"problem": "what is one ?", "solution": "one"}]))
    assert K.load_pairs(rows) == ([("what is one ?", "one")], {})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": 1, "a": 2}) + "\n")
    with pytest.raises(UserError, match="question-field"):
        K.load_pairs(bad)
    with pytest.raises(FileNotFoundError):
        K.load_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(UserError, match="not a known dataset"):
        K.load_pairs("gsm9k")


def test_rejected_rows_are_reported_when_data_is_named_by_dataset(kl_setup, tmp_path, monkeypatch):
    """``--data math500`` resolves to a file in the benchmark directory; the rows it rejects still reach kl.json."""
    s = kl_setup
    shared = tmp_path / "benchmarks"
    shared.mkdir()
    rows = [json.dumps({"problem": q, "solution": a}) for q, a in PAIRS]
    rows += ["{not json", json.dumps({"problem": "what is two ?"})]  # invalid JSON; no solution field
    (shared / K.MATH500.file).write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("SCALPEL_BENCHMARKS", str(shared))
    path = K.kl_curve(s["base"], [s["same"]], "math500", tmp_path / "out", figures=False, progress=False)
    summary = json.loads(path.read_text())
    assert summary["results"][0]["examples"] == len(PAIRS)
    assert sum(summary["settings"]["rejected_rows"].values()) == 2, summary["settings"]["rejected_rows"]


@pytest.mark.shared
def test_math500_from_shared(shared_benchmarks):
    pairs, rejected = K.load_pairs("math500")
    assert len(pairs) == 500 and all(q and s for q, s in pairs) and rejected == {}
