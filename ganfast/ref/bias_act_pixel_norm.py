"""Reference for ``bias_act_pixel_norm``: bias + leaky ReLU + ProGAN's pixel norm, in plain PyTorch.

This file is the definition of correct for every backend of
:func:`ganfast.ops.bias_act_pixel_norm`; the torch backend, the tests and the
benchmarks import it.

Karras et al. 2018 ("Progressive Growing of GANs for Improved Quality,
Stability, and Variation"), section 4.2, "pixelwise feature vector
normalization in generator", as tkarras/progressive_growing_of_gans
``networks.py`` writes it (``pixel_norm(x, epsilon=1e-8) = x *
rsqrt(mean(square(x), axis=1, keepdims=True) + epsilon)``, applied after
``leaky_relu(apply_bias(x))`` in every generator layer).  For x of shape
(N, C, H, W) or (N, C)::

    z = x + bias                       (bias broadcast along the channel dim 1)
    a = leaky_relu(z, negative_slope)  (negative_slope = 1: linear)
    y = a / sqrt(mean_c(a^2) + eps)    (per pixel, over the C channels)

The arithmetic runs in float32 for float16/bfloat16/float32 inputs and in
float64 for float64 inputs; the result has the dtype of ``x``.

:func:`bias_act_pixel_norm` is differentiable to any order by autograd and
is what the tests compare against.  :func:`bias_act_pixel_norm_grad` is the
closed form of its first derivative that the fast backends implement; the
tests check it against autograd (so the convention at the kink, z = 0
taking the slope, is torch's).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .._dtypes import compute_dtype

Tensor = torch.Tensor

__all__ = ["DEFAULT_EPS", "bias_act_pixel_norm", "bias_act_pixel_norm_grad", "pre_activation"]

#: ProGAN's epsilon under the square root (networks.py, ``pixel_norm``).
DEFAULT_EPS = 1e-8


def pre_activation(x: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``z = x + bias`` (bias along dim 1) in the compute dtype."""
    z = x.to(compute_dtype(x.dtype))
    if bias is not None:
        shape = [1] * x.dim()
        shape[1] = -1
        z = z + bias.to(z.dtype).reshape(shape)
    return z


def _inv_rms(a: Tensor, eps: float) -> Tensor:
    """``1 / sqrt(mean_c(a^2) + eps)``, keeping the channel dim (size 1)."""
    return torch.rsqrt(a.square().mean(dim=1, keepdim=True) + eps)


def bias_act_pixel_norm(x: Tensor, bias: Optional[Tensor] = None, negative_slope: float = 0.2,
                        eps: float = DEFAULT_EPS) -> Tensor:
    """Reference forward: ``pixel_norm(leaky_relu(x + bias, negative_slope), eps)``, in ``x``'s dtype."""
    a = F.leaky_relu(pre_activation(x, bias), negative_slope)
    return (a * _inv_rms(a, eps)).to(x.dtype)


def bias_act_pixel_norm_grad(grad: Tensor, x: Tensor, bias: Optional[Tensor], negative_slope: float = 0.2,
                             eps: float = DEFAULT_EPS) -> Tensor:
    """Closed form of the gradient w.r.t. ``x`` (equal to the one w.r.t. z) that the kernels implement.

    With ``r = 1 / sqrt(mean_c(a^2) + eps)`` and ``y = a r`` per pixel,
    ``dy_c / da_k = r [c == k] - r^3 a_c a_k / C``, so for the incoming
    gradient g::

        da = r * (g - y * mean_c(g * y))
        dz = da                  where z > 0
             da * negative_slope elsewhere (torch's leaky_relu backward)

    The bias gradient is ``dz`` summed over every dim but 1.  Returned in
    ``x``'s dtype; linear in ``grad``.
    """
    z = pre_activation(x, bias)
    a = F.leaky_relu(z, negative_slope)
    r = _inv_rms(a, eps)
    y = a * r
    g = grad.to(z.dtype)
    da = r * (g - y * (g * y).mean(dim=1, keepdim=True))
    return torch.where(z > 0, da, da * negative_slope).to(x.dtype)
