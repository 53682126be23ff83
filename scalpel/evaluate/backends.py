"""Generation backends behind one interface: ``backend.generate(prompt_ids, ...) -> list[Completion]``.

- ``hf``: transformers, batched (``scalpel.evaluate.generate``), CPU or GPU.
- ``vllm``: vLLM on a GPU node when it is installed (import guarded). Same token-id prompts, same stop string
  (kept in the output), same scoring; sampling is seeded per request.

Model directories are checked before anything is loaded: weights must be safetensors (pickle checkpoints are
never loaded: ``use_safetensors=True``), a tokenizer must be there, and ``trust_remote_code`` is off unless asked.
"""

from __future__ import annotations

from pathlib import Path

from scalpel.errors import UserError
from scalpel.evaluate.generate import Completion, generate
from scalpel.hub import is_hub_id

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "tf_model.h5")


def check_model_dir(model: str | Path) -> None:
    """Fail before any generation when ``model`` cannot be evaluated; messages name the path and the fix."""
    if is_hub_id(model):
        return  # loaded by id (needs the hub); errors surface at load time
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"model directory {path} does not exist (pass --model DIR: a saved HF model dir)")
    if not path.is_dir():
        raise UserError(f"--model {path} is a file; pass the directory that holds config.json and the weights")
    if not (path / "config.json").is_file():
        hint = " (this looks like a micro-world: its model is in model/)" if (path / "model").is_dir() else ""
        raise UserError(f"model directory {path} has no config.json{hint}")
    weights = list(path.glob("*.safetensors")) + list(path.glob("*.safetensors.index.json"))
    if not weights:
        pickles = [p.name for p in path.iterdir() if p.name in PICKLE_WEIGHTS or p.suffix in (".bin", ".pt", ".pth")]
        if pickles:
            raise UserError(f"model directory {path} has only pickle weights ({', '.join(sorted(pickles))}); scalpel "
                            "loads safetensors only. Convert once with model.save_pretrained(dir, "
                            "safe_serialization=True) in a trusted environment.")
        raise UserError(f"model directory {path} has no weights (expected model.safetensors or "
                        "model.safetensors.index.json); was the checkpoint saved completely?")
    from scalpel.integrity import verify

    verify(path)  # damaged / truncated / tampered weights, missing shard or tokenizer: a clear error, never loaded


def load_tokenizer(model: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model), trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise UserError(f"cannot load the tokenizer of {model}: {exc}") from exc
    if not getattr(tok, "chat_template", None):
        raise UserError(f"the tokenizer of {model} has no chat template; scalpel evaluates with the model's own "
                        "template (save it with the checkpoint)")
    return tok


class HFBackend:
    name = "hf"

    def __init__(self, model: str | Path, tokenizer, *, dtype: str = "auto", device: str | None = None,
                 batch_size: int = 32, trust_remote_code: bool = False, progress: bool = False):
        import torch
        from transformers import AutoModelForCausalLM

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                       "float16": torch.float16}[dtype]
        if device == "cpu" and dtype == "auto":
            torch_dtype = torch.float32
        try:
            self.model = AutoModelForCausalLM.from_pretrained(str(model), use_safetensors=True, dtype=torch_dtype,
                                                              trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise UserError(f"cannot load model {model}: {exc}") from exc
        self.model.to(device)
        self.tokenizer = tokenizer
        gc = self.model.generation_config
        gc.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        gc.eos_token_id = tokenizer.eos_token_id
        self.batch_size = batch_size
        self.progress = progress
        self.device = device

    def context_length(self) -> int | None:
        from scalpel.evaluate.generate import context_length

        return context_length(self.model)

    def generate(self, prompt_ids: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float,
                 seed: int, stop: list[str]) -> list[Completion]:
        return generate(self.model, self.tokenizer, prompt_ids, max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, seed=seed, batch_size=self.batch_size, stop=stop,
                        progress=self.progress)


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str | Path, tokenizer, *, dtype: str = "auto", trust_remote_code: bool = False,
                 gpu_memory_utilization: float = 0.85, **_):
        try:
            from vllm import LLM
        except ImportError as exc:
            raise UserError("--backend vllm needs vLLM on a GPU node (pip install 'scalpel[gpu]'); "
                            "use --backend hf otherwise") from exc
        self.llm = LLM(model=str(model), dtype=dtype, trust_remote_code=trust_remote_code,
                       load_format="safetensors", gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = tokenizer

    def context_length(self) -> int | None:
        return self.llm.llm_engine.model_config.max_model_len

    def generate(self, prompt_ids: list[list[int]], *, max_new_tokens: int, temperature: float, top_p: float,
                 seed: int, stop: list[str]) -> list[Completion]:
        from vllm import SamplingParams

        ctx = self.context_length()
        out: list[Completion | None] = [None] * len(prompt_ids)
        todo = []
        for i, ids in enumerate(prompt_ids):
            if ctx is not None and len(ids) >= ctx:
                out[i] = Completion("", 0, True, prompt_too_long=True)
            else:
                todo.append(i)
        reqs, params = [], []
        for i in todo:
            budget = max_new_tokens if ctx is None else max(1, min(max_new_tokens, ctx - len(prompt_ids[i])))
            reqs.append({"prompt_token_ids": list(prompt_ids[i])})
            params.append(SamplingParams(temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                         max_tokens=budget, seed=seed * 1_000_003 + i, stop=list(stop),
                                         include_stop_str_in_output=True))
        for i, res in zip(todo, self.llm.generate(reqs, params, use_tqdm=False)):
            o = res.outputs[0]
            out[i] = Completion(text=o.text, num_tokens=len(o.token_ids), truncated=o.finish_reason == "length")
        return out  # type: ignore[return-value]


def make_backend(name: str, model: str | Path, tokenizer, **kw):
    if name == "hf":
        return HFBackend(model, tokenizer, **kw)
    if name == "vllm":
        return VLLMBackend(model, tokenizer, **kw)
    raise UserError(f"unknown backend {name!r}: use hf or vllm")
