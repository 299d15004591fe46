"""``conv_transpose2d``: the stride-s transposed convolution of generator upsampling layers.

A transposed convolution of stride s is computed naively by inserting s - 1
zeros between input pixels and running a dense convolution: for s = 2 three
quarters of the multiply-adds then hit inserted zeros.  The Triton backend
(``ganfast.kernels.conv2d``) instead runs s*s sub-pixel convolutions over the
un-dilated input, one per output phase, each touching only the kernel taps
that land on that phase: no zero insertion and no col2im scatter.

Backends: ``torch`` (``F.conv_transpose2d``, cuDNN on a GPU) and ``triton``.
The backward is ``aten.convolution_backward`` (cuDNN on a GPU), which autograd
differentiates again: derivatives of every order.
"""

from __future__ import annotations

import types
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .. import _backend
from .conv_bn_act import SUPPORTED_DTYPES, _check_vector, _pair

Tensor = torch.Tensor
IntPair = Union[int, Sequence[int]]

OP = "conv_transpose2d"
MAX_KERNEL = 7
MAX_STRIDE = 4


def _torch_forward(x, weight, bias, stride, padding, output_padding):
    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)


def _triton_impl():
    from ganfast.kernels import conv2d

    return types.SimpleNamespace(
        forward=lambda x, w, b, s, p, op: conv2d.conv_transpose2d(x, w, b, s, p, op),
    )


_backend.register_op(OP, auto_order=("torch", "triton"))  # cuDNN until a GPU measurement says otherwise
_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward))
_backend.register(OP, "triton", _triton_impl)


def output_size(x_shape, weight_shape, stride, padding, output_padding) -> Tuple[int, int]:
    return tuple(  # type: ignore[return-value]
        (size - 1) * s - 2 * p + k + op
        for size, k, s, p, op in zip(x_shape[2:], weight_shape[2:], stride, padding, output_padding)
    )


@torch.library.custom_op("ganfast::conv_transpose2d", mutates_args=())
def _conv_transpose2d_op(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor],
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    backend: str,
) -> Tensor:
    _, impl = _backend.select(OP, backend, x.device)
    y = impl.forward(x, weight, bias, tuple(stride), tuple(padding), tuple(output_padding))
    # The layout the fake promises: channels_last in, channels_last out.
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    return y if y.is_contiguous(memory_format=fmt) else y.contiguous(memory_format=fmt)


def _is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@_conv_transpose2d_op.register_fake
def _(x, weight, bias, stride, padding, output_padding, backend):
    h, w = output_size(x.shape, weight.shape, stride, padding, output_padding)
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    return x.new_empty((x.shape[0], weight.shape[1], h, w)).contiguous(memory_format=fmt)


def _setup(ctx, inputs, output):
    x, weight, bias, stride, padding, output_padding, backend = inputs
    ctx.save_for_backward(x, weight)
    ctx.has_bias = bias is not None
    ctx.geometry = (stride, padding, output_padding)


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    stride, padding, output_padding = ctx.geometry
    mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
    dx, dw, db = torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[1]] if ctx.has_bias else None, stride, padding, [1, 1], True,
        output_padding, 1, mask,
    )
    return dx, dw, db, None, None, None, None


_conv_transpose2d_op.register_autograd(_backward, setup_context=_setup)


def check_conv_transpose_args(x, weight, bias, stride, padding, output_padding):
    """Argument checks shared with the fused block; returns the pairs."""
    from .conv_bn_act import check_conv_args

    stride, padding = check_conv_args(x, weight, stride, padding, MAX_KERNEL)
    output_padding = _pair(output_padding, "output_padding", 0)
    if max(stride) > MAX_STRIDE:
        raise ValueError(f"stride must be 1 to {MAX_STRIDE}; got {stride}")
    if any(op >= s for op, s in zip(output_padding, stride)):
        raise ValueError(f"output_padding must be smaller than stride ({stride}); got {output_padding}")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (C_in={x.shape[1]}, C_out, kh, kw) for x of shape {tuple(x.shape)}; "
            f"got {tuple(weight.shape)}"
        )
    _check_vector(bias, "bias", weight.shape[1], x.device)
    if min(output_size(x.shape, weight.shape, stride, padding, output_padding)) < 1:
        raise ValueError(
            f"padding {padding} leaves no output for input {tuple(x.shape[2:])} and kernel {tuple(weight.shape[2:])}"
        )
    return stride, padding, output_padding


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    backend: Optional[str] = None,
) -> Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)`` (groups 1, dilation 1).

    ``weight`` has shape (C_in, C_out, kh, kw), kernel sizes 1 to 7; stride 1
    to 4; ``output_padding < stride``.  float16/bfloat16/float32/float64, NCHW
    or channels_last (the output follows the input's layout).
    """
    stride, padding, output_padding = check_conv_transpose_args(x, weight, bias, stride, padding, output_padding)
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64; got {x.dtype}")
    backend = _backend.current_backend() if backend is None else _backend._check_name(backend)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        # As aten's convolutions do under autocast: every floating argument in the autocast dtype.
        dtype = torch.get_autocast_dtype(device_type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(device_type, enabled=False):
            return _conv_transpose2d_op(x, weight, bias, list(stride), list(padding), list(output_padding), backend)
    if weight.dtype != x.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"weight and bias must have x's dtype ({x.dtype}) outside autocast; got {weight.dtype}"
                        f"{'' if bias is None else f' and {bias.dtype}'}")
    return _conv_transpose2d_op(x, weight, bias, list(stride), list(padding), list(output_padding), backend)


CUSTOM_OPS = (_conv_transpose2d_op,)
