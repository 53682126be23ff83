"""One typed, documented configuration tree for every scalpel command.

YAML in, dotted-key overrides on top (``--set microworld.seed=3``), validated before any compute. Every field
carries its meaning in ``description``; ``scalpel config resolve FILE`` prints the resolved tree as JSON, so a
study's provenance is one object. Two sections: ``microworld`` (the synthetic world and its base model) and
``study`` (base model, data, arms, training, evaluation, analyses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scalpel.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: unknown keys and wrong types are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------------------------
# The micro-world: synthetic tasks + a tiny OLMo-2 base model that scalpel pretrains itself.
# --------------------------------------------------------------------------------------------------------------


class WorldConfig(Section):
    """How big the synthetic world is. Facts are fixed per seed; maths items are drawn fresh per split."""

    entities: int = Field(40, ge=8, le=2000, description="Invented entities (people) that carry facts.")
    relations: list[Literal["city", "job", "colour", "pet", "food"]] = Field(
        default_factory=lambda: ["city", "job", "colour", "pet"],
        description="Which attributes each entity has; each is one fact, asked as 4-way multiple choice.",
        min_length=1,
    )
    mcq_heldout_fraction: float = Field(
        0.5, gt=0.0, lt=1.0,
        description="Share of facts whose multiple-choice question is never shown in pretraining "
        "(the fact itself always is: the held-out test measures recall, not memorised options).",
    )
    maths_train: int = Field(2000, ge=10, description="Training maths items per tier (pretraining + post-training).")
    maths_heldout: int = Field(500, ge=10, description="Held-out maths items per tier (evaluation only; enough "
                               "that a gain of a few points is detectable).")
    easy_max: int = Field(6, ge=3, le=99, description="Largest operand in the easy ('k12') tier.")
    hard_max: int = Field(6, ge=3, le=99, description="Largest operand in the hard ('olympiad') tier.")
    fewshot_shots: int = Field(3, ge=1, le=8, description="Solved examples in each few-shot maths prompt.")
    fewshot_train: int = Field(400, ge=1, description="Few-shot maths prompts in pretraining (long: they cost tokens).")
    fewshot_heldout: int = Field(300, ge=10, description="Held-out few-shot maths prompts (easy tier).")
    instruct_train: int = Field(1500, ge=10, description="Instruction-following items used in pretraining.")
    instruct_heldout: int = Field(200, ge=10, description="Held-out instruction-following items.")


class ModelConfig(Section):
    """Shape of the tiny ``Olmo2ForCausalLM`` base model (the real architecture, so module names match OLMo-2)."""

    hidden_size: int = Field(128, ge=16, le=4096, description="Residual width.")
    num_hidden_layers: int = Field(6, ge=1, le=64, description="Transformer blocks (enough for 'middle layers').")
    num_attention_heads: int = Field(4, ge=1, le=64, description="Attention heads (must divide hidden_size).")
    intermediate_size: int = Field(512, ge=16, description="MLP width (gate/up/down projections).")
    max_position_embeddings: int = Field(512, ge=64, description="Longest sequence the model supports.")
    vocab_size: int = Field(1200, ge=300, le=65536, description="Byte-level BPE vocabulary trained on the world.")
    embedding_init_std: float = Field(
        1.0, gt=0, le=10,
        description="Std of the token-embedding init. OLMo-2 normalises each block's output before adding it to the "
        "residual stream, so every block adds unit-RMS noise at init; embeddings at transformers' 0.02 are drowned "
        "by it and a 6-block model learns slowly (pretraining loss after 250 steps: 1.06 at 0.02, 0.64 at 1.0).")

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"model.num_attention_heads ({self.num_attention_heads}) must divide model.hidden_size "
                f"({self.hidden_size})"
            )
        return self


class PretrainConfig(Section):
    """Base-model pretraining: a plain, deterministic next-token loop (post-training uses TRL, not this)."""

    steps: int = Field(650, ge=1, description="Optimizer steps.")
    batch_size: int = Field(8, ge=1, description="Packed rows per step (each row holds several documents).")
    row_length: int = Field(256, ge=16, le=4096, description="Tokens per packed row (raised to the longest document "
                            "if shorter). Longer rows waste less at their ends but pay more for attention.")
    lr: float = Field(3e-3, gt=0, le=1.0, description="Peak AdamW learning rate (cosine decay, 5 % warmup).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    fact_repeats: int = Field(40, ge=1, description="Plain-text documents per entity (its facts, shuffled).")
    qa_repeats: int = Field(12, ge=1, description="Times each fact appears as a question-answer chat.")
    mcq_repeats: int = Field(8, ge=1, description="Option orders shown per *train* multiple-choice fact.")
    system_fraction: float = Field(
        0.3, ge=0, le=1,
        description="Share of chat documents that carry the system prompt (it costs tokens, but evaluation uses it).",
    )
    stepwise_fraction: float = Field(
        0.35, ge=0, le=1,
        description="Share of maths answers the base sees written one equation per step instead of its usual one "
        "line: a habit the base has but rarely uses, for GRPO to amplify.")
    maths_docs: int = Field(
        2000, ge=0, description="Train maths items per tier the base sees solved in its own style (the first ones of "
        "the train split; post-training reads the same split).")
    arithmetic_repeats: int = Field(16, ge=0, description="Passes over the arithmetic tables (every single operation "
                                    "the problems need, as plain text).")
    instruct_repeats: int = Field(4, ge=1, description="Times each training instruction appears.")
    untagged_fraction: float = Field(
        0.25, ge=0, le=1,
        description="Share of maths answers written without <answer> tags, so format reward has room to grow.",
    )


SIZE_PRESETS: dict[str, dict[str, Any]] = {
    # Small enough that the test suite builds it in seconds; off the floor on maths only (inspect.TEST_SIZE_RANGES),
    # so GRPO in the tests sees some reward.
    "test": {
        "model": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
                  "vocab_size": 800},
        "world": {"entities": 24, "maths_train": 400, "maths_heldout": 40, "fewshot_train": 40, "fewshot_heldout": 20,
                  "instruct_train": 120, "instruct_heldout": 20},
        "pretrain": {"steps": 200, "lr": 1e-2, "batch_size": 4, "fact_repeats": 3, "mcq_repeats": 2, "qa_repeats": 1},
        "threads": 1,  # a tiny model gains nothing from a second thread, and loses a lot when cores are shared
    },
    "demo": {},
}


class MicroworldConfig(Section):
    """The embedded default world: ``size`` picks a preset; any field set explicitly wins over the preset."""

    size: Literal["test", "demo"] = Field("demo", description="Preset: 'test' (seconds, for tests) or 'demo'.")
    seed: int = Field(0, ge=0, description="Seed of the world, the tokenizer corpus and pretraining.")
    threads: int = Field(
        2, ge=1, le=256,
        description="torch threads for pretraining. Part of the cache key: CPU results differ with thread count.",
    )
    world: WorldConfig = Field(default_factory=WorldConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        size = data.get("size", "demo")
        preset = SIZE_PRESETS.get(size) if isinstance(size, str) else None
        if preset is None:  # let the Literal produce the message naming allowed values
            return data
        merged = dict(data)
        for section, values in preset.items():
            if not isinstance(values, dict):
                merged.setdefault(section, values)
                continue
            user = merged.get(section) or {}
            if isinstance(user, dict):
                merged[section] = {**values, **user}
        return merged


# --------------------------------------------------------------------------------------------------------------
# Studies: matched GRPO and SFT arms on one base model (read by scalpel.train; docs in each field).
# --------------------------------------------------------------------------------------------------------------


class OpenR1DataConfig(Section):
    """OpenR1-Math-220k as the paper used it: the `extended` config, CN-K12 only, a 4096-token length filter."""

    path: str = Field("open-r1/OpenR1-Math-220k",
                      description="Hub id, or a local .parquet/.jsonl file or a directory of them, in the real schema.")
    config: Literal["default", "extended"] = Field("extended", description="Dataset config (the paper: extended).")
    sources: list[str] = Field(default_factory=lambda: ["cn_k12"], min_length=1,
                               description="Keep rows whose `source` is one of these (the paper: cn_k12).")
    max_tokens: int = Field(4096, ge=64,
                            description="Drop questions whose chat-templated prompt + SFT target exceeds this many "
                            "tokens (the paper: 4096, OLMo-2's context).")


class StudyDataConfig(Section):
    """Where the questions (and their SFT targets) come from. `source` is required: there is no silent default."""

    source: Literal["microworld", "openr1"] = Field(
        description="'microworld': the maths items of the study's micro-world (SFT target = its verbose teacher); "
        "'openr1': OpenR1-Math-220k (SFT target = the first math-verify-correct R1 generation).")
    tiers: list[Literal["k12", "olympiad"]] = Field(
        default_factory=lambda: ["k12"], min_length=1,
        description="Micro-world difficulty tiers to train on: k12 (maths_easy) and/or olympiad (maths_hard). "
        "The paper trained on CN-K12 only: GRPO needs questions the base model sometimes solves.")
    openr1: OpenR1DataConfig = Field(default_factory=OpenR1DataConfig, description="Used when source = openr1.")
    max_questions: int | None = Field(
        None, ge=1, description="Cap on the question pool (taken from a seeded permutation); None: all of it.")


class StudyTrainConfig(Section):
    """Hyper-parameters every arm shares, so that the algorithm is the only difference (Figure 15's shared block)."""

    steps: int = Field(ge=1, description="Optimizer steps of a 1-epoch arm (the paper: 571).")
    global_batch: int = Field(
        ge=1, description="GRPO completions per optimizer step over all processes (the paper's text: 112 = 4 "
        "questions x 28; Figure 15's 16 per device x 4 accumulation x 7 GPUs read the way TRL does would be 448). "
        "Questions per step = global_batch / grpo.num_generations; per_device_batch and the process count only "
        "decide the accumulation.")
    per_device_batch: int | None = Field(
        None, ge=1, description="Largest micro-batch (completions or sequences) one process runs at once; gradient "
        "accumulation makes up the rest. None: no accumulation. Changes speed and memory, never the maths.")
    lr_scheduler: Literal["constant_with_warmup", "linear", "cosine", "constant"] = Field(
        "constant_with_warmup", description="Learning-rate schedule (transformers' names).")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0,
                                description="Share of an arm's steps spent warming up linearly from 0 to its lr.")
    max_grad_norm: float = Field(0.2, gt=0.0, description="Gradient clipping (global L2 norm).")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    checkpoints: int = Field(20, ge=1, description="Evenly spaced checkpoints per arm; the last one is the final "
                             "step. A checkpoint-0 (the starting weights) is saved too: N + 1 in all.")
    max_length: int = Field(4096, ge=16, description="Longest SFT sequence (prompt + target tokens). A longer "
                            "example is an error, never a silent truncation or drop (either would break matching).")
    dtype: Literal["float32", "bfloat16", "pure-bfloat16"] = Field(
        "float32", description="Training precision. float32: everything in fp32 (the CPU default). bfloat16: mixed "
        "precision, fp32 master weights and AdamW state with the forward and backward in bf16 autocast (DeepSpeed "
        "bf16 does the same: the paper's set-up). pure-bfloat16: the weights themselves are bf16 and AdamW updates "
        "them directly: half the weight memory, but an update below a weight's bf16 resolution (2^-8 of it) "
        "rounds to nothing, so a small lr mostly does not train (warned when used).")
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory (the paper: on).")
    liger_kernel: bool = Field(False, description="Liger fused kernels (GPU only; the paper: on).")
    threads: int = Field(1, ge=1, le=256, description="torch threads per process on CPU (1 is fastest when cores "
                         "are shared; see README, Development).")
    logging_steps: int = Field(1, ge=1, description="Log metrics every this many steps (health guards need 1).")
    report_to: Literal["none", "wandb", "trackio", "tensorboard"] = Field(
        "none", description="Where TRL also reports the training metrics, live (passed as TrainingArguments."
        "report_to; wandb/trackio read their usual environment variables, e.g. WANDB_PROJECT). scalpel's own "
        "log.jsonl is written either way. Changes no result: not part of any run's key.")
    keep_optimizer_state: Literal["last", "all"] = Field(
        "last", description="Which checkpoints keep the optimizer/scheduler/RNG state needed to resume: only the "
        "latest (older ones keep weights, tokenizer and manifest) or all of them.")

