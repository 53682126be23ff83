"""Study files: the recipes resolve (the paper's Figure 15 numbers visible), and invalid studies fail before any
compute with a message naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalpel import cli, config

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"

VALID = """
study:
  model: microworld
  data: {source: microworld}
  train: {steps: 4, global_batch: 8}
  grpo: {num_generations: 4}
  arms:
    - {name: grpo, algorithm: grpo, lr: 1.0e-4}
    - {name: sft, algorithm: sft, lr: 1.0e-3}
"""


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_paper_recipe_resolves_with_figure_15_numbers(capsys):
    code, out, err = run(capsys, "config", "resolve", str(RECIPES / "olmo2-7b" / "study.yaml"))
    assert code == 0, err
    s = json.loads(out)["study"]
    lrs = {a["name"]: a["lr"] for a in s["arms"]}
    assert lrs["grpo"] == 1e-6 and lrs["sft"] == 5e-5
    assert {a["name"]: a["epochs"] for a in s["arms"]}["sft-3ep"] == 3
    t, g = s["train"], s["grpo"]
    assert (t["steps"], t["checkpoints"], t["warmup_ratio"], t["max_grad_norm"], t["lr_scheduler"]) == \
        (571, 20, 0.1, 0.2, "constant_with_warmup")
    assert (g["num_generations"], g["loss_type"], g["beta"], g["epsilon"], g["temperature"],
            g["max_completion_length"]) == (28, "dr_grpo", 0.0, 0.2, 0.6, 1500)
    assert g["rewards"] == {"accuracy": 1.0, "format": 0.1} and g["generation"].startswith("vllm")
    assert t["global_batch"] == 112 and s["seeds"] == [42]
    d = s["data"]
    assert d["source"] == "openr1" and d["openr1"]["sources"] == ["cn_k12"] and d["openr1"]["max_tokens"] == 4096
    assert d["openr1"]["config"] == "extended"
    frozen = {a["name"]: a["freeze"] for a in s["arms"]}
    assert frozen["sft-qk-only"]["train_only"] == ["q_proj", "k_proj"]
    assert frozen["sft-freeze-mlp"]["freeze"] == ["mlp@20-26"]


def test_per_method_recipes_differ_only_in_their_arm():
    grpo = config.load(RECIPES / "olmo2-7b" / "grpo.yaml").study
    sft = config.load(RECIPES / "olmo2-7b" / "sft.yaml").study
    assert [a.algorithm for a in grpo.arms] == ["grpo"] and [a.algorithm for a in sft.arms] == ["sft"]
    assert grpo.model_dump(exclude={"arms"}) == sft.model_dump(exclude={"arms"})


@pytest.mark.parametrize("name", ["study.yaml", "smoke.yaml"])
def test_microworld_recipes_resolve_with_the_issue_arms(name):
    s = config.load(RECIPES / "microworld" / name).study
    assert {"grpo", "sft", "sft-freeze-mlp", "sft-qk-only"} <= {a.name for a in s.arms}
    assert s.data.source == "microworld" and s.match == {"study.yaml": "sequences", "smoke.yaml": "questions"}[name]


def test_why_recipe_has_the_on_policy_sft_arms_the_new_claims_read():
    from scalpel.study.claims import roles

    s = config.load(RECIPES / "microworld" / "why.yaml").study
    assert {a.name: a.algorithm for a in s.arms} == {"grpo": "grpo", "sft": "sft", "self-sft": "self_sft",
                                                     "self-sft-base": "self_sft_base"}
    cast = roles({"arms": [{**a.model_dump(mode="json"), "train_tiers": s.train_tiers(a)} for a in s.arms]})
    assert (cast["grpo"], cast["sft"], cast["self_sft"]) == ("grpo", "sft", "self-sft")
    assert all(a.rollouts for a in s.arms if a.algorithm != "sft")


@pytest.mark.parametrize(
    "edit, needles",
    [
        ({"arms": [{"name": "x", "algorithm": "ppo", "lr": 1e-4}]}, ["study.arms.0.algorithm", "'grpo', 'sft'"]),
        ({"arms": [{"name": "x", "algorithm": "self_sft", "lr": 1e-4}],
          "grpo": {"num_generations": 4, "rewards": {"format": 1.0}}}, ["arms ['x']", "'accuracy' to grpo.rewards"]),
        ({"arms": [{"name": "x", "algorithm": "self_sft_base", "lr": 1e-4}],
          "grpo": {"num_generations": 4, "generation": "vllm-server"}}, ["arms ['x']", "grpo.generation = hf"]),
        ({"train": {"steps": 4, "global_batch": 10}}, ["train.global_batch (10)", "grpo.num_generations (4)"]),
        ({"arms": [{"name": "x", "algorithm": "sft", "lr": 1e-4, "freeze": {"train_only": []}}]},
         ["study.arms.0.freeze", "freeze every parameter"]),
        ({"data": None}, ["study.data"]),
        ({"data": {"tiers": ["k12"]}}, ["study.data.source", "Field required"]),
        ({"arms": [{"name": "a", "algorithm": "sft", "lr": 1e-3}, {"name": "a", "algorithm": "grpo", "lr": 1e-4}]},
         ["duplicate arm name"]),
        ({"grpo": {"num_generations": 4, "rewards": {"accuracy": 1.0, "speed": 1.0}}}, ["unknown reward", "speed"]),
        ({"grpo": {"num_generations": 4, "rewards": {"format": 0.0}}}, ["every weight is 0"]),
        ({"arms": []}, ["study.arms"]),
        ({"arms": [{"name": "a", "algorithm": "sft", "lr": 1e-3, "epoch": 2}]}, ["study.arms.0.epoch", "unknown key",
                                                                                  "epochs"]),
        ({"grpo": {"num_generations": 4, "num_iterations": 4}}, ["study.grpo.num_iterations"]),
        ({"match": "tokens"}, ["study.match", "'questions' or 'sequences'"]),
        ({"seeds": [1, 1]}, ["seeds", "distinct"]),
    ],
)
def test_invalid_studies_name_the_field(tmp_path, capsys, edit, needles):
    import yaml

    data = yaml.safe_load(VALID)
    for key, value in edit.items():
        if value is None:
            data["study"].pop(key)
        else:
            data["study"][key] = value
    f = tmp_path / "study.yaml"
    f.write_text(yaml.safe_dump(data))
    code, _, err = run(capsys, "config", "resolve", str(f))
    assert code == 2, err
    for needle in needles:
        assert needle in err, err


def test_batch_that_processes_cannot_share_is_refused_before_compute():
    from scalpel.train.arms import batch_plan

    s = config.validate(__import__("yaml").safe_load(VALID)).study
    grpo, sft = s.arms
    assert batch_plan(s, grpo, 2).per_device == 4
    with pytest.raises(config.ConfigError, match="study.train.global_batch"):
        batch_plan(s, grpo, 3)
    plan = batch_plan(s.model_copy(update={"train": s.train.model_copy(update={"per_device_batch": 1})}), sft, 1)
    assert (plan.global_batch, plan.per_device, plan.accumulation) == (2, 1, 2)


def test_freezing_selectors_are_checked_against_the_model_before_compute(test_world):
    import yaml

    from scalpel.train.arms import preflight, resolve_base

    data = yaml.safe_load(VALID)
    data["study"]["model"] = str(test_world.dir)
    data["study"]["arms"].append({"name": "all-frozen", "algorithm": "sft", "lr": 1e-3,
                                  "freeze": {"freeze": ["model.*", "lm_head"]}})
    data["study"]["arms"].append({"name": "deep", "algorithm": "sft", "lr": 1e-3, "freeze": {"freeze": ["mlp@20-26"]}})
    cfg = config.validate(data)
    base = resolve_base(cfg, lambda *_: None)
    with pytest.raises(config.ConfigError, match=r"study\.arms\.2\.freeze .*nothing would train"):
        preflight(cfg, 1, base)
    data["study"]["arms"].pop(2)
    with pytest.raises(config.ConfigError, match=r"study\.arms\.2\.freeze .*layers 20-26.*layers 0-1"):
        preflight(config.validate(data), 1, base)
