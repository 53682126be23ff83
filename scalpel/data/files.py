"""Rows of local data files (.jsonl, .jsonl.gz, .json, .parquet, .csv), and where the shared benchmark files are.

Read by the benchmark loaders, the KL analysis and the grading command alike; a file that cannot be read raises
``DataError`` naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from scalpel.data import rows as rows_mod
from scalpel.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path | None:
    """``SCALPEL_BENCHMARKS``, else ``../shared/data/benchmarks`` beside the checkout (or the working directory)
    when it exists, else None."""
    env = os.environ.get("SCALPEL_BENCHMARKS")
    if env:
        return Path(env)
    for root in (REPO_ROOT, Path.cwd()):  # the checkout (editable install), or a run from the repo root
        shared = root.parent / "shared" / "data" / "benchmarks"
        if shared.is_dir():
            return shared
    return None


def read_table(path: str | Path) -> list[dict]:
    """Rows of a local .jsonl / .json / .parquet / .csv file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist (or is not a file)")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    try:
        if suffix in (".jsonl", ".jsonl.gz"):
            import gzip

            opener = gzip.open if suffix.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8", errors="replace") as f:
                return [rows_mod.parse_json_line(line, n) for n, line in enumerate(f, 1) if line.strip()]
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):  # {"data": [...]} or column-oriented {"col": [...]}
                if len(data) == 1 and isinstance(next(iter(data.values())), list) and \
                        all(isinstance(r, dict) for r in next(iter(data.values()))):
                    data = next(iter(data.values()))
                else:
                    keys = list(data)
                    data = [dict(zip(keys, vals)) for vals in zip(*(data[k] for k in keys))]
            return list(data)
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        if suffix == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read benchmark file {path}: {exc}") from exc
    raise DataError(f"benchmark file {path}: unsupported format {suffix!r} "
                    "(use .jsonl, .json, .parquet or .csv)")
