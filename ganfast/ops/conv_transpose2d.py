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
from typing import Any, List, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import _backend, _layout
from .._checks import check_pair, check_tensor, require
from ._conv_block import MAX_KERNEL, IntPair, check_conv_args, check_vector, conv_autocast

Tensor = torch.Tensor

OP = "conv_transpose2d"
MAX_STRIDE = 4


def _torch_forward(x, weight, bias, stride, padding, output_padding):
    return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)


def _triton_impl():
    from ganfast.kernels import conv2d

    return types.SimpleNamespace(
        forward=lambda x, w, b, s, p, op: conv2d.conv_transpose2d(x, w, b, s, p, op),
    )


_backend.register(OP, "torch", lambda: types.SimpleNamespace(forward=_torch_forward))
# aten: F.conv_transpose2d itself under autograd, no registered op around it (cpu_order in _backend.OPS).
_backend.register(OP, "aten", lambda: types.SimpleNamespace(forward=_torch_forward))
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
    return y.contiguous(memory_format=_layout.memory_format_of(x))


@_conv_transpose2d_op.register_fake
def _(x, weight, bias, stride, padding, output_padding, backend):
    check_conv_transpose_args(x, weight, bias, stride, padding, output_padding)
    check_tensor(weight, "weight", dtypes=(x.dtype,), dtype_requirement=f"have x's dtype ({x.dtype})")
    h, w = output_size(x.shape, weight.shape, stride, padding, output_padding)
    return x.new_empty((x.shape[0], weight.shape[1], h, w)).contiguous(memory_format=_layout.memory_format_of(x))


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


def check_conv_transpose_args(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, output_padding: Any
                              ) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]:
    """Argument checks shared with the fused block and the fake; returns the pairs.

    Raises as :func:`conv_transpose2d` documents.
    """
    stride, padding = check_conv_args(x, weight, stride, padding, MAX_KERNEL)
    output_padding = check_pair(output_padding, "output_padding", 0)
    if max(stride) > MAX_STRIDE:
        raise ValueError(f"stride must be 1 to {MAX_STRIDE}; got {stride}")
    if any(op >= s for op, s in zip(output_padding, stride)):
        raise ValueError(f"output_padding must be smaller than stride ({stride}); got {output_padding}")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (C_in={x.shape[1]}, C_out, kh, kw) for x of shape {tuple(x.shape)}; "
            f"got {tuple(weight.shape)}"
        )
    check_vector(bias, "bias", weight.shape[1], x.device)
    for size in output_size(x.shape, weight.shape, stride, padding, output_padding):
        require(size >= 1, ValueError, lambda: (
            f"padding {padding} leaves no output for input {tuple(x.shape[2:])} and kernel "
            f"{tuple(weight.shape[2:])}"))
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

    The upsampling layer of DCGAN-style generators (Radford et al. 2016;
    Dumoulin & Visin 2016, "A guide to convolution arithmetic", section 4,
    for the geometry): output size ``(n - 1) * stride - 2 * padding + k +
    output_padding`` per spatial dimension.

    Args:
        x: ``(N, C_in, H, W)`` float16, bfloat16, float32 or float64, NCHW
            or channels_last (the output follows the input's layout).
        weight: ``(C_in, C_out, kh, kw)``, kernel sizes 1 to 7, on x's
            device, in x's dtype outside autocast.
        bias: optional ``(C_out,)``.
        stride: 1 to 4 (an int or a pair).
        padding: >= 0 (an int or a pair).
        output_padding: ``0 <= output_padding < stride`` (an int or a pair).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None
            for the current choice (:func:`ganfast.use_backend`).

    Returns:
        ``(N, C_out, H_out, W_out)`` in x's dtype (the autocast dtype under
        autocast), in x's memory format.

    Raises:
        TypeError: a tensor argument is not a (floating-point) tensor, a
            stride or padding is not an int or a pair, or ``weight``/``bias``
            differ from x's dtype outside autocast.
        ValueError: shapes that do not match, a kernel over 7, a stride
            outside 1 to 4, ``output_padding >= stride``, a padding that
            leaves no output, an unknown backend name.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order (aten's ``convolution_backward``, itself
    differentiable).
    """
    stride, padding, output_padding = check_conv_transpose_args(x, weight, bias, stride, padding, output_padding)
    backend = _backend.requested(backend)
    if _backend.resolve(OP, backend, x.device) == "aten":
        return conv_autocast(lambda x, w, b: _torch_forward(x, w, b, stride, padding, output_padding),
                             x, weight, bias, names="weight and bias")
    return conv_autocast(
        lambda x, w, b: _conv_transpose2d_op(x, w, b, list(stride), list(padding), list(output_padding), backend),
        x, weight, bias, names="weight and bias")


CUSTOM_OPS = (_conv_transpose2d_op,)
