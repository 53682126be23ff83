"""Matched arms on TRL, end to end at the test size: matching, checkpoints, manifests, freezing, resume."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file

from scalpel import config
from scalpel.train import checkpoints as C

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def ckpts(out, arm, seed=1):
    return C.complete_checkpoints(out / arm / f"seed-{seed}")


def weights(d):
    return load_file(d / "model.safetensors")


def test_every_arm_trains_on_the_same_question_ids_at_every_step(smoke_runs, smoke_cfg):
    """The matching claim (match: questions): identical question ids per optimizer step across GRPO and SFT arms.
    A manifest records the stream's block for each step only after StreamCheck has found that TRL fed the model
    exactly those ids (the next test shows it refusing other ids), so equal manifests mean equal training inputs."""
    out, _ = smoke_runs
    arms = [a.name for a in smoke_cfg.study.arms]
    q = smoke_cfg.study.questions_per_step
    for step in C.schedule(smoke_cfg.study.train.steps, smoke_cfg.study.train.checkpoints):
        manifests = [C.read_manifest(ckpts(out, arm)[step]) for arm in arms]
        per_step = [m["questions"] for m in manifests]
        assert all(p == per_step[0] for p in per_step), f"arms disagree at step {step}"
        assert len(per_step[0]) == step and all(len(b) == q for b in per_step[0])
        assert {m["questions_seen"] for m in manifests} == {step * q}
        assert {m["data_fingerprint"] for m in manifests} == {manifests[0]["data_fingerprint"]}
    flat = [i for b in per_step[0] for i in b]
    assert len(flat) == len(set(flat))  # one epoch within the pool: no question twice


@pytest.mark.parametrize("arm", ["sft", "grpo"])
def test_a_shuffled_sampler_is_caught_at_the_first_step(smoke_cfg, quiet, tmp_path, monkeypatch, arm):
    """StreamCheck compares what TRL actually fed the model with the stream's block: a sampler that shuffles the
    dataset (as TRL's would with shuffle on) makes the arm fail with MatchingError instead of training unmatched."""
    import torch
    import trl.trainer.grpo_trainer as grpo_trainer
    from torch.utils.data import RandomSampler

    from scalpel.train.arms import run_arm
    from scalpel.train.trainers import MatchingError, ScalpelSFTTrainer

    if arm == "sft":
        monkeypatch.setattr(ScalpelSFTTrainer, "_get_train_sampler", lambda self, dataset=None: RandomSampler(
            dataset if dataset is not None else self.train_dataset, generator=torch.Generator().manual_seed(0)))
    else:
        real = grpo_trainer.RepeatSampler
        monkeypatch.setattr(grpo_trainer, "RepeatSampler", lambda *a, **kw: real(*a, **{**kw, "shuffle": True}))
    data = smoke_cfg.model_dump(mode="json")
    data["study"]["train"].update(steps=2, checkpoints=1)
    with pytest.raises(MatchingError, match="step 1: TRL trained on other questions"):
        run_arm(config.validate(data), arm, 1, tmp_path, progress=False, log_fn=lambda *_: None)


def test_each_arm_leaves_n_plus_one_complete_checkpoints_with_manifests(smoke_runs, smoke_cfg):
    out, summaries = smoke_runs
    study = smoke_cfg.study
    expected = C.schedule(study.train.steps, study.train.checkpoints)
    assert len(expected) == study.train.checkpoints + 1
    for arm in summaries:
        run_dir = out / arm / "seed-1"
        assert sorted(ckpts(out, arm)) == expected == summaries[arm]["checkpoints"]
        assert not (run_dir / C.STAGING).exists()
        for step, d in ckpts(out, arm).items():
            assert (d / "model.safetensors").is_file() and (d / "config.json").is_file()
            m = C.read_manifest(d)
            assert m["step"] == step and m["seed"] == 1 and m["arm"] == arm and m["match"] == "questions"
            assert m["config"]["study"]["name"] == "smoke" and len(m["data_fingerprint"]) == 64
            assert m["versions"]["trl"] and m["versions"]["transformers"] and "git_commit" in m
            assert (d / "trainer_state.json").is_file() == (step > 0)  # resumable state from step 1 on


def test_checkpoint_tokenizer_renders_the_study_system_prompt_by_default(smoke_runs, test_world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = smoke_runs
    final = ckpts(out, "sft")[6]
    tok = AutoTokenizer.from_pretrained(final)
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert test_world.system_prompt in text and text.index(test_world.system_prompt) < text.index("What is 2 + 3?")
    custom = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
                                     tokenize=False)
    assert "Be brief." in custom and test_world.system_prompt not in custom
    assert AutoModelForCausalLM.from_pretrained(final).config.model_type == "olmo2"


def test_training_moves_weights_and_sft_loss_falls(smoke_runs):
    out, summaries = smoke_runs
    for arm in summaries:
        base, final = weights(ckpts(out, arm)[0]), weights(ckpts(out, arm)[6])
        assert any(not (base[k] == final[k]).all() for k in base), f"{arm}: no parameter moved"
    loss = summaries["sft"]["metrics"]["loss"]
    assert loss["last_10pct"] < loss["first_10pct"]
    assert "rewards/accuracy_reward/mean" in summaries["grpo"]["metrics"]
    log = [json.loads(x) for x in (out / "grpo" / "seed-1" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == list(range(1, 7))


@pytest.mark.parametrize("arm, moved, fixed", [
    ("sft-qk-only", ("q_proj", "k_proj"), ("v_proj", "o_proj", "mlp", "embed_tokens", "lm_head", "norm")),
    ("sft-freeze-mlp", ("layers.0.mlp", "q_proj", "lm_head"), ("layers.1.mlp",)),
])
def test_freezing_arms_move_only_their_trainable_parameters(smoke_runs, arm, moved, fixed):
    out, summaries = smoke_runs
    base, final = weights(ckpts(out, arm)[0]), weights(ckpts(out, arm)[6])
    changed = {k for k in base if not (base[k] == final[k]).all()}
    for name in fixed:
        assert not [k for k in changed if name in k], f"{arm}: frozen {name} moved"
    for name in moved:
        assert [k for k in changed if name in k], f"{arm}: {name} did not move"
    t = summaries[arm]["trainable"]
    assert 0 < t["trainable_params"] < t["total_params"]
    assert C.read_manifest(ckpts(out, arm)[6])["trainable_params"] == t["trainable_params"]


def test_rerunning_a_finished_arm_returns_its_summary_without_training(smoke_runs, smoke_cfg):
    from scalpel.train.arms import run_arm

    out, summaries = smoke_runs
    mtime = (ckpts(out, "grpo")[6] / "model.safetensors").stat().st_mtime_ns
    assert run_arm(smoke_cfg, "grpo", 1, out, progress=False, log_fn=lambda *_: None) == summaries["grpo"]
    assert (ckpts(out, "grpo")[6] / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("arm", ["sft", "grpo"])
def test_resume_from_the_last_complete_checkpoint_is_bit_identical(smoke_runs, smoke_cfg, tmp_path, monkeypatch,
                                                                    arm):
    """An arm that crashes mid-run (here: an exception after step 3, plus a half-written checkpoint left in
    .staging) resumes from its last complete checkpoint and ends with exactly the uninterrupted run's weights."""
    from scalpel.train.arms import run_arm
    from scalpel.train.trainers import StreamCheck

    class Crash(Exception):
        pass

    original = StreamCheck.on_step_end

    def crash_after_step_3(self, args, state, control, **kwargs):
        control = original(self, args, state, control, **kwargs)
        if state.global_step == 3:
            raise Crash
        return control

    monkeypatch.setattr(StreamCheck, "on_step_end", crash_after_step_3)
    with pytest.raises(Crash):
        run_arm(smoke_cfg, arm, 1, tmp_path, progress=False, log_fn=lambda *_: None)
    monkeypatch.undo()
    dst = tmp_path / arm / "seed-1"
    assert sorted(C.complete_checkpoints(dst)) == [0, 2] and C.resumable(dst / "checkpoint-2")
    (dst / C.STAGING / "checkpoint-4").mkdir(parents=True)  # what a crash mid-save leaves
    (dst / C.STAGING / "checkpoint-4" / "model.safetensors").write_bytes(b"half")
    summary = run_arm(smoke_cfg, arm, 1, tmp_path, progress=False, log_fn=lambda *_: None)
    assert summary["resumed_from"] == 2 and summary["checkpoints"] == [0, 2, 4, 6]
    src = smoke_runs[0] / arm / "seed-1"
    a, b = weights(src / "checkpoint-6"), weights(dst / "checkpoint-6")
    assert all((a[k] == b[k]).all() for k in a)
    assert C.read_manifest(dst / "checkpoint-6")["questions"] == C.read_manifest(src / "checkpoint-6")["questions"]
    log = [json.loads(x) for x in (dst / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == list(range(1, 7))
    # only the latest checkpoint keeps the (large) optimizer state
    assert [s for s, d in C.complete_checkpoints(dst).items() if C.resumable(d)] == [6]


def test_resume_refuses_checkpoints_of_another_configuration(smoke_runs, smoke_cfg, tmp_path):
    from scalpel.train.arms import run_arm

    out, _ = smoke_runs
    shutil.copytree(out / "sft" / "seed-1", tmp_path / "sft" / "seed-1")
    (tmp_path / "sft" / "seed-1" / "arm.json").unlink()
    data = smoke_cfg.model_dump(mode="json")
    data["study"]["arms"][1]["lr"] = 5e-4
    with pytest.raises(config.ConfigError, match="different configuration"):
        run_arm(config.validate(data), "sft", 1, tmp_path, progress=False, log_fn=lambda *_: None)


def test_sequences_mode_gives_sft_the_global_batch_with_grpo_questions_first(smoke_cfg, quiet, tmp_path):
    from scalpel.train.arms import run_arm

    data = smoke_cfg.model_dump(mode="json")
    data["study"].update(match="sequences", arms=data["study"]["arms"][:2])
    data["study"]["train"].update(steps=2, checkpoints=1)
    cfg = config.validate(data)
    g = {a: run_arm(cfg, a, 1, tmp_path, progress=False, log_fn=lambda *_: None) for a in ("grpo", "sft")}
    grpo_q = C.read_manifest(tmp_path / "grpo" / "seed-1" / "checkpoint-2")
    sft_q = C.read_manifest(tmp_path / "sft" / "seed-1" / "checkpoint-2")
    b, q = cfg.study.train.global_batch, cfg.study.questions_per_step
    assert grpo_q["match"] == sft_q["match"] == "sequences"
    assert [len(x) for x in sft_q["questions"]] == [b, b] and [len(x) for x in grpo_q["questions"]] == [q, q]
    assert all(gq == sq[:q] for gq, sq in zip(grpo_q["questions"], sft_q["questions"]))
    assert g["sft"]["batch"]["global"] == b and g["grpo"]["batch"]["global"] == b


@pytest.mark.parametrize("arm", ["sft", "grpo"])
def test_evaluation_renders_the_prompt_tokens_trl_fed_the_model(smoke_cfg, quiet, test_world, tmp_path, monkeypatch,
                                                                arm):
    """Token for token: the prompt evaluation renders from a saved checkpoint (its tokenizer, its system prompt) is
    what TRL fed the model in training, captured at the model's forward, for every question of the step."""
    from transformers.models.olmo2 import modeling_olmo2

    from scalpel.evaluate import prompting as P
    from scalpel.evaluate.backends import load_tokenizer
    from scalpel.train.arms import run_arm

    fed: list[list[int]] = []
    real = modeling_olmo2.Olmo2Model.forward  # the decoder every forward pass goes through (TRL may skip the LM head)

    def spy(self, input_ids=None, attention_mask=None, **kw):
        if input_ids is not None and input_ids.shape[1] > 1:  # not a one-token decoding step of generation
            mask = attention_mask if attention_mask is not None else input_ids.new_ones(input_ids.shape)
            fed.extend(row[m.bool()].tolist() for row, m in zip(input_ids, mask))
        return real(self, input_ids=input_ids, attention_mask=attention_mask, **kw)

    monkeypatch.setattr(modeling_olmo2.Olmo2Model, "forward", spy)
    data = smoke_cfg.model_dump(mode="json")
    data["study"]["train"].update(steps=1, checkpoints=1)
    run_arm(config.validate(data), arm, 1, tmp_path, progress=False, log_fn=lambda *_: None)
    monkeypatch.undo()
    ckpt = tmp_path / arm / "seed-1" / "checkpoint-1"
    tok = load_tokenizer(ckpt)
    system = P.resolve_system_prompt(tok, ckpt)
    questions = {it["id"]: it["question"] for task in ("maths_easy", "maths_hard")
                 for it in test_world.items(task, "train")}
    [step_ids] = C.read_manifest(ckpt)["questions"]
    prompts = [P.render(tok, [{"role": "user", "content": questions[i]}], system)[1] for i in step_ids]
    assert fed and len(prompts) == smoke_cfg.study.questions_per_step
    for p in prompts:  # every question of the step reached the model with exactly this prompt ...
        assert any(row[:len(p)] == p and len(row) > len(p) for row in fed), tok.decode(p)
    shortest = min(map(len, prompts))
    for row in fed:  # ... and nothing else did: every full sequence the model saw starts with one of them
        if len(row) >= shortest:
            assert any(row[:len(p)] == p for p in prompts), tok.decode(row)
