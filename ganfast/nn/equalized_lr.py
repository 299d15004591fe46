"""Equalized learning rate (Karras et al. 2018, section 4.1) as a parametrization any layer can take.

ProGAN draws every weight from N(0, 1) and scales it at every forward pass by
the He constant ``c = gain / sqrt(fan_in)`` instead of scaling it once at
initialisation (tkarras/progressive_growing_of_gans ``networks.py``,
``get_weight(shape, gain=np.sqrt(2), use_wscale=True)``: the variable is
``random_normal()`` and the layer uses ``variable * wscale``).  An adaptive
optimiser such as Adam moves each stored value by about the learning rate
whatever its gradient's scale, so the effective weight ``c * w`` moves by
``lr * c`` against a spread of ``c``: the relative step is ``lr`` in every
layer, whatever its fan-in.  With He initialisation instead, the relative step
is ``lr * sqrt(fan_in) / gain`` and wide layers learn slower.

StyleGAN's ``lr_multiplier`` (Karras et al. 2019, the mapping network's 0.01;
NVlabs/stylegan2-ada-pytorch ``FullyConnectedLayer``) extends it: stored
weights are N(0, 1 / lr_multiplier^2) and scaled by ``c * lr_multiplier``, so
the layer learns at ``lr * lr_multiplier`` relative speed; the bias is stored
divided by ``lr_multiplier`` the same way.

:func:`equalized_lr` registers the scale with :mod:`torch.nn.utils.parametrize`
(the library's own mechanism): ``module.weight`` is the effective weight,
computed at every access, and the stored one is
``module.parametrizations.weight.original`` (its state_dict key).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.nn.utils import parametrize

from .._checks import check_float

__all__ = ["EqualizedScale", "equalized_lr", "fan_in"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class EqualizedScale(nn.Module):
    """The parametrization ``w -> w * scale`` (a constant: no parameters, no buffers).

    Args:
        scale: ``gain / sqrt(fan_in) * lr_multiplier``, a finite number > 0.

    Raises:
        ValueError: ``scale`` is not a finite positive number.
        TypeError: ``scale`` is not a number.
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = check_float(scale, "scale", positive=True)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


def fan_in(module: nn.Module) -> int:
    """Inputs that each output of ``module`` sums over: the He-initialisation fan-in.

    ``in_features`` for Linear; ``in_channels / groups * prod(kernel)`` for
    convolutions, transposed ones included (ProGAN's ``upscale2d_conv2d``
    uses ``kernel**2 * fmaps_in``).

    Raises:
        TypeError: ``module`` is not one of the layers listed in
            :func:`equalized_lr`.
    """
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, _LAYERS):
        return module.in_channels // module.groups * math.prod(module.kernel_size)
    raise TypeError(f"module: expected a Linear, Conv or ConvTranspose layer, got {type(module).__name__}")


def equalized_lr(module: nn.Module, gain: float = math.sqrt(2.0), lr_multiplier: float = 1.0,
                 init: bool = True) -> nn.Module:
    """Give ``module`` an equalized learning rate, in place; returns ``module``.

    The stored weight becomes N(0, 1 / lr_multiplier^2) (``init=True``, the
    default: re-drawn with torch's global generator, so seed first) and the
    layer uses ``weight = stored * gain / sqrt(fan_in) * lr_multiplier`` at
    every forward pass.  A bias, when there is one, is zeroed (ProGAN's
    initialisation) and scaled by ``lr_multiplier`` the same way (a
    parametrization too, when ``lr_multiplier != 1``).  ``init=False`` keeps
    the current values as the stored ones (a layer whose values were drawn as
    above, e.g. to load a checkpoint of the same architecture afterwards).

    ProGAN's gains (``networks.py``): sqrt(2) for every layer followed by a
    leaky ReLU, sqrt(2) / 4 for G's first dense layer (the latent -> 4x4
    projection), 1 for toRGB; StyleGAN's mapping network uses
    ``lr_multiplier=0.01``.

    Args:
        module: a Linear, Conv1d/2d/3d or ConvTranspose1d/2d/3d layer.
        gain: the He gain, a finite number > 0 (default sqrt(2)).
        lr_multiplier: relative learning speed of this layer, > 0 (default 1).
        init: re-draw the weight (and zero the bias) as ProGAN initialises.

    Returns:
        ``module`` itself, with ``module.weight`` computed on access.

    Raises:
        TypeError: ``module`` is not a supported layer, ``gain`` /
            ``lr_multiplier`` is not a number, or ``init`` not a bool.
        ValueError: ``gain`` or ``lr_multiplier`` is not a finite positive
            number, or ``module.weight`` already has a parametrization.
    """
    n = fan_in(module)
    if not isinstance(init, bool):
        raise TypeError(f"init must be a bool; got {type(init).__name__}")
    gain = check_float(gain, "gain", positive=True)
    lr_multiplier = check_float(lr_multiplier, "lr_multiplier", positive=True)
    if parametrize.is_parametrized(module, "weight"):
        raise ValueError(f"module: its weight already has a parametrization ({type(module).__name__}); "
                         f"equalized_lr must be applied once, to a plain layer")
    bias: Optional[torch.Tensor] = getattr(module, "bias", None)
    if init:
        with torch.no_grad():
            module.weight.normal_(0.0, 1.0 / lr_multiplier)
            if bias is not None:
                bias.zero_()
    parametrize.register_parametrization(module, "weight", EqualizedScale(gain / math.sqrt(n) * lr_multiplier))
    if bias is not None and lr_multiplier != 1.0:
        parametrize.register_parametrization(module, "bias", EqualizedScale(lr_multiplier))
    return module
