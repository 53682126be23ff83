"""Throughput of the GRPO rewards on realistic completions (a performance script, not a timed test).

Completions are built from MATH-500 (real LaTeX golds: fractions, radicals, intervals, matrices …): the reference
solution as the think block and, per question, G completions whose answer is the gold, one of two wrong answers, a
bare \\boxed{} outside answer tags, or nothing. Two regimes:

- ``unique``: 200 questions, one completion each, in one call: every (gold, prediction) pair is new.
- ``grpo``: 200 other questions, G completions each, one call per group as TRL makes at every step (duplicate
  answers inside a group are graded once, and the group's gold is parsed once).
Both run after a warm-up on 50 further questions (steady state, as in a training run).

    .venv/bin/python benchmarks/rewards_throughput.py [--workers 2] [--group 8] [--questions 200]

Reads ../shared/data/benchmarks/math500_test.jsonl (beside the checkout) or --math500 PATH.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from scalpel import grading
from scalpel.train.rewards import accuracy_reward, format_reward, tag_count_reward

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "math500_test.jsonl"


def completions_for(row: dict, group: int, rng: random.Random) -> list[str]:
    gold = row["answer"]
    wrong = [f"{gold}+1", "7" if gold.strip() != "7" else "8"]
    out = []
    for _ in range(group):
        kind = rng.random()
        think = f"<think>\n{row['solution'][:3000]}\n</think>\n"
        if kind < 0.45:
            out.append(think + f"<answer>\nThe answer is $\\boxed{{{gold}}}$.\n</answer>")
        elif kind < 0.75:
            out.append(think + f"<answer>\n{rng.choice(wrong)}\n</answer>")
        elif kind < 0.9:
            out.append(row["solution"][:3000] + f"\nSo the answer is \\boxed{{{gold}}}.")
        else:
            out.append(think + "I am not sure.")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--math500", type=Path, default=DEFAULT)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()

    rows = [json.loads(line) for line in args.math500.open()]
    if len(rows) < 2 * args.questions + 50:
        raise SystemExit(f"need {2 * args.questions + 50} questions, {args.math500} has {len(rows)}")
    rng = random.Random(0)
    grader = grading.configure_grader(workers=args.workers, timeout=args.timeout)
    start = time.monotonic()
    grader.warm_up()
    print(f"workers={args.workers}: start-up {time.monotonic() - start:.2f} s")
    # Steady state, as in a training run: parser caches warmed on questions the measurements do not use.
    warm = rows[-50:]
    accuracy_reward([completions_for(r, 1, rng)[0] for r in warm], answer=[r["answer"] for r in warm])
    time.sleep(2.0)  # let the zygote finish warming its own caches

    # unique: every (gold, prediction) pair new, one call
    first = rows[: args.questions]
    flat_c = [completions_for(r, 1, rng)[0] for r in first]
    flat_a = [r["answer"] for r in first]
    t = time.monotonic()
    rewards = accuracy_reward(flat_c, answer=flat_a)
    dt = time.monotonic() - t
    print(f"unique : {len(flat_c)} completions in {dt:.2f} s = {len(flat_c) / dt:.1f} completions/s "
          f"(mean reward {sum(r or 0 for r in rewards) / len(rewards):.2f}, skipped {rewards.count(None)})")

    # grpo: other questions, one call per group of G completions
    groups = [(completions_for(r, args.group, rng), [r["answer"]] * args.group)
              for r in rows[args.questions: 2 * args.questions]]
    before = dict(grader.stats.outcomes)
    t = time.monotonic()
    n = 0
    for comps, answers in groups:
        accuracy_reward(comps, answer=answers)
        n += len(comps)
    dt = time.monotonic() - t
    print(f"grpo   : {n} completions in groups of {args.group} in {dt:.2f} s = {n / dt:.1f} completions/s")
    after = grader.stats.outcomes
    print("outcomes:", {k: after[k] - before.get(k, 0) for k in after})

    t = time.monotonic()
    all_c = [c for comps, _ in groups for c in comps]
    for _ in range(10):
        format_reward(all_c)
        tag_count_reward(all_c)
    dt = (time.monotonic() - t) / 10
    print(f"format + tag_count: {len(all_c) / dt:,.0f} completions/s")
    grading.shutdown_grader()


if __name__ == "__main__":
    main()
