"""Triton kernels for ``minibatch_stddev`` (ProGAN's layer, StyleGAN2's grouping).

Memory traffic.  For x of N*C*H*W elements of ``s`` bytes and F appended
channels, the layer must read x once and write the output once:
``(2*N*C + N*F) * H*W * s`` bytes.  StyleGAN2's eager form makes seven passes
(reshape-mean, subtract, square, mean, add+sqrt, mean, repeat, cat), several
over x-sized float32 temporaries; its backward is autograd through all of
them.  Here:

forward   ``_stats_kernel``: one read of x, with the copy into the output's
          first C channels fused in (the concat), and per-program partial
          sums of the group standard deviation; then ``_fill_kernel`` sums
          the partials in a fixed order and writes the F statistic channels
          (N*F*H*W elements: 1/c of the traffic, c = C/F).
backward  ``_grad_sum_kernel`` sums the incoming gradient of the F appended
          channels per group (again 1/c of the traffic, in partials); then
          ``_backward_kernel``, the one pass over x: reads x and the gradient
          of the copied channels, recomputes the group mean and standard
          deviation, and writes dx = grad + gs * (x - mean) / (G*c*H*W * sd).

Why two launches per direction rather than one: the statistic is a reduction
over G*c*H*W elements per group (8M at 64x64x512, batch 16) that must finish
before any output channel can be written.  One program per group would leave
an H100 with 4 busy SMs; a grid split over the reduction needs either atomics
(non-deterministic, or an election whose memory ordering could not be
verified without a GPU) or a second, small launch.  The second launch reads
only the partials and the F extra channels.

Every program owns a fixed slice of positions and reduces it in a fixed
order; partials are combined in a fixed order: results are deterministic.
Maths in float32 (float64 for float64 inputs).  All tensors are addressed
through explicit strides (any layout; expanded gradients with stride 0 too).
The G samples of one position are loaded together as a [GB, BLOCK] tile
(GB = G rounded up to a power of two, masked), so the variance is a two-pass
(mean, then squared deviations) computation in registers.
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from ganfast._dtypes import compute_dtype
from ganfast.kernels._common import acc_type, scalar, split_scalar

# -- device functions -----------------------------------------------------------------


@triton.jit
def _tile_offsets(
    p,  # [BLOCK] positions in 0 .. c*H*W of the channel split f
    f,  # channel split
    c,  # channels per split
    HW,
    W,
    s_c,  # channel, row and column strides of the tensor addressed
    s_h,
    s_w,
    INDEX64: tl.constexpr,
    FLAT: tl.constexpr,  # strides are (H*W, W, 1): the offset is f*c*H*W + p, no divisions
):
    """Offsets (without the sample term) of positions ``p`` of split ``f``."""
    if FLAT:
        base = f * c
        if INDEX64:
            base = base.to(tl.int64)
            p = p.to(tl.int64)
        return base * HW + p
    ci = p // HW
    hw = p % HW
    h = hw // W
    w = hw % W
    ch = f * c + ci
    if INDEX64:
        ch = ch.to(tl.int64)
        h = h.to(tl.int64)
        w = w.to(tl.int64)
    return ch * s_c + h * s_h + w * s_w


@triton.jit
def _pixel_offsets(q, W, s_h, s_w, INDEX64: tl.constexpr, FLAT: tl.constexpr):
    """Offsets of pixels ``q`` (0 .. H*W) within one channel; FLAT: strides (W, 1)."""
    if FLAT:
        if INDEX64:
            q = q.to(tl.int64)
        return q
    h = q // W
    w = q % W
    if INDEX64:
        h = h.to(tl.int64)
        w = w.to(tl.int64)
    return h * s_h + w * s_w


@triton.jit
def _program(per_split, F):
    """This program's (m, f, m * F + f, slice): its group m, channel split f and slice of the
    ``per_split`` programs that share one (group, split); every kernel below is laid out so."""
    pid = tl.program_id(0)
    mf = pid // per_split
    return mf // F, mf % F, mf, pid % per_split


@triton.jit
def _stat_channel(C, f, INDEX64: tl.constexpr):
    """The output channel holding split f's statistic (C + f)."""
    ch = C + f
    if INDEX64:
        ch = ch.to(tl.int64)
    return ch


@triton.jit
def _samples(m, n, G, GB: tl.constexpr, INDEX64: tl.constexpr):
    """Sample indices g*n + m of group m (sample i is in group i mod n), and their mask."""
    g = tl.arange(0, GB)
    gmask = g < G
    i = g * n + m
    if INDEX64:
        i = i.to(tl.int64)
    return i, gmask


