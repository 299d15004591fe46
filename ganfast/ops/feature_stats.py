"""``feature_stats_update``: the streaming step of :class:`ganfast.metrics.FeatureStats`.

Adds a batch of features to shifted float64 sufficient statistics in place
(the arithmetic and why it is exact: :mod:`ganfast.ref.feature_stats`).

* reference / ``torch`` backend: :func:`ganfast.ref.feature_stats.feature_stats_update`
  (float64 copy of the batch, ``addmm_``);
* ``triton`` backend: one fused kernel (:mod:`ganfast.kernels.feature_stats`):
  shift, float64 widening, column sums and the upper triangle of the Gram
  update in one pass;
* registered as ``ganfast::feature_stats_update`` (mutates ``total`` and
  ``gram``) with a fake implementation, so it traces under ``torch.compile``.

Statistics are not differentiable: features are detached.

``auto`` on CUDA picks ``torch`` first: the Triton kernel is tested under the
CPU interpreter only and has not been measured on a GPU (where cuBLAS
DGEMM is the competitor); the order changes when bench/RESULTS.md says so.
"""

from __future__ import annotations

import types
from typing import Optional, Sequence

import torch

from .. import _backend
from ..ref import feature_stats as ref

Tensor = torch.Tensor

OP = "feature_stats"
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _load_triton():
    from ganfast.kernels import feature_stats as kernels

    return kernels


_backend.register_op(OP, auto_order=("torch", "triton"))
_backend.register(OP, "torch", lambda: types.SimpleNamespace(update=ref.feature_stats_update))
_backend.register(OP, "triton", _load_triton)


@torch.library.custom_op("ganfast::feature_stats_update", mutates_args=("total", "gram"))
def _feature_stats_update_op(x: Tensor, shift: Tensor, total: Tensor, gram: Tensor, backend: str) -> None:
    _, impl = _backend.select(OP, backend, x.device)
    impl.update(x, shift, total, gram)


@_feature_stats_update_op.register_fake
def _(x, shift, total, gram, backend):
    return None


def feature_stats_update(
    x: Tensor, shift: Tensor, total: Tensor, gram: Tensor, backend: Optional[str] = None
) -> None:
    """``total += sum_n (x_n - shift)``, ``gram += sum_n (x_n - shift)(x_n - shift)^T``, in place.

    Args:
        x: ``(N, d)`` features, any float dtype and strides.  Detached.
        shift: ``(d,)`` float64.
        total: ``(d,)`` float64, updated in place.
        gram: ``(d, d)`` contiguous float64, updated in place (both triangles).
        backend: ``"torch"``, ``"triton"``, ``"auto"`` or None (current choice).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, d); got {tuple(x.shape)}")
    d = x.shape[1]
    for t, name, shape in ((shift, "shift", (d,)), (total, "total", (d,)), (gram, "gram", (d, d))):
        if not isinstance(t, Tensor) or t.dtype != torch.float64:
            raise TypeError(f"{name} must be a float64 tensor; got {getattr(t, 'dtype', type(t).__name__)}")
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for x with {d} features; got {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{name} must be on x's device ({x.device}); got {t.device}")
    if not (total.is_contiguous() and gram.is_contiguous()):
        raise ValueError("total and gram must be contiguous (they are updated in place)")
    backend = _backend.current_backend() if backend is None else _backend._check_name(backend)
    _feature_stats_update_op(x.detach(), shift, total, gram, backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_feature_stats_update_op,)
