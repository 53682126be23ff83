"""Malformed data rows are rejected one by one, counted under a reason, and the run goes on.

Every loader of outside data (benchmarks, KL texts, causal-tracing facts; OpenR1 has its own richer report) turns
rows into its records through ``convert``: a row that is not an object, lacks a field, holds a wrong type, an
empty or huge text, or repeats an id is dropped and counted, never a crash deep in a stack trace and never a
silent loss. The counts travel with the results (e.g. ``rejected_rows`` in an evaluation summary).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
MAX_TEXT_CHARS = 200_000


class Reject(ValueError):
    """Raised by a row converter: the row is dropped and counted under this message."""


@dataclass(frozen=True)
class BadRow:
    """A row that could not even be parsed (e.g. a line of a .jsonl that is not JSON)."""

    reason: str


def parse_json_line(line: str, n: int) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return BadRow(f"invalid JSON (line {n})")


def text(value: Any, what: str = "text", max_chars: int = MAX_TEXT_CHARS, empty_ok: bool = False) -> str:
    """A text field: strings, and numbers (which CSV/JSON exporters produce); anything else is a wrong type."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise Reject(f"{what} is not text ({type(value).__name__})")
    if not empty_ok and not value.strip():
        raise Reject(f"empty {what}")
    if len(value) > max_chars:
        raise Reject(f"{what} over {max_chars} characters")
    return value


def as_list(value: Any, what: str = "list") -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise Reject(f"{what} is not a list ({type(value).__name__})")


def convert(rows: list, make: Callable[[int, dict], T | None],
            key: Callable[[T], Hashable] | None = None) -> tuple[list[T], dict[str, int]]:
    """``make(n, row)`` for every row; returns the records and ``{reason: rows rejected}``. ``make`` returns None
    for rows it leaves out on purpose (not counted); ``key`` names what must be unique (later duplicates rejected)."""
    out: list[T] = []
    reasons: dict[str, int] = {}
    seen: set = set()

    def reject(reason: str) -> None:
        reasons[reason] = reasons.get(reason, 0) + 1

    for n, r in enumerate(rows):
        if isinstance(r, BadRow):
            reject(r.reason.split(" (")[0])
            continue
        if not isinstance(r, dict):
            reject(f"row is not an object ({type(r).__name__})")
            continue
        try:
            rec = make(n, r)
        except Reject as exc:
            reject(str(exc))
            continue
        except KeyError as exc:
            reject(f"missing field {exc}")
            continue
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            reject(f"wrong type or value ({type(exc).__name__})")
            continue
        if rec is None:
            continue
        if key is not None:
            k = key(rec)
            if k in seen:
                reject("duplicate id")
                continue
            seen.add(k)
        out.append(rec)
    return out, reasons
