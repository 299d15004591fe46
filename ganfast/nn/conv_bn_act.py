"""``ConvBNLeakyReLU2d``: the fused discriminator block, a drop-in for
``nn.Sequential(nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU)``."""

from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _backend
from .._checks import check_input_dtype_matches
from ..ops.batch_norm_act import activation_
from ..ops.conv_bn_act import MAX_KERNEL, SUPPORTED_DTYPES, conv_bn_act

_ATEN_DTYPES = (torch.float32, torch.float64)


def bn_forward_args(bn: nn.modules.batchnorm._BatchNorm):
    """``(training, factor, running_mean, running_var)`` exactly as ``_BatchNorm.forward`` derives them.

    Increments ``num_batches_tracked`` when it would (training with running
    statistics), so call it once per forward.
    """
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    training = bn.training or (bn.running_mean is None and bn.running_var is None)
    use_running = not bn.training or bn.track_running_stats
    return (
        training,
        factor,
        bn.running_mean if use_running else None,
        bn.running_var if use_running else None,
    )


class FusedConvBNAct(nn.Module):
    """Shared body of the fused conv -> BatchNorm2d -> LeakyReLU/ReLU layers.

    Subclasses name the conv type they hold (``conv_type``), the fused op
    (``fused_op``), the convolution's extra arguments (``_conv_kwargs``) and
    any extra unsupported configuration (``_unsupported``).
    """

    conv_type = nn.Conv2d
    fused_op = staticmethod(conv_bn_act)
    op_name = "conv_bn_act"

    @classmethod
    def from_modules(cls, conv: nn.Module, bn: nn.BatchNorm2d, act: Optional[nn.Module] = None,
                     backend: str = "auto"):
        """The fused layer computing ``act(bn(conv(x)))``, sharing ``conv`` and ``bn`` (not copies).

        ``act`` must be an ``nn.LeakyReLU`` or an ``nn.ReLU``.
        """
        if not isinstance(conv, cls.conv_type):
            raise TypeError(f"conv must be an nn.{cls.conv_type.__name__}; got {type(conv).__name__}")
        if not isinstance(bn, nn.BatchNorm2d):
            raise TypeError(f"bn must be an nn.BatchNorm2d; got {type(bn).__name__}")
        if bn.num_features != conv.out_channels:
            raise ValueError(f"bn.num_features ({bn.num_features}) must equal conv.out_channels ({conv.out_channels})")
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._setup(conv, bn, activation_slope(act), backend)
        return layer

    def _setup(self, conv: nn.Module, bn: nn.BatchNorm2d, negative_slope: float, backend: str) -> None:
        self.conv = conv
        self.bn = bn
        self.negative_slope = float(negative_slope)
        self.backend = _backend.check_backend(backend)
        self._warned = False

    def _build(self, conv: nn.Module, eps: float, momentum: Optional[float], affine: bool,
               track_running_stats: bool, negative_slope: float, backend: str, factory: dict) -> None:
        """``_setup`` with a new BatchNorm2d after ``conv`` (the constructors' common half)."""
        bn = nn.BatchNorm2d(conv.out_channels, eps, momentum, affine, track_running_stats, **factory)
        self._setup(conv, bn, negative_slope, backend)

    def fused_supported(self, x: torch.Tensor) -> Optional[str]:
        """None when the fused path covers this layer and input, else why not."""
        conv = self.conv
        if conv.groups != 1:
            return f"groups={conv.groups}"
        if tuple(conv.dilation) != (1, 1):
            return f"dilation={tuple(conv.dilation)}"
        if conv.padding_mode != "zeros":
            return f"padding_mode={conv.padding_mode!r}"
        if isinstance(conv.padding, str):
            return f"padding={conv.padding!r}"
        if max(conv.kernel_size) > MAX_KERNEL:
            return f"kernel_size={tuple(conv.kernel_size)}"
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.dtype not in SUPPORTED_DTYPES:
            return "input that is not a 4-D floating-point tensor"
        return self._unsupported()

    def _unsupported(self) -> Optional[str]:
        return None

    def _unfused(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn(self.conv(x)), self.negative_slope)

    def _conv_kwargs(self) -> dict:
        return dict(stride=self.conv.stride, padding=self.conv.padding)

    def _fused(self, x, training, momentum, running_mean, running_var, backend) -> torch.Tensor:
        return self.fused_op(
            x, self.conv.weight, self.conv.bias, self.bn.weight, self.bn.bias, running_mean, running_var,
            training=training, momentum=momentum, eps=self.bn.eps, negative_slope=self.negative_slope,
            backend=backend, **self._conv_kwargs(),
        )

    def _runs_aten(self, x: torch.Tensor) -> bool:
        """Whether this call takes the ``aten`` backend: the children themselves, as torch.nn runs them.

        That is ``auto``'s choice on CPU tensors (``_backend.OPS``), or the
        layer's pinned backend, for float32/float64 outside autocast; half
        precision takes the reference's BatchNorm (see
        :func:`ganfast.ops.batch_norm_act.aten_forward`).
        """
        return (type(x) is torch.Tensor and x.dtype in _ATEN_DTYPES
                and _backend.resolve(self.op_name, None if self.backend == "auto" else self.backend, x.device) == "aten"
                and not torch.is_autocast_enabled(x.device.type))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_dtype_matches(x, self.conv, type(self).__name__)
        if self._runs_aten(x):
            # The children run exactly as in the unconverted model (same checks, the
            # running statistics and num_batches_tracked updated by the BatchNorm
            # module), then the activation in place on BatchNorm's fresh output.
            return activation_(self.bn(self.conv(x)), self.negative_slope)
        reason = self.fused_supported(x)
        if reason is not None:
            if not self._warned:
                warnings.warn(f"{type(self).__name__}: {reason} is not covered by the fused kernels; "
                              f"running the unfused torch.nn layers", stacklevel=2)
                self._warned = True
            return self._unfused(x)
        training, factor, running_mean, running_var = bn_forward_args(self.bn)
        return self._fused(x, training, factor, running_mean, running_var,
                           None if self.backend == "auto" else self.backend)

    def extra_repr(self) -> str:
        extra = f"negative_slope={self.negative_slope}"
        if self.backend != "auto":
            extra += f", backend={self.backend!r}"
        return extra


