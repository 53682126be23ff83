"""Corrupted inputs: every damaged checkpoint is caught with a clear error by each consumer (evaluation, analyses,
resume), never silently loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scalpel.analyze.checkpoints import CheckpointError
from scalpel.errors import UserError
from scalpel.integrity import IntegrityError, digests, verify

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture()
def ckpt(test_world, tmp_path) -> Path:
    """A scalpel-style checkpoint: the test model + tokenizer + a manifest recording its weight digests."""
    d = tmp_path / "checkpoint-3"
    shutil.copytree(test_world.model_dir, d)
    (d / "manifest.json").write_text(json.dumps({"format": "scalpel-checkpoint/1", "step": 3, "files": digests(d)}))
    verify(d)  # sound before we break it
    return d


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def header_len(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def shard(d: Path) -> None:
    """Rewrite a checkpoint as two shards + index (what save_pretrained does for big models)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    parts = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for fname, keys in parts.items():
        save_file({k: tensors[k] for k in keys}, d / fname, metadata={"format": "pt"})
    (d / "model.safetensors").unlink()
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: f for f, ks in parts.items() for k in ks}}))


def damage(kind: str, d: Path) -> str:
    """Apply one kind of damage; returns a fragment the error message must contain."""
    w = d / "model.safetensors"
    if kind == "truncated_half":
        truncate(w, w.stat().st_size // 2)
        return "damaged"
    if kind == "truncated_last_byte":
        truncate(w, w.stat().st_size - 1)
        return "damaged"
    if kind == "truncated_header":
        truncate(w, 5)
        return "damaged"
    if kind == "bitflip_data":
        flip(w, w.stat().st_size - 100)
        return "differs from what its manifest recorded"
    if kind == "bitflip_header":
        flip(w, 12)
        return "damaged"
    if kind == "empty_file":
        w.write_bytes(b"")
        return "damaged"
    if kind == "missing_shard":
        shard(d)
        (d / "manifest.json").write_text(json.dumps({"files": digests(d)}))
        (d / "model-00002-of-00002.safetensors").unlink()
        return "missing"
    if kind == "manifest_other_weights":
        m = json.loads((d / "manifest.json").read_text())
        m["files"]["model.safetensors"]["sha256"] = "0" * 64
        (d / "manifest.json").write_text(json.dumps(m))
        return "differs from what its manifest recorded"
    if kind == "manifest_unreadable":
        (d / "manifest.json").write_text("{not json")
        return "unreadable"
    if kind == "weights_not_in_manifest":
        shutil.copy(w, d / "extra.safetensors")
        return "not in its manifest"
    if kind == "no_tokenizer":
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (d / f).unlink(missing_ok=True)
        return "no tokenizer"
    if kind == "pickle_only":
        w.rename(d / "pytorch_model.bin")
        return "pickle"
    raise AssertionError(kind)


KINDS = ["truncated_half", "truncated_last_byte", "truncated_header", "bitflip_data", "bitflip_header", "empty_file",
         "missing_shard", "manifest_other_weights", "manifest_unreadable", "weights_not_in_manifest", "no_tokenizer",
         "pickle_only"]


@pytest.mark.parametrize("kind", KINDS)
def test_evaluation_refuses_a_damaged_checkpoint(kind, ckpt, tally):
    from scalpel.evaluate.backends import check_model_dir

    fragment = damage(kind, ckpt)
    with pytest.raises(UserError) as exc:
        check_model_dir(ckpt)
    assert fragment in str(exc.value) and str(ckpt) in str(exc.value)
    tally("corrupt inputs caught (evaluation)")


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "no_tokenizer"])
def test_analyses_refuse_a_damaged_checkpoint(kind, ckpt, test_world, tmp_path, tally):
    from scalpel.analyze.kl import kl_curve
    from scalpel.analyze.weights import analyze_weights

    damage(kind, ckpt)
    with pytest.raises((IntegrityError, CheckpointError)):
        analyze_weights(test_world.model_dir, [ckpt], tmp_path / "w", progress=False, figures=False)
    with pytest.raises((IntegrityError, CheckpointError)):
        kl_curve(test_world.model_dir, [ckpt], test_world.dir, tmp_path / "kl", max_examples=2, progress=False,
                 figures=False)
    assert not (tmp_path / "w" / "weights.json").exists() and not (tmp_path / "kl" / "kl.json").exists()
    tally("corrupt inputs caught (analyses)", 2)


def test_a_checkpoint_without_a_manifest_gets_structure_checks_only(ckpt):
    (ckpt / "manifest.json").unlink()
    w = ckpt / "model.safetensors"
    flip(w, w.stat().st_size - 100)  # a flipped bit in tensor data: undetectable without recorded digests
    verify(ckpt)
    truncate(w, w.stat().st_size - 1)
    with pytest.raises(IntegrityError, match="truncated"):
        verify(ckpt)


@pytest.mark.slow
def test_resume_skips_a_damaged_latest_checkpoint_and_still_ends_bit_identical(test_world, tmp_path, tally):
    from safetensors.torch import load_file

    from scalpel import config
    from scalpel.train.arms import run_arm
    from scalpel.train.checkpoints import complete_checkpoints

    repo = Path(__file__).resolve().parents[2]
    cfg = config.load(repo / "recipes/microworld/smoke.yaml", [f"study.model={test_world.dir}", "study.train.steps=6",
                                                                "study.train.checkpoints=3",
                                                                "study.train.keep_optimizer_state=all"])
    quiet = lambda *a: None  # noqa: E731
    ref = run_arm(cfg, "sft", 1, tmp_path / "ref", progress=False, log_fn=quiet)
    run = run_arm(cfg, "sft", 1, tmp_path / "run", progress=False, log_fn=quiet)
    rd = tmp_path / "run" / "sft" / "seed-1"
    (rd / "arm.json").unlink()
    shutil.rmtree(rd / "checkpoint-6")  # as if killed before the last checkpoint
    flip(rd / "checkpoint-4" / "model.safetensors", (rd / "checkpoint-4" / "model.safetensors").stat().st_size - 64)
    said = []
    run = run_arm(cfg, "sft", 1, tmp_path / "run", progress=False, log_fn=said.append)
    assert any("checkpoint-4" in s and "moving it aside" in s for s in said), said
    assert run["resumed_from"] == 2 and sorted(complete_checkpoints(rd)) == [0, 2, 4, 6]
    assert list(rd.glob("damaged-checkpoint-4-*"))
    a = load_file(tmp_path / "ref/sft/seed-1/checkpoint-6/model.safetensors")
    b = load_file(rd / "checkpoint-6" / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a) and ref["checkpoints"] == run["checkpoints"]
    tally("corrupt inputs caught (resume)")
