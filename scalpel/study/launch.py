"""A study's training job under ``accelerate launch``, with GRPO's vLLM server around it when the study asks.

Why: on a GPU node an arm trains data-parallel (DeepSpeed ZeRO-2 for the paper) and GRPO's rollouts come from a
vLLM server on GPUs of its own; the study's worker process can do neither itself. In ``study.launch.mode:
accelerate`` the worker runs ``scalpel train`` (the one training entry, so there is one training code path) under
``accelerate launch`` on the study's resolved config ``OUT/config.json``, writing into ``OUT/runs/<arm>/seed-<s>/``
exactly as an in-process job would; its output goes to the job's log. The exact command, environment included::

    CUDA_VISIBLE_DEVICES=<launch.gpus> OMP_NUM_THREADS=<train.threads> SCALPEL_DIE_WITH_PARENT=1 \\
      python -m accelerate.commands.launch --config_file <launch.accelerate_config> --num_processes <N> \\
      [--main_process_port <a free port>] -m scalpel.cli train OUT/config.json --arm A --seed S --out OUT/runs \\
      [--traced-layers L,...]

For a GRPO arm with ``grpo.generation: vllm-server`` the job first starts ``trl vllm-serve`` on
``launch.vllm_server.gpus`` (``scalpel.train.vllm_server``: health wait with a timeout and a clear error), and stops
it when the training ends, fails or is interrupted. A non-zero exit is ``LaunchFailed`` naming the log. Every
launched process dies with its parent (``scalpel.processes``), so killing the study stops the whole tree.

Runs from elsewhere: a complete run already in ``OUT/runs/<arm>/seed-<s>/`` (``arm.json`` and the final
checkpoint; e.g. trained by a direct ``accelerate launch ... scalpel.cli train STUDY --out OUT/runs``) is used as
it is, and an arm with ``trained: DIR`` adopts ``DIR/seed-<s>/`` (checked against the study's arm fingerprint)
through a symlink there, so evaluation, analyses and the report read it like any other run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scalpel.config import ArmConfig, Config, ConfigError, StudyConfig
from scalpel.processes import DIE_WITH_PARENT_ENV, die_with_parent, stop

FREE_PORT = "<free port>"  # shown by --plan; the launch picks one (several CPU jobs may run side by side)


class LaunchFailed(RuntimeError):
    """A launched training exited with an error (the message names the command and the job's log)."""


@dataclass(frozen=True)
class Launch:
    """A command and the environment variables it adds."""

    argv: list[str]
    env: dict[str, str]

    def shell(self) -> str:
        """One line a user can paste (``python`` = the interpreter running scalpel)."""
        argv = ["python" if a == sys.executable else a for a in self.argv]
        words = [a if a == FREE_PORT else shlex.quote(a) for a in argv]
        return " ".join([f"{k}={shlex.quote(v)}" for k, v in self.env.items()] + words)


def _gpus(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def train_launch(study: StudyConfig, out: Path, arm: str, seed: int, traced_layers: list[int] | None = None,
                 port: int | str = FREE_PORT) -> Launch:
    """The ``accelerate launch`` of ``scalpel train`` for one (arm, seed) of a study in ``out``."""
    lc = study.launch
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(lc.accelerate_config),
            "--num_processes", str(lc.num_processes)]
    if lc.num_processes > 1:
        argv += ["--main_process_port", str(port)]
    argv += ["-m", "scalpel.cli", "train", str(out / "config.json"), "--arm", arm, "--seed", str(seed),
             "--out", str(out / "runs")]
    if traced_layers is not None:
        argv += ["--traced-layers", ",".join(map(str, traced_layers))]
    env = {"CUDA_VISIBLE_DEVICES": _gpus(lc.gpus)} if lc.gpus else {}
    env.update(OMP_NUM_THREADS=str(study.train.threads), **{DIE_WITH_PARENT_ENV: "1"})
    return Launch(argv, env)


def server_launch(study: StudyConfig, arm: ArmConfig, model: str) -> Launch | None:
    """The ``trl vllm-serve`` of a GRPO arm in server mode (None for any other arm)."""
    from scalpel.train.vllm_server import trl_vllm_serve_command

    if not arm.rollouts or study.grpo.generation != "vllm-server":
        return None
    g, gpus = study.grpo, study.launch.vllm_server.gpus
    argv = trl_vllm_serve_command(model, port=g.vllm_server_port, gpu_memory_utilization=g.vllm_gpu_memory_utilization,
                                  tensor_parallel_size=len(gpus))
    return Launch(argv, {"CUDA_VISIBLE_DEVICES": _gpus(gpus)})


def check_launch(study: StudyConfig) -> None:
    """Before any compute: the accelerate config exists and the GPUs the launch names are there."""
    lc = study.launch
    if lc.mode != "accelerate":
        return
    if not Path(lc.accelerate_config).expanduser().is_file():
        raise ConfigError(f"study.launch.accelerate_config: {lc.accelerate_config} does not exist (relative paths are "
                          f"read from {Path.cwd()}; the recipes are in recipes/accelerate/)")
    wanted = sorted(set(lc.gpus) | set(lc.vllm_server.gpus))
    if wanted:
        import torch

        have = torch.cuda.device_count()
        if max(wanted) >= have:
            raise ConfigError(f"study.launch: GPUs {wanted} are asked for (launch.gpus, launch.vllm_server.gpus), but "
                              f"this machine has {have} CUDA device(s); on CPU set study.launch.gpus: [] and "
                              f"study.grpo.generation: hf")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def complete_run(rd: Path, total_steps: int) -> dict | None:
    """The summary of a finished run in ``rd`` (``arm.json`` and the final checkpoint), else None."""
    from scalpel.train import checkpoints as C

    summary = rd / "arm.json"
    if summary.is_file() and total_steps in C.complete_checkpoints(rd):
        return json.loads(summary.read_text())
    return None


def adopt(cfg: Config, arm: ArmConfig, seed: int, rd: Path) -> dict:
    """Link ``rd`` to ``arm.trained/seed-<seed>`` after checking it is a complete run of this very arm."""
    from scalpel.train import checkpoints as C
    from scalpel.train.arms import arm_fingerprint

    src = (Path(arm.trained).expanduser() / f"seed-{seed}").resolve()
    field = f"study.arms[{arm.name}].trained"
    total = cfg.study.train.steps * arm.epochs
    summary = complete_run(src, total)
    if summary is None:
        raise ConfigError(f"{field}: {src} is not a complete run of {total} steps (arm.json and checkpoint-{total} "
                          f"with its manifest); train it with `scalpel train STUDY --arm {arm.name} --seed {seed} "
                          f"--out {src.parent.parent}` first")
    written = C.read_manifest(C.complete_checkpoints(src)[total]).get("arm_fingerprint")
    if written != arm_fingerprint(cfg, arm):
        raise ConfigError(f"{field}: {src} was trained under other settings than this study's arm {arm.name!r} (its "
                          "arm fingerprint differs: steps, batch, lr, data, model or freezing); train it with this "
                          "study file")
    if rd.is_symlink() and rd.resolve() == src:
        return summary
    if rd.exists() or rd.is_symlink():
        raise ConfigError(f"{field}: {rd} already holds another run of this arm; move it away to adopt {src}")
    rd.parent.mkdir(parents=True, exist_ok=True)
    rd.symlink_to(src, target_is_directory=True)
    return summary


def _vllm_server(ctx, arm: ArmConfig, log_path: Path):
    from scalpel.train.vllm_server import VLLMServer

    launch = server_launch(ctx.study, arm, ctx.base_model)
    if launch is None:
        return contextlib.nullcontext()
    name = launch.argv[0]
    sibling = Path(sys.executable).with_name(name) if os.sep not in name else None  # `trl` of scalpel's environment
    argv = [str(sibling) if sibling is not None and sibling.is_file() else name, *launch.argv[1:]]
    return VLLMServer(argv, port=ctx.study.grpo.vllm_server_port, log_path=log_path.with_suffix(".vllm.log"),
                      timeout=ctx.study.launch.vllm_server.timeout, env=launch.env)


def run_launched(ctx, job, log, log_path: Path) -> dict:
    """Train one (arm, seed) under ``accelerate launch``; returns the run's summary (``arm.json``)."""
    from scalpel.study.jobs import run_dir

    arm = next(a for a in ctx.study.arms if a.name == job.args["arm"])
    seed = job.args["seed"]
    rd = run_dir(ctx.out, arm.name, seed)
    done = complete_run(rd, ctx.study.train.steps * arm.epochs)
    if done is not None:
        log(f"{job.name}: {rd} is a complete run already; using it as it is")
        return done
    launch = train_launch(ctx.study, ctx.out, arm.name, seed, job.args.get("traced_layers"), _free_port())
    with _vllm_server(ctx, arm, log_path):
        log(f"{job.name}: {launch.shell()}")
        with open(log_path, "ab") as fh:
            proc = subprocess.Popen(launch.argv, env={**os.environ, **launch.env}, stdout=fh, stderr=subprocess.STDOUT,
                                    preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        try:
            code = proc.wait()
        except BaseException:  # Ctrl-C or the study stopping this job: take the launched tree down first
            stop(proc)
            raise
    if code != 0:
        raise LaunchFailed(f"{job.name}: `scalpel train` under accelerate launch exited with code {code}; its "
                           f"output is in {log_path} (command: {launch.shell()})")
    return json.loads((rd / "arm.json").read_text())
