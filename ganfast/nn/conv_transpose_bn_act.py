"""``ConvTransposeBNReLU2d``: the fused generator block, a drop-in for
``nn.Sequential(nn.ConvTranspose2d, nn.BatchNorm2d, nn.ReLU)``."""

from __future__ import annotations

from typing import Optional

from torch import nn

from ..ops.conv_transpose2d import MAX_STRIDE
from ..ops.conv_transpose_bn_act import conv_transpose_bn_act
from .conv_bn_act import FusedConvBNAct


class ConvTransposeBNReLU2d(FusedConvBNAct):
    """``ConvTranspose2d -> BatchNorm2d -> ReLU`` (or LeakyReLU) as one fused layer.

    Children ``conv`` (an ``nn.ConvTranspose2d``) and ``bn`` (an
    ``nn.BatchNorm2d``); the same contract as
    :class:`ganfast.nn.ConvBNLeakyReLU2d`: state_dict keys, train and eval
    behaviour, running statistics, one warning and the unfused layers for
    configurations the fused path does not cover (also strides over 4).
    ``negative_slope=0.0`` (the default) is ReLU.
    """

    conv_type = nn.ConvTranspose2d
    fused_op = staticmethod(conv_transpose_bn_act)
    op_name = "conv_transpose_bn_act"

    # nn.ConvTranspose2d's and nn.BatchNorm2d's arguments, in DESIGN.md's order.
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 bias: bool = False, eps: float = 1e-5, momentum: Optional[float] = 0.1, negative_slope: float = 0.0,
                 affine: bool = True, track_running_stats: bool = True, backend: str = "auto", device=None,
                 dtype=None) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding, output_padding,
                                  bias=bias, **factory)
        self._build(conv, eps, momentum, affine, track_running_stats, negative_slope, backend, factory)

    def _unsupported(self) -> Optional[str]:
        if max(self.conv.stride) > MAX_STRIDE:
            return f"stride={tuple(self.conv.stride)}"
        return None

    def _conv_kwargs(self) -> dict:
        return dict(stride=self.conv.stride, padding=self.conv.padding, output_padding=self.conv.output_padding)
