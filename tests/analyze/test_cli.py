"""``scalpel analyze ...`` end to end on a tiny model: outputs written, user errors exit 2 with a message."""

from __future__ import annotations

import json

from scalpel.cli import main

from .conftest import save_variant
from .test_kl import PAIRS


def test_weights_kl_trace_commands(tiny, tmp_path, capsys):
    d, model, tok = tiny
    ck = save_variant(model, tok, tmp_path / "arm/checkpoint-5",
                      lambda m: m.model.layers[0].mlp.up_proj.weight.add_(0.01))
    assert main(["analyze", "weights", "--base", str(d), str(ck), "--out", str(tmp_path / "w"), "--quiet",
                 "--no-spectrum", "--format", "jsonl", "--threads", "1"]) == 0
    rows = [json.loads(x) for x in (tmp_path / "w/weights.jsonl").read_text().splitlines()]
    moved = [r for r in rows if r["fro_delta"] > 0]
    assert [(r["layer"], r["matrix"]) for r in moved] == [(0, "up")]
    assert "up=" in capsys.readouterr().out

    assert main(["analyze", "structure", "--base", str(d), str(ck), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "arm@5 vs base: changed exact" in out and "arm@5 vs previous" in out

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"problem": q, "solution": s}) + "\n" for q, s in PAIRS))
    assert main(["analyze", "kl", "--base", str(d), str(ck), "--data", str(data), "--out", str(tmp_path / "k"),
                 "--quiet", "--threads", "1"]) == 0
    assert "KL(base‖ckpt)" in capsys.readouterr().out

    facts = tmp_path / "facts.json"  # ROME format; the random model knows none of these facts
    facts.write_text(json.dumps([{"prompt": "Tovak Brell lives in", "subject": "Tovak Brell", "attribute": "zzz"}]))
    assert main(["analyze", "trace", "--model", str(d), "--facts", str(facts), "--out", str(tmp_path / "t"),
                 "--quiet"]) == 2
    assert "none of the" in capsys.readouterr().err


def test_user_errors_exit_2_naming_the_path(tiny, tmp_path, capsys):
    d, _, _ = tiny
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled/pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    assert main(["analyze", "weights", "--base", str(d), str(tmp_path / "pickled"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pickle" in err and "pickled" in err and "save_pretrained" in err
    assert main(["analyze", "kl", "--base", str(d), str(tmp_path / "missing"), "--data", "math500"]) == 2
    assert "missing" in capsys.readouterr().err
