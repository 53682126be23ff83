"""Evaluation renders token-for-token the prompt used in training, and never silently loses the system prompt
(the paper's pitfall: the saved template lacked it, so evaluation used the default template)."""

from __future__ import annotations

import json
import logging

import pytest

from scalpel.data.prompts import PAPER_SYSTEM_PROMPT, chat_template, messages
from scalpel.evaluate import prompting as P
from scalpel.evaluate.backends import load_tokenizer
from scalpel.evaluate.runner import EvalConfig, evaluate_model


def training_ids(tok, question: str) -> list[int]:
    """The training prompt as the checkpoint's template renders it with no system message, i.e. with its default
    system prompt (the study's). Training passes that prompt explicitly; that the two give the same tokens, and that
    these are the tokens TRL fed the model, is shown by tests/train/test_arms.py (captured at the model's forward)."""
    enc = tok.apply_chat_template(messages(question), add_generation_prompt=True)
    return list(enc["input_ids"] if hasattr(enc, "keys") else enc)


def test_checkpoint_prompt_is_token_for_token_the_training_prompt(checkpoint_dir, test_world):
    tok = load_tokenizer(checkpoint_dir)
    system = P.resolve_system_prompt(tok, checkpoint_dir)
    assert system.text == test_world.system_prompt and not system.explicit
    assert "chat template default" in system.source
    for task in ("maths_easy", "facts_mcq", "instruct", "fewshot_maths"):
        for item in test_world.items(task, "heldout")[:5]:
            text, ids = P.render(tok, [{"role": "user", "content": item["question"]}], system)
            assert ids == training_ids(tok, item["question"])
            assert test_world.system_prompt in text


def test_eval_run_generates_from_the_training_prompt(checkpoint_dir, test_world, tmp_path, monkeypatch):
    import scalpel.evaluate.backends as backends

    seen = []
    real = backends.generate

    def spy(model, tokenizer, prompts, **kw):
        seen.extend(prompts)
        return real(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(backends, "generate", spy)
    cfg = EvalConfig(benchmarks=["mw_maths_easy"], limit=3, world=str(test_world.dir), max_new_tokens=8)
    res = evaluate_model(checkpoint_dir, tmp_path / "out", cfg)["mw_maths_easy"]
    tok = load_tokenizer(checkpoint_dir)
    items = test_world.items("maths_easy", "heldout")[:3]
    assert sorted(map(tuple, seen)) == sorted(tuple(training_ids(tok, it["question"])) for it in items)
    rows = [json.loads(x) for x in (tmp_path / "out" / "mw_maths_easy" / "samples.jsonl").read_text().splitlines()]
    for r, it in zip(rows, items):
        assert r["prompt"] == tok.apply_chat_template(messages(it["question"]), tokenize=False,
                                                      add_generation_prompt=True)
        assert r["prompt_tokens"] == len(training_ids(tok, it["question"]))
    assert res["system_prompt"]["as_system_message"] is False
    assert res["system_prompt"]["text"] == test_world.system_prompt


def test_base_model_without_template_default_warns_and_uses_the_world_manifest(test_world, checkpoint_dir, caplog):
    tok = load_tokenizer(test_world.model_dir)
    assert P.template_default_system(tok) is None
    with caplog.at_level(logging.WARNING):
        system = P.resolve_system_prompt(tok, test_world.model_dir)
    assert system.explicit and system.text == test_world.system_prompt and "manifest.json" in system.source
    assert "carries no system prompt" in caplog.text and "manifest.json" in caplog.text
    # base and checkpoint then see the same tokens: the comparison between them is fair
    q = test_world.items("maths_hard", "heldout")[0]["question"]
    ckpt = load_tokenizer(checkpoint_dir)
    assert P.render(tok, [{"role": "user", "content": q}], system)[1] == training_ids(ckpt, q)


def test_override_and_no_system_prompt(checkpoint_dir):
    tok = load_tokenizer(checkpoint_dir)
    q = [{"role": "user", "content": "What is 2 + 2?"}]
    s = P.resolve_system_prompt(tok, checkpoint_dir, override="Be brief.")
    text, _ = P.render(tok, q, s)
    assert s.explicit and "<|system|>\nBe brief.\n" in text and "Think first" not in text
    s = P.resolve_system_prompt(tok, checkpoint_dir, no_system=True)
    assert "still inserts its default" in s.source  # says so instead of pretending there is none


def test_no_default_no_manifest_falls_back_with_a_warning(tmp_path, test_world, caplog):
    tok = load_tokenizer(test_world.model_dir)
    with caplog.at_level(logging.WARNING):
        s = P.resolve_system_prompt(tok, tmp_path, fallback=PAPER_SYSTEM_PROMPT, fallback_source="the paper's")
    assert s.text == PAPER_SYSTEM_PROMPT and s.explicit and "the paper's" in caplog.text


class _Tok:
    """Just enough tokenizer to render a foreign (Qwen-style) template."""

    def __init__(self, template):
        import jinja2

        self.chat_template = template
        self._t = jinja2.Environment().from_string(template)

    def apply_chat_template(self, conv, tokenize=False, add_generation_prompt=False):
        return self._t.render(messages=conv, add_generation_prompt=add_generation_prompt)


@pytest.mark.parametrize("template, expected", [
    (chat_template(default_system="Line one.\nLine 'two'."), "Line one.\nLine 'two'."),
    (chat_template(), None),
    ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen.<|im_end|>\n{% endif %}"
     "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
     "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", "You are Qwen."),
    ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}"
     "{{ m['content'] }}{% endfor %}", None),
])
def test_template_default_system_detection(template, expected):
    tok = _Tok(template.replace("raise_exception('no system')", "undefined_function()"))
    assert P.template_default_system(tok) == expected
