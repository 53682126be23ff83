"""End-to-end claims that need real processes: kill -9 + resume is bit-identical; 2 processes = 1 process.

Both are marked slow (they still run in CI). Tolerances are stated where they are used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from scalpel import config
from scalpel.train import checkpoints as C

REPO = Path(__file__).resolve().parents[2]
PY = Path(sys.executable)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


def env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all((x[k] == y[k]).all() for k in x)


def test_kill_9_mid_run_then_rerun_resumes_to_bit_identical_weights(test_world, quiet, tmp_path):
    """GRPO at the test size (sampling, so the RNG state matters too): a run killed with SIGKILL after its first
    checkpoint, then rerun with the same command, ends with exactly the weights of an uninterrupted run."""
    from scalpel.train.arms import run_arm

    overrides = [f"study.model={test_world.dir}", "study.train.steps=12", "study.train.checkpoints=6"]
    ref = run_arm(config.load(REPO / "recipes/microworld/smoke.yaml", overrides), "grpo", 1, tmp_path / "ref",
                  progress=False, log_fn=lambda *_: None)
    assert ref["checkpoints"][-1] == 12
    cmd = [str(PY), "-m", "scalpel.cli", "train", "recipes/microworld/smoke.yaml", "--arm", "grpo", "--seed", "1",
           "--out", str(tmp_path / "run"), "--quiet"] + [a for o in overrides for a in ("--set", o)]
    run_dir = tmp_path / "run" / "grpo" / "seed-1"
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while not (run_dir / "checkpoint-2" / C.MANIFEST).is_file():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = C.complete_checkpoints(run_dir)
    assert 12 not in done and not (run_dir / "arm.json").exists(), "the kill came too late to test anything"
    rerun = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    summary = json.loads((run_dir / "arm.json").read_text())
    assert summary["resumed_from"] == max(done) and summary["checkpoints"] == ref["checkpoints"]
    assert same_weights(tmp_path / "ref" / "grpo" / "seed-1" / "checkpoint-12", run_dir / "checkpoint-12")
    base = load_file(run_dir / "checkpoint-0" / "model.safetensors")
    final = load_file(run_dir / "checkpoint-12" / "model.safetensors")
    assert any(not (base[k] == final[k]).all() for k in base)  # GRPO really updated the model
    assert not (run_dir / C.STAGING).exists()


def test_two_processes_match_one_process(test_world, quiet, tmp_path):
    """accelerate launch --num_processes 2 (CPU, gloo) with the same global batch: identical question ids at every
    step for GRPO and SFT. SFT per-step loss and final weights agree with 1 process to float round-off: the same
    tokens are summed in a different order (two partial sums + DDP all-reduce instead of one sum), which moves a
    float32 loss by ~1e-7 relative; we allow 1e-5 relative on the loss and 1e-5 absolute on any weight after 4
    Adam steps. GRPO losses are not compared: each process samples its share of the rollouts from its own RNG
    stream, so the completions (not the questions) differ from a 1-process run by design."""
    from scalpel.train.arms import run_arm

    cfg = config.load(REPO / "recipes/microworld/smoke.yaml",
                      [f"study.model={test_world.dir}", "study.train.steps=4", "study.train.checkpoints=2"])
    for arm in ("sft", "grpo"):
        run_arm(cfg, arm, 1, tmp_path / "one", progress=False, log_fn=lambda *_: None)
    cmd = [str(PY), "-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/cpu_ddp.yaml",
           "--num_processes", "2", "tests/train/_two_processes.py", str(test_world.dir), str(tmp_path / "two"),
           "sft", "grpo"]
    res = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    for arm in ("sft", "grpo"):
        one = C.read_manifest(tmp_path / "one" / arm / "seed-1" / "checkpoint-4")
        two = C.read_manifest(tmp_path / "two" / arm / "seed-1" / "checkpoint-4")
        assert two["batch"]["processes"] == 2 and one["batch"]["processes"] == 1
        assert two["batch"]["global"] == one["batch"]["global"]
        assert two["questions"] == one["questions"] and two["data_fingerprint"] == one["data_fingerprint"]
    losses = {}
    for n in ("one", "two"):
        log = (tmp_path / n / "sft" / "seed-1" / "log.jsonl").read_text().splitlines()
        losses[n] = [json.loads(x)["loss"] for x in log if '"loss"' in x]
    assert len(losses["one"]) == len(losses["two"]) == 4
    assert losses["two"] == pytest.approx(losses["one"], rel=1e-5)
    a = load_file(tmp_path / "one" / "sft" / "seed-1" / "checkpoint-4" / "model.safetensors")
    b = load_file(tmp_path / "two" / "sft" / "seed-1" / "checkpoint-4" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5
