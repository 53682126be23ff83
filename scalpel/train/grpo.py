"""A GRPO arm on TRL's ``GRPOTrainer``: the study's shared block + its GRPO block -> ``GRPOConfig``.

Rows: one per (question, step) of the stream, ``{"id", "prompt": [system, user], "answer"}``;
TRL's ``RepeatSampler`` (shuffle off) turns each step's Q questions into Q x G rollouts and the rewards receive
``answer`` (and ``id``) as columns. ``steps_per_generation`` = gradient accumulation and ``num_iterations`` = 1, so
one generation batch is exactly one optimizer step's questions. Deviation from the paper's set-up kept on purpose:
on CPU, rollouts come from ``transformers`` ``generate`` (vLLM is used when ``grpo.generation`` asks for it).
"""

from __future__ import annotations

from datasets import Dataset
from trl import GRPOConfig

from scalpel.data.prompts import messages
from scalpel.train import self_sft
from scalpel.train.rewards import build_reward_funcs
from scalpel.train.trainers import ScalpelGRPOTrainer


def rows(run) -> list[dict]:
    out = []
    for t in range(run.total_steps):
        for qid in run.expected_block(t):
            q = run.stream.by_id[qid]
            out.append({"id": q.id, "prompt": messages(q.question, run.system_prompt), "answer": q.answer})
    return out


def config(run, common: dict) -> GRPOConfig:
    return GRPOConfig(**config_kwargs(run.study, common))


def config_kwargs(study, common: dict) -> dict:
    """What scalpel passes to ``GRPOConfig`` (also printed by ``scalpel study --plan``)."""
    g = study.grpo
    vllm = {}
    if g.generation != "hf":
        vllm = {"use_vllm": True, "vllm_mode": "server" if g.generation == "vllm-server" else "colocate",
                "vllm_server_host": g.vllm_server_host, "vllm_server_port": g.vllm_server_port,
                "vllm_gpu_memory_utilization": g.vllm_gpu_memory_utilization}
    _, weights = build_reward_funcs(g.rewards)
    return dict(
        **common,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        loss_type=g.loss_type,
        beta=g.beta,
        epsilon=g.epsilon,
        scale_rewards=g.scale_rewards,
        mask_truncated_completions=g.mask_truncated_completions,
        num_iterations=g.num_iterations,
        reward_weights=weights,
        disable_dropout=True,  # the paper's setting; the old/new log-probs of one rollout must agree
        shuffle_dataset=False,
        log_completions=False,
        **vllm,
    )


def trainer(run, model, tokenizer, args: GRPOConfig, callbacks: list) -> ScalpelGRPOTrainer:
    """GRPO's trainer, or for a self-SFT arm the same rollouts with an SFT loss (``scalpel.train.self_sft``)."""
    funcs, _ = build_reward_funcs(run.study.grpo.rewards)
    kwargs = dict(reward_funcs=funcs, args=args, train_dataset=Dataset.from_list(rows(run)),
                  processing_class=tokenizer, callbacks=callbacks)
    if run.arm.algorithm != "grpo":
        return self_sft.build(kwargs, run.arm.algorithm, run.study.grpo.rewards, model)
    return ScalpelGRPOTrainer(model=model, **kwargs)
