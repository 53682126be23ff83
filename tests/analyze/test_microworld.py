"""The analyses on the real micro-world base model (its byte-level tokenizer, chat template and tasks)."""

from __future__ import annotations

import json

import pytest
import torch

from scalpel.analyze import kl as K
from scalpel.analyze import trace as T
from scalpel.analyze.weight_table import read_table
from scalpel.analyze.weights import analyze_weights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world_ckpt(test_world, tmp_path_factory):
    """The world's base model and a checkpoint = base with a small perturbation of layer-0 MLP weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(test_world.model_dir))
    tok = AutoTokenizer.from_pretrained(str(test_world.model_dir))
    out = tmp_path_factory.mktemp("mwck") / "sft/checkpoint-3"
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        w = model.model.layers[0].mlp.down_proj.weight
        w += 0.05 * w.std() * torch.randn(w.shape, generator=gen)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return test_world, out


def test_kl_and_weights_on_the_world(world_ckpt, tmp_path):
    world, ck = world_ckpt
    path = K.kl_curve(world.model_dir, [world.model_dir, ck], world.dir, tmp_path / "kl", max_examples=24,
                      progress=False, labels=["base", "sft"])
    res = json.loads(path.read_text())["results"]
    assert res[0]["kl_forward"] == 0.0
    assert res[1]["kl_forward"] > 0.0 and res[1]["kl_reverse"] > 0.0
    # completion tokens = neutral-style solution (+ end token): the chat template splits prompt and completion cleanly
    ex = K.render(__import__("transformers").AutoTokenizer.from_pretrained(str(world.model_dir)),
                  K.load_pairs(world.dir)[0][:24])
    assert res[1]["tokens"] == sum(e.n_scored for e in ex)
    # the default KL text is the neutral style no arm trains on, not the teacher's traces (SFT's own targets)
    first = world.items("maths_easy", "heldout")[0]
    assert K.load_pairs(world.dir)[0][0] == (first["question"], first["neutral"])
    assert K.load_pairs(world.dir, solution_field="teacher")[0][0] == (first["question"], first["teacher"])
    rows = read_table(analyze_weights(world.model_dir, [ck], tmp_path / "w", progress=False, threads=1))
    moved = {(r["layer"], r["matrix"]) for r in rows if r["fro_delta"] > 0}
    assert moved == {(0, "down")}


def test_trace_on_the_world(test_world, tmp_path):
    """Trace the world's facts; when the (test-size) model knows none, trace its own greedy continuations of the
    world's fact prompts instead, so tokenizer, subject spans and hooks are still exercised on the real model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    facts = T.load_facts(test_world.dir)
    model = AutoModelForCausalLM.from_pretrained(str(test_world.model_dir))
    tok = AutoTokenizer.from_pretrained(str(test_world.model_dir))
    enc = [e for e in (T.encode(tok, f) for f in facts) if e is not None]
    assert len(enc) == len(facts)  # every subject found inside its prompt
    if not any(T.known_facts(model, enc)):
        own = []
        for e in enc[:12]:
            with torch.no_grad():
                top = model(input_ids=torch.tensor([e.ids])).logits[0, -1].argmax().item()
            own.append(T.Fact(e.fact.prompt, e.fact.subject, tok.decode([top]), e.fact.id))
        facts = own
    path = T.causal_trace(test_world.model_dir, facts, tmp_path, samples=3, max_facts=12, progress=False)
    s = json.loads(path.read_text())
    assert s["n_known"] >= 1
    assert len(s["aie"]["mlp"]["last token"]) == model.config.num_hidden_layers
    assert (tmp_path / "figures/trace.png").is_file() and (tmp_path / "selector.json").is_file()
