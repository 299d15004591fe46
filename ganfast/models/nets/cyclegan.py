"""CycleGAN's ResNet generator (Zhu, Park, Isola & Efros 2017, ICCV; arXiv:1703.10593, appendix 7.2).

The architecture as junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py``
builds it (``ResnetGenerator`` / ``ResnetBlock``; written here, not copied),
after Johnson et al. 2016's style-transfer network::

    c7s1-ngf:  ReflectionPad(3) -> Conv7x7 -> norm -> ReLU
    d2ngf, d4ngf: Conv3x3 stride 2 (padding 1) -> norm -> ReLU             (twice: R -> R/4)
    R4ngf x n_blocks: x + [ReflectionPad(1) -> Conv3x3 -> norm -> ReLU [-> Dropout]
                           -> ReflectionPad(1) -> Conv3x3 -> norm](x)
    u2ngf, ungf: ConvTranspose3x3 stride 2 (padding 1, output_padding 1) -> norm -> ReLU   (twice: R/4 -> R)
    c7s1-out:  ReflectionPad(3) -> Conv7x7 -> Tanh

``n_blocks`` is 6 for 128x128 images and 9 for 256x256 and larger (paper,
appendix 7.2).  The layers sit in one ``nn.Sequential`` ``model`` (each
residual block's in ``model.<i>.conv_block``) at the released indices, so
the state_dict keys are the released checkpoints' (``model.1.weight``,
``model.10.conv_block.1.weight``, ...) and those load as they are.

``upsample="resize"`` replaces each transposed convolution by a
nearest-neighbour x2 resize, ``ReflectionPad(1)`` and a 3x3 convolution
(Odena, Dumoulin & Olah 2016, "Deconvolution and Checkerboard Artifacts",
Distill): the remedy for the checkerboard patterns CycleGAN users report
(junyanz/pytorch-CycleGAN-and-pix2pix issues #78 and #190).  The
``Upsample`` and ``ReflectionPad2d`` then sit in ``model`` before the conv,
which shifts the indices of the layers after the first of them, so released
weights load only into the ``"transpose"`` form.

Norms (the released ``get_norm_layer``): ``"instance"`` (CycleGAN's default:
``InstanceNorm2d`` without affine parameters or running statistics; every
convolution then has a bias) or ``"batch"`` (BatchNorm with both; no conv
bias before it).  Weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0
(``init_weights(net, "normal", 0.02)``, shared with pix2pix).

Every ``Conv -> InstanceNorm2d -> ReLU`` run sits in an ``nn.Sequential``,
so :func:`ganfast.nn.convert` fuses it (``ganfast.ops.instance_norm_act``)
without moving any other layer.  The discriminator is pix2pix's
:class:`~ganfast.models.nets.pix2pix.PatchDiscriminator` with
``norm="instance"`` (the released ``--netD basic``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ._common import choice_arg, half_open_unit, non_negative_int, positive_int
from .pix2pix import NORMS, init_pix2pix_weights

__all__ = ["ResNetGenerator", "ResNetBlock", "UPSAMPLES", "default_resnet_blocks"]

#: the generator's two upsampling layers: transposed convolutions (released) or resize-convolutions
UPSAMPLES = ("transpose", "resize")


def default_resnet_blocks(resolution: int) -> int:
    """The paper's residual block count (appendix 7.2): 6 below 256x256 (``resnet_6blocks``), 9 from 256 on."""
    return 9 if resolution >= 256 else 6


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResNetBlock(nn.Module):
    """``x + conv_block(x)`` with ``conv_block`` = pad, conv3x3, norm, ReLU, [dropout,] pad, conv3x3, norm.

    Shapes: ``(B, dim, H, W)`` -> ``(B, dim, H, W)``.
    """

    def __init__(self, dim: int, norm: str = "instance", dropout: float = 0.0) -> None:
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim), nn.ReLU(True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), _norm(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_block(x)


class ResNetGenerator(nn.Module):
    """CycleGAN's generator (see the module docstring for the layers).

    Args:
        in_channels: channels of the input domain, >= 1.
        out_channels: channels of the output domain, >= 1.
        ngf: channels of the first layer (64 in the paper); the residual blocks have ``4 * ngf``.
        n_blocks: residual blocks, >= 0 (6 at 128x128, 9 at 256x256: :func:`default_resnet_blocks`).
        norm: ``"instance"`` (default) or ``"batch"``.
        dropout: dropout inside each residual block, in [0, 1) (0: none, CycleGAN's default ``--no_dropout``).
        upsample: ``"transpose"`` (released) or ``"resize"`` (nearest x2 + conv3x3; no checkerboard).

    Shapes: ``forward(x)``: ``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)`` in (-1, 1),
    H and W multiples of 4 (two stride-2 levels) and >= 8 (the 7x7 reflection pad needs sides > 3 at
    the full resolution and the 3x3 pads sides > 1 at a quarter of it).

    Raises:
        ValueError: a non-positive channel count or width, a negative ``n_blocks``, an unknown ``norm`` or
            ``upsample``, ``dropout`` outside [0, 1) (TypeError or ValueError for a wrong type); in
            ``forward``, an input that is not 4-D with ``in_channels`` channels and sides multiples of 4, >= 8.
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: float = 0.0, upsample: str = "transpose") -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.ngf = positive_int(ngf, "ngf")
        self.n_blocks = non_negative_int(n_blocks, "n_blocks")
        self.norm = choice_arg(norm, NORMS, "norm")
        self.dropout = half_open_unit(dropout, "dropout", "a probability in [0, 1)")
        self.upsample = choice_arg(upsample, UPSAMPLES, "upsample")
        bias = self.norm == "instance"
        g = self.ngf
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(self.in_channels, g, 7, bias=bias), _norm(self.norm, g),
                  nn.ReLU(True)]
        for mult in (1, 2):  # downsampling: ngf -> 2 ngf -> 4 ngf
            layers += [nn.Conv2d(g * mult, g * mult * 2, 3, stride=2, padding=1, bias=bias),
                       _norm(self.norm, g * mult * 2), nn.ReLU(True)]
        layers += [ResNetBlock(4 * g, self.norm, self.dropout) for _ in range(self.n_blocks)]
        for mult in (4, 2):  # upsampling: 4 ngf -> 2 ngf -> ngf
            c_in, c_out = g * mult, g * mult // 2
            if self.upsample == "transpose":
                layers.append(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1, bias=bias))
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                           nn.Conv2d(c_in, c_out, 3, bias=bias)]
            layers += [_norm(self.norm, c_out), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(g, self.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_pix2pix_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % 4 or x.shape[3] % 4 \
                or min(x.shape[2], x.shape[3]) < 8:
            raise ValueError(f"ResNetGenerator takes (B, {self.in_channels}, H, W) with H and W multiples of 4 and "
                             f">= 8; got {tuple(x.shape)}")
        return self.model(x)

    def extra_repr(self) -> str:
        return f"n_blocks={self.n_blocks}, norm={self.norm!r}, upsample={self.upsample!r}"
