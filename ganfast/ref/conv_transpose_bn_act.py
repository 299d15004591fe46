"""Reference for ``conv_transpose_bn_act``: ``ConvTranspose2d -> BatchNorm2d -> ReLU/LeakyReLU``.

The definition of correct for every backend of
:func:`ganfast.ops.conv_transpose_bn_act` (and
:class:`ganfast.nn.ConvTransposeBNReLU2d`): the unfused torch.nn composition,
with ``F.batch_norm``'s running-statistics semantics.  The DCGAN generator
block (Radford et al. 2016, section 3); ReLU is ``negative_slope=0``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .batch_norm_act import batch_norm_act

Tensor = torch.Tensor


def conv_transpose_bn_act(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                          bn_weight: Optional[Tensor] = None, bn_bias: Optional[Tensor] = None,
                          running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                          training: bool = True, momentum: float = 0.1, eps: float = 1e-5, stride=1, padding=0,
                          output_padding=0, negative_slope: float = 0.0) -> Tensor:
    """``leaky_relu(batch_norm(conv_transpose2d(x, ...)), negative_slope)``, unfused; ReLU by default.

    Arguments as :func:`ganfast.ops.conv_transpose_bn_act` (without
    ``backend``).  Differentiable to every order by autograd.
    """
    y = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)
    return batch_norm_act(y, running_mean, running_var, bn_weight, bn_bias, training, momentum, eps, negative_slope)
