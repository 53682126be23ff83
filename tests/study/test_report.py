"""The report: self-contained, escapes model text, and renders in headless Chromium with every image loaded."""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scalpel.study import stats as S
from scalpel.study.report import write_report

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PLANT = '<script>alert("pwned")</script><img src=x onerror="alert(1)">'


def planted(index: dict) -> dict:
    ix = copy.deepcopy(index)
    ix["runs"][0]["samples"] = [{"benchmark": "mw_maths_easy", "item_id": "i<1>", "prompt": "p", "gold": "</pre>",
                                 "completion": PLANT, "correct": False}]
    ix["runs"][0]["train"]["health"]["first"] = [{"step": 1, "kind": "text_after_answer", "unhealthy": True,
                                                  "example": PLANT}]
    ix["runs"][0]["train"]["health"]["events"] = 1
    return ix


def test_model_text_is_escaped_and_nothing_is_fetched(index, tmp_path):
    path = write_report(tmp_path, planted(index))
    page = path.read_text()
    assert "<script" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 2  # the sample and the health event
    assert not re.search(r'(src|href)="(https?:)?//', page), "the report must not reference anything online"
    assert "<img src=\"data:image/png;base64," in page and "data:image/gif;base64," in page
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "| C1 " in md and "C8" in md


def test_report_states_the_method_and_keeps_intervals_in_range(index, tmp_path):
    write_report(tmp_path, index)
    md = (tmp_path / "report" / "summary.md").read_text()
    page = (tmp_path / "report" / "index.html").read_text()
    assert S.METHOD in md and html.escape(S.METHOD, quote=True) in page
    bench = md[md.index("## Benchmarks"):md.index("## KL vs forgetting")]
    num = r"[+-]?\d+(?:\.\d+)?"
    cut = bench.index("### Change over the base")
    accs, gains = (re.findall(rf"({num}) \[({num}), ({num})\]", part) for part in (bench[:cut], bench[cut:]))
    arms, benches = sum(a["evaluate"] for a in index["arms"]), len(index["benchmarks"]["all"])
    assert len(accs) == (1 + arms) * benches and len(gains) == arms * (benches + 2)  # + in/out-of-domain means
    for floor, rows in ((0, accs), (-100, gains)):
        for m, lo, hi in (tuple(map(float, r)) for r in rows):
            assert floor <= lo <= m <= hi <= 100 and hi > lo
    assert bench[cut:].count("(MDC ") == arms * (benches + 2)
    assert "base (item-level CI)" in bench and "grpo-hard: not evaluated" in bench


def test_report_shows_the_issue_17_sections_from_the_real_index(index, tmp_path):
    """The weights job also measured the update structure (against the base and the previous checkpoint), the
    pass@k phase kept per-item counts, and the report shows both with the forgetting predictors."""
    from scalpel.study.passk import passk_table
    from scalpel.study.report import structure_table

    for r in index["runs"]:
        refs = {(s["step"], s["reference"]) for s in r["structure"]}
        steps = sorted(int(c["step"]) for c in r["checkpoints"] if c["step"] > 0)
        assert refs == {(s, ref) for s in steps for ref in ("base", "previous")}
    for r in index["runs"]:  # every evaluated checkpoint also measured KL on the task along its own samples
        if r["eval"]:
            assert set(r["task_kl"]) == set(r["eval"]) and all(v["tokens"] > 0 for v in r["task_kl"].values())
    table = structure_table(index)
    assert {(row[0], row[1]) for row in table[1:]} >= {("grpo", "base"), ("sft", "previous")}
    assert set(passk_table(index)) >= {"grpo"}  # the tiny study samples pass@k for every evaluated arm
    write_report(tmp_path, index)
    page = (tmp_path / "report" / "index.html").read_text()
    for heading in ("Update structure as the later literature measures it", "Which quantity predicts forgetting",
                    "Where the base overtakes each arm"):
        assert heading in page
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "## Forgetting predictors" in md and "kl_forward" in md and "| C12 " in md


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (make test installs Debian's chromium when run as root)")
    return exe


CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => __errors.push(String(e.message || (e.target && e.target.src) || e)), true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const pre = document.createElement('pre'); pre.id = 'scalpel-check';
  pre.textContent = JSON.stringify({images: imgs.length, bad: bad, errors: __errors});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.slow
def test_report_renders_in_headless_chromium(finished_study, tmp_path):
    exe = chromium()
    report = finished_study / "report" / "index.html"
    page = report.read_text()
    harness = tmp_path / "check.html"  # the report plus a probe script (the report itself has none)
    harness.write_text(page.replace("<head>", "<head>" + CHECK, 1))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([exe, *flags, "--virtual-time-budget=5000", "--dump-dom", harness.as_uri()],
                         capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="scalpel-check">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    check = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["images"] >= 8 and check["bad"] == [] and check["errors"] == [], check
    for heading in ("Claims", "Update structure as the later literature measures it",
                    "Which quantity predicts forgetting", "Where the base overtakes each arm"):
        assert heading in dom.stdout, heading  # the rendered DOM, not only the file, has every section
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "study-report.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run([exe, *flags, "--enable-logging=stderr", "--v=0", "--window-size=1200,3000",
                          f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=180)
    assert shot.is_file() and shot.stat().st_size > 10_000, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
