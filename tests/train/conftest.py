"""Fixtures for the training tests: the smoke study on the session's test-size micro-world."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "recipes" / "microworld" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_cfg(test_world):
    """recipes/microworld/smoke.yaml pointed at the session's test world (no second build)."""
    from scalpel import config

    return config.load(SMOKE, [f"study.model={test_world.dir}"])


@pytest.fixture(scope="session")
def quiet():
    from scalpel.console import quiet_libraries

    quiet_libraries()


@pytest.fixture(scope="session")
def smoke_runs(smoke_cfg, quiet, tmp_path_factory):
    """Every arm of the smoke study, seed 1, trained once per session: {arm: summary}; runs under .out."""
    from scalpel.train.arms import run_arm

    out = tmp_path_factory.mktemp("smoke-runs")
    summaries = {a.name: run_arm(smoke_cfg, a.name, 1, out, progress=False, log_fn=lambda *_: None)
                 for a in smoke_cfg.study.arms}
    return out, summaries
