"""Where the answer is in a completion: pure string functions, the one set of rules of every scorer (the GRPO
accuracy reward, the evaluation's maths scores, the micro-world's checker and ``scalpel grade``).

The answer is the stripped content of the last complete ``<answer>…</answer>`` (authoritative when present, even if
empty), else the content of the last complete ``\\boxed{…}`` (balanced braces), else, only where the caller asks for
it (GSM8k-style few-shot formats), what follows the last ``####`` on its line. Standard library only: the grading
zygote and the micro-world import it without math-verify.
"""

from __future__ import annotations

import re

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_BOXED_TOKENS = re.compile(r"\\(?:boxed|fbox)\s*\{|\\[{}]|[{}]")
_DELIMITERS = re.compile(r"(?<!\\)\$|\\boxed|\\fbox|\\\(|\\\[")
PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}\s+[A-Za-z]{3,}")  # two words: "The answer is 5"
_HASH = re.compile(r"####\s*([^\n]*)")

ANSWER_TAG, BOXED, HASH = "answer", "boxed", "hash"  # where ``find_answer`` found the answer


def last_answer_tag(text: str) -> str | None:
    """Stripped content of the last complete ``<answer>…</answer>``, or None."""
    text = text or ""
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    return None if start < 0 else text[start + len(ANSWER_OPEN):end].strip()


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{…}`` (or ``\\fbox{…}``) with balanced braces, or None. Linear time."""
    depth, opens, best = 0, [], None  # opens: (depth of the box's brace, content start)
    for m in _BOXED_TOKENS.finditer(text or ""):
        token = m.group()
        if token[0] == "\\" and len(token) == 2:  # \{ or \}: literal braces
            continue
        if token == "}":
            if depth == 0:
                continue
            if opens and opens[-1][0] == depth:
                start = opens.pop()[1]
                if best is None or m.start() > best[1]:
                    best = (start, m.start())
            depth -= 1
        else:
            depth += 1
            if token != "{":
                opens.append((depth, m.end()))
    return None if best is None else text[best[0]:best[1]].strip()


def find_answer(completion: str, hash_fallback: bool = False) -> tuple[str, str] | None:
    """``(where, text)`` of the answer in a completion (``where``: ``ANSWER_TAG``, ``BOXED`` or ``HASH``), or None.
    An answer tag's text may be empty: the tag still wins, so a model cannot fall back on a box it hedged with."""
    tag = last_answer_tag(completion)
    if tag is not None:
        return ANSWER_TAG, tag
    boxed = last_boxed(completion)
    if boxed:
        return BOXED, boxed
    if hash_fallback:
        found = _HASH.findall(completion or "")
        if found and found[-1].strip():
            return HASH, found[-1].strip()
    return None


def extract_answer(completion: str, hash_fallback: bool = False) -> str | None:
    """The prediction's text for the maths grader (None: there is none). A box found outside answer tags keeps its
    ``\\boxed{…}`` so that ``answer_candidates`` reads it as LaTeX."""
    found = find_answer(completion, hash_fallback)
    if found is None or not found[1]:
        return None
    where, text = found
    return f"\\boxed{{{text}}}" if where == BOXED else text


def answer_candidates(answer: str | None) -> list[str]:
    """The readings of a prediction's text to try, in order (the first math-verify can parse is the prediction).
    The last one is always the text as written (the comparison rules read it)."""
    if not answer:
        return []
    if _DELIMITERS.search(answer) or PROSE.search(answer):
        return [answer]
    return [f"\\boxed{{{answer}}}", answer]
