"""Reference for ``upfirdn2d``: upsample, FIR filter, downsample, in plain PyTorch.

This file is the definition of correct for every backend of
:func:`ganfast.ops.upfirdn2d`; the torch backend, the tests and the
benchmarks import it.

The resampling op of StyleGAN2 (Karras et al. 2020, "Analyzing and Improving
the Image Quality of StyleGAN", appendix B and the filtered up/downsampling
of every layer; NVlabs/stylegan2-ada-pytorch ``torch_utils/ops/upfirdn2d.py``
has the same interface), the 2-D form of ``scipy.signal.upfirdn``.  Per
image plane (n, c) of x, of size H x W::

    1. upsample: insert up_y - 1 zeros after every row and up_x - 1 after every
       column: an (H * up_y) x (W * up_x) plane, sample (i, j) at (i * up_y, j * up_x);
    2. pad with zeros by (pad_x0, pad_x1, pad_y0, pad_y1) on the (left, right, top,
       bottom); a negative amount crops instead;
    3. convolve with the FIR filter f (a true convolution: f flipped, unless
       flip_filter, which correlates), keeping the "valid" part, and multiply by gain;
    4. downsample: keep every down_y-th row and down_x-th column, starting at 0
       (computed as the stride of a depthwise conv2d: only kept outputs are computed).

    out_h = (H * up_y + pad_y0 + pad_y1 - f_h + down_y) // down_y     (out_w likewise)

``f`` is 2-D (f_h, f_w), or 1-D (k,): a separable filter applied along the
rows and then the columns (f outer f), each pass multiplying by sqrt(gain)
(so the gain is applied once overall, as the 2-D form does).

The op is linear in x, and its adjoint is the same op (StyleGAN2-ADA's
``_upfirdn2d_cuda`` backward)::

    d out / d x  ^T  (dy) = upfirdn2d(dy, f, up=down, down=up, flip_filter=not flip_filter, gain,
                                      padding=grad_padding(...))

:func:`grad_padding` gives the mirrored padding; the tests check the pair
against autograd of :func:`upfirdn2d`, so derivatives of every order are the
op again.  The arithmetic is float32 for float16 / bfloat16 / float32 inputs
and float64 for float64 inputs; the result has ``x``'s dtype.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from .._dtypes import compute_dtype

Tensor = torch.Tensor

__all__ = ["upfirdn2d", "grad_padding", "output_size"]


def output_size(in_h: int, in_w: int, f_h: int, f_w: int, up: Tuple[int, int], down: Tuple[int, int],
                padding: Tuple[int, int, int, int]) -> Tuple[int, int]:
    """``(out_h, out_w)`` of :func:`upfirdn2d`; ``up``/``down`` are ``(x, y)``, padding ``(x0, x1, y0, y1)``."""
    (up_x, up_y), (down_x, down_y) = up, down
    px0, px1, py0, py1 = padding
    out_h = (in_h * up_y + py0 + py1 - f_h + down_y) // down_y
    out_w = (in_w * up_x + px0 + px1 - f_w + down_x) // down_x
    return out_h, out_w


def grad_padding(in_h: int, in_w: int, f_h: int, f_w: int, up: Tuple[int, int], down: Tuple[int, int],
                 padding: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
    """The padding of the adjoint op: the gradient w.r.t. ``x`` is upfirdn2d(dy) with up and down swapped.

    The forward reads the padded, upsampled plane P (length L = in * up + p0 +
    p1 along an axis) at o * down + t for taps t < k.  The adjoint scatters dy
    into P's positions o * down (upsampling dy by ``down``), convolves with
    the flipped filter, which needs k - 1 - p0 leading zeros to line P's
    position p0 (x's first sample) up with output 0, and reads every
    ``up``-th position (downsampling by ``up``).  Its trailing pad makes the
    adjoint's output exactly ``in`` long::

        p0' = k - p0 - 1
        p1' = in * up - out * down + p0 - up + 1
    """
    (up_x, up_y), (down_x, down_y) = up, down
    px0, _, py0, _ = padding
    out_h, out_w = output_size(in_h, in_w, f_h, f_w, up, down, padding)
    return (f_w - px0 - 1, in_w * up_x - out_w * down_x + px0 - up_x + 1,
            f_h - py0 - 1, in_h * up_y - out_h * down_y + py0 - up_y + 1)


def _pad_or_crop(x: Tensor, padding: Tuple[int, int, int, int]) -> Tensor:
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-py0, 0):h - max(-py1, 0), max(-px0, 0):w - max(-px1, 0)]


def upfirdn2d(x: Tensor, f: Tensor, up: Tuple[int, int] = (1, 1), down: Tuple[int, int] = (1, 1),
              padding: Tuple[int, int, int, int] = (0, 0, 0, 0), flip_filter: bool = False,
              gain: float = 1.0) -> Tensor:
    """Upsample, pad, FIR-filter and downsample the (N, C, H, W) batch ``x`` (the module docstring's steps).

    ``f`` (f_h, f_w) or (k,) (separable), any float dtype (used in the
    computation dtype); ``up``/``down`` ``(x, y)`` factors >= 1; ``padding``
    ``(x0, x1, y0, y1)``, negative crops.  Arguments are not checked here
    (:func:`ganfast.ops.upfirdn2d` checks them).  Differentiable to any order
    by autograd.
    """
    dtype = compute_dtype(x.dtype)
    n, c, h, w = x.shape
    (up_x, up_y), (down_x, down_y) = up, down
    y = x.to(dtype)
    # 1. upsample by zero insertion (up - 1 zeros after each sample, the last one too)
    if up_x > 1 or up_y > 1:
        y = y.reshape(n, c, h, 1, w, 1)
        y = F.pad(y, [0, up_x - 1, 0, 0, 0, up_y - 1])
        y = y.reshape(n, c, h * up_y, w * up_x)
    # 2. pad (or crop)
    y = _pad_or_crop(y, padding)
    # 3. + 4. filter and downsample: a depthwise conv2d (groups = C; conv2d correlates, so a convolution flips f
    # first) whose stride is the downsampling (it computes only the kept outputs)
    f = f.to(dtype)
    if f.dim() == 1 and f.numel() <= 8:
        # a short separable filter as its 2-D outer product: one depthwise pass of k^2 taps beats two of k on
        # the CPU at StyleGAN2's k = 4 (10.7 vs 13.7 ms fwd+bwd at 8x64x64x64, down 2, 2 threads)
        f = torch.outer(f, f)
    if f.dim() == 1:
        k = f * (gain ** 0.5)
        if not flip_filter:
            k = k.flip(0)
        y = F.conv2d(y, k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, down_x), groups=c)  # along x
        y = F.conv2d(y, k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(down_y, 1), groups=c)  # along y
    else:
        k = f * gain
        if not flip_filter:
            k = k.flip([0, 1])
        y = F.conv2d(y, k[None, None].expand(c, 1, -1, -1), stride=(down_y, down_x), groups=c)
    return y.to(x.dtype)
