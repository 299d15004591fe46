"""Exponential moving average of a generator's weights.

Sampling from a running average of the generator's parameters (Polyak
averaging) gives visibly better and steadier samples and lower FID than the
raw weights, which oscillate around the equilibrium the two players chase
(Yazici et al. 2019, "The Unusual Effectiveness of Averaging in GAN
Training"; Karras et al. use it in ProGAN and StyleGAN).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["EMA"]


def _pairs(named_ema, named_model, what: str) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Match tensors by name; the two modules must have exactly the same names."""
    ema = dict(named_ema)
    model = dict(named_model)
    if ema.keys() != model.keys():
        only_model = sorted(model.keys() - ema.keys())
        only_ema = sorted(ema.keys() - model.keys())
        raise ValueError(
            f"EMA and model {what} differ: only in the model {only_model[:5]}, only in the EMA {only_ema[:5]}; "
            "the model passed to update() must have the structure the EMA was built from"
        )
    return [(ema[name], model[name]) for name in ema]


class EMA:
    """An averaged copy of ``model``: ``ema = d * ema + (1 - d) * param`` after every step.

    ``module`` is a deep copy of the model with gradients off.  Its train or
    eval mode is left as the model's was: the caller decides (eval for
    sampling, usually).

    Parameters are averaged; buffers (BatchNorm running statistics,
    spectral-norm ``u``/``v`` vectors, step counters) are copied, because an
    average of power-iteration vectors or of integer counters means nothing.
    Spectral-norm parametrizations are handled by name like any other
    parameter (``...parametrizations.weight.original``).

    With ``warmup`` the decay is ``min(decay, (1 + n) / (10 + n))`` for the
    ``n``-th update (n counted from 0), so the first updates follow the
    model closely instead of dragging in its random initialisation for
    thousands of steps.

    With ``rampup`` (StyleGAN2-ADA's ``ema_rampup``, 0.05 there) the
    average's half-life, ``log(0.5) / log(decay)`` updates, is capped at
    ``rampup * n`` on the n-th update, so it grows with the run: the decay
    is ``0.5 ** (1 / min(half_life, rampup * n))`` (0 on the first update).
    ``warmup`` and ``rampup`` combine by taking the smaller decay.

    The average is kept in the model's dtype, on the model's device.  For a
    bf16 model the per-step increment ``(1 - d) * (p - ema)`` is often below
    bf16's resolution at ``ema`` and is lost; keep the master weights in
    float32 (autocast, not ``.bfloat16()``) to average them properly.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True,
                 rampup: Optional[float] = None) -> None:
        if not 0.0 <= float(decay) <= 1.0:
            raise ValueError(f"decay must lie in [0, 1], got {decay}")
        if rampup is not None and not (isinstance(rampup, (int, float)) and rampup > 0):
            raise ValueError(f"rampup must be None or a number > 0, got {rampup!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.rampup = float(rampup) if rampup is not None else None
        self.num_updates = 0
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next ``update`` will use."""
        n = self.num_updates
        d = self.decay
        if self.warmup:
            d = min(d, (1.0 + n) / (10.0 + n))
        if self.rampup is not None and 0.0 < self.decay < 1.0:
            half_life = math.log(0.5) / math.log(self.decay)
            capped = min(half_life, self.rampup * n)
            d = min(d, 0.5 ** (1.0 / capped) if capped > 0 else 0.0)
        return d

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold ``model``'s current parameters into the average and copy its buffers."""
        d = self.current_decay()
        params = _pairs(self.module.named_parameters(), model.named_parameters(), "parameters")
        lerp_ema, lerp_model = [], []
        for e, p in params:
            if e.is_floating_point() or e.is_complex():
                lerp_ema.append(e)
                lerp_model.append(p.detach())
            else:
                e.copy_(p)
        if lerp_ema:
            # One multi-tensor kernel instead of one launch per parameter.
            torch._foreach_lerp_(lerp_ema, lerp_model, 1.0 - d)
        for e, b in _pairs(self.module.named_buffers(), model.named_buffers(), "buffers"):
            e.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> Dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "num_updates": self.num_updates,
            "decay": self.decay,
            "warmup": self.warmup,
            "rampup": self.rampup,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the average, the update count and (when present) decay and warmup, as saved."""
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
        if "decay" in state:
            self.decay = float(state["decay"])
        if "warmup" in state:
            self.warmup = bool(state["warmup"])
        if "rampup" in state:
            self.rampup = None if state["rampup"] is None else float(state["rampup"])

    def __repr__(self) -> str:
        return (f"EMA(decay={self.decay}, warmup={self.warmup}, rampup={self.rampup}, "
                f"num_updates={self.num_updates})")