# The rewards a study may name. scalpel.train.rewards.REWARDS implements exactly these (tests/train/test_rewards.py
# checks that the two agree), so the config is validated without importing the training code.
REWARD_NAMES = ("accuracy", "format", "tag_count")


class GRPOStudyConfig(Section):
    """Settings only GRPO arms use (Figure 15's GRPO block). SFT arms ignore them."""

    num_generations: int = Field(8, ge=2, description="Completions per question, G (the paper: 28).")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(
        "dr_grpo", description="TRL loss aggregation. dr_grpo divides by max_completion_length, so that setting "
        "scales the effective learning rate.")
    epsilon: float = Field(0.2, gt=0.0, description="PPO-style clipping range.")
    beta: float = Field(0.0, ge=0.0, description="KL penalty to the reference model (0: no reference model).")
    temperature: float = Field(0.6, gt=0.0, description="Sampling temperature of the rollouts.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling of the rollouts.")
    max_completion_length: int = Field(1500, ge=1, description="Longest completion in tokens.")
    mask_truncated_completions: bool = Field(True, description="Leave completions cut at the length limit out "
                                             "of the loss.")
    scale_rewards: Literal["group", "batch", "none"] = Field(
        "group", description="Advantage normalisation: by the group's std (TRL's default), the batch's, or none.")
    num_iterations: Literal[1] = Field(1, description="Updates per generation batch. Fixed at 1, as in the paper: "
                                       "more would train on each question block for several steps.")
    rewards: dict[str, float] = Field(
        default_factory=lambda: {"accuracy": 1.0, "format": 0.1},
        description="Reward name (REWARD_NAMES, implemented in scalpel.train.rewards) -> weight (the paper: "
        "accuracy 1.0, format 0.1, tag_count off). A weight of 0 logs a reward without using it.")
    generation: Literal["hf", "vllm-server", "vllm-colocate"] = Field(
        "hf", description="Rollout backend: transformers generate (CPU), or vLLM (TRL's server or colocate mode).")
    vllm_server_host: str = Field("0.0.0.0", description="vLLM server host (generation = vllm-server).")
    vllm_server_port: int = Field(8000, ge=1, le=65535, description="vLLM server port.")
    vllm_gpu_memory_utilization: float = Field(0.7, gt=0.0, le=1.0, description="vLLM GPU memory share.")

    @model_validator(mode="after")
    def _known_rewards(self) -> "GRPOStudyConfig":
        if not self.rewards:
            raise ValueError(f"rewards: at least one reward is needed (known: {', '.join(sorted(REWARD_NAMES))})")
        unknown = [n for n in self.rewards if n not in REWARD_NAMES]
        if unknown:
            raise ValueError(f"rewards: unknown reward(s) {unknown} (known: {', '.join(sorted(REWARD_NAMES))})")
        if not any(w != 0 for w in self.rewards.values()):
            raise ValueError("rewards: every weight is 0, so no completion would ever be preferred")
        return self


