"""LAPGAN's conditional level networks (Denton, Chintala, Szlam & Fergus 2015, NeurIPS; arXiv:1506.05751).

The finer levels of a Laplacian pyramid GAN, as the released code
(facebookarchive/eyescream, ``cifar/scripts/train_cifar_coarse_to_fine.lua``)
builds them (written here, not copied).  ``l`` is the upsampled coarser image,
``h`` a band-pass image of the same size:

* :class:`BandPassGenerator` ``G_k(z, l)``: the noise as one extra input
  plane (paper sec. 4: "the noise ... as a 4th color plane"), then
  ``Conv7x7 -> ReLU -> Conv7x7 -> ReLU -> Conv5x5`` with "same" padding and
  ``width`` (128) channels, giving ``h~`` with no output activation (a
  band-pass image is signed and small).
* :class:`BandPassDiscriminator` ``D_k(h, l)``: ``h + l`` (paper: the
  low-pass image "is explicitly added to h_k or h~_k before the first
  convolution layer"), then ``Conv5x5 -> ReLU -> Conv5x5 stride 2 -> ReLU ->
  Dropout(0.5) -> Linear -> 1`` (no padding), one logit per image.

The coarsest level is an unconditional GAN on the low-pass residual; LAPGAN
uses fully connected nets there (:class:`~ganfast.models.nets.MLPGenerator`,
:class:`~ganfast.models.nets.MLPDiscriminator`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import half_open_unit, positive_int

__all__ = ["BandPassGenerator", "BandPassDiscriminator"]


class BandPassGenerator(nn.Module):
    """``G_k``: ``(noise (B, 1, H, W), l (B, C, H, W))`` -> ``h~`` ``(B, C, H, W)`` (see the module docstring).

    Args:
        channels: image channels C, >= 1.
        width: hidden channels (128 in the released code).

    Raises:
        ValueError: a non-positive ``channels`` or ``width``; in ``forward``, inputs of other shapes.
    """

    def __init__(self, channels: int, width: int = 128) -> None:
        super().__init__()
        self.channels = positive_int(channels, "channels")
        self.width = positive_int(width, "width")
        self.model = nn.Sequential(nn.Conv2d(self.channels + 1, self.width, 7, padding=3), nn.ReLU(True),
                                   nn.Conv2d(self.width, self.width, 7, padding=3), nn.ReLU(True),
                                   nn.Conv2d(self.width, self.channels, 5, padding=2))

    def forward(self, noise: Tensor, low: Tensor) -> Tensor:
        if low.dim() != 4 or low.shape[1] != self.channels or noise.shape != (low.shape[0], 1) + low.shape[2:]:
            raise ValueError(f"BandPassGenerator takes noise (B, 1, H, W) and l (B, {self.channels}, H, W); got "
                             f"{tuple(noise.shape)} and {tuple(low.shape)}")
        return self.model(torch.cat([noise.to(low.dtype), low], 1))


class BandPassDiscriminator(nn.Module):
    """``D_k``: ``(h (B, C, H, W), l (B, C, H, W))`` -> logits ``(B,)`` (see the module docstring).

    Args:
        channels: image channels C, >= 1.
        side: H = W of the level's images, >= 14 (two 5x5 convolutions without padding, one of stride 2).
        width: hidden channels (128 in the released code).
        dropout: before the linear layer (0.5, ``nn.Dropout()`` in the released code), in [0, 1).

    Raises:
        ValueError: bad sizes (as above); in ``forward``, inputs of other shapes.
    """

    def __init__(self, channels: int, side: int, width: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.channels = positive_int(channels, "channels")
        self.side = positive_int(side, "side")
        self.width = positive_int(width, "width")
        self.dropout = half_open_unit(dropout, "dropout", "a probability in [0, 1)")
        out = ((self.side - 4) - 5) // 2 + 1
        if out < 1:
            raise ValueError(f"BandPassDiscriminator needs side >= 9; got {side!r}")
        self.features = nn.Sequential(nn.Conv2d(self.channels, self.width, 5), nn.ReLU(True),
                                      nn.Conv2d(self.width, self.width, 5, stride=2), nn.ReLU(True),
                                      nn.Flatten(), nn.Dropout(self.dropout))
        self.output = nn.Linear(self.width * out * out, 1)

    def forward(self, h: Tensor, low: Tensor) -> Tensor:
        want = (self.channels, self.side, self.side)
        if h.dim() != 4 or tuple(h.shape[1:]) != want or h.shape != low.shape:
            raise ValueError(f"BandPassDiscriminator takes h and l of shape (B, {', '.join(map(str, want))}); got "
                             f"{tuple(h.shape)} and {tuple(low.shape)}")
        return self.output(self.features(h + low)).squeeze(1)
