"""Checkpoints of an arm: the schedule, the manifest, atomic writes, and finding where to resume.

Layout of one arm run (``RUN/<arm>/seed-<seed>/``)::

    checkpoint-0/        the starting weights (no optimizer state), so every series starts at the base
    checkpoint-<step>/   model.safetensors + config.json, tokenizer (its chat template renders the study's system
                         prompt when a conversation has none), trainer_state.json, manifest.json, and — in the
                         latest checkpoint only, unless train.keep_optimizer_state is 'all' — Trainer's resume
                         state (optimizer.pt, scheduler.pt, rng_state*.pth)
    log.jsonl            one line per logged step (loss, rewards, grad norm, lr, step time)
    health.jsonl         training-health events with the offending completions
    arm.json             written when the arm finishes: summary metrics and the list of checkpoints

Atomicity: a checkpoint is written into ``.staging/checkpoint-<step>/``, the manifest last, then renamed into place
(``os.replace`` of a directory is atomic on POSIX). A crash leaves at most a ``.staging`` directory, which the next
run deletes; a ``checkpoint-*`` directory with a manifest is always complete.

Schedule: ``checkpoints: N`` gives steps ``round(i * T / N)`` for i = 1..N (the N-th is the final step T), plus
checkpoint-0: N + 1 checkpoints, evenly spaced over the whole run.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from scalpel import atomic
from scalpel.provenance import git_commit, library_versions

FORMAT = "scalpel-checkpoint/1"
MANIFEST = "manifest.json"
STAGING = ".staging"


def schedule(total_steps: int, n: int) -> list[int]:
    """Steps to checkpoint after (0 = the starting weights): 0 and N evenly spaced steps ending at the final one."""
    if total_steps < 1 or n < 1:
        raise ValueError(f"total_steps ({total_steps}) and n ({n}) must be >= 1")
    steps = sorted({max(1, round(i * total_steps / n)) for i in range(1, n + 1)})
    return [0] + steps


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"checkpoint-{step}"


def complete_checkpoints(run_dir: Path) -> dict[int, Path]:
    """step -> directory of every complete checkpoint (one with a manifest) under ``run_dir``."""
    found = {}
    for d in Path(run_dir).glob("checkpoint-*"):
        suffix = d.name.removeprefix("checkpoint-")
        if d.is_dir() and suffix.isdigit() and (d / MANIFEST).is_file():
            found[int(suffix)] = d
    return dict(sorted(found.items()))


RESUME_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")


def resumable(ckpt: Path) -> bool:
    """Does a complete checkpoint carry what Trainer needs to resume (trainer state + optimizer state)?"""
    ckpt = Path(ckpt)
    return (ckpt / "trainer_state.json").is_file() and (
        (ckpt / "optimizer.pt").is_file() or any(ckpt.glob("global_step*")))  # the latter: DeepSpeed


def prune_resume_state(run_dir: Path, keep: int) -> None:
    """Delete optimizer/scheduler/RNG state from every complete checkpoint but ``keep`` (called only after ``keep``
    is complete, so there is always one resumable checkpoint). A 7B model's Adam state is ~56 GB per checkpoint;
    evaluation and analyses need only the weights."""
    for step, d in complete_checkpoints(run_dir).items():
        if step == keep:
            continue
        for pattern in RESUME_FILES:
            for f in d.glob(pattern):
                f.unlink()
        for g in d.glob("global_step*"):
            shutil.rmtree(g, ignore_errors=True)


def read_manifest(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / MANIFEST).read_text())


def clear_staging(run_dir: Path) -> None:
    shutil.rmtree(Path(run_dir) / STAGING, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def finish(staged: Path, manifest: dict) -> Path:
    """Write the manifest last, sync, and rename a staged checkpoint into place; returns the final directory."""
    from scalpel.integrity import digests

    staged = Path(staged)
    manifest = {**manifest, "files": digests(staged)}  # verified before every later use (scalpel.integrity)
    for f in staged.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    atomic.write_json(staged / MANIFEST, manifest)
    final = staged.parent.parent / staged.name  # .staging/checkpoint-N -> checkpoint-N
    if final.exists():  # a complete checkpoint of this step already exists (rerun of a finished step)
        shutil.rmtree(final)
    os.replace(staged, final)
    _fsync_dir(final.parent)
    return final


def manifest(*, step: int, total_steps: int, questions: list[list[str]], run: dict) -> dict:
    """The manifest of one checkpoint. ``run`` holds what is fixed for the arm (config, seed, fingerprints, …)."""
    return {
        "format": FORMAT,
        "step": step,
        "total_steps": total_steps,
        "final": step == total_steps,
        "questions_seen": sum(len(q) for q in questions),
        "questions": questions,  # per optimizer step, the question ids every process together trained on
        **run,
        "git_commit": git_commit(),
        "versions": library_versions(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
