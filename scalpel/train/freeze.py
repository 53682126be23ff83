"""Which parameters an arm trains: ``train_only`` / ``freeze`` selectors, validated against the actual model.

The paper's freezing arms (Sec. 5) are SFT with (a) only ``q_proj`` and ``k_proj`` trainable, and (b) the MLPs of
layers 20-26 frozen (the layers whose causal-tracing AIE exceeds 0.1, App. D). Any arm can take a selection:

    train_only: [q_proj, k_proj]          # everything else frozen
    freeze: ["mlp@20-26"]                 # everything trainable except gate/up/down_proj of layers 20..26
    freeze: ["mlp@traced"]                # the MLPs of the layers causal tracing selects on the base (the paper's way)

Selector grammar (one string each):

- ``mlp`` / ``attn`` — groups: ``mlp.{gate,up,down}_proj`` and ``self_attn.{q,k,v,o}_proj`` of every layer (OLMo-2's
  ``q_norm``/``k_norm`` are *not* in ``attn``; name them to select them).
- a module name such as ``q_proj``, ``down_proj``, ``self_attn``, ``input_layernorm``, ``embed_tokens``, ``lm_head``
  — every parameter whose dotted path contains that component.
- either of the above with ``@L`` or ``@L-M``: restricted to decoder layers L..M (inclusive, 0-based).
- either of the above with ``@traced``: restricted to the layers causal tracing of the study's base model selects
  (``scalpel.analyze.trace.select_layers``: MLP AIE at the last token > ``study.analysis.trace_threshold``, 0.1 as
  in the paper). Those layers exist only once the study's trace job has run, so ``scalpel study`` resolves such a
  selector (``resolve_traced``: ``mlp@traced`` -> e.g. ``mlp@2-4``) before training and records the result; a
  selection that is still ``@traced`` when applied is a ``FreezeSelectorError``.
- anything containing ``.`` or a wildcard (``*?[``) — an fnmatch pattern over parameter names, matching a
  parameter or any module above it: ``model.layers.*.mlp.down_proj``, ``model.layers.3``, ``*.bias``.

Rules: ``train_only`` (if given) chooses the trainable set, then ``freeze`` removes from it; neither given means
everything trains (the paper's default). Each selector must match at least one parameter, and layer ranges must lie
inside the model, else ``FreezeSelectorError`` (a ``ValueError``) says what exists (module names, layer range).
A selection leaving nothing trainable is an error too. Parameter names are those of ``named_parameters()``, so
tied weights count once (freezing ``embed_tokens`` of a tied model also freezes ``lm_head``).

Layers are found as ``….layers.N.…`` — the naming of OLMo-2, Llama, Qwen2 and most decoder-only HF models.
``parameter_names(config)`` builds a model on the meta device, so a study can validate selectors for a 7B model
before any compute and without its weights.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

GROUPS: dict[str, tuple[str, ...]] = {
    "attn": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
    "mlp": ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
}
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_SELECTOR = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:@(?P<lo>\d+)(?:-(?P<hi>\d+))?)?$")
_TRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)@traced$")
_LEAVES = {"weight", "bias"}


class FreezeSelectorError(ValueError):
    """A freezing selector that does not fit the model (unknown name, layer out of range, freezes everything)."""


@dataclass(frozen=True)
class Trainable:
    """The outcome of a selection: which parameters train, and how many elements that is."""

    names: tuple[str, ...]  # trainable parameter names, model order
    frozen: tuple[str, ...]
    trainable_params: int
    total_params: int

    @property
    def fraction(self) -> float:
        return self.trainable_params / self.total_params if self.total_params else 0.0

    def summary(self) -> str:
        return (f"trainable parameters: {self.trainable_params:,} of {self.total_params:,} "
                f"({100 * self.fraction:.2f}%) in {len(self.names)} of {len(self.names) + len(self.frozen)} tensors")

    def as_dict(self) -> dict:
        return {"trainable_params": self.trainable_params, "total_params": self.total_params,
                "trainable_fraction": self.fraction, "trainable_tensors": len(self.names),
                "frozen_tensors": len(self.frozen)}


def select_trainable(named_sizes: Iterable[tuple[str, int]], train_only: Sequence[str] | None = None,
                     freeze: Sequence[str] | None = None) -> Trainable:
    """Resolve selectors over ``(parameter name, numel)`` pairs; raises ``FreezeSelectorError`` on a bad selection."""
    sizes = dict(named_sizes)
    names = list(sizes)
    if not names:
        raise FreezeSelectorError("the model has no parameters")
    _check_list("train_only", train_only)
    _check_list("freeze", freeze)
    keep = set(names) if train_only is None else set().union(*(_match(s, names, "train_only") for s in train_only))
    for s in freeze or ():
        keep -= _match(s, names, "freeze")
    if not keep:
        raise FreezeSelectorError(
            f"this selection freezes every parameter (train_only={list(train_only) if train_only is not None else None}"
            f", freeze={list(freeze or [])}): nothing would train")
    trainable = tuple(n for n in names if n in keep)
    frozen = tuple(n for n in names if n not in keep)
    return Trainable(trainable, frozen, sum(sizes[n] for n in trainable), sum(sizes.values()))


def apply_freezing(model, train_only: Sequence[str] | None = None, freeze: Sequence[str] | None = None) -> Trainable:
    """Set ``requires_grad`` on every parameter of ``model`` from the selectors, log and return the counts."""
    params = dict(model.named_parameters())
    result = select_trainable(((n, p.numel()) for n, p in params.items()), train_only, freeze)
    keep = set(result.names)
    for name, p in params.items():
        p.requires_grad_(name in keep)
    log.info("%s (train_only=%s, freeze=%s)", result.summary(), train_only, freeze)
    return result


def validate_selectors(names: Iterable[str], train_only: Sequence[str] | None = None,
                       freeze: Sequence[str] | None = None) -> Trainable:
    """Check selectors against parameter names only (sizes unknown: each tensor counts 1). ``NAME@traced`` is
    checked on the first layer: which layers it means is known only after tracing, but NAME must exist."""
    names = list(names)
    first = min((i for n in names if (i := _layer_of(n)) is not None), default=0)
    return select_trainable(((n, 1) for n in names), resolve_traced(train_only, [first]),
                            resolve_traced(freeze, [first]))


def is_traced(selector) -> bool:
    """Is this a ``NAME@traced`` selector (layers chosen by causal tracing of the base)?"""
    return isinstance(selector, str) and _TRACED.match(selector.strip()) is not None


def uses_traced(*selector_lists: Sequence[str] | None) -> bool:
    return any(is_traced(s) for selectors in selector_lists for s in selectors or ())


def resolve_traced(selectors: Sequence[str] | None, layers: Sequence[int]) -> list[str] | None:
    """``NAME@traced`` -> ``NAME@A-B`` (one selector per contiguous run of ``layers``); others unchanged.

    No traced layer is an error, never an empty selection: ``mlp@traced`` silently freezing nothing would make the
    freezing arm a plain SFT arm under another name."""
    from scalpel.analyze.architectures import selector as ranges

    if selectors is None:
        return None
    out: list[str] = []
    for s in selectors:
        m = _TRACED.match(s.strip()) if isinstance(s, str) else None
        if m is None:
            out.append(s)
        elif not layers:
            raise FreezeSelectorError(
                f"{s!r}: causal tracing of the base model selected no layer (no MLP AIE at the last token above "
                f"study.analysis.trace_threshold; the profile is in the study's analysis/trace/trace.json), so "
                f"{s!r} would select nothing. Lower study.analysis.trace_threshold, or name the layers (e.g. "
                f"{m.group('name')}@2-4)")
        else:
            out.extend(ranges(m.group("name"), list(layers)))
    return out


def parameter_names(config, trust_remote_code: bool = False) -> list[str]:
    """Parameter names of the model a ``transformers`` config describes, built on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return [n for n, _ in model.named_parameters()]


