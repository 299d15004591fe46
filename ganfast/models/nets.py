"""Generator and discriminator networks shared by the GAN variants.

Four networks: :class:`MLPGenerator` / :class:`MLPDiscriminator` (the
fully connected nets of Goodfellow et al. 2014) and :class:`ConvGenerator` /
:class:`ConvDiscriminator` (DCGAN, Radford et al. 2015), each optionally
class-conditional (cGAN, Mirza & Osindero 2014), spectrally normalised
(Miyato et al. 2018), with SAGAN self-attention (Zhang et al. 2019) and the
minibatch layers of Salimans et al. 2016 and Karras et al. 2018.

Conventions the variants rely on:

* generators: ``forward(z, y=None)``; discriminators:
  ``forward(x, y=None, *, return_features=False)`` -> logits of shape (B,),
  or ``(logits, features)`` with features of shape (B, ``feature_dim``), the
  representation the final linear layer reads (before any minibatch
  discrimination columns are appended).
* ``num_classes > 0`` makes a network conditional: ``y`` (int64, shape (B,))
  is then required; a ``y`` for an unconditional network is an error.
* Conv blocks live in a ``blocks`` ``nn.Sequential``; every block's
  convolution is its child ``conv`` whether the block is a fused
  ``ganfast.nn`` layer (``batch_norm=True``) or an ``nn.Sequential`` of
  ``conv`` and ``act``, so the state_dict keys have the same shape either
  way (``blocks.1.conv.weight``, ``blocks.1.bn.running_mean``) and match a
  plain torch.nn network built with the same names.
* ``spectral_norm=True`` parametrizes every Linear / Conv2d /
  ConvTranspose2d weight with ``torch.nn.utils.parametrizations.spectral_norm``
  (keys ``...conv.parametrizations.weight.original``, ``..._u``, ``..._v``).

This module knows nothing of kernels or backends: the fused layers follow
the global choice (:func:`ganfast.use_backend`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..nn import (
    ConvBNLeakyReLU2d,
    ConvTransposeBNReLU2d,
    MinibatchDiscrimination,
    MinibatchStdDev,
    SelfAttention2d,
)

__all__ = [
    "MLPGenerator",
    "MLPDiscriminator",
    "ConvGenerator",
    "ConvDiscriminator",
    "init_weights",
    "count_parameters",
    "stddev_group_size",
]

Shape = Union[int, Sequence[int]]

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": lambda: nn.ELU(),
}
_OUT_ACTIVATIONS = {None: None, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_SN_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


# ---------------------------------------------------------------------------
# argument checks

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value, name: str) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def _non_negative_int(value, name: str) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative int; got {value!r}")
    return value


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False; got {value!r}")
    return value


def _shape(value: Shape, name: str) -> Tuple[int, ...]:
    shape = (value,) if _is_int(value) else value
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0 \
            or not all(_is_int(v) and v >= 1 for v in shape):
        raise ValueError(f"{name} must be a positive int or a non-empty sequence of positive ints; got {value!r}")
    return tuple(shape)


def _widths(value, name: str) -> Tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
            or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(f"{name} must be a sequence of positive ints; got {value!r}")
    return tuple(value)


def _choice(value, choices, name: str):
    if not isinstance(value, (str, type(None))) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices, key=str)}; got {value!r}")
    return value


def _embed_dim(num_classes: int, embed_dim: Optional[int]) -> Optional[int]:
    _non_negative_int(num_classes, "num_classes")
    if embed_dim is None:
        return None
    _positive_int(embed_dim, "embed_dim")
    if num_classes == 0:
        raise ValueError(f"embed_dim is only used by a conditional network (num_classes > 0); got "
                         f"embed_dim={embed_dim!r} with num_classes=0")
    return embed_dim


def _minibatch_discrimination(value) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2 \
            or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(f"minibatch_discrimination must be None or a pair (num_kernels, kernel_dim) of "
                         f"positive ints; got {value!r}")
    return tuple(value)


def _image_shape(value) -> Tuple[int, int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3 \
            or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(f"image_shape must be (channels, height, width) of positive ints; got {value!r}")
    c, h, w = value
    if h != w or h < 8 or h & (h - 1):
        raise ValueError(f"image_shape must be square with a side that is a power of two >= 8; got {value!r}")
    return (c, h, w)


def _widths_pair(width, max_width) -> None:
    _positive_int(width, "width")
    _positive_int(max_width, "max_width")
    if max_width < width:
        raise ValueError(f"max_width ({max_width}) must be >= width ({width})")


def _attention_resolution(value, produced: Sequence[int]) -> Optional[int]:
    if value is None:
        return None
    if not _is_int(value) or value not in produced:
        raise ValueError(f"self_attention must be None or a resolution this network produces "
                         f"({', '.join(map(str, produced))}); got {value!r}")
    return value


def _check_input(t, name: str, trailing: Tuple[int, ...]) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.dim() != 1 + len(trailing) or tuple(t.shape[1:]) != trailing or t.shape[0] == 0:
        want = ", ".join(["B"] + [str(d) for d in trailing])
        raise ValueError(f"{name} must have shape ({want}) with B >= 1; got {tuple(t.shape)}")


def _check_labels(y, batch: int, num_classes: int) -> None:
    """Label checks shared by every network (the error is a ValueError in every case)."""
    if num_classes == 0:
        if y is not None:
            raise ValueError("y was given to an unconditional network (num_classes=0); build it with "
                             "num_classes > 0 to condition on labels, or pass y=None")
        return
    if y is None:
        raise ValueError(f"this network is conditional (num_classes={num_classes}): y, an int64 tensor of "
                         f"class labels of shape ({batch},), is required")
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"y must be an int64 torch.Tensor of shape ({batch},); got {type(y).__name__}")
    if y.dtype != torch.int64:
        raise ValueError(f"y must be an int64 tensor of class labels; got dtype {y.dtype}")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape ({batch},) (one label per sample); got {tuple(y.shape)}")
    # An out-of-range label is a device-side assert on a GPU (nn.Embedding) or a
    # silent wrong one-hot; the check costs one host sync, which a compiled
    # graph cannot take, so it is skipped while compiling.
    if not torch.compiler.is_compiling() and bool(((y < 0) | (y >= num_classes)).any()):
        raise ValueError(f"y must hold class labels in [0, {num_classes}); got values from "
                         f"{int(y.min())} to {int(y.max())}")


def _apply_spectral_norm(module: nn.Module) -> None:
    # Collected first: parametrizing a module adds children while we walk.
    for m in [m for m in module.modules() if isinstance(m, _SN_TYPES)]:
        if not parametrize.is_parametrized(m, "weight"):
            _spectral_norm(m)


def _layers(pairs) -> nn.Sequential:
    return nn.Sequential(OrderedDict((k, v) for k, v in pairs if v is not None))


def _describe(module: nn.Module, names: Sequence[str]) -> str:
    return ", ".join(f"{n}={getattr(module, n)!r}" for n in names)


def stddev_group_size(batch: int, group_size: int = 4) -> int:
    """The group the discriminators' minibatch-stddev layer uses for ``batch`` samples.

    ``ganfast.nn.MinibatchStdDev`` needs the group ``min(group_size, batch)``
    to divide the batch.  Here the group is the largest divisor of the batch
    in ``[2, group_size]``, and when there is none (a prime batch larger than
    ``group_size``) the whole batch: a group of one sample has no spread and
    would turn the layer into a constant.  So 8 -> 4, 6 -> 3, 10 -> 2, 5 -> 5,
    3 -> 3, 1 -> 1.
    """
    for g in range(min(group_size, batch), 1, -1):
        if batch % g == 0:
            return g
    return batch


class _AnyBatchStdDev(MinibatchStdDev):
    """``MinibatchStdDev`` whose group follows :func:`stddev_group_size`, so that any batch size runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = stddev_group_size(n, self.group_size)
        if g == min(self.group_size, n):
            return super().forward(x)
        # The layer has no state: a sibling with the group this batch needs computes the same statistic.
        return MinibatchStdDev(g, self.num_channels, self.eps, self.backend)(x)


