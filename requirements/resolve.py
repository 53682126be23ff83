"""Resolve scalpel's two dependency sets without installing them, for every Python version the package claims.

Why: the GPU set (vLLM, DeepSpeed) cannot be installed here, so nothing else would notice when it stops resolving
(vLLM pins torch and caps transformers; TRL supports a narrow vLLM range). ``tests/test_dependency_sets.py`` runs
this on every CI run. Resolution uses uv (``uv pip compile``), which reads wheel metadata by HTTP range requests
(pip would download the GPU wheels, gigabytes) and resolves for a target Python/platform without an interpreter.

    python requirements/resolve.py            # check: CPU set and GPU set, every claimed Python; exit 1 on failure
    python requirements/resolve.py --update   # rewrite requirements/gpu.txt, the GPU lock `make install-gpu` uses

Sets: CPU = ``.[test]`` (the pins in pyproject.toml); GPU = ``.[gpu]`` constrained by ``requirements/gpu.txt``;
both resolved for linux x86_64 (manylinux_2_28, what vLLM ships wheels for). The GPU check also fails when the
lock does not pin every package of the set, or when the resolved vLLM is outside the range TRL declares in its
``vllm`` extra.
Exit status: 0 resolved, 1 a set does not resolve (the resolver's explanation is printed), 3 the index is
unreachable (the test skips), 4 uv is missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GPU_LOCK = REPO / "requirements" / "gpu.txt"
GPU_PLATFORM = "x86_64-manylinux_2_28"
KEY_PACKAGES = ("torch", "transformers", "trl", "vllm", "deepspeed", "numpy", "numba")
UNREACHABLE, NO_UV = 3, 4


class ResolutionFailed(RuntimeError):
    pass


def claimed_pythons(requires_python: str, newest_known: int = 20) -> list[str]:
    """The 3.X versions a ``requires-python`` spec admits (">=3.11,<3.15" -> 3.11 ... 3.14)."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(requires_python)
    found = [f"3.{m}" for m in range(0, newest_known + 1) if spec.contains(f"3.{m}.0")]
    if not found:
        raise ValueError(f"requires-python {requires_python!r} admits no Python 3.x version")
    return found


def uv_binary() -> str:
    """uv from PATH, else from the `uv` Python package (the `test` extra installs it)."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        raise SystemExit(NO_UV) from None
    return find_uv_bin()


def index_reachable(url: str | None = None, timeout: float = 15.0) -> bool:
    url = (url or os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
           or "https://pypi.org/simple").rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def compile_set(project: Path, extra: str, python: str, *, platform: str | None = None, universal: bool = False,
                constraints: Path | None = None, output: Path | None = None) -> dict[str, str]:
    """``uv pip compile`` one set; returns {package: version}. Raises ResolutionFailed with uv's explanation."""
    with tempfile.TemporaryDirectory() as tmp:
        out = output or Path(tmp) / "resolved.txt"
        cmd = [uv_binary(), "pip", "compile", str(project / "pyproject.toml"), "--extra", extra,
               "--python-version", python, "--no-header", "--quiet", "--output-file", str(out)]
        if platform:
            cmd += ["--python-platform", platform]
        if universal:
            cmd += ["--universal"]
        if constraints:
            cmd += ["--constraints", str(constraints)]
        # No uv.toml of this machine changes the answer; sdists' metadata is built with the Python at hand
        # (uv would otherwise try to download the target interpreter).
        env = {**os.environ, "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=project)
        if done.returncode != 0:
            raise ResolutionFailed(done.stderr.strip() or done.stdout.strip())
        return parse_pins(out.read_text())


def parse_pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;]+)", line.strip())
        if m:
            pins[canonical(m.group(1))] = m.group(3)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def trl_vllm_range() -> str | None:
    """The vLLM versions TRL declares support for (its `vllm` extra), from the installed TRL's metadata."""
    from importlib import metadata

    try:
        requires = metadata.requires("trl") or []
    except metadata.PackageNotFoundError:
        return None
    for req in requires:
        if req.startswith("vllm") and 'extra == "vllm"' in req:
            return req.split(";")[0][len("vllm"):].strip()
    return None


def check_gpu_set(project: Path, python: str, lock: Path) -> dict[str, str]:
    pins = compile_set(project, "gpu", python, platform=GPU_PLATFORM, constraints=lock)
    locked = parse_pins(lock.read_text())
    missing = sorted(set(pins) - set(locked))
    if missing:
        raise ResolutionFailed(f"{lock} does not pin {', '.join(missing)} of the GPU set: run `make lock-gpu`")
    supported = trl_vllm_range()
    if supported:
        from packaging.specifiers import SpecifierSet

        if "vllm" not in pins or pins["vllm"] not in SpecifierSet(supported):
            raise ResolutionFailed(f"the GPU set resolves vllm {pins.get('vllm')}, outside TRL's range {supported}")
    return pins


def check(project: Path = REPO, lock: Path = GPU_LOCK, log=print) -> bool:
    """Resolve both sets for every claimed Python (side by side: the time is network waits); log one line per
    (set, Python). True when all resolve."""
    from concurrent.futures import ThreadPoolExecutor

    requires_python = tomllib.loads((project / "pyproject.toml").read_text())["project"]["requires-python"]
    jobs = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for python in claimed_pythons(requires_python):
            jobs["cpu", python] = pool.submit(compile_set, project, "test", python, platform=GPU_PLATFORM)
            jobs["gpu", python] = pool.submit(check_gpu_set, project, python, lock)
    ok = True
    for (name, python), job in jobs.items():
        try:
            pins = job.result()
        except ResolutionFailed as err:
            ok = False
            log(f"{name} set, Python {python}: DOES NOT RESOLVE\n{err}")
            continue
        keys = " ".join(f"{k}=={pins[k]}" for k in KEY_PACKAGES if k in pins)
        log(f"{name} set, Python {python}: resolves ({len(pins)} packages: {keys})")
    return ok


def update_lock(project: Path = REPO, lock: Path = GPU_LOCK) -> None:
    """Write the GPU lock: one universal resolution from the oldest claimed Python up (markers where versions
    differ, e.g. numpy below/above 3.13), so the same file constrains every claimed Python."""
    requires_python = tomllib.loads((project / "pyproject.toml").read_text())["project"]["requires-python"]
    python = claimed_pythons(requires_python)[0]
    body = tempfile.NamedTemporaryFile("w+", suffix=".txt", delete=False)
    body.close()
    compile_set(project, "gpu", python, universal=True, output=Path(body.name))
    header = ("# The GPU dependency set: pip install -e \".[gpu]\" -c requirements/gpu.txt (make install-gpu).\n"
              "# Resolved by `python requirements/resolve.py --update` "
              f"(uv pip compile --universal, Python >= {python}).\n"
              "# Checked for every claimed Python by tests/test_dependency_sets.py. Not installed on any machine of "
              "ours yet.\n")
    lock.write_text(header + Path(body.name).read_text())
    os.unlink(body.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite requirements/gpu.txt, then check")
    args = parser.parse_args(argv)
    try:
        uv_binary()
    except SystemExit:
        print("uv not found: pip install uv (the `test` extra has it)", file=sys.stderr)
        return NO_UV
    if not index_reachable():
        print("package index unreachable: cannot resolve the dependency sets here", file=sys.stderr)
        return UNREACHABLE
    if args.update:
        update_lock()
    return 0 if check() else 1


if __name__ == "__main__":
    sys.exit(main())
