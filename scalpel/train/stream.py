"""The question stream: one deterministic sequence of question blocks per (study, seed), shared by every arm.

Matching by construction. For a seed, the study's questions are a seeded permutation of the pool, cut to the
budget ``train.steps x per_step``; pass 0 walks them in that order, every later pass in a fresh seeded permutation.
Step t (0-based) trains on ``block(t)``, the next ``per_step`` questions of that walk. Every arm reads the same
walk, so at optimizer step t every arm sees the same question ids in the same order:

- ``match: questions`` — ``per_step`` = global_batch / num_generations (Q); GRPO samples G completions of each
  question, SFT trains on its one target.
- ``match: sequences`` — ``per_step`` = global_batch (B); SFT trains on all B targets of the block, GRPO on its
  first Q questions (so GRPO's questions at step t are always a subset of SFT's, as in the paper's set-up).

An arm with ``epochs: E`` runs E x steps steps and simply reads further along the same walk. The arm builds its
TRL dataset as the walk itself (row i = the i-th question it will consume) and turns shuffling off, so the order
is the stream's, not the data loader's; the trainers verify at every step that what TRL actually fed the model is
``block(t)`` (``scalpel.train.trainers``).

Nothing here depends on Python's hash seed or on the process count: permutations come from ``random.Random``
seeded with a SHA-256 of (seed, purpose).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """One training question: id, user message, gold answer (for rewards) and SFT target (for SFT)."""

    id: str
    question: str
    answer: str
    target: str


def _rng(seed: int, purpose: str) -> random.Random:
    digest = hashlib.sha256(f"scalpel-stream/{seed}/{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class QuestionStream:
    """Blocks of question ids per optimizer step for one (study, seed)."""

    def __init__(self, pool: Sequence[Question], seed: int, per_step: int, steps: int,
                 max_questions: int | None = None):
        if per_step < 1 or steps < 1:
            raise ValueError(f"per_step ({per_step}) and steps ({steps}) must be >= 1")
        if not pool:
            raise ValueError("the question pool is empty")
        ids = [q.id for q in pool]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids in the pool are not unique")
        self.by_id = {q.id: q for q in pool}
        self.seed, self.per_step, self.steps = seed, per_step, steps
        order = sorted(ids)  # independent of the pool's file order
        _rng(seed, "select").shuffle(order)
        budget = steps * per_step
        n = min(len(order), budget, max_questions or budget)
        self.selected: list[str] = order[:n]
        self._passes: dict[int, list[str]] = {0: self.selected}

    def _pass(self, k: int) -> list[str]:
        if k not in self._passes:
            perm = list(self.selected)
            _rng(self.seed, f"pass/{k}").shuffle(perm)
            self._passes[k] = perm
        return self._passes[k]

    def at(self, i: int) -> str:
        """The i-th question id of the walk (0-based)."""
        n = len(self.selected)
        return self._pass(i // n)[i % n]

    def block(self, t: int, take: int | None = None) -> list[str]:
        """Question ids of step t (0-based); ``take`` keeps only the first ``take`` of them (GRPO in sequences)."""
        ids = [self.at(t * self.per_step + j) for j in range(self.per_step)]
        return ids if take is None else ids[:take]

    def walk(self, steps: int, take: int | None = None) -> list[str]:
        """The ids an arm of ``steps`` steps consumes, in order (``take`` per step)."""
        return [i for t in range(steps) for i in self.block(t, take)]

    @property
    def passes_per_epoch(self) -> float:
        """How many times one epoch (train.steps steps) walks through the selected questions."""
        return self.steps * self.per_step / len(self.selected)

    def fingerprint(self) -> str:
        """SHA-256 of the selected questions (ids, texts, answers, targets in walk order), seed and block size."""
        h = hashlib.sha256()
        h.update(json.dumps({"seed": self.seed, "per_step": self.per_step, "steps": self.steps}).encode())
        for qid in self.selected:
            q = self.by_id[qid]
            h.update(json.dumps([q.id, q.question, q.answer, q.target], ensure_ascii=False).encode())
        return h.hexdigest()

    def describe(self) -> dict:
        return {"seed": self.seed, "per_step": self.per_step, "steps_per_epoch": self.steps,
                "questions": len(self.selected), "pool": len(self.by_id),
                "passes_per_epoch": round(self.passes_per_epoch, 4), "fingerprint": self.fingerprint()}
