"""When a prediction equals a gold answer: math-verify for the mathematics, and the rules it lacks for the rest.

math-verify (``parse`` + ``verify``) compares one expression. Given a gold such as ``$10$ ft x $18$ ft``,
``13 n, 5 d``, ``3:30 p.m.`` or ``-2 < x \\leq 5 : (-2, 5]`` it reads one part of it (the first ``$…$``, the
first number) and then accepts any prediction that agrees on that part, so a policy can be rewarded for a wrong
answer. And with its raw-string fallback off (it is off here: a gold that does not parse must never match by
accident), text answers such as ``no solution`` or ``无解`` cannot be graded at all. So, in order:

1. Both texts are put in one canonical form (``$``, ``\\(``, ``\\text{…}``, ``\\left``, spacing commands and a
   final full stop dropped; ``\\dfrac`` -> ``\\frac``). An identical prediction is correct, whatever the gold.
2. A gold is *usable* if math-verify parses it or it is plain text (no LaTeX command left); otherwise it is
   ``gold_unparseable`` and matches nothing. An empty prediction is ``no_prediction``, never correct.
3. Clock times compare as times (``3:30 p.m.`` = ``15:30``); compound answers (parts at the top level separated
   by ``;`` ``,`` ``and`` ``or`` ``:``, or quantities multiplied with ``x`` / ``\\times`` / ``by``) compare part
   by part, every part, unordered except around ``:`` (a ratio); a one-part prediction must equal every part
   (``(-2, 5]`` for ``-2 < x \\leq 5 : (-2, 5]``). Lists of pure maths written two ways (``1, 2`` and ``\\{1, 2\\}``) go
   to math-verify whole, which compares sets completely.
4. Quantities (a number and unit words, ``12 (marbles)``, ``3 \\frac{1}{2} hours``) compare number and unit; a
   bare number matches when the unit has two letters or more (``12`` for ``12 marbles``, not ``2`` for ``2 x``).
5. Golds with words (``all real numbers``, ``\\text{Evelyn}``) and numerals in a base (``52_8``, which math-verify
   reads as 52) are text: only the identity of step 1 matches.
6. Anything else is math-verify's: ``verify(parse(\\boxed{gold}), parse(prediction))`` on the canonical texts, the
   gold's own reading as a fallback. A prediction in prose (``The answer is $5$.``) against a one-part
   mathematical gold keeps math-verify's extraction from the text as written.

Everything here runs inside a grading worker (``scalpel.grading.pool``), which bounds its time and memory; the
pure string part is linear in the input. math-verify is imported on first use.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction

from scalpel.grading.extract import PROSE, last_boxed

CORRECT = "correct"
WRONG = "wrong"
NO_PREDICTION = "no_prediction"  # the gold is usable, the prediction is empty or does not parse
GOLD_OK = "gold_ok"  # gold-only check: the gold is usable
GOLD_UNPARSEABLE = "gold_unparseable"

MAX_PARTS = 64  # more top-level parts than this: compared as one text (a list that long is not an answer shape)

# -- canonical text ---------------------------------------------------------------------------------------------

_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname)\s*"
                       r"\{([^{}]*)\}")
_SPACING = re.compile(r"\\[,;:!> ]|\\q?quad(?![A-Za-z])|~")
_MATH_DELIMS = re.compile(r"\\[()\[\]]|(?<!\\)\$|\\\$")
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])\s*")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_LEGE = re.compile(r"\\(le|ge)(?![A-Za-z])")
_SPACES = re.compile(r"\s+")
_AROUND_SYMBOLS = re.compile(r"\s*([^\w\s\\])\s*")
_PAREN_LETTER = re.compile(r"\(([a-z])\)")
_SUBSCRIPT = re.compile(r"_\{(\w+)\}")
_BASE_NUMBER = re.compile(r"[0-9A-Fa-f]+_\{?\d+\}?")  # 52_8: a numeral in base 8, which math-verify reads as 52
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[^\W\d_]+")
# Names that are maths, not words (``\\sin`` is a command already; these are the spellings without a backslash).
_MATH_WORDS = frozenset("sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp lim max min gcd "
                        "lcm mod det deg dim ker sup inf arg".split())


def canonical(text: str) -> str:
    """The answer without what does not change it: delimiters, text wrappers, spacing, sizing, a final stop."""
    t = unicodedata.normalize("NFKC", text or "")
    for _ in range(2):  # \text{\textbf{…}}
        t = _TEXT_CMD.sub(r" \1 ", t)
    t = _MATH_DELIMS.sub(" ", t)
    t = _SPACING.sub(" ", t)
    t = _SIZING.sub("", t)
    t = _FRAC.sub(r"\\frac", t)
    t = _LEGE.sub(r"\\\1q", t)
    t = _SPACES.sub(" ", t).strip()
    while t.endswith(".") and not t.endswith(".."):
        t = t[:-1].rstrip()
    return t


def identity_key(canon: str) -> str:
    """What two answers must share to be the same text: case and spaces next to symbols do not count."""
    key = _SUBSCRIPT.sub(r"_\1", _AROUND_SYMBOLS.sub(r"\1", canon.casefold()))
    return _PAREN_LETTER.fullmatch(key).group(1) if _PAREN_LETTER.fullmatch(key) else key


def _words(canon: str) -> list[str]:
    return [w for w in _WORD.findall(_COMMAND.sub(" ", canon)) if w.casefold() not in _MATH_WORDS]


# -- structure: times, parts, quantities -----------------------------------------------------------------------

_TIME = re.compile(r"(\d{1,2}):([0-5]\d)(?::([0-5]\d))?(?:\s*([ap])\.?\s*m\.?)?", re.IGNORECASE)
_WORD_SEPS = re.compile(r"\s(and|or|x|×|by)\s|\s?(\\times)\s?|(×)")
_THOUSANDS = re.compile(r"\d{3}(?!\d)")
_UNIT_TOKEN = re.compile(r"[^\W\d_]+\.?(?:\^\{?\d\}?)?(?:/[^\W\d_]+\.?)?")
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")
_FRACTION = re.compile(r"([-+]?)(?:(\d+)\s*)?(?:\\frac\{(\d+)\}\{(\d+)\}|(\d+)/(\d+))")


@dataclass
class Form:
    """An answer's canonical text and the structure the rules read (built by ``form``)."""

    text: str  # as given (math-verify's fallback reading)
    canon: str
    key: str
    wordy: bool = False  # a word that is not maths (three letters or more, or any non-Latin letter)
    textfree: bool = True  # no word of two letters or more
    time: tuple[int, bool] | None = None  # (minutes since midnight, the meridiem was given)
    kind: str = ""  # separator of the parts
    parts: list["Form"] = field(default_factory=list)  # top-level parts (empty: one part)
    number: str | None = None  # a quantity's number
    unit: str | None = None  # a quantity's unit, normalised

    @property
    def compound(self) -> bool:
        return len(self.parts) > 1

    @property
    def is_number(self) -> bool:
        """Digits and maths commands only (``12``, ``\\frac{7}{2}``, ``3\\sqrt{2}``): no variable, no unit."""
        return any(c.isdigit() for c in self.canon) and not re.search(r"[^\W\d_]", _COMMAND.sub("", self.canon))


