"""``bias_act``: fused bias + activation (+ gain, + clamp).

The element-wise tail of StyleGAN-class generator layers::

    y = clamp(act(x + bias) * gain, -clamp, clamp)

with ``bias`` broadcast along ``dim``.  Eager PyTorch spends one full pass
over the activation per stage; the fused kernels read ``x`` once and write
``y`` once.

Layers, as every op in ganfast:

* reference: :mod:`ganfast.ref.bias_act` (the definition, the torch backend);
* Triton: :mod:`ganfast.kernels.bias_act`; CUDA: ``csrc/bias_act.cu`` through
  the host functions below;
* two registered custom ops, ``ganfast::bias_act`` and
  ``ganfast::bias_act_grad`` (its backward), each with a fake implementation
  and autograd, so the op works under ``torch.compile(fullgraph=True)`` and
  ``torch.library.opcheck``;
* the public function :func:`bias_act` and the module
  :class:`ganfast.nn.BiasAct`; :func:`check_args` is the one argument check,
  called by the public function and by both fake implementations.

Derivatives: the backward is ``ganfast::bias_act_grad``, which is linear in
the incoming gradient, so its own gradient w.r.t. that gradient is the same
op again (fast backends).  Its gradient w.r.t. ``x`` and ``bias`` (non-zero
only for tanh, sigmoid and silu) is recomputed through the plain-PyTorch
reference :func:`ganfast.ref.bias_act.bias_act_grad2`, which autograd can
differentiate again: derivatives of every order are supported, and double
backward (R1, WGAN-GP) runs the fast kernels for everything but that term.

Speed: the kernels are written for bandwidth (one read of x, one write of
y), and the target is 85% or more of the measured copy bandwidth for a bf16
forward over 64M elements; that GPU measurement is still owed
(bench/RESULTS.md has none yet).
"""

from __future__ import annotations

import types
from typing import Any, Optional, Sequence, Tuple

import torch

from .. import _backend, _layout
from .._activations import canonical_act
from .._checks import check_device, check_dim, check_dtype, check_float, check_shape, check_tensor
from .._dtypes import FLOAT_DTYPES, compute_dtype
from ..ref import bias_act as ref

Tensor = torch.Tensor

OP = "bias_act"
SUPPORTED_DTYPES = FLOAT_DTYPES

# -- torch backend ----------------------------------------------------------------------


def _torch_forward(x, bias, act, negative_slope, gain, clamp, dim):
    y = ref.bias_act(x, bias, act, negative_slope, gain, clamp, dim)
    if y.data_ptr() == x.data_ptr():
        y = y.clone()  # a registered op may not return an alias of its input
    return _layout.like_layout_of(y, x)


def _torch_backward(grad, x, bias, act, negative_slope, gain, clamp, dim):
    dz = ref.bias_act_grad(grad, x, bias, act, negative_slope, gain, clamp, dim)
    return _layout.like_layout_of(dz, x)


# -- CUDA backend: host functions for ganfast._C (raw pointers + stream) --------------


def _cuda_args(x: Tensor, bias: Optional[Tensor], act, negative_slope, gain, clamp, dim):
    from .. import _cuda

    channels, channel_stride = _layout.channel_geometry(x, dim)
    if bias is not None:
        # The kernel reads the bias in the compute dtype (float32, or float64).
        bias = bias.to(compute_dtype(x.dtype)).contiguous()
    device, stream = _cuda.launch_args(x)
    tail = (
        x.numel(),
        channels,
        channel_stride,
        str(x.dtype).replace("torch.", ""),
        canonical_act(act),
        float(negative_slope),
        float(gain),
        float(clamp) if clamp is not None else -1.0,
        device,
        stream,
    )
    return _cuda.extension(), bias, tail


def _cuda_forward(x, bias, act, negative_slope, gain, clamp, dim):
    x = _layout.dense(x)
    y = torch.empty_like(x)
    lib, bias, tail = _cuda_args(x, bias, act, negative_slope, gain, clamp, dim)
    lib.bias_act_forward(x.data_ptr(), bias.data_ptr() if bias is not None else 0, y.data_ptr(), *tail)
    return y


def _cuda_backward(grad, x, bias, act, negative_slope, gain, clamp, dim):
    x = _layout.dense(x)
    grad = _layout.like(grad.to(x.dtype), x)
    dz = torch.empty_like(x)
    lib, bias, tail = _cuda_args(x, bias, act, negative_slope, gain, clamp, dim)
    lib.bias_act_backward(
        grad.data_ptr(), x.data_ptr(), bias.data_ptr() if bias is not None else 0, dz.data_ptr(), *tail
    )
    return dz


