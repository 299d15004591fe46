"""Benchmark cases for ``ganfast.ops.modulated_conv2d`` (StyleGAN2's modulated convolution) at StyleGAN2's shapes.

Shapes: stylegan2-ada-pytorch's synthesis layers (``channel_base`` 32768,
``channel_max`` 512) with 3x3 kernels: the 64x64 block (512 channels, its
upsampling conv from 32x32 and its plain conv), the 256x256 block (128
channels) and the 1024x1024 block (32 channels), at batch 16 (256) or 4
(1024).  ``shape`` is x's; params ``out_channels``, ``kernel``, ``up``,
``padding``, ``demodulate``.

Baselines: ``eager`` is stylegan2-ada-pytorch's ``fused_modconv=False``
form as a user writes it (``x * styles``, ``conv2d`` with the shared weight,
``upfirdn2d``-style zero stuffing and a depthwise filter for up 2, ``* dcoefs``);
``compile`` is ``torch.compile`` of it.  ganfast's providers are the
``torch`` backend (per-sample weights, one grouped convolution: the
reference) and ``aten`` (the scaled form on ganfast's upfirdn2d); a fused
Triton kernel is not written yet.

Work counted: bytes of x, the weight and y once each (``s (E_x + E_w +
E_y)``; twice that plus dw for fwd+bwd); flops: the convolution's ``2 N O
I kh kw H' W'`` (forward), three times that for fwd+bwd (dx and dw).
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "modulated_conv2d"


class ModulatedConv2dCase(BenchCase):
    """``shape`` is x's (N, I, H, W)."""

    @property
    def out_hw(self):
        up = self.params["up"]
        return self.shape[2] * up, self.shape[3] * up

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        n, i, _, _ = self.shape
        o, k = self.params["out_channels"], self.params["kernel"]
        x = torch.randn(self.shape, device=device, generator=gen).to(dtype)
        w = (torch.randn(o, i, k, k, device=device, generator=gen) / (i * k * k) ** 0.5).to(dtype)
        s = (torch.randn(n, i, device=device, generator=gen) * 0.3 + 1).to(dtype)
        for t in (x, w, s):
            t.requires_grad_(requires_grad)
        return Inputs(args=(x, w, s), grads=[x, w, s] if requires_grad else [])

    def ganfast(self, x, w, s, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        p = self.params
        return ganfast.ops.modulated_conv2d(x, w, s, p["demodulate"], up=p["up"], padding=p["padding"],
                                            backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        p = self.params
        return _eager_form(p["up"], p["padding"], p["demodulate"])

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        n, i, _, _ = self.shape
        o, k = self.params["out_channels"], self.params["kernel"]
        ex, ew, ey = self.numel, o * i * k * k, n * o * self.out_hw[0] * self.out_hw[1]
        if pass_ == FWD:
            return s * (ex + ew + ey)
        if pass_ == FWD_BWD:
            return s * (3 * ex + 3 * ew + 3 * ey)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        n, i, _, _ = self.shape
        o, k = self.params["out_channels"], self.params["kernel"]
        fwd = 2 * n * o * i * k * k * self.out_hw[0] * self.out_hw[1]
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return 3 * fwd
        raise ValueError(f"unknown pass {pass_!r}")


def _eager_form(up: int, padding: int, demodulate: bool):
    """stylegan2-ada-pytorch's fused_modconv=False path as a PyTorch user writes it."""

    def modulated_conv2d_eager(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        n, c, h, wd = x.shape
        y = x * s.to(x.dtype)[:, :, None, None]
        if up > 1:  # zero stuffing, the [1, 3, 3, 1] filter (gain 4) with upsample2d's padding + the conv's
            y = F.pad(y.reshape(n, c, h, 1, wd, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, wd * up)
            y = F.pad(y, [padding + 2, padding + 1, padding + 2, padding + 1])
            f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=x.device) / 8
            k = (torch.outer(f, f) * up * up).to(y.dtype)
            y = F.conv2d(y, k[None, None].repeat(c, 1, 1, 1), groups=c)
            y = F.conv2d(y, w)
        else:
            y = F.conv2d(y, w, padding=padding)
        if demodulate:
            acc = torch.float64 if x.dtype == torch.float64 else torch.float32
            d = torch.rsqrt(s.to(acc).square() @ w.to(acc).square().sum(dim=(2, 3)).t() + 1e-8)
            y = y * d.to(y.dtype)[:, :, None, None]
        return y

    return modulated_conv2d_eager


def _case(n, c, r, up=1, o=None, quick=False, name="3x3") -> ModulatedConv2dCase:
    return ModulatedConv2dCase(op=OP, name=name + (" up 2" if up > 1 else ""), shape=(n, c, r, r),
                               params={"out_channels": o or c, "kernel": 3, "up": up, "padding": 1,
                                       "demodulate": True}, quick=quick)


def cases() -> List[ModulatedConv2dCase]:
    """``--quick``: two tiny cases; then StyleGAN2's synthesis convs at 64x64, 256x256 and 1024x1024."""
    return [
        _case(2, 8, 8, quick=True), _case(2, 8, 5, up=2, o=6, quick=True),
        _case(16, 512, 32, up=2, name="G 64"), _case(16, 512, 64, name="G 64"),
        _case(16, 256, 128, up=2, o=128, name="G 256"), _case(16, 128, 256, name="G 256"),
        _case(4, 32, 1024, name="G 1024"),
    ]
