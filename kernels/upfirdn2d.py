"""Triton kernel for ``upfirdn2d``: upsample, FIR filter, downsample in one pass.

Memory traffic.  The op reads x (E_in = N*C*H*W elements) and writes y
(E_out); eager PyTorch (the reference) materialises the zero-stuffed plane
(E_in * up_x * up_y), its padded copy, the depthwise convolution's full
output (before the stride) and the strided result: at up = 2 that is 4 E_in
written and read twice before the filter even starts, and at down = 2 the
convolution computes four times the outputs it keeps.  This kernel computes
each kept output once, reading x directly:

    y[oy, ox] = gain * sum_{i < f_h, j < f_w} k[i, j] * P[oy * down_y + i, ox * down_x + j]

where P is the upsampled, padded plane, never stored: P[u, v] is
x[(u - p_y0) / up_y, (v - p_x0) / up_x] when both divisions are exact and in
range, else 0, and k is the correlation filter (the host flips f for a true
convolution, forms the outer product of a separable one, and folds in the
gain).  A tap whose P position is a stuffed zero or padding is a masked
load: no memory traffic, one lane idle.  At up = 2 three of four taps are
masked (a polyphase split would skip them; not done yet: the op is bound by
its one read of x and one write of y at StyleGAN2's 4-tap filters, and the
GPU measurement that would justify the split has not been made).

One program per (plane, tile of BLOCK_H x BLOCK_W outputs); the grid is
one-dimensional (planes times tiles, so N*C may exceed 65535).  Strides are
explicit (NCHW, channels_last and sliced inputs are read as they are).  Maths
in float32 (float64 for float64 inputs), one rounding on the way out; each
output is one program's sum in a fixed tap order (deterministic).
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from ganfast.kernels._common import acc_type

# -- kernel ---------------------------------------------------------------------------


@triton.jit
def _source(o, t, pad0, size, stride, UP: tl.constexpr, DOWN: tl.constexpr, INDEX64: tl.constexpr):
    """Along one axis, for outputs ``o`` and tap ``t``: x's offset and whether the tap meets a real sample.

    The tap reads the upsampled, padded plane at u = o * DOWN + t - pad0 (in
    upsampled samples from x's first); that is x[u / UP] when u >= 0, UP
    divides u and u / UP < size, else a stuffed zero or padding.  u is
    clamped at 0 before dividing so that // and % only see non-negative
    numbers (the mask drops those taps anyway).
    """
    u = o * DOWN + t - pad0
    uc = tl.maximum(u, 0)
    i = uc // UP
    ok = (u >= 0) & (uc - i * UP == 0) & (i < size)
    if INDEX64:
        off = i.to(tl.int64) * stride
    else:
        off = i * stride
    return off, ok


@triton.jit
def _upfirdn2d_kernel(
    x_ptr,  # *T, (N, C, H, W), any strides
    k_ptr,  # *ACC, (F_H, F_W) contiguous: the correlation filter, gain folded in
    out_ptr,  # *T, (N, C, OH, OW), any strides
    C, H, W, OH, OW, F_H, F_W,
    sx_n, sx_c, sx_h, sx_w,
    so_n, so_c, so_h, so_w,
    PAD_X0, PAD_Y0,  # leading padding (negative: crop)
    TILES_W,  # tiles along OW
    TILES,  # tiles per plane
    UP_X: tl.constexpr, UP_Y: tl.constexpr, DOWN_X: tl.constexpr, DOWN_Y: tl.constexpr,
    ACC: tl.constexpr,  # tl.float32, or tl.float64 for float64 inputs
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
    INDEX64: tl.constexpr,  # an offset may pass 2^31
):
    pid = tl.program_id(0)
    plane = pid // TILES
    tile = pid - plane * TILES
    n = plane // C
    c = plane - n * C
    ty = tile // TILES_W
    tx = tile - ty * TILES_W
    oy = ty * BLOCK_H + tl.arange(0, BLOCK_H)
    ox = tx * BLOCK_W + tl.arange(0, BLOCK_W)
    out_mask = (oy < OH)[:, None] & (ox < OW)[None, :]
    if INDEX64:
        x_base = x_ptr + n.to(tl.int64) * sx_n + c.to(tl.int64) * sx_c
        o_base = out_ptr + n.to(tl.int64) * so_n + c.to(tl.int64) * so_c
    else:
        x_base = x_ptr + n * sx_n + c * sx_c
        o_base = out_ptr + n * so_n + c * so_c
    acc = tl.zeros((BLOCK_H, BLOCK_W), dtype=ACC)
    for i in range(0, F_H):
        row_off, row_ok = _source(oy, i, PAD_Y0, H, sx_h, UP_Y, DOWN_Y, INDEX64)
        for j in range(0, F_W):
            col_off, col_ok = _source(ox, j, PAD_X0, W, sx_w, UP_X, DOWN_X, INDEX64)
            tap = tl.load(k_ptr + i * F_W + j)
            mask = out_mask & row_ok[:, None] & col_ok[None, :]
            val = tl.load(x_base + row_off[:, None] + col_off[None, :], mask=mask, other=0.0)
            acc += val.to(ACC) * tap
    if INDEX64:
        o_off = oy.to(tl.int64)[:, None] * so_h + ox.to(tl.int64)[None, :] * so_w
    else:
        o_off = oy[:, None] * so_h + ox[None, :] * so_w
    tl.store(o_base + o_off, acc.to(out_ptr.dtype.element_ty), mask=out_mask)


# -- host functions -------------------------------------------------------------------


def _config(out_h: int, out_w: int) -> Tuple[int, int, int]:
    """(BLOCK_H, BLOCK_W, num_warps): a tile of up to 1024 outputs, as wide as the row allows (coalesced stores).

    Not yet tuned on a GPU (bench/RESULTS.md).
    """
    block_w = min(triton.next_power_of_2(out_w), 128)
    block_h = max(1, min(triton.next_power_of_2(out_h), 1024 // block_w))
    warps = max(1, min(4, block_h * block_w // 256))
    return block_h, block_w, warps


def _index64(*tensors: torch.Tensor) -> bool:
    """Whether any offset into these tensors may pass 2^31 (with a margin for the tile's overhang)."""
    reach = max(sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) for t in tensors)
    return reach + (1 << 20) >= 2**31


def correlation_filter(f: torch.Tensor, flip_filter: bool, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """The (F_H, F_W) filter the kernel correlates with: separable f as f outer f, flipped for a convolution
    unless ``flip_filter``, times ``gain``, contiguous in ``dtype`` (the accumulation dtype)."""
    k = f.to(dtype)
    if k.dim() == 1:
        k = torch.outer(k, k)
    if not flip_filter:
        k = k.flip([0, 1])
    return (k * gain).contiguous()


def forward(x: torch.Tensor, f: torch.Tensor, up: Tuple[int, int], down: Tuple[int, int],
            padding: Tuple[int, int, int, int], flip_filter: bool, gain: float, out_size: Tuple[int, int],
            memory_format: torch.memory_format) -> torch.Tensor:
    """upfirdn2d of ``x`` (N, C, H, W): ``up``/``down`` ``(x, y)``, ``padding`` ``(x0, x1, y0, y1)``.

    Returns ``(N, C, out_h, out_w)`` in ``x``'s dtype and ``memory_format``
    (the op passes channels_last for a channels_last x).
    """
    n, c, h, w = x.shape
    out_h, out_w = out_size
    out = torch.empty((n, c, out_h, out_w), device=x.device, dtype=x.dtype, memory_format=memory_format)
    acc = acc_type(x.dtype)
    k = correlation_filter(f, flip_filter, gain, torch.float64 if acc == tl.float64 else torch.float32)
    k = k.to(x.device)
    block_h, block_w, warps = _config(out_h, out_w)
    tiles_w = triton.cdiv(out_w, block_w)
    tiles = triton.cdiv(out_h, block_h) * tiles_w
    (up_x, up_y), (down_x, down_y) = up, down
    _upfirdn2d_kernel[(n * c * tiles,)](
        x, k, out, c, h, w, out_h, out_w, k.shape[0], k.shape[1], *x.stride(), *out.stride(),
        padding[0], padding[2], tiles_w, tiles,
        UP_X=up_x, UP_Y=up_y, DOWN_X=down_x, DOWN_Y=down_y, ACC=acc, BLOCK_H=block_h, BLOCK_W=block_w,
        INDEX64=_index64(x, out), num_warps=warps,
    )
    return out
