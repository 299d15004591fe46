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

PReLU (``act="prelu"``, He et al. 2015, eq. 1) takes its slope as a tensor,
``alpha``, one value per channel along ``dim`` or one shared (shape (1,)),
and learns it: it has its own pair of registered ops, ``ganfast::bias_prelu``
and ``ganfast::bias_prelu_grad`` (the latter returns the gradients w.r.t. x
and alpha), so the float-slope ops' schemas are unchanged.  Backends: torch,
aten and triton run it; the CUDA extension has no tensor-slope kernel, so on
the ``cuda`` backend (``auto`` on CUDA tensors included) prelu runs the
Triton kernel, or the reference where Triton is missing.  Its double
backward takes the part linear in the incoming gradient from
``ganfast::bias_prelu_grad`` again and the cross terms (through alpha, and
through the slope gradient's dependence on z) from the reference
:func:`ganfast.ref.bias_act.prelu_grad2`: derivatives of every order.

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
from .._activations import canonical_act, has_channel_slope
from .._checks import check_device, check_dim, check_dtype, check_float, check_shape, check_tensor, require
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


def _torch_prelu_forward(x, bias, alpha, gain, clamp, dim):
    y = ref.bias_act(x, bias, "prelu", 0.0, gain, clamp, dim, alpha)
    return _layout.like_layout_of(y, x)


def _torch_prelu_backward(grad, x, bias, alpha, gain, clamp, dim):
    dz = ref.bias_act_grad(grad, x, bias, "prelu", 0.0, gain, clamp, dim, alpha)
    return _layout.like_layout_of(dz, x), ref.prelu_alpha_grad(grad, x, bias, alpha, gain, clamp, dim)


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
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward, backward=_torch_backward,
                                                             prelu_forward=_torch_prelu_forward,
                                                             prelu_backward=_torch_prelu_backward))
_backend.register(OP, "triton", _load_triton)
_backend.register(OP, "cuda", lambda: types.SimpleNamespace(forward=_cuda_forward, backward=_cuda_backward))


# -- registered ops ---------------------------------------------------------------------


# The schemas repeat the reference's arguments on purpose: a custom op's
# schema is its annotated Python signature.
# aten: the reference's own expression under plain autograd (native leaky_relu /
# tanh / ... and their native backward), no registered op around it.
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=ref.bias_act))


def _select_prelu(backend: str, device: torch.device):
    """The implementation that runs prelu for this request: the backend's own, except on cuda, whose
    extension has no tensor-slope kernel; there the Triton kernel serves (the reference without Triton)."""
    name, impl = _backend.select(OP, backend, device)
    if name == "cuda":
        fallback = "triton" if _backend.status(OP, "triton", device.type) else "torch"
        name, impl = _backend.select(OP, fallback, device)
    return impl


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


def _saving(n: int):
    """A setup_context that saves an op's first ``n`` inputs (its tensors) and keeps the rest as ``ctx.params``."""

    def setup(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n])
        ctx.params = list(inputs[n:])

    return setup


def _bias_act_backward(ctx, grad):
    x, bias = ctx.saved_tensors
    needs_x, needs_b = ctx.needs_input_grad[:2]
    if not (needs_x or needs_b):
        return (None,) * 8
    dz = _bias_act_grad_op(grad, x, bias, *ctx.params)
    dim = ctx.params[4]
    db = _reduce_to_bias(dz, bias, dim) if needs_b else None
    return (dz if needs_x else None), db, None, None, None, None, None, None


_bias_act_op.register_autograd(_bias_act_backward, setup_context=_saving(2))


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


_bias_act_grad_op.register_autograd(_bias_act_grad_backward, setup_context=_saving(3))


# -- prelu: the slope is a tensor input, and has a gradient ------------------------------


def _reduce_to_slope(t: Tensor, alpha: Tensor, dim: int) -> Tensor:
    """Sum per-element slope gradients to ``alpha``'s shape: per channel along ``dim``, or all for (1,)."""
    if t.dim() == 0 or alpha.shape[0] == 1:
        acc = torch.float64 if t.dtype == torch.float64 or alpha.dtype == torch.float64 else torch.float32
        return t.sum(dtype=acc).reshape(1).to(alpha.dtype)
    return _reduce_to_bias(t, alpha, dim)


