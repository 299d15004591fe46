"""``batch_norm_act``: training-mode BatchNorm + LeakyReLU as two passes over the activation.

The stage after the convolution in both fused conv blocks
(:func:`ganfast.ops.conv_bn_act`, and the transposed-convolution block).
Eager PyTorch runs it as BatchNorm (a statistics pass and a normalise pass)
then LeakyReLU (another read and write of the whole activation), and saves
both the BatchNorm input and output for the backward.  Here:

forward   one statistics pass (per-tile Welford/Chan partials, merged in
          float64: no E[x^2] - E[x]^2 cancellation), then one pass that
          normalises, applies the affine and the activation: read y twice,
          write out once.  Only y (and two C-vectors) is saved.
backward  one reduction pass (sums of gz and gz * (y - mean), gz being the
          gradient before the activation), then one pass that writes dy:
          BatchNorm's and LeakyReLU's backward fused.

Derivatives: first order runs the selected backend's kernels
(``ganfast::batch_norm_act_backward``).  When the backward itself must be
differentiable (``create_graph=True``: WGAN-GP, R1), the backward is instead
recomputed through the reference (``F.batch_norm`` + ``F.leaky_relu``) with
autograd, which supports every order; that is slower, and only taken on
penalty steps.

Running statistics are not touched here: the callers update them from the
returned batch mean and biased variance, exactly as ``nn.BatchNorm2d`` does.
"""

from __future__ import annotations

import types
from typing import Any, Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import _backend, _layout
from .._checks import check_device, check_float, check_ndim, check_shape, check_tensor
from .._dtypes import HALF_DTYPES, compute_dtype
from ..ref import batch_norm_act as ref
from ._autograd import differentiable_backward, reference_grads

Tensor = torch.Tensor

OP = "batch_norm_act"


def _torch_impl():
    def scale_shift_act(y, scale, shift, negative_slope, center=None):
        return _layout.like_layout_of(ref.scale_shift_act(y, scale, shift, negative_slope, center), y)

    def bn_act_backward_apply(grad, y, *args):
        return _layout.like_layout_of(ref.bn_act_backward_apply(grad, y, *args), y)

    return types.SimpleNamespace(
        channel_stats=ref.channel_stats,
        scale_shift_act=scale_shift_act,
        scale_shift_act_backward_reduce=ref.scale_shift_act_backward_reduce,
        bn_act_backward_apply=bn_act_backward_apply,
    )


def _triton_impl():
    from ganfast.kernels import batch_norm_act

    return batch_norm_act


def activation_(out: Tensor, negative_slope: float) -> Tensor:
    """LeakyReLU (ReLU for slope 0) applied in place to ``out``, as torch.nn's ``inplace=True`` layers do.

    Negative slopes run out of place (autograd's in-place leaky ReLU
    backward needs the slope to be non-negative).
    """
    if negative_slope == 0.0:
        return F.relu_(out)
    if negative_slope > 0.0:
        return F.leaky_relu_(out, negative_slope)
    return F.leaky_relu(out, negative_slope)


def aten_forward(y: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], running_mean: Optional[Tensor],
                 running_var: Optional[Tensor], training: bool, momentum: float, eps: float,
                 negative_slope: float) -> Tensor:
    """The ``aten`` backend: ``F.batch_norm`` then the activation in place, exactly as
    ``nn.Sequential(nn.BatchNorm2d, nn.LeakyReLU(inplace=True))`` runs, under plain autograd.

    ``F.batch_norm`` updates the running statistics (unbiased variance) and
    raises for one value per channel in training, as the module does.
    float32 and float64 only: ATen's CPU BatchNorm in bfloat16/float16 is
    outside the half-precision tolerance of the float64 reference (one
    element in 384 off by six bf16 ulps in tests/test_conv_bn_act.py's
    half-precision case), so its callers run half-precision tensors through
    the ``torch`` backend instead.
    """
    out = F.batch_norm(y, running_mean, running_var, weight, bias, training, momentum, eps)
    return activation_(out, negative_slope)


