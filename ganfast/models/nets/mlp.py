"""Fully connected networks (Goodfellow et al. 2014): the MLP generator and discriminator.

Used for the 2-D mixtures of the mode-collapse literature and wherever a
paper used an MLP.  Conventions: see :mod:`ganfast.models.nets`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ._common import (ACTIVATIONS, OUT_ACTIVATIONS, Shape, apply_spectral_norm, attach_discriminator_head,
                      attach_label_embedding, check_input, check_labels, choice_arg, describe_args,
                      discriminator_head, embed_dim_arg, flag_arg, half_open_unit, minibatch_discrimination_arg,
                      mlp_blocks, positive_int, sample_shape_arg, widths_arg)

__all__ = ["MLPGenerator", "MLPDiscriminator"]

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
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.out_shape = sample_shape_arg(out_shape, "out_shape")
        self.hidden = widths_arg(hidden, "hidden")
        self.embed_dim = embed_dim_arg(num_classes, embed_dim)
        self.num_classes = num_classes
        self.activation = choice_arg(activation, ACTIVATIONS, "activation")
        self.batch_norm = flag_arg(batch_norm, "batch_norm")
        self.out_activation = choice_arg(out_activation, OUT_ACTIVATIONS, "out_activation")
        self.spectral_norm = flag_arg(spectral_norm, "spectral_norm")

        width = attach_label_embedding(self, num_classes, embed_dim, latent_dim)
        self.blocks, width = mlp_blocks(width, self.hidden, activation=activation, batch_norm=batch_norm)
        self.output = nn.Linear(width, math.prod(self.out_shape))
        out_act = OUT_ACTIVATIONS[out_activation]
        self.out_act = out_act() if out_act is not None else nn.Identity()
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        check_input(z, "z", (self.latent_dim,))
        check_labels(y, z.shape[0], self.num_classes)
        if self.num_classes:
            z = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        out = self.out_act(self.output(self.blocks(z)))
        return out.view(z.shape[0], *self.out_shape)

    def extra_repr(self) -> str:
        return describe_args(self, self._args)


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
        self.in_shape = sample_shape_arg(in_shape, "in_shape")
        self.hidden = widths_arg(hidden, "hidden")
        self.embed_dim = embed_dim_arg(num_classes, embed_dim)
        self.num_classes = num_classes
        self.activation = choice_arg(activation, ACTIVATIONS, "activation")
        self.batch_norm = flag_arg(batch_norm, "batch_norm")
        self.dropout = half_open_unit(dropout, "dropout", "a probability in [0, 1)")
        self.spectral_norm = flag_arg(spectral_norm, "spectral_norm")
        self.minibatch_discrimination = minibatch_discrimination_arg(minibatch_discrimination)

        width = attach_label_embedding(self, num_classes, embed_dim, math.prod(self.in_shape))
        self.blocks, width = mlp_blocks(width, self.hidden, activation=activation, batch_norm=batch_norm,
                                        dropout=self.dropout)
        attach_discriminator_head(self, width, self.minibatch_discrimination)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, *, return_features: bool = False):
        check_input(x, "x", self.in_shape)
        check_labels(y, x.shape[0], self.num_classes)
        h = x.flatten(1)
        if self.num_classes:
            h = torch.cat([h, self.embed(y).to(h.dtype)], dim=1)
        return discriminator_head(self, self.blocks(h), return_features)

    def extra_repr(self) -> str:
        return describe_args(self, self._args) + f", feature_dim={self.feature_dim}"


