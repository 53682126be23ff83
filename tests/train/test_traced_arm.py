"""An arm freezing ``mlp@traced`` (the paper's procedure): trained with the layers the study's trace selected, which
its manifests and arm.json record; refused by plain ``scalpel train``; retrained when the trace changes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scalpel import config
from scalpel.config import ConfigError
from scalpel.study import jobs
from scalpel.train import checkpoints as C
from scalpel.train.arms import run_arm

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "microworld" / "smoke.yaml"
ARM = "sft-freeze-mlp"
TRACED = "study.arms.2.freeze.freeze=[mlp@traced]"


@pytest.fixture(scope="module")
def traced_cfg(test_world):
    cfg = config.load(SMOKE, [f"study.model={test_world.dir}", TRACED])
    assert cfg.study.arms[2].name == ARM
    return cfg


@pytest.fixture(scope="module")
def traced_run(traced_cfg, quiet, tmp_path_factory):
    """The traced arm trained as `scalpel study` trains it, once its trace selected layer 1."""
    out = tmp_path_factory.mktemp("traced") / "runs"
    return out, run_arm(traced_cfg, ARM, 1, out, progress=False, log_fn=lambda *_: None, traced_layers=[1])


def test_the_run_records_the_resolved_layers_and_freezes_exactly_them(traced_run):
    out, summary = traced_run
    assert summary["trainable"]["freeze"] == ["mlp@1"] and summary["trainable"]["traced_layers"] == [1]
    rd = out / ARM / "seed-1"
    assert json.loads((rd / "arm.json").read_text())["trainable"]["freeze"] == ["mlp@1"]
    cks = C.complete_checkpoints(rd)
    m = C.read_manifest(cks[max(cks)])
    assert m["freeze"]["freeze"] == ["mlp@1"] and m["freeze_configured"]["freeze"] == ["mlp@traced"]
    assert m["traced_layers"] == [1]
    first, last = (load_file(str(cks[s] / "model.safetensors")) for s in (0, max(cks)))
    for n in first:
        if ".mlp." in n:
            assert torch.equal(first[n], last[n]) == (".layers.1." in n), n


def test_plain_scalpel_train_refuses_a_traced_arm_and_says_what_to_do(capsys):
    from scalpel.cli import main

    assert main(["train", str(SMOKE), "--arm", ARM, "--set", TRACED]) == 2
    err = capsys.readouterr().err
    assert "mlp@traced" in err and "scalpel study" in err and "scalpel analyze trace" in err


def test_a_trace_that_selects_no_layer_fails_the_arm(traced_cfg, tmp_path):
    with pytest.raises(ConfigError, match=rf"{ARM}.*selected no layer.*trace_threshold"):
        run_arm(traced_cfg, ARM, 1, tmp_path, progress=False, log_fn=lambda *_: None, traced_layers=[])


def test_a_run_of_another_traced_selection_is_moved_aside(traced_cfg, traced_run, tmp_path):
    out, _ = traced_run
    ctx = jobs.Context(traced_cfg, tmp_path, "", None, "")
    rd = jobs.run_dir(ctx.out, ARM, 1)
    shutil.copytree(out / ARM / "seed-1", rd)
    same = jobs.Job("train", "t", {"arm": ARM, "seed": 1, "traced_layers": [1]})
    jobs._retire_other_selection(ctx, same, lambda *_: None)
    assert rd.is_dir()  # the same selection resumes (here: is already complete)
    said = []
    jobs._retire_other_selection(ctx, jobs.Job("train", "t", {"arm": ARM, "seed": 1, "traced_layers": [0]}),
                                 said.append)
    assert not rd.exists() and len(list(rd.parent.glob("seed-1.other-trace-*"))) == 1
    assert "mlp@1" in said[0] and "mlp@0" in said[0]
