"""Reference for the BatchNorm + LeakyReLU stage of the fused conv blocks.

The definition of correct is the unfused torch.nn composition,
:func:`batch_norm_act` below: ``F.batch_norm`` then ``F.leaky_relu``, with
``F.batch_norm``'s running-statistics semantics (the blocks' own references,
convolution included, are :mod:`ganfast.ref.conv_bn_act` and
:mod:`ganfast.ref.conv_transpose_bn_act`).

The other functions are the torch backend of the ``batch_norm_act`` op: the
same host-function interface as ``ganfast.kernels.batch_norm_act`` (per-channel
statistics, the fused normalise + affine + activation pass, and the two
passes of its backward), written in plain PyTorch.  The channel dimension is
1; ``acc`` is float32 for float16/bfloat16/float32 inputs and float64 for
float64 inputs.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .._dtypes import compute_dtype

Tensor = torch.Tensor


def batch_norm_act(
    y: Tensor,
    running_mean: Optional[Tensor],
    running_var: Optional[Tensor],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    training: bool,
    momentum: float,
    eps: float,
    negative_slope: float,
) -> Tensor:
    """``leaky_relu(F.batch_norm(y, ...), negative_slope)``: Ioffe & Szegedy 2015, Algorithm 1, then the activation.

    With ``training=True`` the batch statistics normalise and the running
    statistics (if given) are updated in place, as ``nn.BatchNorm2d`` does.
    """
    z = F.batch_norm(y, running_mean, running_var, weight, bias, training, momentum, eps)
    return F.leaky_relu(z, negative_slope)


# -- torch backend of the batch_norm_act op ------------------------------------


def _bcast(t: Tensor, y: Tensor) -> Tensor:
    return t.reshape([1, -1] + [1] * (y.dim() - 2))


def _reduce_dims(y: Tensor):
    return [0] + list(range(2, y.dim()))


def channel_stats(y: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance, in the accumulation dtype."""
    acc = y.to(compute_dtype(y.dtype))
    var, mean = torch.var_mean(acc, dim=_reduce_dims(y), correction=0)
    return mean, var


def _pre(y: Tensor, scale: Tensor, shift: Tensor, center: Optional[Tensor]) -> Tensor:
    # Centred first: y * scale + (beta - mean * scale) would cancel when |mean| >> std.
    acc = y.to(scale.dtype)
    if center is not None:
        acc = acc - _bcast(center, y)
    return acc * _bcast(scale, y) + _bcast(shift, y)


def scale_shift_act(y: Tensor, scale: Tensor, shift: Tensor, negative_slope: float,
                    center: Optional[Tensor] = None) -> Tensor:
    """``leaky_relu((y - center[c]) * scale[c] + shift[c])`` in ``y``'s dtype (center defaults to 0)."""
    return F.leaky_relu(_pre(y, scale, shift, center), negative_slope).to(y.dtype)


def _gz(grad: Tensor, y: Tensor, scale: Tensor, shift: Tensor, center: Tensor, negative_slope: float) -> Tensor:
    # torch's leaky_relu backward: pre > 0 ? g : g * slope.
    pre = _pre(y, scale, shift, center)
    g = grad.to(scale.dtype)
    return torch.where(pre > 0, g, g * negative_slope)


def scale_shift_act_backward_reduce(
    grad: Tensor, y: Tensor, scale: Tensor, shift: Tensor, mean: Tensor, negative_slope: float
) -> Tuple[Tensor, Tensor]:
    """Per channel: sum of gz and of gz * (y - mean), gz the gradient before the activation
    of ``(y - mean) * scale + shift``."""
    gz = _gz(grad, y, scale, shift, mean, negative_slope)
    xc = y.to(scale.dtype) - _bcast(mean, y)
    dims = _reduce_dims(y)
    return gz.sum(dims), (gz * xc).sum(dims)


def bn_act_backward_apply(
    grad: Tensor,
    y: Tensor,
    scale: Tensor,
    shift: Tensor,
    mean: Tensor,
    invstd: Tensor,
    gamma_invstd: Tensor,
    sum_gz: Tensor,
    sum_gz_xc: Tensor,
    count: int,
    negative_slope: float,
) -> Tensor:
    """BatchNorm's training backward fused with the activation's:
    ``gamma_invstd * (gz - sum_gz / M - (y - mean) * invstd^2 * sum_gz_xc / M)``."""
    gz = _gz(grad, y, scale, shift, mean, negative_slope)
    xc = y.to(scale.dtype) - _bcast(mean, y)
    dy = _bcast(gamma_invstd, y) * (
        gz - _bcast(sum_gz / count, y) - xc * _bcast(invstd * invstd * sum_gz_xc / count, y)
    )
    return dy.to(y.dtype)


def scale_shift_act_backward(grad: Tensor, y: Tensor, scale: Tensor, shift: Tensor, negative_slope: float,
                             center: Optional[Tensor] = None) -> Tensor:
    """Gradient of :func:`scale_shift_act` w.r.t. ``y`` with fixed scale, shift and centre."""
    return (_gz(grad, y, scale, shift, center, negative_slope) * _bcast(scale, y)).to(y.dtype)
