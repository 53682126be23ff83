"""Build (or reuse) a micro-world directory: tasks, tokenizer, pretrained base model, greedy base evaluation.

The directory is keyed by a hash of the resolved config plus the library versions that decide the bits (a CPU
result differs across torch builds), written to a temporary sibling and renamed into place, so a crash never
leaves a half-built world that looks complete. A second build with the same config returns at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

from scalpel.config import MicroworldConfig
from scalpel.data.prompts import MICROWORLD_SYSTEM_PROMPT
from scalpel.errors import WorldError
from scalpel.integrity import sha256
from scalpel.locks import locked
from scalpel.microworld.world import generate

FORMAT = "scalpel-microworld/1"
# Bump when world generation or pretraining changes in a way that changes the output for the same config.
GENERATOR_VERSION = 4


def _versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__}


def world_key(cfg: MicroworldConfig) -> str:
    blob = json.dumps({"config": cfg.model_dump(mode="json"), "generator": GENERATOR_VERSION,
                       "versions": _versions()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("SCALPEL_CACHE", Path.home() / ".cache" / "scalpel")) / "microworld"


def default_dir(cfg: MicroworldConfig) -> Path:
    return cache_root() / f"{cfg.size}-seed{cfg.seed}-{world_key(cfg)[:12]}"


class World:
    """A built micro-world on disk (see docs/microworld-format.md)."""

    def __init__(self, path: Path, manifest: dict):
        self.dir = Path(path)
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | Path) -> "World":
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.is_file():
            raise WorldError(f"{path} is not a micro-world (no manifest.json); build one with "
                             f"`scalpel microworld build --out {path}`")
        manifest = json.loads(mf.read_text())
        if manifest.get("format") != FORMAT:
            raise WorldError(f"{mf} has format {manifest.get('format')!r}, expected {FORMAT!r}")
        return cls(path, manifest)

    @property
    def model_dir(self) -> Path:
        return self.dir / "model"

    @property
    def system_prompt(self) -> str:
        return self.manifest["system_prompt"]

    @property
    def key(self) -> str:
        return self.manifest["key"]

    def items(self, task: str, split: str) -> list[dict]:
        path = self.dir / "tasks" / f"{task}.{split}.jsonl"
        if not path.is_file():
            raise WorldError(f"{path} does not exist; tasks are: {sorted(p.name for p in (self.dir / 'tasks').iterdir())}")
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def facts(self) -> list[dict]:
        return [json.loads(line) for line in (self.dir / "tasks" / "facts.jsonl").read_text().splitlines() if line]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _check_target(out: Path, key: str, force: bool) -> World | None:
    """Reuse a matching world; refuse to overwrite anything else."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise WorldError(f"--out {out} is a file, not a directory")
    if not any(out.iterdir()):
        return None
    try:
        world = World.open(out)
    except (WorldError, json.JSONDecodeError):
        raise WorldError(f"--out {out} already holds something that is not a micro-world; choose an empty or new "
                         "directory") from None
    if world.key == key:
        return world
    if not force:
        raise WorldError(f"--out {out} holds a micro-world built from a different config "
                         f"({world.manifest['config']['size']}, seed {world.manifest['config']['seed']}); "
                         "pass --force to replace it or choose another directory")
    return None


def build(cfg: MicroworldConfig, out: str | Path | None = None, *, force: bool = False,
          progress: bool = True, log=print) -> World:
    key = world_key(cfg)
    out = Path(out) if out is not None else default_dir(cfg)
    with locked(str(out) + ".lock"):
        existing = _check_target(out, key, force)
        if existing is not None:
            log(f"micro-world {out} is up to date (key {key[:12]})")
            return existing
        t0 = time.perf_counter()
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "tasks").mkdir(parents=True)
        try:
            world = _build_into(cfg, tmp, key, progress, log, t0)
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        world.dir = out
        log(f"micro-world written to {out} in {world.manifest['build_seconds']:.1f} s")
        return world


def _build_into(cfg: MicroworldConfig, tmp: Path, key: str, progress: bool, log, t0: float) -> World:
    from scalpel.microworld.inspect import evaluate_base
    from scalpel.microworld.pretrain import pretrain
    from scalpel.microworld.tokenizer import train_tokenizer

    log(f"generating world ({cfg.size}, seed {cfg.seed}) ...")
    gen = generate(cfg)
    for (task, split), rows in gen.items.items():
        _write_jsonl(tmp / "tasks" / f"{task}.{split}.jsonl", rows)
    _write_jsonl(tmp / "tasks" / "facts.jsonl", gen.facts)
    texts = [d.words for d in gen.corpus]
    texts += [MICROWORLD_SYSTEM_PROMPT] * sum(d.system for d in gen.corpus)
    tok = train_tokenizer(texts, cfg.model.vocab_size)
    log(f"tokenizer: {len(tok)} tokens; pretraining on {len(gen.corpus)} documents ...")
    model, stats = pretrain(cfg, tok, gen.corpus, MICROWORLD_SYSTEM_PROMPT, progress=progress)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    model.save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    manifest = {
        "format": FORMAT, "key": key, "config": cfg.model_dump(mode="json"), "versions": _versions(),
        "system_prompt": MICROWORLD_SYSTEM_PROMPT, "pretrain": stats,
    }
    world = World(tmp, manifest)
    log("evaluating the base model (greedy, held-out splits) ...")
    manifest["eval"] = evaluate_base(world, model=model, tokenizer=tok, progress=progress)
    manifest["files"] = {str(p.relative_to(tmp)): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return world
