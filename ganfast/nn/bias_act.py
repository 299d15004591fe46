"""``BiasAct``: a learnable per-channel bias followed by an activation, fused."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import _backend
from ..ops.bias_act import bias_act
from ..ref.bias_act import canonical_act


class BiasAct(nn.Module):
    """``clamp(act(x + bias) * gain, -clamp, clamp)`` with a learnable bias.

    Args:
        num_channels: length of the bias (the size of ``x`` along ``dim``);
            required when ``bias=True``.
        act, negative_slope, gain, clamp, dim: as :func:`ganfast.ops.bias_act`.
        bias: learn a bias (initialised to ``bias_init``) or apply the
            activation alone.
        bias_init: initial value of the bias.
        backend: ``"auto"`` follows the global choice
            (:func:`ganfast.use_backend`); a backend name pins this layer to it.

    The state_dict holds ``bias`` only (when ``bias=True``).
    """

    def __init__(
        self,
        num_channels: Optional[int] = None,
        act: str = "leaky_relu",
        negative_slope: float = 0.2,
        gain: float = 1.0,
        clamp: Optional[float] = None,
        dim: int = 1,
        bias: bool = True,
        bias_init: float = 0.0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.act = canonical_act(act)
        self.negative_slope = float(negative_slope)
        self.gain = float(gain)
        self.clamp = None if clamp is None else float(clamp)
        self.dim = int(dim)
        self.backend = _backend._check_name(backend)
        if bias:
            if num_channels is None or int(num_channels) < 1:
                raise ValueError(f"num_channels must be a positive int when bias=True; got {num_channels!r}")
            self.bias = nn.Parameter(torch.full((int(num_channels),), float(bias_init)))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_act(
            x,
            self.bias,
            act=self.act,
            negative_slope=self.negative_slope,
            gain=self.gain,
            clamp=self.clamp,
            dim=self.dim,
            backend=None if self.backend == "auto" else self.backend,
        )

    def extra_repr(self) -> str:
        parts = [f"{self.bias.shape[0]}" if self.bias is not None else "bias=False", f"act={self.act!r}"]
        if self.act == "leaky_relu":
            parts.append(f"negative_slope={self.negative_slope}")
        if self.gain != 1.0:
            parts.append(f"gain={self.gain:.4g}")
        if self.clamp is not None:
            parts.append(f"clamp={self.clamp}")
        if self.dim != 1:
            parts.append(f"dim={self.dim}")
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
