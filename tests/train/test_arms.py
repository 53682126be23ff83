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
    """The matching claim (match: questions): identical question ids per optimizer step across GRPO and SFT arms,
    as observed from what TRL actually fed the model (StreamCheck verifies each step against the stream)."""
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