class ConvBNLeakyReLU2d(FusedConvBNAct):
    """``Conv2d -> BatchNorm2d -> LeakyReLU(negative_slope)`` as one fused layer.

    Parameters and buffers live in the children ``conv`` (an ``nn.Conv2d``)
    and ``bn`` (an ``nn.BatchNorm2d``), so the state_dict keys are
    ``conv.weight`` (``conv.bias``), ``bn.weight``, ``bn.bias``,
    ``bn.running_mean``, ``bn.running_var``, ``bn.num_batches_tracked``.
    Train and eval mode behave as the ``nn.Sequential`` would, running
    statistics included (``momentum=None`` for a cumulative average,
    ``track_running_stats=False``, ``affine=False``).  ``negative_slope=0.0``
    gives ReLU.

    Configurations the fused path does not cover (dilation, groups, a
    padding mode other than zeros, kernels over 7, non-floating or non-4-D
    inputs) run the unfused children instead, with one warning per layer.

    ``backend``: ``"auto"`` follows the global choice (:func:`ganfast.use_backend`).
    """

    conv_type = nn.Conv2d

    # nn.Conv2d's and nn.BatchNorm2d's arguments, in DESIGN.md's order.
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = False,
                 negative_slope: float = 0.2, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True, backend: str = "auto", device=None,
                 dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias, **factory)
        self._build(conv, eps, momentum, affine, track_running_stats, negative_slope, backend, factory)


def activation_slope(act: Optional[nn.Module]) -> float:
    """The LeakyReLU slope of ``act`` (``nn.ReLU`` -> 0.0)."""
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    if isinstance(act, nn.ReLU):
        return 0.0
    raise TypeError(f"act must be an nn.LeakyReLU or nn.ReLU; got {type(act).__name__}")
