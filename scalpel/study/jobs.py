"""The jobs of a study and what each one runs: train an arm x seed, evaluate, pass@k, KL, weights, tracing.

A job is plain data (kind, name, arguments, dependencies) so it can be planned in the main process, shipped to a
worker process and keyed for the done-marker that makes a rerun skip it. ``run_job`` is the only function that
touches the heavy libraries; everything it calls is an existing scalpel entry point (``run_arm``, or ``scalpel
train`` under ``accelerate launch``; ``evaluate_model``, ``kl_curve``, ``analyze_weights``, ``causal_trace``), so
the study adds no second code path.

Directory layout of a study ``DIR``::

    config.json                       the resolved configuration the study runs with
    runs/<arm>/seed-<s>/              scalpel.train output (checkpoints, log.jsonl, health.jsonl, arm.json)
    eval/base/  eval/<arm>/seed-<s>/step-<N>/     scalpel.evaluate output per model
    passk/base/ passk/<arm>/seed-<s>/             pass@k samples (in-domain benchmarks, base and final checkpoint)
    analysis/kl/<arm>/seed-<s>/  analysis/weights/<arm>/seed-<s>/  analysis/trace/
    analysis/structure/<arm>/seed-<s>/  update structure (written by the weights job)
    logs/<job>.log  .done/<job>.json  index.json  claims.json  report/index.html  report/summary.md

Traced arms. An arm freezing ``mlp@traced`` (the paper's procedure: the MLPs of the layers causal tracing selects)
trains after ``trace-base``. Until then its jobs carry ``traced_layers: None``; once the trace is done the runner
fills in the selected layers (``with_traced_layers``), so every job of the arm is keyed by them: a different trace
result retrains and re-evaluates the arm, and the same one does not. The layers are recorded in the run's
manifests and ``arm.json`` (``trainable.freeze``, ``trainable.traced_layers``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from scalpel import atomic
from scalpel.config import Config, StudyConfig

KINDS = ("train", "eval", "passk", "kl", "weights", "trace")
MATHS_SCORERS = ("maths", "gsm8k")


@dataclass(frozen=True)
class Job:
    kind: str
    name: str  # unique, file-name safe: train-sft-s0, eval-base, ...
    args: dict = field(default_factory=dict)
    deps: tuple[str, ...] = ()

    @property
    def waits_for_trace(self) -> bool:
        """A job of a traced arm whose layers are not known yet (its key would be meaningless)."""
        return "traced_layers" in self.args and self.args["traced_layers"] is None

    def key(self, cfg_json: dict) -> str:
        """Changes whenever anything that decides this job's output changes (so a stale marker is not trusted)."""
        drop = {"workers", "launch"} | {"train": {"eval", "analysis"}, "kl": {"eval"}, "weights": {"eval"},
                              "trace": {"eval"}}.get(self.kind, {"analysis"})
        study = {k: v for k, v in cfg_json["study"].items() if k not in drop}
        study["train"] = {k: v for k, v in study["train"].items() if k not in ("threads", "report_to")}
        blob = {"job": asdict(self), "study": study, "microworld": cfg_json.get("microworld")}
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / arm / f"seed-{seed}"


def log_path(out: Path, job_name: str) -> Path:
    return out / "logs" / f"{job_name}.log"


def suite_of(study: StudyConfig, microworld_base: bool) -> str:
    return study.eval.suite or ("microworld" if microworld_base else "paper")


def benchmarks_of(study: StudyConfig, microworld_base: bool) -> list[str]:
    from scalpel.data.benchmarks import suite

    names = suite(suite_of(study, microworld_base)) + [b for b in study.eval.benchmarks]
    return list(dict.fromkeys(names))


def in_domain_of(study: StudyConfig, microworld_base: bool) -> list[str]:
    """In-domain = maths (the training domain) unless the study names them; the rest are out-of-domain."""
    from scalpel.data.benchmarks import get

    names = benchmarks_of(study, microworld_base)
    if study.eval.in_domain is not None:
        return [b for b in names if b in study.eval.in_domain]
    if microworld_base:
        return [b for b in names if b.startswith("mw_") and "maths" in b]
    return [b for b in names if get(b).scorer in MATHS_SCORERS]