@torch.library.custom_op("ganfast::bias_prelu", mutates_args=())
def _bias_prelu_op(x: Tensor, bias: Optional[Tensor], alpha: Tensor, gain: float, clamp: Optional[float], dim: int,
                   backend: str) -> Tensor:
    """``act="prelu"`` of ``ganfast::bias_act``, with the slopes ``alpha`` as a tensor input."""
    return _select_prelu(backend, x.device).prelu_forward(x, bias, alpha, gain, clamp, dim)


@_bias_prelu_op.register_fake
def _(x, bias, alpha, gain, clamp, dim, backend):
    check_args(x, bias, "prelu", 0.0, gain, clamp, dim, alpha)
    return torch.empty_like(x)


@torch.library.custom_op("ganfast::bias_prelu_grad", mutates_args=())
def _bias_prelu_grad_op(grad: Tensor, x: Tensor, bias: Optional[Tensor], alpha: Tensor, gain: float,
                        clamp: Optional[float], dim: int, backend: str) -> Tuple[Tensor, Tensor]:
    """Gradients of ``ganfast::bias_prelu`` w.r.t. ``x`` and ``alpha``; linear in ``grad``."""
    dz, da = _select_prelu(backend, x.device).prelu_backward(grad, x, bias, alpha, gain, clamp, dim)
    return dz, _reduce_to_slope(da, alpha, dim)


@_bias_prelu_grad_op.register_fake
def _(grad, x, bias, alpha, gain, clamp, dim, backend):
    check_args(x, bias, "prelu", 0.0, gain, clamp, dim, alpha)
    check_tensor(grad, "grad")
    check_shape(grad, "grad", tuple(x.shape), " (x's)")
    return torch.empty_like(x), torch.empty_like(alpha)


def _bias_prelu_backward(ctx, grad):
    x, bias, alpha = ctx.saved_tensors
    needs_x, needs_b, needs_a = ctx.needs_input_grad[:3]
    if not (needs_x or needs_b or needs_a):
        return (None,) * 7
    dz, da = _bias_prelu_grad_op(grad, x, bias, alpha, *ctx.params)
    dim = ctx.params[2]
    db = _reduce_to_bias(dz, bias, dim) if needs_b else None
    return (dz if needs_x else None), db, (da if needs_a else None), None, None, None, None


_bias_prelu_op.register_autograd(_bias_prelu_backward, setup_context=_saving(3))


def _bias_prelu_grad_backward(ctx, grad_dz, grad_da):
    grad, x, bias, alpha = ctx.saved_tensors
    gain, clamp, dim, backend = ctx.params
    needs_g, needs_x, needs_b, needs_a = ctx.needs_input_grad[:4]
    # The cross terms, recomputed through the reference (documented); the rest is the op again.
    t_grad, t_z, t_a = ref.prelu_grad2(grad_dz if needs_a else None,
                                       grad_da if (needs_g or needs_x or needs_b) else None,
                                       grad, x, bias, alpha, gain, clamp, dim)
    d_grad = dx = db = da = None
    if needs_g:
        # dz is linear in grad: that half of its adjoint is the op itself.
        lin = None if grad_dz is None else _bias_prelu_grad_op(grad_dz, x, bias, alpha, *ctx.params)[0]
        d_grad = lin if t_grad is None else (t_grad if lin is None else t_grad + lin)
        d_grad = None if d_grad is None else d_grad.to(grad.dtype)
    if t_z is not None:
        dx = t_z.to(x.dtype) if needs_x else None
        db = _reduce_to_bias(t_z, bias, dim) if needs_b else None
    if t_a is not None:
        da = _reduce_to_slope(t_a, alpha, dim)
    return d_grad, dx, db, da, None, None, None, None


_bias_prelu_grad_op.register_autograd(_bias_prelu_grad_backward, setup_context=_saving(4))


# -- public function --------------------------------------------------------------------