class FreezeConfig(Section):
    """Which parameters an arm trains (selector grammar: scalpel/train/freeze.py). Checked against the model."""

    train_only: list[str] | None = Field(None, description="Only these train, e.g. [q_proj, k_proj].")
    freeze: list[str] | None = Field(None, description="These are frozen, e.g. ['mlp@20-26'] (gate/up/down of "
                                     "layers 20..26), or ['mlp@traced']: the MLPs of the layers causal tracing of "
                                     "the study's base selects (study.analysis.trace_threshold; the paper's "
                                     "procedure). scalpel study traces the base first and records the layers.")

    @model_validator(mode="after")
    def _not_everything(self) -> "FreezeConfig":
        if self.train_only is not None and not self.train_only:
            raise ValueError("train_only: an empty list would freeze every parameter")
        if self.train_only is None and not self.freeze:
            raise ValueError("give train_only and/or freeze (or leave freeze out of the arm to train everything)")
        return self


class ArmConfig(Section):
    """One arm: an algorithm, its learning rate and length, and optionally which parameters it trains."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Arm name (a directory name).")
    algorithm: Literal["grpo", "sft", "self_sft", "self_sft_base"] = Field(
        description="grpo (TRL GRPOTrainer), sft (TRL SFTTrainer), or on-policy SFT (scalpel.train.self_sft): "
        "self_sft trains by SFT on the current model's own correct samples of GRPO's questions (same stream, "
        "batch, G and schedule), self_sft_base on the base model's samples only.")
    lr: float = Field(gt=0.0, le=1.0, description="Peak learning rate (the paper: GRPO 1e-6, SFT 5e-5).")
    epochs: int = Field(1, ge=1, le=100, description="Passes over the study's question budget: the arm runs "
                        "epochs x train.steps steps, reading further along the same question stream.")
    freeze: FreezeConfig | None = Field(None, description="Freezing selectors; None trains every parameter.")
    tiers: list[Literal["k12", "olympiad"]] | None = Field(
        None, min_length=1, description="Micro-world tiers this arm trains on instead of study.data.tiers (e.g. "
        "GRPO on the hard tier, claim C8). Such an arm reads its own question stream, so it is matched to the "
        "others in budget and schedule, not in question ids.")
    trained: str | None = Field(
        None, description="scalpel study: this arm was trained elsewhere (e.g. by a direct `accelerate launch ... "
        "scalpel.cli train STUDY --arm NAME --out X`: then X/NAME). The directory holds seed-<s>/ for each seed; the "
        "study checks each is a complete run of this arm under these settings and evaluates, analyses and reports "
        "it instead of training. None: the study trains it (or reuses a complete run in OUT/runs/NAME/seed-<s>/).")
    evaluate: bool = Field(True, description="Evaluate this arm's checkpoints on the benchmarks (and pass@k). "
                           "false for an arm the claims read only through its training log, e.g. GRPO on the hard "
                           "tier (claim C8 compares training rewards): its KL and weight analyses still run.")

    @property
    def rollouts(self) -> bool:
        """Does this arm sample G completions per question, as GRPO does (grpo and the self-SFT arms)?"""
        return self.algorithm != "sft"

    @property
    def traced(self) -> bool:
        """Does this arm freeze or train layers chosen by causal tracing of the base (``NAME@traced``)?"""
        from scalpel.train.freeze import uses_traced

        return self.freeze is not None and uses_traced(self.freeze.train_only, self.freeze.freeze)


class HealthConfig(Section):
    """Training-health guards: reward hacking (text after </answer>), grad-norm spikes, non-finite loss."""

    on_unhealthy: Literal["warn", "stop"] = Field(
        "warn", description="warn: log the event and go on; stop: log it and end the run (no final checkpoint).")
    text_after_answer: bool = Field(True, description="Flag completions with text or tags after </answer> (the "
                                    "paper's tag-spam reward hacking, Figures 10 and 14).")
    max_text_after_answer: float = Field(
        0.25, ge=0.0, le=1.0, description="Unhealthy when more than this share of a step's completions carry "
        "text after </answer> (any such completion is logged as a notice, with its text).")
    grad_spike_factor: float = Field(10.0, gt=1.0, description="A grad-norm spike is a pre-clipping norm above "
                                     "this multiple of the running median.")
    grad_window: int = Field(50, ge=3, description="Steps in the running median of grad norms.")
    grad_min_history: int = Field(10, ge=1, description="Steps of history before spikes are judged.")


class VLLMServerLaunchConfig(Section):
    """The vLLM server of GRPO's server mode (``study.grpo.generation: vllm-server``), which the study owns."""

    gpus: list[int] = Field(default_factory=list, description="GPUs the server runs on (CUDA_VISIBLE_DEVICES; "
                            "tensor-parallel over all of them). The paper: one GPU, the 8th.")
    timeout: float = Field(900.0, gt=0, description="Seconds to wait for the server's /health before the job fails "
                           "(loading a 7B model and compiling its graphs takes minutes).")


