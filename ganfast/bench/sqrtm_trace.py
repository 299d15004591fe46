"""Benchmark cases for ``sqrtm_trace``: the Frechet distance (FID) from 2048-d statistics.

``ganfast bench --op sqrtm_trace`` times the Frechet distance from two
(mean, covariance) pairs, ganfast's ``sqrtm_trace`` route against what users
run without ganfast:

* ``scipy``: pytorch-fid's route, ``scipy.linalg.sqrtm(S1 @ S2)`` on the
  CPU, real part of the trace (statistics copied to the host first when they
  live on a GPU).  For ``fwd+bwd`` its gradient is what a SciPy user writes:
  ``d tr sqrt(P) / dP = sqrt(P)^{-T} / 2`` through ``numpy.linalg.inv``.
* ``eigvals``: ``torch.linalg.eigvals(S1 @ S2).sqrt().real.sum()``
  (torchmetrics' route), on the statistics' device, differentiable.

Both run in float64, on inputs symmetrized the way ganfast symmetrizes them,
so values and gradients are comparable; the relative-error column is ganfast
against the baseline (float64 against float64): the agreement the issue asks
for (1e-9).  Inputs are covariances of ReLU features (a spectrum like
Inception's: one large eigenvalue, a long decaying tail) from more samples
than dimensions.  The ``method=eigh`` and ``method=newton_schulz`` rows time
the other routes: the GPU route is to be chosen from them.  Cases whose
baseline takes tens of seconds per call on a CPU (``torch.linalg.eig`` at
d = 2048) run on CUDA devices only.  Feature statistics have their own table
(``--op feature_stats``).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import numpy as np
import torch

from .case import FWD, BenchCase, Inputs, element_size

OP = "sqrtm_trace"


def _have_scipy() -> bool:
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        return False
    return True


def _sym(s: torch.Tensor) -> torch.Tensor:
    s = s.to(torch.float64)
    return (s + s.mT) * 0.5


class _ScipyTraceSqrtm(torch.autograd.Function):
    """``tr sqrtm(S1 S2)`` by SciPy (value) and the inverse of the root (gradient), on the CPU."""

    @staticmethod
    def forward(ctx, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        import scipy.linalg

        a, b = s1.detach().cpu().numpy(), s2.detach().cpu().numpy()
        root = scipy.linalg.sqrtm(a @ b)
        ctx.save_for_backward(s1, s2)
        ctx.root = root
        return torch.tensor(float(np.trace(root).real), dtype=torch.float64, device=s1.device)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        s1, s2 = ctx.saved_tensors
        g_p = 0.5 * np.linalg.inv(ctx.root).T.real * float(grad)
        a, b = s1.detach().cpu().numpy(), s2.detach().cpu().numpy()
        g1 = torch.from_numpy(g_p @ b.T).to(s1.device)
        g2 = torch.from_numpy(a.T @ g_p).to(s2.device)
        return g1, g2


def frechet_scipy(mu1, s1, mu2, s2) -> torch.Tensor:
    """pytorch-fid's formula with SciPy's sqrtm (float64, on the CPU)."""
    d = mu1.to(torch.float64) - mu2.to(torch.float64)
    a, b = _sym(s1), _sym(s2)
    return d.dot(d) + a.trace() + b.trace() - 2 * _ScipyTraceSqrtm.apply(a, b)


def frechet_eigvals(mu1, s1, mu2, s2) -> torch.Tensor:
    """torchmetrics' formula: the eigenvalues of the non-symmetric product (float64)."""
    d = mu1.to(torch.float64) - mu2.to(torch.float64)
    a, b = _sym(s1), _sym(s2)
    return d.dot(d) + a.trace() + b.trace() - 2 * torch.linalg.eigvals(a @ b).sqrt().real.sum()


class FrechetCase(BenchCase):
    """The Frechet distance from two d-dimensional (mean, covariance) pairs; shape ``(d, d)``."""

    @property
    def d(self) -> int:
        return self.shape[0]

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        d = self.d
        args = []
        for k, n in enumerate((3 * d, 2 * d + 7)):
            mix = torch.randn(d, d, device=device, generator=gen, dtype=torch.float64) / d ** 0.5
            x = (torch.randn(n, d, device=device, generator=gen, dtype=torch.float64) @ mix).relu() * (1 + 0.1 * k)
            args += [x.mean(0).to(dtype), torch.cov(x.T).to(dtype)]
            del x, mix
        for t in args:
            t.requires_grad_(requires_grad)
        return Inputs(args=tuple(args), grads=list(args) if requires_grad else [])

    def ganfast(self, mu1, s1, mu2, s2, backend: Optional[str] = None) -> torch.Tensor:
        import ganfast.ops

        d = mu1.to(torch.float64) - mu2.to(torch.float64)
        tr = ganfast.ops.sqrtm_trace(s1, s2, method=self.params.get("method", "auto"), backend=backend)
        return d.dot(d) + s1.to(torch.float64).trace() + s2.to(torch.float64).trace() - 2 * tr

    def eager(self) -> Callable[..., torch.Tensor]:
        return frechet_scipy if self.params["baseline"] == "scipy" else frechet_eigvals

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        s = element_size(dtype)
        read = (2 * self.d * self.d + 2 * self.d) * s
        return read if pass_ == FWD else 2 * read  # fwd+bwd also writes gradients of the same size

    def flops(self, pass_: str) -> int:
        # Nominal, for ganfast's route: Cholesky d^3/3, two products 4 d^3,
        # tridiagonal reduction 4/3 d^3 (eigvalsh); each gradient adds a
        # Cholesky, four products and an eigh with vectors (~9 d^3).
        d3 = self.d ** 3
        fwd = int((1 / 3 + 4 + 4 / 3) * d3)
        return fwd if pass_ == FWD else fwd + 2 * int((1 / 3 + 8 + 9) * d3)


def cases() -> List[BenchCase]:
    """The sqrtm_trace benchmark table: ``--quick`` cases first, then the full set."""
    base = "scipy" if _have_scipy() else "eigvals"

    def fd(d: int, baseline: str, quick: bool = False, method: str = "auto", **kw: Any) -> FrechetCase:
        name = f"frechet vs {baseline}" + (f" method={method}" if method != "auto" else "")
        return FrechetCase(op=OP, name=name, shape=(d, d), dtypes=("float32",), quick=quick,
                           params={"baseline": baseline, "method": method}, **kw)

    return [
        # --quick: small enough for a CPU
        fd(128, base, quick=True),
        fd(128, "eigvals", quick=True),
        # the target: FID from 2048-d statistics
        fd(2048, base),
        fd(2048, "eigvals", devices=("cuda",)),  # torch.linalg.eig: ~30 s per call on 2 CPU cores
        fd(2048, "eigvals", method="eigh", passes=(FWD,), devices=("cuda",)),
        fd(2048, "eigvals", method="newton_schulz", passes=(FWD,), devices=("cuda",)),
    ]
