"""Crash-resume harness: SIGKILL training, evaluation and the analyses (3 + 3) at >= 5 random moments each (rerunning the same
command after every kill), then let the command finish and compare with an uninterrupted run: identical weights,
no missing or duplicated result rows, no half-written file taken as complete.

Kill moments are drawn from a seeded RNG (``SCALPEL_KILL_SEED``, printed) between the command's start-up and its
expected duration, so some kills land mid-work and some before it; a kill after the command finished counts as a
rerun of a finished command (which must then change nothing)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]
REPO = Path(__file__).resolve().parents[2]
KILLS = 5
SEED = int(os.environ.get("SCALPEL_KILL_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def run(cmd: list[str]) -> float:
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return time.monotonic() - t0


def kill_and_rerun(cmd: list[str], duration: float, rng: random.Random, kills: int = KILLS) -> list[float]:
    """Start ``cmd``, SIGKILL it after a random delay, ``kills`` times; then run it to completion."""
    delays = []
    for _ in range(kills):
        delay = rng.uniform(0.5, max(1.0, duration))
        proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        delays.append(round(delay, 2))
    run(cmd)
    return delays


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_survives_kills(test_world, tmp_path, tally):
    rng = random.Random(SEED)
    args = ["recipes/microworld/smoke.yaml", "--arm", "sft", "--seed", "1", "--quiet", "--set",
            f"study.model={test_world.dir}", "--set", "study.train.steps=12", "--set", "study.train.checkpoints=6"]
    base = [sys.executable, "-m", "scalpel.cli", "train", *args]
    duration = run(base + ["--out", str(tmp_path / "ref")])
    delays = kill_and_rerun(base + ["--out", str(tmp_path / "run")], duration, rng)
    print(f"training: kill seed {SEED}, kills after {delays} s (uninterrupted run {duration:.1f} s)")
    ref, got = tmp_path / "ref/sft/seed-1", tmp_path / "run/sft/seed-1"
    steps = sorted(p.name for p in ref.glob("checkpoint-*"))
    assert steps == sorted(p.name for p in got.glob("checkpoint-*"))
    for s in steps:
        assert sha(ref / s / "model.safetensors") == sha(got / s / "model.safetensors"), s
    log = [e["step"] for e in map(json.loads, (got / "log.jsonl").read_text().splitlines()) if "loss" in e]
    assert log == sorted(set(log)) == list(range(1, 13)), "log.jsonl must hold each step exactly once"
    assert not list(got.glob(".staging/*"))
    tally("kill points survived (training)", KILLS)


def eval_rows(out: Path) -> dict[str, list]:
    rows = {}
    for f in sorted(out.glob("*/samples.jsonl")):
        rows[f.parent.name] = [(r["item_id"], r["sample"], r["completion"], r["correct"])
                               for r in map(json.loads, f.read_text().splitlines())]
    return rows


def test_evaluation_survives_kills(test_world, tmp_path, tally):
    rng = random.Random(SEED + 1)
    base = [sys.executable, "-m", "scalpel.cli", "eval", "--model", str(test_world.model_dir), "--suite",
            "microworld", "--limit", "6", "--samples", "2", "--quiet", "--threads", "1"]
    duration = run(base + ["--out", str(tmp_path / "ref")])
    delays = kill_and_rerun(base + ["--out", str(tmp_path / "run")], duration, rng)
    print(f"evaluation: kill seed {SEED + 1}, kills after {delays} s (uninterrupted run {duration:.1f} s)")
    ref, got = eval_rows(tmp_path / "ref"), eval_rows(tmp_path / "run")
    assert set(got) == set(ref) and len(ref) == 5
    for bench, rows in ref.items():
        assert got[bench] == rows, bench  # same rows, none missing, none duplicated
        assert len({(r[0], r[1]) for r in rows}) == len(rows)
    for f in (tmp_path / "run").rglob("summary.json"):
        json.loads(f.read_text())  # every summary is whole
    tally("kill points survived (evaluation)", KILLS)


def test_analyses_survive_kills(test_world, tmp_path, tally):
    """Weights and KL of two checkpoints (the base perturbed), killed and rerun; outputs equal the reference and a
    kill never leaves a summary that looks complete over a partial table."""
    import shutil

    from safetensors.torch import load_file, save_file

    cks = []
    for i, scale in enumerate((1e-3, 3e-3), start=1):
        d = tmp_path / "run0" / f"checkpoint-{i}"
        shutil.copytree(test_world.model_dir, d)
        t = load_file(d / "model.safetensors")
        save_file({k: v + scale * (k.endswith("proj.weight")) for k, v in t.items()}, d / "model.safetensors",
                  metadata={"format": "pt"})
        cks.append(str(d))
    rng = random.Random(SEED + 2)
    for kind, extra in (("weights", []), ("kl", ["--data", str(test_world.dir), "--max-examples", "6"])):
        kills = 3  # 3 + 3 kill points over the two analyses
        base = [sys.executable, "-m", "scalpel.cli", "analyze", kind, "--base", str(test_world.model_dir), *cks,
                *extra, "--quiet", "--threads", "1"]
        duration = run(base + ["--out", str(tmp_path / f"ref-{kind}")])
        delays = kill_and_rerun(base + ["--out", str(tmp_path / f"run-{kind}")], duration, rng, kills)
        print(f"analyze {kind}: kill seed {SEED + 2}, kills after {delays} s (uninterrupted run {duration:.1f} s)")
        if kind == "weights":
            def table(d):
                with open(d / "weights.csv", newline="") as fh:
                    return [{k: v for k, v in r.items() if k != "checkpoint"} for r in csv.DictReader(fh)]
            assert table(tmp_path / "run-weights") == table(tmp_path / "ref-weights")
        else:
            def kl(d):
                return [(r["step"], r["kl_forward"], r["kl_reverse"]) for r in
                        json.loads((d / "kl.json").read_text())["results"]]
            assert kl(tmp_path / "run-kl") == kl(tmp_path / "ref-kl")
        tally(f"kill points survived (analyze {kind})", kills)
