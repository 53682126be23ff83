"""The micro-world's tasks: generation of items, the base model's own short answer style, and their checkers.

In-domain: integer arithmetic word problems, an easy ("k12") and a hard ("olympiad") tier, plus a few-shot format
(the GSM8k analogue). Out-of-domain: facts about invented people asked as 4-way multiple choice (the MMLU analogue;
the knowledge lives only in pretraining) and checkable instructions (the IFEval analogue).

Everything is drawn from one ``random.Random`` per (seed, purpose), so a world is a pure function of its config.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from scalpel.grading.extract import find_answer

# ---------------------------------------------------------------------------------------------------------------
# Vocabulary of the world. Attribute values are short common words, so each is one token of the world's BPE.
# ---------------------------------------------------------------------------------------------------------------

RELATIONS: dict[str, dict] = {
    "city": {
        "values": ["Tarsa", "Molen", "Quibra", "Varnet", "Ostra", "Pelk", "Duvan", "Sorrel", "Kemba", "Ylva",
                   "Branok", "Fenmar"],
        "statement": "{s} lives in {a}.",
        "cloze": "{s} lives in",
        "question": "Where does {s} live?",
    },
    "job": {
        "values": ["baker", "farmer", "doctor", "pilot", "teacher", "painter", "sailor", "miner", "tailor",
                   "singer", "smith", "guard"],
        "statement": "{s} works as a {a}.",
        "cloze": "{s} works as a",
        "question": "What does {s} work as?",
    },
    "colour": {
        "values": ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "grey", "pink"],
        "statement": "{s} likes the colour {a}.",
        "cloze": "{s} likes the colour",
        "question": "Which colour does {s} like?",
    },
    "pet": {
        "values": ["cat", "dog", "goat", "owl", "fox", "frog", "horse", "parrot", "rabbit", "snake"],
        "statement": "{s} has a pet {a}.",
        "cloze": "{s} has a pet",
        "question": "Which pet does {s} have?",
    },
    "food": {
        "values": ["bread", "rice", "fish", "soup", "cheese", "apples", "plums", "beans", "eggs", "pie"],
        "statement": "{s} loves to eat {a}.",
        "cloze": "{s} loves to eat",
        "question": "What does {s} love to eat?",
    },
}

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st"]
_VOWELS = ["a", "e", "i", "o", "u"]
_CODAS = ["", "n", "r", "l", "k", "s", "m"]

# Maths word problems use everyday names and objects, disjoint from fact entities (no fact leaks into maths).
MATHS_NAMES = [("Mia", "She"), ("Tom", "He"), ("Ana", "She"), ("Leo", "He"), ("Ivy", "She"), ("Sam", "He"),
               ("Zoe", "She"), ("Max", "He"), ("Eva", "She"), ("Ben", "He")]
MATHS_OBJECTS = ["apples", "coins", "books", "shells", "stones", "cards", "cups", "pens", "boxes", "eggs"]
LETTERS = "ABCD"


def invent_names(rng: random.Random, n: int) -> list[str]:
    """n distinct two-part invented names, e.g. 'Tovak Brell'."""

    def word(syllables: int) -> str:
        w = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)) + rng.choice(_CODAS)
        return w.capitalize()

    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{word(2)} {word(rng.choice([1, 2]))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


# ---------------------------------------------------------------------------------------------------------------
# Maths
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str
    operands: tuple[int, ...]
    question: str
    steps: tuple[tuple[int, str, int, int], ...]  # (left, op, right, result) in solving order
    answer: int


def _two_step(rng: random.Random, hi: int) -> Problem:
    """Easy ("k12") tier: two steps of small numbers in one story, a third of them a small product then a sum or
    difference. Products belong here as they belong to K-12 maths: the teacher's traces on this tier then show
    every operation the hard tier uses, so SFT on them can transfer to hard problems (as R1's traces on CN-K12
    transfer to MATH-500 in the paper) rather than teaching a pattern that fits only one tier."""
    name, pron = rng.choice(MATHS_NAMES)
    obj = rng.choice(MATHS_OBJECTS)
    kind = rng.choice(["gain_gain", "gain_loss", "loss_gain", "loss_loss", "times_add", "times_sub"])
    while True:
        if kind.startswith("times"):
            a, b, c = rng.randint(2, 3), rng.randint(2, min(5, hi)), rng.randint(1, hi)
            op1, r1 = "*", a * b
            op2 = "+" if kind == "times_add" else "-"
        else:
            a, b, c = rng.randint(1, hi), rng.randint(1, hi), rng.randint(1, hi)
            op1 = "+" if kind.startswith("gain") else "-"
            op2 = "+" if kind.endswith("gain") else "-"
            r1 = a + b if op1 == "+" else a - b
        r2 = r1 + c if op2 == "+" else r1 - c
        if r1 >= 0 and r2 >= 0:
            break
    q = {
        "gain_gain": f"{name} has {a} {obj}. {pron} gets {b} more and then finds {c} more. "
                     f"How many {obj} does {name} have now?",
        "gain_loss": f"{name} has {a} {obj}. {pron} gets {b} more and then gives away {c}. "
                     f"How many {obj} does {name} have now?",
        "loss_gain": f"A shop had {a} {obj}. It sold {b} of them and then bought {c} more. "
                     f"How many {obj} does the shop have now?",
        "loss_loss": f"{name} has {a} {obj}. {pron} gives away {b} and then loses {c}. "
                     f"How many {obj} does {name} have left?",
        "times_add": f"{name} fills {a} rows with {b} {obj} each and puts {c} more on top. "
                     f"How many {obj} does {name} have now?",
        "times_sub": f"{name} fills {a} rows with {b} {obj} each and then takes {c} away. "
                     f"How many {obj} does {name} have left?",
    }[kind]
    return Problem(kind, (a, b, c), q, ((a, op1, b, r1), (r1, op2, c, r2)), r2)


def _multi_step(rng: random.Random, hi: int) -> Problem:
    """Hard ("olympiad") tier: a product followed by one or two additions/subtractions, or three of them."""
    name, pron = rng.choice(MATHS_NAMES)
    obj = rng.choice(MATHS_OBJECTS)
    kind = rng.choice(["mul_add", "mul_sub", "mul_add_sub", "add_sub_add"])
    while True:
        if kind.startswith("mul"):
            a, b, c, d = rng.randint(2, 4), rng.randint(2, min(9, hi)), rng.randint(1, hi), rng.randint(1, hi)
            p = a * b
            if kind == "mul_add":
                q = (f"{name} buys {a} packs of {obj} with {b} in each pack, and already had {c} {obj}. "
                     f"How many {obj} does {name} have now?")
                steps, operands = ((a, "*", b, p), (p, "+", c, p + c)), (a, b, c)
            elif kind == "mul_sub":
                q = (f"{name} has {a} boxes with {b} {obj} in each box. {pron} gives away {c} {obj}. "
                     f"How many {obj} does {name} have left?")
                steps, operands = ((a, "*", b, p), (p, "-", c, p - c)), (a, b, c)
            else:
                q = (f"{name} has {a} bags with {b} {obj} in each bag. {pron} finds {c} more {obj} and then "
                     f"loses {d}. How many {obj} does {name} have now?")
                steps, operands = ((a, "*", b, p), (p, "+", c, p + c), (p + c, "-", d, p + c - d)), (a, b, c, d)
        else:
            a, b, c, d = (rng.randint(1, hi) for _ in range(4))
            q = (f"{name} has {a} {obj}. {pron} gets {b} more, gives {c} to a friend, and then gets {d} more. "
                 f"How many {obj} does {name} have now?")
            steps, operands = ((a, "+", b, a + b), (a + b, "-", c, a + b - c), (a + b - c, "+", d, a + b - c + d)), \
                (a, b, c, d)
        if all(r >= 0 for *_, r in steps) and steps[-1][3] <= 199:
            return Problem(kind, operands, q, steps, steps[-1][3])


def make_problem(rng: random.Random, tier: str, easy_max: int, hard_max: int) -> Problem:
    return _two_step(rng, easy_max) if tier == "k12" else _multi_step(rng, hard_max)


def expression(p: Problem) -> str:
    """The whole computation on one line, left to right: '4 + 3 - 2' (products come first, so it is also right)."""
    return f"{p.steps[0][0]}" + "".join(f" {op} {y}" for _, op, y, _ in p.steps)


def short_solution(p: Problem, tagged: bool = True, stepwise: bool = False) -> str:
    """The base model's own style: the whole computation in one line, its result, the answer.

    A one-line result of two or three operations is hard for a tiny model (every intermediate value must be
    formed inside one forward pass); ``stepwise`` writes one equation per step instead, the rarer habit of the base
    that GRPO can amplify. The teacher's traces decompose every problem (``teacher.py``).
    """
    if stepwise:
        lines = "\n".join(f"{x} {op} {y} = {r}" for x, op, y, r in p.steps)
    else:
        lines = f"{expression(p)} = {p.answer}"
    if tagged:
        return f"<think>\n{lines}\n</think>\n<answer>\n{p.answer}\n</answer>"
    return f"<think>\n{lines}\n</think>\nThe answer is {p.answer}."


_NEUTRAL_OPS = {"+": "plus", "-": "minus", "*": "times"}


def neutral_solution(p: Problem) -> str:
    """A third solution style nobody trains on (neither the base's equations nor the teacher's steps): the text KL
    to the base is measured on, as the paper used MATH-500's human-written solutions."""
    parts = [f"{x} {_NEUTRAL_OPS[op]} {y} makes {r}" for x, op, y, r in p.steps]
    return "We work it out in words: " + ", and ".join(parts) + f". Hence the result is {p.answer}."


