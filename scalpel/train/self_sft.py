"""On-policy SFT (the control of Chen et al. 2025, "Retaining by Doing"): GRPO's rollouts, an SFT loss.

Is it the algorithm or the data that makes RL forget less? ``self_sft`` keeps everything of a GRPO arm — the
question stream, Q questions × G samples per step, temperature, batch and schedule (it *is* ``GRPOTrainer`` with
the study's GRPO block) — and changes only the loss: the negative log-likelihood of the completions the accuracy
reward marks correct (reward == 1), averaged over their tokens across the optimizer step (SFT's token mean). No
advantage, no clipping, no negative signal. A question none of whose G samples is correct contributes nothing and
is counted (``self_sft/questions_skipped`` in the log; ``self_sft/kept_completions`` the kept share).

``self_sft_base`` samples from a frozen copy of the *base* model instead of the current one: SFT on fixed,
base-generated data, on-policy only at step 0 (transformers generation only: vLLM serves the trained weights).

Deviation kept on purpose: the question ids are GRPO's, so the matching check (``StreamCheck``) holds unchanged;
the number of sequences trained per step varies with how many samples are correct.
"""

from __future__ import annotations

import copy

import torch

from scalpel.train.trainers import ScalpelGRPOTrainer

ACCURACY = "accuracy"


class ScalpelSelfSFTTrainer(ScalpelGRPOTrainer):
    """``ScalpelGRPOTrainer`` whose loss is SFT on the correct rollouts (module docstring)."""

    accuracy_index: int = 0  # column of the accuracy reward in TRL's rewards_per_func
    sampler = None  # a frozen model to sample from (self_sft_base); None: the model being trained
    _correct: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._correct = rewards[:, self.accuracy_index] == 1.0  # every process's completions (TRL gathers them)
        return rewards

    def _generate_single_turn(self, *args, **kwargs):
        if self.sampler is None:
            return super()._generate_single_turn(*args, **kwargs)
        trained, self.model_wrapped = self.model_wrapped, self.sampler
        try:
            return super()._generate_single_turn(*args, **kwargs)
        finally:
            self.model_wrapped = trained

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        g = self.num_generations
        correct = self._correct
        n = len(inputs)
        local = correct[self.accelerator.process_index * n:(self.accelerator.process_index + 1) * n]
        out["advantages"] = local.to(out["completion_mask"].dtype)  # the SFT weight of each completion: 0 or 1
        kept_tokens = (out["completion_mask"] * out["advantages"].unsqueeze(1)).sum()
        out["scalpel_kept_tokens"] = self.accelerator.gather(kept_tokens).sum()
        mode = "train" if self.model.training else "eval"
        self._metrics[mode]["self_sft/questions_skipped"].append(float((~correct.view(-1, g).any(dim=1)).sum()))
        self._metrics[mode]["self_sft/kept_completions"].append(float(correct.float().mean()))
        return out

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        logps, _, _ = self._get_per_token_logps_and_entropies(
            model, torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1), completion_ids.size(1))
        weight = completion_mask * inputs["advantages"].unsqueeze(1)
        # token mean over every kept completion of the optimizer step: each process's share of the global count,
        # since gradients are averaged over processes
        normalizer = inputs["scalpel_kept_tokens"].clamp(min=1.0) / self.accelerator.num_processes
        return -(logps * weight).sum() / normalizer


def build(cls_kwargs: dict, algorithm: str, rewards: dict[str, float], model) -> ScalpelSelfSFTTrainer:
    """The trainer of a self-SFT arm (the study config has checked that ``rewards`` has the accuracy reward and
    that a ``self_sft_base`` arm generates with transformers).

    The base sampler is copied *before* the trainer is built: TRL replaces the trained model's ``forward`` with a
    closure over that model (``add_fused_lm_head``), and a copy taken afterwards would carry the closure along and
    sample from the weights being trained (found when both arms of a real run came out bit-identical)."""
    sampler = copy.deepcopy(model).eval().requires_grad_(False) if algorithm == "self_sft_base" else None
    tr = ScalpelSelfSFTTrainer(model=model, **cls_kwargs)
    tr.accuracy_index = list(rewards).index(ACCURACY)
    tr.sampler = sampler
    return tr
