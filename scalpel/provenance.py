"""What produced a result: the scalpel checkout's commit and the versions of the libraries that decide the bits.

Recorded in every checkpoint's manifest and in a study's ``index.json``.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

PACKAGES = ("scalpel", "torch", "transformers", "trl", "accelerate", "datasets", "tokenizers", "safetensors",
            "math-verify", "deepspeed", "vllm", "liger-kernel")


@functools.cache
def git_commit() -> str | None:
    """The scalpel checkout's commit (with '+dirty' if it has uncommitted changes), or None outside git."""
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.cache
def library_versions() -> dict[str, str]:
    """Python's and each installed package's version (packages not installed are left out)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out
