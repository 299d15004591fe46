"""Pieces every network family shares: argument checks, spectral norm, weight initialisation.

No method logic and no kernels here: the fused layers come from
:mod:`ganfast.nn` and follow the global backend choice.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..._checks import TypeOrValueError, check_bool, check_choice, check_float, check_int, check_positive_int
from ...nn import MinibatchDiscrimination, MinibatchStdDev

Shape = Union[int, Sequence[int]]

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": lambda: nn.ELU(),
}
OUT_ACTIVATIONS = {None: None, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_SN_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


# ---------------------------------------------------------------------------
# argument checks (ganfast._checks; a wrong type is a TypeOrValueError: these networks raised
# ValueError for every bad argument before the project's convention, so both still catch it)

def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(value, name: str) -> int:
    return check_positive_int(value, name, type_error=TypeOrValueError)


def non_negative_int(value, name: str) -> int:
    return check_int(value, name, minimum=0, what="a non-negative int", type_error=TypeOrValueError)


def flag_arg(value, name: str) -> bool:
    return check_bool(value, name, type_error=TypeOrValueError)


def _int_sequence(value, name: str, requirement: str) -> Tuple[int, ...]:
    """A sequence of positive ints (not a string); TypeOrValueError for another type, ValueError for bad entries."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeOrValueError(f"{name} must be {requirement}; got {value!r}")
    if not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(f"{name} must be {requirement}; got {value!r}")
    return tuple(value)


def sample_shape_arg(value: Shape, name: str) -> Tuple[int, ...]:
    requirement = "a positive int or a non-empty sequence of positive ints"
    shape = _int_sequence((value,) if _is_int(value) else value, name, requirement)
    if not shape:
        raise ValueError(f"{name} must be {requirement}; got {value!r}")
    return shape


def widths_arg(value, name: str) -> Tuple[int, ...]:
    return _int_sequence(value, name, "a sequence of positive ints")


def half_open_unit(value, name: str, what: str) -> float:
    """A float in [0, 1) (a dropout probability, a LeakyReLU slope)."""
    value = check_float(value, name, minimum=0.0, what=what, type_error=TypeOrValueError)
    if not value < 1.0:
        raise ValueError(f"{name} must be {what}; got {value!r}")
    return value


def choice_arg(value, choices, name: str):
    return check_choice(value, name, sorted(choices, key=str), type_error=TypeOrValueError)


def embed_dim_arg(num_classes: int, embed_dim: Optional[int]) -> Optional[int]:
    non_negative_int(num_classes, "num_classes")
    if embed_dim is None:
        return None
    positive_int(embed_dim, "embed_dim")
    if num_classes == 0:
        raise ValueError(f"embed_dim is only used by a conditional network (num_classes > 0); got "
                         f"embed_dim={embed_dim!r} with num_classes=0")
    return embed_dim


def minibatch_discrimination_arg(value) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    requirement = "None or a pair (num_kernels, kernel_dim) of positive ints"
    pair = _int_sequence(value, "minibatch_discrimination", requirement)
    if len(pair) != 2:
        raise ValueError(f"minibatch_discrimination must be {requirement}; got {value!r}")
    return pair


def image_shape_arg(value) -> Tuple[int, int, int]:
    requirement = "(channels, height, width) of positive ints"
    shape = _int_sequence(value, "image_shape", requirement)
    if len(shape) != 3:
        raise ValueError(f"image_shape must be {requirement}; got {value!r}")
    c, h, w = shape
    if h != w or h < 8 or h & (h - 1):
        raise ValueError(f"image_shape must be square with a side that is a power of two >= 8; got {value!r}")
    return (c, h, w)


def widths_pair(width, max_width) -> None:
    positive_int(width, "width")
    positive_int(max_width, "max_width")
    if max_width < width:
        raise ValueError(f"max_width ({max_width}) must be >= width ({width})")


def attention_resolution(value, produced: Sequence[int]) -> Optional[int]:
    if value is None:
        return None
    if not _is_int(value) or value not in produced:
        raise ValueError(f"self_attention must be None or a resolution this network produces "
                         f"({', '.join(map(str, produced))}); got {value!r}")
    return value


def check_input(t, name: str, trailing: Tuple[int, ...]) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if t.dim() != 1 + len(trailing) or tuple(t.shape[1:]) != trailing or t.shape[0] == 0:
        want = ", ".join(["B"] + [str(d) for d in trailing])
        raise ValueError(f"{name} must have shape ({want}) with B >= 1; got {tuple(t.shape)}")


