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
  one backward kernel; per-program accumulation over j, no atomics:
  deterministic);
* two registered custom ops on M, ``ganfast::minibatch_discrimination`` (M ->
  o) and ``ganfast::minibatch_discrimination_backward``, with fake
  implementations and autograd (``torch.compile(fullgraph=True)`` and
  ``torch.library.opcheck`` clean);
* the public functions :func:`minibatch_discrimination` (x, T -> the layer's
  output) and :func:`minibatch_features` (M -> o), and the module
  :class:`ganfast.nn.MinibatchDiscrimination`.

Derivatives: the first derivative w.r.t. M runs the selected backend's
kernel (``dM[i] = -sum_j (g[i] + g[j]) c(i, j) sign(M[i] - M[j])``, sign(0) = 0
as torch's ``abs``); x and T get theirs from the matmul through autograd.
When the backward must itself be differentiable (``create_graph=True``), it
is recomputed through the reference instead, which supports every order.
There is no CUDA C++ implementation (the Triton kernels serve CUDA tensors).
"""

from __future__ import annotations

import types
from typing import Optional, Sequence

import torch

from .. import _backend, _layout
from ..ref import minibatch_discrimination as ref

Tensor = torch.Tensor

OP = "minibatch_discrimination"
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# -- torch backend ----------------------------------------------------------------------


def _torch_forward(M):
    return ref.minibatch_features(M).contiguous()


def _torch_backward(grad, M):
    return _layout.like_layout_of(ref.minibatch_features_grad(grad, M), M)


# -- triton backend ---------------------------------------------------------------------


def _load_triton():
    from ganfast.kernels import minibatch_discrimination as kernels

    def forward(M):
        o = M.new_empty(M.shape[:2])
        kernels.forward(M, o)
        return o

    def backward(grad, M):
        dM = torch.empty_like(M)
        kernels.backward(grad, M, dM)
        return dM

    return types.SimpleNamespace(forward=forward, backward=backward)


_backend.register_op(OP, auto_order=("triton", "torch"))
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward, backward=_torch_backward))
_backend.register(OP, "triton", _load_triton)


# -- registered ops ---------------------------------------------------------------------


@torch.library.custom_op("ganfast::minibatch_discrimination", mutates_args=())
def _minibatch_features_op(M: Tensor, backend: str) -> Tensor:
    """(B, K, D) -> (B, K): o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1)."""
    _, impl = _backend.select(OP, backend, M.device)
    return impl.forward(M)


@_minibatch_features_op.register_fake
def _(M, backend):
    return M.new_empty(M.shape[:2])


@torch.library.custom_op("ganfast::minibatch_discrimination_backward", mutates_args=())
def _minibatch_features_backward_op(grad: Tensor, M: Tensor, backend: str) -> Tensor:
    """Gradient of ``ganfast::minibatch_discrimination`` w.r.t. ``M``; first order only."""
    _, impl = _backend.select(OP, backend, M.device)
    return impl.backward(grad, M)


@_minibatch_features_backward_op.register_fake
def _(grad, M, backend):
    return torch.empty_like(M)


def _setup(ctx, inputs, output):
    M, backend = inputs
    ctx.save_for_backward(M)
    ctx.backend = backend


def _backward(ctx, grad):
    (M,) = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None
    if torch.is_grad_enabled():
        # create_graph=True: the gradient must itself be differentiable.
        # Recompute through the reference (documented in the module docstring).
        with torch.enable_grad():
            (dM,) = torch.autograd.grad(ref.minibatch_features(M), M, grad, create_graph=True)
    else:
        dM = _minibatch_features_backward_op(grad, M, ctx.backend)
    return dM, None


_minibatch_features_op.register_autograd(_backward, setup_context=_setup)


# -- public functions -------------------------------------------------------------------


def _check_tensor(t, name: str, dims: int, shape_text: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64; got {t.dtype}")
    if t.dim() != dims:
        raise ValueError(f"{name} must have shape {shape_text}; got {t.dim()} dimensions, shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(t.shape)}")


def _resolve(backend: Optional[str]) -> str:
    return _backend.current_backend() if backend is None else _backend._check_name(backend)


def minibatch_features(M: Tensor, backend: Optional[str] = None) -> Tensor:
    """The minibatch features o (B, K) of projected features M (B, K, D).

    ``o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1)``; a batch of one
    gives zeros.  M may have any strides; the result has M's dtype,
    arithmetic in float32 (float64 for float64 M).  Derivatives of every
    order (see the module docstring).
    """
    _check_tensor(M, "M", 3, "(B, num_kernels, kernel_dim)")
    return _minibatch_features_op(M, _resolve(backend))


def minibatch_discrimination(x: Tensor, T: Tensor, backend: Optional[str] = None) -> Tensor:
    """Minibatch discrimination (Salimans et al. 2016): ``cat([x, o(x @ T)], dim=1)``.

    Args:
        x: (B, A) features, float16, bfloat16, float32 or float64.
        T: (A, num_kernels, kernel_dim) tensor, x's dtype and device.
        backend: ``"torch"``, ``"triton"``, ``"auto"``, or None for the
            current choice (:func:`ganfast.use_backend`); it selects the
            implementation of the pairwise part, the matmul is torch's.

    Returns:
        (B, A + num_kernels) in x's dtype.  Differentiable w.r.t. x and T to
        every order (first order on the selected backend).
    """
    _check_tensor(x, "x", 2, "(B, in_features)")
    _check_tensor(T, "T", 3, "(in_features, num_kernels, kernel_dim)")
    if T.shape[0] != x.shape[1]:
        raise ValueError(
            f"T must have shape ({x.shape[1]}, num_kernels, kernel_dim) to match x's {x.shape[1]} features; "
            f"got {tuple(T.shape)}"
        )
    if T.device != x.device:
        raise ValueError(f"T must be on the same device as x ({x.device}); got {T.device}")
    if T.dtype != x.dtype:
        raise TypeError(f"T must have x's dtype ({x.dtype}); got {T.dtype}")
    A, K, D = T.shape
    M = (x @ T.reshape(A, K * D)).reshape(x.shape[0], K, D)
    o = _minibatch_features_op(M, _resolve(backend))
    return torch.cat([x, o.to(x.dtype)], dim=1)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_minibatch_features_op, _minibatch_features_backward_op)
