"""SRGAN's networks (Ledig et al. 2017, Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network, CVPR; arXiv:1609.04802, Fig. 4), and VGG19's feature layers for its content loss.

* :class:`SRResNetGenerator`: ``Conv9x9 -> PReLU``, ``n_blocks`` residual
  blocks ``x + [Conv3x3 -> BN -> PReLU -> Conv3x3 -> BN](x)``, ``Conv3x3 -> BN``
  plus the skip from the first layer, ``log2(scale)`` stages of
  ``Conv3x3 (C -> 4C) -> PixelShuffle(2) -> PReLU``, ``Conv9x9`` to the image
  channels (no output activation, as in Fig. 4).  Paper: 16 blocks of 64
  channels, x4 (two PixelShuffle stages).  PReLU has one learnable slope per
  channel (``nn.PReLU(C)``, initialised to 0.25).
* :class:`SRDiscriminator`: ``Conv3x3 -> LeakyReLU(0.2)``, then seven
  ``Conv3x3 -> BN -> LeakyReLU(0.2)`` layers with strides 2, 1, 2, 1, 2, 1, 2 and
  64, 128, 128, 256, 256, 512, 512 channels (doubling every second layer, each
  doubling after a stride-2 one), then ``Dense(1024) -> LeakyReLU(0.2) ->
  Dense(1)``: one logit per image.
* :class:`VGG19Features`: torchvision's ``vgg19().features`` (configuration
  "E" of Simonyan & Zisserman 2015) up to a chosen layer, with torchvision's
  state_dict keys (``features.0.weight`` ...), so torchvision's ImageNet weights
  file loads into it without torchvision installed.  Nothing downloads.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import positive_int

__all__ = ["SRResNetGenerator", "SRDiscriminator", "VGG19Features", "VGG19_LAYERS", "VGG19_WEIGHTS_FILE"]

#: the file torchvision's ``VGG19_Weights.IMAGENET1K_V1`` downloads (the error for a missing file names it)
VGG19_WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _vgg19_layer_names():
    names, block, conv = [], 1, 0
    for v in _VGG19_CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 0
        else:
            conv += 1
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
    return names


#: torchvision's ``features`` index of each VGG19 layer by name (``relu5_4`` is 35: the SRGAN paper's phi_5,4)
VGG19_LAYERS = {name: i for i, name in enumerate(_vgg19_layer_names())}


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                   nn.PReLU(width), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class SRResNetGenerator(nn.Module):
    """SRResNet (Ledig et al. 2017, Fig. 4 top): ``(B, C, h, w)`` -> ``(B, C, scale h, scale w)``, unbounded.

    Args:
        channels: image channels, >= 1.
        width: feature channels (64 in the paper).
        n_blocks: residual blocks (16 in the paper), >= 1.
        scale: upscaling factor, a power of two >= 2 (4 in the paper: two PixelShuffle(2) stages).
        residual: add the bicubic upsampling of the input to the output, the last convolution initialised to
            zero, so the network learns the residual over bicubic interpolation (Kim, Lee & Lee 2016, VDSR,
            sec. 3.2); not in SRGAN's paper (default False).

    Raises:
        ValueError: a non-positive size, a ``scale`` that is not a power of two >= 2; in ``forward``, an input
            that is not ``(B, channels, h, w)``.
    """

    def __init__(self, channels: int = 3, width: int = 64, n_blocks: int = 16, scale: int = 4,
                 residual: bool = False) -> None:
        super().__init__()
        self.residual = bool(residual)
        self.channels = positive_int(channels, "channels")
        self.width = positive_int(width, "width")
        self.n_blocks = positive_int(n_blocks, "n_blocks")
        self.scale = positive_int(scale, "scale")
        if self.scale < 2 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two >= 2 (PixelShuffle(2) stages); got {scale!r}")
        w = self.width
        self.head = nn.Sequential(nn.Conv2d(self.channels, w, 9, padding=4), nn.PReLU(w))
        self.blocks = nn.Sequential(*[_ResidualBlock(w) for _ in range(self.n_blocks)])
        self.trunk_end = nn.Sequential(nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w))
        up = []
        for _ in range(int(math.log2(self.scale))):
            up += [nn.Conv2d(w, 4 * w, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(w)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(w, self.channels, 9, padding=4)
        if self.residual:  # start exactly at the bicubic upsampling
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SRResNetGenerator takes (B, {self.channels}, h, w); got {tuple(x.shape)}")
        h = self.head(x)
        out = self.tail(self.upsample(h + self.trunk_end(self.blocks(h))))
        if self.residual:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return out


class SRDiscriminator(nn.Module):
    """SRGAN's discriminator (Ledig et al. 2017, Fig. 4 bottom): ``(B, C, H, H)`` -> logits ``(B,)``.

    Args:
        channels: image channels, >= 1.
        side: H = W of its input (96 in the paper), a multiple of 16 (four stride-2 layers).
        width: channels of the first layer (64); the last has ``8 * width``.
        dense: width of the hidden dense layer (1024).

    Raises:
        ValueError: bad sizes; in ``forward``, an input of another shape.
    """

    def __init__(self, channels: int = 3, side: int = 96, width: int = 64, dense: int = 1024) -> None:
        super().__init__()
        self.channels = positive_int(channels, "channels")
        self.side = positive_int(side, "side")
        self.width = positive_int(width, "width")
        if self.side % 16:
            raise ValueError(f"SRDiscriminator needs a side that is a multiple of 16 (four stride-2 layers); got "
                             f"{side!r}")
        w = self.width
        layers = [nn.Conv2d(self.channels, w, 3, padding=1), nn.LeakyReLU(0.2, True)]
        c = w
        for k, (out, stride) in enumerate(zip([w, 2 * w, 2 * w, 4 * w, 4 * w, 8 * w, 8 * w], [2, 1, 2, 1, 2, 1, 2])):
            layers += [nn.Conv2d(c, out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.LeakyReLU(0.2, True)]
            c = out
        self.features = nn.Sequential(*layers)
        s = self.side // 16
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * s * s, positive_int(dense, "dense")),
                                  nn.LeakyReLU(0.2, True), nn.Linear(dense, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.side, self.side):
            raise ValueError(f"SRDiscriminator takes (B, {self.channels}, {self.side}, {self.side}); got "
                             f"{tuple(x.shape)}")
        return self.head(self.features(x)).squeeze(1)


class VGG19Features(nn.Module):
    """VGG19's convolutional layers up to and including ``layer`` (default ``relu5_4``), frozen.

    ``forward(x)`` takes images in [-1, 1], ``(B, 3, H, W)`` (a 1-channel image
    is repeated to 3), maps them to [0, 1] and normalises them with ImageNet's
    mean and std as torchvision's weights expect, and returns the layer's
    feature maps.

    Args:
        weights: path of torchvision's VGG19 state dict (``vgg19-dcbb9e9d.pth``; keys ``features.*`` and
            ``classifier.*``, the classifier's are ignored), or None for random weights (tests only).
        layer: a name of :data:`VGG19_LAYERS` (``relu5_4``: the paper's phi_5,4; ``relu2_2``: phi_2,2).

    Raises:
        FileNotFoundError: ``weights`` does not exist (the message says which file to get and where).
        ValueError: an unknown ``layer``; a weights file that cannot be read or lacks the VGG19 feature keys.
    """

    def __init__(self, weights=None, layer: str = "relu5_4") -> None:
        super().__init__()
        if layer not in VGG19_LAYERS:
            raise ValueError(f"unknown VGG19 layer {layer!r}; choices: {', '.join(VGG19_LAYERS)}")
        self.layer = layer
        mods, c = [], 3
        for v in _VGG19_CFG:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*mods[:VGG19_LAYERS[layer] + 1])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        if weights is not None:
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"VGG19 weights file {path} does not exist: get torchvision's ImageNet VGG19 weights "
                    f"({VGG19_WEIGHTS_FILE}, torchvision.models.VGG19_Weights.IMAGENET1K_V1) on a machine with "
                    f"network access and pass its path (ganfast train -o vgg_weights=PATH); nothing downloads")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # a truncated or foreign file: pickle, zip and torch errors alike
                raise ValueError(f"{path} is not a readable torch state dict ({type(err).__name__}: {err}); "
                                 f"expected torchvision's {VGG19_WEIGHTS_FILE}") from None
            if not isinstance(state, dict):
                raise ValueError(f"{path} holds a {type(state).__name__}, not torchvision's VGG19 state dict")
            feats = {k: v for k, v in state.items() if k.startswith("features.")}
            own = self.state_dict()
            missing = [k for k in own if k not in feats]
            if missing:
                raise ValueError(f"{path} is not torchvision's VGG19 state dict: it lacks {missing[:3]}")
            self.load_state_dict({k: feats[k] for k in own})
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # a fixed feature extractor: never in training mode

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"VGG19Features takes (B, 1 or 3, H, W) images in [-1, 1]; got {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.features(x)