def _load_triton():
    from ganfast.kernels import bias_act as kernels

    return kernels


# The order auto tries these in is this op's row in ganfast._backend.OPS.
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward, backward=_torch_backward))
_backend.register(OP, "triton", _load_triton)
_backend.register(OP, "cuda", lambda: types.SimpleNamespace(forward=_cuda_forward, backward=_cuda_backward))


# -- registered ops ---------------------------------------------------------------------


# The schemas repeat the reference's arguments on purpose: a custom op's
# schema is its annotated Python signature.
# aten: the reference's own expression under plain autograd (native leaky_relu /
# tanh / ... and their native backward), no registered op around it.
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=ref.bias_act))


@torch.library.custom_op("ganfast::bias_act", mutates_args=())
def _bias_act_op(x: Tensor, bias: Optional[Tensor], act: str, negative_slope: float, gain: float,
                 clamp: Optional[float], dim: int, backend: str) -> Tensor:
    _, impl = _backend.select(OP, backend, x.device)
    return impl.forward(x, bias, act, negative_slope, gain, clamp, dim)


@_bias_act_op.register_fake
def _(x, bias, act, negative_slope, gain, clamp, dim, backend):
    check_args(x, bias, act, negative_slope, gain, clamp, dim)
    return torch.empty_like(x)


@torch.library.custom_op("ganfast::bias_act_grad", mutates_args=())
def _bias_act_grad_op(grad: Tensor, x: Tensor, bias: Optional[Tensor], act: str, negative_slope: float,
                      gain: float, clamp: Optional[float], dim: int, backend: str) -> Tensor:
    """Gradient of ``ganfast::bias_act`` w.r.t. ``x``; linear in ``grad``."""
    _, impl = _backend.select(OP, backend, x.device)
    return impl.backward(grad, x, bias, act, negative_slope, gain, clamp, dim)


@_bias_act_grad_op.register_fake
def _(grad, x, bias, act, negative_slope, gain, clamp, dim, backend):
    check_args(x, bias, act, negative_slope, gain, clamp, dim)
    check_tensor(grad, "grad")
    check_shape(grad, "grad", tuple(x.shape), " (x's)")
    return torch.empty_like(x)


def _reduce_to_bias(t: Tensor, bias: Tensor, dim: int) -> Tensor:
    """Sum ``t`` over every dimension but ``dim``, accumulating in float32 or better."""
    dims = [d for d in range(t.dim()) if d != dim]
    acc = torch.float64 if t.dtype == torch.float64 or bias.dtype == torch.float64 else torch.float32
    return t.sum(dim=dims, dtype=acc).to(bias.dtype) if dims else t.to(bias.dtype)


def _bias_act_setup(ctx, inputs, output):
    x, bias, *params = inputs
    ctx.save_for_backward(x, bias)
    ctx.params = params


def _bias_act_backward(ctx, grad):
    x, bias = ctx.saved_tensors
    needs_x, needs_b = ctx.needs_input_grad[:2]
    if not (needs_x or needs_b):
        return (None,) * 8
    dz = _bias_act_grad_op(grad, x, bias, *ctx.params)
    dim = ctx.params[4]
    db = _reduce_to_bias(dz, bias, dim) if needs_b else None
    return (dz if needs_x else None), db, None, None, None, None, None, None


_bias_act_op.register_autograd(_bias_act_backward, setup_context=_bias_act_setup)


def _bias_act_grad_setup(ctx, inputs, output):
    grad, x, bias, *params = inputs
    ctx.save_for_backward(grad, x, bias)
    ctx.params = params


def _bias_act_grad_backward(ctx, grad_dz):
    grad, x, bias = ctx.saved_tensors
    act, negative_slope, gain, clamp, dim, backend = ctx.params
    needs_g, needs_x, needs_b = ctx.needs_input_grad[:3]
    d_grad = dx = db = None
    if needs_g:
        # bias_act_grad is linear in grad: its adjoint is the op itself.
        d_grad = _bias_act_grad_op(grad_dz, x, bias, *ctx.params)
    if (needs_x or needs_b) and ref.has_grad2(act):
        # The curvature term, recomputed through the reference (documented).
        t = ref.bias_act_grad2(grad_dz, grad, x, bias, act, negative_slope, gain, clamp, dim)
        dx = t.to(x.dtype) if needs_x else None
        db = _reduce_to_bias(t, bias, dim) if needs_b else None
    return d_grad, dx, db, None, None, None, None, None, None


