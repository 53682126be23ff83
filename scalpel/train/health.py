"""Training-health guards, as TRL/transformers ``TrainerCallback``s.

Three things went wrong in the paper's unstable runs (App. B/C, Figures 10, 13, 14) and are watched here:

- **text after ``</answer>``** — the tag-spam reward hacking of Fig. 10/14: the completion is correct and well
  tagged, then keeps writing (hallucinated XML tags) instead of stopping. Every completion of a GRPO step with
  anything but whitespace after its first ``</answer>`` is collected; the step is an event (a notice) when any is
  found, and *unhealthy* when their share among all the step's completions exceeds
  ``health.max_text_after_answer``.
- **grad-norm spikes** (Fig. 10/13) — the pre-clipping gradient norm above ``grad_spike_factor`` x the running
  median of the last ``grad_window`` steps (judged once ``grad_min_history`` steps are known).
- **non-finite loss or grad norm** — always unhealthy.

Every event is one JSON line in ``health.jsonl`` (step, kind, numbers, and the offending completions — or, for
gradient events, a sample of the step's completions when there are any). ``on_unhealthy: warn`` logs and goes on;
``stop`` ends training after the step (no checkpoint of the unhealthy step) and the arm reports the event.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import deque
from pathlib import Path

from transformers import TrainerCallback

from scalpel import atomic

log = logging.getLogger(__name__)

ANSWER_CLOSE = "</answer>"
MAX_LOGGED_COMPLETIONS = 16  # per event: enough to read the pattern, bounded for long runs
MAX_COMPLETION_CHARS = 4000


def text_after_answer(text: str) -> str | None:
    """What follows the first ``</answer>`` (stripped) if that is not empty; None if nothing or no ``</answer>``.

    The first, not the last: a completion that repeats whole answer blocks after its answer is spam too."""
    end = text.find(ANSWER_CLOSE)
    if end < 0:
        return None
    tail = text[end + len(ANSWER_CLOSE):].strip()
    return tail or None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_COMPLETION_CHARS else text[:MAX_COMPLETION_CHARS] + " …[clipped]"


class HealthMonitor(TrainerCallback):
    """Watches completions (fed by the GRPO trainer through ``observe``) and the logged loss / grad norm."""

    def __init__(self, cfg, path: Path, *, is_main: bool, gather=None):
        self.cfg = cfg
        self.path = Path(path)
        self.is_main = is_main
        self.gather = gather or (lambda x: x)  # list -> list over all processes (accelerate's gather_object)
        self.pending: list[tuple[str, str]] = []  # (question id, completion) of the current step, this process
        self.step_sample: list[dict] = []
        self.grad_norms: deque[float] = deque(maxlen=cfg.grad_window)
        self.events: list[dict] = []
        self.stopped: dict | None = None
        self.watch_completions = False  # set by the GRPO arm

    # -- inputs ---------------------------------------------------------------------------------------------------

    def observe(self, items: list[tuple[str, str]]) -> None:
        self.pending.extend(items)

    def resume(self, log_history: list[dict], upto_step: int) -> None:
        """Rebuild the grad-norm history from the resumed checkpoint's log and drop later events from the file."""
        for entry in log_history:
            gn = entry.get("grad_norm")
            if entry.get("step", 0) <= upto_step and isinstance(gn, (int, float)) and math.isfinite(gn):
                self.grad_norms.append(float(gn))
        if self.is_main and self.path.is_file():
            atomic.truncate_jsonl(self.path, upto_step)

    # -- callbacks ------------------------------------------------------------------------------------------------

    def on_step_end(self, args, state, control, **kwargs):
        if not self.watch_completions:
            return control
        step = state.global_step
        local_bad = [{"question_id": qid, "after_answer": _clip(tail), "completion": _clip(text)}
                     for qid, text in self.pending if (tail := text_after_answer(text)) is not None]
        sample = [{"question_id": q, "completion": _clip(t)} for q, t in self.pending[:2]]
        gathered = self.gather([(len(self.pending), local_bad, sample)])
        self.pending = []
        n = sum(c for c, _, _ in gathered)
        bad = [b for _, bs, _ in gathered for b in bs]
        self.step_sample = [s for _, _, ss in gathered for s in ss][:4]
        if bad and self.cfg.text_after_answer:
            share = len(bad) / max(n, 1)
            self._event(control, step, "text_after_answer", share > self.cfg.max_text_after_answer,
                        {"offending": len(bad), "completions_in_step": n, "share": round(share, 4),
                         "threshold": self.cfg.max_text_after_answer,
                         "completions": bad[:MAX_LOGGED_COMPLETIONS]})
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = state.global_step
        loss = logs.get("loss")
        if isinstance(loss, (int, float)) and not math.isfinite(loss):
            self._event(control, step, "nonfinite_loss", True, {"loss": str(loss), "sample": self.step_sample})
        gn = logs.get("grad_norm")
        if isinstance(gn, (int, float)):
            if not math.isfinite(gn):
                self._event(control, step, "nonfinite_grad_norm", True, {"grad_norm": str(gn), "sample": self.step_sample})
            else:
                if len(self.grad_norms) >= self.cfg.grad_min_history:
                    median = statistics.median(self.grad_norms)
                    if median > 0 and gn > self.cfg.grad_spike_factor * median:
                        self._event(control, step, "grad_norm_spike", True,
                                    {"grad_norm": gn, "running_median": median, "factor": round(gn / median, 2),
                                     "threshold_factor": self.cfg.grad_spike_factor, "sample": self.step_sample})
                self.grad_norms.append(float(gn))
        return control

    # -- events ---------------------------------------------------------------------------------------------------

    def _event(self, control, step: int, kind: str, unhealthy: bool, details: dict) -> None:
        event = {"step": step, "kind": kind, "unhealthy": unhealthy, "action": "none", **details}
        if unhealthy:
            event["action"] = self.cfg.on_unhealthy
            log.warning("health: %s at step %d (%s)", kind, step,
                        ", ".join(f"{k}={v}" for k, v in details.items() if not isinstance(v, list)))
            if self.cfg.on_unhealthy == "stop":
                control.should_training_stop = True
                control.should_save = False
                self.stopped = self.stopped or event
        self.events.append({k: v for k, v in event.items() if k not in ("completions", "sample")})
        if self.is_main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(event, ensure_ascii=False) + "\n")
