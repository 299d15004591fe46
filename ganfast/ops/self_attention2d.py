"""``self_attention2d``: SAGAN's attention over every position of a feature map, fused.

Self-attention GAN (Zhang et al. 2019) lets every position of an ``H x W``
map attend to all ``N = H*W`` positions.  Written with ``bmm`` + ``softmax``
it stores the ``(B, N, N)`` attention matrix: 1 GiB per image in float32 at a
128x128 map.  The fused kernels (:mod:`ganfast.kernels.self_attention2d`)
keep score tiles in registers with an online softmax (FlashAttention), so
memory grows linearly in N, and they take a value width (``channels``,
256-512) different from the query/key width (``channels // 8``) natively,
which FlashAttention's head-dim kernels do not.

Layout: channels first, positions last, as a 1x1 convolution's output
flattened: ``q, k: (B, d_qk, N)``, ``v: (B, d_v, N)``, output ``(B, d_v, N)``
(4-D ``(B, channels, H, W)`` arguments are accepted too).  The Triton kernels
read every argument through its strides, so channels_last maps and
``(B, N, channels)`` tensors passed as ``.transpose(1, 2)`` views are used in
place, without a copy.

Layers, as every op in ganfast:

* reference: :mod:`ganfast.ref.self_attention2d` (the definition, the torch
  backend; it materialises the attention matrix);
* Triton: :mod:`ganfast.kernels.self_attention2d` (no CUDA C++ version);
* two registered custom ops, ``ganfast::self_attention2d`` (returns the
  output and each query's log-sum-exp, saved for the backward) and
  ``ganfast::self_attention2d_backward``, each with a fake implementation, so
  the op works under ``torch.compile(fullgraph=True)`` and
  ``torch.library.opcheck``;
* the public function :func:`self_attention2d` and the module
  :class:`ganfast.nn.SelfAttention2d`.

Derivatives: the first derivative runs the selected backend
(``ganfast::self_attention2d_backward``: on triton, FlashAttention-2's
backward with recomputation; memory linear in N).  When the backward must
itself be differentiable (``create_graph=True``: R1 or WGAN-GP through an
attention discriminator), it is recomputed through the reference with
autograd instead, which supports every order but materialises the ``N x N``
matrix (quadratic memory, on penalty steps only).
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence, Tuple

import torch

from .. import _backend
from .._checks import check_device, check_dtype, check_float, check_ndim, check_shape, check_tensor, require
from .._dtypes import FLOAT_DTYPES, compute_dtype
from ..ref import self_attention2d as ref
from ._autograd import differentiable_backward, reference_grads, register_first_order_only

Tensor = torch.Tensor

OP = "self_attention2d"
SUPPORTED_DTYPES = FLOAT_DTYPES

# -- torch backend ----------------------------------------------------------------------


def _torch_forward(q, k, v, scale):
    out, lse = ref.self_attention2d_lse(q, k, v, scale)
    return out.contiguous(), lse.contiguous()


def _torch_backward(grad, q, k, v, out, lse, scale):
    # The reference recomputes the attention matrix; out and lse are not needed.
    return tuple(t.contiguous() for t in ref.self_attention2d_grad(grad, q, k, v, scale))


def _load_triton():
    from ganfast.kernels import self_attention2d as kernels

    return kernels


# No CUDA C++ implementation: on CUDA, auto takes Triton (ganfast._backend.OPS).
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward, backward=_torch_backward))
_backend.register(OP, "triton", _load_triton)
# aten: the reference's expression under plain autograd (stores the attention matrix for backward).
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=ref.self_attention2d))


# -- registered ops ---------------------------------------------------------------------


def _empty(like: Tensor, channels: int, dtype: torch.dtype) -> Tensor:
    return like.new_empty((like.shape[0], channels, like.shape[2]), dtype=dtype)


@torch.library.custom_op("ganfast::self_attention2d", mutates_args=())
def _self_attention2d_op(q: Tensor, k: Tensor, v: Tensor, scale: float, backend: str) -> Tuple[Tensor, Tensor]:
    """``(out, lse)``: out ``(B, d_v, N)`` in v's dtype, lse ``(B, N)`` in float32 (float64)."""
    _, impl = _backend.select(OP, backend, q.device)
    return impl.forward(q, k, v, scale)


@_self_attention2d_op.register_fake
def _(q, k, v, scale, backend):
    check_args(q, k, v, scale)
    lse = q.new_empty((q.shape[0], q.shape[2]), dtype=compute_dtype(q.dtype))
    return _empty(v, v.shape[1], v.dtype), lse


@torch.library.custom_op("ganfast::self_attention2d_backward", mutates_args=())
def _self_attention2d_backward_op(
    grad: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, scale: float, backend: str
) -> Tuple[Tensor, Tensor, Tensor]:
    """``(dq, dk, dv)`` of ``ganfast::self_attention2d``; first order only (see the module docstring)."""
    _, impl = _backend.select(OP, backend, q.device)
    return impl.backward(grad, q, k, v, out, lse, scale)


