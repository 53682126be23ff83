"""``DIR/report/index.html`` (one self-contained page: images inlined, no script, no CDN) and ``summary.md``.

Everything shown comes from ``index.json`` (plus the causal-tracing figure the analysis drew); every piece of text
that a model or a dataset produced is HTML-escaped, so a completion that contains ``<script>`` is shown as text.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

from scalpel import atomic
from scalpel.analyze import plots
from scalpel.study import claims as C
from scalpel.study import figures as F
from scalpel.study import stats as S
from scalpel.study.passk import NOTE as PASSK_NOTE
from scalpel.study.passk import overtake_rows
from scalpel.study.predictors import NOTE as PREDICTOR_NOTE
from scalpel.study.predictors import predictor_rows, predictor_table
from scalpel.study.runs import by_arm

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em;font-size:1.25em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} td,th{border:1px solid #ccc;padding:.3em .5em;
vertical-align:top} th{background:#f4f4f4} .reproduced{background:#d9f2d9} .contradicted{background:#f8d7d7}
.inconclusive{background:#f2f2f2} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;white-space:pre-wrap;font-size:.82em;max-height:24em}
.note{color:#555;font-size:.9em} .fig{display:inline-block;vertical-align:top;max-width:49%}
"""


ACCURACY_NOTE = ("Accuracy in %, final checkpoint [95 % CI]: base over items (evaluated once); arms, mean over seeds "
                 "and items with the crossed items × seeds interval (item-level only with one seed), Wilson-bounded "
                 "to [0, 100].")
GAIN_NOTE = ("Change = arm − base on identical item ids, mean over seeds and items, in points [95 % CI, clipped to "
             "±100]; MDC = the CI's half-width: a smaller change cannot be told from 0 with this many items and "
             "seeds.")


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _gif(figs) -> str:
    frames = [plots.to_image(f) for f in figs]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=600, loop=0)
    return "data:image/gif;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src: str, alt: str, cls: str = "") -> str:
    return f'<img src="{src}" alt="{esc(alt)}"{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>'


def _fig(fig, alt: str, cls: str = "") -> str:
    if fig is None:
        return f'<p class="note">{esc(alt)}: no data in this study.</p>'
    return _img(_png(fig), alt, cls)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _interval(x: dict | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    f = _pts if signed else _pct
    return f"{f(x['mean'])} [{f(x['ci95'][0])}, {f(x['ci95'][1])}]"


def _pts(x: float) -> str:
    return f"{100 * x + 0.0:+.1f}".replace("-0.0", "+0.0")


def _safe(f, *args):
    """A report cell must not sink the report: models that share no item id show as missing, with the reason."""
    try:
        return f(*args), None
    except ValueError as exc:
        return None, str(exc)


def unevaluated(index: dict) -> set[str]:
    return {a["name"] for a in index["arms"] if a.get("evaluate") is False}


def benchmark_table(index: dict) -> list[list[str]]:
    """Rows: base and each arm; cells: accuracy % [95 % CI]: the base's over items (one evaluation), an arm's mean
    over seeds and items with the bounded crossed interval (item-level only with one seed)."""
    benches = index["benchmarks"]["all"]
    rows = [["model"] + benches]
    rows.append(["base (item-level CI)"] + [_interval(_safe(C.accuracy, index, C.BASE, b)[0]) for b in benches])
    skip = unevaluated(index)
    for arm, runs in by_arm(index).items():
        if arm in skip:
            continue
        n = len(runs)
        label = f"{arm} ({n} seeds)" if n > 1 else f"{arm} (1 seed: item-level CI)"
        rows.append([label] + [_interval(_safe(C.accuracy, index, arm, b)[0]) for b in benches])
    return rows


def gain_table(index: dict) -> tuple[list[list[str]], list[str]]:
    """Rows: each arm; cells: change over the base in points [95 % CI] and the minimum detectable change (the CI
    half-width), per benchmark and for the in-domain / out-of-domain means; plus notes on unpaired items."""
    bm = index["benchmarks"]
    cols = [(b, [b]) for b in bm["all"]] + [("in-domain mean", bm["in_domain"]),
                                           ("out-of-domain mean", bm["out_of_domain"])]
    rows = [["change over base"] + [c for c, bs in cols if bs]]
    skip = unevaluated(index)
    notes = [f"{arm}: not evaluated (evaluate: false; the claims read its training log)" for arm in sorted(skip)]
    for arm in by_arm(index):
        if arm in skip:
            continue
        cells = []
        for name, bs in cols:
            if not bs:
                continue
            g, err = _safe(C.gain, index, arm, bs)
            if err:
                notes.append(f"{arm} / {name}: {err}")
            elif g and g["unpaired"]:
                notes.append(f"{arm} / {name}: {g['unpaired']} item ids not scored by every model left out")
            cells.append("–" if g is None else f"{_interval(g, signed=True)} (MDC {100 * g['mdc']:.1f})")
        rows.append([arm] + cells)
    return rows, notes


def structure_table(index: dict) -> list[list[str]]:
    """Update structure of each arm's final checkpoint against the base, and of its last step against the previous
    checkpoint (``scalpel.analyze.update_structure``), mean over seeds."""
    cols = (("changed_exact", "changed (bits)"), ("changed_atol", "|Δ| > 1e-5"),
            ("changed_half_ulp", "≥ ½ bf16 ULP"), ("update_rank", "rank(ΔW)/min"),
            ("principal_share", "share on principal weights"))
    rows = [["arm", "vs"] + [c[1] for c in cols]]
    for arm, runs in by_arm(index).items():
        for ref in ("base", "previous"):
            finals = []
            for r in runs:
                s = [x for x in r.get("structure") or [] if x["reference"] == ref]
                if s:
                    finals.append(max(s, key=lambda x: x["step"]))
            if finals:
                vals = [[f[c] for f in finals if f.get(c) is not None] for c, _ in cols]
                rows.append([arm, ref] + [f"{sum(v) / len(v):.4f}" if v else "–" for v in vals])
    return rows


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _md_table(rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])] +
                     ["| " + " | ".join(r) + " |" for r in rows[1:]])


