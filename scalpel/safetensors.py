"""The safetensors format on disk: a file's header (8-byte length, JSON name → dtype, shape, byte range) and which
files hold a checkpoint's weights (one file, a sharded index, or a refusal for pickle formats).

Read by ``scalpel.integrity`` (is a checkpoint whole?) and ``scalpel.analyze.checkpoints`` (tensors on demand), so
neither reaches into the other. Pickle formats (``*.bin``, ``*.pt``) are never opened: unpickling runs arbitrary
code, and scalpel must be safe to point at any directory.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from scalpel.errors import CheckpointError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors dtype string, e.g. "BF16"
    shape: tuple[int, ...]
    file: Path
    start: int  # absolute byte offset in file
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Name → ``TensorInfo`` of every tensor in one safetensors file; a header that is not one, or a tensor that
    lies past the end of the file, raises ``CheckpointError``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path} is not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", raw)
            if n > 100_000_000:
                raise CheckpointError(f"{path} is not a safetensors file (implausible header length {n})")
            header = json.loads(fh.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({exc})") from None
    size = path.stat().st_size
    out: dict[str, TensorInfo] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        begin, end = meta["data_offsets"]
        info = TensorInfo(name, meta["dtype"], tuple(meta["shape"]), path, 8 + n + begin, 8 + n + end)
        if info.end > size:
            raise CheckpointError(f"{path}: tensor {name} ends past the end of the file (truncated checkpoint?)")
        out[name] = info
    return out


def files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint directory (or file), or a clear error saying what to do instead."""
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass a model directory containing "
                                f"model.safetensors (or a sharded model.safetensors.index.json)")
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise CheckpointError(pickle_message(path))
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path} is not a .safetensors file or a model directory")
        return [path]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({path / f for f in weight_map.values()})
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{index} names shard {missing[0].name}, which is missing from {path}")
        return files
    single = path / "model.safetensors"
    if single.is_file():
        return [single]
    found = sorted(path.glob("*.safetensors"))
    if found:
        return found
    pickles = [p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles:
        raise CheckpointError(pickle_message(pickles[0]))
    raise CheckpointError(f"{path} holds no model.safetensors (nor a sharded index); pass a Hugging Face model "
                          f"directory saved with save_pretrained()")


def pickle_message(path: Path) -> str:
    return (f"{path} is a pickle checkpoint; scalpel never loads pickle files (unpickling runs arbitrary code). "
            f"Convert it once, where you trust it: AutoModelForCausalLM.from_pretrained(DIR)"
            f".save_pretrained(OUT, safe_serialization=True), and pass OUT")


def weight_files(path: Path) -> list[Path]:
    """Weight files of a directory: safetensors shards plus the shard index, if any."""
    return sorted(list(path.glob("*.safetensors")) + list(path.glob("*.safetensors.index.json")))
