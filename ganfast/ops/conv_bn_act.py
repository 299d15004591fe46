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
available to measure the two against each other yet (bench/RESULTS.md), and
the Triton kernel's float32 path runs full-precision FMA where cuDNN uses
TF32, so cuDNN stays the default until a measurement says otherwise.

Derivatives: the convolution and the BatchNorm fold are plain torch
operations; ``bias_act`` supports every order; the training-mode
BatchNorm + activation recomputes through the reference when a
differentiable gradient is asked for (``create_graph=True``).  So WGAN-GP and
R1 penalties through these layers give the unfused model's gradients.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .. import _backend
from ..ref import batch_norm_act as ref
from ..ref.bias_act import compute_dtype
from .batch_norm_act import batch_norm_act_train, register_backends
from .bias_act import bias_act
from .conv_affine_act import conv_affine_act, eval_affine, needs_grad

Tensor = torch.Tensor
IntPair = Union[int, Sequence[int]]

OP = "conv_bn_act"
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_KERNEL = 7

# conv_bn_act's own kernels are batch_norm_act's (and bias_act's in eval).
register_backends(OP)


def _pair(value: IntPair, name: str, minimum: int) -> Tuple[int, int]:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}")
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return pair  # type: ignore[return-value]


def _check_vector(t: Optional[Tensor], name: str, n: int, device: torch.device) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None; got {type(t).__name__}")
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one value per output channel); got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} must be on the same device as x ({device}); got {t.device}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {t.dtype}")


def check_conv_args(x, weight, stride, padding, max_kernel: int = MAX_KERNEL):
    """Shared argument checks of the fused conv ops: returns (stride, padding) as pairs."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x must be float16, bfloat16, float32 or float64; got {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W); got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"x must not be empty; got shape {tuple(x.shape)}")
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor; got {type(weight).__name__}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be 4-D; got shape {tuple(weight.shape)}")
    if weight.device != x.device:
        raise ValueError(f"weight must be on the same device as x ({x.device}); got {weight.device}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor; got {weight.dtype}")
    kh, kw = weight.shape[2:]
    if not (1 <= kh <= max_kernel and 1 <= kw <= max_kernel):
        raise ValueError(f"weight's kernel size must be 1 to {max_kernel} in each dimension; got {kh}x{kw}")
    return _pair(stride, "stride", 1), _pair(padding, "padding", 0)


def _check_bn(out_channels, device, bn_weight, bn_bias, running_mean, running_var, training, momentum, eps):
    for t, name in ((bn_weight, "bn_weight"), (bn_bias, "bn_bias"), (running_mean, "running_mean"),
                    (running_var, "running_var")):
        _check_vector(t, name, out_channels, device)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together or both be None")
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False (eval uses them)")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a positive number; got {eps!r}")
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be a number in [0, 1] (the running-average factor); got {momentum!r}")


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


def conv_bn_act(
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
    negative_slope: float = 0.2,
    backend: Optional[str] = None,
) -> Tensor:
    """``leaky_relu(batch_norm(conv2d(x, weight, bias, stride, padding)), negative_slope)``, fused.

    BatchNorm arguments follow ``F.batch_norm``: with ``training=True`` the
    batch statistics normalise, and ``running_mean`` / ``running_var`` (if
    given) are updated in place with factor ``momentum`` (unbiased variance);
    with ``training=False`` the running statistics normalise (folded into the
    convolution).  ``negative_slope=0`` gives ReLU.

    Supported: 4-D ``x`` of float16/bfloat16/float32/float64 in any memory
    layout (NCHW and channels_last run without copies), ``weight`` of shape
    (C_out, C_in, kh, kw) with kernel sizes 1 to 7 (groups 1, dilation 1),
    any stride and padding.  Autocast applies to the convolution as in eager
    PyTorch; statistics accumulate in float32.

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
    _check_vector(bias, "bias", out_channels, x.device)
    _check_bn(out_channels, x.device, bn_weight, bn_bias, running_mean, running_var, training, momentum, eps)
    for size, k, p in zip(x.shape[2:], weight.shape[2:], padding):
        if size + 2 * p < k:
            raise ValueError(
                f"x's spatial size {tuple(x.shape[2:])} with padding {padding} is smaller than the kernel "
                f"{tuple(weight.shape[2:])}"
            )
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
        raise TypeError(f"negative_slope must be a float; got {type(negative_slope).__name__}")
    backend = _backend.current_backend() if backend is None else _backend._check_name(backend)

    if training:
        y = F.conv2d(x, weight, bias, stride, padding)
        return batch_norm_act_train(
            y, bn_weight, bn_bias, running_mean, running_var, float(momentum), float(eps), float(negative_slope),
            backend,
        )
    if not needs_grad(x, weight, bias, bn_weight, bn_bias):
        center, scale, shift = eval_affine(bias, bn_weight, bn_bias, running_mean, running_var, float(eps), x.dtype)
        return conv_affine_act(x, weight, center, scale, shift, stride, padding, (0, 0), False, negative_slope,
                               backend)
    return eval_differentiable(lambda w, b: F.conv2d(x, w, b, stride, padding), weight, bias, bn_weight, bn_bias,
                               running_mean, running_var, float(eps), float(negative_slope), backend)


def eval_differentiable(conv, weight, bias, bn_weight, bn_bias, running_mean, running_var, eps: float,
                        negative_slope: float, backend: str, out_dim: int = 0) -> Tensor:
    """Eval mode when gradients are needed; ``conv(w, b)`` runs the block's convolution.

    float32/float64 weights: BatchNorm folded into the convolution and
    :func:`bias_act` for the bias + activation (differentiable to any order).
    Half-precision weights: folding would round ``w * gamma / std`` to half
    precision a second time where eager rounds ``w`` once, so eager's own
    arithmetic runs instead (unfused).  Under autocast the weights are
    float32, folded in float32 and rounded once by autocast, like eager.
    """
    if weight.dtype in (torch.float16, torch.bfloat16):
        return ref.batch_norm_act(conv(weight, bias), running_mean, running_var, bn_weight, bn_bias, False, 0.0, eps,
                                  negative_slope)
    w, b = fold_batch_norm(weight, bias, bn_weight, bn_bias, running_mean, running_var, eps, out_dim)
    return bias_act(conv(w, None), b, act="leaky_relu", negative_slope=negative_slope, backend=backend)