@triton.jit
def _group_stats(v, mask, G, eps, GB: tl.constexpr):
    """Deviation from the group mean and the standard deviation, over axis 0 of a [GB, BLOCK] tile.

    As the reference, the values are first shifted by the group's first
    sample (row 0), so a deviation's rounding error scales with the group's
    spread, not with |x|.
    """
    first = (tl.arange(0, GB) == 0)[:, None]
    d = tl.where(mask, v - tl.sum(tl.where(first, v, 0.0), axis=0)[None, :], 0.0)
    mean = tl.sum(d, axis=0) / G
    dev = tl.where(mask, d - mean[None, :], 0.0)
    var = tl.sum(dev * dev, axis=0) / G
    return dev, tl.sqrt(var + eps)


# -- kernels ----------------------------------------------------------------------------


@triton.jit
def _stats_kernel(
    x_ptr,  # *T, (N, C, H, W), any strides
    out_ptr,  # *T, (N, C + F, H, W), any strides: x is copied into channels [0, C)
    part_ptr,  # *ACC, (n * F, S): partial sums of the standard deviation
    n,  # groups (N / G)
    F,  # channel splits (num_channels)
    c,  # channels per split (C / F)
    HW,
    W,
    G,  # group size
    S,  # programs per (group, split)
    CHUNK,  # positions per program, a multiple of BLOCK
    sx_n, sx_c, sx_h, sx_w,
    so_n, so_c, so_h, so_w,
    eps_hi,  # eps as hi + lo float32s (see _common.scalar)
    eps_lo,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    GB: tl.constexpr,  # G rounded up to a power of two
    BLOCK: tl.constexpr,  # positions per tile
    INDEX64: tl.constexpr,
    FLAT_X: tl.constexpr,  # x's (C, H, W) strides are (H*W, W, 1)
    FLAT_O: tl.constexpr,  # out's are
):
    m, f, mf, s = _program(S, F)
    eps = scalar(eps_hi, eps_lo, ACC)
    P = c * HW
    i, gmask = _samples(m, n, G, GB, INDEX64)
    x_rows = i * sx_n
    o_rows = i * so_n
    acc = tl.zeros((BLOCK,), dtype=ACC)
    start = s * CHUNK
    for p0 in range(start, start + CHUNK, BLOCK):
        p = p0 + tl.arange(0, BLOCK)
        pmask = p < P
        mask = gmask[:, None] & pmask[None, :]
        xo = _tile_offsets(p, f, c, HW, W, sx_c, sx_h, sx_w, INDEX64, FLAT_X)
        oo = _tile_offsets(p, f, c, HW, W, so_c, so_h, so_w, INDEX64, FLAT_O)
        raw = tl.load(x_ptr + x_rows[:, None] + xo[None, :], mask=mask, other=0.0)
        tl.store(out_ptr + o_rows[:, None] + oo[None, :], raw, mask=mask)  # the concat
        _, sd = _group_stats(raw.to(ACC), mask, G, eps, GB)
        acc += tl.where(pmask, sd, 0.0)
    tl.store(part_ptr + mf * S + s, tl.sum(acc, axis=0))


@triton.jit
def _sum_partials(part_ptr, row, S, PB: tl.constexpr, ACC: tl.constexpr):
    """sum(part[row, 0:S]) in a fixed order."""
    acc = tl.zeros((PB,), dtype=ACC)
    for k0 in range(0, S, PB):
        k = k0 + tl.arange(0, PB)
        acc += tl.load(part_ptr + row * S + k, mask=k < S, other=0.0)
    return tl.sum(acc, axis=0)


@triton.jit
def _fill_kernel(
    out_ptr,  # *T, (N, C + F, H, W): channels [C, C + F) are written
    part_ptr,  # *ACC, (n * F, S)
    n,
    F,
    C,
    HW,
    W,
    G,
    S,
    R,  # programs per (group, split)
    FILL,  # pixels per program, a multiple of BLOCK
    scale_hi,  # 1 / (c * H * W), as hi + lo float32s
    scale_lo,
    so_n, so_c, so_h, so_w,
    ACC: tl.constexpr,
    GB: tl.constexpr,
    PB: tl.constexpr,  # partials per step of their sum
    BLOCK: tl.constexpr,
    INDEX64: tl.constexpr,
    FLAT_O: tl.constexpr,  # out's (H, W) strides are (W, 1)
):
    m, f, mf, r = _program(R, F)
    std = _sum_partials(part_ptr, mf, S, PB, ACC) * scalar(scale_hi, scale_lo, ACC)
    i, gmask = _samples(m, n, G, GB, INDEX64)
    ch = _stat_channel(C, f, INDEX64)
    rows = i * so_n + ch * so_c
    vals = tl.zeros((GB, BLOCK), dtype=out_ptr.dtype.element_ty) + std.to(out_ptr.dtype.element_ty)
    start = r * FILL
    for q0 in range(start, start + FILL, BLOCK):
        q = q0 + tl.arange(0, BLOCK)
        mask = gmask[:, None] & (q < HW)[None, :]
        qo = _pixel_offsets(q, W, so_h, so_w, INDEX64, FLAT_O)
        tl.store(out_ptr + rows[:, None] + qo[None, :], vals, mask=mask)


