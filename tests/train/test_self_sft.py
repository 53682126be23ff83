"""On-policy SFT arms (issue 17, item 1): a self-SFT step trains on exactly the completions the accuracy reward
marked correct (planted rewards, checked against a hand-computed SFT step), questions with none are skipped and
counted, self_sft_base samples from the frozen base, and a self-SFT arm reads GRPO's and SFT's question ids."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig

from scalpel.analyze.synthetic import tiny_model
from scalpel.train import checkpoints as C
from scalpel.train.self_sft import build

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
G = 2
LR = 0.5


def planted_accuracy(completions, **kwargs):
    """Correct = the first sample of every other question (rollout index 0, 4, 8, ...): question 2k has one
    correct completion, question 2k+1 none."""
    return [1.0 if i % (2 * G) == 0 else 0.0 for i in range(len(completions))]


planted_accuracy.__name__ = "accuracy_reward"


def never_correct(completions, **kwargs):
    return [0.0] * len(completions)


def _trainer(tmp_path, model, tok, algorithm="self_sft", reward=planted_accuracy, questions=4, accumulation=2):
    args = GRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none",
                      save_strategy="no", logging_steps=1, max_steps=1, learning_rate=LR, optim="sgd",
                      lr_scheduler_type="constant", max_grad_norm=0.0, weight_decay=0.0, num_generations=G,
                      per_device_train_batch_size=questions * G // accumulation,
                      gradient_accumulation_steps=accumulation, max_completion_length=6, temperature=1.0,
                      beta=0.0, disable_dropout=True, shuffle_dataset=False, seed=0)
    rows = [{"prompt": [{"role": "user", "content": f"what is {n} plus {n} ?"}], "answer": str(2 * n)}
            for n in range(1, questions + 1)]
    tr = build(dict(reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows), processing_class=tok),
               algorithm, {"accuracy": 1.0}, model)
    seen = {}
    inner = type(tr)._generate_and_score_completions

    def capture(self, inputs):  # the generation batch as TRL built it, before shuffling and splitting
        out = inner(self, inputs)
        seen.update({k: v.clone() for k, v in out.items() if isinstance(v, torch.Tensor)})
        return out

    tr._generate_and_score_completions = capture.__get__(tr)
    return tr, seen


@pytest.fixture()
def tiny(tmp_path):
    model, tok = tiny_model(tmp_path / "base", seed=0, layers=2)
    return model, tok


def test_a_step_is_sft_on_exactly_the_correct_completions(tiny, tmp_path):
    model, tok = tiny
    before = copy.deepcopy(model)
    tr, seen = _trainer(tmp_path, model, tok)
    tr.train()
    keep = seen["advantages"].bool()
    assert keep.tolist() == [i % (2 * G) == 0 for i in range(4 * G)]  # the planted rows, nothing else
    assert tr.state.log_history[0]["self_sft/questions_skipped"] == 2.0
    assert tr.state.log_history[0]["self_sft/kept_completions"] == pytest.approx(2 / 8)

    # by hand: one SGD step on the token-mean NLL of the kept completions, on the starting weights
    ids = torch.cat([seen["prompt_ids"], seen["completion_ids"]], 1)[keep]
    att = torch.cat([seen["prompt_mask"], seen["completion_mask"]], 1)[keep]
    n = seen["completion_ids"].size(1)
    logp = torch.log_softmax(before(input_ids=ids, attention_mask=att).logits[:, -n - 1:-1].float(), -1)
    token_logp = logp.gather(-1, ids[:, -n:].unsqueeze(-1)).squeeze(-1)
    mask = seen["completion_mask"][keep].float()
    (-(token_logp * mask).sum() / mask.sum()).backward()
    moved = 0
    for (name, p0), p1 in zip(before.named_parameters(), model.parameters()):
        expected = p0.detach() - LR * (p0.grad if p0.grad is not None else torch.zeros_like(p0))
        torch.testing.assert_close(p1.detach(), expected, rtol=1e-4, atol=1e-6, msg=name)
        moved += int(not torch.equal(p1.detach(), p0.detach()))
    assert moved > 0


def test_no_correct_sample_means_no_update(tiny, tmp_path):
    model, tok = tiny
    before = copy.deepcopy(model)
    tr, _ = _trainer(tmp_path, model, tok, reward=never_correct)
    tr.train()
    assert tr.state.log_history[0]["self_sft/questions_skipped"] == 4.0
    assert all(torch.equal(a, b) for a, b in zip(before.parameters(), model.parameters()))


def test_self_sft_base_samples_from_the_frozen_base(tiny, tmp_path):
    model, tok = tiny
    before = copy.deepcopy(model).eval()
    tr, _ = _trainer(tmp_path, model, tok, algorithm="self_sft_base")
    assert tr.sampler is not model and not any(p.requires_grad for p in tr.sampler.parameters())
    used = []
    real = type(tr.sampler).generate

    def spy(self, *a, **kw):
        used.append(self)
        return real(self, *a, **kw)

    type(tr.sampler).generate = spy
    try:
        tr.train()
    finally:
        type(tr.sampler).generate = real
    assert used and all(m is tr.sampler for m in used)
    assert not all(torch.equal(a, b) for a, b in zip(tr.sampler.parameters(), model.parameters()))
    # the sampler *computes* with the base weights: TRL patches the trained model's forward with a closure over
    # that model, which a copy taken after the trainer is built would carry along (it then samples the trained model)
    x = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(tr.sampler(input_ids=x).logits, before(input_ids=x).logits)
        assert not torch.equal(tr.sampler(input_ids=x).logits, model(input_ids=x).logits)


def test_self_sft_arm_reads_the_question_ids_of_grpo_and_sft(smoke_runs, smoke_cfg, quiet):
    """The matching claim for the new arm: at every checkpoint, the same question blocks as GRPO and SFT."""
    from scalpel import config
    from scalpel.train.arms import run_arm

    out, _ = smoke_runs
    data = smoke_cfg.model_dump(mode="json")
    data["study"]["arms"].append({"name": "self-sft", "algorithm": "self_sft", "lr": 1e-4})
    cfg = config.Config.model_validate(data)
    summary = run_arm(cfg, "self-sft", 1, out, progress=False, log_fn=lambda *_: None)
    assert summary["algorithm"] == "self_sft" and summary["questions_per_step"] == smoke_cfg.study.questions_per_step
    for step in C.schedule(smoke_cfg.study.train.steps, smoke_cfg.study.train.checkpoints):
        blocks = [C.read_manifest(C.complete_checkpoints(out / arm / "seed-1")[step])["questions"]
                  for arm in ("grpo", "sft", "self-sft")]
        assert blocks[0] == blocks[1] == blocks[2] and len(blocks[0]) == step