def form(text: str, depth: int = 0) -> Form:
    canon = canonical(text)
    words = _words(canon)
    f = Form(text, canon, identity_key(canon), textfree=not any(len(w) >= 2 for w in words),
             wordy=any(len(w) >= 3 or not w.isascii() for w in words) or bool(_BASE_NUMBER.fullmatch(canon)))
    m = _TIME.fullmatch(canon)
    if m:
        h, minutes, meridiem = int(m.group(1)), int(m.group(2)), m.group(4)
        if meridiem and 1 <= h <= 12:
            f.time = ((h % 12 + (12 if meridiem.lower() == "p" else 0)) * 60 + minutes, True)
        elif not meridiem and h <= 24:
            f.time = (h % 24 * 60 + minutes, False)
        return f
    if depth < 3:
        kind, pieces = _split(canon)
        if 1 < len(pieces) <= MAX_PARTS:
            parts = [form(p, depth + 1) for p in pieces]
            if kind != "x" or any(p.unit for p in parts):  # 2 x 3 is a product; 10 ft x 18 ft is two lengths
                f.kind, f.parts = kind, parts
                return f
    _quantity(f)
    return f


def _split(canon: str) -> tuple[str, list[str]]:
    """The top-level parts of an answer at its first kind of separator (``;`` ``,`` ``and`` ``or`` ``:`` ``x``).
    Commas between thousands (``12,345``) and anything inside brackets do not separate."""
    depth, cuts = 0, {";": [], ",": [], ":": []}
    level = [0] * (len(canon) + 1)
    for i, c in enumerate(canon):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and c in cuts:
            if c == "," and i > 0 and canon[i - 1].isdigit() and _THOUSANDS.match(canon, i + 1):
                continue
            cuts[c].append((i, i + 1))
        level[i] = depth
    for m in _WORD_SEPS.finditer(canon):
        if level[m.start()] == 0:
            word = next(g for g in m.groups() if g)
            cuts.setdefault({"and": "and", "or": "or"}.get(word, "x"), []).append(m.span())
    for kind in (";", ",", "and", "or", ":", "x"):
        spans = cuts.get(kind)
        if spans:
            pieces, start = [], 0
            for a, b in spans:
                pieces.append(canon[start:a])
                start = b
            pieces.append(canon[start:])
            pieces = [re.sub(r"^(?:and|or)\s+", "", p.strip()) for p in pieces]
            return kind, [p for p in pieces if p]
    return "", [canon]


