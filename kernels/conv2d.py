"""Triton kernels for 2-D convolution and transposed convolution as implicit GEMMs,
with a fused per-output-channel epilogue and optional batch statistics.

GEMM view of a convolution: M = N*Ho*Wo output pixels, N_gemm = C_out, K =
C_in*kh*kw.  An explicit im2col would write and read back an (M, K) matrix,
kh*kw times the input's size; the implicit GEMM gathers each [BLOCK_M,
BLOCK_K] tile of that matrix straight from x (masks stand for the zero
padding).  An element of x is still gathered once per tap and per n-tile,
but those re-reads hit L1/L2 (neighbouring taps and n-tiles run close
together), so DRAM sees x about once and y written exactly once.

What the epilogue saves (n = numel(y)):
- eval-mode Conv + BatchNorm + LeakyReLU: BatchNorm folds into a per-channel
  ``scale``/``shift``, so the whole block is one kernel writing y once (n),
  where the unfused chain writes y, reads it and writes the normalised
  tensor, reads that and writes the activation (5n).
- training-mode Conv + BatchNorm: ``conv2d_stats`` returns the per-channel
  mean and biased variance of y from the accumulator tile still in registers,
  so the separate statistics pass over y (n more reads) disappears.

Transposed convolution is decomposed into stride_h*stride_w sub-pixel
convolutions over the un-dilated input (see ``_axis``): no zero insertion
(which would multiply the MACs by stride_h*stride_w, nearly all by zero) and
no col2im scatter (atomics, nondeterministic sums).  Both operations share one
kernel; a convolution is the single-phase case.

Numerics: float32 accumulation (float64 for float64 inputs); float32 inputs
use IEEE products (``input_precision="ieee"``, not TF32, whose 10-bit
mantissa would miss the 1e-5 target).  The epilogue follows torch: bias is
added to the accumulator, then ``v * scale + shift``, then
``v > 0 ? v : v * slope`` (NaN propagates).
"""

from __future__ import annotations

import contextlib
import numbers
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
import triton
import triton.language as tl

from ganfast import _layout
from ganfast._dtypes import FLOAT_DTYPES, compute_dtype
from ganfast.kernels import INTERPRET
from ganfast.kernels._common import acc_type, dot_upcast, round_bf16, scalar, split_scalar

# -- device functions -----------------------------------------------------------------


