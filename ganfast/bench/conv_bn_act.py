"""Benchmark cases for ``ganfast.ops.conv_bn_act`` (Conv2d -> BatchNorm2d -> LeakyReLU).

(The generator block's cases, ``ganfast/bench/conv_transpose_bn_act.py``,
reuse this class with ``transposed=True``.)

Shapes: the BatchNorm layers of a DCGAN discriminator at 64x64 (batch 128,
ndf 64) and of a 256x256 discriminator (batch 32), training mode (batch
statistics, running statistics updated) and eval mode (running statistics).

Memory traffic (``s`` bytes per element; X input, Y = conv output elements,
W weights), counted as the fewest bytes a fused implementation must move:

* training forward: read X and W, write Y (convolution), read Y (statistics),
  read Y and write the output: ``s * (X + W + 4 Y)``;
* eval forward: read X and W, write Y, read Y and write the output
  (``bias_act`` after the convolution): ``s * (X + W + 3 Y)``;
* backward (training): read g and Y (reduction), read g and Y and write dY
  (apply), then the convolution's backward reads dY, X and W and writes dX and
  dW: ``s * (5 Y + 2 X + 2 W)`` more.

FLOPs are the convolution's 2 * N * Cout * Hout * Wout * Cin * kh * kw
forward (twice that for the backward's two GEMMs), plus ~10 per output
element for the normalisation and activation.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "conv_bn_act"


class ConvBNActCase(BenchCase):
    """``shape`` is the input (N, Cin, H, W); params: cout, k, stride, padding, training, slope, and
    ``transposed`` (ConvTranspose2d, with ``output_padding``) for the generator block."""

    def _geom(self):
        p = self.params
        n, cin, h, w = self.shape
        k, s, pad = p["k"], p["stride"], p["padding"]
        if p.get("transposed"):
            op = p.get("output_padding", 0)
            ho, wo = (h - 1) * s - 2 * pad + k + op, (w - 1) * s - 2 * pad + k + op
        else:
            ho, wo = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        return n, cin, p["cout"], k, ho, wo

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        n, cin, cout, k, _, _ = self._geom()
        gen = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn(self.shape, device=device, generator=gen).to(dtype)
        wshape = (cin, cout, k, k) if self.params.get("transposed") else (cout, cin, k, k)
        w = (torch.randn(wshape, device=device, generator=gen) / (cin * k * k) ** 0.5).to(dtype)
        # BatchNorm parameters stay float32, as in a mixed-precision model.
        gamma = 1 + 0.1 * torch.randn(cout, device=device, generator=gen)
        beta = 0.1 * torch.randn(cout, device=device, generator=gen)
        rm = 0.1 * torch.randn(cout, device=device, generator=gen)
        rv = 1 + torch.rand(cout, device=device, generator=gen)
        leaves = [x, w, gamma, beta]
        for t in leaves:
            t.requires_grad_(requires_grad)
        return Inputs(args=(x, w, gamma, beta, rm, rv), grads=leaves if requires_grad else [])

    def ganfast(self, x, w, gamma, beta, rm, rv, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        p = self.params
        kw = dict(training=p["training"], momentum=0.1, eps=1e-5, stride=p["stride"], padding=p["padding"],
                  negative_slope=p.get("slope", 0.2), backend=backend)
        if p.get("transposed"):
            return ganfast.ops.conv_transpose_bn_act(x, w, None, gamma, beta, rm, rv,
                                                     output_padding=p.get("output_padding", 0), **kw)
        return ganfast.ops.conv_bn_act(x, w, None, gamma, beta, rm, rv, **kw)

    def eager(self) -> Callable[..., torch.Tensor]:
        p = self.params

        def conv_bn_lrelu_eager(x, w, gamma, beta, rm, rv):
            if p.get("transposed"):
                y = F.conv_transpose2d(x, w, None, p["stride"], p["padding"], p.get("output_padding", 0))
            else:
                y = F.conv2d(x, w, None, p["stride"], p["padding"])
            y = F.batch_norm(y, rm, rv, gamma.to(y.dtype) if y.dtype == torch.float64 else gamma,
                             beta.to(y.dtype) if y.dtype == torch.float64 else beta, p["training"], 0.1, 1e-5)
            return F.leaky_relu(y, p.get("slope", 0.2))

        return conv_bn_lrelu_eager

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        n, cin, cout, k, ho, wo = self._geom()
        x, w, y = self.numel, cout * cin * k * k, n * cout * ho * wo
        fwd = s * (x + w + (4 if self.params["training"] else 3) * y)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + s * (5 * y + 2 * x + 2 * w)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        n, cin, cout, k, ho, wo = self._geom()
        y = n * cout * ho * wo
        conv = 2 * y * cin * k * k
        if pass_ == FWD:
            return conv + 10 * y
        if pass_ == FWD_BWD:
            return 3 * conv + 25 * y
        raise ValueError(f"unknown pass {pass_!r}")


def block_cases(name: str, shape, cout: int, k: int = 4, stride: int = 2, padding: int = 1, quick: bool = False,
                op: str = OP, **extra: Any) -> List[ConvBNActCase]:
    """One layer's two cases, training and eval mode."""
    return [
        ConvBNActCase(op=op, name=f"{name} {mode}", shape=tuple(shape),
                      params=dict(cout=cout, k=k, stride=stride, padding=padding, training=mode == "train", **extra),
                      quick=quick)
        for mode in ("train", "eval")
    ]


#: (name, input shape (N, Cin, H, W), Cout): the BatchNorm layers of a DCGAN
#: discriminator at 64x64 (batch 128, ndf 64) and of a 256x256 discriminator
#: (batch 32, 128x128 down to 8x8); every one a k4 s2 p1 convolution.
LAYERS = [
    ("dcgan64 L2", (128, 64, 32, 32), 128),
    ("dcgan64 L3", (128, 128, 16, 16), 256),
    ("dcgan64 L4", (128, 256, 8, 8), 512),
    ("d256 L2", (32, 64, 128, 128), 128),
    ("d256 L3", (32, 128, 64, 64), 256),
    ("d256 L4", (32, 256, 32, 32), 512),
    ("d256 L5", (32, 512, 16, 16), 512),
    ("d256 L6", (32, 512, 8, 8), 512),
]


def cases() -> List[ConvBNActCase]:
    """The conv_bn_act benchmark table: ``--quick`` cases first, then the full set."""
    out = block_cases("tiny", (4, 8, 16, 16), cout=16, quick=True)
    for name, shape, cout in LAYERS:
        out += block_cases(name, shape, cout=cout)
    return out
