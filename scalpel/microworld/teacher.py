"""A programmatic teacher: correct, verbose solutions in a reasoning style the base model has never seen.

This is the micro-world's analogue of R1 traces in OpenR1-Math: the SFT arm trains on these, so it must move the
model *off* its own distribution (the base writes bare equations), which is what makes SFT the "hammer".
"""

from __future__ import annotations

from scalpel.microworld.tasks import Problem

_WORDS = {"+": ("add", "plus", "more"), "-": ("subtract", "minus", "fewer"), "*": ("multiply", "times", "groups")}


def teacher_solution(p: Problem) -> str:
    lines = ["Let me read the problem carefully and work through it step by step."]
    lines.append(f"The numbers in the problem are {', '.join(str(o) for o in p.operands)}.")
    for i, (x, op, y, r) in enumerate(p.steps):
        verb, word, _ = _WORDS[op]
        opener = "First" if i == 0 else ("Finally" if i == len(p.steps) - 1 else "Next")
        lines.append(f"{opener}, I need to {verb}: {x} {word} {y} equals {r}.")
    last = p.steps[-1]
    inverse = {"+": ("minus", last[3] - last[2]), "-": ("plus", last[3] + last[2]), "*": ("divided by", None)}[last[1]]
    if inverse[1] is not None:
        lines.append(f"Let me check: {last[3]} {inverse[0]} {last[2]} equals {inverse[1]}, which matches.")
    lines.append(f"So the final result is {p.answer}.")
    return "<think>\n" + "\n".join(lines) + "\n</think>\n<answer>\n" + str(p.answer) + "\n</answer>"
