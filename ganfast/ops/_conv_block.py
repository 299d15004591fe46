"""What the two fused conv -> BatchNorm -> activation blocks share.

:func:`ganfast.ops.conv_bn_act` (Conv2d) and
:func:`ganfast.ops.conv_transpose_bn_act` (ConvTranspose2d) differ only in
their convolution; their argument checks, their BatchNorm handling and their
paths are here, once:

aten       (the CPU's ``auto``: ``_backend.OPS``) the convolution, ``F.batch_norm`` and
           the activation in place, as the unfused torch.nn layers run,
           under plain autograd;
training   the convolution, then :func:`~ganfast.ops.batch_norm_act.batch_norm_act_train`
           (batch statistics; running statistics updated in place);
eval       with nothing to differentiate, :func:`~ganfast.ops.conv_affine_act.conv_affine_act`
           (BatchNorm's running statistics as a per-channel affine in the
           convolution's epilogue); with gradients, :func:`eval_differentiable`
           (BatchNorm folded into the weights, then ``bias_act``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch

from .. import _backend
from .._checks import (
    TypeOrValueError, check_device, check_float, check_ndim, check_pair, check_shape, check_tensor,
)
from .._dtypes import FLOAT_DTYPES, HALF_DTYPES, compute_dtype
from ..ref import batch_norm_act as ref
from .batch_norm_act import aten_forward, batch_norm_act_train
from .bias_act import bias_act
from .conv_affine_act import conv_affine_act, eval_affine, needs_grad

Tensor = torch.Tensor
IntPair = Union[int, Sequence[int]]

__all__ = [
    "IntPair", "MAX_KERNEL", "SUPPORTED_DTYPES", "check_batch_norm_args", "check_conv_args", "check_slope",
    "check_vector", "conv_autocast", "eval_differentiable", "fold_batch_norm", "run_block",
]

SUPPORTED_DTYPES = FLOAT_DTYPES
#: Largest kernel the Triton implicit GEMMs are compiled for (GAN layers use 3 to 5).
MAX_KERNEL = 7


def check_vector(t: Optional[Tensor], name: str, n: int, device: torch.device) -> None:
    """``t`` is None or a floating-point ``(n,)`` tensor on ``device``: one value per output channel.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: wrong shape or device.
    """
    if check_tensor(t, name, dtypes=None, optional=True) is None:
        return
    check_shape(t, name, (n,), " (one value per output channel)")
    check_device(t, name, device)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {t.dtype}")


def check_conv_args(x: Any, weight: Any, stride: Any, padding: Any, max_kernel: int = MAX_KERNEL
                    ) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """Checks both blocks (and ``conv_transpose2d``) share; returns ``(stride, padding)`` as pairs.

    Raises:
        TypeError: ``x`` or ``weight`` is not a float tensor, or a stride or
            padding is not an int or a pair of ints.
        ValueError: ``x`` is not 4-D or is empty, ``weight`` is not 4-D or
            on another device, the kernel is larger than ``max_kernel``, a
            stride is below 1 or a padding below 0.
    """
    check_tensor(x, "x")
    check_ndim(x, "x", 4, "be 4-D (N, C, H, W)")
    check_tensor(x, "x", nonempty=True)
    check_tensor(weight, "weight", dtypes=None)
    check_ndim(weight, "weight", 4, "be 4-D")
    check_device(weight, "weight", x.device)
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor; got {weight.dtype}")
    kh, kw = weight.shape[2:]
    if not (1 <= kh <= max_kernel and 1 <= kw <= max_kernel):
        raise ValueError(f"weight's kernel size must be 1 to {max_kernel} in each dimension; got {kh}x{kw}")
    return check_pair(stride, "stride", 1), check_pair(padding, "padding", 0)


def check_batch_norm_args(out_channels: int, device: torch.device, bn_weight: Any, bn_bias: Any,
                          running_mean: Any, running_var: Any, training: bool, momentum: Any, eps: Any
                          ) -> Tuple[float, float]:
    """BatchNorm's arguments as ``F.batch_norm`` takes them; returns ``(momentum, eps)`` as floats.

    Raises:
        TypeError: a vector is not a floating-point tensor (``eps`` and
            ``momentum`` that are not numbers raise :class:`TypeOrValueError`,
            a ``ValueError`` as in earlier releases).
        ValueError: a vector has the wrong shape or device, only one of the
            running statistics is given, eval mode lacks them, ``eps`` is not
            positive or ``momentum`` is outside [0, 1].
    """
    for t, name in ((bn_weight, "bn_weight"), (bn_bias, "bn_bias"), (running_mean, "running_mean"),
                    (running_var, "running_var")):
        check_vector(t, name, out_channels, device)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together or both be None")
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False (eval uses them)")
    eps = check_float(eps, "eps", positive=True, what="a positive number", type_error=TypeOrValueError)
    momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0,
                           what="a number in [0, 1] (the running-average factor)", type_error=TypeOrValueError)
    return momentum, eps


def check_slope(negative_slope: Any) -> float:
    """The activation's negative slope as a float (0 is ReLU).

    Raises:
        TypeError: not a number.
    """
    return check_float(negative_slope, "negative_slope", finite=False)


def fold_batch_norm(
    weight: Tensor,
    bias: Optional[Tensor],
    bn_weight: Optional[Tensor],
    bn_bias: Optional[Tensor],
    running_mean: Tensor,
    running_var: Tensor,
    eps: float,
    out_dim: int = 0,
) -> Tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm folded into a convolution: ``(weight', bias')``.

    ``bn(conv(x, w, b)) = conv(x, w * s, None) + ((b - mean) * s + beta)``
    with ``s = gamma / sqrt(var + eps)`` along the weight's output-channel
    dimension ``out_dim`` (0 for Conv2d, 1 for ConvTranspose2d).  Plain
    differentiable torch; the scale is computed in float32 or better.
    """
    acc = torch.promote_types(compute_dtype(weight.dtype), running_var.dtype)
    s = torch.rsqrt(running_var.to(acc) + eps)
    if bn_weight is not None:
        s = s * bn_weight.to(acc)
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    w = (weight.to(acc) * s.reshape(shape)).to(weight.dtype)
    b = -running_mean.to(acc) * s
    if bias is not None:
        b = b + bias.to(acc) * s
    if bn_bias is not None:
        b = b + bn_bias.to(acc)
    return w, b


