"""``scalpel study``: base model -> every arm x seed -> evaluation -> analyses -> index, claims, report.

Resumable by construction. Every job (``scalpel.study.jobs``) is idempotent on its own (training resumes from its
last complete checkpoint, evaluation skips finished benchmarks, analyses rewrite their outputs) and, once it
finishes, gets a done-marker ``.done/<job>.json`` holding the job's key (a hash of everything that decides its
output). A rerun skips jobs whose marker matches and runs the rest, so after ``kill -9`` only unfinished work is
redone and, everything being seeded, the results equal an uninterrupted run's.

Side by side. Jobs run in ``study.workers`` worker processes as soon as their dependencies are done (an arm's
evaluation and analyses start while other arms still train); a training job runs in its worker, or under
``accelerate launch`` with GRPO's vLLM server around it when ``study.launch`` says so (``scalpel.study.launch``),
and an arm with ``trained: DIR`` is adopted instead of trained. Workers die with the study process (Linux
``PR_SET_PDEATHSIG``), so a killed study leaves no orphan writing into its directory, and a lock file keeps two
studies out of one directory. Each job logs to ``logs/<job>.log``; the terminal gets one line per event with
per-phase progress and an estimate of the time left.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from scalpel import atomic, config
from scalpel.config import Config, ConfigError
from scalpel.locks import locked
from scalpel.study.jobs import KINDS, Context, Job, check_tracing, log_path, plan, run_job, with_traced_layers

# Rough seconds per job before any has finished (replaced by measured means as jobs complete).
PRIOR_SECONDS = {"train": 40.0, "eval": 30.0, "passk": 20.0, "kl": 10.0, "weights": 5.0, "trace": 20.0}
# Changing these in a study directory is fine: evaluation / analysis jobs are keyed by their own settings and rerun.
IGNORED_FOR_RESUME = (("study", "workers"), ("study", "launch"), ("study", "train", "threads"),
                      ("study", "train", "report_to"), ("study", "eval"), ("study", "analysis"))


class StudyFailed(RuntimeError):
    """Some jobs failed; the others finished and the index/report cover what exists."""


def _comparable(cfg_json: dict) -> dict:
    c = json.loads(json.dumps(cfg_json))
    for path in IGNORED_FOR_RESUME:
        d = c
        for k in path[:-1]:
            d = d.get(k, {})
        d.pop(path[-1], None)
    return c


def _diff(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        return out
    return [] if a == b else [prefix]


@contextlib.contextmanager
def study_lock(out: Path):
    """One study process per output directory (``locks.locked``; released by the kernel if the holder dies)."""
    try:
        with locked(out / ".lock", wait=False):
            yield
    except BlockingIOError:
        raise ConfigError(f"{out} is in use by another scalpel study (lock {out / '.lock'})") from None


def check_config(cfg: Config, out: Path) -> dict:
    """Record the resolved config in ``out/config.json``; refuse to resume a directory trained under another config
    (evaluation and analysis settings may change: the jobs they decide are rerun)."""
    if cfg.study is None:
        raise ConfigError("this config has no `study` section (see recipes/microworld/study.yaml)")
    cfg_json = cfg.model_dump(mode="json")
    path = out / "config.json"
    if path.is_file():
        old = json.loads(path.read_text())
        with contextlib.suppress(ConfigError):  # as this version reads it: a field added since gets its default
            old = config.validate(old, str(path)).model_dump(mode="json")
        changed = _diff(_comparable(old), _comparable(cfg_json))
        if changed:
            raise ConfigError(f"{out} holds a study trained under a different configuration (differs in: "
                              f"{', '.join(changed[:8])}); use another --out, or delete {out} to start over")
    atomic.write_json(path, cfg_json)
    return cfg_json


# ---------------------------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------------------------


def _init_worker() -> None:
    """Die with the parent (no orphan keeps writing after a kill -9 of the study) and keep library chatter down."""
    from scalpel.console import quiet_libraries
    from scalpel.processes import die_with_parent

    die_with_parent()
    quiet_libraries()


def _work(cfg_json: dict, ctx_fields: dict, job: Job, log_file: str) -> tuple[float, dict | None, str | None]:
    """Run one job with stdout/stderr going to its log file; never raises (a traceback travels back as text)."""
    t0 = time.perf_counter()
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "a", buffering=1) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            ctx = Context(config.validate(cfg_json, "config.json"), Path(ctx_fields["out"]),
                          ctx_fields["base_model"], ctx_fields["world"], ctx_fields["system_prompt"])
            print(f"== {job.name} ({time.strftime('%Y-%m-%d %H:%M:%S')})", flush=True)
            result = run_job(ctx, job, log=lambda *a: print(*a, flush=True))
            return time.perf_counter() - t0, result, None
        except BaseException as exc:  # noqa: BLE001 - reported to the main process, which decides
            traceback.print_exc()
            return time.perf_counter() - t0, None, f"{type(exc).__name__}: {exc}"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


# ---------------------------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------------------------


class LiveView:
    """One line per event: what finished, per-phase counts, elapsed and an estimate of the time left."""

    def __init__(self, jobs: list[Job], done: set[str], workers: int, say):
        self.jobs, self.done, self.workers, self.say = jobs, done, workers, say
        self.t0 = time.perf_counter()
        self.measured: dict[str, list[float]] = {}
        self.running: dict[str, float] = {}

    def estimate(self, kind: str) -> float:
        xs = self.measured.get(kind)
        return sum(xs) / len(xs) if xs else PRIOR_SECONDS.get(kind, 20.0)

    def left(self) -> float:
        now = time.perf_counter()
        todo = sum(self.estimate(j.kind) for j in self.jobs if j.name not in self.done and j.name not in self.running)
        running = sum(max(0.0, self.estimate(j.kind) - (now - self.running[j.name]))
                      for j in self.jobs if j.name in self.running)
        return (todo + running) / self.workers

    def counts(self) -> str:
        parts = []
        for kind in KINDS:
            of = [j for j in self.jobs if j.kind == kind]
            if of:
                parts.append(f"{kind} {sum(j.name in self.done for j in of)}/{len(of)}")
        return ", ".join(parts)

    def event(self, text: str) -> None:
        el = time.perf_counter() - self.t0
        self.say(f"[{_clock(el)} | ~{_clock(self.left())} left] {text} · {self.counts()}")


def _clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def marker_path(out: Path, job: Job) -> Path:
    return out / ".done" / f"{job.name}.json"


def read_marker(out: Path, job: Job, cfg_json: dict) -> dict | None:
    """The job's done-marker if it matches the job's current key, else None."""
    if job.waits_for_trace:
        return None
    try:
        marker = json.loads(marker_path(out, job).read_text())
    except (OSError, ValueError):
        return None
    return marker if marker.get("key") == job.key(cfg_json) else None


def is_done(out: Path, job: Job, cfg_json: dict) -> bool:
    return read_marker(out, job, cfg_json) is not None


def traced_layers(out: Path, jobs: list[Job], cfg_json: dict) -> list[int] | None:
    """The layers the base's causal tracing selected, once its job is done (None before)."""
    trace = next((j for j in jobs if j.kind == "trace"), None)
    marker = read_marker(out, trace, cfg_json) if trace is not None else None
    return ((marker or {}).get("result") or {}).get("layers")


