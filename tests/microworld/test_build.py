"""The built micro-world: tokenizer, chat template, model architecture, save/load, determinism, cache, errors."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from scalpel import cli, config
from scalpel.data.prompts import chat_template, messages
from scalpel.microworld import World, WorldError, build
from scalpel.microworld.inspect import TEST_SIZE_RANGES

QUIET = dict(progress=False, log=lambda *_: None)


def test_loads_offline_with_auto_classes(test_world):
    model = AutoModelForCausalLM.from_pretrained(test_world.model_dir)
    tok = AutoTokenizer.from_pretrained(test_world.model_dir)
    assert type(model).__name__ == "Olmo2ForCausalLM"
    names = {n for n, _ in model.named_modules()}
    for leaf in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",
                 "self_attn.k_norm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
        assert f"model.layers.0.{leaf}" in names
    assert (test_world.model_dir / "model.safetensors").is_file()
    assert not list(test_world.model_dir.glob("*.bin"))
    assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id


def test_tokenizer_round_trip(test_world):
    tok = AutoTokenizer.from_pretrained(test_world.model_dir)
    texts = [it["question"] + "\n" + it["solution"] for it in test_world.items("maths_hard", "heldout")[:20]]
    texts += [it["teacher"] for it in test_world.items("maths_easy", "heldout")[:5]]
    texts += ["Ünïcødé → ∑ 𝔁², tabs\tand  double  spaces\n\n", "$\\frac{1}{2}$ \\boxed{42}"]
    for t in texts:
        assert tok.decode(tok(t, add_special_tokens=False)["input_ids"]) == t
    # format tags are one token each but not special ones: TRL decodes completions with skip_special_tokens=True
    ids = tok("<think>\nx\n</think>\n<answer>\n3\n</answer>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nx\n</think>\n<answer>\n3\n</answer>"
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1, tag
    # the teacher's and the neutral style's words are whole tokens, though neither style is in pretraining
    for word in ("Step", "Check", "So", " plus", " makes", " Hence"):
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word


def test_chat_template_with_and_without_system(test_world):
    tok = AutoTokenizer.from_pretrained(test_world.model_dir)
    plain = tok.apply_chat_template(messages("Hi?"), tokenize=False, add_generation_prompt=True)
    assert plain == "<|endoftext|><|user|>\nHi?\n<|assistant|>\n"
    sys = tok.apply_chat_template(messages("Hi?", "Be brief."), tokenize=False, add_generation_prompt=True)
    assert sys == "<|endoftext|><|system|>\nBe brief.\n<|user|>\nHi?\n<|assistant|>\n"
    full = tok.apply_chat_template(messages("Hi?") + [{"role": "assistant", "content": "Yo"}], tokenize=False)
    assert full.startswith(plain) and full.endswith("Yo<|endoftext|>")


def test_default_system_prompt_template():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<|endoftext|>": 0}, "<|endoftext|>")),
                                  bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tok.chat_template = chat_template(default_system="Use <think>\n...\n</think> 'quotes' \\ too")
    out = tok.apply_chat_template(messages("Q"), tokenize=False, add_generation_prompt=True)
    assert out == "<|endoftext|><|system|>\nUse <think>\n...\n</think> 'quotes' \\ too\n<|user|>\nQ\n<|assistant|>\n"
    explicit = tok.apply_chat_template(messages("Q", "Other"), tokenize=False, add_generation_prompt=True)
    assert "Use <think>" not in explicit and "<|system|>\nOther\n" in explicit


def test_manifest_and_inspect_json(test_world, capsys):
    m = test_world.manifest
    assert m["key"] and m["system_prompt"] and m["files"]["model/model.safetensors"]
    assert cli.main(["microworld", "inspect", str(test_world.dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["accuracy"]) == {"maths_easy", "maths_hard", "facts_mcq", "fewshot_maths", "instruct"}
    assert all(0.0 <= a <= 1.0 for a in info["accuracy"].values())
    for task, r in info["instruct_like"].items():  # every task is checked against the test size's own ranges
        assert tuple(r["range"]) == TEST_SIZE_RANGES[task]
        assert r["in_range"], f"test-size base out of its range on {task}: {info['accuracy'][task]}"


def test_accuracy_table_marks_tasks_outside_the_instruct_like_range():
    from scalpel.microworld.inspect import INSTRUCT_LIKE, accuracy_table

    acc = {"maths_easy": {"accuracy": 0.45, "correct": 45, "n": 100},  # inside [30, 90]
           "instruct": {"accuracy": 0.01, "correct": 1, "n": 100},  # the floor: a loss there could not be seen
           "facts_mcq": {"accuracy": 0.84, "correct": 84, "n": 100}}  # just under 85
    lines = {line.split()[0]: line for line in accuracy_table(acc).splitlines()[2:]}
    assert lines["maths_easy"].endswith("ok") and "[30, 90]" in lines["maths_easy"]
    assert lines["instruct"].endswith("OUT OF RANGE") and lines["facts_mcq"].endswith("OUT OF RANGE")
    assert set(INSTRUCT_LIKE) == {"maths_easy", "maths_hard", "facts_mcq", "fewshot_maths", "instruct"}


def test_second_build_is_cached(test_world, test_config):
    logs = []
    again = build(test_config, test_world.dir, progress=False, log=logs.append)
    assert again.key == test_world.key and any("up to date" in line for line in logs)


@pytest.mark.slow
def test_same_seed_bit_identical_other_seed_differs(tmp_path):
    def cfg(seed):  # a short pretraining suffices: any nondeterminism shows in the bits after a few steps
        return config.load(None, ["microworld.size=test", f"microworld.seed={seed}",
                                  "microworld.pretrain.steps=6"]).microworld

    a = build(cfg(0), tmp_path / "a", **QUIET)
    b = build(cfg(0), tmp_path / "b", **QUIET)
    c = build(cfg(1), tmp_path / "c", **QUIET)
    key = "model/model.safetensors"
    assert a.manifest["files"][key] == b.manifest["files"][key]
    assert a.manifest["files"]["model/tokenizer.json"] == b.manifest["files"]["model/tokenizer.json"]
    assert a.manifest["files"][key] != c.manifest["files"][key]


def test_out_dir_with_something_else_is_refused(tmp_path, test_config):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(WorldError, match="not a micro-world"):
        build(test_config, tmp_path, **QUIET)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_out_dir_with_other_world_needs_force(test_world):
    other = config.load(None, ["microworld.size=test", "microworld.seed=5"]).microworld
    with pytest.raises(WorldError, match="--force"):
        build(other, test_world.dir, **QUIET)


@pytest.mark.parametrize("argv, needle", [
    (["--size", "huge"], "invalid choice"),
    (["--seed", "-3"], "--seed must be >= 0"),
])
def test_cli_bad_arguments(argv, needle, capsys):
    try:
        code = cli.main(["microworld", "build", *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert needle in capsys.readouterr().err


def test_open_non_world(tmp_path):
    with pytest.raises(WorldError, match="not a micro-world"):
        World.open(tmp_path)


def test_packed_row_trains_each_document_as_if_alone(test_world):
    """Packing must change which documents share a step, nothing else: same logits, every token packed once."""
    import random

    import torch

    from scalpel.microworld.pretrain import pack, packed_rows

    model = AutoModelForCausalLM.from_pretrained(test_world.model_dir).eval()
    tok = AutoTokenizer.from_pretrained(test_world.model_dir)
    texts = [it["question"] + "\n" + it["solution"] for it in test_world.items("maths_easy", "heldout")[:12]]
    seqs = [tok(tok.bos_token + t, add_special_tokens=False)["input_ids"] for t in texts]
    lengths = [len(s) for s in seqs]
    rows = packed_rows(lengths, 2 * max(lengths), random.Random(0))
    assert sorted(i for r in rows for i in r) == list(range(len(seqs)))
    assert all(sum(lengths[i] for i in r) <= 2 * max(lengths) for r in rows)
    ids, labels, positions = pack(rows, seqs, [1] * len(seqs), 2 * max(lengths), tok.pad_token_id)
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits
        for r, docs in enumerate(rows):
            at = 0
            for i in docs:
                alone = model(input_ids=torch.tensor([seqs[i]])).logits[0]
                assert torch.allclose(packed[r, at : at + lengths[i]], alone, atol=1e-4)
                assert labels[r, at] == -100 and (labels[r, at + 1 : at + lengths[i]] >= 0).all()
                at += lengths[i]
            assert (labels[r, at:] == -100).all()
