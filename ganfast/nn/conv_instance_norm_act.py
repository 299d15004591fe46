"""``ConvInstanceNormAct2d`` / ``ConvTransposeInstanceNormAct2d``: the translation GANs' layers, drop-ins for
``nn.Sequential(nn.Conv2d or nn.ConvTranspose2d, nn.InstanceNorm2d, nn.ReLU or nn.LeakyReLU)``.

The convolution is the child module itself (cuDNN on a GPU; every
configuration torch.nn has: reflection or zero padding, groups, dilation),
then :func:`ganfast.ops.instance_norm_act` runs the normalisation, the affine
and the activation as its two passes each way.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import _backend
from .._checks import check_input_dtype_matches
from ..ops.instance_norm_act import instance_norm_act
from .conv_bn_act import activation_slope

_ATEN_DTYPES = (torch.float32, torch.float64)


class _FusedConvInstanceNormAct(nn.Module):
    """Shared body: children ``conv`` and ``norm`` (an ``nn.InstanceNorm2d``), then the activation."""

    conv_type = nn.Conv2d

    @classmethod
    def from_modules(cls, conv: nn.Module, norm: nn.InstanceNorm2d, act: Optional[nn.Module] = None,
                     backend: str = "auto"):
        """The layer computing ``act(norm(conv(x)))``, sharing ``conv`` and ``norm`` (not copies).

        Raises:
            TypeError: ``conv`` is not the class's conv type, ``norm`` not an
                ``nn.InstanceNorm2d``, ``act`` not an ``nn.ReLU`` / ``nn.LeakyReLU``.
            ValueError: ``norm.num_features`` is not ``conv.out_channels``.
        """
        if not isinstance(conv, cls.conv_type):
            raise TypeError(f"conv must be an nn.{cls.conv_type.__name__}; got {type(conv).__name__}")
        if not isinstance(norm, nn.InstanceNorm2d):
            raise TypeError(f"norm must be an nn.InstanceNorm2d; got {type(norm).__name__}")
        if norm.num_features != conv.out_channels:
            raise ValueError(f"norm.num_features ({norm.num_features}) must equal conv.out_channels "
                             f"({conv.out_channels})")
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer._setup(conv, norm, act, backend)
        return layer

    def _setup(self, conv: nn.Module, norm: nn.InstanceNorm2d, act: nn.Module, backend: str) -> None:
        self.conv = conv
        self.norm = norm
        self.negative_slope = activation_slope(act)
        self.act = "relu" if isinstance(act, nn.ReLU) else "leaky_relu"
        self.backend = _backend.check_backend(backend)

    def _build(self, conv: nn.Module, act: str, negative_slope: float, eps: float, momentum: Optional[float],
               affine: bool, track_running_stats: bool, backend: str, factory: dict) -> None:
        if act not in ("relu", "leaky_relu"):
            raise ValueError(f"act must be 'relu' or 'leaky_relu'; got {act!r}")
        norm = nn.InstanceNorm2d(conv.out_channels, eps, momentum, affine, track_running_stats, **factory)
        self._setup(conv, norm, nn.ReLU() if act == "relu" else nn.LeakyReLU(negative_slope), backend)

    def _activation(self, y: torch.Tensor) -> torch.Tensor:
        return F.relu(y) if self.act == "relu" else F.leaky_relu(y, self.negative_slope)

    def _runs_aten(self, y: torch.Tensor) -> bool:
        """``auto``'s CPU choice (or a pinned ``aten``) for float32/float64 outside autocast: the children as
        torch.nn runs them."""
        return (type(y) is torch.Tensor and y.dtype in _ATEN_DTYPES
                and _backend.resolve("instance_norm_act", None if self.backend == "auto" else self.backend,
                                     y.device) == "aten"
                and not torch.is_autocast_enabled(y.device.type))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_dtype_matches(x, self.conv, type(self).__name__)
        y = self.conv(x)
        if self._runs_aten(y) or not y.dtype.is_floating_point:
            return self._activation(self.norm(y))
        norm = self.norm
        unbatched = y.dim() == 3  # (C, H, W), as nn.InstanceNorm2d accepts
        if unbatched:
            y = y.unsqueeze(0)
        if y.shape[1] != norm.num_features:  # nn.InstanceNorm2d's check, before the op's
            raise ValueError(f"expected input's size at dim=1 to match num_features ({norm.num_features}), but "
                             f"got: {y.shape[1]}.")
        # _InstanceNorm.forward's arguments to F.instance_norm
        out = instance_norm_act(
            y, norm.weight, norm.bias, norm.running_mean, norm.running_var,
            use_input_stats=norm.training or not norm.track_running_stats,
            momentum=norm.momentum if norm.momentum is not None else 0.0, eps=norm.eps, act=self.act,
            negative_slope=self.negative_slope, backend=None if self.backend == "auto" else self.backend)
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        extra = f"act={self.act!r}" + (f", negative_slope={self.negative_slope}" if self.act == "leaky_relu" else "")
        return extra + (f", backend={self.backend!r}" if self.backend != "auto" else "")


class ConvInstanceNormAct2d(_FusedConvInstanceNormAct):
    """``Conv2d -> InstanceNorm2d -> ReLU / LeakyReLU(negative_slope)``, the norm and activation fused.

    pix2pix's and CycleGAN's encoder and residual layers (Isola et al. 2017,
    Zhu et al. 2017: ``c7s1-k``, ``dk``, ``Rk``).  Parameters and buffers live
    in the children ``conv`` (an ``nn.Conv2d``) and ``norm`` (an
    ``nn.InstanceNorm2d``): state_dict keys ``conv.weight`` (``conv.bias``),
    and with ``affine=True`` ``norm.weight`` / ``norm.bias``, with
    ``track_running_stats=True`` ``norm.running_mean`` / ``norm.running_var`` /
    ``norm.num_batches_tracked``.  Train and eval mode behave as the
    ``nn.Sequential`` would (the running statistics normalise only in eval
    with ``track_running_stats=True``, as torch.nn's InstanceNorm2d does).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, bias,
            padding_mode: ``nn.Conv2d``'s (``padding_mode="reflect"`` for
            CycleGAN's ``c7s1`` layers without a separate pad module).
        act: ``"relu"`` (default) or ``"leaky_relu"``.
        negative_slope: the LeakyReLU slope (default 0.2; pix2pix's).
        eps, momentum, affine, track_running_stats: ``nn.InstanceNorm2d``'s
            (defaults 1e-5, 0.1, False, False, as torch.nn's).
        backend: ``"auto"`` follows the global choice (:func:`ganfast.use_backend`).

    Raises:
        ValueError: an unknown ``act``; what ``nn.Conv2d`` raises.
    """

    conv_type = nn.Conv2d

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 padding_mode: str = "zeros", act: str = "relu", negative_slope: float = 0.2, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, affine: bool = False, track_running_stats: bool = False,
                 backend: str = "auto", device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias,
                         padding_mode=padding_mode, **factory)
        self._build(conv, act, negative_slope, eps, momentum, affine, track_running_stats, backend, factory)


class ConvTransposeInstanceNormAct2d(_FusedConvInstanceNormAct):
    """``ConvTranspose2d -> InstanceNorm2d -> ReLU / LeakyReLU``, the norm and activation fused.

    The decoder layers of pix2pix's U-Net and CycleGAN's ResNet generator
    (``uk``: a stride-2 transposed convolution).  Children ``conv`` (an
    ``nn.ConvTranspose2d``) and ``norm``; the contract of
    :class:`ConvInstanceNormAct2d` (state_dict keys, train and eval).

    Args:
        in_channels, out_channels, kernel_size, stride, padding,
            output_padding, bias: ``nn.ConvTranspose2d``'s.
        act, negative_slope, eps, momentum, affine, track_running_stats,
            backend: as :class:`ConvInstanceNormAct2d`.

    Raises:
        ValueError: an unknown ``act``; what ``nn.ConvTranspose2d`` raises.
    """

    conv_type = nn.ConvTranspose2d

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 bias: bool = True, act: str = "relu", negative_slope: float = 0.2, eps: float = 1e-5,
                 momentum: Optional[float] = 0.1, affine: bool = False, track_running_stats: bool = False,
                 backend: str = "auto", device=None, dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                                  bias=bias, **factory)
        self._build(conv, act, negative_slope, eps, momentum, affine, track_running_stats, backend, factory)