# ---------------------------------------------------------------------------
# fully connected networks

class MLPGenerator(nn.Module):
    """Fully connected generator: ``z [+ label embedding] -> hidden layers -> Linear -> (B, *out_shape)``.

    Args:
        latent_dim: width of ``z``.
        out_shape: shape of one sample (an int or a tuple, e.g. ``(1, 28, 28)``).
        hidden: width of each hidden Linear layer.
        num_classes: > 0 for a conditional generator; ``y`` is embedded by
            ``nn.Embedding(num_classes, embed_dim or num_classes)`` and
            concatenated to ``z``.
        embed_dim: see num_classes.
        activation: ``"relu"``, ``"leaky_relu"`` (slope 0.2) or ``"elu"``.
        batch_norm: BatchNorm1d after each hidden Linear (whose bias is then dropped).
        out_activation: ``"tanh"``, ``"sigmoid"`` or None.
        spectral_norm: spectral norm on every Linear weight.
    """

    _args = ("latent_dim", "out_shape", "hidden", "num_classes", "embed_dim", "activation", "batch_norm",
             "out_activation", "spectral_norm")

    def __init__(self, latent_dim: int, out_shape: Shape, hidden: Sequence[int] = (128, 128), *,
                 num_classes: int = 0, embed_dim: Optional[int] = None, activation: str = "relu",
                 batch_norm: bool = False, out_activation: Optional[str] = None,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.out_shape = _shape(out_shape, "out_shape")
        self.hidden = _widths(hidden, "hidden")
        self.embed_dim = _embed_dim(num_classes, embed_dim)
        self.num_classes = num_classes
        self.activation = _choice(activation, _ACTIVATIONS, "activation")
        self.batch_norm = _flag(batch_norm, "batch_norm")
        self.out_activation = _choice(out_activation, _OUT_ACTIVATIONS, "out_activation")
        self.spectral_norm = _flag(spectral_norm, "spectral_norm")

        width = latent_dim
        if num_classes:
            self.embed = nn.Embedding(num_classes, embed_dim or num_classes)
            width += self.embed.embedding_dim
        blocks = []
        for h in self.hidden:
            blocks.append(_layers([
                ("linear", nn.Linear(width, h, bias=not batch_norm)),
                ("bn", nn.BatchNorm1d(h) if batch_norm else None),
                ("act", _ACTIVATIONS[activation]()),
            ]))
            width = h
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.Linear(width, math.prod(self.out_shape))
        out_act = _OUT_ACTIVATIONS[out_activation]
        self.out_act = out_act() if out_act is not None else nn.Identity()
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_input(z, "z", (self.latent_dim,))
        _check_labels(y, z.shape[0], self.num_classes)
        if self.num_classes:
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        out = self.out_act(self.output(self.blocks(z)))
        return out.view(z.shape[0], *self.out_shape)

    def extra_repr(self) -> str:
        return _describe(self, self._args)


class MLPDiscriminator(nn.Module):
    """Fully connected discriminator: ``x flattened [+ label embedding] -> hidden layers -> Linear -> (B,)``.

    Args:
        in_shape: shape of one sample (an int or a tuple).
        hidden: width of each hidden Linear layer; the last one is ``feature_dim``
            (the input width, embedding included, when ``hidden`` is empty).
        num_classes, embed_dim: conditioning as in :class:`MLPGenerator`.
        activation: ``"leaky_relu"`` (slope 0.2), ``"relu"`` or ``"elu"``.
        batch_norm: BatchNorm1d after each hidden Linear.
        dropout: dropout probability after each hidden activation.
        spectral_norm: spectral norm on every Linear weight.
        minibatch_discrimination: None or ``(num_kernels, kernel_dim)``: a
            :class:`ganfast.nn.MinibatchDiscrimination` between the features
            and the final Linear.

    Attributes:
        feature_dim: width of the features ``forward(..., return_features=True)`` returns.
    """

    _args = ("in_shape", "hidden", "num_classes", "embed_dim", "activation", "batch_norm", "dropout",
             "spectral_norm", "minibatch_discrimination")

    def __init__(self, in_shape: Shape, hidden: Sequence[int] = (128, 128), *, num_classes: int = 0,
                 embed_dim: Optional[int] = None, activation: str = "leaky_relu", batch_norm: bool = False,
                 dropout: float = 0.0, spectral_norm: bool = False,
                 minibatch_discrimination: Optional[Tuple[int, int]] = None) -> None:
        super().__init__()
        self.in_shape = _shape(in_shape, "in_shape")
        self.hidden = _widths(hidden, "hidden")
        self.embed_dim = _embed_dim(num_classes, embed_dim)
        self.num_classes = num_classes
        self.activation = _choice(activation, _ACTIVATIONS, "activation")
        self.batch_norm = _flag(batch_norm, "batch_norm")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1); got {dropout!r}")
        self.dropout = float(dropout)
        self.spectral_norm = _flag(spectral_norm, "spectral_norm")
        self.minibatch_discrimination = _minibatch_discrimination(minibatch_discrimination)

        width = math.prod(self.in_shape)
        if num_classes:
            self.embed = nn.Embedding(num_classes, embed_dim or num_classes)
            width += self.embed.embedding_dim
        blocks = []
        for h in self.hidden:
            blocks.append(_layers([
                ("linear", nn.Linear(width, h, bias=not batch_norm)),
                ("bn", nn.BatchNorm1d(h) if batch_norm else None),
                ("act", _ACTIVATIONS[activation]()),
                ("dropout", nn.Dropout(self.dropout) if self.dropout > 0 else None),
            ]))
            width = h
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = width
        if self.minibatch_discrimination is not None:
            self.mbd = MinibatchDiscrimination(width, *self.minibatch_discrimination)
            width = self.mbd.out_features
        self.head = nn.Linear(width, 1)
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, *, return_features: bool = False):
        _check_input(x, "x", self.in_shape)
        _check_labels(y, x.shape[0], self.num_classes)
        h = x.flatten(1)
        if self.num_classes:
            h = torch.cat([h, self.embed(y).to(h.dtype)], dim=1)
        features = self.blocks(h)
        h = self.mbd(features) if self.minibatch_discrimination is not None else features
        logits = self.head(h).squeeze(1)
        return (logits, features) if return_features else logits

    def extra_repr(self) -> str:
        return _describe(self, self._args) + f", feature_dim={self.feature_dim}"


