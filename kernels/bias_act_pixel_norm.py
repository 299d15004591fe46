"""Triton kernels for ``bias_act_pixel_norm``: y = pixel_norm(leaky_relu(x + b)), ProGAN's generator tail.

Memory traffic.  For x of E = N*C*H*W elements of ``s`` bytes, the fused
forward reads x once and writes y once (``2 E s`` plus C bias values that
stay in cache); ProGAN's eager form (``x + b``, ``leaky_relu``, ``x.pow(2)``,
``mean(1)``, ``+ eps``, ``rsqrt``, ``x * r``) makes five passes over E-sized
temporaries and two over the (N, 1, H, W) statistic.  The fused backward
reads g and x and writes dx (``3 E s``); autograd through the eager form
reads and writes several E-sized tensors per stage.

One program per tile of BLOCK_P pixels; the pixel's whole channel vector is
its reduction (mean over C of a^2, and in the backward also of g*y), so the
tile is [BLOCK_P, BLOCK_C] with the channel blocks walked by the program:

* ``SINGLE`` (C <= BLOCK_C, every ProGAN layer: C <= 512): the whole channel
  vector of each pixel is loaded once, held in registers, reduced and
  written: one read of x, one write of y (backward: one read of x and g,
  one write of dx).
* otherwise two passes over the channel blocks: the first accumulates the
  per-pixel sums, the second reloads x (and g) and writes.  The reload is
  the same program's tile, normally still in L2.

Layout: every tensor is addressed through its (n, c, h, w) strides, so NCHW,
channels_last, sliced and expanded (stride 0) inputs are read as they are;
a 2-D (N, C) input is N pixels with H = W = 1.  Maths in float32 (float64
for float64 inputs), one rounding on the way out.  No atomics: each pixel's
sums are reduced inside one program in a fixed order (deterministic).  The
bias gradient is the sum of dx over N, H and W, reduced by the caller on the
host (``torch.sum``): one extra read of dx, a fraction of the backward.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ganfast.kernels._common import acc_type, scalar, split_scalar

# -- device functions -----------------------------------------------------------------


@triton.jit
def _pixel_rows(p, HW, W, s_n, s_h, s_w, INDEX64: tl.constexpr):
    """Offsets of pixels ``p`` (0 .. N*H*W, in (n, h, w) order) without the channel term."""
    n = p // HW
    h = (p - n * HW) // W
    w = p - n * HW - h * W
    if INDEX64:  # one return for both branches: Triton wants one return type
        n, h, w = n.to(tl.int64), h.to(tl.int64), w.to(tl.int64)
    return n * s_n + h * s_h + w * s_w


@triton.jit
def _channels(c0, C, s_c, BLOCK_C: tl.constexpr, INDEX64: tl.constexpr):
    """Channels c0 .. c0 + BLOCK_C: their index, mask and offset along the channel stride."""
    c = c0 + tl.arange(0, BLOCK_C)
    cmask = c < C
    if INDEX64:
        off = c.to(tl.int64) * s_c
    else:
        off = c * s_c
    return c, cmask, off



# The backward, per pixel (a over its C channels, r = 1 / sqrt(mean_c(a^2) + eps),
# y = a r, incoming gradient g):
#
#     dy_c / da_k = r [c == k] - r^3 a_c a_k / C
#     da_k = sum_c g_c dy_c / da_k = r g_k - r^3 a_k (sum_c g_c a_c) / C
#          = r * (g_k - a_k * k),   k = r^2 * mean_c(g a)
#     dz_k = da_k where z_k > 0, else da_k * negative_slope   (torch's leaky_relu backward)
#
# so the per-pixel reductions are sum_c(a^2) (for r) and, backward, sum_c(g a);
# the reference's form r * (g - y * mean_c(g y)) is the same expression.


@triton.jit
def _tile(x_ptr, b_ptr, g_ptr, x_rows, g_rows, pmask, c0, C, sx_c, sg_c, alpha, HAS_BIAS: tl.constexpr,
          BACKWARD: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, INDEX64: tl.constexpr):
    """One [BLOCK_P, BLOCK_C] tile at channel c0: z = x + b, a = leaky_relu(z), g (BACKWARD; else a), its mask."""
    c, cmask, xc = _channels(c0, C, sx_c, BLOCK_C, INDEX64)
    mask = pmask[:, None] & cmask[None, :]
    z = tl.load(x_ptr + x_rows[:, None] + xc[None, :], mask=mask, other=0.0).to(ACC)
    if HAS_BIAS:
        z += tl.load(b_ptr + c, mask=cmask, other=0.0).to(ACC)[None, :]
    a = tl.where(z > 0, z, z * alpha)  # NaN is not > 0: NaN * alpha propagates it, as torch does
    if BACKWARD:
        _, _, gc = _channels(c0, C, sg_c, BLOCK_C, INDEX64)
        g = tl.load(g_ptr + g_rows[:, None] + gc[None, :], mask=mask, other=0.0).to(ACC)
    else:
        g = a
    return z, a, g, mask


@triton.jit
def _scales(ss, ga, C, eps, ACC: tl.constexpr):
    """Per pixel: r = 1 / sqrt(ss / C + eps) and k = r^2 * ga / C.

    A correctly rounded square root and division: tl.rsqrt and float32
    tl.sqrt are approximations on the GPU; sqrt_rn takes float32 only, and
    float64 tl.sqrt is IEEE already.
    """
    s = ss / C + eps
    if ACC == tl.float64:
        root = tl.sqrt(s)
    else:
        root = tl.sqrt_rn(s)
    r = 1.0 / root
    return r, r * r * (ga / C)


@triton.jit
def _store_tile(out_ptr, o_rows, c0, C, so_c, z, a, g, r, k, mask, alpha, BACKWARD: tl.constexpr,
                BLOCK_C: tl.constexpr, INDEX64: tl.constexpr):
    """Write y = a r (forward) or dz (BACKWARD, the derivation above) for one tile."""
    if BACKWARD:
        da = r[:, None] * (g - a * k[:, None])
        out = tl.where(z > 0, da, da * alpha)
    else:
        out = a * r[:, None]
    _, _, oc = _channels(c0, C, so_c, BLOCK_C, INDEX64)
    tl.store(out_ptr + o_rows[:, None] + oc[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)


# -- kernel ---------------------------------------------------------------------------


@triton.jit
def _bias_act_pixel_norm_kernel(
    x_ptr,  # *T, (N, C, H, W) (or (N, C) as H = W = 1), any strides
    g_ptr,  # *T, incoming gradient, x's shape, any strides, stride 0 too (BACKWARD; else a placeholder)
    b_ptr,  # *Tb, (C,) contiguous (a placeholder when HAS_BIAS is False, never read)
    out_ptr,  # *T, x's shape, any strides: y (forward) or the gradient w.r.t. x and z = x + b (BACKWARD)
    P,  # pixels, N*H*W
    C,
    HW,
    W,
    sx_n, sx_c, sx_h, sx_w,
    sg_n, sg_c, sg_h, sg_w,
    so_n, so_c, so_h, so_w,
    alpha_hi,  # leaky_relu slope, as hi + lo float32s (see _common.scalar)
    alpha_lo,
    eps_hi,
    eps_lo,
    BACKWARD: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    SINGLE: tl.constexpr,  # C <= BLOCK_C: one load of the channel vector, kept in registers
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
    INDEX64: tl.constexpr,
):
    # One kernel for both directions, as bias_act: they share the prologue,
    # the tile loads and the per-pixel reduction; BACKWARD is a compile-time
    # switch, so each direction compiles to its own specialisation.
    alpha = scalar(alpha_hi, alpha_lo, ACC)
    eps = scalar(eps_hi, eps_lo, ACC)
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < P
    x_rows = _pixel_rows(p, HW, W, sx_n, sx_h, sx_w, INDEX64)
    g_rows = _pixel_rows(p, HW, W, sg_n, sg_h, sg_w, INDEX64)
    o_rows = _pixel_rows(p, HW, W, so_n, so_h, so_w, INDEX64)
    if SINGLE:
        z, a, g, mask = _tile(x_ptr, b_ptr, g_ptr, x_rows, g_rows, pmask, 0, C, sx_c, sg_c, alpha, HAS_BIAS,
                              BACKWARD, ACC, BLOCK_C, INDEX64)
        r, k = _scales(tl.sum(a * a, axis=1), tl.sum(g * a, axis=1), C, eps, ACC)
        _store_tile(out_ptr, o_rows, 0, C, so_c, z, a, g, r, k, mask, alpha, BACKWARD, BLOCK_C, INDEX64)
    else:
        ss = tl.zeros((BLOCK_P,), dtype=ACC)
        ga = tl.zeros((BLOCK_P,), dtype=ACC)
        for c0 in range(0, C, BLOCK_C):
            z, a, g, mask = _tile(x_ptr, b_ptr, g_ptr, x_rows, g_rows, pmask, c0, C, sx_c, sg_c, alpha, HAS_BIAS,
                                  BACKWARD, ACC, BLOCK_C, INDEX64)
            ss += tl.sum(a * a, axis=1)
            ga += tl.sum(g * a, axis=1)
        r, k = _scales(ss, ga, C, eps, ACC)
        for c0 in range(0, C, BLOCK_C):
            z, a, g, mask = _tile(x_ptr, b_ptr, g_ptr, x_rows, g_rows, pmask, c0, C, sx_c, sg_c, alpha, HAS_BIAS,
                                  BACKWARD, ACC, BLOCK_C, INDEX64)
            _store_tile(out_ptr, o_rows, c0, C, so_c, z, a, g, r, k, mask, alpha, BACKWARD, BLOCK_C, INDEX64)


# -- host functions -------------------------------------------------------------------

#: Largest channel vector held whole in registers (SINGLE): ProGAN's 512 and
#: twice that.  Larger C walks channel blocks of _MULTI_BLOCK_C twice.
_MAX_SINGLE_C = 1024
_MULTI_BLOCK_C = 256


def _config(C: int, P: int, dtype: torch.dtype) -> Tuple[int, int, bool, int]:
    """(BLOCK_P, BLOCK_C, SINGLE, num_warps) for C channels over P pixels of ``dtype`` storage.

    A tile of 4096 elements (2048 for float64 maths): 16 float32 values a
    thread per tile at 8 warps, so the backward's two tiles (x and g) and
    their temporaries stay in registers.  At C = 512 that is 8 pixels a
    program, 2048 programs for ProGAN's 64x64 layer at batch 16.  Not yet
    tuned on a GPU (bench/RESULTS.md).
    """
    single = C <= _MAX_SINGLE_C
    block_c = triton.next_power_of_2(C) if single else _MULTI_BLOCK_C
    tile = 2048 if dtype == torch.float64 else 4096
    block_p = max(1, min(tile // block_c, triton.next_power_of_2(P), 1024))
    warps = max(1, min(8, block_p * block_c // 512))
    return block_p, block_c, single, warps


def _geometry(t: torch.Tensor) -> Tuple[Tuple[int, int, int, int], Tuple[int, int, int, int]]:
    """((N, C, H, W), (n, c, h, w) strides) of a 4-D tensor, or of a 2-D one as (N, C, 1, 1)."""
    if t.dim() == 2:
        return (t.shape[0], t.shape[1], 1, 1), (t.stride(0), t.stride(1), 0, 0)
    return tuple(t.shape), tuple(t.stride())


def _index64(*tensors: torch.Tensor) -> bool:
    """Whether any offset into these tensors may pass 2^31 (with a tile's margin)."""
    reach = max(sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) for t in tensors)
    return reach + (1 << 16) >= 2**31


