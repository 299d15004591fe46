"""Reference for ``self_attention2d``: SAGAN's attention over all positions, in plain PyTorch.

This file is the definition of correct for every backend of
:func:`ganfast.ops.self_attention2d`.  It is imported by the torch backend,
the tests and the benchmarks alike.

Layout: channels first, positions last, as a 1x1 convolution's output
flattened over its H*W map: ``q, k`` are ``(B, d_qk, N)``, ``v`` is
``(B, d_v, N)`` and the output is ``(B, d_v, N)``::

    s[b, i, j]   = scale * sum_c q[b, c, i] * k[b, c, j]
    p[b, i, :]   = softmax_j(s[b, i, :])
    out[b, :, i] = sum_j p[b, i, j] * v[b, :, j]

With ``scale = 1`` this is Zhang et al. 2019 (SAGAN), eq. 1: the attention
map is ``softmax(f(x)^T g(x))`` with no 1/sqrt(d) factor.  ``lse[b, i] =
logsumexp_j s[b, i, j]`` is what the fast kernels keep from the forward for
the backward.

The arithmetic runs in float32 for float16/bfloat16/float32 inputs and in
float64 for float64 inputs; ``out`` has the inputs' dtype, ``lse`` the compute
dtype.  These functions materialise the ``(B, N, N)`` attention matrix: fine
as a definition and on small inputs, quadratic in memory on large ones.
"""

from __future__ import annotations

from typing import Tuple

import torch

from .._dtypes import compute_dtype

Tensor = torch.Tensor


def _scores(q: Tensor, k: Tensor, scale: float) -> Tensor:
    ct = compute_dtype(q.dtype)
    s = torch.bmm(q.to(ct).transpose(1, 2), k.to(ct))  # (B, N, N): queries along dim 1
    return s * scale if scale != 1.0 else s


def self_attention2d(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """Reference forward: ``out[b, :, i] = sum_j softmax_j(scale * q_i . k_j) v_j``."""
    p = torch.softmax(_scores(q, k, scale), dim=-1)
    out = torch.bmm(v.to(p.dtype), p.transpose(1, 2))
    return out.to(v.dtype)


def self_attention2d_lse(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tuple[Tensor, Tensor]:
    """``(out, lse)``: the forward and each query's log-sum-exp of its scores, ``(B, N)``."""
    s = _scores(q, k, scale)
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse.unsqueeze(-1))
    out = torch.bmm(v.to(p.dtype), p.transpose(1, 2))
    return out.to(v.dtype), lse


def self_attention2d_grad(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0
                          ) -> Tuple[Tensor, Tensor, Tensor]:
    """Closed-form gradients ``(dq, dk, dv)`` of :func:`self_attention2d` for the incoming ``grad``.

    The formulas the backward kernels implement (FlashAttention-2, Dao 2023,
    Algorithm 2), with ``O`` the output in the compute dtype::

        dV = dO P            dP = dO^T V          D_i = sum_c dO[c, i] O[c, i]
        dS = P * (dP - D)    dQ = scale K dS^T     dK = scale Q dS

    Linear in ``grad``; each result in the dtype of its input.  Plain
    differentiable torch, so derivatives of any order follow from autograd.
    """
    ct = compute_dtype(q.dtype)
    p = torch.softmax(_scores(q, k, scale), dim=-1)  # (B, Nq, Nk)
    g = grad.to(ct)
    vc = v.to(ct)
    out = torch.bmm(vc, p.transpose(1, 2))  # (B, C, N)
    dv = torch.bmm(g, p)  # dv[:, j] = sum_i p[i, j] g[:, i]
    dp = torch.bmm(g.transpose(1, 2), vc)  # dp[i, j] = g_i . v_j
    delta = (g * out).sum(dim=1)  # (B, Nq)
    ds = p * (dp - delta.unsqueeze(-1))
    if scale != 1.0:
        ds = ds * scale
    dq = torch.bmm(k.to(ct), ds.transpose(1, 2))  # dq[:, i] = sum_j ds[i, j] k_j
    dk = torch.bmm(q.to(ct), ds)  # dk[:, j] = sum_i ds[i, j] q_i
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)
