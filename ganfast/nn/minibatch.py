"""Discriminator layers that look across the minibatch: ``MinibatchStdDev`` and ``MinibatchDiscrimination``."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import _backend
from ..ops.minibatch_discrimination import minibatch_discrimination
from ..ops.minibatch_stddev import minibatch_stddev
from ..ref.minibatch_stddev import DEFAULT_EPS


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


class MinibatchStdDev(nn.Module):
    """ProGAN's minibatch standard deviation layer (Karras et al. 2018), StyleGAN2's form.

    (N, C, H, W) -> (N, C + num_channels, H, W): per group of
    G = min(group_size, N) samples (sample i in group i mod N/G) and per part
    of C / num_channels channels, the standard deviation over the group,
    averaged over the part's channels and pixels, appended as a channel.
    See :func:`ganfast.ops.minibatch_stddev`.

    Args:
        group_size: samples per group (StyleGAN2: 4; ProGAN used 4 too).
        num_channels: appended channels (ProGAN: 1; StyleGAN2: 1).
        eps: added to the variance before the square root.
        backend: ``"auto"`` follows the global choice
            (:func:`ganfast.use_backend`); a backend name pins this layer.

    No parameters or buffers.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1, eps: float = DEFAULT_EPS,
                 backend: str = "auto") -> None:
        super().__init__()
        self.group_size = _positive_int(group_size, "group_size")
        self.num_channels = _positive_int(num_channels, "num_channels")
        self.eps = float(eps)
        self.backend = _backend._check_name(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_stddev(x, self.group_size, self.num_channels, self.eps,
                                backend=None if self.backend == "auto" else self.backend)

    def extra_repr(self) -> str:
        parts = [f"group_size={self.group_size}", f"num_channels={self.num_channels}"]
        if self.eps != DEFAULT_EPS:
            parts.append(f"eps={self.eps}")
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, section 3.2).

    (B, in_features) -> (B, in_features + num_kernels): with
    M = x @ T reshaped to (B, num_kernels, kernel_dim), appends
    o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1).  See
    :func:`ganfast.ops.minibatch_discrimination`.

    The parameter ``T`` has shape (in_features, num_kernels, kernel_dim)
    (the paper's A x B x C tensor) and is initialised from
    N(0, 1 / in_features): then M has about the scale of x, so for
    unit-scale features the L1 distances are a few units and exp(-distance)
    neither vanishes nor saturates.  (A standard-normal T, common in ports,
    makes M ~ sqrt(in_features) times larger: at in_features = 8192 every
    exp(-distance) underflows to 0 and the layer starts with no gradient.)

    Args:
        in_features, num_kernels, kernel_dim: A, B and C of the paper.
        backend: ``"auto"`` follows the global choice; a name pins this layer.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int, backend: str = "auto",
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.num_kernels = _positive_int(num_kernels, "num_kernels")
        self.kernel_dim = _positive_int(kernel_dim, "kernel_dim")
        self.backend = _backend._check_name(backend)
        self.T = nn.Parameter(torch.empty(in_features, num_kernels, kernel_dim, device=device, dtype=dtype))
        self.reset_parameters()

    @property
    def out_features(self) -> int:
        return self.in_features + self.num_kernels

    def reset_parameters(self) -> None:
        nn.init.normal_(self.T, 0.0, 1.0 / math.sqrt(self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_discrimination(x, self.T, backend=None if self.backend == "auto" else self.backend)

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"
        if self.backend != "auto":
            text += f", backend={self.backend!r}"
        return text