def register_backends(op: str) -> None:
    """Register this op's implementations under ``op`` (the fused conv blocks share them)."""
    _backend.register(op, "torch", _torch_impl)
    _backend.register(op, "aten", lambda: types.SimpleNamespace(forward=aten_forward))
    _backend.register(op, "triton", _triton_impl)


register_backends(OP)


def norm_scale_shift(weight, bias, var, eps) -> Tuple[Tensor, Tensor, Tensor]:
    """(invstd, scale, shift) with out = act((y - mean) * scale + shift)."""
    invstd = torch.rsqrt(var + eps)
    scale = invstd * weight.to(invstd.dtype) if weight is not None else invstd
    shift = bias.to(invstd.dtype) if bias is not None else torch.zeros_like(invstd)
    return invstd, scale, shift


@torch.library.custom_op("ganfast::batch_norm_act", mutates_args=())
def _batch_norm_act_op(
    y: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float, negative_slope: float, backend: str
) -> Tuple[Tensor, Tensor, Tensor]:
    """(out, batch mean, biased batch variance); statistics in float32 (float64 for float64 y)."""
    _, impl = _backend.select(OP, backend, y.device)
    mean, var = impl.channel_stats(y)
    _, scale, shift = norm_scale_shift(weight, bias, var, eps)
    return impl.scale_shift_act(y, scale, shift, negative_slope, mean), mean, var


def check_args(y: Any, weight: Any, bias: Any, eps: Any, negative_slope: Any) -> Tuple[float, float]:
    """Check the arguments of the registered op: ``(eps, negative_slope)`` as floats.

    Called by :func:`batch_norm_act_train` and by both fake implementations.

    Raises:
        TypeError: ``y``, ``weight`` or ``bias`` is not a float tensor (the
            latter two may be None), or a number is not a number.
        ValueError: ``y`` is not (N, C, ...), ``weight`` / ``bias`` are not
            (C,) on y's device, ``eps`` is not positive.
    """
    check_tensor(y, "y")
    check_ndim(y, "y", range(2, 9), "be (N, C, *) with channels at dim 1")
    for t, name in ((weight, "weight"), (bias, "bias")):
        if check_tensor(t, name, optional=True) is not None:
            check_shape(t, name, (y.shape[1],), " (one value per channel of y)")
            check_device(t, name, y.device, "y")
    return check_float(eps, "eps", positive=True), check_float(negative_slope, "negative_slope")


@_batch_norm_act_op.register_fake
def _(y, weight, bias, eps, negative_slope, backend):
    check_args(y, weight, bias, eps, negative_slope)
    stats = y.new_empty((y.shape[1],), dtype=compute_dtype(y.dtype))
    return torch.empty_like(y), stats, torch.empty_like(stats)


@torch.library.custom_op("ganfast::batch_norm_act_backward", mutates_args=())
def _batch_norm_act_backward_op(
    grad: Tensor,
    y: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    mean: Tensor,
    var: Tensor,
    eps: float,
    negative_slope: float,
    backend: str,
) -> Tuple[Tensor, Tensor, Tensor]:
    """(dy, d weight, d bias); the last two in the statistics dtype, as if affine."""
    _, impl = _backend.select(OP, backend, y.device)
    grad = _layout.like(grad, _layout.dense(y)) if y.numel() else grad
    invstd, scale, shift = norm_scale_shift(weight, bias, var, eps)
    sum_gz, sum_gz_xc = impl.scale_shift_act_backward_reduce(grad, y, scale, shift, mean, negative_slope)
    count = y.numel() // y.shape[1]
    dy = impl.bn_act_backward_apply(grad, y, scale, shift, mean, invstd, scale, sum_gz, sum_gz_xc, count,
                                    negative_slope)
    return dy, sum_gz_xc * invstd, sum_gz


