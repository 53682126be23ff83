"""``scalpel study FILE --plan``: what a study would do, printed without running (or loading) anything.

Why: a paper-scale run costs hundreds of GPU-hours, so its batch arithmetic, precision, job graph and the exact
TRL configuration of every arm should be reviewable first. Everything here is computed from the config alone (no
model, no data, no GPU; the model's shape comes from its config.json on the meta device): the launch layout
(``study.launch``), the batch per optimizer step for its process count, a memory estimate per GPU
(``scalpel.study.memory``), the jobs and their dependencies with each training job's exact command (and its vLLM
server's), and every field of the TRL config each arm gets, with ``*`` where scalpel's value differs from TRL's
default.

Figure 15's batch, as scalpel reads it by default: ``global_batch`` = completions per optimizer step over all
processes = 112 = 4 questions x 28 completions (the paper's text: "global batch size of 112 ... 1 gradient update
per global step"); 16 per device on 7 processes makes that one micro-batch each, so no accumulation. TRL would
read Figure 15's ``per_device_train_batch_size: 16, gradient_accumulation_steps: 4`` on 7 GPUs as 448 completions
(16 questions) per step: that reading is ``--set study.train.global_batch=448``, and nothing else changes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scalpel.config import Config

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


def _layout(study) -> str:
    lc, g = study.launch, study.grpo
    if lc.mode == "in-process":
        text = "layout: each training job runs in the study's worker process (1 process; study.launch.mode: in-process)"
    else:
        from scalpel.study.memory import zero_stage

        stage = zero_stage(lc.accelerate_config)
        where = f"GPUs {','.join(map(str, lc.gpus))}" if lc.gpus else "the devices the node exposes"
        text = (f"layout: each training job is `accelerate launch` of `scalpel train` ({lc.accelerate_config}: "
                f"{f'DeepSpeed ZeRO-{stage}' if stage is not None else 'no DeepSpeed'}) with {lc.num_processes} "
                f"process{'es' if lc.num_processes > 1 else ''} on {where}")
    if any(a.rollouts for a in study.arms):
        text += {"hf": "; GRPO rollouts by transformers generate in the training processes",
                 "vllm-colocate": "; GRPO rollouts by vLLM inside the training processes (colocate)",
                 "vllm-server": "; GRPO rollouts from a vLLM server on GPU(s) "
                                f"{','.join(map(str, lc.vllm_server.gpus))}, which the study starts before each GRPO "
                                f"job and stops after it (health timeout {lc.vllm_server.timeout:g} s)"}[g.generation]
    return text


def _memory(cfg: Config, plans: dict) -> list[str]:
    from scalpel.data.benchmarks import get
    from scalpel.study import memory
    from scalpel.study.jobs import benchmarks_of

    study = cfg.study
    shape = memory.model_shape(cfg)
    if isinstance(shape, str):
        return [f"memory per GPU: {shape}", ""]
    lines = [f"memory per GPU (GiB, rough: formulas in scalpel/study/memory.py; {shape.params / 1e9:.2f}B parameters, "
             f"from {shape.source}):"]
    for arm in study.arms:
        lines.append(f"  training {arm.name}: {memory.training(cfg, shape, arm, plans[arm.name].per_device)}")
    server = memory.generation(cfg, shape)
    if server is not None:
        lines.append(f"  generation (vLLM server): {server}")
    world = (Path(study.model).expanduser() / "manifest.json").is_file()
    longest = max(get(b).max_new_tokens for b in benchmarks_of(study, world))
    lines += [f"  evaluation (HF generate): {memory.evaluation(cfg, shape, longest)}", ""]
    return lines


def _train_lines(study, out: Path, job) -> list[str]:
    """How a training job runs: adopted, in-process, or its exact command (and its vLLM server's)."""
    from scalpel.study.launch import server_launch, train_launch

    arm = next(a for a in study.arms if a.name == job.args["arm"])
    if arm.trained is not None:
        seed_dir = Path(arm.trained) / f"seed-{job.args['seed']}"
        return [f"      adopts {seed_dir} (trained elsewhere; checked, not trained here)"]
    if study.launch.mode == "in-process":
        return ["      in the worker process: scalpel.train.arms.run_arm (no launch)"]
    layers = job.args.get("traced_layers")
    cmd = train_launch(study, out, arm.name, job.args["seed"], [] if job.waits_for_trace else layers).shell()
    if job.waits_for_trace:
        cmd = cmd.replace("--traced-layers ", "--traced-layers <layers from trace-base>")
    lines = [f"      command: {cmd}"]
    server = server_launch(study, arm, study.model)
    if server is not None:
        lines.append(f"      vLLM server around it: {server.shell()}")
    return lines


def describe(cfg: Config, out: Path) -> str:
    """The plan as text (deterministic: ``tests/study/test_plan.py`` snapshots it for the olmo2-7b recipe)."""
    from trl import GRPOConfig, SFTConfig

    from scalpel.study.jobs import plan, trace_skip_reason
    from scalpel.train import grpo, sft
    from scalpel.train.arms import PURE_BF16_WARNING, _common_args, batch_plan

    study = cfg.study
    t, g = study.train, study.grpo
    processes = study.launch.num_processes
    gpu = bool(study.launch.gpus)
    lines = [f"study {study.name} -> {out}   (plan only: nothing is loaded or run)",
             f"base model: {study.model}" + ("   (hub id: resolved to its snapshot in the Hugging Face cache, "
                                              "downloaded if missing)" if study.model.count("/") == 1 else ""),
             _layout(study),
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
    lines += _memory(cfg, plans)

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
            lines += _train_lines(study, out, j)
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