_bias_act_grad_op.register_autograd(_bias_act_grad_backward, setup_context=_bias_act_grad_setup)


# -- public function --------------------------------------------------------------------


def check_args(x: Any, bias: Any, act: Any, negative_slope: Any, gain: Any, clamp: Any, dim: Any
               ) -> Tuple[int, str, float, float, Optional[float]]:
    """Check :func:`bias_act`'s arguments; ``(dim, act, negative_slope, gain, clamp)`` normalised.

    The one check of this op: the public function calls it on what the user
    passed, the fake implementations on what reaches the registered op, so
    ``torch.ops.ganfast.bias_act`` under ``torch.compile`` raises what
    :func:`bias_act` raises.  Raises as :func:`bias_act` documents.
    """
    check_tensor(x, "x", nonempty=True)
    if x.dim() == 0:
        if bias is not None:
            raise ValueError("x must have at least one dimension when bias is given; got a 0-d tensor")
        dim = 0
    else:
        dim = check_dim(dim, "dim", x.dim(), x.shape)
    if bias is not None:
        check_tensor(bias, "bias", dtypes=None, optional=True)
        check_shape(bias, "bias", (x.shape[dim],), f" to match dim {dim} of x with shape {tuple(x.shape)}")
        check_device(bias, "bias", x.device)
        check_dtype(bias, "bias", (x.dtype, torch.float32, torch.float64),
                    f"have x's dtype ({x.dtype}), float32 or float64")
    act = canonical_act(act)
    negative_slope = check_float(negative_slope, "negative_slope")
    gain = check_float(gain, "gain")
    if clamp is not None:
        clamp = check_float(clamp, "clamp", minimum=0.0)
    return dim, act, negative_slope, gain, clamp


def bias_act(
    x: Tensor,
    bias: Optional[Tensor] = None,
    act: str = "leaky_relu",
    negative_slope: float = 0.2,
    gain: float = 1.0,
    clamp: Optional[float] = None,
    dim: int = 1,
    backend: Optional[str] = None,
) -> Tensor:
    """Fused ``clamp(act(x + bias) * gain, -clamp, clamp)``: StyleGAN2's ``bias_act``.

    The element-wise tail of a StyleGAN2 layer (Karras et al. 2020,
    "Analyzing and Improving the Image Quality of StyleGAN", section 2.2 and
    appendix: bias, leaky ReLU with slope 0.2 and gain sqrt(2), clamping of
    the activations at 256 in mixed precision), in one pass.

    Args:
        x: float16, bfloat16, float32 or float64 tensor, any shape (0-d
            allowed without a bias) and memory layout (dense layouts such as
            channels_last are used as they are; other strided views are
            copied once).  Must not be empty.
        bias: optional 1-D tensor of shape ``(x.shape[dim],)`` on x's device,
            in ``x``'s dtype, float32 (mixed precision) or float64.
        act: ``linear``, ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid`` or
            ``silu`` (aliases: ``lrelu``, ``swish``, ``identity``, ``none``).
        negative_slope: slope of ``leaky_relu`` for negative inputs (finite).
        gain: scale applied after the activation (finite).
        clamp: if given (finite, >= 0), the result is clamped to
            ``[-clamp, clamp]``.
        dim: the dimension of ``x`` that ``bias`` runs along.
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"cuda"``,
            ``"auto"``, or None for the current choice
            (:func:`ganfast.use_backend`).

    Returns:
        A tensor with ``x``'s shape, dtype and (dense) layout.  Arithmetic is
        float32 (float64 for float64 inputs).

    Raises:
        TypeError: ``x`` or ``bias`` is not a tensor, has an unsupported
            dtype, or ``act`` is not a string, or ``negative_slope``,
            ``gain``, ``clamp`` are not numbers, or ``dim`` is not an int.
        ValueError: ``x`` is empty, ``bias`` has the wrong shape or device,
            ``act`` is unknown, a number is not finite (``clamp`` negative),
            or ``backend`` is not a backend's name.
        IndexError: ``dim`` is out of range (a ``ValueError`` too).
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order are supported: first and the gradient-side
    half of the second on the selected backend, the curvature term of
    tanh/sigmoid/silu through the reference (see the module docstring).
    """
    dim, act, negative_slope, gain, clamp = check_args(x, bias, act, negative_slope, gain, clamp, dim)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return ref.bias_act(x, bias, act, negative_slope, gain, clamp, dim)
    return _bias_act_op(x, bias, act, negative_slope, gain, clamp, dim, backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_bias_act_op, _bias_act_grad_op)
