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


def _cell(g: dict | None) -> str:
    return "–" if g is None else f"{100 * g['mean']:+.1f} [{100 * g['ci95'][0]:+.1f}, {100 * g['ci95'][1]:+.1f}]"


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
    from scalpel.study import claims as C
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
    for who in [C.BASE] + [a["name"] for a in index["arms"]]:
        gains = ["", ""] if who == C.BASE else [_cell(C.gain(index, who, benches)) for benches in (ind, ood)]
        accs = [f"{100 * C.accuracy(index, who, b)['mean']:.1f}" for b in ind + ood]
        lines.append(f"| {who} | " + " | ".join(gains + accs) + " |")
    table = "\n".join(lines)
    print(table)
    (out / "lr_sweep.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
