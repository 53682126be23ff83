"""Training-health guards on synthetic steps: tag spam after </answer>, grad-norm spikes, non-finite loss."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerControl, TrainerState

from scalpel.config import HealthConfig
from scalpel.train.health import HealthMonitor, text_after_answer

GOOD = "<think>\n2 + 3 = 5\n</think>\n<answer>\n5\n</answer>"
SPAM = GOOD + "\n</answer><answer></think><think>\n<answer>"  # the paper's Fig. 14 pattern


def monitor(tmp_path, **kw):
    m = HealthMonitor(HealthConfig(**kw), tmp_path / "health.jsonl", is_main=True)
    m.watch_completions = True
    return m


def step(m, n, completions, state=None):
    state = state or TrainerState()
    state.global_step = n
    control = TrainerControl()
    m.observe([(f"q{i}", c) for i, c in enumerate(completions)])
    return m.on_step_end(None, state, control), state


def events(tmp_path):
    return [json.loads(x) for x in (tmp_path / "health.jsonl").read_text().splitlines()]


def test_text_after_answer_detection():
    assert text_after_answer(GOOD) is None and text_after_answer(GOOD + "\n \n") is None
    assert text_after_answer("no tags at all") is None
    assert text_after_answer(SPAM).startswith("</answer>")
    assert text_after_answer(GOOD + "\n<answer>\n5\n</answer>") == "<answer>\n5\n</answer>"  # repeated blocks
    assert text_after_answer(GOOD + " The answer is 5.") == "The answer is 5."


def test_tag_spam_is_logged_with_the_offending_completions_and_stops_when_asked(tmp_path):
    m = monitor(tmp_path, on_unhealthy="stop", max_text_after_answer=0.25)
    control, _ = step(m, 1, [GOOD] * 7 + [SPAM])  # 1/8: a notice, training goes on
    assert not control.should_training_stop
    control, _ = step(m, 2, [GOOD] * 4 + [SPAM] * 4)  # 1/2: unhealthy
    assert control.should_training_stop and not control.should_save
    ev = events(tmp_path)
    assert [(e["step"], e["kind"], e["unhealthy"]) for e in ev] == [(1, "text_after_answer", False),
                                                                   (2, "text_after_answer", True)]
    assert ev[1]["offending"] == 4 and ev[1]["completions"][0]["completion"] == SPAM
    assert ev[1]["action"] == "stop" and m.stopped["step"] == 2


def test_warn_mode_never_stops(tmp_path):
    m = monitor(tmp_path, on_unhealthy="warn")
    control, _ = step(m, 1, [SPAM] * 8)
    assert not control.should_training_stop and events(tmp_path)[0]["action"] == "warn"


def test_grad_norm_spike_against_running_median(tmp_path):
    m = monitor(tmp_path, grad_spike_factor=10.0, grad_min_history=5, on_unhealthy="stop")
    state, control = TrainerState(), TrainerControl()
    for i, gn in enumerate([1.0, 1.2, 0.9, 1.1, 1.0, 5.0], start=1):  # 5x the median: fine
        state.global_step = i
        m.on_log(None, state, control, logs={"loss": 0.5, "grad_norm": gn})
    assert not control.should_training_stop
    state.global_step = 7
    m.on_log(None, state, control, logs={"loss": 0.5, "grad_norm": 40.0})
    assert control.should_training_stop
    (ev,) = events(tmp_path)
    assert ev["kind"] == "grad_norm_spike" and ev["step"] == 7 and ev["running_median"] == pytest.approx(1.05)


@pytest.mark.parametrize("logs, kind", [({"loss": float("nan")}, "nonfinite_loss"),
                                        ({"loss": 1.0, "grad_norm": float("inf")}, "nonfinite_grad_norm")])
def test_non_finite_loss_or_grad_norm_is_unhealthy(tmp_path, logs, kind):
    m = monitor(tmp_path, on_unhealthy="stop")
    state, control = TrainerState(), TrainerControl()
    state.global_step = 3
    m.on_log(None, state, control, logs=logs)
    assert control.should_training_stop and events(tmp_path)[0]["kind"] == kind


def test_resume_drops_events_after_the_checkpoint_and_rebuilds_history(tmp_path):
    m = monitor(tmp_path)
    step(m, 2, [SPAM] * 8)
    step(m, 5, [SPAM] * 8)
    m2 = monitor(tmp_path, grad_min_history=2)
    m2.resume([{"step": 1, "grad_norm": 1.0}, {"step": 2, "grad_norm": 1.0}, {"step": 5, "grad_norm": 1.0}], 3)
    assert [e["step"] for e in events(tmp_path)] == [2] and list(m2.grad_norms) == [1.0, 1.0]