def eval_differentiable(conv: Callable[[Tensor, Optional[Tensor]], Tensor], weight, bias, bn_weight, bn_bias,
                        running_mean, running_var, eps: float, negative_slope: float, backend: str,
                        out_dim: int = 0) -> Tensor:
    """Eval mode when gradients are needed; ``conv(w, b)`` runs the block's convolution.

    float32/float64 weights: BatchNorm folded into the convolution and
    :func:`bias_act` for the bias + activation (differentiable to any order).
    Half-precision weights: folding would round ``w * gamma / std`` to half
    precision a second time where eager rounds ``w`` once, so eager's own
    arithmetic runs instead (unfused).  Under autocast the weights are
    float32, folded in float32 and rounded once by autocast, like eager.
    """
    if weight.dtype in HALF_DTYPES:
        return ref.batch_norm_act(conv(weight, bias), running_mean, running_var, bn_weight, bn_bias, False, 0.0, eps,
                                  negative_slope)
    w, b = fold_batch_norm(weight, bias, bn_weight, bn_bias, running_mean, running_var, eps, out_dim)
    return bias_act(conv(w, None), b, act="leaky_relu", negative_slope=negative_slope, backend=backend)


def conv_autocast(call: Callable[[Tensor, Tensor, Optional[Tensor]], Tensor], x: Tensor, weight: Tensor,
                  bias: Optional[Tensor] = None, names: str = "weight") -> Tensor:
    """``call(x, weight, bias)`` as aten's convolutions run under autocast.

    Under autocast every floating argument is cast to the autocast dtype and
    the op runs with autocast off (a registered op is not autocast's to
    rewrite); outside it, the arguments must share x's dtype.

    Raises:
        TypeError: outside autocast, ``weight`` (or ``bias``) differs from x's
            dtype; ``names`` is how the message names them.
    """
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        with torch.autocast(device_type, enabled=False):
            return call(x.to(dtype), weight.to(dtype), bias.to(dtype) if bias is not None else None)
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"{names} must have x's dtype ({x.dtype}) outside autocast; got {weight.dtype}"
                        f"{'' if bias is None else f' and {bias.dtype}'}")
    return call(x, weight, bias)


def run_block(x: Tensor, weight: Tensor, bias: Optional[Tensor], bn_weight: Optional[Tensor],
              bn_bias: Optional[Tensor], running_mean: Optional[Tensor], running_var: Optional[Tensor],
              training: bool, momentum: float, eps: float, negative_slope: float, backend: str,
              conv: Callable[[Tensor, Optional[Tensor]], Tensor], stride: Tuple[int, int],
              padding: Tuple[int, int], output_padding: Tuple[int, int], transposed: bool, op: str) -> Tensor:
    """The block ``op`` on checked arguments: which path runs (see the module docstring)."""
    if _backend.resolve(op, backend, x.device) == "aten":
        y = conv(weight, bias)
        if y.dtype not in HALF_DTYPES:
            return aten_forward(y, bn_weight, bn_bias, running_mean, running_var, training, momentum, eps,
                                negative_slope)
        # Half precision (autocast included) runs the reference's BatchNorm: see aten_forward.
        if training:
            return batch_norm_act_train(y, bn_weight, bn_bias, running_mean, running_var, momentum, eps,
                                        negative_slope, "torch")
        return ref.batch_norm_act(y, running_mean, running_var, bn_weight, bn_bias, False, 0.0, eps, negative_slope)
    if training:
        return batch_norm_act_train(conv(weight, bias), bn_weight, bn_bias, running_mean, running_var, momentum,
                                    eps, negative_slope, backend)
    if not needs_grad(x, weight, bias, bn_weight, bn_bias):
        center, scale, shift = eval_affine(bias, bn_weight, bn_bias, running_mean, running_var, eps, x.dtype)
        return conv_autocast(lambda x, w, _: conv_affine_act(x, w, center, scale, shift, stride, padding,
                                                             output_padding, transposed, negative_slope, backend),
                             x, weight)
    return eval_differentiable(conv, weight, bias, bn_weight, bn_bias, running_mean, running_var, eps,
                               negative_slope, backend, out_dim=1 if transposed else 0)
