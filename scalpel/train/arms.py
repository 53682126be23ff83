"""Run one arm of a study for one seed: base model -> question stream -> TRL trainer -> checkpoints.

Read top to bottom: ``run_arm`` resolves the base model and its system prompt, loads the question pool, builds the
(study, seed) question stream, plans the batch for the number of processes, loads model + tokenizer (the chat
template gets the system prompt as its default), applies freezing, builds the GRPO or SFT trainer
(``scalpel.train.grpo`` / ``scalpel.train.sft``), saves checkpoint-0, resumes from the last complete checkpoint if
there is one, trains, and writes ``arm.json``. Rerunning a finished arm returns its summary at once.

``preflight`` checks everything that can be checked without compute (batch divisibility for the process count,
freezing selectors against the model's parameter names on the meta device) and raises ``ConfigError`` naming the
field; ``run_arm`` calls it first.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from scalpel import atomic
from scalpel.config import ArmConfig, Config, ConfigError, StudyConfig
from scalpel.data.prompts import PAPER_SYSTEM_PROMPT
from scalpel.train import checkpoints as C
from scalpel.train.stream import Question, QuestionStream

MICROWORLD_TASKS = {"k12": "maths_easy", "olympiad": "maths_hard"}
PURE_BF16_WARNING = ("study.train.dtype = pure-bfloat16: AdamW updates bf16 weights directly, so an update smaller "
                     "than about 2^-8 of a weight rounds to nothing (one step at lr 1e-6 on a bf16 matrix of scale "
                     "0.02 changes about 2 % of its entries); use dtype: bfloat16 (fp32 master weights) unless "
                     "this is what you study")


class UnhealthyRun(RuntimeError):
    """Training stopped by a health guard (``health.on_unhealthy: stop``)."""


# ---------------------------------------------------------------------------------------------------------------
# What to train: base model, system prompt, questions
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Base:
    model_path: str
    system_prompt: str
    world: object | None  # scalpel.microworld.World when the model or the data comes from a micro-world
    description: dict


def _world_at(path: Path):
    from scalpel.microworld import World

    return World.open(path) if (path / "manifest.json").is_file() and (path / "model").is_dir() else None


def resolve_base(cfg: Config, log_fn=print, progress: bool = False) -> Base:
    """The base model directory / hub id, the training system prompt, and the micro-world if one is involved."""
    study = cfg.study
    world = None
    if study.model == "microworld":
        from scalpel.microworld import build

        world = build(cfg.microworld, progress=progress, log=log_fn)
        model_path, desc = str(world.model_dir), {"kind": "microworld", "world": str(world.dir), "key": world.key}
    elif Path(study.model).expanduser().is_dir():
        path = Path(study.model).expanduser()
        world = _world_at(path)
        if world is not None:
            model_path, desc = str(world.model_dir), {"kind": "microworld", "world": str(world.dir), "key": world.key}
        else:
            model_path, desc = str(path), {"kind": "local", "path": str(path)}
            if (path / C.MANIFEST).is_file():  # a scalpel checkpoint: keep training with its system prompt
                prior = C.read_manifest(path)
                desc.update(checkpoint_of={k: prior.get(k) for k in ("study", "arm", "seed", "step")})
                desc["system_prompt"] = prior.get("system_prompt")
    elif study.model.count("/") == 1 and not study.model.startswith((".", "/", "~")):
        from scalpel.hub import local_model  # the hub cache's snapshot: every job then reads one local directory

        model_path = str(local_model(study.model, trust_remote_code=study.trust_remote_code))
        desc = {"kind": "hub", "id": study.model, "snapshot": Path(model_path).name}
    else:
        raise ConfigError(f"study.model: {study.model!r} is not 'microworld', an existing directory, or a hub id "
                          "(owner/name)")
    if study.data.source == "microworld" and world is None:
        from scalpel.microworld import build

        world = build(cfg.microworld, progress=progress, log=log_fn)
    from_checkpoint = desc.pop("system_prompt", None)
    system_prompt = study.system_prompt or from_checkpoint
    if system_prompt is None:
        system_prompt = world.system_prompt if desc["kind"] == "microworld" else PAPER_SYSTEM_PROMPT
    return Base(model_path, system_prompt, world, desc)


def load_pool(cfg: Config, base: Base, tokenizer, arm: ArmConfig | None = None) -> tuple[list[Question], dict]:
    data = cfg.study.data
    if data.source == "microworld":
        tiers = cfg.study.train_tiers(arm)
        pool = []
        for tier in tiers:
            for it in base.world.items(MICROWORLD_TASKS[tier], "train"):
                pool.append(Question(it["id"], it["question"], str(it["answer"]), it["teacher"]))
        return pool, {"source": "microworld", "world": str(base.world.dir), "tiers": list(tiers),
                      "pool": len(pool)}
    from scalpel.data.openr1 import load_openr1

    o = data.openr1
    rows, report = load_openr1(o.path, config=o.config, sources=o.sources, tokenizer=tokenizer,
                               max_tokens=o.max_tokens, system_prompt=base.system_prompt)
    pool = [Question(r["id"], r["question"], str(r["answer"]), r["target"]) for r in rows]
    return pool, {"source": "openr1", "pool": len(pool), "report": report.as_dict()}


# ---------------------------------------------------------------------------------------------------------------
# Batch plan and preflight
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    per_step: int  # questions per block of the stream
    take: int | None  # questions of the block this arm uses (None: all)
    repeats: int  # rows per question per step (G for GRPO, 1 for SFT)
    global_batch: int  # completions (GRPO) or sequences (SFT) per optimizer step
    per_device: int
    accumulation: int
    processes: int


def batch_plan(study: StudyConfig, arm: ArmConfig, processes: int) -> BatchPlan:
    q, b, g = study.questions_per_step, study.train.global_batch, study.grpo.num_generations
    per_step = q if study.match == "questions" else b
    if arm.rollouts:
        take, repeats, global_batch = (None if per_step == q else q), g, b
    else:
        take, repeats, global_batch = None, 1, per_step
    if global_batch % processes:
        raise ConfigError(f"study.train.global_batch: arm {arm.name!r} trains on {global_batch} "
                          f"{'completions' if arm.rollouts else 'sequences'} per step, which "
                          f"{processes} processes cannot share evenly")
    local = global_batch // processes
    cap = study.train.per_device_batch or local
    per_device = max(d for d in range(1, local + 1) if local % d == 0 and d <= cap)
    return BatchPlan(per_step, take, repeats, global_batch, per_device, local // per_device, processes)


def preflight(cfg: Config, processes: int, base: Base | None = None) -> None:
    """Every check that needs no compute, for every arm; ConfigError naming the field."""
    study = cfg.study
    if study is None:
        raise ConfigError("this config has no `study` section (see recipes/microworld/study.yaml)")
    for arm in study.arms:
        batch_plan(study, arm, processes)
    freezing = [(i, a) for i, a in enumerate(study.arms) if a.freeze is not None]
    if freezing and base is not None:
        from transformers import AutoConfig

        from scalpel.train.freeze import (
            FreezeSelectorError,
            parameter_names,
            validate_selectors,
        )

        names = parameter_names(AutoConfig.from_pretrained(base.model_path, trust_remote_code=study.trust_remote_code))
        for i, arm in freezing:
            try:
                validate_selectors(names, arm.freeze.train_only, arm.freeze.freeze)
            except FreezeSelectorError as exc:
                raise ConfigError(f"study.arms.{i}.freeze (arm {arm.name!r}): {exc}") from None


def resolve_arm(arm: ArmConfig, traced_layers: list[int] | None) -> ArmConfig:
    """The arm with its ``NAME@traced`` selectors replaced by the layers causal tracing of the base selected
    (``scalpel study`` passes them once its trace job has run); unchanged when it has none. ConfigError when they
    are needed but not given, or when tracing selected no layer."""
    from scalpel.train.freeze import FreezeSelectorError, resolve_traced

    if not arm.traced:
        return arm
    f = arm.freeze
    if traced_layers is None:
        raise ConfigError(
            f"arm {arm.name!r} freezes {f.freeze or f.train_only}: layers chosen by causal tracing of the base, "
            f"which only `scalpel study` runs before training. Run `scalpel study STUDY.yaml` (it traces the base, "
            f"then trains this arm), or name the layers, e.g. the `freeze` list of selector.json from `scalpel "
            f"analyze trace --model BASE --facts FACTS`")
    try:
        resolved = f.model_copy(update={"train_only": resolve_traced(f.train_only, traced_layers),
                                        "freeze": resolve_traced(f.freeze, traced_layers)})
    except FreezeSelectorError as exc:
        raise ConfigError(f"arm {arm.name!r}: {exc}") from None
    return arm.model_copy(update={"freeze": resolved})


def arm_fingerprint(cfg: Config, arm: ArmConfig) -> str:
    """Hash of everything that decides this arm's numbers (not: name, other arms, seeds list, health, threads,
    per-device batch, launch layout, logging, whether it is evaluated, where it was trained). A resume refuses
    checkpoints written under a different fingerprint."""
    study = cfg.study.model_dump(mode="json")
    for k in ("name", "arms", "seeds", "health", "eval", "analysis", "workers", "launch"):
        study.pop(k)
    for k in ("threads", "per_device_batch", "logging_steps", "keep_optimizer_state", "report_to"):
        study["train"].pop(k)
    blob = {"study": study, "arm": arm.model_dump(mode="json", exclude={"evaluate", "trained"})}
    if cfg.study.model == "microworld" or cfg.study.data.source == "microworld":
        blob["microworld"] = cfg.microworld.model_dump(mode="json")
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# One arm run
# ---------------------------------------------------------------------------------------------------------------


class ArmRun:
    """State the trainer hooks and callbacks share: stream, observations, manifest contents."""

    def __init__(self, study: StudyConfig, arm: ArmConfig, seed: int, run_dir: Path, stream: QuestionStream,
                 plan: BatchPlan, system_prompt: str, gather, manifest_run: dict):
        self.study, self.arm, self.seed, self.run_dir = study, arm, seed, Path(run_dir)
        self.stream, self.plan, self.system_prompt, self.gather = stream, plan, system_prompt, gather
        self.total_steps = study.train.steps * arm.epochs
        self.repeats = plan.repeats
        self.questions: list[list[str]] = []  # verified ids per completed step
        self.observed: list[str] = []
        self.health = None
        self.manifest_run = manifest_run
        self.row_ids = [qid for t in range(self.total_steps) for qid in self.expected_block(t)]

    def expected_block(self, t: int) -> list[str]:
        return self.stream.block(t, self.plan.take)

    def expected_ids(self) -> list[str]:
        return self.row_ids

    def observe(self, ids: list[str], completions) -> None:
        self.observed.extend(ids)
        if completions and self.health is not None:
            self.health.observe(completions)

    def take_observed(self) -> list[str]:
        out, self.observed = self.observed, []
        return out

    def manifest(self, step: int) -> dict:
        if len(self.questions) != step:
            raise RuntimeError(f"checkpoint at step {step} but {len(self.questions)} steps were verified")
        return C.manifest(step=step, total_steps=self.total_steps, questions=self.questions[:step],
                          run=self.manifest_run)

    def finish_checkpoint(self, staged: Path, step: int) -> Path:
        final = C.finish(staged, self.manifest(step))
        if step > 0 and self.study.train.keep_optimizer_state == "last":
            C.prune_resume_state(self.run_dir, keep=step)
        return final


def _usable(done: dict[int, Path], step: int, say, is_main: bool) -> bool:
    """Verify checkpoint ``step`` before relying on it; a damaged one is moved aside (never used, never counted as
    complete) with a warning, and dropped from ``done``."""
    from scalpel.integrity import IntegrityError, verify

    try:
        verify(done[step])
        return True
    except IntegrityError as exc:
        d = done.pop(step)
        say(f"warning: {exc}; moving it aside and resuming from an earlier checkpoint")
        if is_main:
            d.rename(d.with_name(f"damaged-{d.name}-{time.strftime('%Y%m%d-%H%M%S')}"))
        return False


def _is_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _load_model_and_tokenizer(study: StudyConfig, base: Base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from scalpel.data.prompts import chat_template

    tok = AutoTokenizer.from_pretrained(base.model_path, trust_remote_code=study.trust_remote_code)
    tok.chat_template = chat_template(default_system=base.system_prompt)
    tok.padding_side = "left"
    if tok.pad_token is None:
        raise ConfigError(f"study.model: the tokenizer of {base.model_path} has no pad token")
    # fp32 master weights unless pure bf16 is asked for: `bf16` autocast (TrainingArguments) does the bf16 compute
    dtype = torch.bfloat16 if study.train.dtype == "pure-bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base.model_path, dtype=dtype,
                                                 trust_remote_code=study.trust_remote_code)
    for c in (model.config, model.generation_config):
        c.eos_token_id, c.pad_token_id = tok.eos_token_id, tok.pad_token_id
    return model, tok


def _checkpointing_field() -> str:
    """transformers 5.23 (CPU set) renamed gradient_checkpointing to activation_checkpointing; 5.17 (GPU set, what
    vLLM 0.31 allows) has only the old name."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def _common_args(study: StudyConfig, arm: ArmConfig, seed: int, run_dir: Path, plan: BatchPlan, total: int,
                 progress: bool) -> dict:
    t = study.train
    checkpointing = _checkpointing_field()
    return dict(
        output_dir=str(run_dir), seed=seed, data_seed=seed,
        max_steps=total, num_train_epochs=1, learning_rate=arm.lr, lr_scheduler_type=t.lr_scheduler,
        warmup_steps=math.ceil(t.warmup_ratio * total), max_grad_norm=t.max_grad_norm, weight_decay=t.weight_decay,
        per_device_train_batch_size=plan.per_device, gradient_accumulation_steps=plan.accumulation,
        use_cpu=not _is_cuda(), bf16=t.dtype != "float32", fp16=False,
        **{checkpointing: t.gradient_checkpointing}, **({"use_liger_kernel": True} if t.liger_kernel else {}),
        logging_steps=t.logging_steps, save_strategy="steps", save_steps=total, save_only_model=False,
        report_to=t.report_to, disable_tqdm=not progress, dataloader_num_workers=0, ignore_data_skip=False,
        remove_unused_columns=True if arm.algorithm == "sft" else False,
    )