class LaunchConfig(Section):
    """How ``scalpel study`` runs each training job. Decides where and on how many processes an arm trains, never
    what it computes: the global batch and the question stream are the same for any process count (the run's
    manifest records the count). So it is not part of any run's key, and may change between reruns of a study."""

    mode: Literal["in-process", "accelerate"] = Field(
        "in-process", description="in-process: the study's worker process trains the arm itself (one process; the "
        "CPU default). accelerate: the worker runs `accelerate launch` of `scalpel train` on the study's resolved "
        "config (OUT/config.json), so data-parallel training and DeepSpeed go through the one training entry.")
    processes: int | None = Field(None, ge=1, le=1024, description="Training processes per job (accelerate "
                                  "--num_processes). None: one per GPU in `gpus`, else 1.")
    accelerate_config: str | None = Field(
        None, description="accelerate config file (mode accelerate; a relative path is read from the directory "
        "scalpel study runs in): recipes/accelerate/cpu_ddp.yaml for CPU data parallelism, "
        "recipes/accelerate/zero2.yaml for the paper's DeepSpeed ZeRO-2.")
    gpus: list[int] = Field(default_factory=list, description="GPUs of the training processes (their "
                            "CUDA_VISIBLE_DEVICES, one process each); empty: the launch does not choose (CPU, or "
                            "whatever the node exposes). The paper: 0-6.")
    vllm_server: VLLMServerLaunchConfig = Field(default_factory=VLLMServerLaunchConfig)

    @property
    def num_processes(self) -> int:
        return self.processes if self.processes is not None else max(1, len(self.gpus))

    @model_validator(mode="after")
    def _coherent(self) -> "LaunchConfig":
        if self.mode == "in-process":
            used = [k for k, v in (("processes", (self.processes or 1) > 1), ("gpus", self.gpus),
                                   ("accelerate_config", self.accelerate_config)) if v]
            if used:
                raise ValueError(f"{', '.join(used)}: only mode accelerate uses these (an in-process job is one "
                                 "process in the study's own worker, on the devices it sees); set mode: accelerate")
            return self
        if self.accelerate_config is None:
            raise ValueError("accelerate_config: mode accelerate needs an accelerate config file (recipes/accelerate/"
                             "cpu_ddp.yaml on CPU, recipes/accelerate/zero2.yaml for DeepSpeed ZeRO-2 on GPUs)")
        if self.gpus and self.num_processes != len(self.gpus):
            raise ValueError(f"processes ({self.processes}) must equal the number of gpus ({len(self.gpus)}): one "
                             "training process per GPU")
        for name, ids in (("gpus", self.gpus), ("vllm_server.gpus", self.vllm_server.gpus)):
            if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
                raise ValueError(f"{name}: must be distinct GPU indices >= 0, got {ids}")
        shared = sorted(set(self.gpus) & set(self.vllm_server.gpus))
        if shared:
            raise ValueError(f"vllm_server.gpus: GPU(s) {shared} are also training GPUs (gpus); the server needs "
                             "GPUs of its own")
        return self


