"""Shared fixtures. The test-size micro-world is built once per session and shared by every test that needs it."""

from __future__ import annotations

import hashlib
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


# ---------------------------------------------------------------------------------------------------------------
# A real Hugging Face hub cache, laid out offline by huggingface_hub's own functions (no network)
# ---------------------------------------------------------------------------------------------------------------


HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _populate_cache(cache: Path, repo_id: str, model_dir: Path, commit: str = HUB_COMMIT,
                    drop: str | None = None) -> Path:
    """Put ``model_dir`` into the hub cache at ``cache`` as ``repo_id`` revision main (blobs, snapshot symlinks,
    refs/main and the tree listing), as ``hf_hub_download`` would; ``drop``: a file listed but not downloaded."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache
    from huggingface_hub.file_download import (
        _cache_commit_hash_for_specific_revision,
        _create_symlink,
        repo_folder_name,
    )

    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    entries = {}
    for f in sorted(p for p in model_dir.iterdir() if p.is_file()):
        data = f.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        entries[f.name] = TreeCacheEntry(size=len(data), blob_id=hashlib.sha1(data).hexdigest(), lfs_sha256=sha,
                                         lfs_size=len(data))
        if f.name == drop:
            continue
        blob = storage / "blobs" / sha
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (storage / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
        _create_symlink(str(blob), str(storage / "snapshots" / commit / f.name), new_blob=True)
    _cache_commit_hash_for_specific_revision(str(storage), "main", commit)
    write_tree_cache(str(storage), commit, entries)
    return storage / "snapshots" / commit


_populate_cache.commit = HUB_COMMIT


@pytest.fixture(scope="session")
def populate_cache():
    """``populate_cache(cache, repo_id, model_dir, drop=None) -> snapshot dir`` (its ``commit``: the revision)."""
    return _populate_cache


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub uses, offline, for the test."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


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