def _quantity(f: Form) -> None:
    """A number followed by unit words (``12 (marbles)``, ``5.4 cents``, ``864 inches^2``): sets number, unit."""
    canon = f.canon
    paren = re.fullmatch(r"(.*\S)\s*\(([^()]*)\)", canon)
    if paren and _words(paren.group(2)) and not re.search(r"\d", re.sub(r"\^\{?\d+\}?", "", paren.group(2))):
        number, unit = paren.group(1), paren.group(2).split()
    else:
        tokens = canon.split(" ")
        k = len(tokens)
        while k > 1 and _UNIT_TOKEN.fullmatch(tokens[k - 1]) and tokens[k - 1].casefold() not in _MATH_WORDS:
            k -= 1
        number, unit = " ".join(tokens[:k]), tokens[k:]
    if not unit or not number.strip():
        return
    n = form(number, depth=3)
    if not n.textfree or n.compound or not re.search(r"[\d}%)]$", n.canon):
        return
    f.number, f.unit = n.canon, " ".join(_singular(u) for u in unit)


def _singular(word: str) -> str:
    w = word.casefold().strip(".()")
    w, power = (w.split("^", 1) + [""])[:2]
    if len(w) > 3 and w.endswith("es") and w[-4:-2] in ("ch", "sh") or w.endswith("xes"):
        w = w[:-2]
    elif len(w) > 2 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return w + (f"^{power.strip('{}')}" if power else "")


def _time_equal(a: Form, b: Form) -> bool:
    if a.time is None or b.time is None:
        return False
    if a.time[1] == b.time[1]:
        return a.time[0] == b.time[0]
    return a.time[0] % 720 == b.time[0] % 720  # one side says a.m./p.m., the other does not: the clock reading


def _fraction(canon: str) -> Fraction | None:
    """A plain number's exact value (integers, decimals, thousands commas, a/b, \\frac{a}{b}, mixed numbers)."""
    text = canon.replace(" ", "") if "\\frac" not in canon else canon
    if _NUMBER.fullmatch(text):
        return Fraction(text.replace(",", ""))
    m = _FRACTION.fullmatch(canon)
    if m and (m.group(4) or m.group(6)) and int(m.group(4) or m.group(6)):
        whole = int(m.group(2) or 0)
        num, den = int(m.group(3) or m.group(5)), int(m.group(4) or m.group(6))
        value = whole + Fraction(num, den)
        return -value if m.group(1) == "-" else value
    return None


# -- math-verify ------------------------------------------------------------------------------------------------


