"""Triton kernels for ``bias_act``: y = clamp(act(x + b) * gain, -c, c).

Memory traffic is the whole story for this op.  Unfused eager PyTorch reads
and writes the activation once per stage (add bias, activation, gain, clamp:
up to 4 reads + 4 writes of N elements); the fused forward reads x once and
writes y once (2N elements, plus C bias values that stay in cache), and the
fused backward reads g and x and writes dz (3N).  So the kernels are written
for bandwidth: one flat pass over storage in memory order, 16-byte vector
accesses (BLOCK is a multiple of 8 elements per thread), float32 maths in
registers.

Layout: the kernels walk the storage of a dense tensor (any dimension order)
and recover each element's channel as ``(offset // channel_stride) %
channels``; the host functions make the inputs dense first (ganfast._layout).

Numerics match ``ganfast.ref.bias_act`` (the definition), including NaN
propagation: comparisons are written so that NaN falls through to the
branch torch takes.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
import triton
import triton.language as tl

from ganfast import _layout
from ganfast.ref.bias_act import canonical_act, compute_dtype

# -- device functions -----------------------------------------------------------------


@triton.jit
def _sigmoid(z):
    # Stable in both tails: exp never overflows, and for z << 0 the result
    # keeps its relative precision instead of rounding to 0 through 1/(1+inf).
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    return tl.where(z >= 0, r, e * r)


@triton.jit
def _tanh(z):
    # Triton has no portable tanh (libdevice is not available under the CPU
    # interpreter).  (1 - e) / (1 + e) with e = exp(-2|z|) loses relative
    # precision as |z| -> 0 (1 - e cancels), so small |z| uses the odd Taylor
    # series through z^17: at |z| = 0.3 its truncation error is ~1e-13
    # relative, and the exp form's cancellation there is only ~2x.
    a = tl.abs(z)
    e = tl.exp(-2.0 * a)
    big = (1.0 - e) / (1.0 + e)
    s = z * z
    p = 6404582.0 / 10854718875.0
    p = p * s - 929569.0 / 638512875.0
    p = p * s + 21844.0 / 6081075.0
    p = p * s - 1382.0 / 155925.0
    p = p * s + 62.0 / 2835.0
    p = p * s - 17.0 / 315.0
    p = p * s + 2.0 / 15.0
    p = p * s - 1.0 / 3.0
    small = z + z * s * p
    return tl.where(a < 0.3, small, tl.where(z < 0, -big, big))


@triton.jit
def _act(z, alpha, ACT: tl.constexpr):
    if ACT == "linear":
        a = z
    elif ACT == "relu":
        a = tl.where(z < 0, 0.0, z)  # NaN is not < 0: it propagates, as in torch
    elif ACT == "leaky_relu":
        a = tl.where(z > 0, z, z * alpha)
    elif ACT == "tanh":
        a = _tanh(z)
    elif ACT == "sigmoid":
        a = _sigmoid(z)
    else:  # silu
        a = z * _sigmoid(z)
    return a


@triton.jit
def _act_backward(ga, z, a, alpha, ACT: tl.constexpr):
    """ga * act'(z), given a = act(z), computed as torch's backward does:
    a select at the kinks of relu / leaky_relu, a product otherwise, so that
    NaN and inf come out where torch puts them."""
    if ACT == "linear":
        d = ga
    elif ACT == "relu":
        d = tl.where(a <= 0, 0.0, ga)  # threshold_backward on the result
    elif ACT == "leaky_relu":
        d = tl.where(z > 0, ga, ga * alpha)
    elif ACT == "tanh":
        d = ga * (1.0 - a * a)
    elif ACT == "sigmoid":
        d = ga * (a * (1.0 - a))
    else:  # silu
        s = _sigmoid(z)
        d = ga * (s * (1.0 + z * (1.0 - s)))
    return d


@triton.jit
def _scalar(hi, lo, ACC: tl.constexpr):
    # Triton passes Python floats as float32.  A float64 scalar travels as
    # hi + lo (two float32s: 48 significant bits) and is rebuilt here, so the
    # float64 path is exact to ~1e-14 rather than to float32's 1e-7.
    return tl.cast(hi, ACC) + tl.cast(lo, ACC)


@triton.jit
def _load_z(x_ptr, b_ptr, offs, mask, channels, channel_stride, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        c = (offs // channel_stride) % channels
        z += tl.load(b_ptr + c, mask=mask, other=0.0).to(ACC)
    return z


@triton.jit
def _offsets(n, BLOCK: tl.constexpr, INDEX64: tl.constexpr):
    pid = tl.program_id(0)
    if INDEX64:
        start = pid.to(tl.int64) * BLOCK
    else:
        start = pid * BLOCK
    offs = start + tl.arange(0, BLOCK)
    return offs, offs < n


# -- kernels ----------------------------------------------------------------------------


@triton.jit
def _bias_act_fwd_kernel(
    x_ptr,  # *T, dense, n elements
    b_ptr,  # *Tb, channels elements (unused when HAS_BIAS is False)
    y_ptr,  # *T, same layout as x
    n,  # number of elements
    channels,  # size of the bias dimension
    channel_stride,  # stride of the bias dimension, in elements
    alpha_hi,  # leaky_relu slope (hi + lo, see _scalar)
    alpha_lo,
    gain_hi,
    gain_lo,
    clamp_hi,  # used when HAS_CLAMP
    clamp_lo,
    ACT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    INDEX64: tl.constexpr,  # 64-bit offsets when n + BLOCK may exceed 2^31
    BLOCK: tl.constexpr,
):
    offs, mask = _offsets(n, BLOCK, INDEX64)
    alpha = _scalar(alpha_hi, alpha_lo, ACC)
    gain = _scalar(gain_hi, gain_lo, ACC)
    z = _load_z(x_ptr, b_ptr, offs, mask, channels, channel_stride, HAS_BIAS, ACC)
    y = _act(z, alpha, ACT) * gain
    if HAS_CLAMP:
        clamp = _scalar(clamp_hi, clamp_lo, ACC)
        # Comparisons rather than minimum/maximum so that NaN propagates.
        y = tl.where(y > clamp, clamp, tl.where(y < -clamp, -clamp, y))
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bias_act_bwd_kernel(
    g_ptr,  # *T, incoming gradient, same layout as x
    x_ptr,  # *T
    b_ptr,  # *Tb
    dz_ptr,  # *T, gradient w.r.t. x (and w.r.t. z = x + b)
    n,
    channels,
    channel_stride,
    alpha_hi,
    alpha_lo,
    gain_hi,
    gain_lo,
    clamp_hi,
    clamp_lo,
    ACT: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr,
    ACC: tl.constexpr,
    INDEX64: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs, mask = _offsets(n, BLOCK, INDEX64)
    alpha = _scalar(alpha_hi, alpha_lo, ACC)
    gain = _scalar(gain_hi, gain_lo, ACC)
    z = _load_z(x_ptr, b_ptr, offs, mask, channels, channel_stride, HAS_BIAS, ACC)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
    a = _act(z, alpha, ACT)
    if HAS_CLAMP:
        # torch's order: clamp's backward (a select), the gain, the activation's backward.
        clamp = _scalar(clamp_hi, clamp_lo, ACC)
        y0 = a * gain
        g = tl.where((y0 >= -clamp) & (y0 <= clamp), g, 0.0)
    d = _act_backward(g * gain, z, a, alpha, ACT)
    tl.store(dz_ptr + offs, d.to(dz_ptr.dtype.element_ty), mask=mask)


# -- host functions -------------------------------------------------------------------


def _config(n: int) -> Tuple[int, int]:
    """(BLOCK, num_warps) for n elements: 8 elements per thread, 16-byte accesses."""
    if n >= 1 << 20:
        return 2048, 8
    return 1024, 4


def _split(v: float) -> Tuple[float, float]:
    """``v`` as float32 hi + lo (see ``_scalar``)."""
    hi = float(np.float32(v))
    return hi, float(np.float32(v - hi))


def _launch(kernel, out: torch.Tensor, tensors, x: torch.Tensor, bias, act, alpha, gain, clamp, dim) -> None:
    n = x.numel()
    if n == 0:
        return
    block, warps = _config(n)
    channels, channel_stride = _layout.channel_geometry(x, dim)
    acc = tl.float64 if compute_dtype(x.dtype) == torch.float64 else tl.float32
    b = bias if bias is not None else x  # placeholder pointer, never read
    kernel[(triton.cdiv(n, block),)](
        *tensors,
        b,
        out,
        n,
        channels,
        channel_stride,
        *_split(alpha),
        *_split(gain),
        *_split(clamp if clamp is not None else 0.0),
        ACT=canonical_act(act),
        HAS_BIAS=bias is not None,
        HAS_CLAMP=clamp is not None,
        ACC=acc,
        INDEX64=n + block >= 2**31,
        BLOCK=block,
        num_warps=warps,
    )


def forward(
    x: torch.Tensor,
    bias: Optional[torch.Tensor],
    act: str,
    negative_slope: float,
    gain: float,
    clamp: Optional[float],
    dim: int,
) -> torch.Tensor:
    """Fused forward; the output has ``x``'s layout (dense ``x``) or a dense copy's."""
    x = _layout.dense(x)
    y = torch.empty_like(x)
    bias = bias.contiguous() if bias is not None else None
    _launch(_bias_act_fwd_kernel, y, (x,), x, bias, act, negative_slope, gain, clamp, dim)
    return y


def backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    bias: Optional[torch.Tensor],
    act: str,
    negative_slope: float,
    gain: float,
    clamp: Optional[float],
    dim: int,
) -> torch.Tensor:
    """Gradient w.r.t. x (= w.r.t. z) of the fused op, in ``x``'s dtype and layout."""
    x = _layout.dense(x)
    grad = _layout.like(grad.to(x.dtype), x)
    dz = torch.empty_like(x)
    bias = bias.contiguous() if bias is not None else None
    # Argument order of the kernel is (g, x, b, dz, ...).
    _launch(_bias_act_bwd_kernel, dz, (grad, x), x, bias, act, negative_slope, gain, clamp, dim)
    return dz