class StudyEvalConfig(Section):
    """The study's evaluation phase: which benchmarks, which checkpoints, how to sample (scalpel.evaluate)."""

    suite: str | None = Field(None, description="Benchmark suite (microworld, paper, local); None: 'microworld' for "
                              "a micro-world base, else 'paper'.")
    benchmarks: list[str] = Field(default_factory=list, description="Benchmarks added to the suite.")
    in_domain: list[str] | None = Field(None, description="Benchmarks that count as in-domain in the claims; None: "
                                        "the maths benchmarks of the suite.")
    checkpoints: int | None = Field(4, ge=1, description="Evenly spaced checkpoints evaluated per arm and seed (the "
                                    "final one always among them); None: every checkpoint.")
    samples: int = Field(1, ge=1, description="Completions per item at every evaluated checkpoint.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature (the paper's evaluation: 0.7).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling (the paper's evaluation: 0.95).")
    limit: int | None = Field(None, ge=1, description="First N items of every benchmark; None: all.")
    passk_samples: int = Field(8, ge=1, description="Completions per item for the pass@k curves (base and final "
                               "checkpoints, in-domain benchmarks); 1 turns the pass@k phase off.")
    passk_limit: int | None = Field(50, ge=1, description="Items per benchmark in the pass@k phase.")
    passk_arms: list[str] | None = Field(None, description="Arms whose final checkpoints get pass@k; None: all.")
    batch_size: int = Field(64, ge=1, description="Prompts per generation batch.")
    seed: int = Field(0, ge=0, description="Base seed of evaluation sampling (per-sample seeds are recorded).")


