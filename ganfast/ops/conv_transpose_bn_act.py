"""``conv_transpose_bn_act``: ConvTranspose2d -> BatchNorm2d -> ReLU/LeakyReLU, the generator block.

The same structure as :mod:`ganfast.ops.conv_bn_act`, with one BatchNorm
implementation shared between the two blocks
(:mod:`ganfast.ops.batch_norm_act`):

training   ``conv_transpose2d`` (torch or the sub-pixel Triton kernel), then
           BatchNorm + activation in one statistics pass and one
           normalise + affine + activation pass; backward in two passes.
eval       inference: :mod:`ganfast.ops.conv_affine_act` (one sub-pixel
           Triton kernel with the BatchNorm affine and the activation in its
           epilogue on the ``triton`` backend); with gradients,
           :func:`ganfast.ops.conv_bn_act.eval_differentiable` (BatchNorm
           folded into the weights along their output-channel dimension, 1,
           and ``bias_act``; unfused for half-precision weights).

Derivatives of every order: the transposed convolution's backward is aten's
(differentiable), the training-mode BatchNorm + activation recomputes through
the reference when ``create_graph=True``, ``bias_act`` supports any order.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import _backend
from .batch_norm_act import batch_norm_act_train, register_backends
from .conv_affine_act import conv_affine_act, eval_affine, needs_grad
from .conv_bn_act import _check_bn, eval_differentiable
from .conv_transpose2d import IntPair, check_conv_transpose_args, conv_transpose2d

Tensor = torch.Tensor

OP = "conv_transpose_bn_act"
register_backends(OP)


def conv_transpose_bn_act(
    x: Tensor,
    weight: Tensor,
    bias: Optional[Tensor] = None,
    bn_weight: Optional[Tensor] = None,
    bn_bias: Optional[Tensor] = None,
    running_mean: Optional[Tensor] = None,
    running_var: Optional[Tensor] = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    negative_slope: float = 0.0,
    backend: Optional[str] = None,
) -> Tensor:
    """``leaky_relu(batch_norm(conv_transpose2d(x, ...)), negative_slope)``, fused; ReLU by default.

    Arguments as :func:`ganfast.ops.conv_bn_act`, with ``weight`` of shape
    (C_in, C_out, kh, kw), stride 1 to 4, kernel 1 to 7 and
    ``output_padding < stride`` as in ``nn.ConvTranspose2d`` (groups 1,
    dilation 1).
    """
    stride, padding, output_padding = check_conv_transpose_args(x, weight, bias, stride, padding, output_padding)
    out_channels = weight.shape[1]
    _check_bn(out_channels, x.device, bn_weight, bn_bias, running_mean, running_var, training, momentum, eps)
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
        raise TypeError(f"negative_slope must be a float; got {type(negative_slope).__name__}")
    backend = _backend.current_backend() if backend is None else _backend._check_name(backend)
    if training:
        y = conv_transpose2d(x, weight, bias, stride, padding, output_padding, backend=backend)
        return batch_norm_act_train(
            y, bn_weight, bn_bias, running_mean, running_var, float(momentum), float(eps), float(negative_slope),
            backend,
        )
    if not needs_grad(x, weight, bias, bn_weight, bn_bias):
        center, scale, shift = eval_affine(bias, bn_weight, bn_bias, running_mean, running_var, float(eps), x.dtype)
        return conv_affine_act(x, weight, center, scale, shift, stride, padding, output_padding, True,
                               negative_slope, backend)
    return eval_differentiable(
        lambda w, b: conv_transpose2d(x, w, b, stride, padding, output_padding, backend=backend), weight, bias,
        bn_weight, bn_bias, running_mean, running_var, float(eps), float(negative_slope), backend, out_dim=1,
    )