def _run(grad: Optional[torch.Tensor], x: torch.Tensor, bias: Optional[torch.Tensor], negative_slope: float,
         eps: float) -> torch.Tensor:
    """The forward (``grad`` None) or the gradient w.r.t. x, in x's dtype and ``torch.empty_like(x)``'s layout."""
    out = torch.empty_like(x)
    g = grad.to(x.dtype) if grad is not None else x  # x: a placeholder pointer, never read
    bias = bias.contiguous() if bias is not None else None
    (N, C, H, W), sx = _geometry(x)
    P = N * H * W
    block_p, block_c, single, warps = _config(C, P, x.dtype)
    _bias_act_pixel_norm_kernel[(triton.cdiv(P, block_p),)](
        x, g, bias if bias is not None else x, out,  # x: a placeholder bias pointer, never read
        P, C, H * W, W, *sx, *_geometry(g)[1], *_geometry(out)[1], *split_scalar(negative_slope),
        *split_scalar(eps),
        BACKWARD=grad is not None, HAS_BIAS=bias is not None, ACC=acc_type(x.dtype), SINGLE=single,
        BLOCK_P=block_p, BLOCK_C=block_c, INDEX64=_index64(x, g, out), num_warps=warps,
    )
    return out


def forward(x: torch.Tensor, bias: Optional[torch.Tensor], negative_slope: float, eps: float) -> torch.Tensor:
    """y = pixel_norm(leaky_relu(x + bias)), in ``x``'s dtype and layout (``torch.empty_like``)."""
    return _run(None, x, bias, negative_slope, eps)


def backward(grad: torch.Tensor, x: torch.Tensor, bias: Optional[torch.Tensor], negative_slope: float,
             eps: float) -> torch.Tensor:
    """Gradient w.r.t. x (= w.r.t. z = x + bias) for incoming ``grad``, in ``x``'s dtype and layout."""
    return _run(grad, x, bias, negative_slope, eps)