@triton.jit
def _grad_sum_kernel(
    g_ptr,  # *T, (N, C + F, H, W) incoming gradient, any strides (stride 0 too)
    part_ptr,  # *ACC, (n * F, S2): partial sums of g over channels [C, C + F)
    n,
    F,
    C,
    HW,
    W,
    G,
    S2,
    CHUNK2,  # pixels per program, a multiple of BLOCK
    sg_n, sg_c, sg_h, sg_w,
    ACC: tl.constexpr,
    GB: tl.constexpr,
    BLOCK: tl.constexpr,
    INDEX64: tl.constexpr,
    FLAT_G: tl.constexpr,  # g's (H, W) strides are (W, 1)
):
    m, f, mf, s = _program(S2, F)
    i, gmask = _samples(m, n, G, GB, INDEX64)
    rows = i * sg_n
    ch = _stat_channel(C, f, INDEX64)
    acc = tl.zeros((GB, BLOCK), dtype=ACC)
    start = s * CHUNK2
    for q0 in range(start, start + CHUNK2, BLOCK):
        q = q0 + tl.arange(0, BLOCK)
        mask = gmask[:, None] & (q < HW)[None, :]
        qo = ch * sg_c + _pixel_offsets(q, W, sg_h, sg_w, INDEX64, FLAT_G)
        acc += tl.load(g_ptr + rows[:, None] + qo[None, :], mask=mask, other=0.0).to(ACC)
    tl.store(part_ptr + mf * S2 + s, tl.sum(tl.sum(acc, axis=1), axis=0))


