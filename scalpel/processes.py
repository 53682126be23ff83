"""Process lifetimes: a child that dies with its parent, and stopping a launched process tree politely.

Why: a killed study must leave nothing writing into its directory. Its workers, the ``accelerate launch`` they
start and the training processes under that launcher each ask Linux to signal them when their parent dies
(``PR_SET_PDEATHSIG``), so a ``kill -9`` anywhere up the chain takes the whole chain down. The launcher gets
SIGTERM rather than SIGKILL, because torch's elastic agent (under ``accelerate launch``) starts its workers in
sessions of their own and only stops them itself, on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

DIE_WITH_PARENT_ENV = "SCALPEL_DIE_WITH_PARENT"  # set for launched trainings: ``scalpel train`` honours it


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux; elsewhere a no-op); exit at once if
    the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; idempotent."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
