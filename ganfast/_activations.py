"""The activation table of ``bias_act``: one row per activation, for every backend.

A leaf (imports nothing of ganfast): the reference (:mod:`ganfast.ref.bias_act`)
takes each row's torch functions, the Triton kernels (``kernels/bias_act.py``)
take the names, and the CUDA extension's ``kActNames`` (``csrc/bias_act.h``)
lists the same names in the same order (``tests/test_bias_act.py`` checks it).
Adding an activation is one row here plus a branch in each kernel's switch;
a name a kernel does not know raises there rather than falling through.

``prelu`` (He et al. 2015, "Delving Deep into Rectifiers", eq. 1) is
``leaky_relu`` whose slope is a learnable tensor, one value per channel (or
one shared), instead of the float ``negative_slope``: its row has
``channel_slope=True``, and ``alpha`` is then that tensor, already shaped to
broadcast against ``z``.  The CUDA extension implements the float-slope rows
only (:data:`SCALAR_SLOPE_NAMES`, its ``kActNames``); ``bias_act`` runs
``prelu`` on CUDA tensors through the Triton kernel.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

__all__ = ["ACTIVATIONS", "ALIASES", "Activation", "NAMES", "SCALAR_SLOPE_NAMES", "canonical_act", "has_grad2",
           "has_channel_slope"]


@dataclasses.dataclass(frozen=True)
class Activation:
    """One row of the activation table that drives every backend.

    ``fn(z, alpha)``      the activation.
    ``backward(g, z, alpha)``  g * act'(z), computed as torch's own backward
                          does (a select at kinks for relu / leaky_relu, a
                          product otherwise), so that NaN and inf land where
                          they land in torch.
    ``grad2(z, alpha)``   its second derivative, or ``None`` where it is zero
                          almost everywhere (piecewise linear acts): the
                          double backward then has no input term.
    ``channel_slope``     ``alpha`` is a learnable tensor broadcast against
                          ``z`` (prelu), not the float ``negative_slope``.
    """

    name: str
    fn: Callable[[Tensor, float], Tensor]
    backward: Callable[[Tensor, Tensor, float], Tensor]
    grad2: Optional[Callable[[Tensor, float], Tensor]]
    channel_slope: bool = False


def _relu_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    # torch: threshold_backward(g, relu(z), 0), zero where the *result* is <= 0
    # (so a NaN input passes the gradient through).
    return torch.where(torch.relu(z) <= 0, torch.zeros((), dtype=g.dtype, device=g.device), g)


def _lrelu_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    # torch: leaky_relu_backward, z > 0 ? g : g * slope.
    return torch.where(z > 0, g, g * alpha)


def _prelu(z: Tensor, alpha: Tensor) -> Tensor:
    # He et al. eq. 1, max(0, z) + a * min(0, z), written as torch.nn.functional.prelu computes it
    # (z > 0 ? z : a * z): the same numbers, and the same subgradient at 0 (slope a, and dz/da = z = 0).
    return torch.where(z > 0, z, z * alpha)


def _tanh_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    t = torch.tanh(z)
    return g * (1 - t * t)


def _tanh_grad2(z: Tensor, alpha: float) -> Tensor:
    t = torch.tanh(z)
    return -2 * t * (1 - t * t)


def _sigmoid_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return g * (s * (1 - s))


def _sigmoid_grad2(z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s) * (1 - 2 * s)


def _silu_backward(g: Tensor, z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return g * (s * (1 + z * (1 - s)))


def _silu_grad2(z: Tensor, alpha: float) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s) * (2 + z * (1 - 2 * s))


ACTIVATIONS: Dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("linear", lambda z, a: z, lambda g, z, a: g, None),
        Activation("relu", lambda z, a: torch.relu(z), _relu_backward, None),
        Activation("leaky_relu", lambda z, a: F.leaky_relu(z, a), _lrelu_backward, None),
        Activation("tanh", lambda z, a: torch.tanh(z), _tanh_backward, _tanh_grad2),
        Activation("sigmoid", lambda z, a: torch.sigmoid(z), _sigmoid_backward, _sigmoid_grad2),
        Activation("silu", lambda z, a: F.silu(z), _silu_backward, _silu_grad2),
        # Last, so that the float-slope rows keep their order (the CUDA extension's kActNames).
        Activation("prelu", _prelu, _lrelu_backward, None, channel_slope=True),
    )
}

#: Other names users write for the same activations.
ALIASES: Dict[str, str] = {"lrelu": "leaky_relu", "swish": "silu", "identity": "linear", "none": "linear"}


#: The canonical names: the float-slope ones in the order of the CUDA extension's ``kActNames``, then prelu.
NAMES: Tuple[str, ...] = tuple(ACTIVATIONS)

#: The rows whose slope is the float ``negative_slope``: what the CUDA
#: extension's ``kActNames`` lists, in its order.
SCALAR_SLOPE_NAMES: Tuple[str, ...] = tuple(n for n in NAMES if not ACTIVATIONS[n].channel_slope)


def canonical_act(act: str) -> str:
    """The table name for ``act`` (aliases resolved), or a ValueError."""
    if not isinstance(act, str):
        raise TypeError(f"act must be a string; got {type(act).__name__}")
    name = ALIASES.get(act.lower(), act.lower())
    if name not in ACTIVATIONS:
        valid = sorted(ACTIVATIONS) + sorted(ALIASES)
        raise ValueError(f"act must be one of {valid}; got {act!r}")
    return name


def has_grad2(act: str) -> bool:
    """Whether ``act``'s second derivative is non-zero somewhere."""
    return ACTIVATIONS[canonical_act(act)].grad2 is not None


def has_channel_slope(act: str) -> bool:
    """Whether ``act`` takes a tensor slope (``alpha``) rather than the float ``negative_slope``."""
    return ACTIVATIONS[canonical_act(act)].channel_slope
