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

prelu (He et al. 2015, eq. 1): the slope is read per element from a vector
of ``channels`` slopes (``a_ptr``, the compute dtype, indexed like the bias;
the host expands a shared slope), and the backward writes a second output,
the per-element slope gradient ``z > 0 ? 0 : gz * z`` in the compute dtype
(``da_ptr``), which the op sums per channel: one more write of N compute-dtype
elements (4N bytes) in exchange for a deterministic sum with no atomics
(elements of one channel are scattered over every program in channels_last).

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
from ganfast._dtypes import compute_dtype
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
    elif ACT == "prelu":
        a = tl.where(z > 0, z, z * alpha)  # alpha: this element's channel slope
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
    elif ACT == "prelu":
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
def _channel(offs, channels, channel_stride, NEEDED: tl.constexpr):
    if NEEDED:
        c = (offs // channel_stride) % channels
    else:
        c = offs  # unused
    return c


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
    # prelu's, last and optional so that the float-slope activations' launches need not name them:
    a_ptr=None,  # *ACC, channels prelu slopes (ACT == "prelu" only; never read otherwise)
    da_ptr=None,  # *ACC, x's layout: prelu's slope gradient per element (BACKWARD and prelu only)
):
    # One kernel for both directions: they share the prologue (offsets,
    # scalars, z = x + b) and the activation; BACKWARD is a compile-time
    # switch, so each direction compiles to its own specialisation.
    offs, mask = flat_offsets(n, BLOCK, INDEX64)
    gain = scalar(gain_hi, gain_lo, ACC)
    c = _channel(offs, channels, channel_stride, HAS_BIAS or ACT == "prelu")
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + c, mask=mask, other=0.0).to(ACC)
    if ACT == "prelu":
        alpha = tl.load(a_ptr + c, mask=mask, other=0.0).to(ACC)
    else:
        alpha = scalar(alpha_hi, alpha_lo, ACC)
    a = _act(z, alpha, ACT)
    if BACKWARD:
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(ACC)
        if HAS_CLAMP:
            # torch's order: clamp's backward (a select), the gain, the activation's backward.
            clamp = scalar(clamp_hi, clamp_lo, ACC)
            y0 = a * gain
            g = tl.where((y0 >= -clamp) & (y0 <= clamp), g, 0.0)
        out = _act_backward(g * gain, z, a, alpha, ACT)
        if ACT == "prelu":
            # d y / d a = z on the slope side (z > 0 is false: NaN lands here, as in torch), 0 elsewhere.
            tl.store(da_ptr + offs, tl.where(z > 0, 0.0, g * gain * z), mask=mask)
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


def _run(grad, x, bias, act, alpha, gain, clamp, dim, slopes=None):
    """The forward (``grad`` None) or the gradient w.r.t. x, in x's dtype and (dense) layout.

    ``slopes``: prelu's tensor of slopes, (channels,) or (1,); the backward then returns
    ``(dz, da)``, ``da`` the per-element slope gradient in the compute dtype and x's layout.
    """
    x = _layout.dense(x)
    out = torch.empty_like(x)
    act = canonical_act(act)
    prelu = act == "prelu"
    n = x.numel()
    da = torch.empty_like(x, dtype=compute_dtype(x.dtype)) if prelu and grad is not None else None
    if n == 0:
        return out if da is None else (out, da)
    if grad is not None:
        grad = _layout.like(grad.to(x.dtype), x)
    bias = bias.contiguous() if bias is not None else None
    block, warps = _config(n)
    channels, channel_stride = _layout.channel_geometry(x, dim)
    if prelu:
        # The kernel indexes slopes like the bias, in the compute dtype: a shared slope is expanded (C values).
        slopes = slopes.to(compute_dtype(x.dtype)).expand(channels).contiguous()
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
        ACT=act,
        BACKWARD=grad is not None,
        HAS_BIAS=bias is not None,
        HAS_CLAMP=clamp is not None,
        ACC=acc_type(x.dtype),
        INDEX64=n + block >= 2**31,
        BLOCK=block,
        a_ptr=slopes if prelu else None,
        da_ptr=da,
        num_warps=warps,
    )
    return out if da is None else (out, da)


def forward(x: torch.Tensor, bias: Optional[torch.Tensor], act: str, negative_slope: float, gain: float,
            clamp: Optional[float], dim: int) -> torch.Tensor:
    """Fused forward; the output has ``x``'s layout (dense ``x``) or a dense copy's."""
    return _run(None, x, bias, act, negative_slope, gain, clamp, dim)


def backward(grad: torch.Tensor, x: torch.Tensor, bias: Optional[torch.Tensor], act: str, negative_slope: float,
             gain: float, clamp: Optional[float], dim: int) -> torch.Tensor:
    """Gradient w.r.t. x (= w.r.t. z) of the fused op, in ``x``'s dtype and layout."""
    return _run(grad, x, bias, act, negative_slope, gain, clamp, dim)


def prelu_forward(x: torch.Tensor, bias: Optional[torch.Tensor], alpha: torch.Tensor, gain: float,
                  clamp: Optional[float], dim: int) -> torch.Tensor:
    """Fused forward of ``act="prelu"`` with slopes ``alpha`` ((channels,) or (1,))."""
    return _run(None, x, bias, "prelu", 0.0, gain, clamp, dim, alpha)


def prelu_backward(grad: torch.Tensor, x: torch.Tensor, bias: Optional[torch.Tensor], alpha: torch.Tensor,
                   gain: float, clamp: Optional[float], dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(dz, da)``: the gradient w.r.t. x (x's dtype and layout) and the per-element slope gradient
    (compute dtype, x's layout), for the op to sum per channel."""
    return _run(grad, x, bias, "prelu", 0.0, gain, clamp, dim, alpha)
