"""Reference for ``feature_stats``: shifted sufficient statistics in float64.

Streaming mean and covariance keep, for a fixed per-feature shift ``c``
(the mean of the first batch),

    total = sum_n (x_n - c)            (d,)
    gram  = sum_n (x_n - c)(x_n - c)^T (d, d)

in float64, from which ``mean = c + total / N`` and ``cov = (gram - total
total^T / N) / (N - 1)``.  Why both the shift and float64: Inception
features have means far from zero relative to their spread, and raw sums
``sum x x^T`` then cancel catastrophically in ``gram - N mean mean^T``
(with means ~1e4 and std ~1, float32 raw sums keep no correct digit of the
covariance, and even float64 raw sums keep only ~8).  With ``c`` close to the
mean the subtraction cancels nothing, and float64 products of float32
features are exact, so the covariance is good to ~1e-14 relative.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

#: Rows converted to float64 at a time, bounding the temporary to
#: CHUNK_ROWS * d * 8 bytes (64 MiB at d = 2048).
CHUNK_ROWS = 4096


def feature_stats(x: Tensor, shift: Tensor, total: Tensor, gram: Tensor) -> None:
    """Add the rows of ``x`` (``(N, d)``, any float dtype) to ``total`` and ``gram`` in place."""
    for xc in x.split(CHUNK_ROWS):
        xs = xc.to(torch.float64) - shift
        total.add_(xs.sum(0))
        gram.addmm_(xs.mT, xs)


#: The name this function had before the op took one name everywhere.
feature_stats_update = feature_stats
