"""StyleGAN2's generator and discriminator (Karras et al. 2020, CVPR; arXiv:1912.04958), on ganfast's ops.

The architecture of the paper's config F as NVlabs/stylegan2-ada-pytorch
``training/networks.py`` builds it (written here, not copied):

* **Mapping network**: z normalised to unit second moment, ``mapping_layers``
  fully connected layers of ``w_dim`` with leaky ReLU (gain sqrt 2) and a
  learning-rate multiplier of 0.01 (equalized lr, sec. 4.1 of ProGAN); the
  running average ``w_avg`` (decay 0.995) is kept for the truncation trick
  ``w' = w_avg + psi (w - w_avg)`` on the first ``cutoff`` layers.
* **Synthesis network** ("skip" architecture, sec. 4.1, Figure 7): a learned
  constant 4x4 input; per resolution an upsampling modulated 3x3 convolution
  (:func:`ganfast.ops.modulated_conv2d`, up 2 with the [1, 3, 3, 1] filter)
  and a plain one, each with per-pixel noise scaled by a learned strength
  (zero at first), a bias and leaky ReLU with gain sqrt 2
  (:func:`ganfast.ops.bias_act`); a toRGB (1x1 modulated convolution, no
  demodulation, styles scaled by 1/sqrt(fan_in)) per resolution whose output
  is added to the upsampled image (:func:`ganfast.ops.upsample2d`).  The
  style of each layer is an affine map of w (bias initialised to 1).  A block
  uses consecutive entries of ``ws``; the toRGB of one block shares its index
  with the first convolution of the next.
* **Discriminator** ("resnet" architecture, Figure 7): fromRGB at full
  resolution; per resolution a 3x3 conv and a 3x3 conv with blur-then-stride-2
  downsampling, plus a 1x1 downsampling skip without bias, summed with gain
  sqrt(0.5); at 4x4 the minibatch standard deviation (group 4, one channel),
  a 3x3 conv, a dense layer and the output.

Channel counts: ``min(channel_base / resolution, channel_max)`` (config F:
32768 and 512).  Every convolution and dense layer has an equalized
learning rate (weights N(0, 1), scaled by 1 / sqrt(fan_in) at run time);
the synthesis convolutions need no scale (demodulation removes it).
"""

from __future__ import annotations

import math
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ... import ops
from ...nn import MinibatchStdDev

__all__ = ["Conv2dLayer", "FullyConnected", "MappingNetwork", "NOISE_MODES", "StyleGAN2Discriminator",
           "StyleGAN2Generator", "channels_at", "check_resolution", "check_synthesis_args"]

_SQRT2 = math.sqrt(2.0)


def check_resolution(img_resolution) -> int:
    """``img_resolution`` as an int when it is a power of two >= 4 (Raises: ValueError naming it otherwise)."""
    r = img_resolution
    if isinstance(r, bool) or not isinstance(r, int) or r < 4 or r & (r - 1):
        raise ValueError(f"img_resolution must be a power of two >= 4; got {r!r}")
    return r


NOISE_MODES = ("random", "const", "none")


