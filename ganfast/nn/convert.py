"""``convert(model)``: swap fused ganfast layers into an existing model."""

from __future__ import annotations

from typing import Callable, List

from torch import nn

from .. import _backend
from .conv_bn_act import ConvBNLeakyReLU2d
from .conv_instance_norm_act import ConvInstanceNormAct2d, ConvTransposeInstanceNormAct2d
from .conv_transpose_bn_act import ConvTransposeBNReLU2d

# (conv type, norm type, fused type, the norm's slot in the fused layer): a run conv -> norm -> LeakyReLU/ReLU
# of exactly these types becomes the fused type.
_FUSIBLE = [
    (nn.Conv2d, nn.BatchNorm2d, ConvBNLeakyReLU2d, "bn"),
    (nn.ConvTranspose2d, nn.BatchNorm2d, ConvTransposeBNReLU2d, "bn"),
    (nn.Conv2d, nn.InstanceNorm2d, ConvInstanceNormAct2d, "norm"),
    (nn.ConvTranspose2d, nn.InstanceNorm2d, ConvTransposeInstanceNormAct2d, "norm"),
]


def _fusible(conv: nn.Module, norm: nn.Module, act: nn.Module):
    """``(fused class, norm slot)`` for this run, or None."""
    if type(act) not in (nn.LeakyReLU, nn.ReLU):
        return None
    if isinstance(conv, nn.modules.lazy.LazyModuleMixin) or isinstance(norm, nn.modules.lazy.LazyModuleMixin):
        return None  # not yet initialised: shapes unknown
    for conv_type, norm_type, fused, slot in _FUSIBLE:
        if type(conv) is conv_type and type(norm) is norm_type and norm.num_features == conv.out_channels:
            return fused, slot
    return None


def _old_key_hook(renames: List[tuple]) -> Callable:
    """A load_state_dict pre-hook accepting the unconverted model's keys (``(old, new)`` pairs)."""

    def hook(state_dict, prefix, *args):
        for old, new in renames:
            if prefix + old in state_dict and prefix + new not in state_dict:
                state_dict[prefix + new] = state_dict.pop(prefix + old)

    return hook


def _renames(old_slot: str, new_slot: str, child: nn.Module) -> List[tuple]:
    return [(f"{old_slot}.{k}", f"{new_slot}.{k}") for k in child.state_dict(keep_vars=True)]


def convert(module: nn.Module, backend: str = "auto") -> nn.Module:
    """Replace every ``Conv2d or ConvTranspose2d -> BatchNorm2d or InstanceNorm2d -> LeakyReLU or ReLU``
    run inside an ``nn.Sequential`` of ``module`` by the fused layer, in place; returns ``module``.

    The fused layers: :class:`ConvBNLeakyReLU2d`, :class:`ConvTransposeBNReLU2d`,
    :class:`ConvInstanceNormAct2d`, :class:`ConvTransposeInstanceNormAct2d`.
    The fused layer takes over the very ``conv`` and norm modules (weights,
    buffers and training mode carried over, nothing copied) and computes the
    same function.  Within the Sequential, the norm and activation slots
    become ``nn.Identity`` so that the indices (and the state_dict keys) of
    every other layer stay as they were (a ``ReflectionPad2d`` before the
    conv stays where it is); the run's own keys move from ``i.weight`` /
    ``i+1.running_mean`` to ``i.conv.weight`` / ``i.bn.running_mean`` (``i.norm.*``
    for an instance norm), and the converted model still loads state dicts
    saved before conversion.  Only exact ``nn.Conv2d`` / ``nn.ConvTranspose2d``
    / ``nn.BatchNorm2d`` / ``nn.InstanceNorm2d`` / ``nn.ReLU`` /
    ``nn.LeakyReLU`` instances are fused (subclasses may override ``forward``).

    ``backend`` pins the backend of the fused layers; ``"auto"`` follows the
    global choice.
    """
    backend = _backend.check_backend(backend)
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module; got {type(module).__name__}")
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        renames = []
        i = 0
        while i + 2 < len(names):
            conv, bn, act = (seq._modules[n] for n in names[i:i + 3])
            found = _fusible(conv, bn, act)
            if found is None:
                i += 1
                continue
            fused_type, slot = found
            fused = fused_type.from_modules(conv, bn, act, backend=backend)
            seq._modules[names[i]] = fused
            seq._modules[names[i + 1]] = nn.Identity()
            seq._modules[names[i + 2]] = nn.Identity()
            renames += (_renames(names[i], f"{names[i]}.conv", conv)
                        + _renames(names[i + 1], f"{names[i]}.{slot}", bn))
            i += 3
        if renames:
            seq._register_load_state_dict_pre_hook(_old_key_hook(renames))
    return module
