"""Triton kernels for ``minibatch_discrimination``'s pairwise part (Salimans et al. 2016).

For M of shape (B, K, D)::

    o[i, b]     = sum_{j != i} exp(-sum_d |M[i, b, d] - M[j, b, d]|)
    dM[i, b, d] = -sum_{j != i} (g[i, b] + g[j, b]) * c_b(i, j) * sign(M[i, b, d] - M[j, b, d])

The arithmetic.  The naive form broadcasts to a (B, B, K, D) tensor: at
B = 1024, K = 100, D = 5 that is 524M elements (1 GB in bf16) written, read
back for the abs and the sum, and again for its backward, while the inputs
(M: 512K elements) and the result (o: 100K) fit in L2 many times over.  The
work itself is B^2 K (3D + 2) flops (~1.7 GFLOP at B = 1024): this op is
compute and latency bound once the broadcast tensor is gone.  So the kernels
tile the (i, j) plane per kernel b like a matmul: a program owns BLOCK_I rows
i of one kernel b and walks all j in BLOCK_J tiles, forming the distances of
the [BLOCK_I, BLOCK_J] tile in registers (a static loop over the D
dimensions, D a compile-time constant: no padding of D = 5 to 8), so memory
is O(B K D) for inputs and outputs only.

The backward recomputes the distances rather than saving the (B, B, K)
matrix of c from the forward.  Its symmetric form (g[i] + g[j]) lets each
program accumulate dM for its own rows only: every j's contribution to row i
is summed by the program that owns i, in a fixed order.  No atomics:
deterministic.  sign(0) is 0, torch's subgradient of |.| at 0 (ties are common
in bfloat16); the diagonal j = i is masked out, never subtracted.

The host permutes M to (K, D, B) storage before the launch (B K D elements:
negligible) so that the vector loads along i and j are contiguous; the
kernels themselves take any strides.  Maths in float32 (float64 for float64
inputs).
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from ganfast.kernels._common import acc_type


@triton.jit
def _distance(m_ptr, rows, cols, rmask, cmask, s_b, s_d, D: tl.constexpr, ACC: tl.constexpr, BLOCK_I: tl.constexpr,
              BLOCK_J: tl.constexpr):
    """The [BLOCK_I, BLOCK_J] tile of L1 distances ||M[i, b] - M[j, b]||_1 (m_ptr points at kernel b)."""
    dist = tl.zeros((BLOCK_I, BLOCK_J), dtype=ACC)
    for d in tl.static_range(D):
        mi = tl.load(m_ptr + rows * s_b + d * s_d, mask=rmask, other=0.0).to(ACC)
        mj = tl.load(m_ptr + cols * s_b + d * s_d, mask=cmask, other=0.0).to(ACC)
        dist += tl.abs(mi[:, None] - mj[None, :])
    return dist


@triton.jit
def _program_rows(m_ptr, B, n_blocks, s_mk, BLOCK_I: tl.constexpr):
    """This program's kernel b, its BLOCK_I rows i (and their mask) and M's pointer at kernel b:
    ``n_blocks`` programs per kernel, both kernels laid out so."""
    pid = tl.program_id(0)
    b = (pid // n_blocks).to(tl.int64)
    rows = (pid % n_blocks) * BLOCK_I + tl.arange(0, BLOCK_I)
    return b, rows, rows < B, m_ptr + b * s_mk


@triton.jit
def _forward_kernel(
    m_ptr,  # *T, (B, K, D), any strides
    o_ptr,  # *T, (B, K), any strides
    B,
    n_blocks,  # cdiv(B, BLOCK_I): programs per kernel b
    s_mb, s_mk, s_md,
    s_ob, s_ok,
    D: tl.constexpr,  # kernel_dim
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    b, rows, rmask, base = _program_rows(m_ptr, B, n_blocks, s_mk, BLOCK_I)
    acc = tl.zeros((BLOCK_I,), dtype=ACC)
    for j0 in range(0, B, BLOCK_J):
        cols = j0 + tl.arange(0, BLOCK_J)
        cmask = cols < B
        dist = _distance(base, rows, cols, rmask, cmask, s_mb, s_md, D, ACC, BLOCK_I, BLOCK_J)
        keep = cmask[None, :] & (rows[:, None] != cols[None, :])
        acc += tl.sum(tl.where(keep, tl.exp(-dist), 0.0), axis=1)
    tl.store(o_ptr + rows * s_ob + b * s_ok, acc.to(o_ptr.dtype.element_ty), mask=rmask)


@triton.jit
def _backward_kernel(
    g_ptr,  # *T, (B, K) incoming gradient, any strides (stride 0 too)
    m_ptr,  # *T, (B, K, D)
    dm_ptr,  # *T, (B, K, D)
    B,
    n_blocks,
    s_gb, s_gk,
    s_mb, s_mk, s_md,
    s_db, s_dk, s_dd,
    D: tl.constexpr,
    DB: tl.constexpr,  # D rounded up to a power of two: the accumulator's width
    ACC: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
):
    b, rows, rmask, base = _program_rows(m_ptr, B, n_blocks, s_mk, BLOCK_I)
    dims = tl.arange(0, DB)
    gi = tl.load(g_ptr + rows * s_gb + b * s_gk, mask=rmask, other=0.0).to(ACC)
    acc = tl.zeros((BLOCK_I, DB), dtype=ACC)
    for j0 in range(0, B, BLOCK_J):
        cols = j0 + tl.arange(0, BLOCK_J)
        cmask = cols < B
        dist = _distance(base, rows, cols, rmask, cmask, s_mb, s_md, D, ACC, BLOCK_I, BLOCK_J)
        gj = tl.load(g_ptr + cols * s_gb + b * s_gk, mask=cmask, other=0.0).to(ACC)
        keep = cmask[None, :] & (rows[:, None] != cols[None, :])
        w = tl.where(keep, (gi[:, None] + gj[None, :]) * tl.exp(-dist), 0.0)
        for d in range(D):  # a loop, not unrolled: unrolled, the D loads stay live across both loops and spill
            mi = tl.load(base + rows * s_mb + d * s_md, mask=rmask, other=0.0).to(ACC)
            mj = tl.load(base + cols * s_mb + d * s_md, mask=cmask, other=0.0).to(ACC)
            diff = mi[:, None] - mj[None, :]
            sgn = tl.where(diff > 0, 1.0, tl.where(diff < 0, -1.0, 0.0))
            part = tl.sum(w * sgn, axis=1)  # [BLOCK_I]: this tile's share of dM[rows, b, d]
            acc -= tl.where(dims[None, :] == d, part[:, None], 0.0)
    out = dm_ptr + rows[:, None] * s_db + b * s_dk + dims[None, :] * s_dd
    tl.store(out, acc.to(dm_ptr.dtype.element_ty), mask=rmask[:, None] & (dims < D)[None, :])


# -- host functions -------------------------------------------------------------------


def _config(B: int) -> Tuple[int, int, int]:
    """(BLOCK_I, BLOCK_J, num_warps).  Row tiles of at most 32, so that B = 64 with 100
    kernels still gives 200 programs; column tiles up to 64.  A [BLOCK_I, BLOCK_J]
    distance tile and the per-dimension terms of the unrolled ``D`` loop stay in
    registers at 16 tile elements a thread (a 64 x 64 tile spilled kilobytes a thread
    on sm_80 and sm_90: ``python -m ganfast.kernels.aot --filter minibatch_discrimination``).
    Not yet tuned for speed on a GPU (bench/RESULTS.md)."""
    bj = max(16, min(64, triton.next_power_of_2(B)))
    bi = max(16, min(32, triton.next_power_of_2(B)))
    return bi, bj, max(2, min(8, bi * bj // 512))


def _kdb(M: torch.Tensor) -> torch.Tensor:
    """M stored as (K, D, B), viewed as (B, K, D): contiguous loads along the batch."""
    return M.permute(1, 2, 0).contiguous().permute(2, 0, 1)


def _check_size(M: torch.Tensor) -> None:
    # The kernels index rows, columns and the grid with 32-bit integers (kernel
    # offsets are 64-bit).  B^2 work per kernel makes B near 2^31 unreachable.
    if M.shape[0] * M.shape[1] * M.shape[2] >= 2**31:
        raise ValueError(f"M must have fewer than 2^31 elements; got shape {tuple(M.shape)}")


def _launch_geometry(M: torch.Tensor):
    """``(M as (K, D, B) storage, grid, B, D, common launch arguments)`` shared by both kernels."""
    _check_size(M)
    B, K, D = M.shape
    bi, bj, warps = _config(B)
    n_blocks = triton.cdiv(B, bi)
    common = dict(D=D, ACC=acc_type(M.dtype), BLOCK_I=bi, BLOCK_J=bj, num_warps=warps)
    return _kdb(M), (n_blocks * K,), B, n_blocks, common


def forward(M: torch.Tensor, o: torch.Tensor) -> None:
    """Fill ``o`` (B, K) with the minibatch features of ``M`` (B, K, D)."""
    M, grid, B, n_blocks, common = _launch_geometry(M)
    _forward_kernel[grid](M, o, B, n_blocks, *M.stride(), *o.stride(), **common)


def backward(grad: torch.Tensor, M: torch.Tensor, dM: torch.Tensor) -> None:
    """Fill ``dM`` (B, K, D) with the gradient w.r.t. ``M`` for incoming ``grad`` (B, K)."""
    M, grid, B, n_blocks, common = _launch_geometry(M)
    _backward_kernel[grid](grad, M, dM, B, n_blocks, *grad.stride(), *M.stride(), *dM.stride(),
                           DB=triton.next_power_of_2(common["D"]), **common)
