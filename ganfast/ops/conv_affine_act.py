"""``conv_affine_act``: a (transposed) convolution with a per-channel affine and LeakyReLU epilogue.

The inference path of the fused conv blocks in eval mode: BatchNorm with
running statistics is an affine map per output channel, so

    out = leaky_relu((conv(x, w) + center) * scale + shift)

with ``center = conv_bias - running_mean``, ``scale = gamma / sqrt(var + eps)``
and ``shift = beta``: centred before scaling, as eager BatchNorm computes it,
so no cancellation when |running_mean| is large, and the weights are not
re-rounded (folding ``scale`` into half-precision weights would round them a
second time).  On the ``triton`` backend this is ONE kernel
(``ganfast.kernels.conv2d``, implicit GEMM with the epilogue in registers);
on ``torch`` it is the convolution (cuDNN on a GPU) and one element-wise pass.

No autograd: the blocks call this only when nothing needs a gradient
(inference); with gradients they take the differentiable path.
"""

from __future__ import annotations

import types
from typing import List, Optional

import torch
import torch.nn.functional as F

from .. import _backend

Tensor = torch.Tensor

OP = "conv_affine_act"


def _torch_forward(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope):
    if transposed:
        y = F.conv_transpose2d(x, weight, None, stride, padding, output_padding)
    else:
        y = F.conv2d(x, weight, None, stride, padding)
    shape = (1, -1, 1, 1)
    pre = (y.to(scale.dtype) + center.reshape(shape)) * scale.reshape(shape) + shift.reshape(shape)
    out = F.leaky_relu(pre, negative_slope).to(x.dtype)
    return out.contiguous(memory_format=_memory_format(x))


def _triton_impl():
    from ganfast.kernels import conv2d

    def forward(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope):
        kw = dict(scale=scale, shift=shift, negative_slope=negative_slope)
        if transposed:
            return conv2d.conv_transpose2d(x, weight, center, stride, padding, output_padding, **kw)
        return conv2d.conv2d(x, weight, center, stride, padding, **kw)

    return types.SimpleNamespace(forward=forward)


# cuDNN + one element-wise pass until a GPU measurement shows the implicit GEMM ahead.
_backend.register_op(OP, auto_order=("torch", "triton"))
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward))
_backend.register(OP, "triton", _triton_impl)


def _memory_format(x: Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _out_hw(x, weight, stride, padding, output_padding, transposed):
    if transposed:
        return [(n - 1) * s - 2 * p + k + op for n, k, s, p, op in
                zip(x.shape[2:], weight.shape[2:], stride, padding, output_padding)]
    return [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(x.shape[2:], weight.shape[2:], stride, padding)]


@torch.library.custom_op("ganfast::conv_affine_act", mutates_args=())
def _conv_affine_act_op(
    x: Tensor,
    weight: Tensor,
    center: Tensor,
    scale: Tensor,
    shift: Tensor,
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    transposed: bool,
    negative_slope: float,
    backend: str,
) -> Tensor:
    _, impl = _backend.select(OP, backend, x.device)
    y = impl.forward(x, weight, center, scale, shift, tuple(stride), tuple(padding), tuple(output_padding),
                     transposed, negative_slope)
    return y.contiguous(memory_format=_memory_format(x))


@_conv_affine_act_op.register_fake
def _(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope, backend):
    c_out = weight.shape[1] if transposed else weight.shape[0]
    h, w = _out_hw(x, weight, stride, padding, output_padding, transposed)
    return x.new_empty((x.shape[0], c_out, h, w)).contiguous(memory_format=_memory_format(x))


def eval_affine(
    bias: Optional[Tensor], bn_weight: Optional[Tensor], bn_bias: Optional[Tensor], running_mean: Tensor,
    running_var: Tensor, eps: float, dtype: torch.dtype,
):
    """(center, scale, shift) of eval-mode BatchNorm after a convolution with ``bias``, in float32 or better."""
    acc = torch.promote_types(torch.float64 if dtype == torch.float64 else torch.float32, running_var.dtype)
    scale = torch.rsqrt(running_var.to(acc) + eps)
    if bn_weight is not None:
        scale = scale * bn_weight.to(acc)
    center = -running_mean.to(acc)
    if bias is not None:
        center = center + bias.to(acc)
    shift = bn_bias.to(acc) if bn_bias is not None else torch.zeros_like(scale)
    return center, scale, shift


def needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def conv_affine_act(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope,
                    backend) -> Tensor:
    """Arguments checked by the calling block; autocast applied as aten's convolutions apply it."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
        x, weight = x.to(dtype), weight.to(dtype)
        with torch.autocast(device_type, enabled=False):
            return _conv_affine_act_op(x, weight, center, scale, shift, list(stride), list(padding),
                                       list(output_padding), transposed, float(negative_slope), backend)
    if weight.dtype != x.dtype:
        raise TypeError(f"weight must have x's dtype ({x.dtype}) outside autocast; got {weight.dtype}")
    return _conv_affine_act_op(x, weight, center, scale, shift, list(stride), list(padding), list(output_padding),
                               transposed, float(negative_slope), backend)


CUSTOM_OPS = (_conv_affine_act_op,)
