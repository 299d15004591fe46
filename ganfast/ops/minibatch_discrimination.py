"""``minibatch_discrimination``: Salimans et al. 2016's minibatch features, fused.

For features x (B, A) and a tensor T (A, K, D)::

    M = x @ T  reshaped to (B, K, D)                       # a matmul, left to torch
    o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1)   # the fused part
    out = cat([x, o], dim=1)                               # (B, A + K)

The naive form materialises the (B, B, K, D) difference tensor (1 GB in
bf16 at B = 1024, K = 100, D = 5) and its backward again; the fused op
computes the pairwise L1 distances tile by tile in registers, forward and
backward, so its memory is O(B K D) (O(B^2 K) is never reached either: the
backward recomputes c rather than saving it).

Layers, as every op in ganfast:

* reference: :mod:`ganfast.ref.minibatch_discrimination` (the definition,
  the torch backend);
* Triton: :mod:`ganfast.kernels.minibatch_discrimination` (one forward and
  one backward kernel on M; per-program accumulation over j, no atomics:
  deterministic);
* two registered custom ops, ``ganfast::minibatch_discrimination`` ((x, T)
  -> (o, M); M is a non-differentiable second output, saved for the
  backward) and ``ganfast::minibatch_discrimination_backward`` ((grad of o,
  x, T, M) -> (dx, dT)), with fake implementations and autograd
  (``torch.compile(fullgraph=True)`` and ``torch.library.opcheck`` clean);
* the public function :func:`minibatch_discrimination` (argument checks and
  the concat) and the module :class:`ganfast.nn.MinibatchDiscrimination`.

Precision: as the reference defines it, M is computed and kept in float32
for float16/bfloat16 inputs (the pairwise part amplifies M's rounding; see
:mod:`ganfast.ref.minibatch_discrimination`).  On CUDA the triton backend
gets it from a half-precision GEMM with a float32 output (``torch.mm(...,
out_dtype=torch.float32)``: tensor cores, no float32 copy of x); elsewhere
from the upcast operands.  The backward's two GEMMs (dx = dM T^T,
dT = x^T dM) run in x's dtype on dM rounded once to it.

Derivatives: the first derivative runs the selected backend's kernel for
``dM[i] = -sum_j (g[i] + g[j]) c(i, j) sign(M[i] - M[j])`` (sign(0) = 0, as
torch's ``abs``), then the GEMMs.  When the backward must itself be
differentiable (``create_graph=True``: R1, WGAN-GP), it is recomputed
through the reference instead, which supports every order; slower, and only
taken on penalty steps.  There is no CUDA C++ implementation (the Triton
kernels serve CUDA tensors).
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence, Tuple

import torch

from .. import _backend
from .._checks import check_device, check_dtype, check_ndim, check_shape, check_tensor, require
from .._dtypes import FLOAT_DTYPES, compute_dtype
from ..ref import minibatch_discrimination as ref
from ._autograd import differentiable_backward, reference_grads, register_first_order_only

Tensor = torch.Tensor

OP = "minibatch_discrimination"
SUPPORTED_DTYPES = FLOAT_DTYPES


# -- torch backend ----------------------------------------------------------------------


def _torch_impl():
    return types.SimpleNamespace(
        project=ref.project,
        features=lambda M, dtype: ref.minibatch_features(M).to(dtype).contiguous(),
        features_backward=ref.minibatch_features_grad,
    )


# -- triton backend ---------------------------------------------------------------------


def _triton_impl():
    from ganfast.kernels import minibatch_discrimination as kernels

    def project(x, T):
        A, K, D = T.shape
        if x.device.type == "cuda" and x.dtype in (torch.float16, torch.bfloat16):
            # Tensor-core GEMM with a float32 result: M is never rounded to half.
            return torch.mm(x, T.reshape(A, K * D), out_dtype=torch.float32).reshape(x.shape[0], K, D)
        return ref.project(x, T)

    def features(M, dtype):
        o = M.new_empty(M.shape[:2], dtype=dtype)
        kernels.forward(M, o)
        return o

    def features_backward(grad, M):
        dM = torch.empty_like(M)
        kernels.backward(grad, M, dM)
        return dM

    return types.SimpleNamespace(project=project, features=features, features_backward=features_backward)


_backend.register(OP, "torch", _torch_impl)
_backend.register(OP, "triton", _triton_impl)
# aten: the reference's expression under plain autograd (saves the (B, B, K, D) differences).
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=ref.minibatch_discrimination))


# -- registered ops ---------------------------------------------------------------------


@torch.library.custom_op("ganfast::minibatch_discrimination", mutates_args=())
def _minibatch_discrimination_op(x: Tensor, T: Tensor, backend: str) -> Tuple[Tensor, Tensor]:
    """(x (B, A), T (A, K, D)) -> (o (B, K) in x's dtype, M (B, K, D) in the compute dtype)."""
    _, impl = _backend.select(OP, backend, x.device)
    M = impl.project(x, T)
    return impl.features(M, x.dtype), M


@_minibatch_discrimination_op.register_fake
def _(x, T, backend):
    check_args(x, T)
    B, (A, K, D) = x.shape[0], T.shape
    return x.new_empty((B, K)), x.new_empty((B, K, D), dtype=compute_dtype(x.dtype))


@torch.library.custom_op("ganfast::minibatch_discrimination_backward", mutates_args=())
def _minibatch_discrimination_backward_op(
    grad: Tensor, x: Tensor, T: Tensor, M: Tensor, need_x: bool, need_T: bool, backend: str
) -> Tuple[Tensor, Tensor]:
    """(dx, dT) for the incoming gradient of o; an empty tensor where not needed.  First order only."""
    _, impl = _backend.select(OP, backend, x.device)
    A, K, D = T.shape
    dM = impl.features_backward(grad, M).to(x.dtype).reshape(x.shape[0], K * D)
    dx = dM @ T.reshape(A, K * D).t() if need_x else x.new_empty(0)
    dT = (x.t() @ dM).reshape(A, K, D) if need_T else T.new_empty(0)
    return dx, dT


@_minibatch_discrimination_backward_op.register_fake
def _(grad, x, T, M, need_x, need_T, backend):
    check_args(x, T)
    B, (_, K, D) = x.shape[0], T.shape
    check_tensor(grad, "grad")
    check_shape(grad, "grad", (B, K), " (o's)")
    check_tensor(M, "M", dtypes=(compute_dtype(x.dtype),))
    check_shape(M, "M", (B, K, D), " (x @ T)")
    return (x.new_empty(x.shape) if need_x else x.new_empty(0)), (T.new_empty(T.shape) if need_T else T.new_empty(0))


def _setup(ctx, inputs, output):
    x, T, backend = inputs
    _, M = output
    ctx.mark_non_differentiable(M)
    ctx.save_for_backward(x, T, M)
    ctx.backend = backend


def _backward(ctx, grad, _grad_M):
    x, T, M = ctx.saved_tensors
    need_x, need_T = ctx.needs_input_grad[:2]
    if not (need_x or need_T):
        return None, None, None
    if differentiable_backward():
        # Recomputed through the reference (documented in the module docstring).
        def reference(x, T):
            return ref.minibatch_features(ref.project(x, T)).to(x.dtype)

        return (*reference_grads(reference, (x, T), (need_x, need_T), grad), None)
    dx, dT = _minibatch_discrimination_backward_op(grad, x, T, M, need_x, need_T, ctx.backend)
    return (dx if need_x else None), (dT if need_T else None), None


_minibatch_discrimination_op.register_autograd(_backward, setup_context=_setup)
register_first_order_only(_minibatch_discrimination_backward_op, "ganfast::minibatch_discrimination_backward",
                          recomputing="ganfast.ops.minibatch_discrimination")


# -- public functions -------------------------------------------------------------------


def check_args(x: Any, T: Any) -> None:
    """The one check of this op: the public function and both fakes call it.

    Raises as :func:`minibatch_discrimination` documents.
    """
    check_tensor(x, "x")
    check_ndim(x, "x", 2, "have shape (B, in_features)")
    check_tensor(x, "x", nonempty=True)
    check_tensor(T, "T")
    check_ndim(T, "T", 3, "have shape (in_features, num_kernels, kernel_dim)")
    check_tensor(T, "T", nonempty=True)
    require(T.shape[0] == x.shape[1], ValueError, lambda: (
        f"T must have shape ({x.shape[1]}, num_kernels, kernel_dim) to match x's {x.shape[1]} features; "
        f"got {tuple(T.shape)}"))
    check_device(T, "T", x.device)
    check_dtype(T, "T", (x.dtype, torch.float32, torch.float64), f"have x's dtype ({x.dtype}), float32 or float64")
    require(x.shape[0] * T.shape[1] * T.shape[2] < 2**31, ValueError, lambda: (
        f"B * num_kernels * kernel_dim must be under 2^31; got {x.shape[0]} * {T.shape[1]} * {T.shape[2]}"))


def minibatch_discrimination(x: Tensor, T: Tensor, backend: Optional[str] = None) -> Tensor:
    """Minibatch discrimination (Salimans et al. 2016, section 3.2): ``cat([x, o(x @ T)], dim=1)``.

    Args:
        x: ``(B, A)`` features, float16, bfloat16, float32 or float64, not empty.
        T: ``(A, num_kernels, kernel_dim)`` tensor on x's device, in x's
            dtype, or in float32/float64 (mixed precision: it is cast to x's
            dtype, and its gradient comes back in its own).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None for the
            current choice (:func:`ganfast.use_backend`).

    Returns:
        ``(B, A + num_kernels)`` in x's dtype, with
        ``o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1)`` (zeros for a
        batch of one).  M = x @ T is computed in float32 for half inputs (see
        the module docstring).

    Raises:
        TypeError: ``x`` or ``T`` is not a tensor, or has an unsupported dtype.
        ValueError: wrong number of dimensions, empty, ``T``'s first size is
            not x's features, ``T`` on another device, ``B * num_kernels *
            kernel_dim`` reaching 2^31, or an unknown backend name.
        BackendUnavailable: the backend named cannot run here.

    Differentiable w.r.t. x and T to every order: the first on the selected
    backend, higher ones through the reference.
    """
    check_args(x, T)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return ref.minibatch_discrimination(x, T.to(x.dtype))
    o, _ = _minibatch_discrimination_op(x, T.to(x.dtype), backend)
    return torch.cat([x, o], dim=1)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_minibatch_discrimination_op, _minibatch_discrimination_backward_op)