@triton.jit
def _axis(phase, size_out, stride, pad, KSIZE: tl.constexpr, TRANSPOSED: tl.constexpr):
    """One spatial axis of one output phase, as affine maps of the phase-local
    output index p (p < count) and the tap index t (t < taps):

        output position  o = o0 + o_step * p
        input position   i = i0 + i_step * p + i_dir * t   (masked to [0, size_in))
        kernel position  k = k0 + k_step * t

    Convolution (one phase): o = p, i = p * stride - pad + t, k = t.

    Transposed convolution, output o = i * stride - pad + k: the phase
    a = (o + pad) mod stride holds the outputs o = stride * q + a - pad, and
    only the taps k = a + stride * t (t = 0 .. ceil((KSIZE - a) / stride) - 1)
    reach them, from the input i = q - t.  q starts at q0 = ceil((pad - a) / stride)
    (the first o >= 0).  So each phase is an ordinary convolution with a
    flipped, strided subset of the kernel.

    Every division has a non-negative numerator: Triton divides integers
    toward zero, the interpreter's numpy toward -inf.  ``count_nz`` is
    max(count, 1), a safe divisor for decoding output indices.
    """
    if TRANSPOSED:
        q0 = (pad - phase + stride - 1) // stride
        count = tl.maximum((size_out + pad - phase + stride - 1) // stride - q0, 0)
        count_nz = tl.maximum(count, 1)
        o0 = stride * q0 + phase - pad
        o_step = stride
        i0 = q0
        i_step = 1
        i_dir = -1
        k0 = phase
        k_step = stride
        taps = (KSIZE - phase + stride - 1) // stride
    else:
        count = size_out
        count_nz = size_out  # validated >= 1 on the host
        o0 = 0
        o_step = 1
        i0 = -pad
        i_step = stride
        i_dir = 1
        k0 = 0
        k_step = 1
        taps = KSIZE
    return count, count_nz, o0, o_step, i0, i_step, i_dir, k0, k_step, taps


@triton.jit
def _channel(ptr, co, cmask, ACC: tl.constexpr):
    """A per-output-channel vector as a [1, BLOCK_N] row in the accumulation dtype."""
    return tl.load(ptr + co, mask=cmask, other=0.0).to(ACC)[None, :]


@triton.jit
def _epilogue(
    acc,
    co,
    cmask,
    b_ptr,
    scale_ptr,
    shift_ptr,
    slope,
    HAS_BIAS: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    HAS_SHIFT: tl.constexpr,
    HAS_ACT: tl.constexpr,
    ACC: tl.constexpr,
):
    """((acc + bias) * scale + shift), then leaky ReLU, per output channel (columns)."""
    v = acc
    if HAS_BIAS:
        v = v + _channel(b_ptr, co, cmask, ACC)
    if HAS_SCALE:
        v = v * _channel(scale_ptr, co, cmask, ACC)
    if HAS_SHIFT:
        v = v + _channel(shift_ptr, co, cmask, ACC)
    if HAS_ACT:
        v = tl.where(v > 0, v, v * slope)  # NaN is not > 0: it takes v * slope and stays NaN
    return v


@triton.jit
def _colsum(v, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, SUM_SPLIT: tl.constexpr):
    """[BLOCK_M, BLOCK_N] -> [BLOCK_N]: column sums in two levels, so that no
    running sum takes more than max(SUM_SPLIT, BLOCK_M / SUM_SPLIT) terms even
    where the reduction is sequential (the CPU interpreter's numpy sums axis 0
    in order: 128 float32 terms in a row cost up to ~8e-6 relative, above
    the statistics' 1e-6 goal).  On a GPU tl.sum is a tree either way."""
    return tl.sum(tl.sum(tl.reshape(v, [BLOCK_M // SUM_SPLIT, SUM_SPLIT, BLOCK_N]), axis=1), axis=0)


@triton.jit
def _tile_stats(
    acc,
    rmask,
    co,
    cmask,
    part_ptr,
    tile,
    plane,
    c_out,
    ACC: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SUM_SPLIT: tl.constexpr,
):
    """Per-channel (count, mean_hi, mean_lo, M2) of the valid rows of the tile.

    Exact two-pass statistics of the tile in registers.  The tile mean is
    kept as hi + lo: hi = sum / count rounded to ACC, lo = mean of the
    residuals acc - hi.  A float32 hi alone near |mean| = 1e3 carries an
    absolute error of ~3e-5, which the merge's between-tile term
    n_i (mean_i - mean)^2 (tile means differ by ~std / sqrt(n_i)) turns into
    ~1e-6 relative error of the variance; the residuals are O(std), and
    where |mean| >> std they are exact (Sterbenz), so hi + lo is accurate to
    float32's precision of std, not of mean.  M2 is summed about the full
    mean hi + lo.  The host merges in float64 (Chan et al.).
    """
    rows = rmask[:, None]
    count = tl.sum(rmask.to(ACC), axis=0)
    div = tl.maximum(count, 1.0)  # an empty tile (a short transposed phase) has count 0
    hi = _colsum(tl.where(rows, acc, 0.0), BLOCK_M, BLOCK_N, SUM_SPLIT) / div
    d = tl.where(rows, acc - hi[None, :], 0.0)
    lo = _colsum(d, BLOCK_M, BLOCK_N, SUM_SPLIT) / div
    e = tl.where(rows, d - lo[None, :], 0.0)
    m2 = _colsum(e * e, BLOCK_M, BLOCK_N, SUM_SPLIT)
    p0 = part_ptr + tile.to(tl.int64) * c_out + co
    p1 = p0 + plane
    p2 = p1 + plane
    p3 = p2 + plane
    tl.store(p0, tl.zeros([BLOCK_N], ACC) + count, mask=cmask)
    tl.store(p1, hi, mask=cmask)
    tl.store(p2, lo, mask=cmask)
    tl.store(p3, m2, mask=cmask)


# -- kernels ----------------------------------------------------------------------------


@triton.jit
def _conv_kernel(
    x_ptr,  # *T, (batch, c_in, h_in, w_in), any strides
    w_ptr,  # *T, seen as (c_out, c_in, KH, KW) through the strides sw_*
    b_ptr,  # *Tb, (c_out,) (HAS_BIAS)
    scale_ptr,  # *float32|float64, (c_out,) (HAS_SCALE)
    shift_ptr,  # *float32|float64, (c_out,) (HAS_SHIFT)
    y_ptr,  # *To, (batch, c_out, h_out, w_out), any strides
    xs_ptr,  # *ACC, (batch, c_in) input scale, strides (ss_n, ss_c) (HAS_IN_SCALE)
    os_ptr,  # *ACC, (batch, c_out) output scale, strides (so_n, so_c) (HAS_OUT_SCALE)
    add_ptr,  # *Ta, broadcast to y through the strides (sa_*), 0 along broadcast dims (HAS_ADD)
    part_ptr,  # *ACC, (4, num_tiles, c_out) partial statistics (STATS)
    batch,
    c_in,
    h_in,
    w_in,
    c_out,
    h_out,
    w_out,
    sx_n,  # strides of x, in elements
    sx_c,
    sx_h,
    sx_w,
    sw_o,  # strides of the weight along (c_out, c_in, KH, KW)
    sw_i,
    sw_h,
    sw_w,
    sy_n,  # strides of y
    sy_c,
    sy_h,
    sy_w,
    ss_n,  # strides of the input scale
    ss_c,
    so_n,  # strides of the output scale
    so_c,
    sa_n,  # strides of the addend (0 where it broadcasts)
    sa_c,
    sa_h,
    sa_w,
    stride_h,
    stride_w,
    pad_h,
    pad_w,
    m_tiles,  # BLOCK_M tiles per phase (of the largest phase)
    plane,  # num_tiles * c_out: distance between the planes of part
    slope_hi,  # leaky ReLU slope (hi + lo, see _common.scalar)
    slope_lo,
    KH: tl.constexpr,
    KW: tl.constexpr,
    TRANSPOSED: tl.constexpr,  # conv_transpose2d: one phase per grid row (axis 1)
    HAS_BIAS: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    HAS_SHIFT: tl.constexpr,
    HAS_ACT: tl.constexpr,
    HAS_IN_SCALE: tl.constexpr,  # x[n, ci] * in_scale[n, ci] as the A tile is gathered (per-sample modulation)
    HAS_OUT_SCALE: tl.constexpr,  # acc[n, co] * out_scale[n, co] first in the epilogue (per-sample demodulation)
    HAS_ADD: tl.constexpr,  # then + addend[n, co, oh, ow] (noise), before the bias/scale/shift/act epilogue
    STATS: tl.constexpr,  # write the tile's partial statistics of acc (before the bias)
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    INDEX64: tl.constexpr,  # 64-bit offsets: a tensor spans more than 2^30 elements
    DOT_F32: tl.constexpr,  # feed tl.dot float32 tiles (bfloat16 under the interpreter: _common.dot_upcast)
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SUM_SPLIT: tl.constexpr,
):
    # Axis 0 enumerates (m-tile, n-tile) with the n-tiles of one m-tile
    # adjacent, so the programs that gather the same x tile run together and
    # share it through L2; axis 1 is the phase (always 0 for a convolution).
    pid = tl.program_id(0)
    phase = tl.program_id(1)
    n_tiles = tl.cdiv(c_out, BLOCK_N)
    pid_m = pid // n_tiles
    pid_n = pid % n_tiles
    if TRANSPOSED:
        phase_h = phase // stride_w
        phase_w = phase % stride_w
    else:
        phase_h = 0
        phase_w = 0
    cnt_h, cnt_h_nz, oh0, oh_step, ih0, ih_step, ih_dir, r0, r_step, taps_h = _axis(
        phase_h, h_out, stride_h, pad_h, KH, TRANSPOSED
    )
    cnt_w, cnt_w_nz, ow0, ow_step, iw0, iw_step, iw_dir, s0, s_step, taps_w = _axis(
        phase_w, w_out, stride_w, pad_w, KW, TRANSPOSED
    )

    # Rows: output pixels (n, p_h, p_w) of this phase.
    rows = tl.arange(0, BLOCK_M)
    if INDEX64:
        rows = pid_m.to(tl.int64) * BLOCK_M + rows
    else:
        rows = pid_m * BLOCK_M + rows
    per_image = cnt_h_nz * cnt_w_nz
    n = rows // per_image
    rem = rows % per_image
    p_h = rem // cnt_w_nz
    p_w = rem % cnt_w_nz
    rmask = (n < batch) & (p_h < cnt_h) & (p_w < cnt_w)
    ih_base = ih0 + ih_step * p_h
    iw_base = iw0 + iw_step * p_w
    x_rows = x_ptr + n * sx_n

    # Columns: output channels.
    co = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cmask = co < c_out
    if INDEX64:
        co = co.to(tl.int64)
    w_cols = w_ptr + co * sw_o

    # K runs over (tap_h, tap_w, ci), ci fastest.  In channels_last (sx_c = 1)
    # a run of BLOCK_K consecutive k is a contiguous run of channels, one or
    # two cache lines per row of the A tile.  In NCHW the same run strides
    # H*W apart (a cache line per element); the locality there is along M
    # (neighbouring output columns read neighbouring input columns), which
    # ordering K as (ci, tap_h, tap_w) would not improve.  Ordering taps
    # outside ci also keeps a first layer (c_in = 3) dense: its K = 3*kh*kw
    # is covered by BLOCK_K chunks across taps instead of one chunk per tap
    # with 3 of BLOCK_K lanes in use.
    k_total = taps_h * taps_w * c_in
    live = tl.max(rmask.to(tl.int32), axis=0)  # 0 only for the padding tiles of a short phase
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC)
    for k0 in range(0, k_total * live, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        kmask = k < k_total
        ci = k % c_in
        tap = k // c_in
        t_w = tap % taps_w  # taps_w >= 1 whenever the loop runs
        t_h = tap // taps_w
        if INDEX64:
            ci = ci.to(tl.int64)
        ih = ih_base[:, None] + ih_dir * t_h[None, :]
        iw = iw_base[:, None] + iw_dir * t_w[None, :]
        amask = rmask[:, None] & kmask[None, :] & (ih >= 0) & (ih < h_in) & (iw >= 0) & (iw < w_in)
        a = tl.load(x_rows[:, None] + (ci * sx_c)[None, :] + ih * sx_h + iw * sx_w, mask=amask, other=0.0)
        if HAS_IN_SCALE:
            # The style scale of modulated_conv2d: multiplied in the accumulation dtype, rounded back to x's dtype
            # for the dot (the per-sample weight tensor of the grouped form is never built).
            sc = tl.load(xs_ptr + n[:, None] * ss_n + (ci * ss_c)[None, :], mask=rmask[:, None] & kmask[None, :],
                         other=0.0)
            a = a.to(ACC) * sc
            if DOT_F32:
                a = round_bf16(a)  # the interpreter's own cast truncates (_common.round_bf16)
            else:
                a = a.to(x_ptr.dtype.element_ty)
        r = r0 + r_step * t_h
        s = s0 + s_step * t_w
        w_off = ci * sw_i + r * sw_h + s * sw_w
        b = tl.load(w_cols[None, :] + w_off[:, None], mask=kmask[:, None] & cmask[None, :], other=0.0)
        if DOT_F32:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision="ieee", out_dtype=ACC)

    if STATS:
        _tile_stats(acc, rmask, co, cmask, part_ptr, phase * m_tiles + pid_m, plane, c_out, ACC, BLOCK_M, BLOCK_N,
                    SUM_SPLIT)
    slope = scalar(slope_hi, slope_lo, ACC)
    oh = oh0 + oh_step * p_h
    ow = ow0 + ow_step * p_w
    omask = rmask[:, None] & cmask[None, :]
    if HAS_OUT_SCALE:
        acc = acc * tl.load(os_ptr + n[:, None] * so_n + (co * so_c)[None, :], mask=omask, other=0.0).to(ACC)
    if HAS_ADD:
        a_off = (n * sa_n + oh * sa_h + ow * sa_w)[:, None] + (co * sa_c)[None, :]
        acc = acc + tl.load(add_ptr + a_off, mask=omask, other=0.0).to(ACC)
    v = _epilogue(acc, co, cmask, b_ptr, scale_ptr, shift_ptr, slope, HAS_BIAS, HAS_SCALE, HAS_SHIFT, HAS_ACT, ACC)
    y_off = (n * sy_n + oh * sy_h + ow * sy_w)[:, None] + (co * sy_c)[None, :]
    tl.store(y_ptr + y_off, v.to(y_ptr.dtype.element_ty), mask=omask)


# -- host functions -------------------------------------------------------------------


class _Config(NamedTuple):
    block_m: int
    block_n: int
    block_k: int
    warps: int
    stages: int


def _config(m: int, n: int, k: int, dtype: torch.dtype, index64: bool = False) -> _Config:
    """Block sizes for an (m, n, k) implicit GEMM with ``dtype`` inputs.

    tl.dot needs every block dimension >= 16.  BLOCK_N covers C_out up to 128
    (GAN layers have 64..512 channels; one n-tile per m-tile for the narrow
    ones).  BLOCK_K: 64 for 16-bit inputs (128-byte rows of the A tile), 32
    for float32, 16 for float64 (register pressure; float64 dots run on FMA
    units, as do IEEE float32 ones).  Small problems shrink the tile to the
    problem instead of computing masked lanes.
    """
    itemsize = dtype.itemsize
    block_m = min(max(triton.next_power_of_2(m), 16), 128)
    block_n = min(max(triton.next_power_of_2(n), 16), 128)
    block_k = {2: 64, 4: 32}.get(itemsize, 16)
    if itemsize == 8:
        block_m, block_n = min(block_m, 64), min(block_n, 64)
    elif itemsize == 4:
        # IEEE float32 dots run on FMA units with both operands in registers: a 128 x 128
        # tile spills on sm_80 and sm_90 (python -m ganfast.kernels.aot --filter conv2d)
        block_m = min(block_m, 64)
    if index64:
        # 64-bit offsets double the registers of every gathered A-tile element's address
        # arithmetic: the tiles above spill kilobytes a thread with them (transposed NCHW
        # layers worst), these do not (python -m ganfast.kernels.aot --filter conv2d)
        block_m = min(block_m, 32)
        block_k = min(block_k, 32 if itemsize == 2 else 16)
        if itemsize > 2:
            block_n = min(block_n, 64)
    block_k = min(block_k, max(triton.next_power_of_2(k), 16))
    warps = 8 if block_m * block_n >= 128 * 128 else 4
    stages = 3 if itemsize == 2 else 2
    return _Config(block_m, block_n, block_k, warps, stages)


_DTYPES = FLOAT_DTYPES
#: Tensors spanning more elements than this get 64-bit offsets.  2^30, not
#: 2^31: masked lanes (padding rows, the last partial tile) compute offsets
#: a little beyond the tensor, which must not wrap either.
_INDEX32_LIMIT = 1 << 30

IntPair = Union[int, Sequence[int]]


#: The layout of the output for input ``x`` (channels_last in, channels_last out).
memory_format = _layout.memory_format_of


# The kernels' own argument checks ("name: expected ...") are this module's tested interface
# for callers that skip the op layer; the op layer's twin is ganfast._checks.check_pair.
def _pair(value: IntPair, name: str) -> Tuple[int, int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_tensor(t, name: str, x: torch.Tensor, shape: Tuple[int, ...], dtypes) -> torch.Tensor:
    if not torch.is_tensor(t):
        raise TypeError(f"{name}: expected a tensor of shape {shape}, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(t.shape)}")
    if t.dtype not in dtypes:
        raise TypeError(f"{name}: expected dtype {' or '.join(map(str, dtypes))}, got {t.dtype}")
    if t.device != x.device:
        raise ValueError(f"{name}: on {t.device}, but x is on {x.device}")
    return t


def _extent(t: torch.Tensor) -> int:
    """1 + the largest element offset of ``t`` (its storage span)."""
    return 1 + sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()) if size > 0)


class _Problem(NamedTuple):
    x: torch.Tensor
    weight: torch.Tensor
    w_strides: Tuple[int, int, int, int]  # along (c_out, c_in, kh, kw)
    c_out: int
    kernel: Tuple[int, int]
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    out_size: Tuple[int, int]


def _problem(x, weight, stride, padding, output_padding, transposed: bool) -> _Problem:
    """Checks x, weight and the geometry; returns them with the output size."""
    op = "conv_transpose2d" if transposed else "conv2d"
    if not torch.is_tensor(x):
        raise TypeError(f"x: expected a tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x: expected a 4-D (N, C_in, H, W) tensor, got shape {tuple(x.shape)}")
    if x.dtype not in _DTYPES:
        raise TypeError(f"x: expected float16, bfloat16, float32 or float64, got {x.dtype}")
    if x.device.type != "cuda" and not (INTERPRET and x.device.type == "cpu"):
        raise ValueError(
            f"x: on {x.device}; the Triton kernels run on CUDA devices, or on the CPU under TRITON_INTERPRET=1"
        )
    if not torch.is_tensor(weight):
        raise TypeError(f"weight: expected a tensor, got {type(weight).__name__}")
    layout = "(C_in, C_out, kh, kw)" if transposed else "(C_out, C_in, kh, kw)"
    if weight.dim() != 4:
        raise ValueError(f"weight: expected a 4-D {layout} tensor, got shape {tuple(weight.shape)}")
    if weight.dtype != x.dtype:
        raise TypeError(f"weight: dtype {weight.dtype} differs from x's {x.dtype}")
    if weight.device != x.device:
        raise ValueError(f"weight: on {weight.device}, but x is on {x.device}")
    c_in = x.shape[1]
    w_in = weight.shape[0] if transposed else weight.shape[1]
    if w_in != c_in:
        raise ValueError(
            f"weight: shape {tuple(weight.shape)} is {layout} with C_in = {w_in}, but x has {c_in} channels "
            f"(groups other than 1 are not supported)"
        )
    kernel = (weight.shape[2], weight.shape[3])
    if not all(1 <= k <= 7 for k in kernel):
        raise ValueError(f"weight: kernel size {kernel} is outside the supported 1..7")
    stride = _pair(stride, "stride")
    padding = _pair(padding, "padding")
    max_stride = 4 if transposed else None
    if any(s < 1 or (max_stride is not None and s > max_stride) for s in stride):
        allowed = "1..4" if transposed else ">= 1"
        raise ValueError(f"stride: {stride} is outside the supported {allowed} for {op}")
    if any(p < 0 for p in padding):
        raise ValueError(f"padding: {padding} must be >= 0")
    h, w = x.shape[2], x.shape[3]
    if transposed:
        output_padding = _pair(output_padding, "output_padding")
        if any(not 0 <= op_ < s for op_, s in zip(output_padding, stride)):
            raise ValueError(f"output_padding: {output_padding} must be >= 0 and smaller than stride {stride}")
        out = tuple((i - 1) * s - 2 * p + k + op_ for i, s, p, k, op_ in zip((h, w), stride, padding, kernel,
                                                                               output_padding))
        c_out = weight.shape[1]
        w_strides = (weight.stride(1), weight.stride(0), weight.stride(2), weight.stride(3))
    else:
        out = tuple((i + 2 * p - k) // s + 1 for i, s, p, k in zip((h, w), stride, padding, kernel))
        c_out = weight.shape[0]
        w_strides = tuple(weight.stride())
    if h < 1 or w < 1 or out[0] < 1 or out[1] < 1:
        raise ValueError(
            f"x: input size {(h, w)} with kernel {kernel}, stride {stride} and padding {padding} "
            f"gives an empty output {out}"
        )
    return _Problem(x, weight, w_strides, c_out, kernel, stride, padding, out)


def _run(
    prob: _Problem,
    transposed: bool,
    bias: Optional[torch.Tensor],
    scale: Optional[torch.Tensor],
    shift: Optional[torch.Tensor],
    negative_slope: Optional[float],
    out_dtype: Optional[torch.dtype],
    stats: bool,
    in_scale: Optional[torch.Tensor] = None,
    out_scale: Optional[torch.Tensor] = None,
    addend: Optional[torch.Tensor] = None,
):
    """Allocates y (and the partial statistics), launches; returns (y, part)."""
    x, c_out = prob.x, prob.c_out
    acc_dtypes = (compute_dtype(x.dtype),)
    if in_scale is not None:
        in_scale = _check_tensor(in_scale, "in_scale", x, (x.shape[0], x.shape[1]), acc_dtypes)
    if out_scale is not None:
        out_scale = _check_tensor(out_scale, "out_scale", x, (x.shape[0], c_out), acc_dtypes)
    per_sample = in_scale is not None or out_scale is not None or addend is not None
    if stats and per_sample:
        raise ValueError("in_scale, out_scale, addend: the statistics are of the plain convolution; pass none of "
                         "them with stats")
    if per_sample and (scale is not None or shift is not None or negative_slope is not None):
        # Both epilogues at once spill registers on the largest tiles (ganfast.kernels.aot); no layer needs it.
        raise ValueError("in_scale, out_scale, addend: not combined with scale, shift or negative_slope (apply "
                         "them after the convolution)")
    if bias is not None:
        bias = _check_tensor(bias, "bias", x, (c_out,), _DTYPES).contiguous()
    if scale is not None:
        scale = _check_tensor(scale, "scale", x, (c_out,), (torch.float32, torch.float64)).contiguous()
    if shift is not None:
        shift = _check_tensor(shift, "shift", x, (c_out,), (torch.float32, torch.float64)).contiguous()
    if negative_slope is not None and (
        isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real)
    ):
        raise TypeError(f"negative_slope: expected a number or None, got {negative_slope!r}")
    if out_dtype is None:
        out_dtype = x.dtype
    elif out_dtype not in _DTYPES:
        raise TypeError(f"out_dtype: expected float16, bfloat16, float32 or float64, got {out_dtype}")

    batch, c_in, h_in, w_in = x.shape
    h_out, w_out = prob.out_size
    kh, kw = prob.kernel
    y = torch.empty((batch, c_out, h_out, w_out), dtype=out_dtype, device=x.device, memory_format=memory_format(x))
    acc_dtype = compute_dtype(x.dtype)
    if addend is not None:
        if not torch.is_tensor(addend) or addend.dtype not in _DTYPES:
            raise TypeError(f"addend: expected a float tensor broadcastable to {tuple(y.shape)}, got "
                            f"{getattr(addend, 'dtype', type(addend).__name__)}")
        if addend.device != x.device:
            raise ValueError(f"addend: on {addend.device}, but x is on {x.device}")
        try:
            addend = addend.expand(y.shape)  # stride 0 along the broadcast dimensions
        except RuntimeError:
            raise ValueError(f"addend: shape {tuple(addend.shape)} does not broadcast to the output's "
                             f"{tuple(y.shape)}") from None

    if transposed:
        sh, sw = prob.stride
        phases = sh * sw
        m = batch * triton.cdiv(h_out, sh) * triton.cdiv(w_out, sw)  # the largest phase
        k = c_in * triton.cdiv(kh, sh) * triton.cdiv(kw, sw)
    else:
        phases = 1
        m = batch * h_out * w_out
        k = c_in * kh * kw
    def needs_index64(block_m: int) -> bool:  # offsets into x, y, the weight or the stats partials past 2^30
        extents = [_extent(t) for t in (x, y, prob.weight, in_scale, out_scale, addend) if t is not None]
        return max(*extents, 4 * phases * triton.cdiv(m, block_m) * c_out) > _INDEX32_LIMIT

    cfg = _config(m, c_out, k, x.dtype)
    if needs_index64(cfg.block_m):
        cfg = _config(m, c_out, k, x.dtype, index64=True)
    m_tiles = triton.cdiv(m, cfg.block_m)
    n_tiles = triton.cdiv(c_out, cfg.block_n)
    if m_tiles * n_tiles >= 2**31:
        raise ValueError(f"x: {m} output pixels x {c_out} channels need more programs than a grid axis holds")
    part = torch.empty((4, phases * m_tiles, c_out), dtype=acc_dtype, device=x.device) if stats else None
    if y.numel() == 0:
        return y, part
    index64 = needs_index64(cfg.block_m)
    placeholder = x  # pointer argument for a disabled input, never read
    # Triton launches on the current CUDA device, which need not be x's.
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        _conv_kernel[(m_tiles * n_tiles, phases)](
            x,
            prob.weight,
            bias if bias is not None else placeholder,
            scale if scale is not None else placeholder,
            shift if shift is not None else placeholder,
            y,
            in_scale if in_scale is not None else placeholder,
            out_scale if out_scale is not None else placeholder,
            addend if addend is not None else placeholder,
            part if part is not None else placeholder,
            batch, c_in, h_in, w_in, c_out, h_out, w_out,  # the kernel's size arguments, in its order
            *x.stride(),
            *prob.w_strides,
            *y.stride(),
            *(in_scale.stride() if in_scale is not None else (0, 0)),
            *(out_scale.stride() if out_scale is not None else (0, 0)),
            *(addend.stride() if addend is not None else (0, 0, 0, 0)),
            *prob.stride,
            *prob.padding,
            m_tiles,
            phases * m_tiles * c_out,
            *split_scalar(negative_slope if negative_slope is not None else 0.0),
            KH=kh,
            KW=kw,
            TRANSPOSED=transposed,
            HAS_BIAS=bias is not None,
            HAS_SCALE=scale is not None,
            HAS_SHIFT=shift is not None,
            HAS_ACT=negative_slope is not None,
            HAS_IN_SCALE=in_scale is not None,
            HAS_OUT_SCALE=out_scale is not None,
            HAS_ADD=addend is not None,
            STATS=stats,
            ACC=acc_type(x.dtype),
            INDEX64=index64,
            DOT_F32=dot_upcast(x.dtype),  # see _common.dot_upcast
            BLOCK_M=cfg.block_m,
            BLOCK_N=cfg.block_n,
            BLOCK_K=cfg.block_k,
            SUM_SPLIT=min(16, cfg.block_m),
            num_warps=cfg.warps,
            num_stages=cfg.stages,
        )
    return y, part


def _merge(part: torch.Tensor, bias: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance from the (4, tiles, C) partials, in float64.

    Chan et al.'s parallel formula: mean = sum n_i m_i / n,
    M2 = sum M2_i + sum n_i (m_i - mean)^2.  The partials describe the
    accumulator before the bias, which shifts the mean and not the variance.
    """
    count, hi, lo, m2 = part.to(torch.float64).unbind(0)
    tile_mean = hi + lo
    n = count.sum(0)
    mean = (count * tile_mean).sum(0) / n
    var = (m2.sum(0) + (count * (tile_mean - mean) ** 2).sum(0)) / n
    if bias is not None:
        mean = mean + bias.to(torch.float64)
    return mean.to(part.dtype), var.to(part.dtype)


def _stats(y: torch.Tensor, part: torch.Tensor, bias: Optional[torch.Tensor]):
    if y.numel() == 0:  # an empty batch: no statistics
        nan = torch.full((y.shape[1],), float("nan"), dtype=part.dtype, device=y.device)
        return y, nan, nan.clone()
    mean, var = _merge(part, bias)
    return y, mean, var


def _conv(x, weight, bias, stride, padding, output_padding, transposed: bool, scale=None, shift=None,
          negative_slope=None, out_dtype=None, stats: bool = False, in_scale=None, out_scale=None, addend=None):
    """Every public function below: checks, one launch, and the statistics when asked for."""
    prob = _problem(x, weight, stride, padding, output_padding, transposed=transposed)
    y, part = _run(prob, transposed, bias, scale, shift, negative_slope, out_dtype, stats, in_scale, out_scale,
                   addend)
    return _stats(y, part, bias) if stats else y


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride: IntPair = (1, 1),
           padding: IntPair = (0, 0), scale: Optional[torch.Tensor] = None, shift: Optional[torch.Tensor] = None,
           negative_slope: Optional[float] = None, out_dtype: Optional[torch.dtype] = None, *,
           in_scale: Optional[torch.Tensor] = None, out_scale: Optional[torch.Tensor] = None,
           addend: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (groups 1, dilation 1,
    kernel 1..7), then per output channel ``v * scale + shift`` (either may
    be None: 1 and 0) and, when ``negative_slope`` is not None,
    ``v > 0 ? v : v * negative_slope``.

    ``scale`` and ``shift`` are float32 or float64 (C_out,) tensors.  The
    result has ``out_dtype`` (default: x's) and x's layout (``memory_format``).

    Per-sample scales (modulated_conv2d, Karras et al. 2020 sec. 2.2 in its
    input/output-scale form): ``in_scale`` (N, C_in) multiplies x's channels
    as the kernel reads them (``conv(x * in_scale, weight)``, the product
    rounded to x's dtype before the dot), ``out_scale`` (N, C_out)
    multiplies the accumulator, then ``addend`` (broadcastable to the
    output, any float dtype: the noise) is added; all before ``bias``.  The
    scales are in the accumulation dtype (float32; float64 for float64 x).

    Raises:
        ValueError: ``in_scale``/``out_scale``/``addend`` together with
            ``scale``, ``shift`` or ``negative_slope``; a scale of the wrong
            shape; an addend that does not broadcast to the output.
        TypeError: a scale not in the accumulation dtype.
    """
    return _conv(x, weight, bias, stride, padding, None, False, scale, shift, negative_slope, out_dtype,
                 in_scale=in_scale, out_scale=out_scale, addend=addend)


def conv2d_stats(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                 stride: IntPair = (1, 1), padding: IntPair = (0, 0)
                 ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, mean, var)``: ``y = F.conv2d(x, weight, bias, stride, padding)``
    and its per-channel mean and biased variance over (N, H, W), in float32
    (float64 for float64 x), computed from the float32/float64 accumulator,
    not from the rounded y."""
    return _conv(x, weight, bias, stride, padding, None, False, stats=True)


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                     stride: IntPair = (1, 1), padding: IntPair = (0, 0), output_padding: IntPair = (0, 0),
                     scale: Optional[torch.Tensor] = None, shift: Optional[torch.Tensor] = None,
                     negative_slope: Optional[float] = None, *, in_scale: Optional[torch.Tensor] = None,
                     out_scale: Optional[torch.Tensor] = None, addend: Optional[torch.Tensor] = None,
                     out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)``
    (weight (C_in, C_out, kh, kw), groups 1, dilation 1, kernel 1..7, stride
    1..4), with the same optional epilogue, per-sample scales and
    ``out_dtype`` as :func:`conv2d`."""
    return _conv(x, weight, bias, stride, padding, output_padding, True, scale, shift, negative_slope, out_dtype,
                 in_scale=in_scale, out_scale=out_scale, addend=addend)


def conv_transpose2d_stats(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                           stride: IntPair = (1, 1), padding: IntPair = (0, 0), output_padding: IntPair = (0, 0)
                           ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(y, mean, var)`` for :func:`conv_transpose2d`, as :func:`conv2d_stats`."""
    return _conv(x, weight, bias, stride, padding, output_padding, True, stats=True)
