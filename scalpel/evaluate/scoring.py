"""Scoring: maths by math-verify extractive match, multiple choice by letter, IFEval by lm-eval's checks,
micro-world items by the world's own checker. Scoring never raises and never hangs.

Maths is graded by ``scalpel.grading``, the same package and rules as the GRPO accuracy reward: the prediction
is the last ``<answer>…</answer>``'s content, else the last ``\\boxed{…}`` (GSM8k also accepts a final ``#### N``);
the gold (GSM8k's: the number after ``####``) is compared with it by math-verify, or completely as a time, a
compound answer, a quantity or text (``scalpel.grading.compare``). A gold that is neither parseable nor plain text
is *unusable*: the row is skipped and counted, never scored. Items run in the grader's worker processes with a
hard per-item timeout that holds on any thread; an item that times out (or whose worker crashes) scores wrong
with ``error`` set to the outcome (``"timeout"`` …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scalpel import grading
from scalpel.grading import last_answer_tag, last_boxed

LETTERS = "ABCDEFGHIJ"


@dataclass
class Score:
    extracted: str | None  # what was taken from the completion (answer text, letter, response)
    correct: bool
    gold_ok: bool = True  # False: the gold cannot be used; the row must be skipped, not scored
    error: str | None = None
    details: dict | None = None  # e.g. IFEval strict/loose per instruction


# ---------------------------------------------------------------------------------------------------------------
# Multiple-choice letters (pure string functions)
# ---------------------------------------------------------------------------------------------------------------


_LETTER_START = re.compile(r"^\(?\s*([A-J])\s*\)?(?:[\s.):,;]|$)")
_ANSWER_IS = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*\(?\b([A-J])\b\)?", re.IGNORECASE)


def extract_letter(completion: str, n_choices: int = 4, choices: list[str] | None = None) -> str | None:
    """The chosen option letter: from the last <answer> (a letter, ``(B)``, ``B) text``, ``\\boxed{B}``, or the exact
    text of an option), else from a last ``\\boxed{X}`` or ``answer is X`` in the completion. Letters outside the
    question's options give None."""
    valid = LETTERS[:n_choices]

    def from_text(text: str) -> str | None:
        text = text.strip()
        inner = last_boxed(text)
        if inner is not None:
            text = inner
        text = re.sub(r"\\text\{([^{}]*)\}", r"\1", text).strip().strip("*").strip()
        m = _LETTER_START.match(text)
        if m and m.group(1) in valid:
            return m.group(1)
        if choices:
            norm = text.rstrip(".").strip().lower()
            hits = [LETTERS[i] for i, c in enumerate(choices) if str(c).strip().lower() == norm]
            if len(hits) == 1:
                return hits[0]
        found = [x for x in _ANSWER_IS.findall(text) if x.upper() in valid]
        return found[-1].upper() if found else None

    tag = last_answer_tag(completion)
    if tag is not None:
        return from_text(tag)
    boxed = last_boxed(completion)
    if boxed is not None:
        return from_text(boxed)
    found = [x for x in _ANSWER_IS.findall(completion or "") if x.upper() in valid]
    return found[-1].upper() if found else None


# ---------------------------------------------------------------------------------------------------------------
# Maths (scalpel.grading)
# ---------------------------------------------------------------------------------------------------------------


def check_golds(golds: list[str], *, grader: grading.Grader | None = None) -> list[bool]:
    """Which maths golds are usable (unusable ones are skipped before generation)."""
    outcomes = (grader or grading.default_grader()).grade([(g, []) for g in golds])
    return [o == grading.GOLD_OK for o in outcomes]


# ---------------------------------------------------------------------------------------------------------------
# Per-benchmark scoring
# ---------------------------------------------------------------------------------------------------------------


def score_items(scorer: str, items: list, completions: list[str], *,
                grader: grading.Grader | None = None) -> list[Score]:
    """Score ``completions[i]`` against ``items[i]`` (``scalpel.data.items.Item``) with the named scorer.
    Maths goes to ``grader`` (default: the process-wide ``scalpel.grading.default_grader()``)."""
    if scorer in ("maths", "gsm8k"):
        preds = [grading.extract_answer(c, hash_fallback=scorer == "gsm8k") for c in completions]
        outcomes = (grader or grading.default_grader()).grade_answers([it.gold for it in items], preds)
        return [Score(p, o == grading.CORRECT, o != grading.GOLD_UNPARSEABLE,
                      None if o in (grading.CORRECT, grading.WRONG, grading.NO_PREDICTION) else o)
                for p, o in zip(preds, outcomes)]
    if scorer == "mcq":
        out = []
        for it, c in zip(items, completions):
            letter = extract_letter(c, len(it.choices or LETTERS[:4]), it.choices)
            out.append(Score(letter, letter is not None and letter == it.gold))
        return out
    if scorer == "ifeval":
        from scalpel.evaluate import ifeval

        out = []
        for it, c in zip(items, completions):
            s = ifeval.score(it.extra["ifeval"], c)
            out.append(Score(ifeval.response_text(c), s.strict, error=s.error,
                             details={"loose": s.loose, "strict_per_instruction": s.strict_per_instruction,
                                      "loose_per_instruction": s.loose_per_instruction}))
        return out
    if scorer == "microworld":
        from scalpel.microworld.tasks import answer_is_correct, extract_answer

        out = []
        for it, c in zip(items, completions):
            try:
                item = it.extra["microworld"]  # '####' is the few-shot task's own answer format, as GSM8k's
                out.append(Score(extract_answer(c, hash_fallback=item["task"] == "fewshot_maths"),
                                 bool(answer_is_correct(item, c))))
            except Exception as exc:
                out.append(Score(None, False, error=f"{type(exc).__name__}: {exc}"))
        return out
    raise ValueError(f"unknown scorer {scorer!r}")
