"""``feature_stats``: the streaming step of :class:`ganfast.metrics.FeatureStats`.

Adds a batch of features to shifted float64 sufficient statistics in place
(the arithmetic and why it is exact: :mod:`ganfast.ref.feature_stats`).

* reference / ``torch`` backend: :func:`ganfast.ref.feature_stats.feature_stats`
  (float64 copy of the batch, ``addmm_``);
* ``triton`` backend: one fused kernel (:mod:`ganfast.kernels.feature_stats`):
  shift, float64 widening, column sums and the upper triangle of the Gram
  update in one pass;
* registered as ``ganfast::feature_stats`` (mutates ``total`` and ``gram``)
  with a fake implementation that runs :func:`check_args`, so it traces
  under ``torch.compile``.

Statistics are not differentiable: features are detached.

``auto`` on CUDA picks ``torch`` first: the Triton kernel is tested under the
CPU interpreter only and has not been measured on a GPU (where cuBLAS
DGEMM is the competitor); the order changes when a measurement in
bench/RESULTS.md says so.

The function was called ``feature_stats_update`` before the op took one name
everywhere; that name remains as an alias.
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence

import torch

from .. import _backend
from .._checks import check_device, check_ndim, check_shape, check_tensor
from .._dtypes import FLOAT_DTYPES  # noqa: F401  (this module's dtype list, as before)
from ..ref import feature_stats as ref

Tensor = torch.Tensor

OP = "feature_stats"


def _load_triton():
    from ganfast.kernels import feature_stats as kernels

    return kernels


_backend.register(OP, "torch", lambda: types.SimpleNamespace(update=ref.feature_stats))
_backend.register(OP, "triton", _load_triton)


@torch.library.custom_op("ganfast::feature_stats", mutates_args=("total", "gram"))
def _feature_stats_op(x: Tensor, shift: Tensor, total: Tensor, gram: Tensor, backend: str) -> None:
    _, impl = _backend.select(OP, backend, x.device)
    impl.update(x, shift, total, gram)


@_feature_stats_op.register_fake
def _(x, shift, total, gram, backend):
    check_args(x, shift, total, gram)
    return None


def check_args(x: Any, shift: Any, total: Any, gram: Any) -> None:
    """The one check of this op: the public function and the fake call it.  Raises as :func:`feature_stats`."""
    check_tensor(x, "x", dtype_requirement="be a floating-point tensor")
    check_ndim(x, "x", 2, "have shape (N, d)")
    d = x.shape[1]
    for t, name, shape in ((shift, "shift", (d,)), (total, "total", (d,)), (gram, "gram", (d, d))):
        check_tensor(t, name, dtypes=(torch.float64,), dtype_requirement="be a float64 tensor")
        check_shape(t, name, shape, f" for x with {d} features")
        check_device(t, name, x.device)
    if not (total.is_contiguous() and gram.is_contiguous()):
        raise ValueError("total and gram must be contiguous (they are updated in place)")


def feature_stats(x: Tensor, shift: Tensor, total: Tensor, gram: Tensor, backend: Optional[str] = None) -> None:
    """``total += sum_n (x_n - shift)``, ``gram += sum_n (x_n - shift)(x_n - shift)^T``, in place.

    The streaming half of the Frechet Inception Distance's statistics (Heusel
    et al. 2017, eq. 6 needs each set's mean and covariance): ``mean = shift
    + total / N`` and ``cov = (gram - total total^T / N) / (N - 1)``, exact to
    float64 rounding because the shift removes the cancellation (see
    :mod:`ganfast.ref.feature_stats`).

    Args:
        x: ``(N, d)`` features, float16, bfloat16, float32 or float64, any
            strides.  Detached (statistics have no gradient).
        shift: ``(d,)`` float64 on x's device.
        total: ``(d,)`` contiguous float64 on x's device, updated in place.
        gram: ``(d, d)`` contiguous float64 on x's device, updated in place
            (both triangles).
        backend: ``"torch"``, ``"triton"``, ``"auto"`` or None (current choice).

    Returns:
        None: ``total`` and ``gram`` are updated in place.

    Raises:
        TypeError: ``x`` is not a floating-point tensor, or ``shift``,
            ``total`` or ``gram`` is not a float64 tensor.
        ValueError: ``x`` is not 2-D, a statistic has the wrong shape or
            device, ``total`` or ``gram`` is not contiguous, or ``backend``
            is not a backend's name.
        BackendUnavailable: the backend named cannot run here.
    """
    check_args(x, shift, total, gram)
    _feature_stats_op(x.detach(), shift, total, gram, _backend.requested(backend))


#: The name this function had before the op took one name everywhere.
feature_stats_update = feature_stats

#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_feature_stats_op,)