# ---------------------------------------------------------------------------
# DCGAN networks

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
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.image_shape = _image_shape(image_shape)
        _widths_pair(width, max_width)
        self.width, self.max_width = width, max_width
        self.embed_dim = _embed_dim(num_classes, embed_dim)
        self.num_classes = num_classes
        self.batch_norm = _flag(batch_norm, "batch_norm")
        self.spectral_norm = _flag(spectral_norm, "spectral_norm")
        channels, size, _ = self.image_shape
        resolutions = [4 << i for i in range(int(math.log2(size)) - 2)]  # 4, 8, ..., H/2
        self.self_attention = _attention_resolution(self_attention, resolutions)

        in_ch = latent_dim
        if num_classes:
            self.embed = nn.Embedding(num_classes, embed_dim or num_classes)
            in_ch += self.embed.embedding_dim
        blocks = []
        for r in resolutions:
            out_ch = min(max_width, width * (size // 2) // r)
            k, s, p = (4, 1, 0) if r == 4 else (4, 2, 1)
            if batch_norm:
                blocks.append(ConvTransposeBNReLU2d(in_ch, out_ch, k, s, p, bias=False))
            else:
                blocks.append(_layers([("conv", nn.ConvTranspose2d(in_ch, out_ch, k, s, p, bias=True)),
                                       ("act", nn.ReLU())]))
            if r == self.self_attention:
                blocks.append(SelfAttention2d(out_ch))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.ConvTranspose2d(in_ch, channels, 4, 2, 1, bias=True)
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        _check_input(z, "z", (self.latent_dim,))
        _check_labels(y, z.shape[0], self.num_classes)
        if self.num_classes:
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        return torch.tanh(self.output(self.blocks(z[:, :, None, None])))

    def extra_repr(self) -> str:
        return _describe(self, self._args)


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
        self.image_shape = _image_shape(image_shape)
        _widths_pair(width, max_width)
        self.width, self.max_width = width, max_width
        self.num_classes = _non_negative_int(num_classes, "num_classes")
        self.batch_norm = _flag(batch_norm, "batch_norm")
        self.spectral_norm = _flag(spectral_norm, "spectral_norm")
        self.minibatch_stddev = _flag(minibatch_stddev, "minibatch_stddev")
        self.minibatch_discrimination = _minibatch_discrimination(minibatch_discrimination)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)) \
                or not 0.0 <= negative_slope < 1.0:
            raise ValueError(f"negative_slope must be a float in [0, 1); got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        channels, size, _ = self.image_shape
        resolutions = [size >> i for i in range(1, int(math.log2(size)) - 1)]  # H/2, ..., 4
        self.self_attention = _attention_resolution(self_attention, resolutions)

        in_ch = channels + num_classes
        blocks = []
        for r in resolutions:
            out_ch = min(max_width, width * (size // 2) // r)
            if batch_norm and r != size // 2:
                blocks.append(ConvBNLeakyReLU2d(in_ch, out_ch, 4, 2, 1, bias=False,
                                                negative_slope=self.negative_slope))
            else:
                blocks.append(_layers([("conv", nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=True)),
                                       ("act", nn.LeakyReLU(self.negative_slope))]))
            if r == self.self_attention:
                blocks.append(SelfAttention2d(out_ch))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        if minibatch_stddev:
            self.stddev = _AnyBatchStdDev(group_size=4)
            in_ch += self.stddev.num_channels
        self.feature_dim = in_ch * 4 * 4
        width_in = self.feature_dim
        if self.minibatch_discrimination is not None:
            self.mbd = MinibatchDiscrimination(width_in, *self.minibatch_discrimination)
            width_in = self.mbd.out_features
        self.head = nn.Linear(width_in, 1)
        if spectral_norm:
            _apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, *, return_features: bool = False):
        _check_input(x, "x", self.image_shape)
        _check_labels(y, x.shape[0], self.num_classes)
        if self.num_classes:
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)
        h = self.blocks(x)
        if self.minibatch_stddev:
            h = self.stddev(h)
        features = h.flatten(1)
        h = self.mbd(features) if self.minibatch_discrimination is not None else features
        logits = self.head(h).squeeze(1)
        return (logits, features) if return_features else logits

    def extra_repr(self) -> str:
        return _describe(self, self._args) + f", feature_dim={self.feature_dim}"