class Comparer:
    """The comparison rules with math-verify's parser behind them; parsed readings are cached (bounded)."""

    def __init__(self, cache_size: int = 4096):
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

        self._parse, self._verify = parse, verify
        self._configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
        self._parsed: dict[tuple, object] = {}
        self._golds: dict[str, Form | None] = {}
        self.cache_size = cache_size

    # -- public --------------------------------------------------------------------------------------------------

    def grade(self, gold: str, candidates: list[str]) -> str:
        """The outcome of one item (``candidates`` as from ``extract.answer_candidates``; empty: check the gold)."""
        g = self.gold(gold)
        if g is None:
            return GOLD_UNPARSEABLE
        if not candidates:
            return GOLD_OK
        raw = candidates[-1]
        boxed = last_boxed(raw)
        p = form(raw if boxed is None else boxed)
        if not p.key:
            return NO_PREDICTION
        if p.key == g.key:
            return CORRECT
        if PROSE.search(_COMMAND.sub(" ", p.canon)) and self._simple(g):
            verdict = self._mv(self._gold_readings(g), list(candidates))
        else:
            verdict = self.same(g, p, top=True)
        return NO_PREDICTION if verdict is None else CORRECT if verdict else WRONG

    def gold(self, gold: str) -> Form | None:
        """The gold's form, or None when it is not usable (empty, or LaTeX that math-verify cannot parse)."""
        if gold not in self._golds:
            if len(self._golds) > self.cache_size:
                self._golds.clear()
            g = form(gold)
            usable = bool(re.search(r"\w", g.key)) and (
                "\\" not in g.canon or self._parsed_first(self._gold_readings(g)) is not None)
            self._golds[gold] = g if usable else None
        return self._golds[gold]

    def same(self, g: Form, p: Form, top: bool = False) -> bool | None:
        """Does prediction ``p`` say what gold ``g`` says? None: ``p`` is not an answer math-verify can read."""
        if g.key == p.key:
            return True
        if g.time is not None or p.time is not None:
            return _time_equal(g, p)
        if g.compound or p.compound:
            if g.compound and not p.compound and all(self.same(part, p) for part in g.parts):
                return True  # -2 < x \leq 5 : (-2, 5] and (-2, 5]: every form the gold gives agrees
            if g.textfree and p.textfree and ":" not in (g.kind, p.kind) and not (g.compound and p.compound):
                return self._mv(self._gold_readings(g), self._readings(p))  # {1, 2} and 1, 2: sets, whole
            return len(g.parts) == len(p.parts) and self._match(g.parts, p.parts, ordered=g.kind == ":")
        if g.unit or p.unit:
            if g.unit and p.unit:
                return g.unit == p.unit and self._numbers_equal(g.number, p.number)
            q, bare = (g, p) if g.unit else (p, g)
            if bare.is_number:
                return (len(q.unit.replace(" ", "")) >= 2) and self._numbers_equal(q.number, bare.canon)
        if g.wordy or p.wordy:
            return False
        fg, fp = _fraction(g.canon), _fraction(p.canon)
        if fg is not None and fp is not None:  # two plain numbers: exact, without a parse (most GRPO answers)
            return fg == fp
        verdict = self._mv(self._gold_readings(g), self._readings(p))
        return verdict if top else bool(verdict)

    # -- internals -----------------------------------------------------------------------------------------------

    @staticmethod
    def _simple(g: Form) -> bool:
        return g.textfree and not (g.compound or g.time is not None or g.unit)

    @staticmethod
    def _gold_readings(g: Form) -> list[str]:
        return [f"\\boxed{{{g.canon}}}", f"\\boxed{{{g.text.strip()}}}", g.text.strip()]

    @staticmethod
    def _readings(p: Form) -> list[str]:
        return [f"\\boxed{{{p.canon}}}", p.text.strip()]

    def _match(self, golds: list[Form], preds: list[Form], ordered: bool) -> bool:
        if ordered:
            return all(self.same(g, p) for g, p in zip(golds, preds))
        left = list(preds)
        for g in golds:  # equality is an equivalence: a greedy matching finds one if there is one
            hit = next((i for i, p in enumerate(left) if self.same(g, p)), None)
            if hit is None:
                return False
            left.pop(hit)
        return True

    def _numbers_equal(self, a: str | None, b: str | None) -> bool:
        if a is None or b is None:
            return False
        fa, fb = _fraction(a), _fraction(b)
        if fa is not None and fb is not None:
            return fa == fb
        return bool(self._mv([f"\\boxed{{{a}}}"], [f"\\boxed{{{b}}}"]))

    def _mv(self, gold_readings: list[str], pred_readings: list[str]) -> bool | None:
        gold = self._parsed_first(gold_readings)
        if gold is None:
            return False  # a plain-text gold: only its identity matches
        pred = self._parsed_first(pred_readings)
        if pred is None:
            return None
        return bool(self._verify(gold, pred, timeout_seconds=None))

    def _parsed_first(self, readings: list[str]):
        key = tuple(readings)
        if key not in self._parsed:
            if len(self._parsed) > self.cache_size:
                self._parsed.clear()
            found = None
            for text in dict.fromkeys(readings):
                parsed = self._parse(text, extraction_config=self._configs, fallback_mode="no_fallback",
                                     parsing_timeout=None)
                parsed = [x for x in parsed if not isinstance(x, str)]
                if parsed:
                    found = parsed
                    break
            self._parsed[key] = found
        return self._parsed[key]
