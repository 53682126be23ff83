"""Where a benchmark's rows come from, first match wins:

1. an explicit file (``sources={"math500": "path.jsonl"}``, ``scalpel eval --data math500=path.jsonl``);
2. ``<data_dir>/<file name>`` (``--data-dir``, env ``SCALPEL_BENCHMARKS``, else ``../shared/data/benchmarks``
   beside the repository, when it exists);
3. the hub: ``datasets.load_dataset(hub_id, config, split=...)`` (needs network; on our CPU machines it fails and
   says which file to pass instead).
The origin is recorded in every summary. Files are read where they are, never copied. Schema errors name the path
and the expected columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalpel.data.files import default_data_dir, read_table
from scalpel.errors import DataError


@dataclass(frozen=True)
class Source:
    """Where a benchmark's rows live and which columns each row must have."""

    hub_id: str | None
    hub_config: str | None = None
    hub_split: str = "test"
    file: str | None = None  # file name looked up in the data dir
    columns: tuple[str, ...] = ()
    any_of: tuple[tuple[str, ...], ...] = ()  # at least one column of each group (e.g. MMLU's subject|type)

    def describe(self) -> str:
        hub = f"hub {self.hub_id}" + (f" ({self.hub_config})" if self.hub_config else "") + f" split {self.hub_split}"
        return hub + (f" or file {self.file}" if self.file else "")


@dataclass
class LoadContext:
    """How to find files: explicit per-benchmark files, a data dir, a micro-world dir, a row limit."""

    sources: dict[str, str | Path] = field(default_factory=dict)
    data_dir: str | Path | None = None
    world: Any = None  # scalpel.microworld.World, for micro-world benchmarks
    limit: int | None = None
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # benchmark -> {reason: rows}, filled by load


GSM8K_TRAIN = Source("openai/gsm8k", "main", "train", "gsm8k_train_head200.jsonl", ("question", "answer"))
MATH500 = Source("HuggingFaceH4/MATH-500", None, "test", "math500_test.jsonl", ("problem", "answer"))
AIME24 = Source("HuggingFaceH4/aime_2024", None, "train", "aime24_test.jsonl", ("problem", "answer"))
GSM8K = Source("openai/gsm8k", "main", "test", "gsm8k_test.jsonl", ("question", "answer"))


def check_columns(rows: list[dict], origin: str, columns: tuple[str, ...],
                  any_of: tuple[tuple[str, ...], ...] = ()) -> None:
    first = next((r for r in rows if isinstance(r, dict)), None)
    if first is None:
        raise DataError(f"{origin} has no rows; expected rows with columns {', '.join(columns)}")
    have = set(first)
    missing = [c for c in columns if c not in have] + [" or ".join(g) for g in any_of if not have & set(g)]
    if missing:
        expected = list(columns) + [" or ".join(g) for g in any_of]
        raise DataError(
            f"{origin} does not have the expected columns: missing {', '.join(missing)}; expected "
            f"{', '.join(expected)}; found {', '.join(sorted(have))}"
        )


def read_source(name: str, source: Source, ctx: LoadContext) -> tuple[list[dict], str]:
    """Rows for benchmark ``name`` (explicit file > data dir > hub) and their origin, schema-checked."""
    explicit = ctx.sources.get(name)
    if explicit is not None:
        rows, origin = read_table(explicit), str(explicit)
    else:
        data_dir = Path(ctx.data_dir) if ctx.data_dir is not None else default_data_dir()
        local = data_dir / source.file if data_dir is not None and source.file else None
        if local is not None and local.is_file():
            rows, origin = read_table(local), str(local)
        else:
            rows, origin = _read_hub(name, source, local)
    check_columns(rows, origin, source.columns, source.any_of)
    return rows, origin


def _read_hub(name: str, source: Source, tried: Path | None) -> tuple[list[dict], str]:
    if source.hub_id is None:
        raise DataError(f"benchmark {name} has no hub id: pass its file with --data {name}=FILE")
    try:
        from datasets import load_dataset

        ds = load_dataset(source.hub_id, source.hub_config, split=source.hub_split)
    except Exception as exc:  # offline, gated, renamed: tell the user what to pass instead
        where = f" (no local file at {tried})" if tried is not None else ""
        raise DataError(
            f"benchmark {name}: cannot load {source.describe()} from the hub{where}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}. Pass a local file with --data {name}=FILE "
            f"(columns {', '.join(source.columns + tuple(' or '.join(g) for g in source.any_of))}) or --data-dir DIR"
        ) from exc
    origin = f"hub:{source.hub_id}" + (f"/{source.hub_config}" if source.hub_config else "") + f"@{source.hub_split}"
    return [dict(r) for r in ds], origin
