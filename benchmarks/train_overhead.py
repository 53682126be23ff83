"""Overhead of a scalpel arm over plain TRL, measured side by side: same model, batch, data order and seed.

    .venv/bin/python benchmarks/train_overhead.py [--world DIR] [--steps 20] [--rounds 3] [--arms grpo sft]

For each arm of ``recipes/microworld/study.yaml`` asked for (defaults shrunk to ``--steps``), it alternates rounds of

- *plain*: TRL's ``GRPOTrainer`` / ``SFTTrainer`` built directly (same GRPOConfig/SFTConfig values, the same rows in
  the same order, shuffle off, no checkpoints), and
- *scalpel*: ``scalpel.train.arms.run_arm`` (stream check, health guards, JSONL log, manifests, checkpoints),

timing every optimizer step from ``on_step_begin`` to ``on_step_end`` with the same callback (checkpoint writes
happen after ``on_step_end`` and are reported separately as wall time per step). With the same seed both sides
roll out identical completions, so GRPO step times compare like for like. Prints median step times and the ratio
(target: <= 1.10). Uses 1 torch thread per process; run it on an otherwise idle machine for stable numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=str(REPO / "recipes" / "microworld" / "study.yaml"))
    ap.add_argument("--world", default=None, help="built micro-world dir (default: build the study's, cached)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arms", nargs="+", default=["grpo", "sft"])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import torch

    from scalpel import config
    from scalpel.train.cli import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(1)
    overrides = [f"study.train.steps={args.steps}", "study.train.checkpoints=2"]
    if args.world:
        overrides.append(f"study.model={args.world}")
    cfg = config.load(args.study, overrides)
    results = {}
    for arm in args.arms:
        times = {"plain": [], "scalpel": []}
        walls = {"plain": [], "scalpel": []}
        for r in range(args.rounds):
            for side in ("plain", "scalpel") if r % 2 == 0 else ("scalpel", "plain"):
                steps, wall = (plain if side == "plain" else scalpel)(cfg, arm)
                times[side].extend(steps[1:])  # the first step pays one-off costs (allocations, grader start)
                walls[side].append(wall / args.steps)
                print(f"  {arm} round {r + 1} {side:8s} median step {statistics.median(steps[1:]):.4f} s, "
                      f"wall {wall / args.steps:.4f} s/step", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        results[arm] = {"median_step_seconds": med, "ratio": med["scalpel"] / med["plain"],
                        "wall_seconds_per_step": {k: statistics.median(v) for k, v in walls.items()},
                        "steps_timed": {k: len(v) for k, v in times.items()}}
        print(f"{arm}: plain {med['plain']:.4f} s/step, scalpel {med['scalpel']:.4f} s/step, "
              f"ratio {results[arm]['ratio']:.3f} (target <= 1.10)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


class StepTimer:
    """The same timing callback for both sides."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self):
                self.t0, self.steps = None, []

            def on_step_begin(self, args, state, control, **kw):
                self.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                self.steps.append(time.perf_counter() - self.t0)

        return _Timer()


def scalpel(cfg, arm_name):
    from scalpel.train import arms

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        # run_arm builds its own callbacks; add the timer through the trainer factory of the arm's module
        from scalpel.train import grpo, sft

        module = grpo if next(a for a in cfg.study.arms if a.name == arm_name).algorithm == "grpo" else sft
        build = module.trainer

        def with_timer(run, model, tok, targs, callbacks):
            return build(run, model, tok, targs, [timer, *callbacks])

        module.trainer = with_timer
        try:
            t0 = time.perf_counter()
            arms.run_arm(cfg, arm_name, cfg.study.seeds[0], out, progress=False, log_fn=lambda *_: None)
            wall = time.perf_counter() - t0
        finally:
            module.trainer = build
    return timer.steps, wall


def plain(cfg, arm_name):
    """TRL as a user would call it, with the values scalpel would pass; rows in the same order."""
    import math

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    from scalpel.data.prompts import chat_template, messages
    from scalpel.train.arms import ArmRun, batch_plan, load_pool, resolve_base
    from scalpel.train.rewards import build_reward_funcs
    from scalpel.train.stream import QuestionStream

    study = cfg.study
    arm = next(a for a in study.arms if a.name == arm_name)
    base = resolve_base(cfg, lambda *_: None)
    plan = batch_plan(study, arm, 1)
    tok = AutoTokenizer.from_pretrained(base.model_path)
    tok.chat_template, tok.padding_side = chat_template(base.system_prompt), "left"
    model = AutoModelForCausalLM.from_pretrained(base.model_path)
    if arm.freeze:
        from scalpel.train.freeze import apply_freezing

        apply_freezing(model, arm.freeze.train_only, arm.freeze.freeze)
    pool, _ = load_pool(cfg, base, tok)
    seed = study.seeds[0]
    stream = QuestionStream(pool, seed, plan.per_step, study.train.steps, study.data.max_questions)
    run = ArmRun(study, arm, seed, Path("/nonexistent"), stream, plan, base.system_prompt, lambda x: x, {})
    ids = run.expected_ids()
    total = run.total_steps
    t = study.train
    common = dict(output_dir=tempfile.mkdtemp(), seed=seed, data_seed=seed, max_steps=total, learning_rate=arm.lr,
                  lr_scheduler_type=t.lr_scheduler, warmup_steps=math.ceil(t.warmup_ratio * total),
                  max_grad_norm=t.max_grad_norm, weight_decay=t.weight_decay,
                  per_device_train_batch_size=plan.per_device, gradient_accumulation_steps=plan.accumulation,
                  use_cpu=True, bf16=False, activation_checkpointing=False, logging_steps=1, save_strategy="no",
                  report_to="none", disable_tqdm=True)
    timer = StepTimer()
    q = {i: stream.by_id[i] for i in ids}
    if arm.algorithm == "grpo":
        g = study.grpo
        funcs, weights = build_reward_funcs(g.rewards)
        args = GRPOConfig(**common, num_generations=g.num_generations, max_completion_length=g.max_completion_length,
                          temperature=g.temperature, top_p=g.top_p, loss_type=g.loss_type, beta=g.beta,
                          epsilon=g.epsilon, scale_rewards=g.scale_rewards,
                          mask_truncated_completions=g.mask_truncated_completions, reward_weights=weights,
                          shuffle_dataset=False)
        data = Dataset.from_list([{"id": i, "prompt": messages(q[i].question, base.system_prompt),
                                   "answer": q[i].answer} for i in ids])
        trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=data, processing_class=tok,
                              callbacks=[timer])
    else:
        args = SFTConfig(**common, max_length=None, shuffle_dataset=False, completion_only_loss=True)
        data = Dataset.from_list([{"prompt": messages(q[i].question, base.system_prompt),
                                   "completion": [{"role": "assistant", "content": q[i].target}]} for i in ids])
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[timer])
        from torch.utils.data import SequentialSampler

        trainer._get_train_sampler = lambda dataset=None: SequentialSampler(data if dataset is None else dataset)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    t0 = time.perf_counter()
    trainer.train()
    return timer.steps, time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
