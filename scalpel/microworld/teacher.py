"""A programmatic teacher: a stronger reasoner than the base, writing in a style the base has never seen.

The analogue of R1 traces in OpenR1-Math. The base model writes a problem's whole computation on one line
(``tasks.short_solution``), which a tiny model gets wrong whenever it has to chain operations inside one forward
pass; the teacher decomposes every problem into labelled steps, one operation each, and checks the last step by
its inverse. Learning these traces therefore adds capability (multi-step problems become a chain of single
operations the base can already do) as well as a new style — which is what makes SFT both useful in-domain and
the "hammer" elsewhere. The traces stay short (57 tokens for two steps, 73 for three, format tags included) so a
tiny model can learn them.
"""

from __future__ import annotations

from scalpel.microworld.tasks import Problem

_INVERSE = {"+": "-", "-": "+"}


def teacher_solution(p: Problem) -> str:
    lines = [f"Step {i}: {x} {op} {y} = {r}." for i, (x, op, y, r) in enumerate(p.steps, 1)]
    x, op, y, r = p.steps[-1]
    if op in _INVERSE:
        lines.append(f"Check: {r} {_INVERSE[op]} {y} = {x}.")
    else:
        lines.append(f"Check: {y} * {x} = {r}.")
    lines.append(f"So the answer is {p.answer}.")
    return "<think>\n" + "\n".join(lines) + "\n</think>\n<answer>\n" + str(p.answer) + "\n</answer>"
