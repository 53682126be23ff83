"""Claim (issue 16, item 1): the CPU and the GPU dependency sets resolve for every Python version the package
claims, and the check fails when a set stops resolving. Resolution only (uv, no install); skipped with the reason
when the package index is unreachable."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("scalpel_resolve", REPO / "requirements" / "resolve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


resolve = _load()


@pytest.fixture(scope="module")
def online():
    try:
        resolve.uv_binary()
    except SystemExit:
        pytest.fail("uv is missing: it is in the `test` extra (make install)")
    if not resolve.index_reachable():
        pytest.skip("package index unreachable: the dependency sets cannot be resolved here")


def test_claimed_pythons_follow_requires_python():
    assert resolve.claimed_pythons(">=3.11,<3.15") == ["3.11", "3.12", "3.13", "3.14"]
    assert resolve.claimed_pythons(">=3.11,<3.12") == ["3.11"]
    with pytest.raises(ValueError, match="admits no Python"):
        resolve.claimed_pythons(">=4")


def test_pins_are_read_with_markers_and_extras():
    text = "numpy==2.3.5 ; python_full_version < '3.13'\n    # via scalpel\nmath-verify[antlr4-13-2]==0.9.0\n-e .\n"
    assert resolve.parse_pins(text) == {"numpy": "2.3.5", "math-verify": "0.9.0"}


def test_both_sets_resolve_for_every_claimed_python(online):
    lines: list[str] = []
    ok = resolve.check(log=lines.append)
    assert ok, "\n".join(lines)
    claimed = resolve.claimed_pythons(">=3.11,<3.15")
    assert len(lines) == 2 * len(claimed) and all("resolves" in line for line in lines)
    gpu = [line for line in lines if line.startswith("gpu")]
    assert all("vllm==0.31.0" in line and "torch==2.13.0" in line for line in gpu), gpu


def _project_copy(tmp_path: Path, gpu_extra: str | None = None) -> Path:
    text = (REPO / "pyproject.toml").read_text()
    if gpu_extra is not None:
        text, n = re.subn(r"^gpu = \[.*\]$", gpu_extra, text, flags=re.M)
        assert n == 1
    (tmp_path / "pyproject.toml").write_text(text)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    return tmp_path


def test_check_fails_when_the_gpu_set_stops_resolving(online, tmp_path):
    """vLLM 0.33 pins torch 2.14.0 (the set pinned before issue 16): the check must say it does not resolve."""
    project = _project_copy(tmp_path, 'gpu = ["vllm==0.33.0"]')
    (no_lock := tmp_path / "empty.txt").write_text("")
    with pytest.raises(resolve.ResolutionFailed, match=r"vllm==0\.33\.0 depends on torch==2\.14\.0"):
        resolve.check_gpu_set(project, "3.11", no_lock)


def test_check_fails_when_the_lock_misses_a_package(online, tmp_path):
    lock = tmp_path / "gpu.txt"
    lock.write_text("".join(line for line in resolve.GPU_LOCK.read_text().splitlines(keepends=True)
                            if not line.startswith("vllm==")))
    with pytest.raises(resolve.ResolutionFailed, match="does not pin vllm"):
        resolve.check_gpu_set(REPO, "3.11", lock)