def check_args(x: Any, bias: Any, act: Any, negative_slope: Any, gain: Any, clamp: Any, dim: Any, alpha: Any = None
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
    if has_channel_slope(act):
        _check_alpha(alpha, x, dim)
    elif alpha is not None:
        raise ValueError(f"alpha is prelu's tensor of slopes; act {act!r} takes none (leaky_relu's slope is "
                         f"negative_slope); got a {type(alpha).__name__}")
    negative_slope = check_float(negative_slope, "negative_slope")
    gain = check_float(gain, "gain")
    if clamp is not None:
        clamp = check_float(clamp, "clamp", minimum=0.0)
    return dim, act, negative_slope, gain, clamp


def _check_alpha(alpha: Any, x: Tensor, dim: int) -> None:
    if alpha is None:
        raise TypeError("alpha must be a torch.Tensor of slopes, shape (1,) or (channels,), when act='prelu'; "
                        "got None")
    check_tensor(alpha, "alpha", dtypes=None)
    channels = x.shape[dim] if x.dim() else 1
    # torch.nn.PReLU's num_parameters: one shared slope, or one per channel.
    require(alpha.dim() == 1 and (alpha.shape[0] == 1 or alpha.shape[0] == channels), ValueError,
            lambda: f"alpha must have shape (1,) or ({channels},) to match dim {dim} of x with shape "
                    f"{tuple(x.shape)}; got {tuple(alpha.shape)}")
    check_device(alpha, "alpha", x.device)
    check_dtype(alpha, "alpha", (x.dtype, torch.float32, torch.float64),
                f"have x's dtype ({x.dtype}), float32 or float64")


def bias_act(
    x: Tensor,
    bias: Optional[Tensor] = None,
    act: str = "leaky_relu",
    negative_slope: float = 0.2,
    gain: float = 1.0,
    clamp: Optional[float] = None,
    dim: int = 1,
    backend: Optional[str] = None,
    *,
    alpha: Optional[Tensor] = None,
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
        act: ``linear``, ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``,
            ``silu`` (aliases: ``lrelu``, ``swish``, ``identity``, ``none``)
            or ``prelu`` (learnable slopes ``alpha``).
        negative_slope: slope of ``leaky_relu`` for negative inputs (finite;
            ignored by the other activations, prelu included).
        gain: scale applied after the activation (finite).
        clamp: if given (finite, >= 0), the result is clamped to
            ``[-clamp, clamp]``.
        dim: the dimension of ``x`` that ``bias`` runs along.
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"cuda"``,
            ``"auto"``, or None for the current choice
            (:func:`ganfast.use_backend`).  ``"cuda"`` runs prelu through
            the Triton kernel (the extension has no tensor-slope kernel).
        alpha: ``act="prelu"`` only, and required there: the negative-side
            slopes (He et al. 2015, eq. 1, ``a_i``; torch.nn.PReLU's
            ``weight``), a 1-D tensor of shape ``(x.shape[dim],)`` (one per
            channel, broadcast along ``dim`` like ``bias``) or ``(1,)`` (one
            shared), on x's device, in x's dtype, float32 or float64.  It
            receives a gradient (in its own dtype), as ``x`` and ``bias`` do.

    Returns:
        A tensor with ``x``'s shape, dtype and (dense) layout.  Arithmetic is
        float32 (float64 for float64 inputs).

    Raises:
        TypeError: ``x``, ``bias`` or ``alpha`` is not a tensor (``alpha``
            missing with prelu), has an unsupported dtype, or ``act`` is not
            a string, or ``negative_slope``, ``gain``, ``clamp`` are not
            numbers, or ``dim`` is not an int.
        ValueError: ``x`` is empty, ``bias`` or ``alpha`` has the wrong shape
            or device, ``alpha`` is given for another act than prelu,
            ``act`` is unknown, a number is not finite (``clamp`` negative),
            or ``backend`` is not a backend's name.
        IndexError: ``dim`` is out of range (a ``ValueError`` too).
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order are supported: first and the gradient-side
    half of the second on the selected backend, the curvature term of
    tanh/sigmoid/silu and prelu's cross terms (through ``alpha``) through the
    reference (see the module docstring).
    """
    dim, act, negative_slope, gain, clamp = check_args(x, bias, act, negative_slope, gain, clamp, dim, alpha)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return ref.bias_act(x, bias, act, negative_slope, gain, clamp, dim, alpha)
    if act == "prelu":
        return _bias_prelu_op(x, bias, alpha, gain, clamp, dim, backend)
    return _bias_act_op(x, bias, act, negative_slope, gain, clamp, dim, backend)


#: Registered ops of this module, for opcheck and the docs.
CUSTOM_OPS: Sequence = (_bias_act_op, _bias_act_grad_op)
#: prelu's registered ops (forward, backward).
PRELU_OPS: Sequence = (_bias_prelu_op, _bias_prelu_grad_op)
