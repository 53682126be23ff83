"""Freezing selectors: the paper's two arms (train only q/k; freeze the MLPs of layers 20-26) on OLMo-2, Llama and
Qwen2 naming, validated against the model with errors that say what exists, and frozen parameters really stay put."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from scalpel.train.freeze import (
    FreezeSelectorError,
    apply_freezing,
    parameter_names,
    resolve_traced,
    select_trainable,
    uses_traced,
    validate_selectors,
)

TINY = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=4, num_attention_heads=2,
            num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)


@pytest.fixture(params=["olmo2", "llama", "qwen2"])
def model(request):
    torch.manual_seed(0)
    if request.param == "olmo2":
        return Olmo2ForCausalLM(Olmo2Config(**TINY))
    if request.param == "llama":
        return LlamaForCausalLM(LlamaConfig(**TINY))
    return Qwen2ForCausalLM(Qwen2Config(**TINY))


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_train_only_q_and_k(model, caplog):
    with caplog.at_level(logging.INFO, logger="scalpel.train.freeze"):
        result = apply_freezing(model, train_only=["q_proj", "k_proj"])
    names = trainable(model)
    assert names == set(result.names)
    assert names and all(n.split(".")[-2] in ("q_proj", "k_proj") for n in names)
    assert len({n for n in names if n.endswith("weight")}) == 2 * 4  # every layer's q and k
    expected = sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert result.trainable_params == expected
    assert result.total_params == sum(p.numel() for p in model.parameters())
    assert 0 < result.fraction < 1
    assert "trainable parameters" in caplog.text and f"{result.trainable_params:,}" in caplog.text


def test_freeze_mlp_of_a_layer_range(model):
    result = apply_freezing(model, freeze=["mlp@1-2"])
    frozen = set(result.frozen)
    assert frozen == {f"model.layers.{i}.mlp.{m}.weight" for i in (1, 2) for m in ("gate_proj", "up_proj", "down_proj")}
    assert all(p.requires_grad for n, p in model.named_parameters() if n not in frozen)


def test_attn_group_is_qkvo_only(model):
    result = select_trainable(((n, p.numel()) for n, p in model.named_parameters()), train_only=["attn@0"])
    assert {n.rsplit(".", 2)[-2] for n in result.names} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert all(".layers.0." in n for n in result.names)  # Qwen2's q/k/v biases included, no q_norm/k_norm


def test_patterns_and_combinations():
    model = Olmo2ForCausalLM(Olmo2Config(**TINY))
    names = [n for n, _ in model.named_parameters()]
    assert set(validate_selectors(names, train_only=["model.layers.*.mlp.down_proj"]).names) == {
        f"model.layers.{i}.mlp.down_proj.weight" for i in range(4)}
    assert all(n.startswith("model.layers.3.") for n in validate_selectors(names, train_only=["model.layers.3"]).names)
    assert set(validate_selectors(names, freeze=["embed_tokens", "lm_head"]).frozen) == {
        "model.embed_tokens.weight", "lm_head.weight"}
    both = validate_selectors(names, train_only=["attn"], freeze=["k_proj@0-1"])
    assert "model.layers.0.self_attn.k_proj.weight" not in both.names
    assert "model.layers.2.self_attn.k_proj.weight" in both.names
    assert len(both.names) == 4 * 4 - 2
    assert set(validate_selectors(names, train_only=["self_attn@3"]).names) >= {
        "model.layers.3.self_attn.q_norm.weight"}  # the module name selects everything under it
    assert len(validate_selectors(names).names) == len(names)  # no selection: everything trains


@pytest.mark.parametrize("kwargs, message", [
    (dict(freeze=["mlp@2-9"]), "has layers 0-3"),
    (dict(freeze=["mlp@3-1"]), "empty layer range"),
    (dict(train_only=["qproj"]), "Names inside a layer: "),
    (dict(train_only=["qproj"]), "q_proj"),
    (dict(train_only=["model.layers.*.mlp.down_projx"]), "matches no parameter"),
    (dict(train_only=["mlp@a-b"]), "cannot read selector"),
    (dict(freeze=["*"]), "freezes every parameter"),
    (dict(train_only=[]), "freezes every parameter"),
    (dict(train_only=["q_proj"], freeze=["attn"]), "freezes every parameter"),
    (dict(train_only="q_proj"), "must be a list"),
    (dict(freeze=[""]), "non-empty string"),
])
def test_bad_selections_say_what_exists(kwargs, message):
    model = Olmo2ForCausalLM(Olmo2Config(**TINY))
    before = trainable(model)
    with pytest.raises(FreezeSelectorError) as err:
        apply_freezing(model, **kwargs)
    assert isinstance(err.value, ValueError)
    assert message in str(err.value)
    assert trainable(model) == before  # a failed selection changes nothing


def test_frozen_parameters_get_no_gradient_and_do_not_move():
    torch.manual_seed(0)
    model = Olmo2ForCausalLM(Olmo2Config(**TINY))
    apply_freezing(model, freeze=["mlp@0-3", "embed_tokens"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(3, 64, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    for n, p in model.named_parameters():
        moved = not torch.equal(before[n], p)
        assert moved == p.requires_grad, n
        if not p.requires_grad:
            assert p.grad is None


def test_paper_arms_validate_on_the_olmo2_7b_shape_without_weights():
    """The 7B recipe's selectors are checked before any compute, on a meta-device model of the real shape."""
    config = Olmo2Config(vocab_size=100352, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32)
    names = parameter_names(config)
    assert len(names) == 2 + 1 + 32 * 11
    frozen = validate_selectors(names, freeze=["mlp@20-26"]).frozen
    assert len(frozen) == 7 * 3
    assert len(validate_selectors(names, train_only=["q_proj", "k_proj"]).names) == 64
    with pytest.raises(FreezeSelectorError, match="has layers 0-31"):
        validate_selectors(names, freeze=["mlp@20-32"])


