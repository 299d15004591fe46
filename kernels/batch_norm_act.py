"""Triton kernels for BatchNorm + LeakyReLU (training and eval, forward and backward).

Used by the fused Conv+BN+LeakyReLU and ConvTranspose+BN+ReLU blocks: the
convolution runs elsewhere; these kernels take its output ``y`` (N, C, *),
channels at dim 1, dense in any layout (NCHW and channels_last are the two
that matter) and do the rest.

Memory traffic (n = numel(y), the C-sized vectors stay in cache):

- training forward: ``channel_stats`` reads y once (n), ``scale_shift_act``
  reads y and writes out (2n): 3n, where eager BatchNorm2d + LeakyReLU moves
  5n (statistics n, normalise 2n, activation 2n) and keeps an extra tensor.
- training backward: ``scale_shift_act_backward_reduce`` reads grad and y
  (2n), ``bn_act_backward_apply`` reads them again and writes dy (3n): 5n,
  against 8n eager (activation backward 3n, BatchNorm's reduce 2n and apply
  3n).  The activation's gradient is recomputed from y (one compare) instead
  of being saved by the forward.
- eval: ``scale_shift_act`` (2n) and ``scale_shift_act_backward`` (3n).

So every kernel is a bandwidth kernel: each reads its tensors once, in
memory order, with fp32 (float64 for float64 inputs) maths in registers.

Reductions are deterministic (no atomics) and two-level: a grid of programs
each reduces a run of tiles of the (reduction x channel) space and writes
its partial results to a (programs, C) buffer; one small kernel merges the
partials per channel in float64.  Statistics are accurate when |mean| >>
std (see ``_reduce_kernel``).

Numerics of the activation follow ``torch.nn.functional.leaky_relu``:
forward ``pre > 0 ? pre : pre * slope`` and backward
``pre > 0 ? g : g * slope``, so NaN propagates as in torch and
``negative_slope=0`` is ReLU.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ganfast import _layout
from ganfast._dtypes import compute_dtype
from ganfast.kernels._common import acc_type, flat_offsets, scalar, split_scalar

# -- device functions -----------------------------------------------------------------


@triton.jit
def _gz(g, pre, slope):
    """Gradient through leaky_relu, torch's convention (NaN in pre takes the slope branch)."""
    return tl.where(pre > 0, g, g * slope)


@triton.jit
def _channels(pid_c, channels, BLOCK_C: tl.constexpr, INDEX64: tl.constexpr):
    """Channel indices of block ``pid_c``, shaped [1, 1, BLOCK_C, 1], and their mask."""
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    if INDEX64:
        c = c.to(tl.int64)
    c = c[None, None, :, None]
    return c, c < channels


@triton.jit
def _tile(
    t,
    c,
    cmask,
    outer,
    outer_stride,
    channel_stride,
    inner,
    BLOCK_O1: tl.constexpr,
    BLOCK_O2: tl.constexpr,
    BLOCK_I: tl.constexpr,
    INDEX64: tl.constexpr,
):
    """Offsets and mask of tile ``t`` for channels ``c`` (from ``_channels``).

    The tile covers BLOCK_O = BLOCK_O1 * BLOCK_O2 outer positions, BLOCK_C
    channels and BLOCK_I inner positions, as a [BLOCK_O1, BLOCK_O2, BLOCK_C,
    BLOCK_I] block (see ``_sum_oi`` for why the outer axis is split).  Tiles
    enumerate (outer block, inner block) pairs, inner fastest.
    """
    n_ib = tl.cdiv(inner, BLOCK_I)
    ob = t // n_ib
    ib = t % n_ib
    o1 = ob * (BLOCK_O1 * BLOCK_O2) + tl.arange(0, BLOCK_O1) * BLOCK_O2
    o2 = tl.arange(0, BLOCK_O2)
    i = ib * BLOCK_I + tl.arange(0, BLOCK_I)
    if INDEX64:
        o1 = o1.to(tl.int64)
        i = i.to(tl.int64)
    o = o1[:, None, None, None] + o2[None, :, None, None]
    i = i[None, None, None, :]
    offs = o * outer_stride + c * channel_stride + i
    mask = (o < outer) & cmask & (i < inner)
    return offs, mask