@_self_attention2d_backward_op.register_fake
def _(grad, q, k, v, out, lse, scale, backend):
    check_args(q, k, v, scale)
    for t, name in ((grad, "grad"), (out, "out")):
        check_tensor(t, name)
        check_shape(t, name, tuple(v.shape), " (v's)")
    check_tensor(lse, "lse", dtypes=(compute_dtype(q.dtype),))
    check_shape(lse, "lse", (q.shape[0], q.shape[2]), " (one value per query)")
    return _empty(q, q.shape[1], q.dtype), _empty(k, k.shape[1], k.dtype), _empty(v, v.shape[1], v.dtype)


def _setup(ctx, inputs, output):
    q, k, v, scale, backend = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse)
    ctx.mark_non_differentiable(lse)
    ctx.params = (scale, backend)


def _backward(ctx, grad, _grad_lse):
    q, k, v, out, lse = ctx.saved_tensors
    needs = ctx.needs_input_grad[:3]
    if grad is None or not any(needs):
        return None, None, None, None, None
    scale, backend = ctx.params
    if differentiable_backward():
        # Recomputed through the reference (documented in the module docstring).
        def reference(q, k, v):
            return ref.self_attention2d(q, k, v, scale)

        return (*reference_grads(reference, (q, k, v), needs, grad), None, None)
    dq, dk, dv = _self_attention2d_backward_op(grad, q, k, v, out, lse, scale, backend)
    return (dq if needs[0] else None), (dk if needs[1] else None), (dv if needs[2] else None), None, None


_self_attention2d_op.register_autograd(_backward, setup_context=_setup)


register_first_order_only(_self_attention2d_backward_op, "ganfast::self_attention2d_backward",
                          recomputing="ganfast.ops.self_attention2d")


# -- public function --------------------------------------------------------------------


def check_args(q: Any, k: Any, v: Any, scale: Any) -> float:
    """The one check of this op: the public function and both fakes call it.

    Returns ``scale`` as a float; raises as :func:`self_attention2d` documents.
    """
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        check_tensor(t, name)
        check_ndim(t, name, (3, 4), "be 3-D (batch, channels, positions) or 4-D (batch, channels, height, width)")
        check_tensor(t, name, nonempty=True)
    for t, name in ((k, "k"), (v, "v")):
        check_dtype(t, name, (q.dtype,), f"have q's dtype ({q.dtype})")
        check_device(t, name, q.device, "q")
        check_ndim(t, name, q.dim(), f"have q's number of dimensions ({q.dim()})")
    for a, b in zip(k.shape, q.shape):
        require(a == b, ValueError,
                lambda: f"k must have q's shape {tuple(q.shape)} (batch, d_qk, positions); got {tuple(k.shape)}")
    want = (q.shape[0], "d_v", *q.shape[2:])
    check_shape(v, "v", want, " (q's batch and positions)")
    return check_float(scale, "scale")


def self_attention2d(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    scale: float = 1.0,
    backend: Optional[str] = None,
) -> Tensor:
    """Softmax attention of every position over all positions, SAGAN's form::

        out[b, :, i] = sum_j softmax_j(scale * q[b, :, i] . k[b, :, j]) * v[b, :, j]

    Args:
        q: queries, ``(B, d_qk, N)`` (channels first, positions last: a 1x1
            convolution's output flattened over its map), or 4-D
            ``(B, d_qk, H, W)``.  Any strides (channels_last, transposed
            views) are read in place by the triton backend.
        k: keys, same shape as ``q``.
        v: values, ``(B, d_v, N)`` (or ``(B, d_v, H, W)``); ``d_v`` may differ
            from ``d_qk``.
        scale: factor on the scores.  SAGAN (Zhang et al. 2019, eq. 1) uses
            ``softmax(f(x)^T g(x))`` unscaled: 1.0.  Transformers use
            ``d_qk ** -0.5``.
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None for the
            current choice (:func:`ganfast.use_backend`).

    q, k and v must share dtype (float16, bfloat16, float32, float64) and
    device, and be non-empty.

    Raises:
        TypeError: q, k or v is not a tensor, has an unsupported dtype or a
            dtype other than q's; ``scale`` is not a number.
        ValueError: not 3-D or 4-D, empty, on another device, shapes that do
            not match (k: q's shape; v: q's batch and positions), ``scale``
            not finite, or an unknown backend name.
        BackendUnavailable: the backend named cannot run here.

    Returns:
        ``(B, d_v, N)`` (or ``(B, d_v, H, W)``), contiguous, in the inputs'
        dtype.  Scores, softmax and sums are float32 (float64 for float64
        inputs).  The triton backend allocates only the output, one float32
        per position (and in the backward the gradients plus one more): memory
        is linear in N.  The torch backend (the reference) stores the
        ``(B, N, N)`` attention matrix.

    Derivatives: first order on the selected backend; with
    ``create_graph=True`` (double backward, e.g. R1) the backward is
    recomputed through the reference, so every order is supported there, at
    quadratic memory (see the module docstring).
    """
    scale = check_args(q, k, v, scale)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, q.device) == "aten":
        if q.dim() == 4:
            return ref.self_attention2d(q.flatten(2), k.flatten(2), v.flatten(2), scale).view(v.shape)
        return ref.self_attention2d(q, k, v, scale)
    if q.dim() == 4:
        out, _ = _self_attention2d_op(q.flatten(2), k.flatten(2), v.flatten(2), scale, backend)
        return out.view(v.shape)
    out, _ = _self_attention2d_op(q, k, v, scale, backend)
    return out


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_self_attention2d_op, _self_attention2d_backward_op)
