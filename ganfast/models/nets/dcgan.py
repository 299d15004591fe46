"""DCGAN networks (Radford et al. 2015): strided convolutions down, fractionally strided up.

Each BatchNorm block is one fused ``ganfast.nn`` layer.  Conventions: see
:mod:`ganfast.models.nets`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ...nn import ConvBNLeakyReLU2d, ConvTransposeBNReLU2d, SelfAttention2d
from ._common import (AnyBatchStdDev, apply_spectral_norm, attach_discriminator_head, attach_label_embedding,
                      attention_resolution, check_input, check_labels, describe_args, discriminator_head, embed_dim_arg,
                      flag_arg, half_open_unit, image_shape_arg, minibatch_discrimination_arg, non_negative_int,
                      positive_int, sequential_of, widths_pair)

__all__ = ["ConvGenerator", "ConvDiscriminator"]

class ConvGenerator(nn.Module):
    """DCGAN generator (Radford et al. 2015): ``z -> 4x4 -> 8x8 -> ... -> (C, H, W)`` in [-1, 1].

    ``z`` [+ label embedding] as a 1x1 map -> ConvTranspose2d(k4, s1, p0) to
    4x4 -> stride-2 ConvTranspose2d(k4, s2, p1) blocks doubling the
    resolution up to H/2 -> ConvTranspose2d(k4, s2, p1) to C channels -> Tanh.
    The block producing resolution r has ``min(max_width, width * (H/2) / r)``
    channels: ``width`` at H/2, doubling towards 4x4 (H=64, width=64: 512,
    256, 128, 64, as DCGAN).

    With ``batch_norm`` each hidden block is ONE fused
    :class:`ganfast.nn.ConvTransposeBNReLU2d` (conv bias dropped, BatchNorm
    follows); otherwise ``nn.ConvTranspose2d(bias=True)`` + ``nn.ReLU``.

    Args:
        latent_dim: width of ``z`` (shape (B, latent_dim)).
        image_shape: (C, H, W), H == W a power of two >= 8.
        width, max_width: channel rule above.
        num_classes, embed_dim: conditioning as in :class:`MLPGenerator`.
        batch_norm: fused ConvTranspose + BatchNorm + ReLU blocks.
        spectral_norm: spectral norm on every conv / linear weight (the fused
            blocks' ``conv`` and the attention projections included).
        self_attention: None or a resolution in 4 .. H/2: a
            :class:`ganfast.nn.SelfAttention2d` after the block producing it.
    """

    _args = ("latent_dim", "image_shape", "width", "max_width", "num_classes", "embed_dim", "batch_norm",
             "spectral_norm", "self_attention")

    def __init__(self, latent_dim: int, image_shape: Sequence[int], *, width: int = 64, max_width: int = 512,
                 num_classes: int = 0, embed_dim: Optional[int] = None, batch_norm: bool = True,
                 spectral_norm: bool = False, self_attention: Optional[int] = None) -> None:
        super().__init__()
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.image_shape = image_shape_arg(image_shape)
        widths_pair(width, max_width)
        self.width, self.max_width = width, max_width
        self.embed_dim = embed_dim_arg(num_classes, embed_dim)
        self.num_classes = num_classes
        self.batch_norm = flag_arg(batch_norm, "batch_norm")
        self.spectral_norm = flag_arg(spectral_norm, "spectral_norm")
        channels, size, _ = self.image_shape
        resolutions = [4 << i for i in range(int(math.log2(size)) - 2)]  # 4, 8, ..., H/2
        self.self_attention = attention_resolution(self_attention, resolutions)

        in_ch = attach_label_embedding(self, num_classes, embed_dim, latent_dim)
        blocks = []
        for r in resolutions:
            out_ch = min(max_width, width * (size // 2) // r)
            k, s, p = (4, 1, 0) if r == 4 else (4, 2, 1)
            if batch_norm:
                blocks.append(ConvTransposeBNReLU2d(in_ch, out_ch, k, s, p, bias=False))
            else:
                blocks.append(sequential_of([("conv", nn.ConvTranspose2d(in_ch, out_ch, k, s, p, bias=True)),
                                       ("act", nn.ReLU())]))
            if r == self.self_attention:
                blocks.append(SelfAttention2d(out_ch))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.ConvTranspose2d(in_ch, channels, 4, 2, 1, bias=True)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_input(z, "z", (self.latent_dim,))
        check_labels(y, z.shape[0], self.num_classes)
        if self.num_classes:
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        return torch.tanh(self.output(self.blocks(z[:, :, None, None])))

    def extra_repr(self) -> str:
        return describe_args(self, self._args)


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: ``(C, H, W) -> H/2 -> ... -> 4x4 -> flatten -> Linear -> (B,)``.

    Conv2d(k4, s2, p1) + LeakyReLU with ``width`` channels (no BatchNorm on
    the first layer, as DCGAN), then stride-2 Conv2d(k4, s2, p1) +
    BatchNorm + LeakyReLU blocks doubling the channels (capped at
    ``max_width``) down to 4x4 -- each ONE fused
    :class:`ganfast.nn.ConvBNLeakyReLU2d` with ``batch_norm``, else
    ``nn.Conv2d(bias=True)`` + ``nn.LeakyReLU``.  An 8x8 discriminator
    therefore has only the first layer.  The block producing resolution r has
    ``min(max_width, width * (H/2) / r)`` channels.

    Args:
        image_shape: (C, H, W), H == W a power of two >= 8.
        width, max_width: channel rule above.
        num_classes: > 0 for a conditional discriminator: ``y`` enters as
            ``num_classes`` one-hot constant maps concatenated to the input
            channels (cGAN).
        batch_norm: fused Conv + BatchNorm + LeakyReLU blocks.
        spectral_norm: spectral norm on every conv / linear weight.
        self_attention: None or a resolution in H/2 .. 4: a
            :class:`ganfast.nn.SelfAttention2d` after the block producing it.
        minibatch_stddev: a minibatch standard deviation channel at 4x4
            (ProGAN), groups of up to 4 (see :func:`stddev_group_size`).
        minibatch_discrimination: None or ``(num_kernels, kernel_dim)``: a
            :class:`ganfast.nn.MinibatchDiscrimination` between the features
            and the final Linear.
        negative_slope: of every LeakyReLU.

    Attributes:
        feature_dim: width of the flattened 4x4 map (stddev channel included),
            the features ``forward(..., return_features=True)`` returns.
    """

    _args = ("image_shape", "width", "max_width", "num_classes", "batch_norm", "spectral_norm",
             "self_attention", "minibatch_stddev", "minibatch_discrimination", "negative_slope")

    def __init__(self, image_shape: Sequence[int], *, width: int = 64, max_width: int = 512,
                 num_classes: int = 0, batch_norm: bool = True, spectral_norm: bool = False,
                 self_attention: Optional[int] = None, minibatch_stddev: bool = False,
                 minibatch_discrimination: Optional[Tuple[int, int]] = None,
                 negative_slope: float = 0.2) -> None:
        super().__init__()
        self.image_shape = image_shape_arg(image_shape)
        widths_pair(width, max_width)
        self.width, self.max_width = width, max_width
        self.num_classes = non_negative_int(num_classes, "num_classes")
        self.batch_norm = flag_arg(batch_norm, "batch_norm")
        self.spectral_norm = flag_arg(spectral_norm, "spectral_norm")
        self.minibatch_stddev = flag_arg(minibatch_stddev, "minibatch_stddev")
        self.minibatch_discrimination = minibatch_discrimination_arg(minibatch_discrimination)
        self.negative_slope = half_open_unit(negative_slope, "negative_slope", "a float in [0, 1)")
        channels, size, _ = self.image_shape
        resolutions = [size >> i for i in range(1, int(math.log2(size)) - 1)]  # H/2, ..., 4
        self.self_attention = attention_resolution(self_attention, resolutions)

        in_ch = channels + num_classes
        blocks = []
        for r in resolutions:
            out_ch = min(max_width, width * (size // 2) // r)
            if batch_norm and r != size // 2:
                blocks.append(ConvBNLeakyReLU2d(in_ch, out_ch, 4, 2, 1, bias=False,
                                                negative_slope=self.negative_slope))
            else:
                blocks.append(sequential_of([("conv", nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=True)),
                                       ("act", nn.LeakyReLU(self.negative_slope))]))
            if r == self.self_attention:
                blocks.append(SelfAttention2d(out_ch))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        if minibatch_stddev:
            self.stddev = AnyBatchStdDev(group_size=4)
            in_ch += self.stddev.num_channels
        attach_discriminator_head(self, in_ch * 4 * 4, self.minibatch_discrimination)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, *, return_features: bool = False):
        check_input(x, "x", self.image_shape)
        check_labels(y, x.shape[0], self.num_classes)
        if self.num_classes:
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
        h = self.blocks(x)
        if self.minibatch_stddev:
            h = self.stddev(h)
        return discriminator_head(self, h.flatten(1), return_features)

    def extra_repr(self) -> str:
        return describe_args(self, self._args) + f", feature_dim={self.feature_dim}"