def prepare(cfg: Config, out: Path, say=print) -> tuple[Context, float]:
    """Resolve (and if needed build) the base model; check what can be checked before any compute."""
    from scalpel.study.launch import check_launch
    from scalpel.train.arms import preflight, resolve_base

    t0 = time.perf_counter()
    check_launch(cfg.study)  # before a micro-world build or a download
    base = resolve_base(cfg, say, progress=True)  # a micro-world build shows its own progress bar
    preflight(cfg, cfg.study.launch.num_processes, base)
    world = None
    if base.world is not None:
        world = str(base.world.dir)
        if "eval" in base.world.manifest:  # the micro-world's own health check, up front
            from scalpel.microworld.inspect import accuracy_table, ranges_for

            say(accuracy_table(base.world.manifest["eval"], ranges_for(base.world.manifest["config"]["size"])))
    check_tracing(cfg.study, world)
    return Context(cfg, out, base.model_path, world, base.system_prompt), time.perf_counter() - t0


def run_study(cfg: Config, out: str | Path, say=print) -> Path:
    """Run (or finish) the whole study in ``out``; returns the path of ``index.json``."""
    from scalpel.study.index import build_index
    from scalpel.study.report import write_report

    out = Path(out)
    with study_lock(out):
        cfg_json = check_config(cfg, out)
        timings_path = out / "timings.json"
        timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        say(f"study {cfg.study.name} -> {out}")
        ctx, world_s = prepare(cfg, out, say)
        timings.setdefault("phases", {})["base model (micro-world build or resolve)"] = round(world_s, 1)
        jobs = plan(cfg)
        jobs = with_traced_layers(jobs, traced_layers(out, jobs, cfg_json))
        done = {j.name for j in jobs if is_done(out, j, cfg_json)}
        if done:
            say(f"resuming: {len(done)} of {len(jobs)} jobs already done")
        failed = _run_jobs(cfg_json, ctx, jobs, done, cfg.study.workers, timings, say)
        t0 = time.perf_counter()
        index = build_index(out, cfg, ctx, jobs, done, failed, timings)
        timings["phases"]["index + claims"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        report = write_report(out, index)
        timings["phases"]["report"] = round(time.perf_counter() - t0, 1)
        index["report"] = {"html": str(report.relative_to(out)), "markdown": "report/summary.md"}
        index["timings"] = timings
        atomic.write_json(out / "index.json", index)
        atomic.write_json(timings_path, timings)
        say("phase times (s): " + ", ".join(f"{k} {v}" for k, v in timings["phases"].items()))
        say(f"report: {report}")
        if failed:
            raise StudyFailed(f"{len(failed)} job(s) failed: " + "; ".join(
                f"{n} ({e}; log {log_path(out, n)})" for n, e in failed.items()))
        return out / "index.json"


def _traced_arms_ready(out: Path, todo: list[Job], done: set[str], cfg_json: dict, layers: list[int],
                       view: LiveView) -> None:
    """After the trace: give the traced arms' jobs their layers (in place); those already done with exactly these
    layers (a rerun whose trace was redone with the same result) count as done."""
    todo[:] = with_traced_layers(todo, layers)
    for j in [j for j in todo if is_done(out, j, cfg_json)]:
        todo.remove(j)
        done.add(j.name)
        view.event(f"{j.name} already done with these traced layers")


def _run_jobs(cfg_json: dict, ctx: Context, jobs: list[Job], done: set[str], workers: int, timings: dict,
              say) -> dict[str, str]:
    """Schedule jobs onto worker processes as their dependencies finish. Returns {job: error} of failures."""
    out = ctx.out
    todo = [j for j in jobs if j.name not in done]
    failed: dict[str, str] = {}
    if not todo:
        return failed
    view = LiveView(jobs, done, workers, say)
    view.event(f"{len(todo)} job(s) to run on {workers} worker(s)")
    fields = {"out": str(out), "base_model": ctx.base_model, "world": ctx.world, "system_prompt": ctx.system_prompt}
    wall = {k: 0.0 for k in KINDS}
    t_start = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_init_worker)
    running = {}
    try:
        while todo or running:
            blocked = {j.name for j in todo if any(d in failed for d in j.deps)}
            for j in [j for j in todo if j.name in blocked]:
                failed[j.name] = "skipped: a job it depends on failed"
                todo.remove(j)
            ready = [j for j in todo if all(d in done for d in j.deps)]
            while ready and len(running) < workers:
                j = ready.pop(0)
                todo.remove(j)
                fut = pool.submit(_work, cfg_json, fields, j, str(log_path(out, j.name)))
                running[fut] = j
                view.running[j.name] = time.perf_counter()
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                j = running.pop(fut)
                view.running.pop(j.name, None)
                seconds, result, error = fut.result()
                wall[j.kind] += seconds
                if error is None:
                    marker = {"key": j.key(cfg_json), "seconds": round(seconds, 2), "result": result}
                    atomic.write_text(marker_path(out, j), json.dumps(marker, default=str))
                    done.add(j.name)
                    view.measured.setdefault(j.kind, []).append(seconds)
                    view.event(f"{j.name} done in {seconds:.0f} s")
                    if j.kind == "trace" and result.get("layers") is not None:
                        _traced_arms_ready(out, todo, done, cfg_json, result["layers"], view)
                else:
                    failed[j.name] = error
                    view.event(f"{j.name} FAILED ({error}); log: {log_path(out, j.name)}")
    except BaseException:
        for p in getattr(pool, "_processes", {}).values():
            with contextlib.suppress(Exception):
                p.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    timings["phases"]["jobs (wall)"] = round(time.perf_counter() - t_start, 1)
    timings["job_seconds_this_run"] = {k: round(v, 1) for k, v in wall.items() if v}
    return failed
