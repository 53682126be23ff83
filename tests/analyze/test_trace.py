"""Causal tracing: restoring everything gives the clean probability, restoring nothing the corrupted one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scalpel.analyze import trace as T
from scalpel.errors import UserError

from .conftest import DATA

PROMPTS = [("Tovak Brell lives in", "Tovak Brell"), ("Mira Oslin likes the", "Mira Oslin"),
           ("the cat of Tovak is", "Tovak"), ("Oslin works in the", "Oslin"), ("a dog likes Mira", "Mira"),
           ("the red city of Brell is", "red city")]


@pytest.fixture(scope="module")
def known(tiny, tmp_path_factory):
    """Facts the random tiny model 'knows' by construction: each target is its own greedy continuation."""
    d, model, tok = tiny
    facts = []
    for prompt, subject in PROMPTS:
        ids = tok(tok.bos_token + prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            top = model(input_ids=torch.tensor([ids])).logits[0, -1].argmax().item()
        word = tok.convert_ids_to_tokens(top)
        if top not in tok.all_special_ids:
            facts.append({"id": prompt, "subject": subject, "prompt": prompt, "target": " " + word})
    assert len(facts) >= 3
    path = tmp_path_factory.mktemp("facts") / "facts.jsonl"
    path.write_text("".join(json.dumps(f) + "\n" for f in facts))
    return path


def _tracer(tiny, **kw):
    _, model, tok = tiny
    return T.Tracer(model, tok, samples=4, seed=7, **kw)


def test_restore_all_gives_clean_and_none_gives_corrupted(tiny, known):
    _, model, tok = tiny
    tracer = _tracer(tiny)
    e = T.encode(tok, T.load_facts(known)[0])
    tracer.sigma = tracer.embedding_std([e])
    probs, states = tracer.clean(e.ids)
    answer = e.answer[0]
    noise = tracer.noise_for(0, e.subject[1] - e.subject[0], states[("hidden", 0)].shape[-1])
    every = [("hidden", layer, t) for layer in range(tracer.n_layers) for t in range(len(e.ids))]
    first_layer = [("hidden", 0, t) for t in range(len(e.ids))]
    p = tracer.corrupted(e.ids, e.subject, noise, answer, states, [[], every, first_layer])
    # independent corrupted run: noisy embeddings fed directly
    with torch.no_grad():
        emb = model.get_input_embeddings()(torch.tensor([e.ids] * tracer.samples)).clone()
        emb[:, e.subject[0]:e.subject[1]] += noise
        p_none = torch.softmax(model(inputs_embeds=emb).logits[:, -1].float(), -1)[:, answer].mean().item()
    assert p[0] == pytest.approx(p_none, abs=1e-6)
    assert p[1] == pytest.approx(probs[answer].item(), abs=1e-6)
    assert p[2] == pytest.approx(probs[answer].item(), abs=1e-6)
    assert abs(p[0] - p[1]) > 1e-3  # the noise matters at all


def test_grid_last_layer_last_token_is_clean(tiny, known):
    _, _, tok = tiny
    tracer = _tracer(tiny, window=1)
    e = T.encode(tok, T.load_facts(known)[1])
    tracer.sigma = tracer.embedding_std([e])
    r = T.trace_fact(tracer, e, 0)
    assert r["grids"]["hidden"].shape == (len(e.ids), tracer.n_layers)
    assert r["grids"]["hidden"][-1, -1] == pytest.approx(r["p_clean"], abs=1e-6)
    # tokens before the subject see no noise: restoring them changes nothing
    if e.subject[0] > 0:
        assert r["grids"]["hidden"][0] == pytest.approx(np.full(tracer.n_layers, r["p_corrupted"]), abs=1e-6)


def test_causal_trace_writes_profile_figure_and_selector(tiny, known, tmp_path):
    d, _, _ = tiny
    path = T.causal_trace(d, known, tmp_path, samples=4, seed=1, threshold=0.0, progress=False)
    s = json.loads(path.read_text())
    assert s["n_known"] == s["n_facts"] >= 3
    assert set(s["aie"]) == {"hidden", "mlp", "attn"}
    last = s["aie"]["hidden"]["last token"]
    assert len(last) == 3
    assert last[-1] == pytest.approx(s["p_clean_mean"] - s["p_corrupted_mean"], abs=1e-6)
    sel = json.loads((tmp_path / "selector.json").read_text())
    assert sel["freeze"] and all(x.startswith("mlp@") for x in sel["freeze"])  # not vacuous: layers were chosen
    assert sel["freeze"] == s["selector"]["freeze"]
    assert sel["freeze"] == T.select_layers(s["aie"]["mlp"], 0.0)["freeze"]  # the rule, applied to the written AIE
    assert (tmp_path / "figures/trace.png").is_file()
    again = json.loads(T.causal_trace(d, known, tmp_path / "again", samples=4, seed=1, figures=False,
                                      progress=False).read_text())
    assert again["aie"] == s["aie"]  # seeded noise: reproducible


def test_rome_known_format_and_bad_rows(tmp_path):
    facts = T.load_facts(DATA / "known_sample.json")
    assert facts[0] == T.Fact("Tovak Brell lives in", "Tovak Brell", " Tarsa", "0")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(UserError, match="no usable facts.*missing field"):
        T.load_facts(bad)
    with pytest.raises(FileNotFoundError):
        T.load_facts(tmp_path / "none.jsonl")


def test_token_categories():
    cats = T.token_categories(8, (2, 5))
    assert cats["first subject token"] == [2] and cats["middle subject tokens"] == [3]
    assert cats["last subject token"] == [4] and cats["first subsequent token"] == [5]
    assert cats["further tokens"] == [6] and cats["last token"] == [7]


def test_selection_is_the_papers_rule_mlp_aie_at_the_last_token_above_0_1():
    """App. D: 'we choose to freeze MLPs in all layers where AIE is greater than 0.1' - the late site, at the last
    token; a strong early site (last subject token) does not count."""
    last = [0.0, 0.02, 0.10, 0.11, 0.35, 0.2, 0.09, 0.3]
    subject = [0.5, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    sel = T.select_layers({"last token": last, "last subject token": subject})
    assert sel["layers"] == [3, 4, 5, 7] and sel["freeze"] == ["mlp@3-5", "mlp@7"]
    assert sel["threshold"] == sel["cutoff"] == 0.1 and "last token > 0.1" in sel["criterion"]
    assert T.select_layers({"last token": last, "last subject token": subject}, 0.3)["layers"] == [4]
    assert T.select_layers({"last token": last, "last subject token": None}, 0.5, relative=True)["layers"] == [4, 5, 7]
    assert T.select_layers({"last token": [0.01] * 4, "last subject token": subject[:4]})["layers"] == []
