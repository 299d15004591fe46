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
           :func:`ganfast.ops._conv_block.eval_differentiable` (BatchNorm
           folded into the weights along their output-channel dimension, 1,
           and ``bias_act``; unfused for half-precision weights).

Derivatives of every order: the transposed convolution's backward is aten's
(differentiable), the training-mode BatchNorm + activation recomputes through
the reference when ``create_graph=True``, ``bias_act`` supports any order.

The reference is :func:`ganfast.ref.conv_transpose_bn_act.conv_transpose_bn_act`.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import _backend
from ._conv_block import check_batch_norm_args, check_slope, run_block
from .batch_norm_act import register_backends
from .conv_transpose2d import IntPair, check_conv_transpose_args, conv_transpose2d

Tensor = torch.Tensor

OP = "conv_transpose_bn_act"
register_backends(OP)


def conv_transpose_bn_act(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                          bn_weight: Optional[Tensor] = None, bn_bias: Optional[Tensor] = None,
                          running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                          training: bool = True, momentum: float = 0.1, eps: float = 1e-5, stride: IntPair = 1,
                          padding: IntPair = 0, output_padding: IntPair = 0, negative_slope: float = 0.0,
                          backend: Optional[str] = None) -> Tensor:
    """``leaky_relu(batch_norm(conv_transpose2d(x, ...)), negative_slope)``, fused; ReLU by default.

    The DCGAN generator block (Radford et al. 2016, section 3: fractionally
    strided convolutions, batch normalization, ReLU), with BatchNorm as Ioffe
    & Szegedy 2015, Algorithm 1.

    Args:
        x: ``(N, C_in, H, W)`` float16, bfloat16, float32 or float64, NCHW or
            channels_last.
        weight: ``(C_in, C_out, kh, kw)``, kernel sizes 1 to 7 (groups 1,
            dilation 1), on x's device, in x's dtype outside autocast.
        bias: optional ``(C_out,)`` convolution bias.
        bn_weight, bn_bias, running_mean, running_var, training, momentum,
            eps: as :func:`ganfast.ops.conv_bn_act`.
        stride: 1 to 4; padding >= 0; ``output_padding < stride`` (ints or
            pairs), as in ``nn.ConvTranspose2d``.
        negative_slope: the LeakyReLU slope (0.0, the default: ReLU).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None
            for the current choice (:func:`ganfast.use_backend`).

    Returns:
        ``(N, C_out, H_out, W_out)`` in x's dtype (the autocast dtype under
        autocast) and memory format.

    Raises:
        TypeError, ValueError: as :func:`ganfast.ops.conv_transpose2d` and
            :func:`ganfast.ops.conv_bn_act` document for the same arguments.
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order (see the module docstring).
    """
    stride, padding, output_padding = check_conv_transpose_args(x, weight, bias, stride, padding, output_padding)
    momentum, eps = check_batch_norm_args(weight.shape[1], x.device, bn_weight, bn_bias, running_mean, running_var,
                                          training, momentum, eps)
    negative_slope = check_slope(negative_slope)
    backend = _backend.requested(backend)
    return run_block(x, weight, bias, bn_weight, bn_bias, running_mean, running_var, training, momentum, eps,
                     negative_slope, backend,
                     lambda w, b: conv_transpose2d(x, w, b, stride, padding, output_padding, backend=backend),
                     stride, padding, output_padding, transposed=True, op=OP)
