"""kill -9 of `scalpel study` at a random moment, then a rerun: finishes without redoing finished jobs, and every
result equals the uninterrupted run's (weights bit for bit, evaluation rows, KL, weight tables, claims).

Both invocations run with the network blocked (a ``sitecustomize`` that refuses and records every TCP/UDP connection
and name lookup, in every process including the study's workers) and ``HF_HUB_OFFLINE=1``: together they are a full
test-size study, and it must not attempt a single connection."""

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


BLOCKER = """
import json, os, socket
_LOG = os.environ["SCALPEL_NET_LOG"]
def _record(what):
    with open(_LOG, "a") as fh:
        fh.write(json.dumps([os.getpid(), what]) + "\\n")
_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _record(f"connect {address!r}")
        raise OSError("network blocked by scalpel's offline test")
    return _connect(self, address)
def getaddrinfo(host, *a, **k):
    _record(f"getaddrinfo {host!r}")
    raise socket.gaierror("network blocked by scalpel's offline test")
socket.socket.connect = connect
socket.socket.connect_ex = lambda self, address: connect(self, address)
socket.getaddrinfo = getaddrinfo
"""


def offline_env(tmp_path: Path) -> tuple[dict, Path]:
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "net.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "SCALPEL_NET_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return env, log


def test_the_network_blocker_blocks(tmp_path):
    env, log = offline_env(tmp_path)
    p = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('huggingface.co', 443))"],
                       env=env, capture_output=True, text=True)
    assert p.returncode != 0 and "blocked" in p.stderr and "huggingface.co" in log.read_text()


def test_kill_9_then_rerun_equals_an_uninterrupted_study(finished_study, study_file, tmp_path, tally):
    reference = json.loads((finished_study / "index.json").read_text())["timings"]["phases"]["jobs (wall)"]
    seed = int(os.environ.get("SCALPEL_KILL_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)
    delay = random.Random(seed).uniform(0.0, 0.8 * reference)
    out = tmp_path / "killed"
    env, net_log = offline_env(tmp_path)
    cmd = [sys.executable, "-m", "scalpel.cli", "study", str(study_file), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while proc.poll() is None and not (out / "config.json").is_file():  # the study has begun: its config recorded
        time.sleep(0.02)
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert running and not (out / "index.json").exists(), \
        f"kill seed {seed}: the study ended before the kill ({delay:.1f} s after it began): no kill was tested"
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / ".done").glob("*.json")} \
        if (out / ".done").is_dir() else {}
    print(f"kill seed {seed} (SCALPEL_KILL_SEED): killed {delay:.1f} s after the study began (reference jobs took "
          f"{reference:.0f} s) with {len(done_before)} jobs done")
    time.sleep(1.0)  # workers die with the study (PR_SET_PDEATHSIG); give the kernel a moment
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    if done_before:
        assert f"resuming: {len(done_before)} of" in rerun.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (out / ".done").glob("*.json")}
    assert {k: after[k] for k in done_before} == done_before, "a finished job was redone"
    assert results(out) == results(finished_study)
    assert not net_log.exists(), f"connection attempts while offline: {net_log.read_text()[:2000]}"
    tally("kill points survived (study)")
