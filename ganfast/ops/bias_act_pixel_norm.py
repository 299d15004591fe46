"""``bias_act_pixel_norm``: bias + leaky ReLU + ProGAN's pixel norm, fused.

The tail of every ProGAN generator layer (Karras et al. 2018, section 4.2;
tkarras/progressive_growing_of_gans ``networks.py``: ``PN(act(apply_bias(x)))``)::

    y = pixel_norm(leaky_relu(x + bias, negative_slope), eps)
    pixel_norm(a) = a / sqrt(mean over channels of a^2 + eps)

Eager PyTorch runs it as five passes over the activation (add, leaky_relu,
square, mean, multiply, plus the rsqrt of the statistic); the fused kernels
read x once and write y once.

Layers, as every op in ganfast:

* reference: :mod:`ganfast.ref.bias_act_pixel_norm` (the definition, the
  torch backend);
* Triton: :mod:`ganfast.kernels.bias_act_pixel_norm`: one program per tile
  of pixels, each pixel's channel vector reduced in registers; the backward
  writes dx, and the bias gradient is dx summed over N, H, W on the host;
* two registered custom ops, ``ganfast::bias_act_pixel_norm`` and
  ``ganfast::bias_act_pixel_norm_backward``, with fake implementations and
  autograd, so the op works under ``torch.compile(fullgraph=True)`` and
  ``torch.library.opcheck``;
* the public function :func:`bias_act_pixel_norm`; :func:`check_args` is the
  one argument check, called by the public function and by both fakes.

Derivatives: the first derivative runs the selected backend's closed form
(:func:`ganfast.ref.bias_act_pixel_norm.bias_act_pixel_norm_grad`).  When
the backward must itself be differentiable (``create_graph=True``: an R1 or
path-length penalty through the generator), it is recomputed through the
reference with autograd instead, which supports every order; slower, and
only taken on penalty steps.  Differentiating the backward op itself
raises.  The ``aten`` backend is the reference's own expression under plain
autograd, without the registered op (the CPU's choice); there is no CUDA C++
implementation.
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence, Tuple

import torch

from .. import _backend, _layout
from .._checks import check_float, check_ndim, check_shape, check_tensor
from .._dtypes import FLOAT_DTYPES
from ..ref import bias_act_pixel_norm as ref
from ._autograd import differentiable_backward, reference_grads, register_first_order_only
from .bias_act import check_args as bias_act_check_args

Tensor = torch.Tensor

OP = "bias_act_pixel_norm"
SUPPORTED_DTYPES = FLOAT_DTYPES

# -- torch backend ----------------------------------------------------------------------


def _torch_forward(x, bias, negative_slope, eps):
    return _layout.like_layout_of(ref.bias_act_pixel_norm(x, bias, negative_slope, eps), x)


def _torch_backward(grad, x, bias, negative_slope, eps):
    return _layout.like_layout_of(ref.bias_act_pixel_norm_grad(grad, x, bias, negative_slope, eps), x)


# -- triton backend ---------------------------------------------------------------------


def _load_triton():
    from ganfast.kernels import bias_act_pixel_norm as kernels

    return kernels


# The order auto tries these in is this op's row in ganfast._backend.OPS.
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward, backward=_torch_backward))
# aten: the reference's own expression under plain autograd (native leaky_relu, mean, rsqrt and their
# native backward), no registered op around it: the CPU's choice (ganfast._backend.OPS).
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=_torch_forward))
_backend.register(OP, "triton", _load_triton)


# -- registered ops ---------------------------------------------------------------------


@torch.library.custom_op("ganfast::bias_act_pixel_norm", mutates_args=())
def _bias_act_pixel_norm_op(x: Tensor, bias: Optional[Tensor], negative_slope: float, eps: float,
                            backend: str) -> Tensor:
    _, impl = _backend.select(OP, backend, x.device)
    return impl.forward(x, bias, negative_slope, eps)


@_bias_act_pixel_norm_op.register_fake
def _(x, bias, negative_slope, eps, backend):
    check_args(x, bias, negative_slope, eps)
    return torch.empty_like(x)


@torch.library.custom_op("ganfast::bias_act_pixel_norm_backward", mutates_args=())
def _bias_act_pixel_norm_backward_op(grad: Tensor, x: Tensor, bias: Optional[Tensor], negative_slope: float,
                                     eps: float, backend: str) -> Tensor:
    """Gradient of ``ganfast::bias_act_pixel_norm`` w.r.t. ``x`` (and z = x + bias); first order only."""
    _, impl = _backend.select(OP, backend, x.device)
    return impl.backward(grad, x, bias, negative_slope, eps)


@_bias_act_pixel_norm_backward_op.register_fake
def _(grad, x, bias, negative_slope, eps, backend):
    check_args(x, bias, negative_slope, eps)
    check_tensor(grad, "grad")
    check_shape(grad, "grad", tuple(x.shape), " (x's)")
    return torch.empty_like(x)


def _reduce_to_bias(dz: Tensor, bias: Tensor) -> Tensor:
    """Sum ``dz`` over every dim but the channels (1), accumulating in float32 or better."""
    acc = torch.float64 if dz.dtype == torch.float64 or bias.dtype == torch.float64 else torch.float32
    return dz.sum(dim=[d for d in range(dz.dim()) if d != 1], dtype=acc).to(bias.dtype)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:2])  # x, bias
    ctx.params = inputs[2:]  # negative_slope, eps, backend


def _backward(ctx, grad):
    needs_x, needs_b = ctx.needs_input_grad[:2]
    if not (needs_x or needs_b):
        return None, None, None, None, None
    x, bias = ctx.saved_tensors
    negative_slope, eps, backend = ctx.params
    if differentiable_backward():
        # Recomputed through the reference (documented in the module docstring).
        def reference(x, bias):
            return ref.bias_act_pixel_norm(x, bias, negative_slope, eps)

        dx, db = reference_grads(reference, (x, bias), (needs_x, needs_b and bias is not None), grad)
        return dx, db, None, None, None
    dz = _bias_act_pixel_norm_backward_op(grad, x, bias, negative_slope, eps, backend)
    db = _reduce_to_bias(dz, bias) if needs_b else None
    return (dz if needs_x else None), db, None, None, None


_bias_act_pixel_norm_op.register_autograd(_backward, setup_context=_setup)
register_first_order_only(_bias_act_pixel_norm_backward_op, "ganfast::bias_act_pixel_norm_backward",
                          recomputing="ganfast.ops.bias_act_pixel_norm")


# -- public function --------------------------------------------------------------------


def check_args(x: Any, bias: Any, negative_slope: Any, eps: Any) -> Tuple[float, float]:
    """Check :func:`bias_act_pixel_norm`'s arguments; ``(negative_slope, eps)`` as Python floats.

    The one check of this op: the public function calls it on what the user
    passed, the fake implementations on what reaches the registered ops, so
    ``torch.ops.ganfast.bias_act_pixel_norm`` under ``torch.compile`` raises
    what :func:`bias_act_pixel_norm` raises.  Raises as
    :func:`bias_act_pixel_norm` documents.
    """
    check_tensor(x, "x")
    check_ndim(x, "x", (2, 4), "have shape (N, C, H, W) or (N, C)")
    # x non-empty; bias (C,) on x's device in x's dtype, float32 or float64; the slope a float: bias_act's rules.
    bias_act_check_args(x, bias, "leaky_relu", negative_slope, 1.0, None, 1)
    negative_slope = check_float(negative_slope, "negative_slope", minimum=0.0, maximum=1.0)
    eps = check_float(eps, "eps", positive=True)
    return negative_slope, eps


def bias_act_pixel_norm(
    x: Tensor,
    bias: Optional[Tensor] = None,
    negative_slope: float = 0.2,
    eps: float = ref.DEFAULT_EPS,
    *,
    backend: Optional[str] = None,
) -> Tensor:
    """Fused ``pixel_norm(leaky_relu(x + bias, negative_slope), eps)``: ProGAN's generator layer tail.

    Karras et al. 2018 ("Progressive Growing of GANs for Improved Quality,
    Stability, and Variation"), section 4.2, pixelwise feature vector
    normalisation, as tkarras/progressive_growing_of_gans ``networks.py``
    writes it: ``pixel_norm(x, epsilon=1e-8) = x * rsqrt(mean(x^2 over
    channels) + epsilon)``, applied after the bias and ``leaky_relu(x, 0.2)``
    of each generator convolution (and with ``negative_slope=1.0`` and no
    bias, to the latent vector z).  Per pixel (n, h, w), over the C
    channels::

        a = leaky_relu(x + bias, negative_slope)
        y = a / sqrt(mean_c(a^2) + eps)

    Args:
        x: (N, C, H, W) feature maps or (N, C) vectors (a latent batch: each
            row is one "pixel"); float16, bfloat16, float32 or float64; any
            strides (NCHW, channels_last, sliced views are read as they are).
            Must not be empty.
        bias: optional (C,) tensor on x's device, in ``x``'s dtype, float32
            (mixed precision) or float64; broadcast along dim 1.
        negative_slope: leaky ReLU's slope for negative inputs, a number in
            [0, 1]: 0.2 is ProGAN's, 0 is ReLU, 1.0 means no activation.
        eps: added to the mean square before the square root, a finite
            number > 0 (ProGAN: 1e-8).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None for the
            current choice (:func:`ganfast.use_backend`).

    Returns:
        A tensor with ``x``'s shape and dtype, laid out as
        ``torch.empty_like(x)`` (channels_last in, channels_last out).
        Arithmetic in float32 (float64 for float64 inputs).

    Raises:
        TypeError: ``x`` or ``bias`` is not a tensor or has an unsupported
            dtype, ``negative_slope`` or ``eps`` is not a number.
        ValueError: ``x`` is not 2-D or 4-D or is empty, ``bias`` has the
            wrong shape or device, ``negative_slope`` is outside [0, 1],
            ``eps`` is not a finite positive number, or ``backend`` is not a
            backend's name.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order: the first on the selected backend (closed
    form), higher ones recomputed through the reference (see the module
    docstring).
    """
    negative_slope, eps = check_args(x, bias, negative_slope, eps)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return _torch_forward(x, bias, negative_slope, eps)
    return _bias_act_pixel_norm_op(x, bias, negative_slope, eps, backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_bias_act_pixel_norm_op, _bias_act_pixel_norm_backward_op)
