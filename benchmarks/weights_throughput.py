"""Weight-analysis throughput and memory, side by side.

Generates (once, cached under --dir) a synthetic OLMo-2-shaped bf16 base (default OLMo-2-0425-1B shapes: 16
layers, hidden 2048, FFN 8192, vocab 100352 = 1.48B parameters, 1.07B of them in the analysed q,k,v,o,gate,up,down
matrices) and 3 checkpoints = bf16(base + Gaussian update) at three update sizes, warms the page cache, then runs in
fresh subprocesses, one after another:

- ``bandwidth``: memory read bandwidth, a large-array sum (numba, vectorised, --threads threads; and numpy, one
  thread); the larger is the machine's limit (here 2 threads read ~29 GB/s, one numpy thread ~13 GB/s);
- ``fast``: ``scalpel.analyze.weights.analyze_weights`` (norms + sparsity, no spectrum, no figures; table written);
- ``torch``: a per-tensor streaming torch implementation (several passes with fp32 temporaries);
- ``naive``: load both state dicts with ``safetensors.torch.load_file``, loop over tensors in fp32;
- ``spectrum`` (unless --no-spectrum): ``analyze_weights`` with the spectrum on, one checkpoint, for its memory.

Throughput = bytes of base + checkpoint tensors analysed per second, counted per (base, checkpoint) pair as the
issue defines it ("logical"); the fast path reads the base once per group of checkpoints, so its physical read rate
(bytes actually touched / s) is also shown, and is what is compared with memory bandwidth. Peak anonymous memory
is sampled from ``/proc/self/status`` ``RssAnon`` every 2 ms by a thread of each subprocess (mmap'd file pages
are ``RssFile`` and not counted) and reported above the process's level just before the timed call.
Numba compilation is excluded (each subprocess warms the kernels first); tensor file pages are warm: the files are
evicted and re-read once before measuring (``--cache-as-is`` skips that), because how the pages came into the
cache changes the cost of mapping them. Measured here (kernel 6.18, ext4 with large folios): files re-read → 2 MB
folios, a fresh process maps them in ~4k page faults and the fast path took 0.49 s; the same files still cached
from being written → smaller folios, ~82k faults and 0.12 s more to unmap, 0.73 s.

    .venv/bin/python benchmarks/weights_throughput.py            # full size, ~12 GB under /tmp
    .venv/bin/python benchmarks/weights_throughput.py --layers 4 # quicker, smaller
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np

UPDATE_STD = (2e-5, 2e-4, 2e-3)  # per checkpoint: below, near and above bf16 resolution at |w| ~ 0.02
BASE_STD = 0.02


# ------------------------------------------------------------------------------------------ measurement


def proc_kib(path: str, field: str) -> int:
    """A ``field: N kB`` line of a /proc file, in KiB (0 when absent)."""
    with open(path) as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class AnonPeak:
    """Peak RssAnon (bytes) of this process, sampled by a daemon thread."""

    def __init__(self, every: float = 0.002):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    @staticmethod
    def now() -> int:
        return proc_kib("/proc/self/status", "RssAnon") * 1024

    def __enter__(self):
        self.start = self.now()
        self.peak = self.start
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.every)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.now())


def analysed_names(n_layers: int) -> list[str]:
    from scalpel.analyze.architectures import ARCHITECTURES

    return [n for _, _, n in ARCHITECTURES["olmo2"].analysed(n_layers)]


# ------------------------------------------------------------------------------------------ generation


def generate(root: Path, hidden: int, layers: int, inter: int, vocab: int, n_ck: int) -> None:
    from scalpel.analyze.synthetic import olmo2_shapes, to_bf16_bits, write_safetensors

    cfg, specs = olmo2_shapes(hidden, layers, inter, vocab)
    stamp = root / "done.json"
    key = json.loads(json.dumps({"cfg": cfg, "n_ck": n_ck, "update_std": UPDATE_STD}))  # tuples → lists
    if stamp.is_file() and json.loads(stamp.read_text()) == key:
        return
    analysed = set(analysed_names(layers))

    def base_values(name, shape):
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        return rng.standard_normal(int(np.prod(shape)), dtype=np.float32) * BASE_STD

    for j in range(-1, n_ck):
        d = root / ("base" if j < 0 else f"run/checkpoint-{(j + 1) * 100}")
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cfg))

        def make(name, dtype, shape, j=j):
            if name not in analysed:  # never read by the analysis: cheap constant bytes
                return np.full(int(np.prod(shape)), 0x3F80, np.uint16)  # bf16 1.0
            w = base_values(name, shape)
            if j >= 0:
                noise = np.random.default_rng([j, zlib.crc32(name.encode())]).standard_normal(
                    w.size, dtype=np.float32)
                w = to_bf16_bits(w).astype(np.uint32) << 16  # start from the stored bf16 base, as training does
                w = w.view(np.float32) + noise * np.float32(UPDATE_STD[j % len(UPDATE_STD)])
            return to_bf16_bits(w)

        t = time.time()
        write_safetensors(d / "model.safetensors", specs, make)
        print(f"  wrote {d} in {time.time() - t:.0f}s", flush=True)
    stamp.write_text(json.dumps(key))


def warm(paths: list[Path], reread: bool) -> None:
    """Put the files in the page cache; with ``reread``, evict them first so the cache is filled by one sequential
    read (as after a reboot or a copy), whatever wrote them. Why it matters: on kernels with large page-cache folios
    (6.18 + ext4 here) a read fills the cache with 2 MB folios, which a fresh process maps 2 MB per page fault;
    pages still cached from being written sit in smaller folios, and mapping them costs more (see the docstring)."""
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            if reread:
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while fh.read(1 << 26):
                pass


def file_huge_pages() -> int:
    """Bytes of page cache held in PMD-sized (2 MB) folios, machine-wide."""
    return proc_kib("/proc/meminfo", "FileHugePages") * 1024


# ------------------------------------------------------------------------------------------ implementations


def run_bandwidth(threads: int) -> dict:
    import numba
    from numba import njit, prange

    @njit(parallel=True, nogil=True, fastmath=True)  # fastmath: a vectorised sum, else it measures FP-add latency
    def psum(a):
        s = 0.0
        for i in prange(a.size):
            s += a[i]
        return s

    numba.set_num_threads(threads)
    a = np.ones(1 << 28, np.float32)  # 1 GiB, touched
    psum(a[:1000])
    best_nb, best_np = 0.0, 0.0
    for _ in range(5):
        t = time.perf_counter()
        psum(a)
        best_nb = max(best_nb, a.nbytes / (time.perf_counter() - t))
        t = time.perf_counter()
        a.sum()
        best_np = max(best_np, a.nbytes / (time.perf_counter() - t))
    return {"numba_sum_GBps": best_nb / 1e9, "numpy_sum_GBps": best_np / 1e9,
            "bandwidth_GBps": max(best_nb, best_np) / 1e9}


def run_fast(root: Path, cks: list[Path], threads: int, spectrum: bool) -> dict:
    from scalpel.analyze import kernels
    from scalpel.analyze.weights import analyze_weights

    kernels.set_threads(threads)
    import torch

    torch.set_num_threads(threads)
    z = np.zeros(1000, np.uint16)
    kernels.diff_stats(z, [z], "BF16")  # load/compile the kernels outside the timing
    kernels.delta(z, z, "BF16", "BF16")
    out = root / ("out-spectrum" if spectrum else "out-fast")
    with AnonPeak() as mem:
        t = time.perf_counter()
        analyze_weights(root / "base", cks, out, spectrum=spectrum, figures=False, threads=threads,
                        progress=False)
        dt = time.perf_counter() - t
    return {"seconds": dt, "anon_start": mem.start, "anon_peak": mem.peak}


def run_torch(root: Path, cks: list[Path], threads: int, layers: int) -> dict:
    """Per-tensor streaming torch code, as one would write it first: fp32 copies, several passes."""
    import torch
    from safetensors import safe_open

    torch.set_num_threads(threads)
    names = analysed_names(layers)
    with AnonPeak() as mem:
        t = time.perf_counter()
        with safe_open(root / "base/model.safetensors", "pt") as fb:
            handles = [safe_open(c / "model.safetensors", "pt") for c in cks]
            for n in names:
                wb = fb.get_tensor(n)
                wb32 = wb.float()
                base2 = wb32.double().pow(2).sum().item()
                for h in handles:
                    wc = h.get_tensor(n)
                    d = wc.float() - wb32
                    fro2 = d.double().pow(2).sum().item()
                    same = torch.count_nonzero(wc.view(torch.int16) == wb.view(torch.int16)).item()
                    small = torch.count_nonzero(d.abs() <= 1e-6).item()
                    below = torch.count_nonzero(d.abs() < wb32.abs() * 2 ** -8).item()
                    del wc, d
                del wb, wb32
        dt = time.perf_counter() - t
    return {"seconds": dt, "anon_start": mem.start, "anon_peak": mem.peak, "check": [fro2, base2, same, small, below]}


def run_naive(root: Path, cks: list[Path], threads: int, layers: int) -> dict:
    """Load both state dicts, loop over tensors in fp32 (the baseline the issue names)."""
    import torch
    from safetensors.torch import load_file

    torch.set_num_threads(threads)
    names = analysed_names(layers)
    with AnonPeak() as mem:
        t = time.perf_counter()
        for c in cks:
            sb = load_file(root / "base/model.safetensors")
            sc = load_file(c / "model.safetensors")
            for n in names:
                wb, wc = sb[n].float(), sc[n].float()
                d = wc - wb
                fro = torch.linalg.vector_norm(d).item()
                base = torch.linalg.vector_norm(wb).item()
                same = (wc == wb).sum().item()
                small = (d.abs() <= 1e-6).sum().item()
                below = (d.abs() < wb.abs() / 256).sum().item()
            del sb, sc
        dt = time.perf_counter() - t
    return {"seconds": dt, "anon_start": mem.start, "anon_peak": mem.peak, "check": [fro, base, same, small, below]}


def child(args) -> None:
    root = Path(args.dir)
    cks = sorted((root / "run").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:args.checkpoints]
    if args.child == "bandwidth":
        res = run_bandwidth(args.threads)
    elif args.child == "fast":
        res = run_fast(root, cks, args.threads, False)
    elif args.child == "spectrum":
        res = run_fast(root, cks[:1], args.threads, True)
    elif args.child == "torch":
        res = run_torch(root, cks, args.threads, args.layers)
    else:
        res = run_naive(root, cks[:args.naive_checkpoints], args.threads, args.layers)
    print("RESULT " + json.dumps(res))


def spawn(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind] + [a for a in sys.argv[1:] if a != "--child"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), NUMBA_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"{kind} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/scalpel-bench-weights", help="where the synthetic models live")
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--intermediate", type=int, default=8192)
    ap.add_argument("--vocab", type=int, default=100352)
    ap.add_argument("--checkpoints", type=int, default=3)
    ap.add_argument("--naive-checkpoints", type=int, default=3, help="checkpoints the naive loop processes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-spectrum", action="store_true", help="skip the (slow) spectrum memory run")
    ap.add_argument("--no-torch", action="store_true", help="skip the per-tensor torch baseline")
    ap.add_argument("--repeat", type=int, default=5,
                    help="fast runs, each in a fresh process (best and median are reported: this machine is shared)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--cache-as-is", action="store_true",
                    help="do not evict and re-read the files before measuring (keeps whatever folios they have)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    from scalpel.analyze.synthetic import olmo2_shapes

    root = Path(args.dir)
    print(f"generating synthetic models under {root} (cached) ...", flush=True)
    generate(root, args.hidden, args.layers, args.intermediate, args.vocab, args.checkpoints)
    _, specs = olmo2_shapes(args.hidden, args.layers, args.intermediate, args.vocab)
    names = set(analysed_names(args.layers))
    per_model = sum(int(np.prod(s)) * 2 for n, _, s in specs if n in names)
    largest_f32 = max(int(np.prod(s)) * 4 for n, _, s in specs if n in names)
    params = sum(int(np.prod(s)) for _, _, s in specs)
    files = [root / "base/model.safetensors"] + [root / f"run/checkpoint-{(j + 1) * 100}/model.safetensors"
                                                 for j in range(args.checkpoints)]
    print("warming the page cache ..." + (" (evicted and re-read)" if not args.cache_as_is else ""), flush=True)
    warm(files, reread=not args.cache_as_is)
    n = args.checkpoints
    logical = 2 * per_model * n
    physical = per_model * (1 + n) if n <= 4 else None  # base read once per group of 4 checkpoints

    res = {"params": params, "analysed_bytes_per_model": per_model, "largest_tensor_fp32": largest_f32,
           "checkpoints": n, "threads": args.threads, "load_avg_before": os.getloadavg(),
           "file_huge_pages": file_huge_pages(), "files_bytes": sum(f.stat().st_size for f in files)}
    res["bandwidth"] = spawn("bandwidth", args)
    fast = [spawn("fast", args) for _ in range(args.repeat)]
    res["fast_runs"] = fast
    res["fast"] = min(fast, key=lambda r: r["seconds"])
    if not args.no_torch:
        res["torch"] = spawn("torch", args)
    res["naive"] = spawn("naive", args)
    if not args.no_spectrum:
        res["spectrum"] = spawn("spectrum", args)
    res["load_avg_after"] = os.getloadavg()

    bw = res["bandwidth"]["bandwidth_GBps"]
    rate = lambda seconds, k: 2 * per_model * k / seconds / 1e9  # noqa: E731  logical GB/s
    phys_rate = lambda seconds: (physical or logical) / seconds / 1e9  # noqa: E731
    f_rate = rate(res["fast"]["seconds"], n)
    f_phys = phys_rate(res["fast"]["seconds"])
    nv_rate = rate(res["naive"]["seconds"], args.naive_checkpoints)
    med = float(np.median([r["seconds"] for r in fast]))
    lines = [
        f"model: {params / 1e9:.2f}B params, analysed {per_model / 1e9:.2f} GB bf16 per model, {n} checkpoints, "
        f"{args.threads} threads, load average {res['load_avg_before'][0]:.1f} → {res['load_avg_after'][0]:.1f}",
        f"memory read bandwidth      {bw:6.2f} GB/s   (numba sum {res['bandwidth']['numba_sum_GBps']:.2f}, "
        f"numpy sum {res['bandwidth']['numpy_sum_GBps']:.2f})",
        f"page cache in 2 MB folios: {res['file_huge_pages'] / 1e9:.1f} GB machine-wide (the model files: "
        f"{res['files_bytes'] / 1e9:.1f} GB)",
        f"{'implementation':26s} {'seconds':>8s} {'GB/s':>7s} {'phys GB/s':>9s} {'peak anon above start':>22s}",
        f"{'fast (scalpel)':26s} {res['fast']['seconds']:8.2f} {f_rate:7.2f} {f_phys:9.2f} "
        f"{(res['fast']['anon_peak'] - res['fast']['anon_start']) / 2**20:18.1f} MiB",
        f"{'  median of the fast runs':26s} {med:8.2f} {rate(med, n):7.2f} {phys_rate(med):9.2f}   "
        f"({len(fast)} runs: "
        + ", ".join(f"{r['seconds']:.2f}" for r in fast) + " s)",
    ]
    if "torch" in res:
        t_rate = rate(res["torch"]["seconds"], n)
        lines.append(f"{'per-tensor torch':26s} {res['torch']['seconds']:8.2f} {t_rate:7.2f} {'':9s} "
                     f"{(res['torch']['anon_peak'] - res['torch']['anon_start']) / 2**20:18.1f} MiB")
    lines.append(f"{'naive (load state dicts)':26s} {res['naive']['seconds']:8.2f} {nv_rate:7.2f} {'':9s} "
                 f"{(res['naive']['anon_peak'] - res['naive']['anon_start']) / 2**20:18.1f} MiB")
    if "spectrum" in res:
        s = res["spectrum"]
        lines.append(f"{'fast + spectrum (1 ckpt)':26s} {s['seconds']:8.2f} {rate(s['seconds'], 1):7.2f} {'':9s} "
                     f"{(s['anon_peak'] - s['anon_start']) / 2**20:18.1f} MiB")
    budget = 3 * largest_f32
    peak_fast = res["fast"]["anon_peak"] - res["fast"]["anon_start"]
    res["verdict"] = {
        "speedup_vs_naive": f_rate / nv_rate, "target_speedup": 5.0,
        "fraction_of_bandwidth_physical": f_phys / bw, "fraction_of_bandwidth_logical": f_rate / bw,
        "fraction_of_bandwidth_physical_median": phys_rate(med) / bw,
        "target_fraction": 0.5,
        "peak_anon_above_start_MiB": peak_fast / 2**20, "budget_3x_largest_fp32_MiB": budget / 2**20,
        "peak_anon_spectrum_MiB": (res["spectrum"]["anon_peak"] - res["spectrum"]["anon_start"]) / 2**20
        if "spectrum" in res else None,
    }
    v = res["verdict"]
    lines += [
        f"speed-up vs naive: {v['speedup_vs_naive']:.1f}x (target ≥ 5x)",
        f"fraction of bandwidth: {v['fraction_of_bandwidth_physical']:.2f} physical, "
        f"{v['fraction_of_bandwidth_logical']:.2f} logical (target ≥ 0.5); median run "
        f"{v['fraction_of_bandwidth_physical_median']:.2f} physical",
        f"peak anonymous memory above start: fast {v['peak_anon_above_start_MiB']:.0f} MiB"
        + (f", with spectrum {v['peak_anon_spectrum_MiB']:.0f} MiB" if v["peak_anon_spectrum_MiB"] is not None
           else "")
        + f" (budget 3 × largest tensor in fp32 = {budget / 2**20:.0f} MiB + constant)",
    ]
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
