"""kill -9 of `scalpel study` at a random moment, then a rerun: finishes without redoing finished jobs, and every
result equals the uninterrupted run's (weights bit for bit, evaluation rows, KL, weight tables, claims)."""

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


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def results(out: Path) -> dict[str, str]:
    """Every result file that must not depend on being interrupted, by relative path -> content hash."""
    files = {}
    for pattern in ("runs/*/*/checkpoint-*/model.safetensors", "eval/**/samples.jsonl", "passk/**/samples.jsonl"):
        for p in out.glob(pattern):
            files[str(p.relative_to(out))] = digest(p)
    for p in out.glob("analysis/weights/*/*/weights.csv"):  # minus the checkpoint-path column
        with open(p, newline="") as fh:
            files[str(p.relative_to(out))] = json.dumps([{k: v for k, v in r.items() if k != "checkpoint"}
                                                         for r in csv.DictReader(fh)])
    for p in out.glob("analysis/kl/*/*/kl.json"):
        files[str(p.relative_to(out))] = json.dumps([{k: r[k] for k in ("step", "kl_forward", "kl_reverse")}
                                                     for r in json.loads(p.read_text())["results"]])
    claims = json.loads((out / "claims.json").read_text())
    files["claims"] = json.dumps([(c["id"], c["verdict"], [x["per_seed"] for x in c["components"]])
                                  for c in claims["claims"]], sort_keys=True)
    return files


def test_kill_9_then_rerun_equals_an_uninterrupted_study(finished_study, study_file, tmp_path):
    reference = json.loads((finished_study / "index.json").read_text())["timings"]["phases"]["jobs (wall)"]
    rng = random.Random(int(os.environ.get("SCALPEL_KILL_SEED", time.time_ns() % 10**6)))
    delay = rng.uniform(4.0, max(5.0, 0.8 * reference))
    out = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "scalpel.cli", "study", str(study_file), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / ".done").glob("*.json")} \
        if (out / ".done").is_dir() else {}
    print(f"killed after {delay:.1f} s (reference jobs took {reference:.0f} s) with {len(done_before)} jobs done")
    time.sleep(1.0)  # workers die with the study (PR_SET_PDEATHSIG); give the kernel a moment
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    if done_before:
        assert f"resuming: {len(done_before)} of" in rerun.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / ".done").glob("*.json")}
    assert {k: after[k] for k in done_before} == done_before, "a finished job was redone"
    assert results(out) == results(finished_study)
