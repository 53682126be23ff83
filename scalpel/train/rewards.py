"""GRPO reward functions with TRL's signature: ``f(completions, **kwargs) -> list[float | None]``.

TRL 1.16 calls every reward as ``f(prompts=…, completions=…, completion_ids=…, **columns, trainer_state=…,
log_extra=…, log_metric=…)``: completions are ``[[{"role": "assistant", "content": str}], …]`` for conversational
data or plain strings otherwise (both are accepted here), dataset columns such as ``answer`` arrive as lists, and a
``None`` reward becomes NaN, which TRL's weighted ``nansum`` skips. The study config names rewards and weights
(paper, Fig. 15: accuracy 1.0, format 0.1, tag_count off); ``build_reward_funcs`` turns that mapping into TRL's
``reward_funcs`` and ``reward_weights``. TRL logs each as ``rewards/<function name>/mean``.

- ``accuracy_reward``: equivalence of the prediction with the dataset's ``answer`` column, graded by
  ``scalpel.grading`` with the same extraction and comparison rules as the evaluation's maths scores (prediction
  from the last ``<answer>…</answer>``, else the last ``\\boxed{…}``; math-verify, with compound answers, times,
  quantities and text compared completely; see that package). A gold that is not usable scores ``None``
  (skipped), never a free 1.0 (open-r1 gives 1.0 there). Grading runs in worker processes with a hard
  per-item timeout that works on any thread; a timed-out or crashed item scores 0.0, is logged and counted
  (``log_metric("accuracy/timeouts")``).
- ``format_reward``: 1.0 iff the completion is exactly ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>``: it
  starts with ``<think>\\n``, each of the four tags occurs exactly once, and nothing but whitespace follows
  ``</answer>``. A whitespace-only tail is allowed because it carries nothing (tokenizers often decode a newline
  before the stripped end token); any other tail scores 0.0. Bodies may be empty (as in open-r1). Deviation from open-r1,
  deliberately: its regex uses ``re.MULTILINE``, so its ``$`` matches at the end of *any* line and text or tags
  after ``</answer>\\n`` still scored 1.0, the opening the paper's tag-spam reward hacking ran through (Fig. 10/14).
- ``tag_count_reward``: open-r1's, unchanged: 0.25 for each of ``<think>\\n``, ``\\n</think>\\n``, ``\\n<answer>\\n``,
  ``\\n</answer>`` that occurs exactly once.

Only ``accuracy_reward`` can raise, and only on mis-wiring (no ``answer`` column, or lengths that differ); the
others never raise. No printing: everything goes through ``logging``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from scalpel import grading

log = logging.getLogger(__name__)

_TAGS = ("<think>", "</think>", "<answer>", "</answer>")

RewardFunc = Callable[..., list]


# ---------------------------------------------------------------------------------------------------------------
# Completion text
# ---------------------------------------------------------------------------------------------------------------


def completion_text(completion) -> str:
    """The text of one TRL completion: a string, or the content of the last message of a message list."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and completion:
        message = completion[-1]
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, str):
            return content
        if isinstance(content, Sequence):  # multimodal parts: [{"type": "text", "text": …}, …]
            return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and
                           isinstance(p.get("text", ""), str))
    return ""


# ---------------------------------------------------------------------------------------------------------------
# Rewards
# ---------------------------------------------------------------------------------------------------------------


def accuracy_reward(completions, answer=None, **kwargs) -> list[float | None]:
    """1.0 if the prediction is equivalent to the gold ``answer``, 0.0 if not (or no prediction, or timeout), None
    if the gold is not usable. See the module docstring for extraction rules."""
    if answer is None:
        raise TypeError("accuracy_reward needs the dataset's 'answer' column (TRL passes it as answer=[...])")
    if len(answer) != len(completions):
        raise ValueError(f"accuracy_reward got {len(completions)} completions but {len(answer)} answers")
    try:
        rewards: list[float | None] = [None] * len(completions)
        golds, preds, where = [], [], []
        for i, (completion, gold) in enumerate(zip(completions, answer)):
            if gold is None or (isinstance(gold, float) and not math.isfinite(gold)):
                continue  # no gold: skipped, like an unparseable one
            golds.append(gold if isinstance(gold, str) else str(gold))
            preds.append(grading.extract_answer(completion_text(completion)))
            where.append(i)
        outcomes = grading.default_grader().grade_answers(golds, preds) if golds else []
        for i, outcome in zip(where, outcomes):
            rewards[i] = None if outcome == grading.GOLD_UNPARSEABLE else float(outcome == grading.CORRECT)
        failed = Counter(o for o in outcomes if o in grading.FAILED)
        if failed:
            log.warning("accuracy_reward: %d of %d items not graded (%s), scored 0.0", sum(failed.values()),
                        len(golds), dict(failed))
        _log_metric(kwargs.get("log_metric"), "accuracy/timeouts", failed[grading.TIMEOUT])
        _log_metric(kwargs.get("log_metric"), "accuracy/gold_unparseable", rewards.count(None))
        return rewards
    except Exception:  # never let grading take a training run down
        log.exception("accuracy_reward failed; scoring the batch 0.0")
        return [0.0] * len(completions)


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 iff exactly ``<think>\\n…\\n</think>\\n<answer>\\n…\\n</answer>`` plus at most trailing whitespace."""
    return [_format_ok(completion_text(c)) for c in completions]


def _format_ok(text: str) -> float:
    head, middle, tail = "<think>\n", "\n</think>\n<answer>\n", "\n</answer>"
    body = text.rstrip()  # a whitespace-only tail is allowed
    if not (body.startswith(head) and body.endswith(tail)) or any(body.count(t) != 1 for t in _TAGS):
        return 0.0
    mid = body.find(middle)
    # the newlines of the four markers must be distinct characters ("<think>\n</think>" is not a think block)
    ok = mid >= len(head) and mid + len(middle) <= len(body) - len(tail)
    return 1.0 if ok else 0.0


def tag_count_reward(completions, **kwargs) -> list[float]:
    """open-r1's tag count: 0.25 per marker (``<think>\\n``, ``\\n</think>\\n``, ``\\n<answer>\\n``, ``\\n</answer>``)
    occurring exactly once."""
    markers = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")
    return [0.25 * sum(completion_text(c).count(m) == 1 for m in markers) for c in completions]


REWARDS: dict[str, RewardFunc] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "tag_count": tag_count_reward,
}


def build_reward_funcs(weights: Mapping[str, float]) -> tuple[list[RewardFunc], list[float]]:
    """TRL's ``reward_funcs`` and ``GRPOConfig.reward_weights`` from ``{name: weight}`` (order kept).

    A weight of 0 keeps the reward logged without letting it move the advantage.
    """
    if not weights:
        raise ValueError(f"no rewards given; choose from {sorted(REWARDS)}")
    unknown = [name for name in weights if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known rewards: {sorted(REWARDS)}")
    values = []
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ValueError(f"reward weight for {name!r} must be a finite number, got {w!r}")
        values.append(float(w))
    return [REWARDS[name] for name in weights], values


def _log_metric(log_metric, name: str, value: float) -> None:
    if callable(log_metric):
        try:
            log_metric(name, float(value))
        except Exception:  # logging must never break a reward
            log.debug("log_metric(%s) failed", name, exc_info=True)