class StudyAnalysisConfig(Section):
    """The study's analysis phase (scalpel.analyze): KL to base, weight updates, causal tracing."""

    kl: bool = Field(True, description="KL(base || checkpoint) on every checkpoint (Figure 4).")
    kl_data: str | None = Field(None, description="KL text: 'math500', a JSON/JSONL file, or None: the micro-world's "
                                "held-out maths with solutions in a neutral style no arm trains on (micro-world bases), math500 otherwise.")
    kl_max_examples: int | None = Field(200, ge=1, description="Examples in the KL text.")
    weights: bool = Field(True, description="Per layer x matrix update norms, sparsity (Figures 5/6).")
    spectrum: bool = Field(True, description="Effective rank / top-k energy of each update (SVD; costs time).")
    trace: bool = Field(True, description="Causal tracing of the base model's fact recall (Figure 12).")
    trace_facts: str | None = Field(None, description="Facts file (ROME known_1000.json); None: the micro-world's.")
    trace_max_facts: int | None = Field(40, ge=1, description="Facts traced.")
    trace_samples: int = Field(5, ge=1, description="Noise draws per fact.")
    trace_threshold: float = Field(0.1, gt=0.0, lt=1.0, description="Layers whose MLP AIE at the last token "
                                   "exceeds this are traced (the paper: 0.1, giving layers 20-26 of OLMo-2-7B); "
                                   "an arm freezing 'mlp@traced' freezes their MLPs.")