@_batch_norm_act_backward_op.register_fake
def _(grad, y, weight, bias, mean, var, eps, negative_slope, backend):
    check_args(y, weight, bias, eps, negative_slope)
    check_tensor(grad, "grad")
    check_shape(grad, "grad", tuple(y.shape), " (y's)")
    for t, name in ((mean, "mean"), (var, "var")):
        check_tensor(t, name, dtypes=(compute_dtype(y.dtype),))
        check_shape(t, name, (y.shape[1],), " (one value per channel of y)")
    return torch.empty_like(y), torch.empty_like(mean), torch.empty_like(mean)


def norm_act_autograd(reference_fn: Callable[..., Tensor], backward_op: Callable[..., Tuple[Tensor, Tensor, Tensor]]):
    """``(backward, setup_context)`` for a registered norm + activation op ``(y, weight, bias, eps, slope,
    backend) -> (out, mean, var)``: first order through ``backward_op`` (same arguments as
    ``_batch_norm_act_backward_op``), a differentiable backward by recomputing ``reference_fn(y, None, None,
    weight, bias, True, 0.0, eps, slope)`` (batch_norm_act's and instance_norm_act's references share that
    signature)."""

    def setup(ctx, inputs, output):
        y, weight, bias, eps, negative_slope, backend = inputs
        _, mean, var = output
        ctx.mark_non_differentiable(mean, var)
        ctx.save_for_backward(y, weight, bias, mean, var)
        ctx.params = (eps, negative_slope, backend)

    def backward(ctx, grad, _grad_mean, _grad_var):
        y, weight, bias, mean, var = ctx.saved_tensors
        eps, negative_slope, backend = ctx.params
        needs = ctx.needs_input_grad[:3]
        if differentiable_backward():
            # Recomputed through the reference (documented in the op modules' docstrings).
            def reference(y, weight, bias):
                return reference_fn(y, None, None, weight, bias, True, 0.0, eps, negative_slope)

            return (*reference_grads(reference, (y, weight, bias), needs, grad), None, None, None)
        dy, dweight, dbias = backward_op(grad, y, weight, bias, mean, var, eps, negative_slope, backend)
        return (
            dy if needs[0] else None,
            dweight.to(weight.dtype) if needs[1] else None,
            dbias.to(bias.dtype) if needs[2] else None,
            None,
            None,
            None,
        )

    return backward, setup


_backward, _setup = norm_act_autograd(ref.batch_norm_act, _batch_norm_act_backward_op)
_batch_norm_act_op.register_autograd(_backward, setup_context=_setup)


def batch_norm_act_train(
    y: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    running_mean: Optional[Tensor],
    running_var: Optional[Tensor],
    momentum: float,
    eps: float,
    negative_slope: float,
    backend: str,
) -> Tensor:
    """``leaky_relu(F.batch_norm(y, training=True))`` with the running statistics updated in place.

    The training-mode stage of the fused conv blocks (Ioffe & Szegedy 2015,
    Algorithm 1, then a leaky ReLU): the running statistics are assumed
    checked by the caller (the public conv ops); the op's own arguments are
    checked by :func:`check_args`.
    ``momentum`` is the exponential-average factor as ``F.batch_norm`` takes
    it (``nn.BatchNorm2d`` passes ``1 / num_batches_tracked`` when its own
    momentum is None).
    """
    eps, negative_slope = check_args(y, weight, bias, eps, negative_slope)
    count = y.numel() // y.shape[1]
    if count <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(y.shape)}")
    if _backend.resolve(OP, backend, y.device) == "aten":
        if y.dtype not in HALF_DTYPES:
            return aten_forward(y, weight, bias, running_mean, running_var, True, momentum, eps, negative_slope)
        backend = "torch"  # see aten_forward: half precision runs the reference
    out, mean, var = _batch_norm_act_op(y, weight, bias, eps, negative_slope, backend)
    if running_mean is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
            unbiased = var * (count / (count - 1))
            running_var.mul_(1 - momentum).add_(unbiased.to(running_var.dtype), alpha=momentum)
    return out


#: Registered ops of this module, for opcheck.
CUSTOM_OPS = (_batch_norm_act_op, _batch_norm_act_backward_op)
