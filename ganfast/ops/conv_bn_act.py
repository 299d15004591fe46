"""``conv_bn_act``: Conv2d -> BatchNorm2d -> LeakyReLU, the discriminator block.

Training mode (batch statistics):
    the convolution runs through ``torch`` (cuDNN on a GPU), then
    :mod:`ganfast.ops.batch_norm_act` takes the BatchNorm + activation in one
    statistics pass and one normalise + affine + activation pass (forward), and
    one reduction pass and one apply pass (backward).  Eager PyTorch makes an
    extra full read and write of the activation for the LeakyReLU in each
    direction and saves two activations instead of one.
Eval mode (running statistics):
    for inference (nothing needs a gradient), :mod:`ganfast.ops.conv_affine_act`:
    on the ``triton`` backend ONE kernel, an implicit GEMM whose epilogue
    applies the BatchNorm affine and the LeakyReLU in registers; on ``torch``
    the convolution plus one element-wise pass.  With gradients, BatchNorm is
    folded into the convolution (``w * gamma / sqrt(var + eps)`` and a
    per-channel bias) and the bias + LeakyReLU run as one
    :func:`ganfast.ops.bias_act` pass over the convolution's output, all of
    it differentiable (half-precision weights: unfused, see
    :func:`eval_differentiable`).

Which convolution runs: in training mode always torch's (cuDNN on a GPU).
For eval-mode inference ``auto`` also takes cuDNN + one element-wise pass;
``backend="triton"`` takes the one-kernel implicit GEMM.  No GPU has been
available to measure the two against each other yet (that measurement is owed to
bench/RESULTS.md), and
the Triton kernel's float32 path runs full-precision FMA where cuDNN uses
TF32, so cuDNN stays the default until a measurement says otherwise.

Derivatives: the convolution and the BatchNorm fold are plain torch
operations; ``bias_act`` supports every order; the training-mode
BatchNorm + activation recomputes through the reference when a
differentiable gradient is asked for (``create_graph=True``).  So WGAN-GP and
R1 penalties through these layers give the unfused model's gradients.

What this block shares with :mod:`ganfast.ops.conv_transpose_bn_act` (the
checks, the BatchNorm fold, the three paths) is in
:mod:`ganfast.ops._conv_block`; the reference is
:func:`ganfast.ref.conv_bn_act.conv_bn_act`.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .. import _backend
from .._checks import require
from ._conv_block import (  # noqa: F401  (check_conv_args, eval_differentiable, fold_batch_norm: re-exported)
    MAX_KERNEL, SUPPORTED_DTYPES, IntPair, check_batch_norm_args, check_conv_args, check_slope, check_vector,
    eval_differentiable, fold_batch_norm, run_block,
)
from .batch_norm_act import register_backends

Tensor = torch.Tensor

OP = "conv_bn_act"

# conv_bn_act's own kernels are batch_norm_act's (and bias_act's in eval).
register_backends(OP)


def conv_bn_act(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, bn_weight: Optional[Tensor] = None,
                bn_bias: Optional[Tensor] = None, running_mean: Optional[Tensor] = None,
                running_var: Optional[Tensor] = None, training: bool = True, momentum: float = 0.1,
                eps: float = 1e-5, stride: IntPair = 1, padding: IntPair = 0, negative_slope: float = 0.2,
                backend: Optional[str] = None) -> Tensor:
    """``leaky_relu(batch_norm(conv2d(x, weight, bias, stride, padding)), negative_slope)``, fused.

    The DCGAN discriminator block (Radford et al. 2016, section 3: strided
    convolutions, batch normalization, leaky ReLU with slope 0.2), with
    BatchNorm as Ioffe & Szegedy 2015, Algorithm 1 (training) and its
    inference transform (eval).  BatchNorm arguments follow
    ``F.batch_norm``: with ``training=True`` the batch statistics normalise,
    and ``running_mean`` / ``running_var`` (if given) are updated in place
    with factor ``momentum`` (unbiased variance); with ``training=False``
    the running statistics normalise (folded into the convolution).
    ``negative_slope=0`` gives ReLU.

    Args:
        x: ``(N, C_in, H, W)`` float16, bfloat16, float32 or float64, any
            memory layout (NCHW and channels_last run without copies).
        weight: ``(C_out, C_in, kh, kw)``, kernel sizes 1 to 7 (groups 1,
            dilation 1), floating point, on x's device; x's dtype outside
            autocast.
        bias: optional ``(C_out,)`` convolution bias.
        bn_weight, bn_bias: optional ``(C_out,)`` BatchNorm affine parameters
            (gamma, beta); float32 in a mixed-precision model.
        running_mean, running_var: ``(C_out,)`` running statistics, both or
            neither; required when ``training=False``.
        training: batch statistics (True) or running statistics (False).
        momentum: running-average factor in [0, 1].
        eps: added to the variance (positive).
        stride, padding: an int or a pair; stride >= 1, padding >= 0.
        negative_slope: the LeakyReLU slope (0.0: ReLU).
        backend: ``"torch"``, ``"aten"``, ``"triton"``, ``"auto"``, or None
            for the current choice (:func:`ganfast.use_backend`).

    Returns:
        ``(N, C_out, H_out, W_out)`` in x's dtype (the autocast dtype under
        autocast) and layout.  Statistics accumulate in float32 (float64 for
        float64 inputs).

    Raises:
        TypeError: a tensor argument is not a (floating-point) tensor, ``x``
            has an unsupported dtype, a stride or padding is not an int or a
            pair, ``negative_slope`` is not a number, or ``weight`` differs
            from x's dtype outside autocast.
        ValueError: a shape, device or value is wrong (``x`` not 4-D or
            empty, channels that do not match, a kernel over 7, an input
            smaller than the kernel, only one running statistic, eval without
            running statistics, ``eps`` not positive, ``momentum`` outside
            [0, 1], a batch of one in training, an unknown backend name).
        BackendUnavailable: the backend named cannot run here.

    Derivatives of every order (see the module docstring for which path
    serves which order).
    """
    stride, padding = check_conv_args(x, weight, stride, padding)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"weight must have {x.shape[1]} input channels to match x of shape {tuple(x.shape)}; "
            f"got weight of shape {tuple(weight.shape)}"
        )
    out_channels = weight.shape[0]
    check_vector(bias, "bias", out_channels, x.device)
    momentum, eps = check_batch_norm_args(out_channels, x.device, bn_weight, bn_bias, running_mean, running_var,
                                          training, momentum, eps)
    for size, k, p in zip(x.shape[2:], weight.shape[2:], padding):
        require(size + 2 * p >= k, ValueError, lambda: (
            f"x's spatial size {tuple(x.shape[2:])} with padding {padding} is smaller than the kernel "
            f"{tuple(weight.shape[2:])}"))
    negative_slope = check_slope(negative_slope)
    backend = _backend.requested(backend)
    return run_block(x, weight, bias, bn_weight, bn_bias, running_mean, running_var, training, momentum, eps,
                     negative_slope, backend, lambda w, b: F.conv2d(x, w, b, stride, padding), stride, padding,
                     (0, 0), transposed=False, op=OP)