def evaluated_steps(steps: list[int], n: int | None) -> list[int]:
    """``n`` evenly spaced steps out of a run's checkpoint steps (0 excluded: the base's own evaluation stands for
    it), always ending with the final one; all of them when n is None or larger."""
    steps = [s for s in sorted(steps) if s > 0]
    if n is None or n >= len(steps):
        return steps
    return sorted({steps[max(0, round(i * len(steps) / n) - 1)] for i in range(1, n + 1)})


def plan(cfg: Config) -> list[Job]:
    """Every job of the study, dependencies before dependants."""
    from scalpel.train.checkpoints import schedule

    study = cfg.study
    a = study.analysis
    jobs = [Job("eval", "eval-base", {"model": "base"})]
    if study.eval.passk_samples > 1:
        jobs.append(Job("passk", "passk-base", {"model": "base"}))
    if a.trace:
        jobs.append(Job("trace", "trace-base", {}))
    for arm in study.arms:
        traced = arm.traced
        for seed in study.seeds:
            tag = f"{arm.name}-s{seed}"
            train = f"train-{tag}"
            run = {"arm": arm.name, "seed": seed, **({"traced_layers": None} if traced else {})}
            jobs.append(Job("train", train, run, ("trace-base",) if traced else ()))
            steps = evaluated_steps(schedule(study.train.steps * arm.epochs, study.train.checkpoints),
                                    study.eval.checkpoints)
            if arm.evaluate:
                jobs.append(Job("eval", f"eval-{tag}", {**run, "steps": steps}, (train,)))
                passk_arms = study.eval.passk_arms
                if study.eval.passk_samples > 1 and (passk_arms is None or arm.name in passk_arms):
                    jobs.append(Job("passk", f"passk-{tag}", {**run, "steps": steps[-1:]}, (train,)))
            if a.kl:
                jobs.append(Job("kl", f"kl-{tag}", dict(run), (train,)))
            if a.weights:
                jobs.append(Job("weights", f"weights-{tag}", dict(run), (train,)))
    return jobs


def with_traced_layers(jobs: list[Job], layers: list[int] | None) -> list[Job]:
    """The jobs with the trace's selected layers filled in wherever a traced arm waits for them (None: not known
    yet, they keep waiting)."""
    if layers is None:
        return jobs
    return [replace(j, args={**j.args, "traced_layers": list(layers)}) if j.waits_for_trace else j for j in jobs]


def check_tracing(study: StudyConfig, world: str | None) -> None:
    """Before any compute: a traced arm needs facts to trace the base on (the micro-world's, or a facts file)."""
    from scalpel.config import ConfigError

    traced = [a.name for a in study.arms if a.traced]
    facts = study.analysis.trace_facts
    if not traced or (facts is None and world is not None):
        return
    if facts is None:
        raise ConfigError(f"study.analysis.trace_facts: arms {traced} freeze layers chosen by causal tracing of the "
                          f"base ('@traced'), but the base {study.model!r} is not a micro-world, so it has no facts "
                          f"to trace: give a ROME-format known_1000.json (prompt, subject, attribute), or name the "
                          f"layers (e.g. mlp@20-26)")
    if not Path(facts).expanduser().exists():
        raise ConfigError(f"study.analysis.trace_facts: {facts} does not exist (arms {traced} need it: their "
                          f"'@traced' layers come from causal tracing of the base on these facts)")


def trace_skip_reason(study: StudyConfig) -> str:
    return (f"no facts file for the base {study.model!r} (study.analysis.trace_facts; ROME's known_1000.json has the "
            "paper's facts), and no arm freezes traced layers")


