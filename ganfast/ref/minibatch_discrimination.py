"""Reference for ``minibatch_discrimination``: Salimans et al. 2016, section 3.2.

This file is the definition of correct for every backend of
:func:`ganfast.ops.minibatch_discrimination`; the torch backend, the tests
and the benchmarks import it.

For features x of shape (B, A) and a tensor T of shape (A, K, D)::

    M = (x @ T.reshape(A, K * D)).reshape(B, K, D)
    c_b(i, j) = exp(-|| M[i, b] - M[j, b] ||_1)
    o[i, b]   = sum over j != i of c_b(i, j)
    out       = cat([x, o], dim=1)                       # (B, A + K)

The pairwise part, :func:`minibatch_features` (M -> o), is what the fused
kernels implement; the matmul stays a matmul.  Here it is written the direct
way, broadcasting to a (B, B, K, D) tensor: memory O(B^2 K D), fine as a
definition, not as an implementation.  The diagonal j = i is excluded by a
mask, not by subtracting exp(0) = 1 from the full sum (which cancels when
every other sample is far away, and rounds badly in low precision).

The arithmetic runs in float32 for float16/bfloat16/float32 inputs and in
float64 for float64 inputs, the matmul included: M is never rounded to half
precision.  That matters here more than for most layers: rounding M to
bfloat16 moves each distance by ~D * 2^-9 * |M|, so at |M| ~ 1 and D = 5
every c_b(i, j) by ~1 %, and the gradient of T by several percent (measured
4e-2 relative at B = 64, A = 8192, K = 100, D = 5, against 2e-3 with M in
float32).  The layer's output has the dtype of x.
"""

from __future__ import annotations

import torch

from .._dtypes import compute_dtype

Tensor = torch.Tensor


def _off_diagonal(B: int, device: torch.device) -> Tensor:
    return ~torch.eye(B, dtype=torch.bool, device=device)


def minibatch_features(M: Tensor) -> Tensor:
    """o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1), shape (B, K), in ``M``'s dtype."""
    m = M.to(compute_dtype(M.dtype))
    dist = (m[:, None] - m[None, :]).abs().sum(dim=3)  # (B, B, K)
    c = torch.exp(-dist)
    c = torch.where(_off_diagonal(M.shape[0], M.device)[:, :, None], c, torch.zeros((), dtype=c.dtype, device=c.device))
    return c.sum(dim=1).to(M.dtype)


def minibatch_features_grad(grad: Tensor, M: Tensor) -> Tensor:
    """Closed form of the gradient w.r.t. ``M`` that the kernels implement::

        dM[i, b, d] = -sum_{j != i} (g[i, b] + g[j, b]) * c_b(i, j) * sign(M[i, b, d] - M[j, b, d])

    with torch's sign(0) = 0 (the subgradient autograd takes for ``abs`` at
    0).  In ``M``'s dtype; the tests check it against autograd of
    :func:`minibatch_features`.
    """
    acc = compute_dtype(M.dtype)
    m = M.to(acc)
    g = grad.to(acc)
    diff = m[:, None] - m[None, :]  # (B, B, K, D)
    c = torch.exp(-diff.abs().sum(dim=3))
    w = (g[:, None] + g[None, :]) * c  # (B, B, K)
    w = torch.where(_off_diagonal(M.shape[0], M.device)[:, :, None], w, torch.zeros((), dtype=acc, device=M.device))
    return (-(w[..., None] * torch.sign(diff)).sum(dim=1)).to(M.dtype)


def project(x: Tensor, T: Tensor) -> Tensor:
    """M = x @ T reshaped to (B, K, D), in the compute dtype (float32, or float64)."""
    A, K, D = T.shape
    acc = compute_dtype(x.dtype)
    return (x.to(acc) @ T.to(acc).reshape(A, K * D)).reshape(x.shape[0], K, D)


def minibatch_discrimination(x: Tensor, T: Tensor) -> Tensor:
    """Reference forward of the layer: ``cat([x, o(x @ T)], dim=1)``, shape (B, A + K), x's dtype."""
    return torch.cat([x, minibatch_features(project(x, T)).to(x.dtype)], dim=1)