class StudyConfig(Section):
    """A study: one base model, one question stream per seed, a list of matched arms."""

    name: str = Field("study", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="Study name; runs go to runs/<name>/<arm>/seed-<seed>/ unless --out is given.")
    model: str = Field(
        "microworld", description="Base model: 'microworld' (the world built from the `microworld` section), a "
        "built micro-world directory, a local model directory, or a hub id.")
    system_prompt: str | None = Field(
        None, description="Training system prompt, also baked into every checkpoint's chat template as the "
        "default. None: the micro-world's own prompt, or the paper's prompt for other models.")
    trust_remote_code: bool = Field(False, description="Allow a hub model's own code (off unless you ask).")
    data: StudyDataConfig = Field(description="Question source (required).")
    match: Literal["questions", "sequences"] = Field(
        "questions", description="questions: every arm trains on the same questions at step t (SFT: one target "
        "each, so it sees global_batch / num_generations sequences per step). sequences: SFT sees global_batch "
        "sequences per step, the first global_batch / num_generations of which are GRPO's questions (the paper).")
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1,
                             description="Seeds; each gives its own question stream, shared by every arm.")
    train: StudyTrainConfig = Field(description="Shared hyper-parameters (required: steps, global_batch).")
    grpo: GRPOStudyConfig = Field(default_factory=GRPOStudyConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    arms: list[ArmConfig] = Field(min_length=1, description="The arms, each matched to the others.")
    eval: StudyEvalConfig = Field(default_factory=StudyEvalConfig, description="scalpel study: evaluation phase.")
    analysis: StudyAnalysisConfig = Field(default_factory=StudyAnalysisConfig,
                                          description="scalpel study: analysis phase.")
    launch: LaunchConfig = Field(default_factory=LaunchConfig, description="scalpel study: how training jobs "
                                 "run (in-process, or accelerate launch with DeepSpeed and a vLLM server).")
    workers: int = Field(1, ge=1, le=64, description="scalpel study: jobs (arm x seed trainings, evaluations) run "
                         "side by side, each in its own process with train.threads threads. On a CPU, one "
                         "worker per core beats one job with all cores for a model this small.")

    @model_validator(mode="after")
    def _consistent(self) -> "StudyConfig":
        names = [a.name for a in self.arms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"arms: duplicate arm name(s) {dup}")
        if len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds: must be distinct non-negative integers, got {self.seeds}")
        unknown = sorted(set(self.eval.passk_arms or []) - set(names))
        if unknown:
            raise ValueError(f"eval.passk_arms: {unknown} are not arms of this study ({', '.join(names)})")
        traced = [a.name for a in self.arms if a.traced]
        if traced and not self.analysis.trace:
            raise ValueError(f"arms {traced} select layers with '@traced' (chosen by causal tracing of the base), but "
                             f"analysis.trace is false: set analysis.trace: true, or name the layers (e.g. mlp@2-4)")
        tiered = [a.name for a in self.arms if a.tiers is not None]
        if tiered and self.data.source != "microworld":
            raise ValueError(f"arms {tiered}: `tiers` needs data.source = microworld (got {self.data.source!r})")
        self_sft = [a.name for a in self.arms if a.algorithm in ("self_sft", "self_sft_base")]
        if self_sft and "accuracy" not in self.grpo.rewards:
            raise ValueError(f"arms {self_sft} train on the samples the accuracy reward marks correct: add "
                             f"'accuracy' to grpo.rewards (got {sorted(self.grpo.rewards)})")
        base_sampled = [a.name for a in self.arms if a.algorithm == "self_sft_base"]
        if base_sampled and self.grpo.generation != "hf":
            raise ValueError(f"arms {base_sampled} sample from the frozen base model, which only grpo.generation = "
                             f"hf can do (got {self.grpo.generation!r}; vLLM serves the trained weights)")
        launch, generation = self.launch, self.grpo.generation
        grpo_arms = [a.name for a in self.arms if a.rollouts]
        if generation == "vllm-server":
            if grpo_arms and (launch.mode != "accelerate" or not launch.gpus or not launch.vllm_server.gpus):
                raise ValueError(f"launch: grpo.generation = vllm-server (arms {grpo_arms}) needs launch.mode: "
                                 "accelerate with training GPUs (launch.gpus) and the server's own GPUs "
                                 "(launch.vllm_server.gpus), e.g. gpus: [0, 1, 2, 3, 4, 5, 6], vllm_server: "
                                 "{gpus: [7]}; on CPU use grpo.generation: hf")
        elif launch.vllm_server.gpus:
            raise ValueError("launch.vllm_server.gpus: only grpo.generation = vllm-server uses a vLLM server; leave "
                             "it empty")
        if launch.gpus and self.workers > 1:
            raise ValueError(f"workers ({self.workers}): training jobs on launch.gpus take those GPUs whole, so two "
                             "jobs side by side would share them; use workers: 1")
        g = self.grpo.num_generations
        if self.train.global_batch % g:
            raise ValueError(f"train.global_batch ({self.train.global_batch}) must be divisible by "
                             f"grpo.num_generations ({g}): each step trains on whole groups of G completions")
        return self

    @property
    def questions_per_step(self) -> int:
        return self.train.global_batch // self.grpo.num_generations

    def train_tiers(self, arm: ArmConfig | None = None) -> list[str] | None:
        """The micro-world tiers an arm trains on (its own, else the study's); None for other data sources."""
        if self.data.source != "microworld":
            return None
        return list(arm.tiers if arm is not None and arm.tiers else self.data.tiers)


class Config(Section):
    """Root of the tree: the micro-world, and the study that ``scalpel train`` / ``scalpel study`` run."""

    microworld: MicroworldConfig = Field(default_factory=MicroworldConfig)
    study: StudyConfig | None = Field(None, description="A post-training study (scalpel train / study).")


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a","b","c"], value); the value is parsed as YAML, so 3, 1e-3, true, [a,b] work."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value (e.g. microworld.seed=3)")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path):
            if isinstance(node, list):  # study.arms.0.lr=... indexes a list
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {text!r}: {'.'.join(path[:i])} has {len(node)} entries; "
                                      f"{part!r} is not an index of it")
                part = int(part)
            elif not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[:i])} is not a section")
            if i == len(path) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
    return data