# ---------------------------------------------------------------------------------------------------------------
# Running one job (inside a worker process)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Context:
    """What every job needs to know about the study, cheap to rebuild in a worker."""

    cfg: Config
    out: Path
    base_model: str
    world: str | None  # micro-world directory, when the base or the data comes from one
    system_prompt: str

    @property
    def study(self) -> StudyConfig:
        return self.cfg.study


def _eval_config(ctx: Context, passk: bool):
    from scalpel.evaluate.runner import EvalConfig

    e = ctx.study.eval
    mw = ctx.world is not None  # the training system prompt, explicitly, for the base and every checkpoint
    benches = benchmarks_of(ctx.study, mw)
    if passk:
        benches = in_domain_of(ctx.study, mw)
    return EvalConfig(benchmarks=benches, samples=e.passk_samples if passk else e.samples,
                      temperature=e.temperature, top_p=e.top_p, seed=e.seed,
                      limit=e.passk_limit if passk else e.limit, batch_size=e.batch_size, world=ctx.world,
                      threads=ctx.study.train.threads, trust_remote_code=ctx.study.trust_remote_code,
                      system_prompt=ctx.system_prompt)


def _models(ctx: Context, job: Job) -> dict[str, Path | str]:
    """name -> model of an eval/passk job: the base, or the job's checkpoints of one run."""
    if job.args.get("model") == "base":
        return {"base": ctx.base_model}
    rd = run_dir(ctx.out, job.args["arm"], job.args["seed"])
    return {f"step-{s}": rd / f"checkpoint-{s}" for s in job.args["steps"]}


def eval_dir(out: Path, kind: str, arm: str | None = None, seed: int | None = None) -> Path:
    root = out / ("eval" if kind == "eval" else "passk")
    return root / "base" if arm is None else root / arm / f"seed-{seed}"


