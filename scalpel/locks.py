"""An exclusive lock on a file, held for a ``with`` block: two processes never write one directory at once.

``flock`` locks belong to the open file, so the kernel releases them when the holder dies (kill -9 included): a
stale lock file on disk never blocks the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(path: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its parents) for the block. ``wait=False``: raise
    ``BlockingIOError`` at once when another process holds it, instead of waiting for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
