"""Per-architecture tensor and module names, so every analysis is written once for all models.

After ROME's ``model_utils``: a small dataclass of name templates per family. The weight analysis reads tensor
names (``model.layers.{layer}.self_attn.q_proj.weight``); causal tracing hooks module names
(``model.layers.{layer}.mlp``). OLMo-2, OLMo, Llama, Mistral, Qwen2 and Qwen3 share the Llama layout; they differ
in which extra tensors exist (OLMo-2/Qwen3 ``q_norm``/``k_norm``, Qwen2 q/k/v biases), which are excluded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from scalpel.errors import UserError

# The paper's seven matrix types, in the order of its Figures 5/6 x-axis.
MATRICES = ("q", "k", "v", "o", "gate", "up", "down")


class ArchitectureError(UserError):
    """Base and checkpoint are not comparable (unknown family, different shapes or tensor sets)."""


@dataclass(frozen=True)
class Architecture:
    """Name templates of one model family (``{}`` = layer index)."""

    name: str
    model_types: tuple[str, ...]
    layers_key: str = "num_hidden_layers"
    matrix_tmp: dict[str, str] = field(default_factory=lambda: {
        "q": "model.layers.{}.self_attn.q_proj.weight",
        "k": "model.layers.{}.self_attn.k_proj.weight",
        "v": "model.layers.{}.self_attn.v_proj.weight",
        "o": "model.layers.{}.self_attn.o_proj.weight",
        "gate": "model.layers.{}.mlp.gate_proj.weight",
        "up": "model.layers.{}.mlp.up_proj.weight",
        "down": "model.layers.{}.mlp.down_proj.weight",
    })
    embed_module: str = "model.embed_tokens"
    layer_module_tmp: str = "model.layers.{}"
    mlp_module_tmp: str = "model.layers.{}.mlp"
    attn_module_tmp: str = "model.layers.{}.self_attn"

    def tensor_name(self, layer: int, matrix: str) -> str:
        return self.matrix_tmp[matrix].format(layer)

    def analysed(self, n_layers: int) -> list[tuple[int, str, str]]:
        """(layer, matrix, tensor name) for every matrix the weight analysis covers, layer-major."""
        return [(layer, m, self.tensor_name(layer, m)) for layer in range(n_layers) for m in MATRICES]

    def exclusion_reason(self, name: str) -> str:
        """Why a tensor that is not one of the seven matrices is left out (the paper's exclusions, named)."""
        rules = [
            (r"(^|\.)(q_norm|k_norm)\.", "q_norm/k_norm (OLMo-2/Qwen3 only; excluded by the paper)"),
            (r"(layernorm|_norm|\.norm)\.", "layer norm"),
            (r"embed_tokens|wte|word_embeddings", "embedding"),
            (r"lm_head|embed_out", "lm_head"),
            (r"\.bias$", "bias"),
            (r"rotary|inv_freq", "rotary buffer"),
        ]
        for pattern, reason in rules:
            if re.search(pattern, name):
                return reason
        return "not one of q,k,v,o,gate,up,down"


LLAMA_LIKE = (
    Architecture("olmo2", ("olmo2",)),
    Architecture("olmo", ("olmo",)),
    Architecture("llama", ("llama",)),
    Architecture("mistral", ("mistral",)),
    Architecture("qwen2", ("qwen2",)),
    Architecture("qwen3", ("qwen3",)),
)
ARCHITECTURES = {t: a for a in LLAMA_LIKE for t in a.model_types}


def for_config(config: dict, where: str = "config.json") -> Architecture:
    """The architecture of a HF ``config.json`` dict; an unknown family is an error naming the supported ones."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ArchitectureError(
            f"{where}: model_type {model_type!r} is not supported by the analyses; supported: "
            f"{', '.join(sorted(ARCHITECTURES))}. Add its name templates to scalpel/analyze/architectures.py."
        )
    return ARCHITECTURES[model_type]


def for_model(model) -> Architecture:
    """The architecture of a loaded ``transformers`` model."""
    return for_config(model.config.to_dict(), where=type(model).__name__)


def selector(matrix_group: str, layers: list[int]) -> list[str]:
    """Freezing selectors for the training config, e.g. ``["mlp@20-26"]`` (contiguous runs become ranges)."""
    out: list[str] = []
    layers = sorted(set(layers))
    i = 0
    while i < len(layers):
        j = i
        while j + 1 < len(layers) and layers[j + 1] == layers[j] + 1:
            j += 1
        out.append(f"{matrix_group}@{layers[i]}" if i == j else f"{matrix_group}@{layers[i]}-{layers[j]}")
        i = j + 1
    return out
