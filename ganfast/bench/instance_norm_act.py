"""Benchmark cases for ``ganfast.ops.instance_norm_act`` (CycleGAN's and pix2pix's layer tail).

Shapes: CycleGAN's ResNet generator at 256x256 (``resnet_9blocks``, ngf 64:
c7s1-64 at 256x256, d128 at 128x128, d256 and the nine residual blocks at
64x64, u128, u64), batch 1 (the paper's) and 8; ``shape`` is x's.  Affine
(the released code's ``InstanceNorm2d(affine=False)`` is the default; the
cases keep the affine so its gradient is timed too) and ReLU.

Baselines: ``eager`` is ``F.relu(F.instance_norm(x, weight=w, bias=b))``,
what ``nn.InstanceNorm2d`` + ``nn.ReLU`` run; ``compile`` is
``torch.compile`` of it.

Work counted (``s`` bytes per element, ``E`` elements of x): the forward
reads x twice (statistics, then normalise) and writes y, ``3 E s``; the
backward reads the incoming gradient and x twice (reduce, then apply) and
writes dx, ``5 E s``; the (C,) and (N*C,) vectors are negligible.  That is
the two-pass structure every implementation is compared on (eager moves
more).  Flops are nominal: 5 per element forward, 9 more backward.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch
import torch.nn.functional as F

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "instance_norm_act"


class InstanceNormActCase(BenchCase):
    """``relu(instance_norm(x) * weight + bias)``; ``shape`` is x's (N, C, H, W)."""

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        c = self.shape[1]
        # Drawn in float32 and cast, so every dtype sees the same values.
        x = (torch.randn(self.shape, device=device, generator=gen) * 2 + 0.5).to(dtype)
        w = (torch.rand(c, device=device, generator=gen) + 0.5).to(dtype)
        b = torch.randn(c, device=device, generator=gen).to(dtype)
        for t in (x, w, b):
            t.requires_grad_(requires_grad)
        return Inputs(args=(x, w, b), grads=[x, w, b] if requires_grad else [])

    def ganfast(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
                backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        return ganfast.ops.instance_norm_act(x, w, b, backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        return _eager_instance_norm_relu

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s, e = element_size(dtype), self.numel
        if pass_ == FWD:
            return 3 * e * s
        if pass_ == FWD_BWD:
            return 8 * e * s
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        if pass_ == FWD:
            return 5 * self.numel
        if pass_ == FWD_BWD:
            return 14 * self.numel
        raise ValueError(f"unknown pass {pass_!r}")


def _eager_instance_norm_relu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``nn.InstanceNorm2d(C, affine=True)`` then ``nn.ReLU()``, as a user's CycleGAN layer runs them."""
    return F.relu(F.instance_norm(x, weight=w, bias=b))


def _case(shape, quick: bool = False) -> InstanceNormActCase:
    return InstanceNormActCase(op=OP, name="relu", shape=tuple(shape), params={}, quick=quick)


def cases() -> List[InstanceNormActCase]:
    """``--quick``: one tiny case; then CycleGAN's generator layers at 256x256, batch 1 and 8."""
    out = [_case((2, 16, 16, 16), quick=True)]
    for batch in (1, 8):
        out += [_case((batch, c, side, side)) for c, side in ((64, 256), (128, 128), (256, 64))]
    return out
