"""Memory per GPU of a study's training, generation and evaluation, estimated from the model's shape (``--plan``).

Why: a paper-scale layout should be checked against its GPUs before GPU-hours are spent. The model is built on the
meta device from its ``config.json`` (no weights: a local directory, or the hub cache's copy, never downloaded),
which gives P (parameters) and, through the arm's freezing selectors, T (trainable). Rough by design: the large
tensors only; no CUDA context (~1 GiB), allocator fragmentation, communication buckets or temporaries.

Symbols: N training processes, b micro-batch rows per process, s tokens per row, h hidden size, L layers,
V vocabulary, kv key/value heads of size d, x bytes per activation (2 in bf16, 4 in fp32). GiB = 2^30 bytes.

- **Training** (per training GPU):
  - DeepSpeed ZeRO-2 with bf16: weights 2P (bf16 module on every GPU) + gradients 2T/N + fp32 master weights 4T/N
    + AdamW m and v 8T/N (all three sharded); ZeRO-1 keeps gradients whole (2T), ZeRO-3 shards the weights too
    (2P/N).
  - no DeepSpeed, dtype float32 or bfloat16 (fp32 master weights, bf16 autocast): 4P + gradients 4T + AdamW 8T.
  - pure-bfloat16: 2P + 2T + AdamW 4T.
  - activations: with gradient checkpointing L·b·s·h·x (each layer's input) + 34·b·s·h·x (the one layer being
    recomputed, Korthikanti et al. 2022 without the attention-score term, which SDPA/flash attention never
    stores); without it 34·L·b·s·h·x; plus the logits and their gradient 2·b·s·V·4 (fp32), dropped with Liger's
    fused linear cross-entropy. GRPO: b = completions per micro-batch, s = 512 prompt tokens (the paper's
    max_prompt_length) + grpo.max_completion_length; SFT: b = sequences, s = train.max_length (the upper bound).
- **Generation** (GRPO with vLLM): KV cache per token 2·L·kv·d·2 bytes (bf16 keys and values). Server mode, on each
  of the k server GPUs (tensor-parallel): weights 2P/k + the KV cache of one optimizer step's completions
  (global_batch of them, s tokens each) / k. Colocate: the same for each training process's share (global_batch/N)
  on top of its training memory. vLLM reserves grpo.vllm_gpu_memory_utilization of a GPU and pages its KV cache
  inside that share: a smaller reservation means fewer completions in flight, not a failure.
- **Evaluation** (HF generate, one GPU, bf16): weights 2P + the KV cache of eval.batch_size prompts of 512 + the
  suite's largest max_new_tokens tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalpel.config import ArmConfig, Config

GIB = 2**30
PROMPT_TOKENS = 512  # the paper's max_prompt_length (TRL 1.16's GRPOConfig has no such field)
ACTIVATION_FACTOR = 34  # bytes per (token x hidden) of one transformer layer in 16-bit, without attention scores


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model, read from its config on the meta device."""

    sizes: dict[str, int]  # parameter name -> number of elements
    hidden: int
    layers: int
    kv_heads: int
    head_dim: int
    vocab: int
    source: str

    @property
    def params(self) -> int:
        return sum(self.sizes.values())

    def trainable(self, arm: ArmConfig) -> tuple[int, str]:
        """T for an arm (its freezing selectors), and a note when it is an upper bound."""
        from scalpel.train.freeze import select_trainable

        if arm.freeze is None:
            return self.params, ""
        if arm.traced:
            return self.params, " (layers chosen by tracing: counted as trainable, an upper bound)"
        t = select_trainable(self.sizes.items(), arm.freeze.train_only, arm.freeze.freeze)
        return t.trainable_params, ""

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * 2


