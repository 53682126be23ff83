"""The paper's freezing procedure in a study: an arm freezing ``mlp@traced`` waits for causal tracing of the base,
is keyed by the layers it selected, fails clearly when it cannot be traced, and the claims read the layers it
trained with. Fast: plans, markers and hand-made indexes, no training."""

from __future__ import annotations

import json

import pytest

from scalpel import config
from scalpel.config import ConfigError
from scalpel.study import claims, jobs, runner

ARMS = [{"name": "sft", "algorithm": "sft", "lr": 1e-3},
        {"name": "sft-freeze-mlp", "algorithm": "sft", "lr": 1e-3, "freeze": {"freeze": ["mlp@traced"]}}]


def cfg(model="microworld", **analysis):
    return config.validate({"study": {
        "model": str(model), "data": {"source": "microworld"}, "seeds": [0, 1],
        "train": {"steps": 2, "global_batch": 4}, "grpo": {"num_generations": 2},
        "eval": {"passk_samples": 1}, "analysis": analysis, "arms": ARMS}})


def by_name(job_list):
    return {j.name: j for j in job_list}


def test_traced_arm_trains_after_the_trace_and_is_keyed_by_its_layers():
    c = cfg()
    planned = by_name(jobs.plan(c))
    train = planned["train-sft-freeze-mlp-s0"]
    assert train.deps == ("trace-base",) and train.waits_for_trace
    assert planned["train-sft-s0"].deps == () and not planned["train-sft-s0"].waits_for_trace
    for kind in ("eval", "kl", "weights"):  # the arm's evaluation and analyses are keyed by the layers too
        assert planned[f"{kind}-sft-freeze-mlp-s1"].waits_for_trace
    cj = c.model_dump(mode="json")
    a = by_name(jobs.with_traced_layers(jobs.plan(c), [2, 3]))
    b = by_name(jobs.with_traced_layers(jobs.plan(c), [3, 4]))
    assert a["train-sft-freeze-mlp-s0"].args["traced_layers"] == [2, 3]
    assert not any(j.waits_for_trace for j in a.values())
    assert a["train-sft-freeze-mlp-s0"].key(cj) != b["train-sft-freeze-mlp-s0"].key(cj)  # other trace: retrain
    assert a["eval-sft-freeze-mlp-s0"].key(cj) != b["eval-sft-freeze-mlp-s0"].key(cj)
    same = by_name(jobs.with_traced_layers(jobs.plan(c), [2, 3]))
    assert a["train-sft-freeze-mlp-s0"].key(cj) == same["train-sft-freeze-mlp-s0"].key(cj)
    assert a["train-sft-s0"] == planned["train-sft-s0"]  # untouched arms keep their keys
    assert jobs.with_traced_layers(list(planned.values()), None) == list(planned.values())


def test_runner_reads_the_layers_from_the_trace_marker_only_when_it_is_current(tmp_path):
    c = cfg()
    cj = c.model_dump(mode="json")
    planned = jobs.plan(c)
    trace = by_name(planned)["trace-base"]
    waiting = by_name(planned)["train-sft-freeze-mlp-s0"]
    assert runner.traced_layers(tmp_path, planned, cj) is None
    assert not runner.is_done(tmp_path, waiting, cj)  # never trusted before its layers are known
    path = runner.marker_path(tmp_path, trace)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"key": trace.key(cj), "result": {"layers": [1, 2]}}))
    assert runner.traced_layers(tmp_path, planned, cj) == [1, 2]
    other = c.model_copy(deep=True)
    other.study.analysis.trace_threshold = 0.3  # a changed trace setting: the marker is stale, the trace reruns
    assert runner.traced_layers(tmp_path, planned, other.model_dump(mode="json")) is None


def test_after_the_trace_already_trained_jobs_with_the_same_layers_are_done(tmp_path):
    c = cfg()
    cj = c.model_dump(mode="json")
    planned = jobs.plan(c)
    todo = [j for j in planned if j.args.get("arm") == "sft-freeze-mlp"]
    trained = by_name(jobs.with_traced_layers(todo, [1, 2]))["train-sft-freeze-mlp-s0"]
    path = runner.marker_path(tmp_path, trained)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"key": trained.key(cj)}))
    done: set[str] = set()
    view = runner.LiveView(planned, done, 1, lambda *_: None)
    runner._traced_arms_ready(tmp_path, todo, done, cj, [1, 2], view)
    assert done == {"train-sft-freeze-mlp-s0"} and "train-sft-freeze-mlp-s0" not in {j.name for j in todo}
    assert all(j.args["traced_layers"] == [1, 2] for j in todo)
    todo2 = [j for j in planned if j.args.get("arm") == "sft-freeze-mlp"]
    runner._traced_arms_ready(tmp_path, todo2, set(), cj, [0], view)  # another selection: everything reruns
    assert len(todo2) == len(todo) + 1


def test_traced_arm_with_tracing_off_is_a_config_error():
    with pytest.raises(ConfigError, match=r"arms \['f'\].*'@traced'.*analysis.trace is false.*trace: true"):
        config.load(None, ["study.model=microworld", "study.data.source=microworld", "study.train.steps=2",
                           "study.train.global_batch=4", "study.grpo.num_generations=2", "study.analysis.trace=false",
                           "study.arms=[{name: f, algorithm: sft, lr: 0.001, freeze: {freeze: [mlp@traced]}}]"])


def test_traced_arm_needs_facts_to_trace(tmp_path):
    c = cfg(model=tmp_path).study
    with pytest.raises(ConfigError, match=r"trace_facts.*not a micro-world.*known_1000.json"):
        jobs.check_tracing(c, None)
    jobs.check_tracing(c, str(tmp_path))  # a micro-world brings its facts
    missing = cfg(trace_facts=str(tmp_path / "known_1000.json")).study
    with pytest.raises(ConfigError, match=r"known_1000.json does not exist"):
        jobs.check_tracing(missing, None)
    plain = c.model_copy(update={"arms": [c.arms[0]]})
    jobs.check_tracing(plain, None)  # no traced arm: nothing to check


def _index(freeze, recorded):
    run = {"arm": "f", "seed": 0, "train": {"summary": {"trainable": {"freeze": recorded} if recorded else None}}}
    return {"arms": [{"name": "f", "algorithm": "sft", "freeze": {"freeze": freeze}}], "runs": [run]}


def test_claims_mid_layers_read_the_resolved_layers_of_a_traced_arm():
    assert claims.mid_layers(_index(["mlp@traced"], ["mlp@2-4"]), {"sft_freeze_mlp": "f"}) == [2, 3, 4]
    assert claims.mid_layers(_index(["mlp@traced"], ["mlp@1", "mlp@3-4"]), {"sft_freeze_mlp": "f"}) == [1, 3, 4]
    assert claims.mid_layers(_index(["mlp@1-2"], None), {"sft_freeze_mlp": "f"}) == [1, 2]
    assert claims.roles({"arms": _index(["mlp@traced"], None)["arms"]})["sft_freeze_mlp"] == "f"
