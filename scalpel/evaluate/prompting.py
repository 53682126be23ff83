"""Which system prompt an evaluation uses, and rendering prompts exactly as training rendered them.

The paper's evaluation silently lost the training system prompt (the saved chat template did not carry it). Rules,
first match wins, and the choice is recorded in every summary:

1. ``--system-prompt TEXT`` (``system_prompt=``): rendered as an explicit system message. ``--no-system-prompt``
   renders no system message at all (whatever the template does by itself still happens).
2. The checkpoint's chat template has a default system prompt (scalpel checkpoints are saved with
   ``chat_template(default_system=SYSTEM_PROMPT)``): render *without* a system message, exactly like training
   (``tokenizer.apply_chat_template(messages(question), add_generation_prompt=True)``), so the prompt is
   token-for-token the training prompt.
3. The template has none: warn, and use the ``system_prompt`` of the nearest ``manifest.json`` at or above the model
   dir (a micro-world's model/ finds its world's manifest; a training run's manifest works the same way), else the
   suite's fallback (the paper's prompt for real models), rendered as a system message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SENTINEL = "\u2063SCALPEL-SYSTEM-SENTINEL\u2063"
_Q = "\u2063SCALPEL-QUESTION\u2063"


@dataclass(frozen=True)
class SystemPrompt:
    text: str | None  # the system prompt the model sees (None: none)
    explicit: bool  # True: rendered as a system message; False: left to the template's default
    source: str  # human-readable: where it came from

    def to_json(self) -> dict:
        return {"text": self.text, "as_system_message": self.explicit, "source": self.source}


def template_default_system(tokenizer) -> str | None:
    """The system prompt a chat template inserts when the conversation has none (None if it inserts none).

    Found by rendering a one-turn conversation with and without a sentinel system message: with a default, the
    sentinel-free rendering has the default's text where the sentinel was.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    user = [{"role": "user", "content": _Q}]
    try:
        bare = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        with_sys = tokenizer.apply_chat_template([{"role": "system", "content": _SENTINEL}] + user, tokenize=False,
                                                 add_generation_prompt=True)
    except Exception:  # a template that rejects system messages has no system prompt to find
        return None
    if _SENTINEL not in with_sys:
        return None
    head, tail = with_sys.split(_SENTINEL, 1)
    if bare.startswith(head) and bare.endswith(tail) and len(bare) >= len(head) + len(tail):
        text = bare[len(head) : len(bare) - len(tail)]
        return text if text.strip() else None
    return None


def find_manifest_system_prompt(model_dir: str | Path, levels: int = 3) -> tuple[str, Path] | None:
    """``system_prompt`` from the nearest manifest.json in ``model_dir`` or up to ``levels`` parents."""
    d = Path(model_dir).resolve()
    for cand in [d, *list(d.parents)[:levels]]:
        mf = cand / "manifest.json"
        if mf.is_file():
            try:
                data = json.loads(mf.read_text())
            except (OSError, ValueError):
                continue
            text = data.get("system_prompt") if isinstance(data, dict) else None
            if isinstance(text, str) and text:
                return text, mf
    return None


def resolve_system_prompt(tokenizer, model_dir: str | Path | None, *, override: str | None = None,
                          no_system: bool = False, fallback: str | None = None,
                          fallback_source: str = "the suite's default") -> SystemPrompt:
    """Apply the rules of the module docstring; warns when the template carries no system prompt."""
    if no_system:
        default = template_default_system(tokenizer)
        return SystemPrompt(default, False, "none requested (--no-system-prompt)"
                            + ("; the chat template still inserts its default" if default else ""))
    if override is not None:
        return SystemPrompt(override, True, "--system-prompt")
    default = template_default_system(tokenizer)
    if default is not None:
        return SystemPrompt(default, False, "the checkpoint's chat template default (as in training)")
    found = find_manifest_system_prompt(model_dir) if model_dir is not None and Path(model_dir).exists() else None
    if found is not None:
        text, where = found
        chosen = SystemPrompt(text, True, f"{where} (system_prompt)")
    elif fallback is not None:
        chosen = SystemPrompt(fallback, True, fallback_source)
    else:
        chosen = SystemPrompt(None, False, "none (no template default, no manifest, no fallback)")
    log.warning("the chat template of %s carries no system prompt; using %s: %r", model_dir, chosen.source,
                chosen.text)
    return chosen


def conversation(turns: list[dict[str, str]], system: SystemPrompt) -> list[dict[str, str]]:
    if system.explicit and system.text is not None:
        return [{"role": "system", "content": system.text}] + list(turns)
    return list(turns)


def render(tokenizer, turns: list[dict[str, str]], system: SystemPrompt) -> tuple[str, list[int]]:
    """(prompt text, prompt token ids) with the generation prompt; ids are what ``apply_chat_template`` tokenizes."""
    conv = conversation(turns, system)
    text = tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    ids = tokenizer.apply_chat_template(conv, tokenize=True, add_generation_prompt=True)
    if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return text, list(ids)
