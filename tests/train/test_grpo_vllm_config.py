"""Claim (issue 16, item 10): the GRPO arm's vLLM options reach TRL's ``GRPOConfig`` as the study file says, field by
field, for the paper's recipe in each rollout mode (TRL's own ``__post_init__`` runs, so a combination it refuses
fails here, not on a GPU node). Built in this one process: 7 processes would give the same 112-completion generation
batch as 16 per device x 7."""

from __future__ import annotations

from pathlib import Path

import pytest
from trl import GRPOConfig

from scalpel import config
from scalpel.train import grpo
from scalpel.train.arms import _common_args, batch_plan

PAPER = Path(__file__).resolve().parents[2] / "recipes" / "olmo2-7b" / "study.yaml"
ON_CPU = ["study.launch.gpus=[]", "study.launch.vllm_server.gpus=[]"]


def grpo_config(tmp_path, *overrides: str) -> GRPOConfig:
    study = config.load(PAPER, ["study.train.per_device_batch=null", *overrides]).study
    arm = next(a for a in study.arms if a.algorithm == "grpo")
    common = _common_args(study, arm, 42, tmp_path, batch_plan(study, arm, 1), 571, False)
    return GRPOConfig(**grpo.config_kwargs(study, common))


def test_server_mode(tmp_path):
    c = grpo_config(tmp_path, "study.grpo.vllm_server_port=8123", "study.grpo.vllm_server_host=10.0.0.7",
                    "study.grpo.vllm_gpu_memory_utilization=0.55")
    assert (c.use_vllm, c.vllm_mode) == (True, "server")
    assert (c.vllm_server_host, c.vllm_server_port, c.vllm_server_base_url) == ("10.0.0.7", 8123, None)
    assert c.vllm_gpu_memory_utilization == 0.55  # TRL ignores it in server mode: the study passes it to the server
    assert (c.num_generations, c.generation_batch_size, c.steps_per_generation) == (28, 112, 1)
    assert (c.max_completion_length, c.temperature, c.top_p) == (1500, 0.6, 1.0)
    assert (c.loss_type, c.beta, c.epsilon, c.num_iterations) == ("dr_grpo", 0.0, 0.2, 1)
    assert c.mask_truncated_completions is True and c.shuffle_dataset is False
    assert c.reward_weights == [1.0, 0.1]


def test_colocate_mode(tmp_path):
    c = grpo_config(tmp_path, "study.grpo.generation=vllm-colocate", *ON_CPU,
                    "study.grpo.vllm_gpu_memory_utilization=0.3")
    assert (c.use_vllm, c.vllm_mode, c.vllm_gpu_memory_utilization) == (True, "colocate", 0.3)


def test_transformers_generate_on_cpu(tmp_path):
    c = grpo_config(tmp_path, "study.grpo.generation=hf", *ON_CPU)
    assert c.use_vllm is False


def test_a_generation_batch_trl_would_refuse_is_refused_by_the_config_first():
    with pytest.raises(config.ConfigError, match="must be divisible by grpo.num_generations"):
        config.load(PAPER, ["study.train.global_batch=100"])
