"""Benchmark cases for ``ganfast.ops.upfirdn2d`` (StyleGAN2's resampling) at StyleGAN2's shapes.

Shapes: stylegan2-ada-pytorch's networks (``channel_base`` 32768,
``channel_max`` 512: 512 channels up to 64x64, 256 at 128, 128 at 256, 64
at 512, 32 at 1024) with its [1, 3, 3, 1] filter: the skip generator's
upsampling of the RGB image to the next resolution, the residual
discriminator's blur-and-downsample of its feature maps (skip branch), and
the blur a strided convolution runs on (``filter2d``, padding to keep the
size).  ``shape`` is x's; params ``up``, ``down``, ``padding`` (x0, x1, y0,
y1) and ``gain`` as :func:`ganfast.ops.upsample2d` / ``downsample2d`` /
``filter2d`` pass them.

Baselines: ``eager`` is what a PyTorch user writes (stylegan2-ada-pytorch's
own fallback ``_upfirdn2d_ref`` does the same): zero-stuff by reshape and
pad, pad, a depthwise ``conv2d`` (groups = C) with the flipped filter, then a
strided slice.  ``compile`` is ``torch.compile`` of it.

Work counted (``s`` bytes per element): the forward reads x and writes y,
``s (E_in + E_out)``; the backward reads dy and writes dx: the fwd+bwd pass
moves twice that.  Flops: two per multiply-add of the taps that meet a
non-stuffed sample, ``2 E_out f_h f_w / (up_x up_y)`` forward and the
adjoint's ``2 E_in f_h f_w / (down_x down_y)`` backward.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "upfirdn2d"

_FILTER = (1.0, 3.0, 3.0, 1.0)


class UpFirDn2dCase(BenchCase):
    """``shape`` is x's (N, C, H, W); params ``up``, ``down``, ``padding``, ``gain``; the filter is StyleGAN2's."""

    def _filter(self, device) -> torch.Tensor:
        f = torch.tensor(_FILTER, device=device)
        return f / f.sum()

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn(self.shape, device=device, generator=gen).to(dtype)  # float32 draws: every dtype alike
        x.requires_grad_(requires_grad)
        return Inputs(args=(x, self._filter(device)), grads=[x] if requires_grad else [])

    def ganfast(self, x: torch.Tensor, f: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        p = self.params
        return ganfast.ops.upfirdn2d(x, f, p["up"], p["down"], tuple(p["padding"]), gain=p["gain"], backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        p = self.params
        return _eager_form(p["up"], p["down"], tuple(p["padding"]), p["gain"])

    @property
    def out_shape(self):
        n, c, h, w = self.shape
        up, down, (px0, px1, py0, py1) = self.params["up"], self.params["down"], self.params["padding"]
        k = len(_FILTER)
        return n, c, (h * up + py0 + py1 - k + down) // down, (w * up + px0 + px1 - k + down) // down

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        fwd = s * (self.numel + math.prod(self.out_shape))
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return 2 * fwd
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        taps = len(_FILTER) ** 2
        up, down = self.params["up"], self.params["down"]
        fwd = 2 * math.prod(self.out_shape) * taps // (up * up)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + 2 * self.numel * taps // (down * down)
        raise ValueError(f"unknown pass {pass_!r}")


def _eager_form(up: int, down: int, padding, gain: float):
    """upfirdn2d as a PyTorch user writes it: zero-stuff, pad, depthwise conv2d, strided slice."""
    px0, px1, py0, py1 = padding

    def upfirdn2d_eager(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if up > 1:
            x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0):x.shape[2] - max(-py1, 0), max(-px0, 0):x.shape[3] - max(-px1, 0)]
        k = (torch.outer(f, f) * gain).flip([0, 1]).to(x.dtype)
        x = F.conv2d(x, k[None, None].repeat(c, 1, 1, 1), groups=c)
        return x[:, :, ::down, ::down]

    return upfirdn2d_eager


def _up(shape, quick=False, name="upsample2d") -> UpFirDn2dCase:
    # upsample2d: up 2, padding ((k + 1) // 2, (k - 2) // 2) = (2, 1) per axis, gain up^2
    return UpFirDn2dCase(op=OP, name=name, shape=tuple(shape), params={"up": 2, "down": 1, "padding": (2, 1, 2, 1),
                                                                       "gain": 4.0}, quick=quick)


def _down(shape, quick=False, name="downsample2d") -> UpFirDn2dCase:
    # downsample2d: down 2, padding ((k - 1) // 2, (k - 2) // 2) = (1, 1) per axis
    return UpFirDn2dCase(op=OP, name=name, shape=tuple(shape), params={"up": 1, "down": 2, "padding": (1, 1, 1, 1),
                                                                       "gain": 1.0}, quick=quick)


def _blur(shape, name="filter2d") -> UpFirDn2dCase:
    # filter2d keeping the size: padding (k // 2, (k - 1) // 2) = (2, 1) per axis
    return UpFirDn2dCase(op=OP, name=name, shape=tuple(shape), params={"up": 1, "down": 1, "padding": (2, 1, 2, 1),
                                                                       "gain": 1.0})


def cases() -> List[UpFirDn2dCase]:
    """``--quick``: two tiny cases; then StyleGAN2's resampling at 256x256 (batch 16) and 1024x1024 (batch 4)."""
    return [
        _up((2, 8, 16, 16), quick=True), _down((2, 8, 17, 15), quick=True),
        _up((16, 3, 128, 128), name="upsample2d rgb->256"),
        _down((16, 128, 256, 256), name="downsample2d D 256"),
        _blur((16, 128, 256, 256), name="filter2d D 256"),
        _up((4, 3, 512, 512), name="upsample2d rgb->1024"),
        _down((4, 32, 1024, 1024), name="downsample2d D 1024"),
        _up((32, 512, 32, 32), name="upsample2d G 64 (batch 32)"),
    ]