def model_shape(cfg: Config) -> Shape | str:
    """The base model's shape, or why it cannot be known without loading or downloading anything."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model = cfg.study.model
    if model == "microworld":
        return "not estimated for the micro-world base (a few MB; built by the study)"
    path = Path(model).expanduser()
    if path.is_dir():
        where = path / "model" if (path / "model" / "config.json").is_file() else path
        source = f"{where / 'config.json'}"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
        if not isinstance(cached, str):
            return (f"needs the config.json of {model}, which is not in the Hugging Face cache: `hf download {model} "
                    "config.json` (a few KB), then rerun --plan")
        where, source = Path(cached).parent, f"config.json of {model} in the Hugging Face cache"
    hf = AutoConfig.from_pretrained(str(where), trust_remote_code=cfg.study.trust_remote_code)
    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(hf, trust_remote_code=cfg.study.trust_remote_code)
    heads = hf.num_attention_heads
    return Shape(sizes={n: p.numel() for n, p in meta.named_parameters()}, hidden=hf.hidden_size,
                 layers=hf.num_hidden_layers, kv_heads=getattr(hf, "num_key_value_heads", None) or heads,
                 head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // heads, vocab=hf.vocab_size,
                 source=source)


def zero_stage(accelerate_config: str | None) -> int | None:
    """The DeepSpeed ZeRO stage of an accelerate config file (None: no DeepSpeed, or no such file)."""
    import yaml

    if accelerate_config is None or not Path(accelerate_config).is_file():
        return None
    data = yaml.safe_load(Path(accelerate_config).read_text()) or {}
    if data.get("distributed_type") != "DEEPSPEED":
        return None
    return int((data.get("deepspeed_config") or {}).get("zero_stage", 0))


def _gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def training(cfg: Config, shape: Shape, arm: ArmConfig, per_device: int) -> str:
    """One line: the training memory of one process of ``arm``, term by term."""
    study = cfg.study
    t, n = study.train, study.launch.num_processes
    p = shape.params
    trainable, note = shape.trainable(arm)
    stage = zero_stage(study.launch.accelerate_config) if study.launch.mode == "accelerate" else None
    if stage is not None:
        weights = 2 * p / (n if stage == 3 else 1)
        grads = 2 * trainable / (n if stage >= 2 else 1)
        state = 12 * trainable / n
        how = f"DeepSpeed ZeRO-{stage}: weights {_gib(weights)} + gradients {_gib(grads)} + fp32 master and AdamW " \
              f"{_gib(state)}"
    elif t.dtype == "pure-bfloat16":
        weights, grads, state = 2 * p, 2 * trainable, 4 * trainable
        how = f"pure bf16: weights {_gib(weights)} + gradients {_gib(grads)} + AdamW {_gib(state)}"
    else:
        weights, grads, state = 4 * p, 4 * trainable, 8 * trainable
        how = f"fp32 weights {_gib(weights)} + gradients {_gib(grads)} + AdamW {_gib(state)}"
    x = 4 if t.dtype == "float32" else 2
    s = PROMPT_TOKENS + study.grpo.max_completion_length if arm.rollouts else t.max_length
    rows = per_device * s * shape.hidden * x
    layers = (shape.layers + ACTIVATION_FACTOR) * rows if t.gradient_checkpointing \
        else ACTIVATION_FACTOR * shape.layers * rows
    logits = 0 if t.liger_kernel else 2 * per_device * s * shape.vocab * 4
    total = weights + grads + state + layers + logits
    extra = ""
    if arm.rollouts and study.grpo.generation == "vllm-colocate":
        colocated = 2 * p + study.train.global_batch / n * s * shape.kv_bytes_per_token
        total += colocated
        extra = f" + colocated vLLM {_gib(colocated)}"
    fused = "" if logits else ", logits fused"
    return (f"{how} + activations {_gib(layers + logits)} (b={per_device} x s={s} tokens{fused}){extra} = "
            f"{_gib(total)} GiB{note}")


def generation(cfg: Config, shape: Shape) -> str | None:
    """One line for GRPO's vLLM server GPUs (None without a server)."""
    study = cfg.study
    if study.grpo.generation != "vllm-server" or not any(a.rollouts for a in study.arms):
        return None
    k = max(1, len(study.launch.vllm_server.gpus))
    s = PROMPT_TOKENS + study.grpo.max_completion_length
    weights = 2 * shape.params / k
    kv = study.train.global_batch * s * shape.kv_bytes_per_token / k
    return (f"weights {_gib(weights)} + KV cache {_gib(kv)} ({study.train.global_batch} completions x {s} tokens) = "
            f"{_gib(weights + kv)} GiB per server GPU; vLLM reserves {study.grpo.vllm_gpu_memory_utilization:g} of "
            "the GPU and pages the KV cache inside it")


def evaluation(cfg: Config, shape: Shape, max_new_tokens: int) -> str:
    e = cfg.study.eval
    s = PROMPT_TOKENS + max_new_tokens
    weights, kv = 2 * shape.params, e.batch_size * s * shape.kv_bytes_per_token
    return (f"weights {_gib(weights)} + KV cache {_gib(kv)} ({e.batch_size} prompts x {s} tokens) = "
            f"{_gib(weights + kv)} GiB on one GPU")
