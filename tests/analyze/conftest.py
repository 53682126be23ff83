"""Fixtures of the analysis tests: tiny random OLMo-2 models with planted truth, built once per session.

The test-size micro-world is the session fixture ``test_world`` of ``tests/conftest.py`` (built once, shared with
the other test packages); ``world_model`` below only adds a skip when that build is not available.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(dir, model, tokenizer) of a random fp32 tiny Olmo2ForCausalLM with a word-level tokenizer."""
    from scalpel.analyze.synthetic import tiny_model

    d = tmp_path_factory.mktemp("tiny") / "base"
    model, tok = tiny_model(d, seed=0, layers=3)
    return d, model, tok


def save_variant(model, tok, out: Path, edit=None):
    """Save a copy of ``model`` (optionally changed in place by ``edit(copy)``) with the tokenizer."""
    m = copy.deepcopy(model)
    if edit is not None:
        with torch.no_grad():
            edit(m)
    out.mkdir(parents=True, exist_ok=True)
    m.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out
