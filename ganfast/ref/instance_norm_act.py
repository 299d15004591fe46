"""Reference for ``instance_norm_act``: InstanceNorm then ReLU / LeakyReLU / nothing.

The definition of correct is the unfused torch.nn composition,
:func:`instance_norm_act` below: ``F.instance_norm`` (Ulyanov, Vedaldi &
Lempitsky 2016, "Instance Normalization: The Missing Ingredient for Fast
Stylization", eq. 2: each (sample, channel) plane normalised by its own
mean and biased variance) then ``F.leaky_relu`` with the slope the
activation maps to (:data:`SLOPES`), with ``F.instance_norm``'s
running-statistics semantics (the running mean and the running unbiased
variance move toward the batch averages of the per-plane statistics).

The torch backend of the op needs nothing more: an instance norm of
(N, C, *) is a batch norm of the (1, N*C, *) tensor, so the op layer runs
:mod:`ganfast.ref.batch_norm_act`'s host functions (and the Triton backend
``ganfast.kernels.batch_norm_act``'s) on that view.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

#: activation name -> the LeakyReLU slope that computes it (ReLU is slope 0, no activation is slope 1)
SLOPES = {"relu": 0.0, "leaky_relu": None, "linear": 1.0}


def slope_of(act: str, negative_slope: float) -> float:
    """The LeakyReLU slope of ``act`` (``negative_slope`` for ``"leaky_relu"``)."""
    s = SLOPES[act]
    return float(negative_slope) if s is None else s


def instance_norm_act(
    x: Tensor,
    running_mean: Optional[Tensor],
    running_var: Optional[Tensor],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    use_input_stats: bool,
    momentum: float,
    eps: float,
    negative_slope: float,
) -> Tensor:
    """``leaky_relu(F.instance_norm(x, ...), negative_slope)`` (slope 0: ReLU, 1: no activation).

    With ``use_input_stats=True`` the per-plane statistics normalise and the
    running statistics (if given) are updated in place, as
    ``nn.InstanceNorm2d(track_running_stats=True)`` does in training.
    """
    z = F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)
    return z if negative_slope == 1.0 else F.leaky_relu(z, negative_slope)
