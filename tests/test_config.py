"""The config tree: resolution, overrides, and errors that name the field and the allowed values."""

from __future__ import annotations

import json

import pytest

from scalpel import cli, config


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_resolve_defaults_is_full_json(capsys):
    code, out, _ = run(capsys, "config", "resolve")
    assert code == 0
    data = json.loads(out)
    assert data["microworld"]["size"] == "demo"
    assert data["microworld"]["model"]["num_hidden_layers"] >= 1


def test_size_preset_fills_and_explicit_fields_win(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("microworld:\n  size: test\n  model:\n    hidden_size: 96\n    num_attention_heads: 3\n")
    code, out, _ = run(capsys, "config", "resolve", str(f), "--set", "microworld.pretrain.steps=7")
    assert code == 0
    mw = json.loads(out)["microworld"]
    assert mw["model"]["hidden_size"] == 96  # explicit beats preset
    assert mw["model"]["num_hidden_layers"] == config.SIZE_PRESETS["test"]["model"]["num_hidden_layers"]
    assert mw["pretrain"]["steps"] == 7


@pytest.mark.parametrize(
    "yaml_text, overrides, needles",
    [
        ("microworld:\n  size: huge\n", [], ["microworld.size", "'test' or 'demo'"]),
        ("microworld:\n  seed: -1\n", [], ["microworld.seed", "greater than or equal to 0"]),
        ("microworld:\n  colour: red\n", [], ["microworld.colour", "unknown key", "allowed here", "seed"]),
        ("microworld:\n  pretrain:\n    lr: fast\n", [], ["microworld.pretrain.lr", "valid number"]),
        ("microworld:\n  world:\n    relations: [city, mood]\n", [], ["microworld.world.relations", "city"]),
        ("", ["microworld.model.num_attention_heads=5"], ["num_attention_heads (5) must divide"]),
        ("- just\n- a list\n", [], ["mapping at the top level"]),
        ("microworld: {size: test\n", [], ["not valid YAML"]),
        ("", ["microworld.seed"], ["key.path=value"]),
        ("microworld:\n  size: test\n", ["microworld.size.x=1"], ["microworld.size is not a section"]),
        ("", ["microworld.size.x=1"], ["microworld.size", "'test' or 'demo'"]),
    ],
)
def test_invalid_configs_name_the_field(tmp_path, capsys, yaml_text, overrides, needles):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text)
    argv = ["config", "resolve", str(f)] + [a for o in overrides for a in ("--set", o)]
    code, _, err = run(capsys, *argv)
    assert code == 2
    for needle in needles:
        assert needle in err, err


def test_missing_file(capsys):
    code, _, err = run(capsys, "config", "resolve", "/nonexistent/study.yaml")
    assert code == 2 and "/nonexistent/study.yaml does not exist" in err


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "microworld" in out and "config" in out
