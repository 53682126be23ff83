"""``scalpel study FILE --plan``: what a study would do, printed without running (or loading) anything.

Why: a paper-scale run costs hundreds of GPU-hours, so its batch arithmetic, precision, job graph and the exact
TRL configuration of every arm should be reviewable first. Everything here is computed from the config alone (no
model, no data, no GPU): the batch per optimizer step for a given number of training processes, the jobs and
their dependencies, the command lines that run an arm on GPUs, and every field of the TRL config each arm gets,
with ``*`` where scalpel's value differs from TRL's default.

Figure 15's batch, as scalpel reads it by default: ``global_batch`` = completions per optimizer step over all
processes = 112 = 4 questions x 28 completions (the paper's text: "global batch size of 112 ... 1 gradient update
per global step"); 16 per device on 7 processes makes that one micro-batch each, so no accumulation. TRL would
read Figure 15's ``per_device_train_batch_size: 16, gradient_accumulation_steps: 4`` on 7 GPUs as 448 completions
(16 questions) per step: that reading is ``--set study.train.global_batch=448``, and nothing else changes.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from scalpel.config import Config

ACCELERATE_GPU_CONFIG = "recipes/accelerate/zero2.yaml"
ACCELERATE_CPU_CONFIG = "recipes/accelerate/cpu_ddp.yaml"
# Fields that only say where/how this machine runs, not what is trained (shown, never marked as a choice).
MACHINE_FIELDS = {"output_dir", "use_cpu", "disable_tqdm"}


def trl_fields(config_cls, kwargs: dict) -> list[tuple[str, object, object, bool]]:
    """(field, value, TRL default, differs) for every init field of a TRL config dataclass, given scalpel's kwargs."""
    rows = []
    for f in dataclasses.fields(config_cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        value = kwargs.get(f.name, default)
        rows.append((f.name, value, default, f.name in kwargs and value != default))
    unknown = sorted(set(kwargs) - {r[0] for r in rows})
    if unknown:
        raise ValueError(f"{config_cls.__name__} has no field(s) {unknown}: scalpel and TRL disagree")
    return rows


def _train_command(study_file: str, out: Path, arm: str, seed: int, processes: int, gpu: bool,
                   overrides: list[str]) -> str:
    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    cmd = f"-m scalpel.cli train {shlex.quote(study_file)} --arm {arm} --seed {seed} --out {out / 'runs'}{sets}"
    if processes == 1 and not gpu:
        return f"python {cmd}"
    cfg = ACCELERATE_GPU_CONFIG if gpu else ACCELERATE_CPU_CONFIG
    devices = f"CUDA_VISIBLE_DEVICES={','.join(map(str, range(processes)))} " if gpu else ""
    return f"{devices}accelerate launch --config_file {cfg} --num_processes {processes} {cmd}"


def describe(cfg: Config, study_file: str, out: Path, processes: int, gpu: bool,
             overrides: list[str] | None = None) -> str:
    """The plan as text (deterministic: ``tests/study/test_plan.py`` snapshots it for the olmo2-7b recipe)."""
    from trl import GRPOConfig, SFTConfig

    from scalpel.study.jobs import plan, trace_skip_reason
    from scalpel.train import grpo, sft
    from scalpel.train.arms import PURE_BF16_WARNING, _common_args, batch_plan

    study = cfg.study
    overrides = list(overrides or [])
    t, g = study.train, study.grpo
    lines = [f"study {study.name} -> {out}   (plan only: nothing is loaded or run)",
             f"base model: {study.model}" + ("   (hub id: resolved to its snapshot in the Hugging Face cache, "
                                              "downloaded if missing)" if study.model.count("/") == 1 else ""),
             f"layout: {processes} training process{'es' if processes > 1 else ''} per arm on "
             f"{'GPUs' if gpu else 'CPU'}"
             + (f", GRPO rollouts from a vLLM server on GPU {processes} (trl vllm-serve)"
                if gpu and g.generation == "vllm-server" else "")
             + (", GRPO rollouts by vLLM inside the training processes (colocate)"
                if gpu and g.generation == "vllm-colocate" else ""),
             "precision: " + {"float32": "float32 throughout",
                              "bfloat16": "fp32 master weights and AdamW state, bf16 autocast forward/backward",
                              "pure-bfloat16": "WARNING: " + PURE_BF16_WARNING}[t.dtype],
             f"tracking: report_to {t.report_to}", ""]

    lines.append(f"batch per optimizer step (match: {study.match}; study.train.global_batch = {t.global_batch} GRPO "
                 "completions per step over all processes, accumulation making up what one micro-batch cannot):")
    header = ("arm", "algorithm", "questions", "completions/sequences", "per device x accum. x processes", "steps")
    table = [header]
    plans = {}
    for arm in study.arms:
        bp = batch_plan(study, arm, processes)
        plans[arm.name] = bp
        questions = study.questions_per_step if arm.rollouts else bp.global_batch
        if arm.rollouts:
            rows = f"{bp.global_batch} completions ({questions} x {g.num_generations})"
        else:
            rows = f"{bp.global_batch} sequences (1 per question)"
        table.append((arm.name, arm.algorithm, str(questions), rows,
                      f"{bp.per_device} x {bp.accumulation} x {bp.processes}", str(t.steps * arm.epochs)))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.append("")

    jobs = plan(cfg)
    lines.append(f"jobs ({len(jobs)}; each runs in one of {study.workers} worker process(es) of `scalpel study` as "
                 "soon as its dependencies are done):")
    for j in jobs:
        deps = ", ".join(j.deps) if j.deps else "-"
        note = ""
        if j.kind == "trace" and study.analysis.trace_facts is None and study.model != "microworld" \
                and not Path(study.model).expanduser().is_dir():
            note = f"   skipped when run: {trace_skip_reason(study)}"
        lines.append(f"  {j.name:<28} {j.kind:<8} after: {deps}{note}")
        if j.kind == "train":
            cmd = _train_command(study_file, out, j.args["arm"], j.args["seed"], processes, gpu, overrides)
            lines.append(f"      by hand on this layout: {cmd}")
    lines.append("")
    if any(a.rollouts for a in study.arms) and g.generation == "vllm-server":
        lines.append(f"vLLM server for the GRPO arms (start it before them, on the GPU the trainers do not use): "
                     f"CUDA_VISIBLE_DEVICES={processes} trl vllm-serve --model {study.model} --port "
                     f"{g.vllm_server_port} --gpu_memory_utilization {g.vllm_gpu_memory_utilization}")
        lines.append("")

    for arm in study.arms:
        module, cls = (grpo, GRPOConfig) if arm.rollouts else (sft, SFTConfig)
        total = t.steps * arm.epochs
        seed = study.seeds[0]
        common = _common_args(study, arm, seed, out / "runs" / arm.name / f"seed-{seed}", plans[arm.name], total,
                              False)
        common["use_cpu"] = not gpu
        kwargs = module.config_kwargs(study, common)
        rows = trl_fields(cls, kwargs)
        changed = sum(d for *_, d in rows)
        lines.append(f"TRL {cls.__name__} of arm {arm.name} (seed {seed}; * = differs from TRL's default, "
                     f"{changed} of {len(rows)} fields):")
        for name, value, default, differs in rows:
            mark = "*" if differs and name not in MACHINE_FIELDS else " "
            tail = f"   (TRL default: {default!r})" if differs else ""
            lines.append(f"  {mark} {name} = {value!r}{tail}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