def check_synthesis_args(ws, num_ws: int, w_dim: int, noise_mode) -> None:
    """``ws`` is (N, num_ws, w_dim) and ``noise_mode`` one of :data:`NOISE_MODES` (Raises: ValueError)."""
    if not isinstance(ws, torch.Tensor) or ws.dim() != 3 or tuple(ws.shape[1:]) != (num_ws, w_dim):
        got = tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__
        raise ValueError(f"ws must be (N, num_ws={num_ws}, w_dim={w_dim}); got {got}")
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be 'random', 'const' or 'none'; got {noise_mode!r}")


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """``min(channel_base // resolution, channel_max)`` (stylegan2-ada-pytorch ``channels_dict``)."""
    return max(1, min(channel_base // resolution, channel_max))


class FullyConnected(nn.Module):
    """Dense layer with an equalized learning rate: weight N(0, 1/lr^2) * lr / sqrt(in), bias * lr."""

    def __init__(self, in_features: int, out_features: int, activation: str = "linear", lr_multiplier: float = 1.0,
                 bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight.to(x.dtype) * self.weight_gain)
        b = self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear":
            return y + b
        return ops.bias_act(y, b, act="leaky_relu", negative_slope=0.2, gain=_SQRT2)


class MappingNetwork(nn.Module):
    """z (N, z_dim) -> ws (N, num_ws, w_dim); ``w_avg`` tracked for truncation."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(FullyConnected(a, b, "lrelu", lr_multiplier) for a, b in zip(dims, dims[1:]))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
                update_w_avg: bool = False) -> Tensor:
        """z (N, z_dim) -> ws (N, num_ws, w_dim); truncation toward ``w_avg`` on the first ``truncation_cutoff``.

        Raises:
            ValueError: z not (N, z_dim); ``truncation_cutoff`` not an int in [1, num_ws].
        """
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.z_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must be (N, z_dim={self.z_dim}); got {got}")
        if truncation_cutoff is not None and (isinstance(truncation_cutoff, bool) or not isinstance(
                truncation_cutoff, int) or not 1 <= truncation_cutoff <= self.num_ws):
            raise ValueError(f"truncation_cutoff must be an int in [1, {self.num_ws}] (the number of w layers) or "
                             f"None; got {truncation_cutoff!r}")
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)  # normalize_2nd_moment
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().to(self.w_avg.dtype).mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            head = self.w_avg.to(ws.dtype).lerp(ws[:, :cut], truncation_psi)
            ws = torch.cat([head, ws[:, cut:]], dim=1)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling) + noise + bias + leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.up, self.resolution, self.padding = up, resolution, kernel_size // 2
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", ops.setup_filter())

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                dtype=x.dtype) * self.noise_strength.to(x.dtype)
        elif noise_mode == "const":
            noise = (self.noise_const * self.noise_strength).to(x.dtype)
        y = ops.modulated_conv2d(x, self.weight, styles, up=self.up, padding=self.padding,
                                 resample_filter=self.resample_filter, noise=noise)
        return ops.bias_act(y, self.bias.to(y.dtype), act="leaky_relu", negative_slope=0.2, gain=_SQRT2)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation (styles scaled by 1/sqrt(fan_in)) + bias."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        y = ops.modulated_conv2d(x, self.weight, styles, demodulate=False)
        return y + self.bias.to(y.dtype).view(1, -1, 1, 1)


class SynthesisBlock(nn.Module):
    """One resolution: (the constant, or an upsampling conv) and a conv, then its toRGB added to the image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int) -> None:
        super().__init__()
        self.first = in_channels == 0
        if self.first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)
        self.num_conv = 1 if self.first else 2
        self.register_buffer("resample_filter", ops.setup_filter())

    def forward(self, x: Optional[Tensor], img: Optional[Tensor], ws: Tensor, noise_mode: str) -> tuple:
        i = 0
        if self.first:
            x = self.const.to(ws.dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            i = 1
        x = self.conv1(x, ws[:, i], noise_mode)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, ws[:, i + 1])
        return x, (y if img is None else img + y)


class StyleGAN2Generator(nn.Module):
    """z (N, z_dim) -> images (N, C, R, R); ``mapping`` and ``synthesis`` callable on their own.

    Raises:
        ValueError: ``img_resolution`` is not a power of two >= 4.
    """

    def __init__(self, z_dim: int, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
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
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels))
            in_ch = out_ch
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr, w_avg_beta)

    def synthesis(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        """ws (N, num_ws, w_dim) -> images (N, C, R, R).  Raises: ValueError (ws's shape, noise_mode)."""
        check_synthesis_args(ws, self.num_ws, self.w_dim, noise_mode)
        x = img = None
        i = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, i:i + block.num_conv + 1], noise_mode)
            i += block.num_conv
        return img

    def forward(self, z: Tensor, truncation_psi: float = 1.0, truncation_cutoff: Optional[int] = None,
                noise_mode: str = "random") -> Tensor:
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff), noise_mode)


