"""A tiny complete study (test-size world, 5 arms x 2 seeds, a few steps) run once per session, shared by the tests
of the index, the claims, the report and resumption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml


def study_yaml(world_dir: Path) -> dict:
    return {
        "study": {
            "name": "t", "model": str(world_dir), "data": {"source": "microworld", "tiers": ["k12"]},
            "seeds": [0, 1], "workers": 2,
            "train": {"steps": 3, "global_batch": 4, "checkpoints": 3, "threads": 1, "max_length": 256,
                      "max_grad_norm": 1.0, "warmup_ratio": 0.0},
            "grpo": {"num_generations": 2, "max_completion_length": 16, "temperature": 1.0,
                     "rewards": {"accuracy": 1.0, "format": 0.1, "tag_count": 0.5}},
            "eval": {"checkpoints": 2, "limit": 4, "passk_samples": 2, "passk_limit": 3, "batch_size": 16},
            # the test-size base model knows no facts, so there is nothing to trace (tests/analyze cover tracing)
            "analysis": {"kl_max_examples": 4, "trace": False},
            "arms": [
                {"name": "grpo", "algorithm": "grpo", "lr": 1e-4},
                {"name": "sft", "algorithm": "sft", "lr": 1e-3},
                {"name": "sft-freeze-mlp", "algorithm": "sft", "lr": 1e-3, "freeze": {"freeze": ["mlp@1"]}},
                {"name": "sft-qk-only", "algorithm": "sft", "lr": 1e-3, "freeze": {"train_only": ["q_proj", "k_proj"]}},
                # read by claim C8 through its training rewards only, as in the demo: never evaluated
                {"name": "grpo-hard", "algorithm": "grpo", "lr": 1e-4, "tiers": ["olympiad"], "evaluate": False},
            ],
        }
    }


@pytest.fixture(scope="session")
def study_file(test_world, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("study-cfg") / "study.yaml"
    path.write_text(yaml.safe_dump(study_yaml(test_world.dir)))
    return path


@pytest.fixture(scope="session")
def finished_study(study_file, tmp_path_factory) -> Path:
    """The uninterrupted reference run of the tiny study (the study's own process: workers are real processes)."""
    from scalpel.cli import main

    out = tmp_path_factory.mktemp("study") / "t"
    assert main(["study", str(study_file), "--out", str(out)]) == 0
    return out


@pytest.fixture()
def index(finished_study) -> dict:
    return json.loads((finished_study / "index.json").read_text())
