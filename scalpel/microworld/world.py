"""Generate a whole micro-world from its config: facts, task items with train/held-out splits, and the corpus.

The pretraining corpus is a list of documents: plain fact text (how knowledge enters the model) and one-turn chat
transcripts (fact QA, multiple choice on *train* facts, maths in the base model's short style, few-shot maths,
instructions). Held-out items never enter the corpus; held-out multiple-choice facts enter only as text and QA,
so the held-out MCQ measures recall, not a memorised option order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from scalpel.config import MicroworldConfig
from scalpel.microworld import tasks as T
from scalpel.microworld.teacher import teacher_solution


@dataclass
class Doc:
    """One pretraining document: either plain text, or a chat (question, answer, with/without system prompt, after
    few-shot (question, answer) turns if any)."""

    text: str = ""
    question: str = ""
    answer: str = ""
    system: bool = False
    shots: list[list[str]] = field(default_factory=list)

    @property
    def is_chat(self) -> bool:
        return bool(self.question)

    @property
    def words(self) -> str:
        """All of its text, for training the tokenizer."""
        return self.text or "\n".join([t for shot in self.shots for t in shot] + [self.question, self.answer])


@dataclass
class GeneratedWorld:
    facts: list[dict]
    items: dict[tuple[str, str], list[dict]]  # (task, split) -> items
    corpus: list[Doc] = field(default_factory=list)


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"scalpel-microworld/{seed}/{purpose}")


def make_facts(cfg: MicroworldConfig) -> list[dict]:
    rng = _rng(cfg.seed, "facts")
    facts = []
    for e, subject in enumerate(T.invent_names(rng, cfg.world.entities)):
        for rel in cfg.world.relations:
            spec = T.RELATIONS[rel]
            attr = rng.choice(spec["values"])
            facts.append({
                "id": f"fact.{e:04d}.{rel}",
                "subject": subject,
                "relation": rel,
                "attribute": attr,
                "statement": spec["statement"].format(s=subject, a=attr),
                "prompt": spec["cloze"].format(s=subject),
                "target": " " + attr,
                "question": spec["question"].format(s=subject),
            })
    return facts


def _mcq_item(rng: random.Random, fact: dict, split: str, n: int) -> dict:
    values = T.RELATIONS[fact["relation"]]["values"]
    choices = rng.sample([v for v in values if v != fact["attribute"]], 3) + [fact["attribute"]]
    rng.shuffle(choices)
    letter = T.LETTERS[choices.index(fact["attribute"])]
    return {
        "id": f"facts_mcq.{split}.{n:05d}", "task": "facts_mcq", "split": split, "tier": "mcq",
        "question": T.mcq_question(fact["question"], choices), "answer": letter,
        "subject": fact["subject"], "relation": fact["relation"], "choices": choices,
        "answer_text": fact["attribute"], "fact_id": fact["id"],
    }


def _maths_item(p: T.Problem, task: str, split: str, tier: str, n: int) -> dict:
    return {
        "id": f"{task}.{split}.{n:05d}", "task": task, "split": split, "tier": tier,
        "question": p.question, "answer": str(p.answer), "kind": p.kind, "operands": list(p.operands),
        "solution": T.short_solution(p), "teacher": teacher_solution(p), "neutral": T.neutral_solution(p),
    }


def _draw_problems(cfg: MicroworldConfig, tier: str) -> tuple[list[T.Problem], list[T.Problem]]:
    """Held-out first, then train problems whose question text differs from every held-out one."""
    rng = _rng(cfg.seed, f"maths/{tier}")
    w = cfg.world
    heldout: list[T.Problem] = []
    seen: set[str] = set()
    while len(heldout) < w.maths_heldout:
        p = T.make_problem(rng, tier, w.easy_max, w.hard_max)
        if p.question not in seen:
            seen.add(p.question)
            heldout.append(p)
    train = []
    while len(train) < w.maths_train:
        p = T.make_problem(rng, tier, w.easy_max, w.hard_max)
        if p.question not in seen:  # train may repeat itself, never a held-out question
            train.append(p)
    return train, heldout


def generate(cfg: MicroworldConfig) -> GeneratedWorld:
    w = cfg.world
    facts = make_facts(cfg)
    items: dict[tuple[str, str], list[dict]] = {}

    # Facts as multiple choice: split by fact.
    rng = _rng(cfg.seed, "mcq")
    order = list(range(len(facts)))
    rng.shuffle(order)
    n_held = max(1, round(len(facts) * w.mcq_heldout_fraction))
    held_ids = set(order[:n_held])
    for split, chosen in (("train", [i for i in range(len(facts)) if i not in held_ids]),
                          ("heldout", sorted(held_ids))):
        items[("facts_mcq", split)] = [_mcq_item(rng, facts[i], split, n) for n, i in enumerate(chosen)]

    # Maths, two tiers.
    problems: dict[str, tuple[list[T.Problem], list[T.Problem]]] = {}
    for task, tier in (("maths_easy", "k12"), ("maths_hard", "olympiad")):
        train, heldout = _draw_problems(cfg, tier)
        problems[tier] = (train, heldout)
        items[(task, "train")] = [_maths_item(p, task, "train", tier, n) for n, p in enumerate(train)]
        items[(task, "heldout")] = [_maths_item(p, task, "heldout", tier, n) for n, p in enumerate(heldout)]

    # Few-shot maths (easy tier), shots as earlier chat turns (as gsm8k_5shot renders GSM8k's): shots always from
    # train problems; targets split like the maths items.
    rng = _rng(cfg.seed, "fewshot")
    easy_train, easy_held = problems["k12"]
    for split, targets in (("train", easy_train[: w.fewshot_train]),
                           ("heldout", easy_held[: w.fewshot_heldout])):
        rows = []
        for n, p in enumerate(targets):
            shots = rng.sample(easy_train, w.fewshot_shots)
            rows.append({
                "id": f"fewshot_maths.{split}.{n:05d}", "task": "fewshot_maths", "split": split, "tier": "k12",
                "question": p.question, "answer": str(p.answer), "shots": [[s.question, T.fewshot_line(s)]
                                                                           for s in shots],
                "solution": T.fewshot_line(p),
            })
        items[("fewshot_maths", split)] = rows

    # Instruction following: held-out prompts first; train prompts never repeat a held-out one.
    rng = _rng(cfg.seed, "instruct")
    held_questions: set[str] = set()
    for split, count in (("heldout", w.instruct_heldout), ("train", w.instruct_train)):
        rows: list[dict] = []
        while len(rows) < count:
            family, q, kwargs, body = T.make_instruction(rng)
            if q in held_questions:
                continue
            if split == "heldout":
                held_questions.add(q)
            rows.append({
                "id": f"instruct.{split}.{len(rows):05d}", "task": "instruct", "split": split, "tier": family,
                "question": q, "answer": body, "family": family, "kwargs": kwargs,
                "solution": T.instruction_solution(family, kwargs, body),
            })
        items[("instruct", split)] = rows

    world = GeneratedWorld(facts=facts, items=items)
    world.corpus = build_corpus(cfg, world, problems)
    return world


def build_corpus(cfg: MicroworldConfig, world: GeneratedWorld,
                 problems: dict[str, tuple[list[T.Problem], list[T.Problem]]]) -> list[Doc]:
    rng = _rng(cfg.seed, "corpus")
    pt = cfg.pretrain
    docs: list[Doc] = []

    def chat(question: str, answer: str, shots: list[list[str]] | None = None) -> Doc:
        return Doc(question=question, answer=answer, system=rng.random() < pt.system_fraction, shots=shots or [])

    by_subject: dict[str, list[dict]] = {}
    for f in world.facts:
        by_subject.setdefault(f["subject"], []).append(f)
    for subject_facts in by_subject.values():
        for _ in range(pt.fact_repeats):  # plain text: several orders of one person's facts
            rng.shuffle(subject_facts)
            docs.append(Doc(text=" ".join(f["statement"] for f in subject_facts)))
    for f in world.facts:  # every fact also as QA, held-out MCQ facts included (recall is what we test)
        for _ in range(pt.qa_repeats):
            docs.append(chat(f["question"], T.qa_solution(f["attribute"])))
    fact_by_id = {f["id"]: f for f in world.facts}
    for item in world.items[("facts_mcq", "train")]:
        fact = fact_by_id[item["fact_id"]]
        for _ in range(pt.mcq_repeats):  # several option orders of each train fact teach the letter mapping
            again = _mcq_item(rng, fact, "train", 0)
            docs.append(chat(again["question"], T.qa_solution(fact["attribute"])))
    for tier in ("k12", "olympiad"):
        for p in problems[tier][0][: pt.maths_docs]:
            docs.append(chat(p.question, T.short_solution(p, tagged=rng.random() >= pt.untagged_fraction,
                                                          stepwise=rng.random() < pt.stepwise_fraction)))
    equations = T.arithmetic_facts(cfg.world.easy_max, cfg.world.hard_max)
    for _ in range(pt.arithmetic_repeats):  # arithmetic tables as plain text, a few equations per document
        rng.shuffle(equations)
        docs += [Doc(text=". ".join(equations[i: i + 8]) + ".") for i in range(0, len(equations), 8)]
    for item in world.items[("fewshot_maths", "train")]:
        docs.append(chat(item["question"], item["solution"], item["shots"]))
    for _ in range(pt.instruct_repeats):
        for item in world.items[("instruct", "train")]:
            docs.append(chat(item["question"], item["solution"]))
    rng.shuffle(docs)
    return docs
