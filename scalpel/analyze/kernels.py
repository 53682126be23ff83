"""One-pass compiled statistics of W_ckpt − W_base over raw stored bits (the weight analysis' hot loop).

Why compiled: the analysis is memory-bound only if every element is touched once. Several numpy/torch passes with
fp32 temporaries run at 0.3-2 GB/s here; one fused loop over the raw bf16 bits (uint16 → fp32 by a 16-bit shift
and a bit cast) runs near memory bandwidth. The base and up to ``GROUP`` checkpoints stream side by side in short
chunks, so the base is read from memory once per group however many checkpoints there are.

Per (tensor, checkpoint) it returns ``[Σ Δ², Σ W_base², #bit-identical, #(|Δ| ≤ atol), #(|Δ| < rtol·|W_base|)]``.
Δ of two bf16 values is exact in fp32 (8-bit mantissas, shared range); for fp32 storage Δ is formed in fp64, also
exactly. Sums: fp32 within a ``CHUNK`` of 256 elements (≤ 8 terms per vector lane, then a 5-level tree: relative
error < 1e-6 on the chunk, 1e-7 typical) and fp64 across chunks — one fp32 accumulator over 100M elements was off
~1 %, a plain fp64 one halves the vector width.

What made it fast, measured on this machine (``benchmarks/weights_throughput.py``): 32-bit lanes throughout (numba
widens ``uint32 << 16`` and int32 sums to 64 bits, which halves the vector width — hence the intrinsics below);
short chunks with software prefetch a few KiB ahead in every stream (the hardware prefetcher restarts at each page
and falls behind when five streams are read at once); per chunk, the base is decoded once into L1-resident buffers
that each checkpoint's loop reads.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

BLOCK = 1 << 16  # elements per parallel task
N_STATS = 5
GROUP = 4  # checkpoints per kernel call (base read once per group)
# Elements per chunk: the base's decoded values live in L1 while each checkpoint's chunk streams by. Measured
# (1.48B-parameter model, 3 checkpoints, 2 threads, pages already mapped, physical GB/s): 128 → 17.9, 256 → 20.7,
# 512 → 19.4.
CHUNK = 256
PREFETCH = 1024  # elements ahead of the chunk being read, in every stream (2 KiB of bf16)
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}  # re-association lets LLVM vectorise the reductions


@intrinsic
def _bits_to_f32(typingctx, bits):
    """Reinterpret a uint32 as float32 (a free bit cast, vectorisable, unlike a view per element)."""
    sig = types.float32(types.uint32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def _f32_to_bits(typingctx, x):
    sig = types.uint32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def _bf16_bits(typingctx, bits):
    """bf16 bits (uint16) → the uint32 bits of the same fp32 value, computed in 32 bits."""
    sig = types.uint32(types.uint16)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        return builder.shl(builder.zext(args[0], i32), i32(16))

    return sig, codegen


@intrinsic
def _count(typingctx, acc, cond):
    """``acc + cond`` in int32 (numba's own int32 + int32 is int64)."""
    sig = types.int32(types.int32, types.boolean)

    def codegen(context, builder, signature, args):
        return builder.add(args[0], builder.zext(args[1], ir.IntType(32)))

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Ask for the cache line holding ``arr[idx]`` (LLVM's prefetch: never faults, returns nothing)."""
    sig = types.void(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary, [args[1]])
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])  # read, keep in all cache levels, data
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, inline="always")
def _prefetch_span(a, lo, hi):
    for i in range(lo, min(hi, a.size), 64 // a.itemsize):  # one per 64-byte line
        _prefetch(a, i)


@njit(nogil=True, fastmath=_FASTMATH, inline="always")
def _bf16(bits):
    return _bits_to_f32(_bf16_bits(bits))


@njit(nogil=True, fastmath=_FASTMATH, inline="always")
def _f32(bits):
    return _bits_to_f32(bits)


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _block_bf16(base, cks, nc, lo, hi, atol, rtol, out):
    """Statistics of one block for the first ``nc`` checkpoints, chunk by chunk: decode the base chunk (value and
    rtol·|w|) into L1, then run each checkpoint's chunk past it in one fused loop."""
    wbuf = np.empty(CHUNK, np.float32)
    tbuf = np.empty(CHUNK, np.float32)
    for k in range(lo, hi, CHUNK):
        e = min(hi, k + CHUNK)
        if e + PREFETCH <= hi:
            _prefetch_span(base, k + PREFETCH, e + PREFETCH)
            for j in range(nc):
                _prefetch_span(cks[j], k + PREFETCH, e + PREFETCH)
        b = base[k:e]  # slice, then a 0-based loop: range(lo, hi) indexing defeats vectorisation
        n = b.size
        ww, tt = wbuf[:n], tbuf[:n]
        sww = np.float32(0.0)
        for i in range(n):
            w = _bf16(b[i])
            ww[i] = w
            tt[i] = rtol * abs(w)
            sww += w * w
        for j in range(nc):
            c = cks[j][k:e]
            sdd = np.float32(0.0)
            neq = np.int32(0)
            nat = np.int32(0)
            nrel = np.int32(0)
            for i in range(n):
                cb = _bf16_bits(c[i])
                w = ww[i]
                d = _bits_to_f32(cb) - w  # exact in fp32 for two bf16 values
                sdd += d * d
                neq = _count(neq, cb == _f32_to_bits(w))
                ad = abs(d)
                nat = _count(nat, ad <= atol)
                nrel = _count(nrel, ad < tt[i])
            out[j, 0] += sdd
            out[j, 1] += sww
            out[j, 2] += neq
            out[j, 3] += nat
            out[j, 4] += nrel


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _base_block_f32(base, lo, hi):
    b = base[lo:hi]
    s = 0.0
    for i in range(b.size):
        w = np.float64(_f32(b[i]))
        s += w * w
    return s


@njit(nogil=True, fastmath=_FASTMATH, cache=True)
def _pair_block_f32(base, ck, lo, hi, atol, rtol, out):  # fp32 storage: simpler, bandwidth-bound anyway
    b = base[lo:hi]
    c = ck[lo:hi]
    sdd = 0.0
    neq = np.int32(0)
    nat = np.int32(0)
    nrel = np.int32(0)
    for i in range(b.size):
        bb = b[i]
        cb = c[i]
        w = np.float64(_f32(bb))
        d = np.float64(_f32(cb)) - w  # exact in fp64
        sdd += d * d
        neq += np.int32(bb == cb)
        ad = abs(d)
        nat += np.int32(ad <= atol)
        nrel += np.int32(ad < rtol * abs(w))
    out[0] += sdd
    out[2] += neq
    out[3] += nat
    out[4] += nrel


@njit(parallel=True, nogil=True, cache=True)
def _drive_bf16(base, cks, nc, atol, rtol):
    n = base.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros((nb, nc, N_STATS))
    for blk in prange(nb):
        lo = blk * BLOCK
        _block_bf16(base, cks, nc, lo, min(n, lo + BLOCK), atol, rtol, part[blk])
    return part.sum(axis=0)


@njit(parallel=True, nogil=True, cache=True)
def _drive_f32(base, cks, nc, atol, rtol):
    n = base.size
    nb = (n + BLOCK - 1) // BLOCK
    part = np.zeros((nb, nc, N_STATS))
    for blk in prange(nb):
        lo = blk * BLOCK
        hi = min(n, lo + BLOCK)
        sww = _base_block_f32(base, lo, hi)
        for j in range(nc):
            part[blk, j, 1] = sww
            _pair_block_f32(base, cks[j], lo, hi, atol, rtol, part[blk, j])
    return part.sum(axis=0)


def _readonly(a: np.ndarray, dtype) -> np.ndarray:
    """A read-only flat view: one compiled specialisation serves mmap'd files and in-memory arrays alike."""
    v = a.reshape(-1).view(dtype)
    v.flags.writeable = False
    return v


def _numpy_stats(base: np.ndarray, stored: str, ck: np.ndarray, ck_stored: str, atol: float, rtol: float,
                 chunk: int = 1 << 20) -> np.ndarray:
    """Slow but general path (fp16/fp64 or mixed dtypes), chunked so memory stays bounded."""
    out = np.zeros(N_STATS)
    for lo in range(0, base.size, chunk):
        b, c = base[lo:lo + chunk], ck[lo:lo + chunk]
        w = as_float(b, stored).astype(np.float64)
        d = as_float(c, ck_stored).astype(np.float64) - w
        out[0] += float(np.dot(d, d))
        out[1] += float(np.dot(w, w))
        if stored == ck_stored:
            out[2] += np.count_nonzero(b.view(_uint_of(b.dtype)) == c.view(_uint_of(c.dtype)))
        else:  # "bit-identical" has no meaning across dtypes: count equal values
            out[2] += np.count_nonzero(d == 0)
        ad = np.abs(d)
        out[3] += np.count_nonzero(ad <= atol)
        out[4] += np.count_nonzero(ad < rtol * np.abs(w))
    return out


def _uint_of(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"u{np.dtype(dtype).itemsize}")


def diff_stats(base: np.ndarray, cks: list[np.ndarray], stored: str, ck_stored: list[str] | None = None,
               atol: float = 1e-6, rtol: float = 2.0 ** -8) -> np.ndarray:
    """Statistics of ``ck - base`` for each checkpoint, shape ``(len(cks), 5)`` (see module docstring).

    ``base``/``cks`` are flat arrays as stored on disk: bf16 arrives as uint16 bits (numpy has no bf16), fp32 as
    float32 or uint32. ``stored`` names the safetensors dtype of the base ("BF16", "F32", ...); ``ck_stored`` that
    of each checkpoint (default: the same).
    """
    ck_stored = ck_stored or [stored] * len(cks)
    for c in cks:
        if c.size != base.size:
            raise ValueError(f"size mismatch {c.size} != {base.size}")
    fast = [i for i, s in enumerate(ck_stored) if s == stored and stored in ("BF16", "F32")]
    out = np.zeros((len(cks), N_STATS))
    if fast:
        if stored == "BF16":
            bits, drive, tol = np.uint16, _drive_bf16, np.float32
        else:
            bits, drive, tol = np.uint32, _drive_f32, np.float64
        b = _readonly(base, bits)
        for g in range(0, len(fast), GROUP):
            idx = fast[g:g + GROUP]
            group = [_readonly(cks[i], bits) for i in idx]
            group += [b] * (GROUP - len(group))  # fixed arity: one compiled specialisation; padding is not read
            out[idx] = drive(b, tuple(group), len(idx), tol(atol), tol(rtol))[:len(idx)]
    for i, s in enumerate(ck_stored):
        if i not in fast:
            out[i] = _numpy_stats(base, stored, cks[i], s, atol, rtol)
    return out


def as_float(flat: np.ndarray, stored: str) -> np.ndarray:
    """A numpy float view/array of stored data (bf16 bits are widened to fp32; that copy is the caller's cost)."""
    if stored == "BF16":
        wide = flat.view(np.uint16).astype(np.uint32)
        wide <<= 16
        return wide.view(np.float32)
    return flat


def set_threads(n: int) -> None:
    """Threads of the compiled kernels (numba's pool); clipped to what numba was started with."""
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


@njit(parallel=True, nogil=True, cache=True)
def _delta_bf16(base, ck, out):
    for i in prange(base.size):
        out[i] = _bf16(ck[i]) - _bf16(base[i])


def delta(base: np.ndarray, ck: np.ndarray, stored: str, ck_stored: str, fp64: bool = False) -> np.ndarray:
    """ΔW = ck − base as one new flat float array (fp32, or fp64 for the exact SVD); no other full-size temporary
    for bf16 storage, one widening copy otherwise."""
    if fp64:
        out = as_float(ck, ck_stored).astype(np.float64)
        out -= as_float(base, stored)
        return out
    if stored == ck_stored == "BF16":
        out = np.empty(base.size, np.float32)
        _delta_bf16(_readonly(base, np.uint16), _readonly(ck, np.uint16), out)
        return out
    out = as_float(ck, ck_stored).astype(np.float32)
    out -= as_float(base, stored)
    return out
