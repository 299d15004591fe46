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
branch torch takes.  The activation names are the table's
(``ganfast._activations``); a name the switches below do not know fails the
compilation instead of computing another activation.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ganfast import _layout
from ganfast._activations import canonical_act
from ganfast.kernels._common import acc_type, flat_offsets, scalar, split_scalar

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
    elif ACT == "silu":
        a = z * _sigmoid(z)
    else:
        tl.static_assert(False, "bias_act: unknown activation (not in ganfast._activations)")
        a = z
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
    elif ACT == "silu":
        s = _sigmoid(z)
        d = ga * (s * (1.0 + z * (1.0 - s)))
    else:
        tl.static_assert(False, "bias_act: unknown activation (not in ganfast._activations)")
        d = ga
    return d


@triton.jit
def _load_z(x_ptr, b_ptr, offs, mask, channels, channel_stride, HAS_BIAS: tl.constexpr, ACC: tl.constexpr):
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        c = (offs // channel_stride) % channels
        z += tl.load(b_ptr + c, mask=mask, other=0.0).to(ACC)
    return z


# -- kernel ---------------------------------------------------------------------------


@triton.jit
def _bias_act_kernel(
    x_ptr,  # *T, dense, n elements
    g_ptr,  # *T, incoming gradient in x's layout (BACKWARD only; else a placeholder, never read)
    b_ptr,  # *Tb, channels elements (unused when HAS_BIAS is False)
    out_ptr,  # *T, x's layout: y (forward), or the gradient w.r.t. x and z = x + b (BACKWARD)
    n,  # number of elements
    channels,  # size of the bias dimension
    channel_stride,  # stride of the bias dimension, in elements
    alpha_hi,  # leaky_relu slope (hi + lo, see _common.scalar)
    alpha_lo,
    gain_hi,
    gain_lo,
    clamp_hi,  # used when HAS_CLAMP
    clamp_lo,
    ACT: tl.constexpr,
    BACKWARD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    INDEX64: tl.constexpr,  # 64-bit offsets when n + BLOCK may exceed 2^31
    BLOCK: tl.constexpr,
):
    # One kernel for both directions: they share the prologue (offsets,
    # scalars, z = x + b) and the activation; BACKWARD is a compile-time
    # switch, so each direction compiles to its own specialisation.
    offs, mask = flat_offsets(n, BLOCK, INDEX64)
    alpha = scalar(alpha_hi, alpha_lo, ACC)
    gain = scalar(gain_hi, gain_lo, ACC)
    z = _load_z(x_ptr, b_ptr, offs, mask, channels, channel_stride, HAS_BIAS, ACC)
    a = _act(z, alpha, ACT)
    if BACKWARD:
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
        if HAS_CLAMP:
            # torch's order: clamp's backward (a select), the gain, the activation's backward.
            clamp = scalar(clamp_hi, clamp_lo, ACC)
            y0 = a * gain
            g = tl.where((y0 >= -clamp) & (y0 <= clamp), g, 0.0)
        out = _act_backward(g * gain, z, a, alpha, ACT)
    else:
        out = a * gain
        if HAS_CLAMP:
            clamp = scalar(clamp_hi, clamp_lo, ACC)
            # Comparisons rather than minimum/maximum so that NaN propagates.
            out = tl.where(out > clamp, clamp, tl.where(out < -clamp, -clamp, out))
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


# -- host functions -------------------------------------------------------------------


def _config(n: int) -> Tuple[int, int]:
    """(BLOCK, num_warps) for n elements: 8 elements per thread, 16-byte accesses."""
    if n >= 1 << 20:
        return 2048, 8
    return 1024, 4


def _run(grad, x, bias, act, alpha, gain, clamp, dim) -> torch.Tensor:
    """The forward (``grad`` None) or the gradient w.r.t. x, in x's dtype and (dense) layout."""
    x = _layout.dense(x)
    out = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return out
    if grad is not None:
        grad = _layout.like(grad.to(x.dtype), x)
    bias = bias.contiguous() if bias is not None else None
    block, warps = _config(n)
    channels, channel_stride = _layout.channel_geometry(x, dim)
    _bias_act_kernel[(triton.cdiv(n, block),)](
        x,
        grad if grad is not None else x,  # placeholder pointer, never read
        bias if bias is not None else x,  # placeholder pointer, never read
        out,
        n,
        channels,
        channel_stride,
        *split_scalar(alpha),
        *split_scalar(gain),
        *split_scalar(clamp if clamp is not None else 0.0),
        ACT=canonical_act(act),
        BACKWARD=grad is not None,
        HAS_BIAS=bias is not None,
        HAS_CLAMP=clamp is not None,
        ACC=acc_type(x.dtype),
        INDEX64=n + block >= 2**31,
        BLOCK=block,
        num_warps=warps,
    )
    return out


def forward(x: torch.Tensor, bias: Optional[torch.Tensor], act: str, negative_slope: float, gain: float,
            clamp: Optional[float], dim: int) -> torch.Tensor:
    """Fused forward; the output has ``x``'s layout (dense ``x``) or a dense copy's."""
    return _run(None, x, bias, act, negative_slope, gain, clamp, dim)


def backward(grad: torch.Tensor, x: torch.Tensor, bias: Optional[torch.Tensor], act: str, negative_slope: float,
             gain: float, clamp: Optional[float], dim: int) -> torch.Tensor:
    """Gradient w.r.t. x (= w.r.t. z) of the fused op, in ``x``'s dtype and layout."""
    return _run(grad, x, bias, act, negative_slope, gain, clamp, dim)