def run_arm(cfg: Config, arm_name: str, seed: int | None = None, out: str | Path | None = None, *,
            progress: bool = True, log_fn=print, traced_layers: list[int] | None = None) -> dict:
    """Train one arm for one seed (resuming if possible); returns the arm summary (also in ``arm.json``).
    ``traced_layers``: what ``NAME@traced`` selectors mean (the study's causal tracing of the base)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from scalpel.train import grpo, sft
    from scalpel.train.freeze import apply_freezing
    from scalpel.train.health import HealthMonitor
    from scalpel.train.trainers import (
        CheckpointSchedule,
        JsonlLog,
        Progress,
        StreamCheck,
    )

    study = cfg.study
    if study is None:
        raise ConfigError("this config has no `study` section (see recipes/microworld/study.yaml)")
    arms = {a.name: a for a in study.arms}
    if arm_name not in arms:
        raise ConfigError(f"--arm {arm_name!r}: the study has arms {', '.join(arms)}")
    configured = arms[arm_name]
    arm = resolve_arm(configured, traced_layers)  # from here on, freezing names concrete layers
    seed = study.seeds[0] if seed is None else seed
    state = PartialState(cpu=not _is_cuda())  # the shared state Trainer will reuse: must match use_cpu
    is_main = state.is_main_process
    say = log_fn if is_main else (lambda *_: None)
    if not _is_cuda():
        torch.set_num_threads(study.train.threads)

    base = resolve_base(cfg, say)
    preflight(cfg, state.num_processes, base)
    if study.train.dtype == "pure-bfloat16":
        say(f"warning: {PURE_BF16_WARNING}")
    plan = batch_plan(study, arm, state.num_processes)
    run_dir = Path(out if out is not None else Path("runs") / study.name) / arm.name / f"seed-{seed}"
    total = study.train.steps * arm.epochs

    done = C.complete_checkpoints(run_dir)
    if total in done and (run_dir / "arm.json").is_file() and _usable(done, total, say, state.is_main_process):
        say(f"{arm.name} seed {seed}: already complete ({run_dir})")
        return json.loads((run_dir / "arm.json").read_text())

    model, tok = _load_model_and_tokenizer(study, base)
    pool, data_desc = load_pool(cfg, base, tok, arm)
    stream = QuestionStream(pool, seed, plan.per_step, study.train.steps, study.data.max_questions)
    trainable = apply_freezing(model, arm.freeze.train_only, arm.freeze.freeze) if arm.freeze else None
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_total = sum(p.numel() for p in model.parameters())
    fingerprint = arm_fingerprint(cfg, arm)
    manifest_run = {
        "study": study.name, "arm": arm.name, "algorithm": arm.algorithm, "seed": seed, "match": study.match,
        "questions_per_step": len(stream.block(0, plan.take)), "repeats_per_question": plan.repeats,
        "batch": {"global": plan.global_batch, "per_device": plan.per_device, "accumulation": plan.accumulation,
                  "processes": plan.processes},
        "base_model": base.description, "system_prompt": base.system_prompt,
        "data": data_desc, "stream": stream.describe(), "data_fingerprint": stream.fingerprint(),
        "arm_fingerprint": fingerprint,
        "trainable_params": n_train, "total_params": n_total,
        "freeze": arm.freeze.model_dump(mode="json") if arm.freeze else None,
        "config": cfg.model_dump(mode="json"),
    }
    if arm is not configured:  # the selection as written and the traced layers it became
        manifest_run.update(freeze_configured=configured.freeze.model_dump(mode="json"),
                            traced_layers=list(traced_layers))
    run = ArmRun(study, arm, seed, run_dir, stream, plan, base.system_prompt,
                 gather_object if state.num_processes > 1 else (lambda x: x), manifest_run)
    say(f"{arm.name} seed {seed}: {arm.algorithm}, {total} steps x {plan.global_batch} "
        f"{'completions' if arm.rollouts else 'sequences'} "
        f"({manifest_run['questions_per_step']} questions/step; {plan.processes} process"
        f"{'es' if plan.processes > 1 else ''} x {plan.per_device} "
        f"x {plan.accumulation} accumulation); trainable {n_train:,} of {n_total:,} parameters; -> {run_dir}")

    # Resume point: the last complete, undamaged checkpoint that carries optimizer state, of this very arm.
    resume = next(((step, d) for step, d in reversed(list(done.items()))
                   if C.resumable(d) and _usable(done, step, say, is_main)), None)
    for step, d in done.items():
        m = C.read_manifest(d)
        if m.get("arm_fingerprint") != fingerprint or m.get("data_fingerprint") != stream.fingerprint():
            raise ConfigError(f"{d} was written by a different configuration or data than this run "
                              f"(arm or data fingerprint differs); choose another --out or delete {run_dir}")
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        C.clear_staging(run_dir)
    state.wait_for_everyone()

    health = HealthMonitor(study.health, run_dir / "health.jsonl", is_main=is_main,
                           gather=run.gather)
    health.watch_completions = arm.rollouts
    run.health = health
    jsonl = JsonlLog(run_dir / "log.jsonl", is_main)
    if resume is not None:
        step, d = resume
        m = C.read_manifest(d)
        if m["questions"] != [run.expected_block(t) for t in range(step)]:
            raise ConfigError(f"{d}: its question ids differ from this run's stream; delete {run_dir} to restart")
        run.questions = [list(b) for b in m["questions"]]
        history = json.loads((d / "trainer_state.json").read_text()).get("log_history", [])
        health.resume(history, step)
        jsonl.resume(step)
        say(f"{arm.name} seed {seed}: resuming from {d.name}")
    elif is_main:
        jsonl.resume(0)
        health.resume([], 0)

    module = grpo if arm.rollouts else sft  # the self-SFT arms are GRPO's rollouts with an SFT loss
    args = module.config(run, _common_args(study, arm, seed, run_dir, plan, total, progress))
    sched = C.schedule(total, study.train.checkpoints)
    callbacks = [StreamCheck(run), health, CheckpointSchedule(sched), jsonl]
    trainer = module.trainer(run, model, tok, args, callbacks)
    trainer.scalpel = run
    for cb in (PrinterCallback, ProgressCallback):  # one compact line per ~5 % of the run instead
        trainer.remove_callback(cb)
    if progress and is_main:
        trainer.add_callback(Progress(total, say))

    if 0 not in done and resume is None:  # checkpoint-0: the starting weights, same layout and manifest
        if is_main:
            staged = run_dir / C.STAGING / "checkpoint-0"
            model.save_pretrained(staged)
            tok.save_pretrained(staged)
            run.finish_checkpoint(staged, 0)
        state.wait_for_everyone()

    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)
    seconds = time.perf_counter() - t0
    if is_main:
        C.clear_staging(run_dir)
    if health.stopped is not None:
        raise UnhealthyRun(f"{arm.name} seed {seed}: stopped at step {health.stopped['step']} by the health guard "
                           f"({health.stopped['kind']}); events in {run_dir / 'health.jsonl'}")
    selection = trainable.as_dict() if trainable else {"trainable_params": n_train, "total_params": n_total}
    if arm.freeze:  # the selectors that trained (resolved), so the index and the claims read concrete layers
        selection.update(train_only=arm.freeze.train_only, freeze=arm.freeze.freeze)
    if arm is not configured:
        selection["traced_layers"] = list(traced_layers)
    summary = summarize(run_dir, run, selection, seconds, resumed_from=resume[0] if resume else None)
    if is_main:
        atomic.write_json(run_dir / "arm.json", summary)
    state.wait_for_everyone()
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------------


def _window_means(series: list[tuple[int, float]], total: int) -> dict:
    """Mean over the first and the last 10 % of steps (at least one step each)."""
    k = max(1, round(0.1 * total))
    first = [v for s, v in series if s <= k and math.isfinite(v)]
    last = [v for s, v in series if s > total - k and math.isfinite(v)]
    out = {"first_10pct": statistics.fmean(first) if first else None,
           "last_10pct": statistics.fmean(last) if last else None, "window_steps": k}
    if first and last:
        out["change"] = out["last_10pct"] - out["first_10pct"]
    return out


def read_log(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "log.jsonl"
    return atomic.read_jsonl(path)


def summarize(run_dir: Path, run: ArmRun, trainable: dict, seconds: float, resumed_from: int | None) -> dict:
    entries = [e for e in read_log(run_dir) if "loss" in e]
    keys = ["loss", "grad_norm"] + sorted({k for e in entries for k in e if k.startswith("rewards/")
                                           and k.endswith("/mean")})
    if entries and "reward" in entries[0]:
        keys.append("reward")
    metrics = {}
    for key in keys:
        series = [(e["step"], float(e[key])) for e in entries if isinstance(e.get(key), (int, float))]
        if series:
            metrics[key] = _window_means(series, run.total_steps)
    times = [e["step_seconds"] for e in entries if isinstance(e.get("step_seconds"), (int, float))]
    events = run.health.events if run.health else []
    return {
        "study": run.study.name, "arm": run.arm.name, "algorithm": run.arm.algorithm, "seed": run.seed,
        "status": "complete", "steps": run.total_steps, "match": run.study.match,
        "questions_per_step": len(run.expected_block(0)), "questions_seen": sum(map(len, run.questions)),
        "batch": run.manifest_run["batch"], "trainable": trainable,
        "checkpoints": sorted(C.complete_checkpoints(run_dir)),
        "metrics": metrics, "train_seconds_this_run": round(seconds, 2), "resumed_from": resumed_from,
        "step_seconds_median": statistics.median(times) if times else None,
        "health_events": len(events), "unhealthy_events": sum(e["unhealthy"] for e in events),
        "data_fingerprint": run.stream.fingerprint(),
    }
