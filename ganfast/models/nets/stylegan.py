"""StyleGAN's generator and discriminator (Karras, Laine & Aila 2019, CVPR; arXiv:1812.04948), on ganfast's ops.

The first style-based generator, as NVlabs/stylegan ``training/
networks_stylegan.py`` ``G_style`` / ``D_basic`` build it (written here,
not copied), with the "fixed" structure (no progressive growing):

* **Mapping network**: the one StyleGAN2 kept (:class:`~.stylegan2.MappingNetwork`:
  z normalised to unit second moment, 8 fully connected layers with leaky
  ReLU, learning-rate multiplier 0.01, ``w_avg`` with decay 0.995 for the
  truncation trick).
* **Synthesis network** (sec. 2, Figure 1b): a learned constant 4x4 input
  (initialised to ones); per resolution two 3x3 convolutions (the first
  upsampling by 2), each followed by the *layer epilogue*: per-pixel noise
  scaled by a learned per-channel strength (zero at first), bias, leaky
  ReLU (0.2), instance normalisation and the style (AdaIN, eq. 1:
  ``y_s * (x - mu(x)) / sigma(x) + y_b``, ``(y_s, y_b)`` an affine map of w
  whose scale half has bias 1).  At 4x4 the constant gets an epilogue,
  then one conv.  ``num_ws = 2 log2(R) - 2``: one w per epilogue.  One
  toRGB (1x1 conv, gain 1, bias) at the output resolution.  Convolution
  weights have an equalized learning rate with gain sqrt 2 (``conv2d(...,
  gain=sqrt(2), use_wscale=True)``), the style and toRGB layers gain 1.
* **Discriminator**: StyleGAN's ``D_basic`` is ProGAN's; it is
  :class:`~.stylegan2.StyleGAN2Discriminator` with ``architecture="orig"``
  (fromRGB, per resolution a 3x3 conv and a blurred stride-2 3x3 conv,
  minibatch stddev, 3x3 conv, two dense layers).

One difference from the released code, the one StyleGAN2 made too: the
upsampling layer (nearest-neighbour upsampling, conv, [1, 2, 1] blur) runs
as :func:`ganfast.ops.conv2d_resample` (zero insertion, the [1, 3, 3, 1]
filter, conv: one fused op on a GPU).  [1, 1] * [1, 2, 1] = [1, 3, 3, 1],
with the same alignment, so the two agree everywhere except the one-pixel
border, where the released code zero-pads between the conv and the blur
and this form does not (tested: the interior equals the written-out
released form in float64).  The discriminator's blur, conv and 2x2 average
pooling likewise run as blur by [1, 3, 3, 1] and a stride-2 conv.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ... import ops
from ..._dtypes import compute_dtype
from .stylegan2 import (FullyConnected, MappingNetwork, StyleGAN2Discriminator, channels_at, check_resolution,
                        check_synthesis_args)

__all__ = ["AdaIN", "StyleGANDiscriminator", "StyleGANGenerator", "instance_norm"]

#: NVlabs/stylegan networks_stylegan.py: instance_norm's epsilon
_IN_EPS = 1e-8


def instance_norm(x: Tensor, eps: float = _IN_EPS) -> Tensor:
    """``(x - mean) * rsqrt(mean((x - mean)^2) + eps)`` over each (sample, channel)'s H x W, in float32 or wider.

    NVlabs/stylegan ``instance_norm`` (eps 1e-8); x (N, C, H, W), returned in x's dtype.
    """
    y = x.to(compute_dtype(x.dtype))
    y = y - y.mean(dim=(2, 3), keepdim=True)
    y = y * torch.rsqrt(y.square().mean(dim=(2, 3), keepdim=True) + eps)
    return y.to(x.dtype)


class AdaIN(nn.Module):
    """StyleGAN's layer epilogue: noise, bias, leaky ReLU, instance norm, then the style (eq. 1).

    x (N, C, R, R), w (N, w_dim) -> (N, C, R, R).  ``noise_mode``: random
    (fresh N(0, 1) per pixel and sample), const (a fixed buffer) or none.
    """

    def __init__(self, channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.channels, self.resolution = channels, resolution
        self.noise_strength = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.affine = FullyConnected(w_dim, 2 * channels)
        with torch.no_grad():  # style_mod: x * (y_s + 1) + y_b, i.e. the scale half's bias starts at 1
            self.affine.bias[:channels] = 1.0

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        elif noise_mode == "const":
            noise = self.noise_const.to(x.dtype)
        else:
            noise = None
        if noise is not None:
            x = x + noise * self.noise_strength.to(x.dtype).view(1, -1, 1, 1)
        x = ops.bias_act(x, self.bias.to(x.dtype), act="leaky_relu", negative_slope=0.2)
        x = instance_norm(x)
        style = self.affine(w.to(x.dtype))
        ys, yb = style[:, :self.channels], style[:, self.channels:]
        return x * ys[:, :, None, None] + yb[:, :, None, None]


class _Conv(nn.Module):
    """Equalized-lr 3x3 conv, gain sqrt 2, optionally upsampling by 2 (the [1, 3, 3, 1] filter), no bias."""

    def __init__(self, in_channels: int, out_channels: int, up: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.weight_gain = math.sqrt(2.0) / math.sqrt(in_channels * 9)
        self.up = up
        self.register_buffer("resample_filter", ops.setup_filter())

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        return ops.conv2d_resample(x, w, self.resample_filter, up=self.up, padding=1)


class SynthesisBlock(nn.Module):
    """One resolution: (the constant, or an upsampling conv) + AdaIN, conv + AdaIN; two entries of ws."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int) -> None:
        super().__init__()
        self.first = in_channels == 0
        if self.first:
            self.const = nn.Parameter(torch.ones(out_channels, resolution, resolution))
        else:
            self.conv0 = _Conv(in_channels, out_channels, up=2)
        self.epilogue0 = AdaIN(out_channels, w_dim, resolution)
        self.conv1 = _Conv(out_channels, out_channels)
        self.epilogue1 = AdaIN(out_channels, w_dim, resolution)

    def forward(self, x: Optional[Tensor], ws: Tensor, noise_mode: str) -> Tensor:
        if self.first:
            x = self.const.to(ws.dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x)
        x = self.epilogue0(x, ws[:, 0], noise_mode)
        return self.epilogue1(self.conv1(x), ws[:, 1], noise_mode)


