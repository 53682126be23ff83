"""Maths grading, the one implementation behind the GRPO accuracy reward, the evaluation's maths scores, the
micro-world's checker and ``scalpel grade``.

- ``extract``: where the answer is in a completion (pure string functions, one set of rules for every scorer).
- ``compare``: when a prediction equals a gold (math-verify, plus the rules for times, compound answers,
  quantities and text that it lacks).
- ``pool``: the ``Grader``, a pool of worker processes with a hard per-item timeout; it never raises.
- ``cli``: ``scalpel grade FILE``, completions made elsewhere graded with the same rules.

An item is ``(gold, candidates)``: the gold answer and the prediction's readings (``answer_candidates``); an empty
candidate list only checks that the gold is usable (``GOLD_OK``).
"""

from scalpel.grading.compare import CORRECT, GOLD_OK, GOLD_UNPARSEABLE, NO_PREDICTION, WRONG
from scalpel.grading.extract import answer_candidates, extract_answer, find_answer, last_answer_tag, last_boxed
from scalpel.grading.pool import (
    CRASHED,
    ERROR,
    FAILED,
    TIMEOUT,
    UNAVAILABLE,
    Grader,
    GradingStats,
    Item,
    configure_grader,
    default_grader,
    shutdown_grader,
)

__all__ = [
    "CORRECT", "WRONG", "NO_PREDICTION", "GOLD_OK", "GOLD_UNPARSEABLE", "ERROR", "TIMEOUT", "CRASHED", "UNAVAILABLE",
    "FAILED", "Grader", "GradingStats", "Item", "answer_candidates", "configure_grader", "default_grader",
    "extract_answer", "find_answer", "last_answer_tag", "last_boxed", "shutdown_grader",
]
