"""``PixelNorm`` and ``BiasLeakyReLUPixelNorm``: ProGAN's pixelwise feature normalisation on
:func:`ganfast.ops.bias_act_pixel_norm`."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import _backend
from .._checks import TypeOrValueError, check_float, check_positive_int
from ..ops.bias_act_pixel_norm import bias_act_pixel_norm
from ..ref.bias_act_pixel_norm import DEFAULT_EPS

__all__ = ["BiasLeakyReLUPixelNorm", "PixelNorm"]


class PixelNorm(nn.Module):
    """ProGAN's pixelwise feature vector normalisation (Karras et al. 2018, section 4.2).

    ``y = x / sqrt(mean_c(x^2) + eps)`` per pixel of (N, C, H, W) maps, or
    per row of (N, C) vectors (ProGAN normalises the latent z this way).
    See :func:`ganfast.ops.bias_act_pixel_norm` (this is it with no bias and
    slope 1).

    Args:
        eps: added to the mean square, a finite number > 0 (ProGAN: 1e-8).
        backend: ``"auto"`` follows the global choice
            (:func:`ganfast.use_backend`); a backend name pins this layer.

    No parameters or buffers.

    Raises:
        ValueError: ``eps`` is not a finite positive number, or ``backend``
            is not a backend's name.
        TypeError: ``eps`` is not a number.
    """

    def __init__(self, eps: float = DEFAULT_EPS, backend: str = "auto") -> None:
        super().__init__()
        self.eps = check_float(eps, "eps", positive=True)
        self.backend = _backend.check_backend(backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_act_pixel_norm(x, None, 1.0, self.eps, backend=None if self.backend == "auto" else self.backend)

    def extra_repr(self) -> str:
        parts = [f"eps={self.eps}"] if self.eps != DEFAULT_EPS else []
        return ", ".join(parts + ([f"backend={self.backend!r}"] if self.backend != "auto" else []))


class BiasLeakyReLUPixelNorm(nn.Module):
    """ProGAN's generator layer tail, ``pixel_norm(leaky_relu(x + bias, 0.2))``, in one pass.

    For a convolution created with ``bias=False`` followed by this layer:
    tkarras/progressive_growing_of_gans ``networks.py`` writes
    ``PN(act(apply_bias(conv2d(x))))``.  See
    :func:`ganfast.ops.bias_act_pixel_norm`.

    Args:
        channels: C, the size of the (C,) bias (initialised to 0 as ProGAN does).
        negative_slope: the leaky ReLU's slope in [0, 1] (ProGAN: 0.2).
        eps: added to the mean square, > 0 (ProGAN: 1e-8).
        bias: whether to have a bias.
        backend: as :class:`PixelNorm`.

    Raises:
        ValueError: ``channels`` is not a positive int, ``negative_slope`` is
            outside [0, 1], ``eps`` is not finite positive, or ``backend`` unknown.
        TypeError: a number argument is not a number.
    """

    def __init__(self, channels: int, negative_slope: float = 0.2, eps: float = DEFAULT_EPS, bias: bool = True,
                 backend: str = "auto") -> None:
        super().__init__()
        self.channels = check_positive_int(channels, "channels", TypeOrValueError)
        self.negative_slope = check_float(negative_slope, "negative_slope", minimum=0.0, maximum=1.0)
        self.eps = check_float(eps, "eps", positive=True)
        self.backend = _backend.check_backend(backend)
        self.bias: Optional[nn.Parameter] = nn.Parameter(torch.zeros(self.channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(x, torch.Tensor) and x.dim() >= 2 and x.shape[1] != self.channels:
            raise ValueError(f"x: BiasLeakyReLUPixelNorm(channels={self.channels}) expects {self.channels} channels "
                             f"in dim 1; got shape {tuple(x.shape)}")
        return bias_act_pixel_norm(x, self.bias, self.negative_slope, self.eps,
                                   backend=None if self.backend == "auto" else self.backend)

    def extra_repr(self) -> str:
        parts = [f"{self.channels}", f"negative_slope={self.negative_slope}"]
        if self.eps != DEFAULT_EPS:
            parts.append(f"eps={self.eps}")
        if self.bias is None:
            parts.append("bias=False")
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
