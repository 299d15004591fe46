"""``BiasAct``: a learnable per-channel bias followed by an activation, fused.

With ``act="prelu"`` the negative-side slope is learnt too (He et al. 2015,
eq. 1): SRGAN's conv + bias + PReLU in one pass after the convolution.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import _backend
from .._activations import canonical_act, has_channel_slope
from .._checks import TypeOrValueError, check_bool, check_float, check_int
from ..ops.bias_act import bias_act


class BiasAct(nn.Module):
    """``clamp(act(x + bias) * gain, -clamp, clamp)`` with a learnable bias.

    Args:
        num_channels: length of the bias (the size of ``x`` along ``dim``);
            required when ``bias=True`` or ``num_parameters > 1``.
        act, negative_slope, gain, clamp, dim: as :func:`ganfast.ops.bias_act`.
        num_parameters: ``act="prelu"`` only: learnt slopes, 1 (shared, the
            default, as torch.nn.PReLU's) or ``num_channels`` (one per
            channel, He et al.'s channel-wise variant).
        init: ``act="prelu"`` only: the slopes' initial value (0.25, as
            torch.nn.PReLU's and He et al.'s).
        bias: learn a bias (initialised to ``bias_init``) or apply the
            activation alone.
        bias_init: initial value of the bias.
        backend: ``"auto"`` follows the global choice
            (:func:`ganfast.use_backend`); a backend name pins this layer to it.

    The state_dict holds ``bias`` (when ``bias=True``) and, for prelu, the
    slopes as ``weight``: torch.nn.PReLU's name and shape, so a model whose
    ``nn.PReLU`` at ``act`` becomes a ``BiasAct`` at ``act`` keeps the key
    ``act.weight`` (the conv's bias, moved here, is the one key to map).

    Raises:
        TypeError: an argument of the wrong type (``num_channels`` missing or
            not an int when ``bias=True`` raises :class:`ganfast._checks.TypeOrValueError`,
            also a ``ValueError``).
        ValueError: ``act`` or ``backend`` unknown, ``num_channels`` below 1,
            a number not finite, ``clamp`` negative, ``num_parameters`` not
            1 or ``num_channels``, or prelu's arguments with another act.
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
        num_parameters: Optional[int] = None,
        init: Optional[float] = None,
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
        if has_channel_slope(self.act):
            n = 1 if num_parameters is None else check_int(num_parameters, "num_parameters", minimum=1)
            if n != 1 and n != num_channels:
                raise ValueError(f"num_parameters must be 1 or num_channels ({num_channels}); got {n}")
            value = 0.25 if init is None else check_float(init, "init")
            self.weight = nn.Parameter(torch.full((n,), value))
        else:
            if num_parameters is not None or init is not None:
                raise ValueError(f"num_parameters and init are prelu's (learnt slopes); act is {self.act!r}")
            self.register_parameter("weight", None)

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
            alpha=self.weight,
        )

    def extra_repr(self) -> str:
        parts = [f"{self.bias.shape[0]}" if self.bias is not None else "bias=False", f"act={self.act!r}"]
        if self.act == "leaky_relu":
            parts.append(f"negative_slope={self.negative_slope}")
        if self.weight is not None:
            parts.append(f"num_parameters={self.weight.shape[0]}")
        if self.gain != 1.0:
            parts.append(f"gain={self.gain:.4g}")
        if self.clamp is not None:
            parts.append(f"clamp={self.clamp}")
        if self.dim != 1:
            parts.append(f"dim={self.dim}")
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
