"""Safety: a model directory that ships its own Python code (``auto_map``) never gets it executed by scalpel unless
the user asks (``trust_remote_code``). The planted module writes a marker file when imported; the positive control
(asking for it) proves the marker would appear."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

EVIL = '''
from pathlib import Path
Path({marker!r}).write_text("remote code ran")
from transformers import Olmo2Config, Olmo2ForCausalLM

class EvilConfig(Olmo2Config):
    pass

class EvilModel(Olmo2ForCausalLM):
    config_class = EvilConfig
'''


@pytest.fixture()
def planted(test_world, tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(model dir whose config points at planted code, the marker that code writes when imported)."""
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    d = tmp_path / "model-with-code"
    shutil.copytree(test_world.model_dir, d)
    marker = tmp_path / "REMOTE_CODE_RAN"
    (d / "evil.py").write_text(EVIL.format(marker=str(marker)))
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"}
    (d / "config.json").write_text(json.dumps(cfg))
    return d, marker


def test_evaluation_and_training_loaders_do_not_run_shipped_code(planted):
    from transformers import AutoConfig

    from scalpel.evaluate.backends import HFBackend, load_tokenizer
    from scalpel.train.freeze import parameter_names

    d, marker = planted
    tok = load_tokenizer(d)
    HFBackend(d, tok, device="cpu")
    names = parameter_names(AutoConfig.from_pretrained(d, trust_remote_code=False))
    assert any(n.endswith("q_proj.weight") for n in names)
    assert not marker.exists(), "a scalpel loader executed code shipped with the model"


def test_kl_tracing_inspect_and_training_base_loaders_do_not_run_shipped_code(planted, test_world, smoke_study,
                                                                              tmp_path):
    """The other loaders of a model directory, each run to the end on the planted directory: KL to base (base and
    checkpoint), causal tracing, ``microworld inspect``'s loader and the training base's model + tokenizer."""
    from scalpel.analyze.kl import kl_curve
    from scalpel.analyze.trace import causal_trace
    from scalpel.microworld.inspect import load_model
    from scalpel.train.arms import Base, _load_model_and_tokenizer

    d, marker = planted
    item = test_world.items("maths_easy", "heldout")[0]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"question": item["question"], "solution": item["neutral"]}) + "\n")
    kl_curve(d, [d], pairs, tmp_path / "kl", figures=False, progress=False)
    causal_trace(d, test_world.dir / "tasks" / "facts.jsonl", tmp_path / "trace", samples=1, max_facts=4,
                 figures=False, progress=False)
    load_model(d)
    model, _ = _load_model_and_tokenizer(smoke_study, Base(str(d), test_world.system_prompt, None, {}))
    assert type(model).__name__ == "Olmo2ForCausalLM"
    assert not marker.exists(), "a scalpel loader executed code shipped with the model"


@pytest.fixture()
def smoke_study(test_world):
    from scalpel import config

    repo = Path(__file__).resolve().parents[2]
    return config.load(repo / "recipes" / "microworld" / "smoke.yaml", [f"study.model={test_world.dir}"]).study


def test_defaults_keep_remote_code_off():
    from scalpel.config import StudyConfig
    from scalpel.evaluate.runner import EvalConfig

    assert StudyConfig.model_fields["trust_remote_code"].default is False
    assert EvalConfig.__dataclass_fields__["trust_remote_code"].default is False


def test_positive_control_asking_for_remote_code_runs_it(planted):
    from transformers import AutoConfig

    d, marker = planted
    AutoConfig.from_pretrained(d, trust_remote_code=True)
    assert marker.exists(), "the planted module should run when remote code is explicitly trusted"
