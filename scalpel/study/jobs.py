"""The jobs of a study and what each one runs: train an arm x seed, evaluate, pass@k, KL, weights, tracing.

A job is plain data (kind, name, arguments, dependencies) so it can be planned in the main process, shipped to a
worker process and keyed for the done-marker that makes a rerun skip it. ``run_job`` is the only function that
touches the heavy libraries; everything it calls is an existing scalpel entry point (``run_arm``,
``evaluate_model``, ``kl_curve``, ``analyze_weights``, ``causal_trace``), so the study adds no second code path.

Directory layout of a study ``DIR``::

    config.json                       the resolved configuration the study runs with
    runs/<arm>/seed-<s>/              scalpel.train output (checkpoints, log.jsonl, health.jsonl, arm.json)
    eval/base/  eval/<arm>/seed-<s>/step-<N>/     scalpel.evaluate output per model
    passk/base/ passk/<arm>/seed-<s>/             pass@k samples (in-domain benchmarks, base and final checkpoint)
    analysis/kl/<arm>/seed-<s>/  analysis/weights/<arm>/seed-<s>/  analysis/trace/
    logs/<job>.log  .done/<job>.json  index.json  claims.json  report/index.html  report/summary.md
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scalpel.config import Config, StudyConfig

KINDS = ("train", "eval", "passk", "kl", "weights", "trace")
MATHS_SCORERS = ("maths", "gsm8k")


@dataclass(frozen=True)
class Job:
    kind: str
    name: str  # unique, file-name safe: train-sft-s0, eval-base, ...
    args: dict = field(default_factory=dict)
    deps: tuple[str, ...] = ()

    def key(self, cfg_json: dict) -> str:
        """Changes whenever anything that decides this job's output changes (so a stale marker is not trusted)."""
        drop = {"workers"} | {"train": {"eval", "analysis"}, "kl": {"eval"}, "weights": {"eval"},
                              "trace": {"eval"}}.get(self.kind, {"analysis"})
        study = {k: v for k, v in cfg_json["study"].items() if k not in drop}
        study["train"] = {k: v for k, v in study["train"].items() if k != "threads"}
        blob = {"job": asdict(self), "study": study, "microworld": cfg_json.get("microworld")}
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:20]


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / "runs" / arm / f"seed-{seed}"


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
        for seed in study.seeds:
            tag = f"{arm.name}-s{seed}"
            train = f"train-{tag}"
            jobs.append(Job("train", train, {"arm": arm.name, "seed": seed}))
            steps = evaluated_steps(schedule(study.train.steps * arm.epochs, study.train.checkpoints),
                                    study.eval.checkpoints)
            jobs.append(Job("eval", f"eval-{tag}", {"arm": arm.name, "seed": seed, "steps": steps}, (train,)))
            if study.eval.passk_samples > 1 and (study.eval.passk_arms is None or arm.name in study.eval.passk_arms):
                jobs.append(Job("passk", f"passk-{tag}", {"arm": arm.name, "seed": seed, "steps": steps[-1:]},
                                (train,)))
            if a.kl:
                jobs.append(Job("kl", f"kl-{tag}", {"arm": arm.name, "seed": seed}, (train,)))
            if a.weights:
                jobs.append(Job("weights", f"weights-{tag}", {"arm": arm.name, "seed": seed}, (train,)))
    return jobs


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
        from scalpel.train.arms import run_arm

        s = run_arm(ctx.cfg, job.args["arm"], job.args["seed"], ctx.out / "runs", progress=True, log_fn=log)
        return {"checkpoints": s["checkpoints"], "unhealthy_events": s.get("unhealthy_events", 0)}
    if job.kind in ("eval", "passk"):
        from scalpel.evaluate.runner import evaluate_model

        cfg = _eval_config(ctx, job.kind == "passk")
        where = eval_dir(ctx.out, job.kind, job.args.get("arm"), job.args.get("seed"))
        for name, model in _models(ctx, job).items():
            d = where if name == "base" else where / name
            res = evaluate_model(model, d, cfg, name=name)
            log(f"{job.name} {name}: " + ", ".join(f"{b} {r['accuracy']:.3f}" for b, r in res.items()))
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
        return {}
    if job.kind == "trace":
        from scalpel.analyze.trace import causal_trace

        a = ctx.study.analysis
        facts = a.trace_facts or (str(Path(ctx.world) / "tasks" / "facts.jsonl") if ctx.world else None)
        if facts is None:
            raise ValueError("study.analysis.trace_facts: give a ROME known_1000.json for a non-micro-world base "
                             "(or set study.analysis.trace: false)")
        path = causal_trace(ctx.base_model, facts, ctx.out / "analysis" / "trace", samples=a.trace_samples,
                            max_facts=a.trace_max_facts, relative=True, threshold=0.5,
                            threads=ctx.study.train.threads, figures=True, progress=False)
        s = json.loads(path.read_text())
        return {"known": s["n_known"], "selector": s["selector"]["freeze"]}
    raise ValueError(f"unknown job kind {job.kind!r}")
