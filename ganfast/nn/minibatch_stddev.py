"""``MinibatchStdDev``: ProGAN's minibatch standard deviation layer on :func:`ganfast.ops.minibatch_stddev`."""

from __future__ import annotations

import torch
from torch import nn

from .. import _backend
from .._checks import TypeOrValueError, check_float, check_positive_int
from ..ops.minibatch_stddev import minibatch_stddev
from ..ref.minibatch_stddev import DEFAULT_EPS


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

    Raises:
        ValueError: ``group_size`` or ``num_channels`` is not a positive int
            (a :class:`ganfast._checks.TypeOrValueError` when not an int at
            all), ``eps`` is negative or not finite, or ``backend`` unknown.
        TypeError: ``eps`` is not a number.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1, eps: float = DEFAULT_EPS,
                 backend: str = "auto") -> None:
        super().__init__()
        self.group_size = check_positive_int(group_size, "group_size", TypeOrValueError)
        self.num_channels = check_positive_int(num_channels, "num_channels", TypeOrValueError)
        self.eps = check_float(eps, "eps", minimum=0.0)
        self.backend = _backend.check_backend(backend)

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