class Conv2dLayer(nn.Module):
    """Equalized-lr conv with optional blur-then-stride-2 downsampling, bias and leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "lrelu", down: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.activation, self.down, self.padding = activation, down, kernel_size // 2
        self.register_buffer("resample_filter", ops.setup_filter())

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        y = ops.conv2d_resample(x, w, self.resample_filter, down=self.down, padding=self.padding)
        b = self.bias.to(y.dtype) if self.bias is not None else None
        if self.activation == "linear":
            y = y + b.view(1, -1, 1, 1) if b is not None else y
            return y * gain if gain != 1 else y
        return ops.bias_act(y, b, act="leaky_relu", negative_slope=0.2, gain=_SQRT2 * gain)


class DiscriminatorBlock(nn.Module):
    """Two 3x3 convs, the second blur-then-stride-2; ``resnet``: plus the 1x1 skip, summed with gain sqrt(0.5)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 architecture: str = "resnet") -> None:
        super().__init__()
        self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1) if in_channels == 0 else None
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=2)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, activation="linear", down=2) \
            if architecture == "resnet" else None

    def forward(self, x: Optional[Tensor], img: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(img)
        if self.skip is None:
            return self.conv1(self.conv0(x))
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class StyleGAN2Discriminator(nn.Module):
    """images (N, C, R, R) -> scores (N,); blocks down to 4x4, then minibatch stddev and the head.

    ``architecture``: ``"resnet"`` (StyleGAN2, default) or ``"orig"`` (the
    same blocks without the residual skip: ProGAN's and StyleGAN's D, whose
    [1, 2, 1] blur, conv and 2x2 average pooling equal this blur by
    [1, 3, 3, 1] and stride-2 conv).

    Raises:
        ValueError: an unknown ``architecture``; ``img_resolution`` not a
            power of two >= 4.
    """

    def __init__(self, img_resolution: int, img_channels: int, channel_base: int = 32768, channel_max: int = 512,
                 mbstd_group_size: int = 4, architecture: str = "resnet") -> None:
        super().__init__()
        check_resolution(img_resolution)
        if architecture not in ("resnet", "orig"):
            raise ValueError(f"architecture must be 'resnet' or 'orig'; got {architecture!r}")
        self.architecture = architecture
        resolutions = [2 ** i for i in range(int(math.log2(img_resolution)), 2, -1)]
        blocks: List[nn.Module] = []
        for k, res in enumerate(resolutions):
            in_ch = 0 if k == 0 else channels_at(res, channel_base, channel_max)
            tmp = channels_at(res, channel_base, channel_max)
            out = channels_at(res // 2, channel_base, channel_max)
            blocks.append(DiscriminatorBlock(in_ch, tmp, out, img_channels, architecture))
        self.blocks = nn.ModuleList(blocks)
        c4 = channels_at(4, channel_base, channel_max)
        self.fromrgb4 = Conv2dLayer(img_channels, c4, 1) if not blocks else None  # a 4x4 model
        self.mbstd = MinibatchStdDev(mbstd_group_size, 1) if mbstd_group_size > 1 else None
        self.conv = Conv2dLayer(c4 + (1 if self.mbstd is not None else 0), c4, 3)
        self.fc = FullyConnected(c4 * 16, c4, "lrelu")
        self.out = FullyConnected(c4, 1)

    def forward(self, img: Tensor) -> Tensor:
        x = None if self.fromrgb4 is None else self.fromrgb4(img)
        for block in self.blocks:
            x = block(x, img)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        return self.out(self.fc(x.flatten(1))).squeeze(1)
