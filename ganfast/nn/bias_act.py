"""``BiasAct``: a learnable per-channel bias followed by an activation, fused."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import _backend
from .._activations import canonical_act
from .._checks import TypeOrValueError, check_bool, check_float, check_int
from ..ops.bias_act import bias_act


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

    Raises:
        TypeError: an argument of the wrong type (``num_channels`` missing or
            not an int when ``bias=True`` raises :class:`ganfast._checks.TypeOrValueError`,
            also a ``ValueError``).
        ValueError: ``act`` or ``backend`` unknown, ``num_channels`` below 1,
            a number not finite, ``clamp`` negative.
    """

    # act..dim are ganfast.ops.bias_act's keyword arguments, with its defaults.
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
        self.negative_slope = check_float(negative_slope, "negative_slope")
        self.gain = check_float(gain, "gain")
        self.clamp = None if clamp is None else check_float(clamp, "clamp", minimum=0.0)
        self.dim = check_int(dim, "dim")
        self.backend = _backend.check_backend(backend)
        if check_bool(bias, "bias"):
            # A missing num_channels raised ValueError before the convention: TypeOrValueError keeps that.
            num_channels = check_int(num_channels, "num_channels", minimum=1, what="a positive int when bias=True",
                                     type_error=TypeOrValueError)
            self.bias = nn.Parameter(torch.full((num_channels,), check_float(bias_init, "bias_init")))
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
