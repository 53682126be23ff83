"""One typed, documented configuration tree for every scalpel command.

YAML in, dotted-key overrides on top (``--set microworld.seed=3``), validated before any compute. Every field
carries its meaning in ``description``; ``scalpel config resolve FILE`` prints the resolved tree as JSON, so a
study's provenance is one object. Later phases (study, arms, eval, analysis) add sections here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who wrote the file."""


class Section(BaseModel):
    """Base of every config section: unknown keys and wrong types are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------------------------
# The micro-world: synthetic tasks + a tiny OLMo-2 base model that scalpel pretrains itself.
# --------------------------------------------------------------------------------------------------------------


class WorldConfig(Section):
    """How big the synthetic world is. Facts are fixed per seed; maths items are drawn fresh per split."""

    entities: int = Field(80, ge=8, le=2000, description="Invented entities (people) that carry facts.")
    relations: list[Literal["city", "job", "colour", "pet", "food"]] = Field(
        default_factory=lambda: ["city", "job", "colour", "pet"],
        description="Which attributes each entity has; each is one fact, asked as 4-way multiple choice.",
        min_length=1,
    )
    mcq_heldout_fraction: float = Field(
        0.5, gt=0.0, lt=1.0,
        description="Share of facts whose multiple-choice question is never shown in pretraining "
        "(the fact itself always is: the held-out test measures recall, not memorised options).",
    )
    maths_train: int = Field(3000, ge=10, description="Training maths items per tier (pretraining + post-training).")
    maths_heldout: int = Field(200, ge=10, description="Held-out maths items per tier (evaluation only).")
    easy_max: int = Field(20, ge=5, le=99, description="Largest operand in the easy ('k12') tier.")
    hard_max: int = Field(40, ge=5, le=99, description="Largest operand in the hard ('olympiad') tier.")
    fewshot_shots: int = Field(3, ge=1, le=8, description="Solved examples in each few-shot maths prompt.")
    fewshot_heldout: int = Field(100, ge=10, description="Held-out few-shot maths prompts (easy tier).")
    instruct_train: int = Field(600, ge=10, description="Instruction-following items used in pretraining.")
    instruct_heldout: int = Field(100, ge=10, description="Held-out instruction-following items.")


class ModelConfig(Section):
    """Shape of the tiny ``Olmo2ForCausalLM`` base model (the real architecture, so module names match OLMo-2)."""

    hidden_size: int = Field(128, ge=16, le=4096, description="Residual width.")
    num_hidden_layers: int = Field(4, ge=1, le=64, description="Transformer blocks.")
    num_attention_heads: int = Field(4, ge=1, le=64, description="Attention heads (must divide hidden_size).")
    intermediate_size: int = Field(512, ge=16, description="MLP width (gate/up/down projections).")
    max_position_embeddings: int = Field(512, ge=64, description="Longest sequence the model supports.")
    vocab_size: int = Field(1200, ge=300, le=65536, description="Byte-level BPE vocabulary trained on the world.")

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelConfig":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"model.num_attention_heads ({self.num_attention_heads}) must divide model.hidden_size "
                f"({self.hidden_size})"
            )
        return self


class PretrainConfig(Section):
    """Base-model pretraining: a plain, deterministic next-token loop (post-training uses TRL, not this)."""

    steps: int = Field(900, ge=1, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, description="Sequences per step (length-bucketed, no padding waste).")
    lr: float = Field(3e-3, gt=0, le=1.0, description="Peak AdamW learning rate (cosine decay, 5 % warmup).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    fact_repeats: int = Field(6, ge=1, description="Times each fact statement appears in the corpus.")
    untagged_fraction: float = Field(
        0.25, ge=0, le=1,
        description="Share of maths answers written without <answer> tags, so format reward has room to grow.",
    )


SIZE_PRESETS: dict[str, dict[str, Any]] = {
    # Small enough that the test suite builds it in seconds; its accuracy is not meant to be good.
    "test": {
        "world": {"entities": 24, "maths_train": 400, "maths_heldout": 40, "fewshot_heldout": 20,
                  "instruct_train": 120, "instruct_heldout": 20},
        "model": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
                  "vocab_size": 800},
        "pretrain": {"steps": 60, "batch_size": 16, "fact_repeats": 3},
        "threads": 1,  # a tiny model gains nothing from a second thread, and loses a lot when cores are shared
    },
    "demo": {},
}


class MicroworldConfig(Section):
    """The embedded default world: ``size`` picks a preset; any field set explicitly wins over the preset."""

    size: Literal["test", "demo"] = Field("demo", description="Preset: 'test' (seconds, for tests) or 'demo'.")
    seed: int = Field(0, ge=0, description="Seed of the world, the tokenizer corpus and pretraining.")
    threads: int = Field(
        2, ge=1, le=256,
        description="torch threads for pretraining. Part of the cache key: CPU results differ with thread count.",
    )
    world: WorldConfig = Field(default_factory=WorldConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        size = data.get("size", "demo")
        preset = SIZE_PRESETS.get(size) if isinstance(size, str) else None
        if preset is None:  # let the Literal produce the message naming allowed values
            return data
        merged = dict(data)
        for section, values in preset.items():
            if not isinstance(values, dict):
                merged.setdefault(section, values)
                continue
            user = merged.get(section) or {}
            if isinstance(user, dict):
                merged[section] = {**values, **user}
        return merged


class Config(Section):
    """Root of the tree. Sections are added as phases land (study, arms, eval, analysis)."""

    microworld: MicroworldConfig = Field(default_factory=MicroworldConfig)


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a","b","c"], value); the value is parsed as YAML, so 3, 1e-3, true, [a,b] work."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key.path=value (e.g. microworld.seed=3)")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from exc
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return data


def _describe_error(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        parent = model
        for part in err["loc"][:-1]:
            field = parent.model_fields.get(str(part)) if isinstance(parent, type) else None
            ann = field.annotation if field else None
            parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
            if parent is None:
                break
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "see `scalpel config resolve`"
        return f"{loc}: unknown key (allowed here: {allowed})"
    return f"{loc or '(root)'}: {msg} (got {err.get('input')!r})"


def validate(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(e, Config) for e in exc.errors()]
        raise ConfigError(f"invalid {source}:\n  " + "\n  ".join(lines)) from None


def load(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML file (or nothing: all defaults), apply overrides, validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level, got {type(loaded).__name__}")
        data = loaded
    data = apply_overrides(data, list(overrides or []))
    return validate(data, source)


def to_json(cfg: BaseModel) -> str:
    return json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=False)
