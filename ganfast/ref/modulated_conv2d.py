"""Reference for ``modulated_conv2d``: StyleGAN2's weight modulation and demodulation, in plain PyTorch.

This file is the definition of correct for every backend of
:func:`ganfast.ops.modulated_conv2d`; the torch backend, the tests and the
benchmarks import it.

Karras et al. 2020 ("Analyzing and Improving the Image Quality of
StyleGAN"), section 2.2, equations 1-3.  Each sample n has its own weights,
the layer's weight w (O, I, kh, kw) scaled by the sample's style s_n (I,)
along the input channels, then, with demodulation, each output channel
renormalised to unit expected standard deviation::

    w'_{n,o,i,k}  = s_{n,i} * w_{o,i,k}                                   (eq. 1)
    sigma_{n,o}   = sqrt(sum_{i,k} w'_{n,o,i,k}^2 + eps)                   (eq. 2, 3; eps = 1e-8)
    w''_{n,o,i,k} = w'_{n,o,i,k} / sigma_{n,o}
    y_n           = conv2d_resample(x_n, w''_n) + noise_n

computed here as one grouped convolution of the batch (groups = N, the
"fused" form of NVlabs/stylegan2-ada-pytorch ``training/networks.py``
``modulated_conv2d``).  :func:`conv2d_resample` is the convolution with
StyleGAN2's resampling (stylegan2-ada-pytorch ``torch_utils/ops/
conv2d_resample.py`` semantics): with ``up`` > 1 the input is upsampled by
upfirdn2d (zero insertion, the resampling filter f, gain up^2) with the
layer's padding and f's centring folded into upfirdn2d's padding, then
convolved without padding; with ``down`` > 1 it is filtered the same way and
convolved with stride ``down``; otherwise a plain padded convolution.

Arithmetic in float32 for float16/bfloat16/float32 inputs and float64 for
float64 inputs; the result has ``x``'s dtype.  Differentiable to any order
by autograd (path-length regularisation differentiates G's output w.r.t.
the styles; lazy R1 differentiates D twice).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .._dtypes import compute_dtype
from . import upfirdn2d as ufd

Tensor = torch.Tensor

__all__ = ["DEFAULT_EPS", "conv2d_resample", "demodulation", "modulated_conv2d", "resample_padding"]

#: Karras et al. 2020, eq. 3: "epsilon to avoid numerical issues" (stylegan2-ada-pytorch: 1e-8).
DEFAULT_EPS = 1e-8


def resample_padding(padding: int, f_h: int, f_w: int, up: int, down: int) -> Tuple[int, int, int, int]:
    """upfirdn2d's ``(x0, x1, y0, y1)`` padding for a convolution with ``padding`` and resampling by ``up``/``down``.

    The layer's own padding plus the filter's centring: ``(f + up - 1) // 2``
    before and ``(f - up) // 2`` after when upsampling (the padding of
    :func:`ganfast.ops.upsample2d`), ``(f - down + 1) // 2`` and ``(f - down)
    // 2`` when downsampling (:func:`ganfast.ops.downsample2d`).
    """
    if up > 1:
        return (padding + (f_w + up - 1) // 2, padding + (f_w - up) // 2,
                padding + (f_h + up - 1) // 2, padding + (f_h - up) // 2)
    return (padding + (f_w - down + 1) // 2, padding + (f_w - down) // 2,
            padding + (f_h - down + 1) // 2, padding + (f_h - down) // 2)


def _filter_hw(f: Tensor) -> Tuple[int, int]:
    return (f.shape[0], f.shape[0]) if f.dim() == 1 else (f.shape[0], f.shape[1])


def conv2d_resample(x: Tensor, w: Tensor, f: Optional[Tensor], up: int = 1, down: int = 1, padding: int = 0,
                    groups: int = 1) -> Tensor:
    """``conv2d(x, w)`` with StyleGAN2's resampling (the module docstring); dtypes as given (no casting)."""
    if up > 1 or down > 1:
        f_h, f_w = _filter_hw(f)
        pad = resample_padding(padding, f_h, f_w, up, down)
        if up > 1:
            x = ufd.upfirdn2d(x, f, (up, up), (1, 1), pad, False, float(up * up))
            return F.conv2d(x, w, groups=groups)
        x = ufd.upfirdn2d(x, f, (1, 1), (1, 1), pad, False, 1.0)
        return F.conv2d(x, w, stride=down, groups=groups)
    return F.conv2d(x, w, padding=padding, groups=groups)


def demodulation(weight: Tensor, styles: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """``1 / sigma_{n,o}`` (eq. 3) as (N, O): ``rsqrt(sum_{i,k} (s_{n,i} w_{o,i,k})^2 + eps)``.

    Computed as ``(s^2) @ (sum_k w^2)^T``: the per-sample weights are not
    materialised (the same numbers, summed in another order).
    """
    wsq = weight.square().sum(dim=(2, 3))  # (O, I)
    return torch.rsqrt(styles.square() @ wsq.t() + eps)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, noise: Optional[Tensor] = None,
                     resample_filter: Optional[Tensor] = None, demodulate: bool = True, up: int = 1, down: int = 1,
                     padding: int = 0, eps: float = DEFAULT_EPS) -> Tensor:
    """StyleGAN2's modulated convolution by per-sample weights (eqs. 1-3), one grouped conv over the batch.

    x (N, I, H, W), weight (O, I, kh, kw), styles (N, I), noise broadcastable
    to the output (N, O, H', W'), resample_filter for ``up``/``down`` > 1.
    Arguments are not checked here (:func:`ganfast.ops.modulated_conv2d`
    checks them).
    """
    dtype = compute_dtype(x.dtype)
    n, i, h, w_ = x.shape
    o = weight.shape[0]
    wgt = weight.to(dtype)[None] * styles.to(dtype)[:, None, :, None, None]  # (N, O, I, kh, kw), eq. 1
    if demodulate:
        wgt = wgt * torch.rsqrt(wgt.square().sum(dim=(2, 3, 4)) + eps)[:, :, None, None, None]  # eqs. 2-3
    f = resample_filter.to(dtype) if resample_filter is not None else None
    y = conv2d_resample(x.to(dtype).reshape(1, n * i, h, w_), wgt.reshape(n * o, i, *weight.shape[2:]), f, up, down,
                        padding, groups=n)
    y = y.reshape(n, o, y.shape[2], y.shape[3])
    if noise is not None:
        y = y + noise.to(dtype)
    return y.to(x.dtype)
