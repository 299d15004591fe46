"""Reference for ``minibatch_stddev``: ProGAN's minibatch standard deviation, StyleGAN2's form.

This file is the definition of correct for every backend of
:func:`ganfast.ops.minibatch_stddev`; the torch backend, the tests and the
benchmarks import it.

Karras et al. 2018 (ProGAN), section 3, as NVlabs' stylegan2-ada-pytorch
writes it (``MinibatchStdLayer``), for x of shape (N, C, H, W)::

    G = min(group_size, N)        n = N / G        F = num_channels        c = C / F
    y = x.reshape(G, n, F, c, H, W)     # sample i is in group i mod n, channels split in F parts
    y = y - y.mean(dim=0)               # deviation from the group mean
    y = y.square().mean(dim=0)          # biased variance over the G samples
    y = (y + eps).sqrt()                # standard deviation (eps = 1e-8)
    y = y.mean(dim=[2, 3, 4])           # (n, F): average over the c channels and H*W pixels
    out = cat([x, y broadcast to (N, F, H, W)], dim=1)

Two departures from StyleGAN2's code, neither changing the function:

* a batch that G does not divide is rejected by :func:`group_size_for` with
  a message that says so (StyleGAN2 fails inside ``reshape``);
* the deviations are computed from values shifted by the group's first
  sample, ``(x - x0) - mean(x - x0)``: the same numbers in exact arithmetic,
  but in float32 the error of a deviation is then ~1e-7 of the group's
  spread instead of ~1e-7 of |x|.  That matters exactly when the layer
  matters: samples that nearly coincide (mode collapse) have deviations near
  sqrt(eps), where the gradient's dev / sd is most sensitive to them.

The arithmetic runs in float32 for float16/bfloat16/float32 inputs and in
float64 for float64 inputs; the result has the dtype of ``x``.
"""

from __future__ import annotations

import torch

from .._dtypes import compute_dtype

Tensor = torch.Tensor

#: StyleGAN2's constant under the square root.
DEFAULT_EPS = 1e-8


def group_size_for(batch: int, group_size: int) -> int:
    """G = min(group_size, batch); a ValueError when G does not divide the batch."""
    g = min(int(group_size), int(batch))
    if batch % g != 0:
        raise ValueError(
            f"minibatch_stddev: the batch size ({batch}) must be divisible by the group size "
            f"min(group_size, batch) = {g}; use a batch that is a multiple of {g}, or a group_size "
            f"that divides {batch}"
        )
    return g


def _deviation(y: Tensor) -> Tensor:
    """``y - y.mean(dim=0)``, computed from values shifted by ``y[0]`` (see the module docstring)."""
    y = y - y[:1]
    return y - y.mean(dim=0)


def group_std(x: Tensor, group_size: int = 4, num_channels: int = 1, eps: float = DEFAULT_EPS) -> Tensor:
    """The statistic alone: shape (N / G, num_channels), in the compute dtype.

    Entry [m, f] belongs to samples m, m + n, m + 2n, ... (n = N / G).
    """
    N, C, H, W = x.shape
    G = group_size_for(N, group_size)
    F = int(num_channels)
    y = _deviation(x.to(compute_dtype(x.dtype)).reshape(G, -1, F, C // F, H, W))
    y = y.square().mean(dim=0)
    y = (y + eps).sqrt()
    return y.mean(dim=[2, 3, 4])


def minibatch_stddev(x: Tensor, group_size: int = 4, num_channels: int = 1, eps: float = DEFAULT_EPS) -> Tensor:
    """Reference forward: ``x`` with ``num_channels`` standard-deviation channels appended.

    Shape (N, C + num_channels, H, W), dtype of ``x``.  Differentiable to any
    order by autograd.
    """
    N, C, H, W = x.shape
    G = group_size_for(N, group_size)
    F = int(num_channels)
    s = group_std(x, group_size, num_channels, eps)  # (n, F)
    y = s.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # sample i = g * n + m gets s[m]
    return torch.cat([x, y.to(x.dtype)], dim=1)


def minibatch_stddev_grad(
    grad: Tensor, x: Tensor, group_size: int = 4, num_channels: int = 1, eps: float = DEFAULT_EPS
) -> Tensor:
    """Closed form of the gradient w.r.t. ``x`` that the kernels implement.

    With ``sd = sqrt(var + eps)`` per (group, channel, pixel), ``mu`` the
    group mean, and ``gs[m, f]`` the incoming gradient of the appended
    channel ``f`` summed over the G samples of group m and over H*W::

        dx[i, ch, p] = grad[i, ch, p] + gs[m, f] * (x[i, ch, p] - mu) / (G * c * H * W * sd)

    (the derivative of the group mean cancels out of the variance's).  In
    ``x``'s dtype; the tests check it against autograd of
    :func:`minibatch_stddev`.
    """
    N, C, H, W = x.shape
    G = group_size_for(N, group_size)
    F = int(num_channels)
    c = C // F
    acc = compute_dtype(x.dtype)
    gs = grad[:, C:].to(acc).sum(dim=[2, 3]).reshape(G, -1, F).sum(dim=0)  # (n, F)
    dev = _deviation(x.to(acc).reshape(G, -1, F, c, H, W))
    sd = (dev.square().mean(dim=0) + eps).sqrt()
    dy = dev * (gs.reshape(1, -1, F, 1, 1, 1) / (G * c * H * W)) / sd
    dx = grad[:, :C].to(acc) + dy.reshape(N, C, H, W)
    return dx.to(x.dtype)
