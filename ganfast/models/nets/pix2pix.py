"""pix2pix's networks (Isola, Zhu, Zhou & Efros 2017, CVPR; arXiv:1611.07004): a U-Net generator and a PatchGAN.

The architecture as junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``
builds it (``UnetGenerator`` / ``UnetSkipConnectionBlock``, ``NLayerDiscriminator``
and ``init_weights``; written here, not copied):

* :class:`UNetGenerator` (paper sec. 3.2.1 and appendix 6.1.1): an encoder of
  ``num_downs`` 4x4 stride-2 convolutions and a mirrored decoder of 4x4
  stride-2 transposed convolutions, with a skip connection from each encoder
  level to the decoder level of the same size (channel concatenation).  One
  level, from the outside in, is::

      down: LeakyReLU(0.2) -> Conv4x4 s2 -> norm          (outermost: Conv only; innermost: no norm)
      up:   ReLU -> ConvTranspose4x4 s2 -> norm [-> dropout] (outermost: no norm, then Tanh)
      out:  cat(x, up(inner(down(x))))                    (outermost: up(inner(down(x))), no skip)

  Level ``i`` (0 = outermost) has ``ngf * min(2**i, 8)`` channels inside, so
  ``num_downs = 8`` is the released ``unet_256`` (C64-C128-C256-C512-C512-C512-
  C512-C512 in the paper's notation) and ``num_downs = log2(resolution)``
  takes an image down to 1x1.  Dropout (p = 0.5) sits on the up path of every
  level between the innermost and the first ``ngf * 8`` level whose input is
  already ``ngf * 8`` wide: the released rule, which gives the three blocks
  next to the innermost at 256x256, one at 64x64 and none at 32x32 or below.
* :class:`PatchDiscriminator` (sec. 3.2.2, appendix 6.1.2): the "70x70
  PatchGAN": C64 (no norm) - C128 - C256 (stride 2) - C512 (stride 1) - a
  stride-1 convolution to one channel; each output logit sees a 70x70 patch
  of its input (``n_layers = 3``; ``n_layers = 1`` gives 16x16 patches,
  ``n_layers = 2`` 34x34).

Biases only where the released code has them: none before a BatchNorm (which
has its own shift); with ``norm="instance"`` (no affine parameters, as
released) every convolution has one; the outermost transposed convolution and
the first and last discriminator convolutions always do.  Weights are drawn
N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0 (``init_weights`` with
``init_type="normal"``, ``init_gain=0.02``).

**Dropout at test time.**  pix2pix's generator has no latent z; its only noise
is dropout, which the paper keeps at test time (sec. 3.1 and 3.3: "we apply
dropout at test time").  :class:`AlwaysDropout` therefore drops in eval mode
too (``F.dropout(x, p, training=True)``), drawing from torch's global RNG; set
``dropout=0`` for a deterministic generator.  (The released ``test.py`` also
keeps BatchNorm in training mode unless ``--eval``; here ``eval()`` uses the
running statistics as usual.)
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import choice_arg, half_open_unit, positive_int

__all__ = ["UNetGenerator", "PatchDiscriminator", "AlwaysDropout", "NORMS", "init_pix2pix_weights",
           "patch_output_size"]

#: normalisation layers by name (the released ``get_norm_layer``: BatchNorm with affine parameters and
#: running statistics; InstanceNorm without either)
NORMS = ("batch", "instance")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class AlwaysDropout(nn.Module):
    """Dropout that stays on in eval mode (pix2pix's noise; paper sec. 3.1: "dropout ... at test time").

    ``forward(x)`` is ``F.dropout(x, p, training=True)``: each element is
    zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``,
    whatever ``self.training`` says.  ``p = 0`` is the identity.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = half_open_unit(p, "dropout", "a probability in [0, 1)")

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, training=True) if self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}, also in eval mode"


