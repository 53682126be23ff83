"""Learning-rate sweep for the demo's GRPO and SFT arms: the paper's protocol ("RL and SFT required different learning
rates to achieve in-domain improvements upon the baseline"), measured the way the demo's claims measure it.

    .venv/bin/python benchmarks/lr_sweep.py [--study scalpel/study/demo.yaml] [--grpo 3e-5,1e-4,3e-4]
        [--sft 1e-4,3e-4,1e-3] [--seeds 0,1] [--out studies/lr-sweep] [--set KEY=VALUE ...]

Runs one study (``scalpel study``, so training, evaluation and resumption are the real ones) whose arms are the
study file's settings with one learning rate each: same questions, batch, steps, schedule and evaluation as the
demo; analyses and pass@k off; only the final checkpoint evaluated. Then prints, per arm, the in-domain gain over
the base (mean over the in-domain benchmarks) and the out-of-domain change, each with the paired items x seeds 95 %
CI of ``scalpel.study.stats`` (the claims' statistics), and per benchmark the final accuracy. Rerunning the same
command resumes. Choose the learning rates in the study file from this table (the lowest that gains clearly is
the paper's spirit: enough to improve in-domain, no more), and paste the table into its comments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def arm_name(algorithm: str, lr: float) -> str:
    return f"{algorithm}-lr{lr:g}".replace("+", "")


def sweep_config(study_file: Path, grpo: list[float], sft: list[float], seeds: list[int],
                 sft_epochs: int = 1) -> dict:
    data = yaml.safe_load(study_file.read_text())
    study = data["study"]
    study["name"] = f"{study.get('name', 'study')}-lr-sweep"
    study["seeds"] = seeds
    study["arms"] = ([{"name": arm_name("grpo", lr), "algorithm": "grpo", "lr": lr} for lr in grpo]
                     + [{"name": arm_name("sft", lr), "algorithm": "sft", "lr": lr, "epochs": sft_epochs}
                        for lr in sft])
    ev = study.setdefault("eval", {})
    ev.update({"checkpoints": 1, "passk_samples": 1, "passk_arms": None})
    study["analysis"] = {"kl": False, "weights": False, "spectrum": False, "trace": False}
    return data


def per_item(path: Path) -> dict[str, float]:
    """item id -> mean correctness over its samples, from an evaluation's samples.jsonl."""
    got: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            got.setdefault(r["item_id"], []).append(float(bool(r["correct"])))
    return {k: sum(v) / len(v) for k, v in got.items()}


def final_step_dir(run_eval: Path) -> Path:
    steps = sorted((int(p.name.removeprefix("step-")), p) for p in run_eval.glob("step-*"))
    if not steps:
        raise SystemExit(f"{run_eval}: no evaluated checkpoint (did the study finish?)")
    return steps[-1][1]


def gain(out: Path, arm: str, seeds: list[int], benches: list[str]):
    """Crossed (seeds x items) estimate of the mean over ``benches`` of (arm − base) accuracy."""
    import numpy as np

    from scalpel.study import stats

    blocks = []
    for b in benches:
        base = per_item(out / "eval" / "base" / b / "samples.jsonl")
        runs = {s: per_item(final_step_dir(out / "eval" / arm / f"seed-{s}") / b / "samples.jsonl") for s in seeds}
        ids, rows, _ = stats.align({"base": base, **{f"seed-{s}": r for s, r in runs.items()}})
        blocks.append((np.asarray(rows[1:]) - rows[0], 1.0 / len(benches)))
    est = stats.crossed(blocks)
    return est, stats.difference_ci(est)


def accuracy(out: Path, arm: str, seeds: list[int], bench: str) -> float:
    vals = [per_item(final_step_dir(out / "eval" / arm / f"seed-{s}") / bench / "samples.jsonl") for s in seeds]
    return sum(sum(v.values()) / len(v) for v in vals) / len(vals)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=str(REPO / "scalpel" / "study" / "demo.yaml"))
    ap.add_argument("--grpo", default="3e-5,1e-4,3e-4", help="GRPO learning rates, comma-separated")
    ap.add_argument("--sft", default="1e-4,3e-4,1e-3", help="SFT learning rates, comma-separated")
    ap.add_argument("--seeds", default="0", help="seeds, comma-separated")
    ap.add_argument("--sft-epochs", type=int, default=1, help="passes of the SFT arms over the question budget "
                    "(more steps on the same stream; the paper's 3-epoch arm)")
    ap.add_argument("--out", default=str(REPO / "studies" / "lr-sweep"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra overrides of the generated study (e.g. microworld.seed=1, study.model=DIR)")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)

    from scalpel import config
    from scalpel.study.jobs import in_domain_of
    from scalpel.study.runner import run_study

    grpo = [float(x) for x in args.grpo.split(",") if x]
    sft = [float(x) for x in args.sft.split(",") if x]
    seeds = [int(x) for x in args.seeds.split(",") if x]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    study_yaml = out / "sweep.yaml"
    data = sweep_config(Path(args.study), grpo, sft, seeds, args.sft_epochs)
    study_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    overrides = list(args.overrides) + ([f"study.workers={args.workers}"] if args.workers else [])
    cfg = config.load(study_yaml, overrides)
    run_study(cfg, out)

    index = json.loads((out / "index.json").read_text())
    ind, ood = index["benchmarks"]["in_domain"], index["benchmarks"]["out_of_domain"]
    header = "| arm | in-domain gain, points [95 % CI] | out-of-domain change [95 % CI] | " + " | ".join(
        b.removeprefix("mw_") for b in ind + ood) + " |"
    lines = [f"lr sweep: {args.study}, seeds {seeds}, {out}", "", header,
             "|" + "---|" * (3 + len(ind) + len(ood))]
    base_row = [per_item(out / "eval" / "base" / b / "samples.jsonl") for b in ind + ood]
    lines.append("| base | | | " + " | ".join(f"{100 * sum(v.values()) / len(v):.1f}" for v in base_row) + " |")
    for arm in [a["name"] for a in index["arms"]]:
        cells = []
        for benches in (ind, ood):
            est, ci = gain(out, arm, seeds, benches)
            cells.append(f"{100 * est.mean:+.1f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]")
        accs = [f"{100 * accuracy(out, arm, seeds, b):.1f}" for b in ind + ood]
        lines.append(f"| {arm} | " + " | ".join(cells) + " | " + " | ".join(accs) + " |")
    table = "\n".join(lines)
    print(table)
    (out / "lr_sweep.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
