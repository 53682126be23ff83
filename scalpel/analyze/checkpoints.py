"""Model checkpoints on disk, read one tensor at a time without loading the model.

Headers are parsed by ``scalpel.safetensors`` (which also finds shards and refuses pickle formats); each file is
memory-mapped, so a tensor is a zero-copy numpy view of page-cache pages: memory stays bounded by what the
analysis itself allocates, whatever the model size.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalpel.analyze.architectures import Architecture, ArchitectureError, for_config
from scalpel import safetensors
from scalpel.errors import CheckpointError
from scalpel.safetensors import TensorInfo

# safetensors dtype → numpy dtype of the stored bits (numpy has no bf16: it stays uint16 bits)
NUMPY_DTYPES = {
    "BF16": np.uint16, "F16": np.float16, "F32": np.float32, "F64": np.float64,
    "I8": np.int8, "U8": np.uint8, "I16": np.int16, "I32": np.int32, "I64": np.int64, "BOOL": np.bool_,
}
# Config fields that must agree for two checkpoints to be the same architecture.
SHAPE_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
              "num_key_value_heads", "vocab_size")


def step_of(path: Path) -> int | None:
    """Training step from a ``checkpoint-N`` directory name (the Trainer's convention), else None."""
    m = re.fullmatch(r"checkpoint[-_](\d+)", path.name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class CheckpointRef:
    """Where a checkpoint is and how it is shown: ``label`` groups checkpoints into one arm's curve."""

    path: Path
    label: str
    step: int


def describe(paths: list[str | Path], labels: list[str] | None = None) -> list[CheckpointRef]:
    """Label and step of each checkpoint: step from ``checkpoint-N``; label = the parent directory, relative to
    the parents' common ancestor when checkpoints of several runs are given (``sft/42``, ``grpo/42``)."""
    paths = [Path(p) for p in paths]
    if labels is not None and len(labels) not in (1, len(paths)):
        raise ValueError(f"give one label, or one per checkpoint ({len(paths)}), not {len(labels)}")
    parents = [p.resolve().parent if step_of(p) is not None else p.resolve() for p in paths]
    common = Path(os.path.commonpath([str(q) for q in parents])) if parents else Path(".")
    refs = []
    for i, (p, parent) in enumerate(zip(paths, parents)):
        if labels is not None:
            label = labels[0] if len(labels) == 1 else labels[i]
        elif step_of(p) is None:
            label = p.name
        else:
            rel = parent.relative_to(common)
            label = str(rel) if str(rel) != "." else parent.name
        step = step_of(p)
        refs.append(CheckpointRef(p, label, step if step is not None else i))
    return refs


class Checkpoint:
    """A checkpoint's tensor directory and config; ``array(name)`` maps one tensor's bytes on demand."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.files = safetensors.files(self.path)
        self.tensors: dict[str, TensorInfo] = {}
        for f in self.files:
            self.tensors.update(safetensors.read_header(f))
        cfg_dir = self.path if self.path.is_dir() else self.path.parent
        cfg_path = cfg_dir / "config.json"
        self.config: dict = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        self._maps: dict[Path, mmap.mmap] = {}

    @property
    def architecture(self) -> Architecture:
        if not self.config:
            raise CheckpointError(f"{self.path} has no config.json; the analyses need it to know the architecture")
        return for_config(self.config, where=str(self.path / "config.json"))

    @property
    def n_layers(self) -> int:
        return int(self.config[self.architecture.layers_key])

    def _map(self, file: Path) -> mmap.mmap:
        if file not in self._maps:
            with open(file, "rb") as fh:
                self._maps[file] = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return self._maps[file]

    def array(self, name: str) -> np.ndarray:
        """The stored values of one tensor as a flat, read-only numpy view of the mapped file (bf16 as uint16)."""
        info = self.tensors[name]
        if info.dtype not in NUMPY_DTYPES:
            raise CheckpointError(f"{self.path}: tensor {name} has unsupported dtype {info.dtype}")
        dtype = np.dtype(NUMPY_DTYPES[info.dtype])
        count = (info.end - info.start) // dtype.itemsize
        if count != info.numel:
            raise CheckpointError(f"{info.file}: tensor {name} has {count} elements on disk, shape says {info.numel}")
        if info.start % dtype.itemsize:  # unaligned (legal in old files): copy rather than hand out a bad view
            buf = np.frombuffer(self._map(info.file), np.uint8, info.end - info.start, info.start).copy()
            return buf.view(dtype)
        return np.frombuffer(self._map(info.file), dtype, count, info.start)

    def close(self) -> None:
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a caller still holds a view; the map is freed when that view is
                pass
        self._maps.clear()

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_compatible(base: Checkpoint, ck: Checkpoint, names: list[str]) -> None:
    """Raise a clear error unless ``ck`` has the same architecture, tensors and shapes as ``base``."""
    for key in SHAPE_KEYS:
        a, b = base.config.get(key), ck.config.get(key)
        if a is not None and b is not None and a != b:
            raise ArchitectureError(
                f"{ck.path} is not a checkpoint of {base.path}: config.json {key} is {b!r}, base has {a!r}")
    missing = [n for n in names if n not in ck.tensors]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise CheckpointError(f"{ck.path} lacks tensors the base has: {', '.join(missing[:3])}{more}; "
                              f"is it a complete checkpoint of the same architecture?")
    for n in names:
        if base.tensors[n].shape != ck.tensors[n].shape:
            raise ArchitectureError(f"{ck.path}: tensor {n} has shape {list(ck.tensors[n].shape)}, base "
                                    f"{base.path} has {list(base.tensors[n].shape)}")