class StyleGANGenerator(nn.Module):
    """z (N, z_dim) -> images (N, C, R, R); ``mapping`` and ``synthesis`` callable on their own.

    The interface of :class:`~.stylegan2.StyleGAN2Generator` (``num_ws``,
    ``mapping(z, truncation_psi, truncation_cutoff)``, ``synthesis(ws,
    noise_mode)``), so the StyleGAN2 method's training, truncation, style
    mixing and interpolation apply unchanged.  Channels at resolution r:
    ``min(channel_base / r, channel_max)`` (the released ``nf``: fmap_base
    8192 at stage log2(r) - 1, i.e. channel_base 16384, channel_max 512).

    Raises:
        ValueError: ``img_resolution`` is not a power of two >= 4.
    """

    def __init__(self, z_dim: int, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 16384,
                 channel_max: int = 512, mapping_layers: int = 8, mapping_lr: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        check_resolution(img_resolution)
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        resolutions = [2 ** i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self.blocks = nn.ModuleList()
        in_ch = 0
        for res in resolutions:
            out_ch = channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res))
            in_ch = out_ch
        self.torgb_weight = nn.Parameter(torch.randn(img_channels, in_ch, 1, 1))
        self.torgb_bias = nn.Parameter(torch.zeros(img_channels))
        self.torgb_gain = 1.0 / math.sqrt(in_ch)
        self.num_ws = 2 * len(self.blocks)
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr, w_avg_beta)

    def synthesis(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        """ws (N, num_ws, w_dim) -> images (N, C, R, R).  Raises: ValueError (ws's shape, noise_mode)."""
        check_synthesis_args(ws, self.num_ws, self.w_dim, noise_mode)
        x = None
        for i, block in enumerate(self.blocks):
            x = block(x, ws[:, 2 * i:2 * i + 2], noise_mode)
        w = self.torgb_weight.to(x.dtype) * self.torgb_gain
        return torch.nn.functional.conv2d(x, w, self.torgb_bias.to(x.dtype))

    def forward(self, z: Tensor, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
                noise_mode: str = "random") -> Tensor:
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff), noise_mode)


class StyleGANDiscriminator(StyleGAN2Discriminator):
    """StyleGAN's (and ProGAN's) D: :class:`~.stylegan2.StyleGAN2Discriminator` without the residual skips."""

    def __init__(self, img_resolution: int, img_channels: int, channel_base: int = 16384, channel_max: int = 512,
                 mbstd_group_size: int = 4) -> None:
        super().__init__(img_resolution, img_channels, channel_base, channel_max, mbstd_group_size,
                         architecture="orig")
