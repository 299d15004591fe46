"""Benchmark cases for ``ganfast.ops.bias_act``.

Memory traffic (``s`` bytes per element, ``N`` elements in x, ``C`` in bias):

* forward: read x, read bias, write y: ``2*N*s + C*s``.  One fused pass; the
  eager composition ``act(x + b) * gain`` makes two or three passes over N.
* backward, as counted here: read the incoming gradient g and x (to know
  which side of the activation each element was on), write dx (``3*N*s``),
  then the bias-gradient reduction reads dx again and writes db
  (``N*s + C*s``).  A kernel that reduces db in the same pass as dx moves
  ``N*s`` less than counted, so its GB/s here reads high by up to a third of
  the backward traffic; the count is the two-pass backward every
  implementation (eager included) is compared on.

The issue target: bf16 forward at 64M elements reaching 85% or more of the
measured copy bandwidth (case ``leaky_relu`` at 64x1024x1024).
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "bias_act"

# Nominal floating-point operations per element of each activation and of its
# derivative times the incoming gradient; a transcendental (exp, tanh) counts
# as one.  Element-wise work is memory bound, so these only give the TFLOP/s
# column an order of magnitude.
_ACT_FLOPS = {"linear": 0, "relu": 1, "leaky_relu": 2, "tanh": 1, "sigmoid": 3, "silu": 4}
_DACT_FLOPS = {"linear": 1, "relu": 2, "leaky_relu": 3, "tanh": 3, "sigmoid": 3, "silu": 6}

_SQRT2 = math.sqrt(2.0)


class BiasActCase(BenchCase):
    """``y = clamp(act(x + bias along dim) * gain, -clamp, clamp)``."""

    @property
    def channels(self) -> int:
        return self.shape[self.params.get("dim", 1)]

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        # Drawn in float32 and cast, so every dtype sees the same values.
        x = torch.randn(self.shape, device=device, generator=gen).to(dtype)
        b = torch.randn(self.channels, device=device, generator=gen).to(dtype)
        x.requires_grad_(requires_grad)
        b.requires_grad_(requires_grad)
        return Inputs(args=(x, b), grads=[x, b] if requires_grad else [])

    def _kwargs(self) -> dict:
        p = self.params
        return {
            "act": p.get("act", "leaky_relu"),
            "negative_slope": p.get("negative_slope", 0.2),
            "gain": p.get("gain", 1.0),
            "clamp": p.get("clamp"),
            "dim": p.get("dim", 1),
        }

    def ganfast(self, x: torch.Tensor, b: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        return ganfast.ops.bias_act(x, b, backend=backend, **self._kwargs())

    def eager(self) -> Callable[..., torch.Tensor]:
        kw = self._kwargs()
        return _eager_bias_act(kw["act"], kw["negative_slope"], kw["gain"], kw["clamp"], kw["dim"])

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        n, c = self.numel, self.channels
        fwd = 2 * n * s + c * s
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + 3 * n * s + (n * s + c * s)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        kw = self._kwargs()
        per = 1 + _ACT_FLOPS[kw["act"]] + (kw["gain"] != 1.0) + 2 * (kw["clamp"] is not None)
        if pass_ == FWD:
            return self.numel * per
        if pass_ == FWD_BWD:
            # dx = g * gain * act'(z), masked where the clamp was active; db sums dx.
            back = _DACT_FLOPS[kw["act"]] + (kw["gain"] != 1.0) + (kw["clamp"] is not None) + 1
            return self.numel * (per + back)
        raise ValueError(f"unknown pass {pass_!r}")


def _eager_bias_act(act: str, negative_slope: float, gain: float, clamp: Optional[float], dim: int):
    """The unfused PyTorch a user writes instead of ``bias_act``, e.g.
    ``F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2) * gain``: one kernel per step."""

    def bias_act_eager(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.ndim
        shape[dim] = -1
        y = x + b.view(shape)
        if act == "relu":
            y = F.relu(y)
        elif act == "leaky_relu":
            y = F.leaky_relu(y, negative_slope)
        elif act == "tanh":
            y = torch.tanh(y)
        elif act == "sigmoid":
            y = torch.sigmoid(y)
        elif act == "silu":
            y = F.silu(y)
        elif act != "linear":
            raise ValueError(f"unknown act {act!r}")
        if gain != 1.0:
            y = y * gain
        if clamp is not None:
            y = y.clamp(-clamp, clamp)
        return y

    return bias_act_eager


def _case(name: str, shape, quick: bool = False, dtypes=("bfloat16", "float32"), **params: Any) -> BiasActCase:
    params.setdefault("act", "leaky_relu")
    params.setdefault("gain", _SQRT2 if params["act"] in ("leaky_relu", "relu") else 1.0)
    params.setdefault("dim", 1)
    return BiasActCase(op=OP, name=name, shape=tuple(shape), params=params, dtypes=tuple(dtypes), quick=quick)


def cases() -> List[BiasActCase]:
    """The bias_act benchmark table: ``--quick`` cases first, then the full set."""
    lrelu = dict(act="leaky_relu", negative_slope=0.2)  # StyleGAN's lrelu, gain sqrt(2)
    return [
        # --quick: small enough for the Triton interpreter on a CPU.
        _case("leaky_relu", (4, 64, 16, 16), quick=True, **lrelu),
        _case("linear", (8, 256, 32), quick=True, act="linear"),
        # StyleGAN2-like feature maps (synthesis layers at 32^2, 128^2, 256^2).
        _case("leaky_relu", (32, 512, 32, 32), **lrelu),
        _case("leaky_relu", (16, 256, 128, 128), **lrelu),
        _case("leaky_relu", (8, 128, 256, 256), **lrelu),
        # 64M elements, bias along dim 1 (1024 channels): the bandwidth target.
        _case("leaky_relu", (64, 1024, 1024), **lrelu),
        _case("leaky_relu clamp=256", (64, 1024, 1024), dtypes=("bfloat16",), clamp=256.0, **lrelu),
        _case("linear", (64, 1024, 1024), dtypes=("bfloat16",), act="linear"),
        _case("silu", (64, 1024, 1024), dtypes=("bfloat16",), act="silu"),
    ]
