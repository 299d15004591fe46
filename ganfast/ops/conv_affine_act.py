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
from typing import Any, List, Optional

import torch
import torch.nn.functional as F

from .. import _backend, _layout
from .._checks import check_device, check_ndim, check_shape, check_tensor
from .._dtypes import compute_dtype

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
    return out.contiguous(memory_format=_layout.memory_format_of(x))


def _triton_impl():
    from ganfast.kernels import conv2d

    def forward(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope):
        kw = dict(scale=scale, shift=shift, negative_slope=negative_slope)
        if transposed:
            return conv2d.conv_transpose2d(x, weight, center, stride, padding, output_padding, **kw)
        return conv2d.conv2d(x, weight, center, stride, padding, **kw)

    return types.SimpleNamespace(forward=forward)


_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward))
# aten: the same composition with no registered op around it.
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=_torch_forward))
_backend.register(OP, "triton", _triton_impl)


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
    return y.contiguous(memory_format=_layout.memory_format_of(x))


def check_args(x: Any, weight: Any, center: Any, scale: Any, shift: Any, transposed: bool) -> int:
    """Check the registered op's tensors (the fake calls it; the blocks check their users' arguments).

    Returns C_out.

    Raises:
        TypeError: not float tensors, ``weight`` not in x's dtype, or the
            per-channel vectors not float32 or float64.
        ValueError: not 4-D, channels that do not match, vectors that are
            not (C_out,) or on another device.
    """
    check_tensor(x, "x", nonempty=True)
    check_ndim(x, "x", 4, "be 4-D (N, C, H, W)")
    check_tensor(weight, "weight", dtypes=(x.dtype,), dtype_requirement=f"have x's dtype ({x.dtype})")
    check_ndim(weight, "weight", 4, "be 4-D")
    check_device(weight, "weight", x.device)
    c_in, c_out = (weight.shape[0], weight.shape[1]) if transposed else (weight.shape[1], weight.shape[0])
    check_shape(x, "x", (x.shape[0], c_in, x.shape[2], x.shape[3]), " (weight's input channels)")
    for t, name in ((center, "center"), (scale, "scale"), (shift, "shift")):
        check_tensor(t, name, dtypes=(torch.float32, torch.float64))
        check_shape(t, name, (c_out,), " (one value per output channel)")
        check_device(t, name, x.device)
    return c_out


@_conv_affine_act_op.register_fake
def _(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope, backend):
    c_out = check_args(x, weight, center, scale, shift, transposed)
    h, w = _out_hw(x, weight, stride, padding, output_padding, transposed)
    return x.new_empty((x.shape[0], c_out, h, w)).contiguous(memory_format=_layout.memory_format_of(x))


def eval_affine(
    bias: Optional[Tensor], bn_weight: Optional[Tensor], bn_bias: Optional[Tensor], running_mean: Tensor,
    running_var: Tensor, eps: float, dtype: torch.dtype,
):
    """(center, scale, shift) of eval-mode BatchNorm after a convolution with ``bias``, in float32 or better."""
    acc = torch.promote_types(compute_dtype(dtype), running_var.dtype)
    scale = torch.rsqrt(running_var.to(acc) + eps)
    if bn_weight is not None:
        scale = scale * bn_weight.to(acc)
    center = -running_mean.to(acc)
    if bias is not None:
        center = center + bias.to(acc)
    shift = bn_bias.to(acc) if bn_bias is not None else torch.zeros_like(scale)
    return center, scale, shift


def needs_grad(*tensors: Optional[Tensor]) -> bool:
    """Whether autograd will want a gradient of any of ``tensors`` (this op has none to give)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def conv_affine_act(x, weight, center, scale, shift, stride, padding, output_padding, transposed, negative_slope,
                    backend) -> Tensor:
    """The registered op on arguments the calling block checked (and cast, under autocast:
    :func:`ganfast.ops._conv_block.conv_autocast`)."""
    if _backend.resolve(OP, backend, x.device) == "aten":
        return _torch_forward(x, weight, center, scale, shift, tuple(stride), tuple(padding), tuple(output_padding),
                            transposed, float(negative_slope))
    return _conv_affine_act_op(x, weight, center, scale, shift, list(stride), list(padding), list(output_padding),
                               transposed, float(negative_slope), backend)


CUSTOM_OPS = (_conv_affine_act_op,)