def arithmetic_facts(easy_max: int, hard_max: int) -> list[str]:
    """Every single operation the world's problems need, as equations ('7 + 5 = 12'): the base's arithmetic.

    Sums and differences of a running value up to the largest intermediate result with an operand up to the
    largest operand, and the products of the hard tier. Taught as plain text (tables), so the base can do each
    step; whether it can chain steps inside one line is what the tiers measure.
    """
    top = max(2 * easy_max, 4 * min(9, hard_max) + hard_max, 3 * hard_max)
    small = max(easy_max, hard_max)
    facts = [f"{x} + {y} = {x + y}" for x in range(top + 1) for y in range(1, small + 1) if x + y <= 199]
    facts += [f"{x} - {y} = {x - y}" for x in range(top + 1) for y in range(1, small + 1) if x >= y]
    facts += [f"{a} * {b} = {a * b}" for a in range(2, 5) for b in range(2, min(9, hard_max) + 1)]
    return facts


def fewshot_line(p: Problem) -> str:
    """GSM8k-style worked answer in the base's one-line style, then '#### N' (a few-shot turn's answer)."""
    return f"{expression(p)} = {p.answer}. #### {p.answer}"


# ---------------------------------------------------------------------------------------------------------------
# Facts as multiple choice
# ---------------------------------------------------------------------------------------------------------------


