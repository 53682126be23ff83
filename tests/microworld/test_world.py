"""World generation: determinism, split disjointness, item schema, and a teacher checked independently."""

from __future__ import annotations

import re

import pytest

from scalpel import config
from scalpel.microworld import tasks as T
from scalpel.microworld.world import generate

TASKS = ["maths_easy", "maths_hard", "facts_mcq", "fewshot_maths", "instruct"]


@pytest.fixture(scope="module")
def world():
    return generate(config.load(None, ["microworld.size=test"]).microworld)


def test_generation_is_deterministic_and_seeded():
    cfg = config.load(None, ["microworld.size=test"]).microworld
    a, b = generate(cfg), generate(cfg)
    assert a.items == b.items and a.facts == b.facts
    assert [d.__dict__ for d in a.corpus] == [d.__dict__ for d in b.corpus]
    other = generate(config.load(None, ["microworld.size=test", "microworld.seed=1"]).microworld)
    assert other.facts != a.facts and other.items != a.items


def test_every_item_has_id_gold_and_tier(world):
    ids = set()
    for (task, split), rows in world.items.items():
        assert rows, (task, split)
        for it in rows:
            assert it["task"] == task and it["split"] == split
            assert it["id"] not in ids
            ids.add(it["id"])
            assert it["answer"] and it["tier"] and it["question"]
    assert {t for t, _ in world.items} == set(TASKS)


def test_heldout_questions_never_in_pretraining(world):
    corpus_text = "\n".join(d.text + "\n" + d.question + "\n" + d.answer for d in world.corpus)
    train_questions = {d.question for d in world.corpus}
    for task in ["maths_easy", "maths_hard", "instruct", "facts_mcq"]:
        for it in world.items[(task, "heldout")]:
            assert it["question"] not in train_questions, it["id"]
    for it in world.items[("maths_easy", "heldout")] + world.items[("maths_hard", "heldout")]:
        assert it["question"] not in corpus_text, it["id"]  # not even inside a few-shot prompt
    # held-out MCQ facts are still *known*: their statement is in the fact text
    for it in world.items[("facts_mcq", "heldout")]:
        assert f"{it['subject']} " in corpus_text


def test_mcq_gold_letter_points_at_the_fact(world):
    facts = {f["id"]: f for f in world.facts}
    for it in world.items[("facts_mcq", "heldout")]:
        assert len(it["choices"]) == 4 == len(set(it["choices"]))
        assert it["choices"]["ABCD".index(it["answer"])] == facts[it["fact_id"]]["attribute"]


def _solve_from_text(question: str, kind: str) -> int:
    """An independent solver: reads the numbers off the question text and applies the template's meaning."""
    n = [int(x) for x in re.findall(r"\d+", question)]
    return {
        "gain_gain": lambda: n[0] + n[1] + n[2], "gain_loss": lambda: n[0] + n[1] - n[2],
        "loss_gain": lambda: n[0] - n[1] + n[2], "loss_loss": lambda: n[0] - n[1] - n[2],
        "mul_sub": lambda: n[0] * n[1] - n[2], "mul_add": lambda: n[0] * n[1] + n[2],
        "times_sub": lambda: n[0] * n[1] - n[2], "times_add": lambda: n[0] * n[1] + n[2],
        "mul_add_sub": lambda: n[0] * n[1] + n[2] - n[3],
        "add_sub_add": lambda: n[0] + n[1] - n[2] + n[3],
    }[kind]()


