"""The question stream and the checkpoint schedule: the pure parts of matching (no torch, no model)."""

from __future__ import annotations

import pytest

from scalpel.train.checkpoints import schedule
from scalpel.train.stream import Question, QuestionStream


def pool(n: int, tag: str = "") -> list[Question]:
    return [Question(f"q{i:04d}", f"question {i}{tag}", str(i), f"target {i}") for i in range(n)]


def test_blocks_are_deterministic_per_seed_and_differ_across_seeds():
    a, b = QuestionStream(pool(100), 3, 4, 10), QuestionStream(pool(100), 3, 4, 10)
    assert [a.block(t) for t in range(10)] == [b.block(t) for t in range(10)]
    c = QuestionStream(pool(100), 4, 4, 10)
    assert [a.block(t) for t in range(10)] != [c.block(t) for t in range(10)]
    # independent of the pool's order on disk
    d = QuestionStream(list(reversed(pool(100))), 3, 4, 10)
    assert a.walk(10) == d.walk(10) and a.fingerprint() == d.fingerprint()


def test_one_epoch_uses_distinct_questions_then_later_epochs_revisit_them_reshuffled():
    s = QuestionStream(pool(100), 0, 4, 10)  # budget 40 questions out of 100
    first = s.walk(10)
    assert len(first) == len(set(first)) == 40
    second = [i for t in range(10, 20) for i in s.block(t)]
    assert sorted(second) == sorted(first) and second != first


def test_small_pool_wraps_within_an_epoch():
    s = QuestionStream(pool(6), 0, 4, 3)
    walk = s.walk(3)
    assert len(walk) == 12 and set(walk) == {q.id for q in pool(6)}
    assert s.describe()["passes_per_epoch"] == 2.0


def test_sequences_mode_grpo_questions_are_the_head_of_sft_block():
    s = QuestionStream(pool(500), 1, 32, 5)  # per_step = global batch (sequences mode)
    for t in range(5):
        assert s.block(t, take=4) == s.block(t)[:4]


def test_fingerprint_changes_with_the_data():
    assert QuestionStream(pool(50), 0, 2, 5).fingerprint() != QuestionStream(pool(50, "!"), 0, 2, 5).fingerprint()


def test_bad_streams_are_refused():
    with pytest.raises(ValueError, match="empty"):
        QuestionStream([], 0, 2, 2)
    with pytest.raises(ValueError, match="unique"):
        QuestionStream(pool(3) + pool(1), 0, 2, 2)


@pytest.mark.parametrize("total, n", [(571, 20), (100, 20), (6, 3), (5, 20), (1, 1), (150, 10)])
def test_schedule_is_zero_plus_n_evenly_spaced_ending_at_the_final_step(total, n):
    steps = schedule(total, n)
    assert steps[0] == 0 and steps[-1] == total
    assert len(steps) == min(n, total) + 1 and steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps[1:], steps[2:])]
    assert not gaps or max(gaps) - min(gaps) <= 1
