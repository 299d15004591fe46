"""Triton kernel for ``feature_stats``: ``total += sum(x - c)``, ``gram += (x - c)^T (x - c)``.

The arithmetic: for a batch of N rows of d features, the Gram update is
``N d^2`` multiply-adds (2 GFLOP at N = 256, d = 2048) against ``N d``
elements read, so it is a matmul, not a bandwidth problem.  What fusing buys
over the eager ``x.double() - c`` then ``addmm_``: no float64 copy of the
batch in memory (eager writes and re-reads 2x the batch in float64), the
column sums come for free from the tiles already loaded, and only the upper
triangle of tiles is computed (the Gram matrix is symmetric), half the
multiply-adds of a full GEMM; each tile is mirrored on store.

Numerics match :mod:`ganfast.ref.feature_stats` (the definition): inputs are
widened to float64 before the shift is subtracted and the products are
float64 ``tl.dot`` (DMMA on sm_80+), so the statistics are float64-exact.
Each output tile belongs to exactly one program, which reads, adds and
writes it: no atomics, deterministic.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
import triton
import triton.language as tl


@triton.jit
def _feature_stats_kernel(
    x_ptr,  # *T, (n, d) features, any strides
    shift_ptr,  # *f64, (d,)
    total_ptr,  # *f64, (d,), updated in place
    gram_ptr,  # *f64, (d, d) contiguous, updated in place (both triangles)
    pairs_ptr,  # *i32, (programs, 2): the tile pair (bi <= bj) of each program
    n,  # rows of x
    d,  # features
    stride_xn,  # strides of x, in elements
    stride_xd,
    BLOCK_N: tl.constexpr,  # rows per step of the reduction
    BLOCK_D: tl.constexpr,  # tile edge of the Gram matrix
):
    pid = tl.program_id(0)
    bi = tl.load(pairs_ptr + 2 * pid)
    bj = tl.load(pairs_ptr + 2 * pid + 1)
    ci = bi * BLOCK_D + tl.arange(0, BLOCK_D)
    cj = bj * BLOCK_D + tl.arange(0, BLOCK_D)
    mi = ci < d
    mj = cj < d
    shift_i = tl.load(shift_ptr + ci, mask=mi, other=0.0)
    shift_j = tl.load(shift_ptr + cj, mask=mj, other=0.0)
    col_i = ci.to(tl.int64) * stride_xd
    col_j = cj.to(tl.int64) * stride_xd

    acc = tl.zeros((BLOCK_D, BLOCK_D), dtype=tl.float64)
    colsum = tl.zeros((BLOCK_D,), dtype=tl.float64)
    for n0 in range(0, n, BLOCK_N):
        rows = n0 + tl.arange(0, BLOCK_N)
        mr = rows < n
        row = rows.to(tl.int64) * stride_xn
        mask_i = mr[:, None] & mi[None, :]
        mask_j = mr[:, None] & mj[None, :]
        a = tl.load(x_ptr + row[:, None] + col_i[None, :], mask=mask_i, other=0.0).to(tl.float64)
        b = tl.load(x_ptr + row[:, None] + col_j[None, :], mask=mask_j, other=0.0).to(tl.float64)
        # Padding must stay exactly zero after the shift.
        a = tl.where(mask_i, a - shift_i[None, :], 0.0)
        b = tl.where(mask_j, b - shift_j[None, :], 0.0)
        acc += tl.dot(tl.trans(a), b)
        colsum += tl.sum(a, axis=0)

    m2 = mi[:, None] & mj[None, :]
    off = ci[:, None].to(tl.int64) * d + cj[None, :]
    tl.store(gram_ptr + off, tl.load(gram_ptr + off, mask=m2, other=0.0) + acc, mask=m2)
    if bi != bj:
        # The mirrored tile (bj, bi): element (cj, ci) gets acc[ci, cj].
        off_t = cj[None, :].to(tl.int64) * d + ci[:, None]
        tl.store(gram_ptr + off_t, tl.load(gram_ptr + off_t, mask=m2, other=0.0) + acc, mask=m2)
    else:
        tl.store(total_ptr + ci, tl.load(total_ptr + ci, mask=mi, other=0.0) + colsum, mask=mi)


#: The dtypes of x the kernel is compiled for.  float16 and bfloat16 features are widened to float32 first: exact
#: (the kernel widens every element to float64 anyway), and triton 3.6 cannot compile the kernel for 16-bit x (it
#: moves the widening into the float64 tl.dot's operand conversion, which its MMAv2 lowering rejects: "fp64 don't
#: support largeK MMA"; tests/test_kernels_compile.py).
_KERNEL_DTYPES = (torch.float32, torch.float64)


def _config(d: int) -> Tuple[int, int, int]:
    """(BLOCK_D, BLOCK_N, num_warps) for d features: float64 tiles, so modest sizes.

    The 64 x 64 float64 Gram tile takes 8 warps: with 4, ptxas spills on sm_90 at 255
    registers a thread (``python -m ganfast.kernels.aot --filter feature_stats``)."""
    if d >= 256:
        return 64, 32, 8
    return 32, 16, 4


_pairs_cache: Dict[Tuple[int, str], torch.Tensor] = {}


def _pairs(nb: int, device: torch.device) -> torch.Tensor:
    """The upper-triangular tile pairs (bi <= bj) of an nb x nb tiling, as an int32 (P, 2) tensor on ``device``."""
    key = (nb, str(device))
    t = _pairs_cache.get(key)
    if t is None:
        idx = torch.triu_indices(nb, nb)
        t = idx.T.contiguous().to(device=device, dtype=torch.int32)
        _pairs_cache[key] = t
    return t


def update(x: torch.Tensor, shift: torch.Tensor, total: torch.Tensor, gram: torch.Tensor) -> None:
    """Add the rows of ``x`` to ``total`` and ``gram`` in place (see the module docstring)."""
    n, d = x.shape
    if n == 0:
        return
    if x.dtype not in _KERNEL_DTYPES:
        x = x.float()  # see _KERNEL_DTYPES
    block_d, block_n, warps = _config(d)
    nb = triton.cdiv(d, block_d)
    pairs = _pairs(nb, x.device)
    _feature_stats_kernel[(pairs.shape[0],)](
        x, shift, total, gram, pairs, n, d, x.stride(0), x.stride(1),
        BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps,
    )