@triton.jit
def _tile_count(t, outer, inner, BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr):
    """Elements per channel in tile ``t`` (the same for every channel)."""
    n_ib = tl.cdiv(inner, BLOCK_I)
    rows = tl.minimum(outer - (t // n_ib) * BLOCK_O, BLOCK_O)
    cols = tl.minimum(inner - (t % n_ib) * BLOCK_I, BLOCK_I)
    return rows * cols


@triton.jit
def _sum_oi(v):
    """[BLOCK_O1, BLOCK_O2, BLOCK_C, BLOCK_I] -> [1, 1, BLOCK_C, 1]: a tile's sum per channel.

    The outer axis is summed in two levels so that no float32 running sum
    takes more than ~sqrt(BLOCK_O) terms even where a reduction is
    sequential (the CPU interpreter's numpy sums a non-contiguous axis in
    order: 1024 terms in a row cost ~1e-5 relative, above the statistics'
    1e-6 goal).  On a GPU tl.sum is a tree either way.
    """
    return tl.sum(tl.sum(tl.sum(v, axis=3), axis=1), axis=0)[None, None, :, None]


# -- kernels ----------------------------------------------------------------------------


@triton.jit
def _reduce_kernel(
    y_ptr,  # *T, dense, seen as (outer, channels, inner) with the strides below
    g_ptr,  # *Tg, incoming gradient, y's layout (WHAT == "grad" only)
    scale_ptr,  # *ACC, (channels,) (WHAT == "grad" only)
    shift_ptr,  # *ACC, (channels,) (WHAT == "grad" only)
    mean_ptr,  # *ACC, (channels,) (WHAT == "grad" only)
    part_ptr,  # *ACC, (3, num_parts, channels): (count, a, b) per program and channel
    num_tiles,
    tiles_per_program,
    num_parts,  # programs along grid axis 0: cdiv(num_tiles, tiles_per_program)
    outer,  # number of outer positions (N for NCHW, N*H*W for channels_last)
    outer_stride,  # = channels * channel_stride for a dense tensor
    channels,
    channel_stride,  # H*W for NCHW, 1 for channels_last
    inner,  # = channel_stride: contiguous elements of one channel in a run
    slope_hi,  # leaky_relu slope (hi + lo, see _common.scalar)
    slope_lo,
    WHAT: tl.constexpr,  # "stats": a = mean - pivot, b = M2; "grad": a = sum gz, b = sum gz * xc
    ACC: tl.constexpr,
    INDEX64: tl.constexpr,
    BLOCK_O1: tl.constexpr,  # the tile: BLOCK_O1 * BLOCK_O2 outer positions (see _sum_oi)
    BLOCK_O2: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_I: tl.constexpr,
):
    # Programs along grid axis 0 (2^31 - 1 allowed) each take a run of
    # consecutive tiles; channel blocks go on axis 1 (65535 on CUDA).
    pid_p = tl.program_id(0)
    pid_c = tl.program_id(1)
    c, cmask = _channels(pid_c, channels, BLOCK_C, INDEX64)
    n_acc = tl.zeros([1, 1, BLOCK_C, 1], dtype=ACC)
    a_acc = tl.zeros([1, 1, BLOCK_C, 1], dtype=ACC)
    b_acc = tl.zeros([1, 1, BLOCK_C, 1], dtype=ACC)
    if WHAT == "stats":
        # Statistics of data shifted by a pivot K = the channel's first
        # element; the merge adds K back in float64.  The shift is what keeps
        # |mean| >> std accurate: unshifted, a tile mean near 1e3 held in
        # float32 carries an absolute error of ~3e-5, which the between-tile
        # term n_i (mean_i - mean)^2 (tile means differ by only ~std /
        # sqrt(n_i)) turns into ~1e-6 relative error in the variance; shifted,
        # the means are O(std) and keep full relative precision.  y - K is
        # exact for y near K (Sterbenz), so no rounding enters before the sums.
        pivot = tl.load(y_ptr + c * channel_stride, mask=cmask, other=0.0).to(ACC)
    else:
        scale = tl.load(scale_ptr + c, mask=cmask, other=0.0).to(ACC)
        shift = tl.load(shift_ptr + c, mask=cmask, other=0.0).to(ACC)
        mean = tl.load(mean_ptr + c, mask=cmask, other=0.0).to(ACC)
        slope = scalar(slope_hi, slope_lo, ACC)
    first = pid_p * tiles_per_program
    for t in range(first, tl.minimum(first + tiles_per_program, num_tiles)):
        offs, mask = _tile(t, c, cmask, outer, outer_stride, channel_stride, inner, BLOCK_O1, BLOCK_O2, BLOCK_I,
                           INDEX64)
        y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(ACC)
        if WHAT == "stats":
            # The tile: exact two-pass statistics, the tile held in registers.
            n = _tile_count(t, outer, inner, BLOCK_O1 * BLOCK_O2, BLOCK_I).to(ACC)
            x = tl.where(mask, y - pivot, 0.0)
            m = _sum_oi(x) / n
            d = tl.where(mask, x - m, 0.0)
            m2 = _sum_oi(d * d)
            # Into the program's running statistics: Chan, Golub & LeVeque's
            # pairwise update (exact arithmetic identity, no cancellation).
            n_new = n_acc + n
            delta = m - a_acc
            a_acc += delta * (n / n_new)
            b_acc += m2 + delta * delta * (n_acc * n / n_new)
            n_acc = n_new
        else:
            g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
            gz = tl.where(mask, _gz(g, (y - mean) * scale + shift, slope), 0.0)
            a_acc += _sum_oi(gz)
            b_acc += _sum_oi(gz * (y - mean))
    part = part_ptr + pid_p.to(tl.int64) * channels + c
    row = num_parts * channels
    if WHAT == "stats":
        tl.store(part, n_acc, mask=cmask)
    tl.store(part + row, a_acc, mask=cmask)
    tl.store(part + 2 * row, b_acc, mask=cmask)


@triton.jit
def _merge_kernel(
    part_ptr,  # *ACC, (3, num_parts, channels) from _reduce_kernel
    y_ptr,  # *T, the pivots (WHAT == "stats")
    out_a_ptr,  # *ACC, (channels,): mean, or sum gz
    out_b_ptr,  # *ACC, (channels,): biased variance, or sum gz * xc
    num_parts,
    count,  # elements per channel (outer * inner)
    channels,
    channel_stride,
    WHAT: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    # Float64 throughout: the partial buffer is small (a few values per
    # program of the reduce kernel), so the merge adds no rounding of its
    # own at no cost; one launch rather than a string of torch ops.
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < channels
    sum_a = tl.zeros([BLOCK_C], dtype=tl.float64)
    sum_b = tl.zeros([BLOCK_C], dtype=tl.float64)
    row = num_parts * channels
    for p0 in range(0, num_parts, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        mask = (p < num_parts)[:, None] & cmask[None, :]
        ptrs = part_ptr + p.to(tl.int64)[:, None] * channels + c[None, :]
        a = tl.load(ptrs + row, mask=mask, other=0.0).to(tl.float64)
        b = tl.load(ptrs + 2 * row, mask=mask, other=0.0).to(tl.float64)
        if WHAT == "stats":
            n = tl.load(ptrs, mask=mask, other=0.0).to(tl.float64)
            sum_a += tl.sum(n * a, axis=0)
            sum_b += tl.sum(b + n * a * a, axis=0)
        else:
            sum_a += tl.sum(a, axis=0)
            sum_b += tl.sum(b, axis=0)
    if WHAT == "stats":
        # M2 = sum M2_i + sum n_i (mean_i - mean)^2 = sum (M2_i + n_i mean_i^2) - n mean^2:
        # the same sum as Chan's two-pass form, and the cancellation is
        # harmless in float64 because the means are relative to the pivot
        # (a factor 1 + ((mean - K) / std)^2 on float64's 1e-16).
        mean_s = sum_a / count
        m2 = sum_b - mean_s * sum_a
        m2 = tl.where(m2 < 0, 0.0, m2)  # rounding only; NaN passes
        pivot = tl.load(y_ptr + c.to(tl.int64) * channel_stride, mask=cmask, other=0.0).to(tl.float64)
        sum_a = pivot + mean_s
        sum_b = m2 / count
    tl.store(out_a_ptr + c, sum_a.to(out_a_ptr.dtype.element_ty), mask=cmask)
    tl.store(out_b_ptr + c, sum_b.to(out_b_ptr.dtype.element_ty), mask=cmask)


@triton.jit
def _apply_kernel(
    y_ptr,  # *T, dense, n elements
    g_ptr,  # *Tg, y's layout (the backward modes)
    out_ptr,  # *T, y's layout: the activation, or dy
    scale_ptr,  # *ACC, (channels,)
    shift_ptr,  # *ACC, (channels,)
    mean_ptr,  # *ACC, (channels,): the centre, pre = (y - mean) * scale + shift
    invstd_ptr,  # *ACC (MODE == "bn_backward")
    gamma_invstd_ptr,  # *ACC (MODE == "bn_backward")
    sum_gz_ptr,  # *ACC (MODE == "bn_backward")
    sum_gz_xc_ptr,  # *ACC (MODE == "bn_backward")
    n,
    channels,
    channel_stride,
    slope_hi,
    slope_lo,
    rcount_hi,  # 1 / elements per channel (MODE == "bn_backward")
    rcount_lo,
    MODE: tl.constexpr,  # "forward" | "backward" (scale and shift are constants) | "bn_backward"
    ACC: tl.constexpr,
    INDEX64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = flat_offsets(n, BLOCK, INDEX64)
    c = (offs // channel_stride) % channels
    y = tl.load(y_ptr + offs, mask=mask, other=0.0).to(ACC)
    scale = tl.load(scale_ptr + c, mask=mask, other=0.0).to(ACC)
    shift = tl.load(shift_ptr + c, mask=mask, other=0.0).to(ACC)
    mean = tl.load(mean_ptr + c, mask=mask, other=0.0).to(ACC)
    slope = scalar(slope_hi, slope_lo, ACC)
    # Centred first: with shift = beta - mean * scale instead, y * scale + shift
    # cancels catastrophically when |mean| >> std (1e-4 relative at 1e3).
    pre = (y - mean) * scale + shift
    if MODE == "forward":
        out = tl.where(pre > 0, pre, pre * slope)
    else:
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
        gz = _gz(g, pre, slope)
        if MODE == "backward":
            out = gz * scale
        else:
            # BatchNorm's training backward, with the batch statistics'
            # own gradients: gamma*invstd * (gz - mean(gz) - xc * invstd^2 * mean(gz * xc)).
            rcount = scalar(rcount_hi, rcount_lo, ACC)
            invstd = tl.load(invstd_ptr + c, mask=mask, other=0.0).to(ACC)
            gi = tl.load(gamma_invstd_ptr + c, mask=mask, other=0.0).to(ACC)
            sum_gz = tl.load(sum_gz_ptr + c, mask=mask, other=0.0).to(ACC)
            sum_gz_xc = tl.load(sum_gz_xc_ptr + c, mask=mask, other=0.0).to(ACC)
            xc = y - mean
            out = gi * (gz - sum_gz * rcount - xc * (invstd * invstd) * (sum_gz_xc * rcount))
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


# -- host functions -------------------------------------------------------------------


class _Geometry(NamedTuple):
    """y seen as (outer, channels, inner): the elements of channel c sit at
    ``o * outer_stride + c * channel_stride + i`` for o < outer, i < inner.

    True of every dense layout: the dimensions with strides below the
    channel stride form one contiguous run of ``inner = channel_stride``
    elements, and those above it are multiples of ``channels *
    channel_stride`` covering ``outer = numel / (channels * inner)`` runs
    (in some order, which a sum does not see).  NCHW: outer = N, inner = H*W;
    channels_last: outer = N*H*W, inner = 1.
    """

    outer: int
    outer_stride: int
    channels: int
    channel_stride: int
    inner: int


class _Config(NamedTuple):
    block: int  # elementwise kernels: elements per program
    warps: int
    block_o: int  # reduce kernel tile [BLOCK_O, BLOCK_C, BLOCK_I], BLOCK_O split as
    block_o2: int  # [BLOCK_O // block_o2, block_o2] (see _sum_oi)
    block_c: int
    block_i: int
    reduce_warps: int
    num_tiles: int
    tiles_per_program: int
    num_parts: int  # reduce programs along the reduction = rows of partial results
    merge_p: int  # merge kernel: partial rows per step, channels per program
    merge_c: int


#: Elements in one reduction tile (held in registers: 16 fp32 values a thread at 8 warps).
_TILE = 4096
#: Contiguous elements wanted in one row of a tile: 256 bytes (bf16) to 512 bytes (fp32),
#: whole cache lines, so that every load is a full-width vector access.
_ROW = 128
#: Reduce programs to aim for: ~8 resident per SM on a 132-SM H100, enough to keep
#: memory busy.  A constant rather than a device query, so that the partial sums,
#: and so the results to the last bit, are the same on every device.
_PROGRAMS = 1024
#: Most tiles one reduce program takes (its running float32 statistics take one
#: rounding per tile), which bounds the partial buffer's rows by numel / (32 * _TILE).
_MAX_TILES_PER_PROGRAM = 32
#: Partial rows the merge kernel takes per step, and channels per merge program.
_MERGE_P = 128
_MERGE_C = 16


def _config(numel: int, geo: _Geometry) -> _Config:
    """Block sizes for every kernel of this module, from the problem's shape alone.

    Reduction tiles: the tile's fastest axis must be the contiguous one in
    memory, or each warp touches a different cache line per element.  The
    contiguous run of a channel's data is ``inner`` elements, and with
    ``inner`` small the neighbouring channels continue it (offset c*inner + i):
    - NCHW (inner = H*W, large): BLOCK_I spans the run (up to the tile), one
      channel per program; a tile is BLOCK_O runs of BLOCK_I contiguous
      elements, each read as full vectors.
    - channels_last (inner = 1): BLOCK_I = 1 and BLOCK_C = 128 channels side
      by side are the contiguous row; BLOCK_O rows are positions (n, h, w).
    - NCHW with small H*W (4x4 late in a discriminator) sits in between:
      BLOCK_I = H*W and a few channels make the row contiguous (c*16 + i).
    One rule gives all three: BLOCK_I = the run (rounded up to a power of 2),
    BLOCK_C = enough channels to make a row of ``_ROW`` elements, BLOCK_O =
    the rest of the tile.  Every element is read exactly once either way.

    Each reduce program then takes a run of consecutive tiles, as many as
    keep the grid near ``_PROGRAMS``: the merge kernel's work (serial per
    channel block) is proportional to the number of programs, not of tiles.
    """
    block, warps = (2048, 8) if numel >= 1 << 20 else (1024, 4)
    block_i = min(triton.next_power_of_2(geo.inner), _TILE)
    block_c = min(triton.next_power_of_2(geo.channels), max(1, _ROW // block_i))
    block_o = min(triton.next_power_of_2(geo.outer), max(1, _TILE // (block_i * block_c)))
    block_o2 = 1 << (block_o.bit_length() // 2)  # ~sqrt(block_o), the larger half
    reduce_warps = 8 if block_o * block_c * block_i >= 2048 else 4
    num_tiles = triton.cdiv(geo.outer, block_o) * triton.cdiv(geo.inner, block_i)
    programs = num_tiles * triton.cdiv(geo.channels, block_c)
    per_program = max(1, min(_MAX_TILES_PER_PROGRAM, triton.cdiv(programs, _PROGRAMS)))
    return _Config(block, warps, block_o, block_o2, block_c, block_i, reduce_warps, num_tiles, per_program,
                   triton.cdiv(num_tiles, per_program), _MERGE_P, _MERGE_C)


def _geometry(y: torch.Tensor) -> _Geometry:
    channels, channel_stride = _layout.channel_geometry(y, 1)
    return _Geometry(y.numel() // (channels * channel_stride), channels * channel_stride, channels,
                     channel_stride, channel_stride)


def _dense(y: torch.Tensor) -> torch.Tensor:
    if y.dim() < 2:
        raise ValueError(f"y: expected (N, C, *) with channels at dim 1, got shape {tuple(y.shape)}")
    if not y.dtype.is_floating_point:
        raise TypeError(f"y: expected a floating-point tensor, got {y.dtype}")
    return _layout.dense(y)


def _vectors(y: torch.Tensor, **named: torch.Tensor):
    """The per-channel arguments, checked ((C,), y's device) and made contiguous."""
    channels = y.shape[1]
    out = []
    for name, t in named.items():
        if not torch.is_tensor(t):
            raise TypeError(f"{name}: expected a tensor of shape ({channels},), got {type(t).__name__}")
        if tuple(t.shape) != (channels,):
            raise ValueError(f"{name}: expected shape ({channels},) (the channels of y), got {tuple(t.shape)}")
        if t.device != y.device:
            raise ValueError(f"{name}: on {t.device}, but y is on {y.device}")
        out.append(t.contiguous())
    return out


def _grad(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if tuple(grad.shape) != tuple(y.shape):
        raise ValueError(f"grad: expected y's shape {tuple(y.shape)}, got {tuple(grad.shape)}")
    if grad.device != y.device:
        raise ValueError(f"grad: on {grad.device}, but y is on {y.device}")
    return _layout.like(grad, y)


def _index64(last_offset: int) -> bool:
    return last_offset >= 2**31


def _reduce(what: str, y: torch.Tensor, g, scale, shift, mean, negative_slope: float):
    """Two-level per-channel reduction of ``y`` (and ``g``): returns two (C,) acc-dtype tensors."""
    geo = _geometry(y)
    cfg = _config(y.numel(), geo)
    acc, acc_tl = compute_dtype(y.dtype), acc_type(y.dtype)
    out_a = torch.empty(geo.channels, dtype=acc, device=y.device)
    out_b = torch.empty_like(out_a)
    count = geo.outer * geo.inner
    if count == 0:
        # No elements: statistics are undefined (as 0/0), sums are zero.
        return (out_a.fill_(float("nan")), out_b.fill_(float("nan"))) if what == "stats" else \
            (out_a.zero_(), out_b.zero_())
    part = torch.empty((3, cfg.num_parts, geo.channels), dtype=acc, device=y.device)
    # Largest offset a (masked) lane can form: the tile overhangs each axis by < its block.
    last = (geo.outer + cfg.block_o) * geo.outer_stride + (geo.channels + cfg.block_c) * geo.channel_stride \
        + geo.inner + cfg.block_i
    placeholder = out_a  # pointer arguments unused by the "stats" variant, never read
    _reduce_kernel[(cfg.num_parts, triton.cdiv(geo.channels, cfg.block_c))](
        y,
        g if g is not None else y,
        scale if scale is not None else placeholder,
        shift if shift is not None else placeholder,
        mean if mean is not None else placeholder,
        part,
        cfg.num_tiles,
        cfg.tiles_per_program,
        cfg.num_parts,
        *geo,
        *split_scalar(negative_slope),
        WHAT=what,
        ACC=acc_tl,
        INDEX64=_index64(last),
        BLOCK_O1=cfg.block_o // cfg.block_o2,
        BLOCK_O2=cfg.block_o2,
        BLOCK_C=cfg.block_c,
        BLOCK_I=cfg.block_i,
        num_warps=cfg.reduce_warps,
    )
    _merge_kernel[(triton.cdiv(geo.channels, cfg.merge_c),)](
        part,
        y,
        out_a,
        out_b,
        cfg.num_parts,
        count,
        geo.channels,
        geo.channel_stride,
        WHAT=what,
        BLOCK_P=cfg.merge_p,
        BLOCK_C=cfg.merge_c,
        num_warps=4,
    )
    return out_a, out_b


def _apply(mode: str, y: torch.Tensor, g, vectors, negative_slope: float, rcount: float = 0.0) -> torch.Tensor:
    """One flat pass over y's storage: ``out`` in y's dtype and layout."""
    out = torch.empty_like(y)
    n = y.numel()
    if n == 0:
        return out
    geo = _geometry(y)
    cfg = _config(n, geo)
    acc_tl = acc_type(y.dtype)
    vectors = list(vectors) + [vectors[0]] * (7 - len(vectors))  # unused slots: placeholders, never read
    _apply_kernel[(triton.cdiv(n, cfg.block),)](
        y,
        g if g is not None else y,
        out,
        *vectors,
        n,
        geo.channels,
        geo.channel_stride,
        *split_scalar(negative_slope),
        *split_scalar(rcount),
        MODE=mode,
        ACC=acc_tl,
        INDEX64=_index64(n + cfg.block),
        BLOCK=cfg.block,
        num_warps=cfg.warps,
    )
    return out


def channel_stats(y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance (divided by N*H*W) of ``y`` (N, C, *).

    Both (C,), float32 (float64 for float64 ``y``).  Accurate to float64
    two-pass statistics of the same values even when |mean| / std is large
    (see ``_reduce_kernel``); deterministic.
    """
    y = _dense(y)
    return _reduce("stats", y, None, None, None, None, 0.0)


def scale_shift_act(
    y: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, negative_slope: float,
    center: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """``leaky_relu((y - center[c]) * scale[c] + shift[c], negative_slope)`` in y's dtype and layout.

    Computed in float32 (float64 for float64 ``y``); ``center`` defaults to 0.
    Training forward: center = mean, scale = gamma * invstd, shift = beta.
    """
    y = _dense(y)
    center = center if center is not None else torch.zeros_like(scale)
    scale, shift, center = _vectors(y, scale=scale, shift=shift, center=center)
    return _apply("forward", y, None, (scale, shift, center), negative_slope)


def scale_shift_act_backward_reduce(
    grad: torch.Tensor,
    y: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    mean: torch.Tensor,
    negative_slope: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per channel: (sum gz, sum gz * (y - mean[c])), gz the gradient through the activation.

    gz = grad where ``(y - mean[c]) * scale[c] + shift[c] > 0``, else grad * negative_slope.
    Both (C,), float32 (float64 for float64 ``y``); deterministic.  The
    BatchNorm parameter gradients follow: dbeta = sum gz, dgamma = sum gz*xc * invstd.
    """
    y = _dense(y)
    grad = _grad(grad, y)
    scale, shift, mean = _vectors(y, scale=scale, shift=shift, mean=mean)
    return _reduce("grad", y, grad, scale, shift, mean, negative_slope)


def bn_act_backward_apply(
    grad: torch.Tensor,
    y: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    mean: torch.Tensor,
    invstd: torch.Tensor,
    gamma_invstd: torch.Tensor,
    sum_gz: torch.Tensor,
    sum_gz_xc: torch.Tensor,
    count: int,
    negative_slope: float,
) -> torch.Tensor:
    """Gradient w.r.t. y of leaky_relu(batch_norm(y, training=True)), in y's dtype and layout.

    dy = gamma_invstd[c] * (gz - sum_gz[c] / count - (y - mean[c]) * invstd[c]^2 * sum_gz_xc[c] / count),
    with ``sum_gz`` and ``sum_gz_xc`` from :func:`scale_shift_act_backward_reduce`
    and ``count`` the elements per channel (N*H*W).  ``gamma_invstd`` is
    gamma * invstd, or invstd without an affine transform.
    """
    y = _dense(y)
    grad = _grad(grad, y)
    vectors = _vectors(y, scale=scale, shift=shift, mean=mean, invstd=invstd, gamma_invstd=gamma_invstd,
                       sum_gz=sum_gz, sum_gz_xc=sum_gz_xc)
    count = float(count)
    if not count > 0:
        raise ValueError(f"count: expected the (positive) number of elements per channel, got {count}")
    return _apply("bn_backward", y, grad, vectors, negative_slope, 1.0 / count)


def scale_shift_act_backward(
    grad: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, negative_slope: float,
    center: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Gradient w.r.t. y of :func:`scale_shift_act` with scale, shift and centre held constant
    (eval mode): ``gz * scale[c]``, in y's dtype and layout."""
    y = _dense(y)
    grad = _grad(grad, y)
    center = center if center is not None else torch.zeros_like(scale)
    scale, shift, center = _vectors(y, scale=scale, shift=shift, center=center)
    return _apply("backward", y, grad, (scale, shift, center), negative_slope)
