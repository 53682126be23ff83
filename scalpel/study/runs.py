"""Reading the runs of an ``index.json``: grouped by arm, a run's final evaluation, a mean accuracy over benchmarks.

The claims, the figures and the report all read these from the index; they are defined here once so that "the
final checkpoint" or "an arm's runs" cannot mean one thing in a claim and another in the figure drawn beside it.
"""

from __future__ import annotations

import statistics


def by_arm(index: dict) -> dict[str, list[dict]]:
    """Arm name -> its runs (one per seed), in index order."""
    out: dict[str, list[dict]] = {}
    for r in index["runs"]:
        out.setdefault(r["arm"], []).append(r)
    return out


def final_eval(run: dict) -> dict:
    """The evaluation of a run's last evaluated checkpoint ({benchmark: summary}; {} when none was evaluated)."""
    ev = run.get("eval") or {}
    return ev[max(ev, key=int)] if ev else {}


def mean_accuracy(ev: dict, benches: list[str]) -> float | None:
    """Mean accuracy over ``benches`` of one evaluation; None unless every one of them was scored."""
    xs = [ev[b]["accuracy"] for b in benches if b in ev and ev[b].get("accuracy") is not None]
    return statistics.fmean(xs) if xs and len(xs) == len(benches) else None