def mcq_question(question: str, choices: list[str]) -> str:
    """Instruction and options first, the question last: the question then sits right before the answer, as in
    the fact QA the model learnt from. With the question first (the options, or just the instruction, between it
    and the answer) the tiny base answered a fact it knew in QA form with some other, frequent value under
    multiple choice (QA recall 94-96 %, multiple choice 74-79 % here)."""
    opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"Answer with the letter or the option.\n{opts}\n{question}"


def qa_solution(attribute: str) -> str:
    """Base style for fact questions, multiple choice included: recall the attribute and answer with its text.

    A tiny model recalls facts well but cannot learn, in a few minutes of CPU pretraining, the lookup from a
    recalled option back to its letter (measured: 21 %, chance level, with the recall itself at 95 %). Answering
    with the option's text keeps multiple choice a 4-way choice (scoring accepts the letter or exactly one option's
    text) while measuring what matters here: whether the fact is still known.
    """
    return f"<think>\nThe answer is {attribute}.\n</think>\n<answer>\n{attribute}\n</answer>"


# ---------------------------------------------------------------------------------------------------------------
# Instruction following (IFEval analogue): each family has a generator and an independent checker.
# ---------------------------------------------------------------------------------------------------------------

INSTRUCT_WORDS = sorted({v for r in RELATIONS.values() for v in r["values"] if v.islower()} | set(MATHS_OBJECTS))
COLOURS = RELATIONS["colour"]["values"]


