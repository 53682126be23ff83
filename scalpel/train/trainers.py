"""TRL's ``GRPOTrainer`` and ``SFTTrainer`` with the few hooks a matched study needs — not a training loop.

What is overridden, and why (each a few lines; the training step, losses and optimizer are TRL's/transformers'):

- ``_save_checkpoint`` / ``_get_output_dir``: Trainer writes its checkpoint (weights, tokenizer, optimizer,
  scheduler, RNG, trainer_state) into ``.staging/``; then the manifest is added and the directory is renamed into
  place (``scalpel.train.checkpoints``), so a crash never leaves a half checkpoint that looks complete.
- GRPO ``_calculate_rewards``: observes the question ids and decoded completions TRL actually rolled out (for the
  matching check and the health guards), then defers to TRL.
- SFT ``_get_train_sampler``: sequential, so rows are consumed in the question stream's order (the dataset *is*
  the stream). The row index rides along in the batch (``scalpel_row``; kept by the signature columns and the
  collator wrapper) and ``training_step`` pops it before TRL sees the batch, recording what was trained on.
  (GRPO needs no sampler change: ``shuffle_dataset=False`` makes TRL's ``RepeatSampler`` walk the dataset in order.)

Callbacks: ``StreamCheck`` gathers the observed ids of every process at the end of each optimizer step and checks
them against ``block(t)`` of the stream (raises ``MatchingError`` otherwise); ``CheckpointSchedule`` decides which
steps are saved; ``JsonlLog`` appends each log line to ``log.jsonl``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import torch
from torch.utils.data import SequentialSampler
from transformers import TrainerCallback
from trl import GRPOTrainer, SFTTrainer

from scalpel import atomic
from scalpel.train import checkpoints as C
from scalpel.train.rewards import completion_text


class MatchingError(RuntimeError):
    """TRL trained on other questions than the stream's block for this step: the matching claim would be false."""


class _Atomic:
    """Atomic checkpoints for any transformers Trainer (see module docstring)."""

    scalpel = None  # the ArmRun that owns this trainer (set by scalpel.train.arms)
    _scalpel_staging: Path | None = None

    def _get_output_dir(self, trial=None) -> str:
        if self._scalpel_staging is not None:
            return str(self._scalpel_staging)
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        step = self.state.global_step
        self._scalpel_staging = run_dir / C.STAGING
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._scalpel_staging = None
        self.accelerator.wait_for_everyone()  # every process has written its RNG state
        if self.args.should_save:
            self.scalpel.finish_checkpoint(run_dir / C.STAGING / f"checkpoint-{step}", step)
        self.accelerator.wait_for_everyone()


class ScalpelGRPOTrainer(_Atomic, GRPOTrainer):
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self.model.training and self.scalpel is not None:
            ids = [x["id"] for x in inputs]
            self.scalpel.observe(ids, list(zip(ids, (completion_text(c) for c in completions))))
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)


class _RowCollator:
    """Wraps TRL's collator: carries each example's stream row index into the batch as ``scalpel_row``."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples):
        rows = [e.pop("scalpel_row") for e in examples]
        batch = self.inner(examples)
        batch["scalpel_row"] = torch.tensor(rows, dtype=torch.long)
        return batch


class ScalpelSFTTrainer(_Atomic, SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_collator = _RowCollator(self.data_collator)

    def _get_train_sampler(self, dataset=None):
        return SequentialSampler(dataset if dataset is not None else self.train_dataset)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "scalpel_row" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "scalpel_row"]

    def training_step(self, model, inputs, num_items_in_batch=None):
        rows = inputs.pop("scalpel_row", None)
        if rows is not None and self.scalpel is not None:
            self.scalpel.observe([self.scalpel.row_ids[r] for r in rows.tolist()], None)
        return super().training_step(model, inputs, num_items_in_batch)


# ---------------------------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------------------------


class StreamCheck(TrainerCallback):
    """At each optimizer step's end: what all processes trained on == the stream's block, with the right counts."""

    def __init__(self, run):
        self.run = run

    def on_step_end(self, args, state, control, **kwargs):
        run = self.run
        local = run.take_observed()
        seen = Counter(run.gather(local))
        t = state.global_step - 1
        expected_ids = run.expected_block(t)
        expected = Counter({i: run.repeats for i in expected_ids})
        if seen != expected:
            missing = sorted((expected - seen).elements())[:5]
            extra = sorted((seen - expected).elements())[:5]
            raise MatchingError(f"step {t + 1}: TRL trained on other questions than the stream's block "
                                f"(missing {missing}, unexpected {extra}); the arms would not be matched")
        run.questions.append(expected_ids)
        return control


class CheckpointSchedule(TrainerCallback):
    """Save exactly at the scheduled steps (overrides Trainer's fixed save_steps decision)."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        control.should_save = state.global_step in self.steps
        return control


class JsonlLog(TrainerCallback):
    """Append every log entry (with its step) to ``log.jsonl`` on the main process."""

    def __init__(self, path: Path, is_main: bool):
        self.path, self.is_main = Path(path), is_main
        self._t0, self.step_seconds = None, None

    def resume(self, upto_step: int) -> None:
        if self.is_main and self.path.is_file():
            atomic.truncate_jsonl(self.path, upto_step)

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self._t0 is not None:
            self.step_seconds, self._t0 = time.perf_counter() - self._t0, None
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.is_main and logs:
            entry = {"step": state.global_step, **logs}
            if "loss" in logs and self.step_seconds is not None:
                entry["step_seconds"] = round(self.step_seconds, 4)  # wall time of the last optimizer step
            with open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")
        return control


class Progress(TrainerCallback):
    """One line every ~5 % of the steps: loss, accuracy reward (GRPO), seconds per step."""

    def __init__(self, total: int, say=print):
        self.total, self.say = total, say
        self.every = max(1, round(total / 20))
        self.t0 = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0, self.start = time.perf_counter(), state.global_step
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = state.global_step
        if "loss" not in logs or (step % self.every and step != self.total):
            return control
        parts = [f"step {step}/{self.total}", f"loss {logs['loss']:.4g}"]
        for key in ("rewards/accuracy_reward/mean", "rewards/format_reward/mean"):
            if isinstance(logs.get(key), (int, float)):
                parts.append(f"{key.split('/')[1].removesuffix('_reward')} {logs[key]:.3f}")
        if step > self.start:
            parts.append(f"{(time.perf_counter() - self.t0) / (step - self.start):.2f} s/step")
        self.say("  " + ", ".join(parts))
        return control