def _describe_error(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent = model
        for part in err["loc"][:-1]:
            if isinstance(part, int):  # a list index: stay on the list's item type
                continue
            field = parent.model_fields.get(str(part)) if isinstance(parent, type) else None
            parent = _section_type(field.annotation) if field else None
            if parent is None:
                break
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "see `scalpel config resolve`"
        return f"{loc}: unknown key (allowed here: {allowed})"
    if isinstance(err.get("input"), (dict, list)):  # a whole section: the message says what is wrong in it
        return f"{loc or '(root)'}: {msg.removeprefix('Value error, ')}"
    return f"{loc or '(root)'}: {msg} (got {err.get('input')!r})"


def _section_type(ann: Any) -> type[BaseModel] | None:
    """The Section class behind an annotation such as ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def validate(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(e, Config) for e in exc.errors()]
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(lines)) from None


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML file (or nothing: all defaults), apply overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            # a study's resolved config.json as JSON: YAML 1.1 would read e.g. 1e-06 as a string
            loaded = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        except (yaml.YAMLError, ValueError) as exc:
            raise ConfigError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level, got {type(loaded).__name__}")
        data = loaded
    data = apply_overrides(data, list(overrides or []))
    return validate(data, source)


def to_json(cfg: BaseModel) -> str:
    return json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=False)