def claims_html(cl: dict) -> str:
    out = ["<table><tr><th>claim</th><th>component (predicted sign)</th><th>estimate [95 % CI] (design; status)"
           "</th><th>per seed</th><th>verdict</th></tr>"]
    for c in cl["claims"]:
        comps = c["components"] or [{"label": "no component (no matching arms)", "expect": "", "per_seed": {},
                                     "mean": None, "ci95": None, "n": 0, "status": ""}]
        for i, x in enumerate(comps):
            claim = f'<td rowspan="{len(comps)}">{esc(c["id"])} {esc(c["claim"])}</td>' if i == 0 else ""
            verdict = (f'<td rowspan="{len(comps)}" class="{esc(c["verdict"])}"><b>{esc(c["verdict"])}</b></td>'
                       if i == 0 else "")
            seeds = ", ".join(f"{s}: {v:+.3g}" for s, v in x["per_seed"].items())
            out.append(f"<tr>{claim}<td>{esc(x['label'])} ({esc(x['expect'])})</td><td>{esc(C.fmt_value(x))}</td>"
                       f"<td>{esc(seeds)}</td>{verdict}</tr>")
    out.append("</table>")
    return "".join(out)


def write_report(out: Path, index: dict) -> Path:
    """Compute the claims from the index, draw the figures, write report/index.html and report/summary.md."""
    import matplotlib

    matplotlib.use("Agg")
    cl = C.compute_claims(index)
    atomic.write_json(out / "claims.json", cl)
    rdir = out / "report"
    rdir.mkdir(parents=True, exist_ok=True)
    r = cl["roles"]
    parts = [f"<h1>scalpel study <code>{esc(index['study'])}</code></h1>",
             f"<p class='note'>generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))} · base {esc(index['base']['model'])}"
             f" · arms {esc(', '.join(a['name'] for a in index['arms']))} · seeds {esc(index['seeds'])} · jobs "
             f"{index['jobs']['done']}/{index['jobs']['total']} done"
             + (f" · <b>{len(index['jobs']['failed'])} failed</b>" if index["jobs"]["failed"] else "") + "</p>"]
    if index["jobs"]["failed"]:
        parts.append("<pre>" + esc("\n".join(f"{k}: {v}" for k, v in index["jobs"]["failed"].items())) + "</pre>")
    parts += ["<h2>Claims of the paper, measured</h2>", claims_html(cl),
              f"<p class='note'>Rule: {esc(cl['rule'])} Arms by role: {esc(json.dumps(r))}. In-domain: "
              f"{esc(', '.join(index['benchmarks']['in_domain']))}; out-of-domain: "
              f"{esc(', '.join(index['benchmarks']['out_of_domain']))}. Mid layers (C5): {esc(cl['mid_layers'])}.</p>"]

    gains, gain_notes = gain_table(index)
    parts += ["<h2>Figure 3 analogue: benchmarks, base vs arms</h2>", _fig(F.benchmark_bars(index), "benchmarks"),
              _html_table(benchmark_table(index)), f"<p class='note'>{esc(ACCURACY_NOTE)}</p>",
              "<p>Change over the base (points), with the minimum detectable change (MDC):</p>",
              _html_table(gains), f"<p class='note'>{esc(GAIN_NOTE)} {esc(S.METHOD)}</p>"]
    if gain_notes:
        parts.append("<p class='note'>Notes: " + esc("; ".join(gain_notes)) + ".</p>")
    parts += ["<h2>Figure 1 analogue: GRPO rewards</h2>",
              _fig(F.training_curves(index, "grpo", {"rewards/accuracy_reward/mean": "accuracy",
                                                     "rewards/format_reward/mean": "format"},
                                     "GRPO accuracy and format rewards", "mean reward"), "GRPO rewards"),
              "<h2>Figure 2 analogue: SFT loss and gradient norm</h2>",
              _fig(F.training_curves(index, "sft", {"loss": "loss"}, "SFT training loss", "loss"), "SFT loss", "fig"),
              _fig(F.training_curves(index, "sft", {"grad_norm": "grad norm"}, "SFT gradient norm (pre-clipping)",
                                     "grad norm"), "SFT grad norm", "fig")]
    parts += ["<h2>Figure 4 analogue: KL to the base model</h2>", _fig(F.kl_curves(index), "KL curves")]
    finals, gifs = F.weight_heatmaps(index)
    parts.append("<h2>Figures 5/6 analogue: weight updates per layer × matrix (final checkpoint, one colour "
                 "scale)</h2>")
    parts += [_fig(fig, f"heatmap {arm}", "fig") for arm, fig in finals] or ["<p class='note'>no weight analysis."
                                                                           "</p>"]
    keep = [g for g in gifs if g[0] in (r.get("grpo"), r.get("sft"))] or gifs[:2]
    if keep:
        parts.append("<p>Across checkpoints (animated):</p>")
        parts += [_img(_gif(frames), f"GIF {arm}", "fig") for arm, frames in keep if len(frames) > 1]
    parts += ["<h2>Update sparsity and spectrum</h2>",
              _fig(F.update_lines(index, "unchanged_atol", "share of entries with |Δ| ≤ atol", "share unchanged"),
                   "sparsity", "fig"),
              _fig(F.update_lines(index, "below_bf16_resolution", "share of entries a bf16 copy would not change",
                                  "share below bf16 resolution"), "bf16", "fig"),
              _fig(F.update_lines(index, "effective_rank", "effective rank of ΔW", "effective rank"), "rank", "fig"),
              _fig(F.update_lines(index, "base_topk_share_out", "share of ΔW in the base's top-k output directions",
                                  "share"), "topk", "fig")]
    freeze_arms = [a for a in (r.get("sft"), r.get("sft_freeze_mlp"), r.get("sft_qk_only")) if a]
    parts += ["<h3>Update structure as the later literature measures it (final checkpoint; mean over seeds)</h3>",
              _html_table(structure_table(index)),
              "<p class='note'>Fraction of entries changed: not bit-identical (Mukherjee et al. 2025), |Δ| > 1e-5 "
              "(their code's tolerance), at least half a bf16 ULP of the reference weight (what survives a bf16 "
              "cast); update rank = numerical rank(ΔW)/min(shape); share of the changed entries that are the "
              "reference's principal weights (top 10 % of |rank-8 approximation|; chance 0.1; The Path Not "
              "Taken). 'previous': the last checkpoint against the one before it. Definitions: "
              "scalpel/analyze/update_structure.py.</p>"]
    parts += ["<h2>Figure 7 analogue: freezing arms</h2>",
              _fig(F.benchmark_bars(index, freeze_arms, "SFT vs SFT with mid-layer MLPs frozen vs SFT training only "
                                    "Q/K (mean over seeds and items, 95 % CI over items × seeds)")
                   if len(freeze_arms) > 1 else None, "freezing")]
    tr = index["analysis"].get("trace")
    parts.append("<h2>Figure 12 analogue: causal tracing of fact recall (base model)</h2>")
    if tr and "reason" in tr:
        parts.append(f"<p class='note'>causal tracing skipped: {esc(tr['reason'])}.</p>")
    elif tr:
        for f in tr.get("figures", []):
            p = out / f
            if p.is_file():
                parts.append(_img("data:image/png;base64," + base64.b64encode(p.read_bytes()).decode(), "trace"))
        parts.append(f"<p class='note'>{tr['n_known']} of {tr['n_facts']} facts known; p(answer) clean "
                     f"{tr['p_clean_mean']:.3f}, corrupted {tr['p_corrupted_mean']:.3f}. Freezing selector from the "
                     f"MLP AIE: <code>{esc(json.dumps(tr['selector'].get('freeze')))}</code> (cut-off "
                     f"{tr['selector'].get('cutoff', 0):.3g}).</p>")
    else:
        parts.append("<p class='note'>no causal tracing in this study.</p>")
    parts += ["<h2>pass@k</h2>", _fig(F.passk_curves(index), "pass@k"),
              "<h3>Where the base overtakes each arm (pass@k to k = samples, on shared items; Yue et al. 2025)</h3>",
              _html_table(overtake_rows(index)), f"<p class='note'>{esc(PASSK_NOTE)}</p>"]
    sc, fits = F.kl_scatter(index)
    parts += ["<h2>Does KL to base predict forgetting?</h2>", _fig(sc, "KL vs forgetting"),
              "<p class='note'>Least-squares fit of out-of-domain accuracy change on KL(base‖checkpoint) per "
              "algorithm: " + esc("; ".join(f"{k}: slope {v['slope']:+.3g}, R² "
                                            f"{'–' if v['r2'] is None else format(v['r2'], '.2f')} (n={v['n']})"
                                            for k, v in fits.items() if v)) + "</p>"]
    predictors = predictor_table(index)
    parts += ["<h2>Which quantity predicts forgetting? (after RL's Razor)</h2>",
              _fig(F.predictor_bars(predictors), "forgetting predictors"), _html_table(predictor_rows(predictors)),
              f"<p class='note'>{esc(PREDICTOR_NOTE)}</p>"]
    parts.append("<h2>Training health</h2>")
    hrows = [["run", "events", "unhealthy", "kinds", "first example (model text)"]]
    for run in index["runs"]:
        h = run["train"]["health"]
        ex = h["first"][0]["example"][:300] if h["first"] else ""
        hrows.append([f"{run['arm']}/seed-{run['seed']}", str(h["events"]), str(h["unhealthy"]),
                      ", ".join(k for k in h["kinds"] if k), ex])
    parts.append(_html_table(hrows))
    parts.append("<h2>Sample completions (final checkpoint, first seed)</h2>")
    shown = set()
    for run in [{"arm": "base", "samples": index["base"].get("samples", [])}] + index["runs"]:
        if run["arm"] in shown:
            continue
        shown.add(run["arm"])
        for s in run.get("samples", [])[:2]:
            parts.append(f"<p><b>{esc(run['arm'])}</b> · {esc(s['benchmark'])} {esc(s['item_id'])} · gold "
                         f"<code>{esc(s['gold'])}</code> · {'correct' if s['correct'] else 'wrong'}</p>"
                         f"<pre>{esc(s['completion'])}</pre>")
    prov = index["provenance"]
    parts += ["<h2>Provenance</h2>",
              f"<p>scalpel commit <code>{esc(prov.get('commit'))}</code>; versions "
              f"<code>{esc(json.dumps(prov.get('versions')))}</code>; micro-world "
              f"<code>{esc(json.dumps(prov.get('world')))}</code></p>",
              f"<p>data fingerprints: <code>{esc(json.dumps(prov.get('data_fingerprints')))}</code></p>",
              f"<p>job seconds by kind: <code>{esc(json.dumps(index['jobs'].get('seconds_by_kind')))}</code></p>",
              "<details><summary>resolved configuration</summary><pre>" +
              esc(json.dumps(prov.get("config"), indent=1)) + "</pre></details>"]
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>scalpel study "
            f"{esc(index['study'])}</title><style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>")
    path = atomic.write_text(rdir / "index.html", page)
    md = [f"# scalpel study `{index['study']}`", "", "## Claims", "", C.format_table(cl), "", cl["rule"], "",
          "## Benchmarks (accuracy %, final checkpoint)", "", _md_table(benchmark_table(index)), "", ACCURACY_NOTE, "",
          "### Change over the base (points) and minimum detectable change (MDC)", "", _md_table(gains), "",
          GAIN_NOTE + " " + S.METHOD, "", *(["Notes: " + "; ".join(gain_notes) + ".", ""] if gain_notes else []),
          "## KL vs forgetting", "", "; ".join(f"{k}: R² {'–' if v['r2'] is None else format(v['r2'], '.2f')} "
                                                 f"(n={v['n']})" for k, v in fits.items() if v) or "no data", "",
          "## Forgetting predictors", "", _md_table(predictor_rows(predictors)), "",
          "## pass@k: where the base overtakes", "", _md_table(overtake_rows(index)), ""]
    atomic.write_text(rdir / "summary.md", "\n".join(md))
    import matplotlib.pyplot as plt

    plt.close("all")
    return path