def check_labels(y, batch: int, num_classes: int) -> None:
    """Label checks shared by every network (a wrong type or dtype is a TypeOrValueError, the rest ValueError)."""
    if num_classes == 0:
        if y is not None:
            raise ValueError("y was given to an unconditional network (num_classes=0); build it with "
                             "num_classes > 0 to condition on labels, or pass y=None")
        return
    if y is None:
        raise ValueError(f"this network is conditional (num_classes={num_classes}): y, an int64 tensor of "
                         f"class labels of shape ({batch},), is required")
    if not isinstance(y, torch.Tensor):
        raise TypeOrValueError(f"y must be an int64 torch.Tensor of shape ({batch},); got {type(y).__name__}")
    if y.dtype != torch.int64:
        raise TypeOrValueError(f"y must be an int64 tensor of class labels; got dtype {y.dtype}")
    if y.shape != (batch,):
        raise ValueError(f"y must have shape ({batch},) (one label per sample); got {tuple(y.shape)}")
    # An out-of-range label is a device-side assert on a GPU (nn.Embedding) or a
    # silent wrong one-hot; the check costs one host sync, which a compiled
    # graph cannot take, so it is skipped while compiling.
    if not torch.compiler.is_compiling() and bool(((y < 0) | (y >= num_classes)).any()):
        raise ValueError(f"y must hold class labels in [0, {num_classes}); got values from "
                         f"{int(y.min())} to {int(y.max())}")


def apply_spectral_norm(module: nn.Module) -> None:
    # Collected first: parametrizing a module adds children while we walk.
    for m in [m for m in module.modules() if isinstance(m, _SN_TYPES)]:
        if not parametrize.is_parametrized(m, "weight"):
            _spectral_norm(m)


def sequential_of(pairs) -> nn.Sequential:
    return nn.Sequential(OrderedDict((k, v) for k, v in pairs if v is not None))


def describe_args(module: nn.Module, names: Sequence[str]) -> str:
    return ", ".join(f"{n}={getattr(module, n)!r}" for n in names)


def mlp_blocks(width: int, hidden: Sequence[int], *, activation: str, batch_norm: bool,
               dropout: float = 0.0) -> Tuple[nn.Sequential, int]:
    """``(blocks, output width)``: Linear [+ BatchNorm1d] + activation [+ Dropout] per hidden width.

    The Linear drops its bias under BatchNorm; the children are named
    ``linear``, ``bn``, ``act``, ``dropout`` (state_dict keys ``blocks.i.linear.weight``).
    """
    blocks = []
    for h in hidden:
        blocks.append(sequential_of([
            ("linear", nn.Linear(width, h, bias=not batch_norm)),
            ("bn", nn.BatchNorm1d(h) if batch_norm else None),
            ("act", ACTIVATIONS[activation]()),
            ("dropout", nn.Dropout(dropout) if dropout > 0 else None),
        ]))
        width = h
    return nn.Sequential(*blocks), width


def attach_label_embedding(net: nn.Module, num_classes: int, embed_dim: Optional[int], width: int) -> int:
    """Give a conditional ``net`` its ``embed`` (``nn.Embedding(num_classes, embed_dim or num_classes)``).

    Returns ``width`` plus the embedding's width (``width`` itself when unconditional).
    """
    if not num_classes:
        return width
    net.embed = nn.Embedding(num_classes, embed_dim or num_classes)
    return width + net.embed.embedding_dim


def attach_discriminator_head(net: nn.Module, features: int, minibatch_discrimination) -> None:
    """A discriminator's head on ``features``-wide features: ``feature_dim``, ``mbd`` (optional), ``head``.

    Minibatch discrimination (Salimans et al. 2016) appends its columns to the
    features, then one Linear scores each sample; see :func:`discriminator_head`.
    """
    net.feature_dim = features
    if minibatch_discrimination is not None:
        net.mbd = MinibatchDiscrimination(features, *minibatch_discrimination)
        features = net.mbd.out_features
    net.head = nn.Linear(features, 1)


def discriminator_head(net: nn.Module, features: torch.Tensor, return_features: bool):
    """Logits (B,) from the features of :func:`attach_discriminator_head`'s head, and the features when asked."""
    h = net.mbd(features) if net.minibatch_discrimination is not None else features
    logits = net.head(h).squeeze(1)
    return (logits, features) if return_features else logits


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


class AnyBatchStdDev(MinibatchStdDev):
    """``MinibatchStdDev`` whose group follows :func:`stddev_group_size`, so that any batch size runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = stddev_group_size(n, self.group_size)
        if g == min(self.group_size, n):
            return super().forward(x)
        # The layer has no state: a sibling with the group this batch needs computes the same statistic.
        return MinibatchStdDev(g, self.num_channels, self.eps, self.backend)(x)


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
    choice_arg(style, ("dcgan", "default"), "style")
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


def check_stddev_batch(batch: int, group_size: int, where: str) -> None:
    """Raise unless ``ganfast.nn.MinibatchStdDev(group_size)`` can group ``batch`` samples (``where`` names the source).

    Raises:
        ValueError: ``min(group_size, batch)`` does not divide ``batch``.
    """
    g = min(group_size, batch)
    if group_size > 1 and batch % g:
        raise ValueError(f"{where} {batch} is not divisible by the minibatch-stddev group min(mbstd_group_size, "
                         f"batch) = {g}: use a multiple of {g} (or -o mbstd_group_size=... dividing it)")

