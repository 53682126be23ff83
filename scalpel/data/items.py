"""A benchmark question ready for prompting and scoring (``Item``), and the gold-answer and prompt helpers the
loaders build items with.

An item's ``gold`` is ``None`` when the row has no usable gold answer (e.g. a GSM8k answer without ``#### N``); the
runner skips such rows before generation and counts them. Maths golds are additionally checked by the scorer
(math-verify must parse them). Prompts are message lists *without* a system message: the system prompt is decided
by the evaluation (``scalpel.evaluate.prompting``) so that it matches training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from scalpel.data.prompts import messages

LETTERS = "ABCDEFGHIJ"


@dataclass
class Item:
    """One benchmark question, ready for prompting and scoring."""

    id: str
    question: str  # the final user message
    gold: str | None  # None: no usable gold (row skipped and counted)
    choices: list[str] | None = None  # multiple choice: option texts, gold is a letter
    shots: list[tuple[str, str]] = field(default_factory=list)  # few-shot (user, assistant) turns before question
    extra: dict[str, Any] = field(default_factory=dict)  # scorer inputs (IFEval row, micro-world item)

    def messages(self) -> list[dict[str, str]]:
        """The conversation to render (no system message: see ``scalpel.evaluate.prompting``)."""
        return messages(self.question, None, self.shots)


_GSM8K_GOLD = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)
_GSM8K_CALC = re.compile(r"<<[^<>]*>>")


def gsm8k_gold(answer: str) -> str | None:
    """GSM8k's final answer: the number after ``####`` (thousands separators removed), or None."""
    m = _GSM8K_GOLD.search(str(answer or ""))
    if not m:
        return None
    value = m.group(1).replace(",", "").replace("$", "").strip()
    return value if re.fullmatch(r"-?\d+(\.\d+)?", value) else None


def gsm8k_solution(answer: str) -> str:
    """A GSM8k reference solution without its calculator annotations ``<<48/2=24>>`` (used as few-shot turns)."""
    return _GSM8K_CALC.sub("", answer).strip()


def mcq_prompt(question: str, choices: list[str]) -> str:
    letters = LETTERS[: len(choices)]
    options = "\n".join(f"{letters[i]}) {c}" for i, c in enumerate(choices))
    return (
        "Answer the following multiple choice question. Think step by step, then give only the letter of the "
        f"correct option (one of {', '.join(letters)}) inside <answer></answer>, for example <answer>{letters[0]}"
        f"</answer>.\n\n{question.strip()}\n\n{options}"
    )