def make_instruction(rng: random.Random) -> tuple[str, str, dict, str]:
    """-> (family, question, kwargs, reference response body)."""
    family = rng.choice(["repeat", "upper", "reverse", "list"])
    if family == "repeat":
        w, k = rng.choice(INSTRUCT_WORDS), rng.randint(2, 5)
        return family, f"Write the word {w} exactly {k} times.", {"word": w, "times": k}, " ".join([w] * k)
    if family == "upper":
        w = rng.choice(INSTRUCT_WORDS)
        return family, f"Write the word {w} in capital letters.", {"word": w}, w.upper()
    if family == "reverse":
        ws = rng.sample(INSTRUCT_WORDS, 3)
        return (family, f"Write the words {' '.join(ws)} in reverse order.", {"words": ws},
                " ".join(reversed(ws)))
    k, first = rng.randint(2, 4), rng.choice(COLOURS)
    ref = " ".join([first] + rng.sample([c for c in COLOURS if c != first], k - 1))
    return family, f"Name {k} different colours, starting with {first}.", {"count": k, "first": first}, ref


def instruction_solution(family: str, kwargs: dict, body: str) -> str:
    thought = {
        "repeat": f"I write {kwargs.get('word')} {kwargs.get('times')} times.",
        "upper": f"I write {kwargs.get('word')} as {str(kwargs.get('word')).upper()}.",
        "reverse": "I write the words from last to first.",
        "list": f"I name {kwargs.get('count')} colours.",
    }[family]
    return f"<think>\n{thought}\n</think>\n<answer>\n{body}\n</answer>"


def extract_answer(completion: str, hash_fallback: bool = False) -> str | None:
    """The answer text by the rules of every scorer and of the GRPO reward (``scalpel.grading.extract``): the last
    <answer>…</answer>'s content (even empty), else the last \\boxed{…}'s, else (``hash_fallback``: the few-shot
    format, as GSM8k's) what follows the last '####' on its line, else None."""
    found = find_answer(completion, hash_fallback)
    return None if found is None else found[1]


def mcq_choice(pred: str, choices: list[str]) -> str | None:
    """The letter a multiple-choice answer names: a bare letter, or the text of exactly one option."""
    text = pred.strip().rstrip(".").strip()
    if text.upper() in LETTERS[: len(choices)] and len(text) == 1:
        return text.upper()
    words = set(re.findall(r"[A-Za-z]+", text.lower()))
    named = [i for i, c in enumerate(choices) if c.lower() in words]
    return LETTERS[named[0]] if len(named) == 1 else None


def check_instruction(item: dict, response: str) -> bool:
    """Does the response (its <answer> body when present, else the whole text) follow the item's instruction?"""
    body = extract_answer(response)
    if body is None:
        body = response or ""
    words = body.split()
    kw = item.get("kwargs") or {}
    family = item.get("family")
    if family == "repeat":
        return len(words) == int(kw["times"]) and all(w == kw["word"] for w in words)
    if family == "upper":
        return body.strip() == str(kw["word"]).upper()
    if family == "reverse":
        return words == list(reversed(kw["words"]))
    if family == "list":
        return (len(words) == int(kw["count"]) and len(set(words)) == len(words)
                and all(w in COLOURS for w in words) and words[0] == kw["first"])
    return False


def answer_is_correct(item: dict, completion: str) -> bool:
    """Micro-world scoring used by ``inspect``: exact match of the extracted answer (integers compared as ints)."""
    if item["task"] == "instruct":
        return check_instruction(item, completion)
    pred = extract_answer(completion, hash_fallback=item["task"] == "fewshot_maths")
    if pred is None:
        return False
    if item["task"] == "facts_mcq":
        return mcq_choice(pred, item["choices"]) == item["answer"]
    try:
        return int(pred.strip().rstrip(".")) == int(item["answer"])
    except ValueError:
        return False
