"""Crash-resume harness: SIGKILL training, evaluation and the analyses (3 + 3) at >= 5 random moments each
(rerunning the same command after every kill), then let the command finish and compare with an uninterrupted run:
identical weights, no missing or duplicated result rows, no half-written file taken as complete.

Kill moments are drawn from a seeded RNG (``SCALPEL_KILL_SEED``, printed) and counted from the moment the command
begins (after interpreter start-up: a marker file touched just before ``scalpel.cli.main``), up to the uninterrupted
run's time from that moment to its end. A kill lands mid-work when the command is still running at that moment;
one that comes after the command finished is a rerun of a finished command (which must then change nothing) and is
not counted as a kill survived. Every command must be killed mid-work at least once."""

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


# Runs the ``scalpel`` command like ``python -m scalpel.cli``, but first touches a marker file: the moment the
# interpreter has started and the command is about to run, from which kill delays are counted.
LAUNCH = "import sys; from pathlib import Path; from scalpel.cli import main; Path(sys.argv[1]).touch(); " \
         "sys.exit(main(sys.argv[2:]))"


def launch(args: list[str], marker: Path, **kw) -> subprocess.Popen:
    marker.unlink(missing_ok=True)
    return subprocess.Popen([sys.executable, "-c", LAUNCH, str(marker), *args], cwd=REPO, env=env(), **kw)


def started(proc: subprocess.Popen, marker: Path) -> bool:
    """Wait until ``proc``'s command has begun (its marker exists); False if it exits first."""
    while proc.poll() is None:
        if marker.exists():
            return True
        time.sleep(0.01)
    return marker.exists()


def run(args: list[str], marker: Path) -> float:
    """Run ``scalpel ARGS`` to the end; returns its working time: seconds from its start (the marker) to its end."""
    proc = launch(args, marker, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert started(proc, marker), "the command ended before it began"
    t0 = time.monotonic()
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-3000:]
    return time.monotonic() - t0


def kill_and_rerun(args: list[str], marker: Path, work: float, rng: random.Random, kills: int = KILLS) -> list[str]:
    """Start ``scalpel ARGS`` and SIGKILL it a random time after it began, ``kills`` times; then run it to the end.
    Returns each kill as ``"<delay>s"`` when it landed mid-work, ``"<delay>s (finished)"`` when it came too late."""
    shown = []
    for _ in range(kills):
        delay = rng.uniform(0.0, work)
        proc = launch(args, marker, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        landed = started(proc, marker)
        if landed:
            time.sleep(delay)
            landed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        shown.append(f"{delay:.2f}s" + ("" if landed else " (finished)"))
    run(args, marker)
    return shown


def mid_work(kills: list[str]) -> int:
    """How many kills landed mid-work; at least one must have, or the test proved nothing about kills."""
    n = sum(not k.endswith("(finished)") for k in kills)
    assert n >= 1, f"no kill landed while the command was working: {kills}"
    return n


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_survives_kills(test_world, tmp_path, tally):
    rng = random.Random(SEED)
    args = ["recipes/microworld/smoke.yaml", "--arm", "sft", "--seed", "1", "--quiet", "--set",
            f"study.model={test_world.dir}", "--set", "study.train.steps=12", "--set", "study.train.checkpoints=6"]
    base, marker = ["train", *args], tmp_path / "started"
    work = run(base + ["--out", str(tmp_path / "ref")], marker)
    kills = kill_and_rerun(base + ["--out", str(tmp_path / "run")], marker, work, rng)
    print(f"training: kill seed {SEED}, kills {kills} after the command began (uninterrupted: {work:.1f} s of work)")
    ref, got = tmp_path / "ref/sft/seed-1", tmp_path / "run/sft/seed-1"
    steps = sorted(p.name for p in ref.glob("checkpoint-*"))
    assert steps == sorted(p.name for p in got.glob("checkpoint-*"))
    for s in steps:
        assert sha(ref / s / "model.safetensors") == sha(got / s / "model.safetensors"), s
    log = [e["step"] for e in map(json.loads, (got / "log.jsonl").read_text().splitlines()) if "loss" in e]
    assert log == sorted(set(log)) == list(range(1, 13)), "log.jsonl must hold each step exactly once"
    assert not list(got.glob(".staging/*"))
    tally("kill points survived (training)", mid_work(kills))


def eval_rows(out: Path) -> dict[str, list]:
    rows = {}
    for f in sorted(out.glob("*/samples.jsonl")):
        rows[f.parent.name] = [(r["item_id"], r["sample"], r["completion"], r["correct"])
                               for r in map(json.loads, f.read_text().splitlines())]
    return rows


def test_evaluation_survives_kills(test_world, tmp_path, tally):
    rng = random.Random(SEED + 1)
    base = ["eval", "--model", str(test_world.model_dir), "--suite", "microworld", "--limit", "6", "--samples", "2",
            "--quiet", "--threads", "1"]
    marker = tmp_path / "started"
    work = run(base + ["--out", str(tmp_path / "ref")], marker)
    kills = kill_and_rerun(base + ["--out", str(tmp_path / "run")], marker, work, rng)
    print(f"evaluation: kill seed {SEED + 1}, kills {kills} after the command began (uninterrupted: {work:.1f} s of "
          "work)")
    ref, got = eval_rows(tmp_path / "ref"), eval_rows(tmp_path / "run")
    assert set(got) == set(ref) and len(ref) == 5
    for bench, rows in ref.items():
        assert got[bench] == rows, bench  # same rows, none missing, none duplicated
        assert len({(r[0], r[1]) for r in rows}) == len(rows)
    for f in (tmp_path / "run").rglob("summary.json"):
        json.loads(f.read_text())  # every summary is whole
    tally("kill points survived (evaluation)", mid_work(kills))


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
        base = ["analyze", kind, "--base", str(test_world.model_dir), *cks, *extra, "--quiet", "--threads", "1"]
        ref, got, marker = tmp_path / f"ref-{kind}", tmp_path / f"run-{kind}", tmp_path / "started"
        work = run(base + ["--out", str(ref)], marker)
        kills = kill_and_rerun(base + ["--out", str(got)], marker, work, rng, 3)  # 3 + 3 over the two analyses
        print(f"analyze {kind}: kill seed {SEED + 2}, kills {kills} after the command began (uninterrupted: "
              f"{work:.1f} s of work)")
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
        tally(f"kill points survived (analyze {kind})", mid_work(kills))
