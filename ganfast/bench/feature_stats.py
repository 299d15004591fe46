"""Benchmark cases for ``feature_stats``: streaming feature statistics at FID's size.

``ganfast bench --op feature_stats`` times :class:`ganfast.metrics.FeatureStats`
fed batch by batch (each batch through ``ganfast.ops.feature_stats``)
against ``torch.cov`` of all features at once in float64, which is what a
user with every feature in memory writes.  50,000 samples of 2048 features is
FID's customary count.  Forward only: statistics have no gradient.
"""

from __future__ import annotations

from typing import Callable, List, Optional

import torch

from .case import FWD, BenchCase, Inputs, element_size

OP = "feature_stats"


class FeatureStatsCase(BenchCase):
    """Mean and covariance of N features of dimension d; shape ``(N, d)``, forward only."""

    def make_inputs(self, dtype: torch.dtype, device: torch.device, requires_grad: bool, seed: int = 0) -> Inputs:
        gen = torch.Generator(device=device).manual_seed(seed)
        n, d = self.shape
        # Inception pool3 features are non-negative, mean ~0.4, spread ~0.4.
        x = (torch.randn(n, d, device=device, generator=gen) * 0.6 + 0.2).relu().to(dtype)
        return Inputs(args=(x,), grads=[])

    def ganfast(self, x, backend: Optional[str] = None) -> torch.Tensor:
        from ganfast.metrics import FeatureStats

        stats = FeatureStats(backend=backend)
        for batch in x.split(self.params["batch"]):
            stats.update(batch)
        return torch.cat([stats.mean()[None], stats.covariance()])

    def eager(self) -> Callable[..., torch.Tensor]:
        return _stats_eager

    def bytes_moved(self, dtype: torch.dtype, pass_: str) -> int:
        n, d = self.shape
        return n * d * element_size(dtype) + (d + 1) * d * 8

    def flops(self, pass_: str) -> int:
        n, d = self.shape
        return 2 * n * d * d  # the Gram matrix, counted in full (ganfast's kernel computes half)


def _stats_eager(x: torch.Tensor) -> torch.Tensor:
    """What a user writes with every feature in memory: ``torch.cov`` in float64."""
    x = x.to(torch.float64)
    return torch.cat([x.mean(0)[None], torch.cov(x.T)])


def cases() -> List[BenchCase]:
    """The feature_stats benchmark table: ``--quick`` cases first, then the full set."""

    def st(n: int, d: int, batch: int, quick: bool = False) -> FeatureStatsCase:
        return FeatureStatsCase(op=OP, name=f"batch={batch}", shape=(n, d), dtypes=("float32",), quick=quick,
                                params={"batch": batch}, passes=(FWD,))

    return [
        st(2048, 64, 256, quick=True),  # small enough for the Triton interpreter
        st(50000, 2048, 500),
    ]
