"""Benchmark cases for ``ganfast.ops.minibatch_stddev`` (ProGAN's layer, StyleGAN2's form).

Shapes: a ProGAN discriminator's feature maps at every resolution from 4x4
to 1024x1024, batch 16, group 4, one appended channel.  Channels follow
ProGAN's ``nf(stage) = min(8192 / 2^stage, 512)``: 512 up to 32x32, then
256, 128, 64, 32 and 16 at 1024x1024.  (ProGAN and StyleGAN2 apply the
layer once, in the 4x4 block; the larger shapes show how it scales when
placed earlier, and are where the memory traffic is.)  ``shape`` is x's
(N, C, H, W).

Baselines: ``eager`` is NVlabs' stylegan2-ada-pytorch ``MinibatchStdLayer``
code (reshape, subtract the group mean, square, mean, sqrt, mean, repeat,
cat), ``compile`` is ``torch.compile`` of it.

Work counted (``s`` bytes per element, ``E = N*C*H*W``, ``F`` appended
channels): forward reads x and writes the output,
``s (E + E + N*F*H*W)``; the backward reads the output's gradient and x and
writes dx, ``s (E + N*F*H*W + 2 E)`` more.  Flops are nominal: 7 per element
of x forward (shift, mean, deviation, square, variance, sqrt, sum), 9 more
backward.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "minibatch_stddev"


class MinibatchStdDevCase(BenchCase):
    """``shape`` is x's (N, C, H, W); params ``group_size`` and ``num_channels``."""

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        x = torch.randn(self.shape, device=device, generator=gen).to(dtype)
        x.requires_grad_(requires_grad)
        return Inputs(args=(x,), grads=[x] if requires_grad else [])

    def ganfast(self, x: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        return ganfast.ops.minibatch_stddev(x, self.params["group_size"], self.params["num_channels"],
                                            backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        return _stylegan2_form(self.params["group_size"], self.params["num_channels"])

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        N, C, H, W = self.shape
        e, extra = self.numel, N * self.params["num_channels"] * H * W
        fwd = s * (2 * e + extra)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + s * (3 * e + extra)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        if pass_ == FWD:
            return 7 * self.numel
        if pass_ == FWD_BWD:
            return 16 * self.numel
        raise ValueError(f"unknown pass {pass_!r}")


def _stylegan2_form(group_size: int, num_channels: int):
    """MinibatchStdLayer.forward of stylegan2-ada-pytorch, as a user copies it."""

    def minibatch_std_eager(x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = min(group_size, N)
        F = num_channels
        c = C // F
        y = x.reshape(G, -1, F, c, H, W)
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])
        y = y.reshape(-1, F, 1, 1)
        y = y.repeat(G, 1, H, W)
        return torch.cat([x, y], dim=1)

    return minibatch_std_eager


def _progan_channels(side: int) -> int:
    stage = side.bit_length() - 2  # 4x4 -> stage 1
    return min(8192 // 2**stage, 512)


def _case(shape, quick: bool = False, group_size: int = 4, num_channels: int = 1,
          dtypes=("bfloat16", "float32")) -> MinibatchStdDevCase:
    return MinibatchStdDevCase(op=OP, name=f"G={group_size} F={num_channels}", shape=tuple(shape),
                               params={"group_size": group_size, "num_channels": num_channels},
                               dtypes=tuple(dtypes), quick=quick)


def cases() -> List[MinibatchStdDevCase]:
    """``--quick``: one tiny case; then the ProGAN shapes 4x4 .. 1024x1024 at batch 16."""
    out = [_case((8, 16, 8, 8), quick=True)]
    out += [_case((16, _progan_channels(side), side, side)) for side in (4, 8, 16, 32, 64, 128, 256, 512, 1024)]
    return out
