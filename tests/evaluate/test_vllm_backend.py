"""Claim (issue 16, item 10): the vLLM evaluation backend's own logic, against a stand-in engine (vLLM needs a GPU):
a prompt that fills the context is answered as too long without reaching the engine; every other prompt's token
budget is clipped to the room its context leaves; each request carries its own seed (the same on a rerun, distinct
across prompts); stop strings are kept in the output; nucleus sampling is off at temperature 0; a completion cut
by the budget is marked truncated; results come back in the caller's order."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from scalpel.evaluate.backends import VLLMBackend, make_backend

CONTEXT = 10


@dataclass
class SamplingParams:
    """vLLM's SamplingParams, reduced to the fields the backend sets."""

    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    stop: list[str] = field(default_factory=list)
    include_stop_str_in_output: bool = False


class StandInLLM:
    """vLLM's ``LLM``: records what it was asked; answers each request with ``max_tokens`` tokens of text."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=CONTEXT))

    def generate(self, requests, params, use_tqdm=True):
        self.calls.append((requests, params))
        out = []
        for req, p in zip(requests, params):
            n = p.max_tokens if len(req["prompt_token_ids"]) != 3 else 1  # length-3 prompts stop early
            finish = "length" if n == p.max_tokens else "stop"
            text = f"p{len(req['prompt_token_ids'])}:" + "x" * n + ("</answer>" if finish == "stop" else "")
            out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text, token_ids=list(range(n)),
                                                                            finish_reason=finish)]))
        return out


@pytest.fixture()
def backend(monkeypatch) -> VLLMBackend:
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=StandInLLM, SamplingParams=SamplingParams))
    return make_backend("vllm", "/models/m", tokenizer=None, dtype="bfloat16", gpu_memory_utilization=0.5)


PROMPTS = [[1] * 4, [1] * CONTEXT, [1] * 3, [1] * 12, [1] * 9]


def generate(backend, **kw):
    args = dict(max_new_tokens=5, temperature=0.7, top_p=0.95, seed=3, stop=["</answer>"]) | kw
    return backend.generate(PROMPTS, **args)


def test_the_engine_is_built_for_safetensors_with_the_given_memory_share(backend):
    assert backend.llm.kwargs == {"model": "/models/m", "dtype": "bfloat16", "trust_remote_code": False,
                                  "load_format": "safetensors", "gpu_memory_utilization": 0.5}
    assert backend.context_length() == CONTEXT


def test_prompts_too_long_never_reach_the_engine(backend):
    out = generate(backend)
    (requests, _), = backend.llm.calls
    assert [len(r["prompt_token_ids"]) for r in requests] == [4, 3, 9]
    for i in (1, 3):  # CONTEXT and more tokens: no room for even one new token
        assert (out[i].text, out[i].num_tokens, out[i].truncated, out[i].prompt_too_long) == ("", 0, True, True)


def test_budget_is_clipped_to_the_room_the_context_leaves(backend):
    generate(backend)
    (_, params), = backend.llm.calls
    assert [p.max_tokens for p in params] == [5, 5, 1]  # 10 - 9 = 1 for the 9-token prompt


def test_each_request_has_its_own_reproducible_seed(backend):
    generate(backend)
    generate(backend)
    generate(backend, seed=4)
    first, again, other = ([p.seed for p in params] for _, params in backend.llm.calls)
    assert first == again and len(set(first)) == 3
    assert not set(first) & set(other)


def test_stop_strings_are_kept_and_truncation_is_reported(backend):
    out = generate(backend)
    (_, params), = backend.llm.calls
    assert all(p.stop == ["</answer>"] and p.include_stop_str_in_output for p in params)
    assert out[0].text == "p4:xxxxx" and out[0].truncated and out[0].num_tokens == 5
    assert out[2].text == "p3:x</answer>" and not out[2].truncated  # stopped: the stop string stays in the text
    assert out[4].text == "p9:x" and out[4].truncated  # in caller order


def test_nucleus_sampling_is_off_when_greedy(backend):
    generate(backend, temperature=0.0)
    (_, params), = backend.llm.calls
    assert all(p.temperature == 0.0 and p.top_p == 1.0 for p in params)
    generate(backend)
    assert all(p.top_p == 0.95 for p in backend.llm.calls[1][1])
