"""Shared fixtures. The test-size micro-world is built once per session and shared by every test that needs it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = REPO.parent / "shared" / "data" / "benchmarks"


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(f"real benchmark files not found at {SHARED_BENCHMARKS} (../shared beside the checkout)")
    return SHARED_BENCHMARKS


@pytest.fixture(scope="session")
def test_config():
    from scalpel import config

    return config.load(None, ["microworld.size=test"]).microworld


@pytest.fixture(scope="session")
def test_world(tmp_path_factory, test_config):
    """The test-size micro-world (tasks + tokenizer + pretrained tiny OLMo-2), built once per session."""
    from scalpel.microworld import build

    return build(test_config, tmp_path_factory.mktemp("mw") / "test-world", progress=False, log=lambda *_: None)


@pytest.fixture(scope="module")
def grader():
    """The shared maths grader (``scalpel.grading.default_grader()``: the accuracy reward and the evaluation's maths
    scores use it), workers started, with a 1 s per-item timeout for the module's tests."""
    from scalpel import grading

    g = grading.default_grader()
    saved, g.timeout = g.timeout, 1.0
    g.warm_up()
    yield g
    g.timeout = saved


# ---------------------------------------------------------------------------------------------------------------
# Fault-suite counters: tests/faults report what they exercised; printed at the end of the run.
# ---------------------------------------------------------------------------------------------------------------

FAULT_COUNTS: dict[str, int] = {}


@pytest.fixture(scope="session")
def tally():
    def add(kind: str, n: int = 1) -> None:
        FAULT_COUNTS[kind] = FAULT_COUNTS.get(kind, 0) + n

    return add


def pytest_terminal_summary(terminalreporter):
    if FAULT_COUNTS:
        terminalreporter.section("fault suite")
        for kind, n in sorted(FAULT_COUNTS.items()):
            terminalreporter.write_line(f"{kind}: {n}")