STEP = re.compile(r"Step \d+: (\d+) ([-+*]) (\d+) = (\d+)\.")
CHECK = re.compile(r"Check: (\d+) ([-+*]) (\d+) = (\d+)\.")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def test_teacher_decomposes_every_problem_correctly(world):
    """The teacher writes one true equation per operation (the capability the base's one-line style lacks), checks
    the last one by its inverse, and is off the base's style."""
    for task, steps_allowed in [("maths_easy", {2}), ("maths_hard", {2, 3})]:
        for it in world.items[(task, "train")][:300] + world.items[(task, "heldout")]:
            truth = _solve_from_text(it["question"], it["kind"])
            assert int(it["answer"]) == truth >= 0
            teacher = it["teacher"]
            m = re.fullmatch(r"<think>\n(.+)\n</think>\n<answer>\n(.+)\n</answer>", teacher, re.DOTALL)
            assert m, teacher
            assert int(m.group(2)) == truth
            steps = STEP.findall(m.group(1))
            assert len(steps) in steps_allowed, teacher
            for a, op, b, r in steps + CHECK.findall(m.group(1)):  # every arithmetic claim is true
                assert OPS[op](int(a), int(b)) == int(r), teacher
            assert int(steps[-1][3]) == truth
            assert "Step" not in it["solution"] and len(it["solution"].splitlines()) == 6  # one-line base style


def test_neutral_text_is_correct_and_in_neither_trained_style(world):
    for it in world.items[("maths_easy", "heldout")] + world.items[("maths_hard", "heldout")]:
        text = it["neutral"]
        assert text.endswith(f"the result is {it['answer']}.")
        assert "<think>" not in text and "Step" not in text and "=" not in text


def test_base_style_and_fewshot_answers_are_correct(world):
    for it in world.items[("maths_hard", "heldout")]:
        assert T.extract_answer(it["solution"]) == it["answer"]
    for it in world.items[("fewshot_maths", "heldout")]:
        assert len(it["shots"]) == 3 and it["question"] not in [q for q, _ in it["shots"]]
        for _, a in it["shots"] + [[it["question"], it["solution"]]]:  # every worked answer is right
            expr, result = re.fullmatch(r"([\d +*-]+) = (\d+)\. #### \d+", a).groups()
            assert eval(expr) == int(result) == int(T.extract_answer(a, hash_fallback=True))  # noqa: S307
        assert T.extract_answer(it["solution"], hash_fallback=True) == it["answer"]


def test_instruction_checker_accepts_reference_and_rejects_others(world):
    families = set()
    for it in world.items[("instruct", "heldout")] + world.items[("instruct", "train")]:
        families.add(it["family"])
        assert T.check_instruction(it, it["solution"])
        assert T.check_instruction(it, it["answer"])
        assert not T.check_instruction(it, "<think>\nx\n</think>\n<answer>\nnope\n</answer>")
    assert families == {"repeat", "upper", "reverse", "list"}


def test_answer_scoring():
    item = {"task": "maths_easy", "answer": "12"}
    assert T.answer_is_correct(item, "<think>\n5 + 7 = 12\n</think>\n<answer>\n12\n</answer>")
    assert not T.answer_is_correct(item, "<think>\n5 + 7 = 12\n</think>\nThe answer is 12.")
    assert not T.answer_is_correct(item, "<answer>\n13\n</answer>")
    assert T.answer_is_correct({"task": "fewshot_maths", "answer": "12"}, "5 + 7 = 12. #### 12")
    # the reward's extraction rules (scalpel.grading.extract): a last box counts, '####' only in the few-shot format
    assert T.answer_is_correct(item, "5 + 7 = \\boxed{12}")
    assert not T.answer_is_correct(item, "5 + 7 = 12. #### 12")
    assert not T.answer_is_correct(item, "<answer>\n\n</answer> \\boxed{12}")  # an empty answer tag still wins
    mcq = {"task": "facts_mcq", "answer": "C", "choices": ["cat", "dog", "owl", "fox"]}
    assert T.answer_is_correct(mcq, "<answer>\nc\n</answer>")
    assert T.answer_is_correct(mcq, "<think>\nThe answer is owl.\n</think>\n<answer>\nowl\n</answer>")
    assert not T.answer_is_correct(mcq, "<answer>\nowl or fox\n</answer>")  # naming two options is no choice
    assert not T.answer_is_correct(mcq, "<answer>\nA\n</answer>")
