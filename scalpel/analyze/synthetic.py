"""Synthetic models and checkpoints with planted truth, for the analyses' tests and benchmarks.

- ``tiny_model``: a random ``Olmo2ForCausalLM`` (real module names) with a word-level tokenizer and scalpel's chat
  template, saved as a normal HF model directory.
- ``write_safetensors``: a streaming safetensors writer (header first, then one tensor at a time), so a
  ~1B-parameter synthetic checkpoint is written with memory for one tensor.
- ``olmo2_shapes``: tensor names and shapes of an OLMo-2 model of a given size, for the throughput benchmark.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from scalpel.data import prompts as P

WORDS = ("the a is of in lives works likes red blue green city cat dog Tarsa Brell Tovak Mira Oslin what who "
         "where answer think plus minus equals one two three four five six seven eight nine ten so we add get "
         "and then total . , ? ! : 0 1 2 3 4 5 6 7 8 9 <think> </think> <answer> </answer>").split()


def tiny_tokenizer(words: Iterable[str] = WORDS):
    """A word-level tokenizer (whitespace split, unknown words → <unk>) with the OLMo-2 style chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = [P.EOS, P.PAD, P.SYSTEM, P.USER, P.ASSISTANT, "<unk>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(specials + list(words)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins with spaces
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=P.BOS, eos_token=P.EOS, pad_token=P.PAD,
                                 unk_token="<unk>", additional_special_tokens=[P.SYSTEM, P.USER, P.ASSISTANT])
    hf.chat_template = P.chat_template()
    return hf


def tiny_model(out: str | Path, seed: int = 0, layers: int = 2, hidden: int = 32, heads: int = 4,
               intermediate: int = 64, tokenizer=None, dtype: torch.dtype = torch.float32, **config):
    """Save a random tiny ``Olmo2ForCausalLM`` (+ tokenizer) to ``out``; returns (model, tokenizer)."""
    from transformers import Olmo2Config, Olmo2ForCausalLM

    tok = tokenizer or tiny_tokenizer()
    cfg = Olmo2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                      max_position_embeddings=512, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, tie_word_embeddings=False, **config)
    torch.manual_seed(seed)
    model = Olmo2ForCausalLM(cfg).to(dtype).eval()
    with torch.no_grad():  # HF init leaves norms at 1 and std 0.02: spread the logits so probabilities differ
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3 if p.shape[0] == len(tok) else 0.1)
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return model, tok


def write_safetensors(path: str | Path, specs: list[tuple[str, str, tuple[int, ...]]],
                      make: Callable[[str, str, tuple[int, ...]], np.ndarray]) -> Path:
    """Write a safetensors file tensor by tensor: ``specs`` = (name, dtype, shape); ``make`` returns the stored
    bytes as a numpy array (bf16 as uint16 bits) for one spec, called in order."""
    itemsize = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}
    header, offset = {}, 0
    for name, dtype, shape in specs:
        n = int(np.prod(shape)) * itemsize[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align data to 8 bytes, as safetensors does
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        for name, dtype, shape in specs:
            arr = np.ascontiguousarray(make(name, dtype, shape))
            if arr.nbytes != int(np.prod(shape)) * itemsize[dtype]:
                raise ValueError(f"{name}: {arr.nbytes} bytes for shape {shape} {dtype}")
            fh.write(arr.tobytes() if arr.nbytes < 1 << 20 else memoryview(arr).cast("B"))
    return path


def olmo2_shapes(hidden: int = 2048, layers: int = 16, intermediate: int = 8192, vocab: int = 100352,
                 dtype: str = "BF16") -> tuple[dict, list[tuple[str, str, tuple[int, ...]]]]:
    """(config.json dict, tensor specs) of an OLMo-2 model (defaults: OLMo-2-0425-1B, 1.48B parameters)."""
    cfg = {"model_type": "olmo2", "architectures": ["Olmo2ForCausalLM"], "hidden_size": hidden,
           "num_hidden_layers": layers, "intermediate_size": intermediate, "num_attention_heads": hidden // 128,
           "num_key_value_heads": hidden // 128, "vocab_size": vocab, "torch_dtype": "bfloat16"}
    specs = [("model.embed_tokens.weight", dtype, (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        specs += [(p + "self_attn.q_proj.weight", dtype, (hidden, hidden)),
                  (p + "self_attn.k_proj.weight", dtype, (hidden, hidden)),
                  (p + "self_attn.v_proj.weight", dtype, (hidden, hidden)),
                  (p + "self_attn.o_proj.weight", dtype, (hidden, hidden)),
                  (p + "self_attn.q_norm.weight", dtype, (hidden,)),
                  (p + "self_attn.k_norm.weight", dtype, (hidden,)),
                  (p + "mlp.gate_proj.weight", dtype, (intermediate, hidden)),
                  (p + "mlp.up_proj.weight", dtype, (intermediate, hidden)),
                  (p + "mlp.down_proj.weight", dtype, (hidden, intermediate)),
                  (p + "post_attention_layernorm.weight", dtype, (hidden,)),
                  (p + "post_feedforward_layernorm.weight", dtype, (hidden,))]
    specs += [("model.norm.weight", dtype, (hidden,)), ("lm_head.weight", dtype, (vocab, hidden))]
    return cfg, specs


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """fp32 → bf16 bits with round-to-nearest-even (what torch's ``.bfloat16()`` does), as uint16."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
