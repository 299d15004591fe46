"""``minibatch_stddev``: ProGAN's minibatch standard deviation layer, fused.

Karras et al. 2018, section 3, grouped the StyleGAN2 way: for x of shape
(N, C, H, W), G = min(group_size, N) samples form a group (sample i belongs
to group i mod N/G), the channels split into ``num_channels`` parts, and per
group and part the standard deviation over the G samples (biased variance
plus ``eps``, square root) is averaged over the part's channels and pixels
and appended as a constant channel.  Output: (N, C + num_channels, H, W).

Layers, as every op in ganfast:

* reference: :mod:`ganfast.ref.minibatch_stddev` (the definition, the torch
  backend);
* Triton: :mod:`ganfast.kernels.minibatch_stddev`: forward = one pass over x
  that computes the statistic's partial sums and copies x into the output
  (the concat), plus a small launch that writes the appended channels;
  backward = a small launch summing the appended channels' gradient, plus
  one pass over x that writes dx.  No atomics: deterministic.
* two registered custom ops, ``ganfast::minibatch_stddev`` and
  ``ganfast::minibatch_stddev_backward``, with fake implementations and
  autograd, so the op works under ``torch.compile(fullgraph=True)`` and
  ``torch.library.opcheck``;
* the public function :func:`minibatch_stddev` (argument checks) and the
  module :class:`ganfast.nn.MinibatchStdDev`.

Derivatives: the first derivative runs the selected backend's kernels.  When
the backward must itself be differentiable (``create_graph=True``: R1,
WGAN-GP through the discriminator), it is recomputed through the reference
with autograd instead, which supports every order; slower, and only taken on
penalty steps.  There is no CUDA C++ implementation (the Triton kernels
serve CUDA tensors).
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence, Tuple

import torch

from .. import _backend, _layout
from .._checks import check_float, check_int, check_ndim, check_shape, check_tensor, require
from .._dtypes import FLOAT_DTYPES
from ..ref import minibatch_stddev as ref
from ._autograd import differentiable_backward, reference_grads, register_first_order_only

Tensor = torch.Tensor

OP = "minibatch_stddev"
SUPPORTED_DTYPES = FLOAT_DTYPES


def _empty_out(x: Tensor, num_channels: int) -> Tensor:
    """The output, channels_last in, channels_last out (as ``torch.cat`` does); NCHW otherwise."""
    N, C, H, W = x.shape
    return torch.empty((N, C + num_channels, H, W), dtype=x.dtype, device=x.device,
                       memory_format=_layout.memory_format_of(x))


# -- torch backend ----------------------------------------------------------------------


def _torch_forward(x, G, F, eps):
    return ref.minibatch_stddev(x, G, F, eps).contiguous(memory_format=_layout.memory_format_of(x))


def _torch_backward(grad, x, G, F, eps):
    return _layout.like_layout_of(ref.minibatch_stddev_grad(grad, x, G, F, eps), x)


# -- triton backend ---------------------------------------------------------------------


def _load_triton():
    from ganfast.kernels import minibatch_stddev as kernels

    def forward(x, G, F, eps):
        out = _empty_out(x, F)
        kernels.forward(x, out, G, F, eps)
        return out

    def backward(grad, x, G, F, eps):
        dx = torch.empty_like(x)
        kernels.backward(grad, x, dx, G, F, eps)
        return dx

    return types.SimpleNamespace(forward=forward, backward=backward)


_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward, backward=_torch_backward))
_backend.register(OP, "triton", _load_triton)
# aten: the reference's expression under plain autograd (no registered op, no recompute in backward).
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=_torch_forward))


# -- registered ops ---------------------------------------------------------------------


@torch.library.custom_op("ganfast::minibatch_stddev", mutates_args=())
def _minibatch_stddev_op(x: Tensor, group_size: int, num_channels: int, eps: float, backend: str) -> Tensor:
    _, impl = _backend.select(OP, backend, x.device)
    return impl.forward(x, ref.group_size_for(x.shape[0], group_size), num_channels, eps)


@_minibatch_stddev_op.register_fake
def _(x, group_size, num_channels, eps, backend):
    check_args(x, group_size, num_channels, eps)
    return _empty_out(x, num_channels)


@torch.library.custom_op("ganfast::minibatch_stddev_backward", mutates_args=())
def _minibatch_stddev_backward_op(
    grad: Tensor, x: Tensor, group_size: int, num_channels: int, eps: float, backend: str
) -> Tensor:
    """Gradient of ``ganfast::minibatch_stddev`` w.r.t. ``x``; first order only (see the module docstring)."""
    _, impl = _backend.select(OP, backend, x.device)
    return impl.backward(grad, x, ref.group_size_for(x.shape[0], group_size), num_channels, eps)


@_minibatch_stddev_backward_op.register_fake
def _(grad, x, group_size, num_channels, eps, backend):
    check_args(x, group_size, num_channels, eps)
    check_tensor(grad, "grad")
    N, C, H, W = x.shape
    check_shape(grad, "grad", (N, C + num_channels, H, W), " (the output's)")
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    x, *params = inputs
    ctx.save_for_backward(x)
    ctx.params = params


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return None, None, None, None, None
    group_size, num_channels, eps, backend = ctx.params
    if differentiable_backward():
        # Recomputed through the reference (documented in the module docstring).
        def reference(x):
            return ref.minibatch_stddev(x, group_size, num_channels, eps)

        (dx,) = reference_grads(reference, (x,), (True,), grad)
    else:
        dx = _minibatch_stddev_backward_op(grad, x, group_size, num_channels, eps, backend)
    return dx, None, None, None, None


_minibatch_stddev_op.register_autograd(_backward, setup_context=_setup)
register_first_order_only(_minibatch_stddev_backward_op, "ganfast::minibatch_stddev_backward",
                          recomputing="ganfast.ops.minibatch_stddev")


# -- public function --------------------------------------------------------------------


def check_args(x: Any, group_size: Any, num_channels: Any, eps: Any) -> Tuple[int, int, float]:
    """The one check of this op: the public function and both fakes call it.

    Returns ``(group_size, num_channels, eps)``; raises as
    :func:`minibatch_stddev` documents.
    """
    check_tensor(x, "x")
    check_ndim(x, "x", 4, "have shape (N, C, H, W)")
    check_tensor(x, "x", nonempty=True)
    group_size = check_int(group_size, "group_size", minimum=1)
    num_channels = check_int(num_channels, "num_channels", minimum=1)
    require(x.shape[1] % num_channels == 0, ValueError, lambda: (
        f"num_channels ({num_channels}) must divide the channels of x ({x.shape[1]}, shape {tuple(x.shape)})"))
    eps = check_float(eps, "eps", minimum=0.0)
    ref.group_size_for(x.shape[0], group_size)  # N % G != 0 -> ValueError naming both
    return group_size, num_channels, eps


def minibatch_stddev(
    x: Tensor,
    group_size: int = 4,
    num_channels: int = 1,
    eps: float = ref.DEFAULT_EPS,
    backend: Optional[str] = None,
) -> Tensor:
    """``x`` with ``num_channels`` minibatch-standard-deviation channels appended (ProGAN, StyleGAN2 form).

    Karras et al. 2018 ("Progressive Growing of GANs"), section 3, grouped
    as StyleGAN2's ``MinibatchStdLayer`` (the equations are in
    :mod:`ganfast.ref.minibatch_stddev`).

    Args:
        x: (N, C, H, W) float16, bfloat16, float32 or float64 tensor, any
            strides (channels_last gives a channels_last output).
        group_size: samples per group; the group is G = min(group_size, N),
            and sample i belongs to group i mod (N / G).  N must be a
            multiple of G (ValueError otherwise).
        num_channels: F, the number of appended channels; the C channels are
            split into F consecutive parts, one statistic each.  Must divide C.
        eps: added to the variance before the square root (StyleGAN2: 1e-8).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None for the
            current choice (:func:`ganfast.use_backend`).

    Returns:
        (N, C + num_channels, H, W) in ``x``'s dtype; arithmetic in float32
        (float64 for float64 inputs).

    Raises:
        TypeError: ``x`` is not a tensor or has an unsupported dtype,
            ``group_size`` / ``num_channels`` are not ints, ``eps`` is not a
            number.
        ValueError: ``x`` is not 4-D or is empty, ``group_size`` or
            ``num_channels`` below 1, ``num_channels`` does not divide C,
            the batch is not a multiple of the group, ``eps`` negative or
            not finite, or an unknown backend name.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order: the first on the selected backend, higher
    ones through the reference (see the module docstring).
    """
    group_size, num_channels, eps = check_args(x, group_size, num_channels, eps)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return _torch_forward(x, group_size, num_channels, eps)
    return _minibatch_stddev_op(x, group_size, num_channels, eps, backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_minibatch_stddev_op, _minibatch_stddev_backward_op)