# ---------------------------------------------------------------------------------------------------------------


def _check_list(field: str, value) -> None:
    if value is None:
        return
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise FreezeSelectorError(f"{field} must be a list of selectors, got {value!r}")
    for s in value:
        if not isinstance(s, str) or not s.strip():
            raise FreezeSelectorError(f"{field}: every selector must be a non-empty string, got {s!r}")


def _layer_of(name: str) -> int | None:
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def _components(name: str) -> list[str]:
    parts = name.split(".")
    return parts[:-1] if parts[-1] in _LEAVES else parts


def _match(selector: str, all_names: list[str], field: str) -> set[str]:
    selector = selector.strip()
    if is_traced(selector):
        raise FreezeSelectorError(
            f"{field}: {selector!r} means the layers causal tracing selects on the study's base model, which are "
            f"known only once the study's trace job has run: train this arm with `scalpel study`, or name the "
            f"layers (e.g. the `freeze` list in selector.json of `scalpel analyze trace --model BASE --facts FILE`)")
    if any(ch in selector for ch in ".*?["):
        hits = {n for n in all_names if fnmatch.fnmatchcase(n, selector) or fnmatch.fnmatchcase(n, selector + ".*")}
        if not hits:
            raise FreezeSelectorError(f"{field}: pattern {selector!r} matches no parameter. {_inventory(all_names)}")
        return hits
    m = _SELECTOR.match(selector)
    if not m:
        raise FreezeSelectorError(
            f"{field}: cannot read selector {selector!r}; expected NAME, NAME@L, NAME@L-M or an fnmatch pattern "
            f"over parameter names. {_inventory(all_names)}")
    name, lo, hi = m.group("name"), m.group("lo"), m.group("hi")
    names = all_names
    if lo is not None:
        layers = sorted({i for n in all_names if (i := _layer_of(n)) is not None})
        if not layers:
            raise FreezeSelectorError(f"{field}: {selector!r} names layers but the model has no '….layers.N.…' "
                                      f"parameters. {_inventory(all_names)}")
        lo_i, hi_i = int(lo), int(hi if hi is not None else lo)
        if lo_i > hi_i:
            raise FreezeSelectorError(f"{field}: {selector!r} has an empty layer range ({lo_i} > {hi_i})")
        if lo_i < layers[0] or hi_i > layers[-1]:
            raise FreezeSelectorError(f"{field}: {selector!r} asks for layers {lo_i}-{hi_i}, but the model has "
                                      f"layers {layers[0]}-{layers[-1]} ({len(layers)} layers)")
        names = [n for n in all_names if lo_i <= (_layer_of(n) if _layer_of(n) is not None else -1) <= hi_i]
    if name in GROUPS:
        hits = {n for n in names if _layer_of(n) is not None and any(f".{s}." in f".{n}." for s in GROUPS[name])}
    else:
        hits = {n for n in names if name in _components(n)}
    if not hits:
        where = "" if lo is None else f" in layers {lo}-{hi or lo}"
        raise FreezeSelectorError(f"{field}: {selector!r} matches no parameter{where}. {_inventory(all_names)}")
    return hits


def _inventory(names: list[str]) -> str:
    """What a selector can name in this model, for error messages."""
    layers = sorted({i for n in names if (i := _layer_of(n)) is not None})
    in_layer = sorted({c for n in names if (m := _LAYER.search(n)) for c in _components(n[m.end():])})
    outside = sorted({c for n in names if _layer_of(n) is None for c in _components(n) if not c.isdigit()})
    parts = []
    if layers:
        parts.append(f"Layers: {layers[0]}-{layers[-1]} ({len(layers)}).")
        parts.append(f"Names inside a layer: {', '.join(in_layer)}.")
    groups = ", ".join(f"{g} = {'/'.join(s.split('.')[-1] for s in v)}" for g, v in GROUPS.items())
    parts.append(f"Groups: {groups}.")
    if outside:
        parts.append(f"Names outside layers: {', '.join(outside)}.")
    parts.append(f"Example parameter: {names[0]}.")
    return " ".join(parts)