# ---------------------------------------------------------------------------
# utilities

def _weight_tensor(module: nn.Module) -> torch.Tensor:
    """The stored weight: under a parametrization (spectral norm), the ``original`` it reads."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def _rewarm_spectral_norm(module: nn.Module) -> None:
    """Re-converge spectral norm's power iteration after its weight was redrawn.

    The u / v vectors were estimated for the weight drawn at construction;
    without this, the first steps in train mode (one iteration per forward)
    and any eval forward would divide by a stale sigma.
    """
    if not parametrize.is_parametrized(module, "weight"):
        return
    original = module.parametrizations.weight.original
    for p in module.parametrizations.weight:
        if hasattr(p, "_power_method") and hasattr(p, "_reshape_weight_to_matrix"):
            with torch.no_grad():
                p._power_method(p._reshape_weight_to_matrix(original), 15)


def init_weights(module: nn.Module, style: str = "dcgan") -> nn.Module:
    """Initialise ``module``'s weights in place; returns ``module``.

    ``"dcgan"`` (Radford et al. 2015): every Linear / Conv2d / ConvTranspose2d
    weight from N(0, 0.02) and bias 0; every BatchNorm weight from N(1, 0.02)
    and bias 0.  The fused layers' ``conv`` / ``bn`` children and the
    attention projections are included; spectral-norm-parametrized weights
    get their ``original`` redrawn and their power iteration re-converged.
    Embeddings, ``SelfAttention2d.gamma`` (0: the block starts as the
    identity) and ``MinibatchDiscrimination.T`` (scaled for its distances)
    keep their own initialisation.  ``"default"`` leaves torch's.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module; got {type(module).__name__}")
    _choice(style, ("dcgan", "default"), "style")
    if style == "default":
        return module
    for m in module.modules():
        if isinstance(m, _SN_TYPES):
            nn.init.normal_(_weight_tensor(m), 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            _rewarm_spectral_norm(m)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``module`` (spectral norm's u / v are buffers, not counted)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module; got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