def test_traced_selector_resolves_to_the_traced_layers():
    """``mlp@traced`` (the paper's procedure) becomes one range per contiguous run of traced layers."""
    assert resolve_traced(["mlp@traced"], [2, 3, 4]) == ["mlp@2-4"]
    assert resolve_traced(["embed_tokens", "mlp@traced"], [3, 1, 4]) == ["embed_tokens", "mlp@1", "mlp@3-4"]
    assert resolve_traced(["attn@traced"], [0]) == ["attn@0"]
    assert resolve_traced(None, [1]) is None and resolve_traced(["mlp@1-2"], []) == ["mlp@1-2"]
    assert uses_traced(None, ["mlp@traced"]) and not uses_traced(["mlp@1-2"], None)
    model = Olmo2ForCausalLM(Olmo2Config(**TINY))
    frozen = set(apply_freezing(model, freeze=resolve_traced(["mlp@traced"], [1, 3])).frozen)
    assert {int(n.split(".")[2]) for n in frozen} == {1, 3} and len(frozen) == 6


def test_traced_selector_never_silently_selects_nothing_or_goes_unresolved():
    with pytest.raises(FreezeSelectorError, match=r"selected no layer.*trace_threshold.*name the layers"):
        resolve_traced(["mlp@traced"], [])
    model = Olmo2ForCausalLM(Olmo2Config(**TINY))
    with pytest.raises(FreezeSelectorError, match=r"known only once the study's trace job has run.*scalpel study"):
        apply_freezing(model, freeze=["mlp@traced"])
    names = [n for n, _ in model.named_parameters()]
    assert len(validate_selectors(names, freeze=["mlp@traced"]).frozen) == 3  # checked on one layer: NAME exists
    with pytest.raises(FreezeSelectorError, match="matches no parameter"):
        validate_selectors(names, freeze=["mpl@traced"])
