"""Atomic file writes: a temporary sibling, fsync, rename. A reader (or a rerun after kill -9) sees the old file or
the whole new one, never half a file; leftover ``.NAME.tmp-PID`` siblings are ignored by every reader."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data, indent: int | None = 1) -> Path:
    return write_text(path, json.dumps(data, indent=indent, ensure_ascii=False))


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of an append-only JSON-lines log; a line torn by a kill mid-write (always the last) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def truncate_jsonl(path: str | Path, upto_step: int) -> None:
    """Keep the entries of a step log up to ``upto_step`` (resuming from that checkpoint redoes the rest)."""
    entries = [e for e in read_jsonl(path) if e.get("step", 0) <= upto_step]
    write_text(path, "".join(json.dumps(e) + "\n" for e in entries))
