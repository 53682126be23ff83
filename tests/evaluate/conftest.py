"""Fixtures for the evaluation tests: the session's test-size micro-world (root conftest), its model loaded once,
and a "scalpel checkpoint" whose chat template carries the training system prompt, as the training issue saves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)  # shared 2-core machine


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def mw_model(test_world):
    """(model, tokenizer) of the test world's base model, loaded once."""
    from transformers import AutoModelForCausalLM

    from scalpel.evaluate.backends import load_tokenizer

    tok = load_tokenizer(test_world.model_dir)
    model = AutoModelForCausalLM.from_pretrained(test_world.model_dir, use_safetensors=True)
    return model, tok


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory, test_world) -> Path:
    """A checkpoint as training saves it: the world's model with chat_template(default_system=SYSTEM_PROMPT)."""
    from transformers import AutoTokenizer

    from scalpel.data.prompts import chat_template

    out = tmp_path_factory.mktemp("ckpt") / "checkpoint-10"
    shutil.copytree(test_world.model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = chat_template(default_system=test_world.system_prompt)
    tok.save_pretrained(out)
    return out