@triton.jit
def _backward_kernel(
    g_ptr,  # *T, (N, C + F, H, W) incoming gradient, any strides
    x_ptr,  # *T, (N, C, H, W)
    dx_ptr,  # *T, (N, C, H, W)
    part_ptr,  # *ACC, (n * F, S2) from _grad_sum_kernel
    n,
    F,
    c,
    HW,
    W,
    G,
    S,
    CHUNK,
    S2,
    sg_n, sg_c, sg_h, sg_w,
    sx_n, sx_c, sx_h, sx_w,
    sd_n, sd_c, sd_h, sd_w,
    eps_hi,
    eps_lo,
    scale_hi,  # 1 / (G * c * H * W)
    scale_lo,
    ACC: tl.constexpr,
    GB: tl.constexpr,
    PB: tl.constexpr,
    BLOCK: tl.constexpr,
    INDEX64: tl.constexpr,
    FLAT_G: tl.constexpr,  # (C, H, W) strides (H*W, W, 1) for g, x and dx
    FLAT_X: tl.constexpr,
    FLAT_D: tl.constexpr,
):
    m, f, mf, s = _program(S, F)
    eps = scalar(eps_hi, eps_lo, ACC)
    k = _sum_partials(part_ptr, mf, S2, PB, ACC) * scalar(scale_hi, scale_lo, ACC)
    P = c * HW
    i, gmask = _samples(m, n, G, GB, INDEX64)
    g_rows = i * sg_n
    x_rows = i * sx_n
    d_rows = i * sd_n
    start = s * CHUNK
    for p0 in range(start, start + CHUNK, BLOCK):
        p = p0 + tl.arange(0, BLOCK)
        mask = gmask[:, None] & (p < P)[None, :]
        xo = _tile_offsets(p, f, c, HW, W, sx_c, sx_h, sx_w, INDEX64, FLAT_X)
        go = _tile_offsets(p, f, c, HW, W, sg_c, sg_h, sg_w, INDEX64, FLAT_G)
        do = _tile_offsets(p, f, c, HW, W, sd_c, sd_h, sd_w, INDEX64, FLAT_D)
        v = tl.load(x_ptr + x_rows[:, None] + xo[None, :], mask=mask, other=0.0).to(ACC)
        g = tl.load(g_ptr + g_rows[:, None] + go[None, :], mask=mask, other=0.0).to(ACC)
        dev, sd = _group_stats(v, mask, G, eps, GB)
        dx = g + dev * (k / sd)[None, :]
        tl.store(dx_ptr + d_rows[:, None] + do[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask)


# -- host functions -------------------------------------------------------------------

# Elements (G samples x positions) one program of the main passes covers: large
# enough that the partials are few, small enough for thousands of programs at
# the ProGAN shapes (64x64x512 at batch 16: 1024 programs).  Not yet tuned on
# a GPU (bench/RESULTS.md).
_WORK = 1 << 15


def _config(G: int, positions: int) -> Tuple[int, int, int, int]:
    """(GB, BLOCK, CHUNK, num_warps) for groups of G over ``positions`` positions."""
    gb = triton.next_power_of_2(G)
    block = max(16, min(1024, 2048 // gb, triton.next_power_of_2(positions)))
    chunk = max(block, (_WORK // (gb * block)) * block)
    chunk = min(chunk, triton.cdiv(positions, block) * block)
    warps = 4 if gb * block >= 1024 else 1
    return gb, block, chunk, warps


def _partials_block(parts: int) -> int:
    """PB: partial sums taken per step of ``_sum_partials`` for ``parts`` partials."""
    return max(16, min(1024, triton.next_power_of_2(parts)))


def _index64(*tensors: torch.Tensor) -> bool:
    """Whether any offset into these tensors may pass 2^31 (with a tile's margin)."""
    reach = max(sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) for t in tensors)
    return reach + (1 << 16) >= 2**31


def _flat(t: torch.Tensor, dims=(1, 2, 3)) -> bool:
    """Whether ``t``'s strides over ``dims`` are those of a contiguous tensor (size-1 dims ignored)."""
    expected = 1
    for d in reversed(dims):
        if t.shape[d] != 1 and t.stride(d) != expected:
            return False
        expected *= t.shape[d]
    return True


def forward(x: torch.Tensor, out: torch.Tensor, G: int, F: int, eps: float) -> None:
    """Fill ``out`` (N, C + F, H, W), allocated by the caller in any layout."""
    N, C, H, W = x.shape
    n, c, HW = N // G, C // F, H * W
    P = c * HW
    gb, block, chunk, warps = _config(G, P)
    S = triton.cdiv(P, chunk)
    acc = acc_type(x.dtype)
    i64 = _index64(x, out)
    part = torch.empty((n * F, S), dtype=compute_dtype(x.dtype), device=x.device)
    _stats_kernel[(n * F * S,)](
        x, out, part, n, F, c, HW, W, G, S, chunk,
        *x.stride(), *out.stride(), *split_scalar(eps),
        ACC=acc, GB=gb, BLOCK=block, INDEX64=i64, FLAT_X=_flat(x), FLAT_O=_flat(out), num_warps=warps,
    )
    _, fill_block, fill, fill_warps = _config(G, HW)
    R = triton.cdiv(HW, fill)
    pb = _partials_block(S)
    _fill_kernel[(n * F * R,)](
        out, part, n, F, C, HW, W, G, S, R, fill, *split_scalar(1.0 / P), *out.stride(),
        ACC=acc, GB=gb, PB=pb, BLOCK=fill_block, INDEX64=i64, FLAT_O=_flat(out, (2, 3)), num_warps=fill_warps,
    )


def backward(grad: torch.Tensor, x: torch.Tensor, dx: torch.Tensor, G: int, F: int, eps: float) -> None:
    """Fill ``dx`` (N, C, H, W) with the gradient w.r.t. x for incoming ``grad`` (N, C + F, H, W)."""
    N, C, H, W = x.shape
    n, c, HW = N // G, C // F, H * W
    P = c * HW
    acc = acc_type(x.dtype)
    i64 = _index64(grad, x, dx)
    gb, block2, chunk2, warps2 = _config(G, HW)
    S2 = triton.cdiv(HW, chunk2)
    part = torch.empty((n * F, S2), dtype=compute_dtype(x.dtype), device=x.device)
    _grad_sum_kernel[(n * F * S2,)](
        grad, part, n, F, C, HW, W, G, S2, chunk2, *grad.stride(),
        ACC=acc, GB=gb, BLOCK=block2, INDEX64=i64, FLAT_G=_flat(grad, (2, 3)), num_warps=warps2,
    )
    gb, block, chunk, warps = _config(G, P)
    S = triton.cdiv(P, chunk)
    pb = _partials_block(S2)
    _backward_kernel[(n * F * S,)](
        grad, x, dx, part, n, F, c, HW, W, G, S, chunk, S2,
        *grad.stride(), *x.stride(), *dx.stride(), *split_scalar(eps), *split_scalar(1.0 / (G * P)),
        ACC=acc, GB=gb, PB=pb, BLOCK=block, INDEX64=i64,
        FLAT_G=_flat(grad), FLAT_X=_flat(x), FLAT_D=_flat(dx), num_warps=warps,
    )
