"""Benchmark cases for ``ganfast.ops.bias_act_pixel_norm`` (ProGAN's generator layer tail).

Shapes: a ProGAN generator's feature maps at batch 16, from 4x4 to 1024x1024,
with the channels of ProGAN's ``nf(stage) = min(8192 / 2^stage, 512)`` (512 up
to 32x32, then 256, 128, 64, 32 and 16 at 1024x1024), plus the (16, 512)
latent batch that ProGAN normalises before the first layer (no bias there
in ProGAN; the case keeps one, slope 1.0).  ``shape`` is x's.

Baselines: ``eager`` is ProGAN's code as a PyTorch user ports it
(``x + b``, ``F.leaky_relu``, ``x * torch.rsqrt(x.pow(2).mean(1,
keepdim=True) + eps)``), ``compile`` is ``torch.compile`` of it.

Work counted (``s`` bytes per element, ``E`` elements of x, ``C`` channels):
the forward reads x and the bias and writes y, ``s (2 E + C)``; the backward
reads the incoming gradient and x and writes dx (``3 E s``), then the bias
gradient reads dx again and writes db (``E s + C s``): the two-pass backward
every implementation is compared on.  Flops are nominal: 6 per element
forward (add, leaky_relu, square, sum, scale; the per-pixel rsqrt is
amortised over C), 8 more backward.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from .bias_act import BiasActCase
from .case import FWD, FWD_BWD, element_size

OP = "bias_act_pixel_norm"


class BiasActPixelNormCase(BiasActCase):
    """``shape`` is x's, (N, C, H, W) or (N, C); params ``negative_slope`` and ``eps``.

    Inputs (x, and a bias along dim 1) are :class:`BiasActCase`'s.
    """

    def ganfast(self, x: torch.Tensor, b: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        return ganfast.ops.bias_act_pixel_norm(x, b, self.params["negative_slope"], self.params["eps"],
                                               backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        return _progan_form(self.params["negative_slope"], self.params["eps"])

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        e, c = self.numel, self.channels
        fwd = s * (2 * e + c)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + s * (3 * e) + s * (e + c)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        if pass_ == FWD:
            return 6 * self.numel
        if pass_ == FWD_BWD:
            return 14 * self.numel
        raise ValueError(f"unknown pass {pass_!r}")


def _progan_form(negative_slope: float, eps: float):
    """ProGAN's generator layer tail (networks.py: ``PN(act(apply_bias(x)))``), as a user ports it."""

    def progan_pixel_norm_eager(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        x = x + b.view(shape)
        x = F.leaky_relu(x, negative_slope)
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)

    return progan_pixel_norm_eager


def _progan_channels(side: int) -> int:
    """ProGAN's nf(stage) = min(fmap_base / 2^stage, fmap_max) with fmap_base 8192, fmap_max 512; 4x4 is stage 1."""
    stage = side.bit_length() - 2
    return min(8192 // 2**stage, 512)


def _case(shape, quick: bool = False, name: str = "lrelu 0.2", negative_slope: float = 0.2, eps: float = 1e-8,
          dtypes=("bfloat16", "float32")) -> BiasActPixelNormCase:
    return BiasActPixelNormCase(op=OP, name=name, shape=tuple(shape),
                                params={"negative_slope": negative_slope, "eps": eps}, dtypes=tuple(dtypes),
                                quick=quick)


def cases() -> List[BiasActPixelNormCase]:
    """``--quick``: two tiny cases; then ProGAN's generator at batch 16, 4x4 .. 1024x1024, and its latent batch."""
    out = [_case((4, 32, 8, 8), quick=True), _case((8, 64), quick=True, name="latent", negative_slope=1.0)]
    out += [_case((16, _progan_channels(side), side, side)) for side in (4, 8, 16, 32, 64, 128, 256, 512, 1024)]
    out.append(_case((16, 512), name="latent", negative_slope=1.0))
    return out