class _UNetLevel(nn.Module):
    """One U-Net level: ``down`` -> ``inner`` (the next level, or None) -> ``up``, and the skip.

    Shapes: ``(B, outer_in, H, W)`` -> ``(B, 2 * outer, H, W)`` (the input
    concatenated with the decoder's output), or ``(B, outer, H, W)`` for the
    outermost level (no skip).
    """

    def __init__(self, outer: int, inner: int, sub: Optional["_UNetLevel"], *, outer_in: Optional[int] = None,
                 outermost: bool = False, norm: str = "batch", dropout: float = 0.0) -> None:
        super().__init__()
        innermost = sub is None
        bias = norm == "instance"  # a BatchNorm's shift makes a conv bias redundant (networks.py: use_bias)
        outer_in = outer if outer_in is None else outer_in
        self.outermost = outermost
        down = [nn.Conv2d(outer_in, inner, 4, stride=2, padding=1, bias=bias)]
        if not outermost:
            down.insert(0, nn.LeakyReLU(0.2))
        if not (outermost or innermost):
            down.append(_norm(norm, inner))
        # the decoder's input: the inner level's output with its skip (2 * inner), or the bottleneck (inner)
        up_in = inner if innermost else 2 * inner
        up = [nn.ReLU(), nn.ConvTranspose2d(up_in, outer, 4, stride=2, padding=1, bias=bias or outermost)]
        if outermost:
            up.append(nn.Tanh())
        else:
            up.append(_norm(norm, outer))
            if dropout > 0:
                up.append(AlwaysDropout(dropout))
        self.down = nn.Sequential(*down)
        self.inner = sub
        self.up = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        y = self.down(x)
        if self.inner is not None:
            y = self.inner(y)
        y = self.up(y)
        return y if self.outermost else torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """The U-Net generator of pix2pix (sec. 3.2.1; appendix 6.1.1; see the module docstring).

    Args:
        in_channels: channels of the input image (domain A), >= 1.
        out_channels: channels of the output image (domain B), >= 1.
        num_downs: number of stride-2 levels, >= 2; the input's side must be
            a multiple of ``2 ** num_downs`` (``log2(resolution)`` reaches
            1x1: 8 for 256x256, 5 for 32x32).
        ngf: channels of the outermost level (64 in the paper); level ``i`` has
            ``ngf * min(2 ** i, 8)``.
        norm: ``"batch"`` (pix2pix's default) or ``"instance"``.
        dropout: dropout probability on the ``ngf * 8`` levels next to the
            innermost, in [0, 1); kept at test time (:class:`AlwaysDropout`).

    Shapes: ``forward(x)``: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``
    in (-1, 1) (tanh).

    Raises:
        ValueError: a non-positive channel count, width or ``num_downs < 2``,
            an unknown ``norm``, ``dropout`` outside [0, 1) (TypeError or
            ValueError for a wrong type); in ``forward``, an input that is not 4-D with
            ``in_channels`` channels and sides multiples of ``2 ** num_downs``.
    """

    def __init__(self, in_channels: int, out_channels: int, num_downs: int, ngf: int = 64, norm: str = "batch",
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.num_downs = positive_int(num_downs, "num_downs")
        if self.num_downs < 2:
            raise ValueError(f"num_downs must be >= 2 (an outermost and an innermost level); got {num_downs!r}")
        self.ngf = positive_int(ngf, "ngf")
        self.norm = choice_arg(norm, NORMS, "norm")
        self.dropout = half_open_unit(dropout, "dropout", "a probability in [0, 1)")
        widths = [self.ngf * min(2 ** i, 8) for i in range(self.num_downs)]
        level: Optional[_UNetLevel] = None
        for i in range(self.num_downs - 1, 0, -1):  # innermost first, as the released code nests them
            outer, inner = widths[i - 1], widths[i]
            # released: dropout on the (num_downs - 5) middle levels whose input and inner widths are both ngf*8
            drop = self.dropout if (level is not None and outer == inner == self.ngf * 8) else 0.0
            level = _UNetLevel(outer, inner, level, norm=self.norm, dropout=drop)
        self.model = _UNetLevel(self.out_channels, widths[0], level, outer_in=self.in_channels, outermost=True,
                                norm=self.norm)
        init_pix2pix_weights(self)

    def levels(self):
        """The levels from the outermost to the innermost (each has ``down``, ``inner`` and ``up``)."""
        out, level = [], self.model
        while level is not None:
            out.append(level)
            level = level.inner
        return out

    def forward(self, x: Tensor) -> Tensor:
        step = 2 ** self.num_downs
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % step or x.shape[3] % step:
            raise ValueError(f"UNetGenerator with num_downs={self.num_downs} takes (B, {self.in_channels}, H, W) "
                             f"with H and W multiples of {step}; got {tuple(x.shape)}")
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """The PatchGAN discriminator of pix2pix (sec. 3.2.2; appendix 6.1.2; released ``NLayerDiscriminator``).

    Args:
        in_channels: channels of its input; pix2pix feeds ``cat(A, B)``, so
            ``in_channels(A) + out_channels(B)``.
        ndf: channels of the first convolution (64 in the paper).
        n_layers: stride-2 convolutions (3: the 70x70 PatchGAN), >= 1.
        norm: ``"batch"`` or ``"instance"``.

    Shapes: ``forward(x)``: ``(B, in_channels, H, W)`` -> ``(B, 1, h, w)`` logits,
    ``h = H / 2 ** n_layers - 2`` (:func:`patch_output_size`): 30x30 at 256x256,
    one logit per overlapping patch of :attr:`receptive_field` pixels.

    Raises:
        ValueError: a non-positive channel count or ``n_layers``, an unknown
            ``norm`` (TypeError or ValueError for a wrong type); in ``forward``, an
            input too small to leave a 1x1 map.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.ndf = positive_int(ndf, "ndf")
        self.n_layers = positive_int(n_layers, "n_layers")
        self.norm = choice_arg(norm, NORMS, "norm")
        bias = self.norm == "instance"
        layers = [nn.Conv2d(self.in_channels, self.ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = self.ndf
        for n in range(1, self.n_layers + 1):
            # n < n_layers: stride 2; n == n_layers: the stride-1 layer before the output
            nxt = self.ndf * min(2 ** n, 8)
            layers += [nn.Conv2d(width, nxt, 4, stride=2 if n < self.n_layers else 1, padding=1, bias=bias),
                       _norm(self.norm, nxt), nn.LeakyReLU(0.2)]
            width = nxt
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_pix2pix_weights(self)

    @property
    def receptive_field(self) -> int:
        """Side of the input patch one output logit sees: 70 for ``n_layers = 3`` (16, 34, 70, 142, ...)."""
        rf = 1
        for conv in reversed([m for m in self.model if isinstance(m, nn.Conv2d)]):
            rf = (rf - 1) * conv.stride[0] + conv.kernel_size[0]
        return rf

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PatchDiscriminator takes (B, {self.in_channels}, H, W); got {tuple(x.shape)}")
        if min(patch_output_size(x.shape[2], self.n_layers), patch_output_size(x.shape[3], self.n_layers)) < 1:
            raise ValueError(f"PatchDiscriminator with n_layers={self.n_layers} needs sides >= "
                             f"{3 * 2 ** self.n_layers}; got {tuple(x.shape)}")
        return self.model(x)


def patch_output_size(side: int, n_layers: int) -> int:
    """The PatchGAN map's side for an input side: ``side`` halved (floor) ``n_layers`` times, then minus 2."""
    for _ in range(n_layers):
        side = (side + 2 - 4) // 2 + 1
    return side - 2


@torch.no_grad()
def init_pix2pix_weights(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """The released ``init_weights(net, "normal", 0.02)``: conv weights N(0, gain), BatchNorm scales N(1, gain),
    biases 0 (an InstanceNorm without affine parameters has nothing to initialise)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module
