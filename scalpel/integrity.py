"""Is this checkpoint directory safe to use? Structure, completeness and (for scalpel's own) content digests.

Every consumer of a model directory — resuming training, evaluation, the analyses — calls ``verify`` before use,
so a truncated or bit-flipped safetensors file, a sharded checkpoint missing a shard, a manifest that disagrees with
its weights, or a directory without a tokenizer is reported with a clear error (or, when resuming, skipped with a
warning) instead of being silently loaded.

- Structure (any model dir): every safetensors file parses, its tensors lie inside the file, its size is exactly
  header + data (a file cut anywhere is caught), every shard the index names exists.
- Content (scalpel checkpoints): ``manifest.json`` records each weight file's size and SHA-256 when the checkpoint is
  written (``digests``); ``verify`` recomputes them, which is what catches a flipped bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scalpel import safetensors
from scalpel.errors import CheckpointError
from scalpel.safetensors import weight_files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class IntegrityError(CheckpointError):
    """A checkpoint directory that must not be used as it is."""


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def digests(path: str | Path) -> dict[str, dict]:
    """``{file name: {bytes, sha256}}`` of a directory's weight files (recorded in a checkpoint's manifest)."""
    return {f.name: {"bytes": f.stat().st_size, "sha256": sha256(f)} for f in weight_files(Path(path))}


def structure_problem(path: Path) -> str | None:
    """What is structurally wrong with the safetensors of ``path`` (None: nothing)."""
    try:
        files = safetensors.files(path)
        for f in files:
            tensors = safetensors.read_header(f)
            end = max((t.end for t in tensors.values()), default=None)
            if end is not None and end != f.stat().st_size:
                return f"{f}: the header promises {end} bytes, the file has {f.stat().st_size} (truncated or padded)"
    except (CheckpointError, OSError, KeyError, ValueError, TypeError) as exc:
        return str(exc)
    return None


def verify(path: str | Path, *, tokenizer: bool = True, content: bool = True) -> None:
    """Raise ``IntegrityError`` naming the problem and the fix, or return when ``path`` is usable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass a model directory containing "
                                "model.safetensors (or a sharded model.safetensors.index.json)")
    problem = structure_problem(path)
    if problem:
        raise IntegrityError(f"checkpoint {path} is damaged: {problem}. Re-create it (rerunning the arm resumes "
                             "from the last good checkpoint) or pass another directory.")
    if tokenizer and path.is_dir() and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise IntegrityError(f"checkpoint {path} has no tokenizer (tokenizer.json / tokenizer_config.json): its chat "
                             "template and system prompt would be lost; save the tokenizer with the model")
    manifest = path / "manifest.json" if path.is_dir() else None
    if not content or manifest is None or not manifest.is_file():
        return
    try:
        recorded = json.loads(manifest.read_text()).get("files")
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{manifest} is unreadable ({exc}); the checkpoint cannot be trusted") from None
    if not recorded:
        return  # written before digests were recorded: structure checks only
    actual = {f.name: f for f in weight_files(path)}
    for name, want in recorded.items():
        f = actual.get(name)
        if f is None:
            raise IntegrityError(f"{path}: {name}, listed in its manifest, is missing")
        if f.stat().st_size != want["bytes"] or sha256(f) != want["sha256"]:
            raise IntegrityError(f"{path}: {name} differs from what its manifest recorded (size or SHA-256): the "
                                 "file was changed or damaged after the checkpoint was written")
    extra = sorted(set(actual) - set(recorded))
    if extra:
        raise IntegrityError(f"{path}: weight file(s) {extra} are not in its manifest: the manifest does not "
                             "describe these weights")