def run_job(ctx: Context, job: Job, log=print) -> dict:
    """Run one job to completion; returns a small result dict (recorded in its done-marker)."""
    import torch

    torch.set_num_threads(ctx.study.train.threads)
    if job.kind == "train":
        from scalpel.study import launch
        from scalpel.train.arms import run_arm

        arm = next(a for a in ctx.study.arms if a.name == job.args["arm"])
        layers = job.args.get("traced_layers")
        if arm.trained is not None:
            s = launch.adopt(ctx.cfg, arm, job.args["seed"], run_dir(ctx.out, arm.name, job.args["seed"]))
            log(f"{job.name}: adopted the run trained in {arm.trained}")
        else:
            if layers is not None:
                _retire_other_selection(ctx, job, log)
            if ctx.study.launch.mode == "accelerate":
                s = launch.run_launched(ctx, job, log, log_path(ctx.out, job.name))
            else:
                s = run_arm(ctx.cfg, arm.name, job.args["seed"], ctx.out / "runs", progress=True, log_fn=log,
                            traced_layers=layers)
        return {"checkpoints": s["checkpoints"], "unhealthy_events": s.get("unhealthy_events", 0)}
    if job.kind in ("eval", "passk"):
        from scalpel.evaluate.runner import evaluate_model

        cfg = _eval_config(ctx, job.kind == "passk")
        where = eval_dir(ctx.out, job.kind, job.args.get("arm"), job.args.get("seed"))
        for name, model in _models(ctx, job).items():
            d = where if name == "base" else where / name
            res = evaluate_model(model, d, cfg, name=name)
            log(f"{job.name} {name}: " + ", ".join(f"{b} {r['accuracy']:.3f}" for b, r in res.items()))
            if job.kind == "eval" and name != "base":
                _task_kl(ctx, model, d)
        return {}
    rd = run_dir(ctx.out, job.args.get("arm", ""), job.args.get("seed", 0))
    if job.kind == "kl":
        from scalpel.analyze.kl import kl_curve
        from scalpel.train.checkpoints import complete_checkpoints

        a = ctx.study.analysis
        data = a.kl_data or (ctx.world if ctx.world is not None else "math500")
        cks = [p for s, p in complete_checkpoints(rd).items() if s > 0]
        kl_curve(ctx.base_model, cks, data, ctx.out / "analysis" / "kl" / job.args["arm"] / f"seed-{job.args['seed']}",
                 labels=[job.args["arm"]], system=ctx.system_prompt, max_examples=a.kl_max_examples,
                 threads=ctx.study.train.threads, figures=False, progress=False)
        return {}
    if job.kind == "weights":
        from scalpel.analyze.weights import analyze_weights
        from scalpel.train.checkpoints import complete_checkpoints

        cks = [p for s, p in complete_checkpoints(rd).items() if s > 0]
        analyze_weights(ctx.base_model, cks, ctx.out / "analysis" / "weights" / job.args["arm"] /
                        f"seed-{job.args['seed']}", labels=[job.args["arm"]], spectrum=ctx.study.analysis.spectrum,
                        threads=ctx.study.train.threads, figures=False, progress=False)
        from scalpel.analyze.update_structure import analyze_structure  # the literature's measures

        analyze_structure(ctx.base_model, cks, ctx.out / "analysis" / "structure" / job.args["arm"] /
                          f"seed-{job.args['seed']}", labels=[job.args["arm"]])
        return {}
    if job.kind == "trace":
        from scalpel.analyze.trace import causal_trace

        a = ctx.study.analysis
        facts = a.trace_facts or (str(Path(ctx.world) / "tasks" / "facts.jsonl") if ctx.world else None)
        if facts is None:  # a real model and no facts file: nothing to trace (check_tracing: no arm needs it)
            reason = trace_skip_reason(ctx.study)
            atomic.write_json(ctx.out / "analysis" / "trace" / "skipped.json", {"reason": reason})
            log(f"{job.name}: skipped: {reason}")
            return {"skipped": reason}
        path = causal_trace(ctx.base_model, facts, ctx.out / "analysis" / "trace", samples=a.trace_samples,
                            max_facts=a.trace_max_facts, threshold=a.trace_threshold,
                            threads=ctx.study.train.threads, figures=True, progress=False)
        s = json.loads(path.read_text())
        log(f"{job.name}: {s['selector']['criterion']}: layers {s['selector']['layers']}")
        return {"known": s["n_known"], "selector": s["selector"]["freeze"], "layers": s["selector"]["layers"]}
    raise ValueError(f"unknown job kind {job.kind!r}")


def _task_kl(ctx: Context, model: Path, d: Path) -> None:
    """KL to the base on the in-domain task along this checkpoint's own evaluation samples
    (``scalpel.analyze.task_kl``), beside the evaluation as ``task_kl.json``."""
    from scalpel.analyze.task_kl import task_kl

    files = [d / b / "samples.jsonl" for b in in_domain_of(ctx.study, ctx.world is not None)]
    files = [f for f in files if f.is_file()]
    if files:
        atomic.write_json(d / "task_kl.json", task_kl(ctx.base_model, model, files,
                                                      ctx.study.analysis.kl_max_examples))


def _retire_other_selection(ctx: Context, job: Job, log) -> None:
    """A run of a traced arm trained on other layers (the base's trace changed) is moved aside, so the arm retrains
    instead of resuming checkpoints of another selection."""
    from scalpel.train import checkpoints as C
    from scalpel.train.arms import resolve_arm

    rd = run_dir(ctx.out, job.args["arm"], job.args["seed"])
    done = C.complete_checkpoints(rd)
    if not done:
        return
    arm = next(a for a in ctx.study.arms if a.name == job.args["arm"])
    now = resolve_arm(arm, job.args["traced_layers"]).freeze.model_dump(mode="json")
    before = C.read_manifest(next(iter(done.values()))).get("freeze")
    if before != now:
        aside = rd.with_name(f"{rd.name}.other-trace-{time.strftime('%Y%m%d-%H%M%S')}")
        rd.rename(aside)
        log(f"{job.name}: {rd} was trained freezing {before}, the trace now selects {now}: moved it to {aside}")
