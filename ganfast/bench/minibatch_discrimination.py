"""Benchmark cases for ``ganfast.ops.minibatch_discrimination`` (Salimans et al. 2016).

The timed function is the whole layer, ``cat([x, o(x @ T)])`` with x (B, A)
and T (A, K, D): the matmul and the concat are the same torch calls in every
provider, so the differences are the pairwise part.  Shapes from the issue:
B = 64, 256, 1024, A = 8192, K = 100, D = 5; ``shape`` is x's (B, A).

Baselines.  The harness times two baselines per case, ``eager`` and
``torch.compile`` of it, so each shape appears twice (param ``baseline``):

* ``naive``: the form the PyTorch ports of the paper write, broadcasting
  ``M[:, None] - M[None]`` to (B, B, K, D), then abs, sum over D, exp, sum
  over j, minus the j = i term exp(0) = 1.  At B = 1024 that tensor is 524M
  elements (1 GB in bf16), and autograd keeps it for the backward.
* ``cdist``: ``torch.cdist(p=1)`` per kernel on (K, B, D), then exp and the
  sum: the (B, B, K) distances only.  ``cdist`` has no float16/bfloat16
  kernels (CPU, and CUDA as far as we know), so for those dtypes it runs on
  a float32 copy of M, as a user would have to; the result is cast back.

In the ``cdist`` cases the ``eager`` and ``compile`` rows are the cdist form
and ``torch.compile`` of it, and the ganfast rows are timed again; the
issue's "faster than the cdist form" reads as ``speedup_vs_eager > 1`` there.

Accuracy, and why bfloat16 baseline rows may read ``mismatch``.  Every
provider is checked against the naive form run in float64 on the same
inputs.  The baselines store M = x @ T in the benchmark dtype; rounding M to
bfloat16 moves each L1 distance by ~D * 2^-9 * |M|, and with it every
exp(-distance) and the gradient of T: measured on a CPU at B = 64 (inputs as
below, M ~ N(0, 1)), the naive and cdist forms are 4.1e-2 off in T's
gradient, over the harness's 2e-2 for bfloat16, while ganfast (M kept in
float32, see :mod:`ganfast.ref.minibatch_discrimination`) is 2.4e-3 off.
The harness still times the flagged rows, and exits non-zero.  A smaller
input scale would hide this (1.4e-2 at M ~ N(0, 1/16)) without changing
it; the inputs stay at the module's initial scale instead.

Work counted (``s`` bytes per element):

* bytes: forward reads x and T, writes the output (B (A + K)), plus M
  written by the matmul and read by the pairwise kernel (2 B K D);
  fwd+bwd adds the output's gradient, x and T read again for the matmul
  gradients, dx and dT written and dM written and read (3 B K D).  The
  naive form moves O(B^2 K D) bytes on top of this, which is what the fused
  op saves.
* flops: the matmul, 2 B A K D forward and twice that backward, and the
  pairwise part, B^2 K (3 D + 2) forward (difference, abs and sum per
  dimension; exp and the sum over j) and B^2 K (7 D + 5) backward (the
  distances again, then the weight and sign products per dimension).
  Nominal counts: exp counts as one.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import torch

from .case import FWD, FWD_BWD, BenchCase, Inputs, element_size

OP = "minibatch_discrimination"


class MinibatchDiscriminationCase(BenchCase):
    """``shape`` is x's (B, A); params ``num_kernels``, ``kernel_dim`` and ``baseline`` (``naive`` | ``cdist``)."""

    @property
    def dims(self):
        B, A = self.shape
        return B, A, self.params["num_kernels"], self.params["kernel_dim"]

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        B, A, K, D = self.dims
        gen = torch.Generator(device=device).manual_seed(seed)
        # Drawn in float32 and cast.  T at the module's initial scale
        # (N(0, 1/A)): M ~ N(0, 1), L1 distances of a few units.
        x = torch.randn((B, A), device=device, generator=gen).to(dtype)
        T = (torch.randn((A, K, D), device=device, generator=gen) / math.sqrt(A)).to(dtype)
        x.requires_grad_(requires_grad)
        T.requires_grad_(requires_grad)
        return Inputs(args=(x, T), grads=[x, T] if requires_grad else [])

    def ganfast(self, x: torch.Tensor, T: torch.Tensor, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        return ganfast.ops.minibatch_discrimination(x, T, backend=backend)

    def eager(self) -> Callable[..., torch.Tensor]:
        return _cdist_form if self.params["baseline"] == "cdist" else _naive_form

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        B, A, K, D = self.dims
        fwd = s * (B * A + A * K * D + B * (A + K) + 2 * B * K * D)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + s * (B * (A + K) + 2 * B * A + 2 * A * K * D + 3 * B * K * D)
        raise ValueError(f"unknown pass {pass_!r}")

    def flops(self, pass_: str) -> int:
        B, A, K, D = self.dims
        fwd = 2 * B * A * K * D + B * B * K * (3 * D + 2)
        if pass_ == FWD:
            return fwd
        if pass_ == FWD_BWD:
            return fwd + 4 * B * A * K * D + B * B * K * (7 * D + 5)
        raise ValueError(f"unknown pass {pass_!r}")


def _project(x: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    A, K, D = T.shape
    return (x @ T.reshape(A, K * D)).reshape(x.shape[0], K, D)


def _naive_form(x: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """The broadcast form of the PyTorch ports: (B, B, K, D) differences."""
    M = _project(x, T)
    dist = (M[:, None] - M[None, :]).abs().sum(dim=3)  # (B, B, K)
    o = torch.exp(-dist).sum(dim=1) - 1  # minus exp(0) of j = i
    return torch.cat([x, o], dim=1)


def _cdist_form(x: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """``torch.cdist(p=1)`` per kernel: (K, B, B) distances, no (B, B, K, D) tensor."""
    M = _project(x, T).transpose(0, 1)  # (K, B, D)
    if M.dtype in (torch.float16, torch.bfloat16):
        M = M.float()  # cdist has no half-precision kernels
    dist = torch.cdist(M, M, p=1)  # (K, B, B)
    o = (torch.exp(-dist).sum(dim=2) - 1).t()
    return torch.cat([x, o.to(x.dtype)], dim=1)


def _case(batch: int, baseline: str, quick: bool = False, in_features: int = 8192, num_kernels: int = 100,
          kernel_dim: int = 5, dtypes=("bfloat16", "float32")) -> MinibatchDiscriminationCase:
    return MinibatchDiscriminationCase(
        op=OP,
        name=f"{baseline} K={num_kernels} D={kernel_dim}",
        shape=(batch, in_features),
        params={"num_kernels": num_kernels, "kernel_dim": kernel_dim, "baseline": baseline},
        dtypes=tuple(dtypes),
        quick=quick,
    )


def cases() -> List[MinibatchDiscriminationCase]:
    """``--quick`` cases first (small enough for the Triton interpreter), then the issue's shapes."""
    out = [_case(8, b, quick=True, in_features=64, num_kernels=8) for b in ("naive", "cdist")]
    for baseline in ("naive", "cdist"):
        out += [_case(batch, baseline) for batch in (64, 256, 1024)]
    return out
