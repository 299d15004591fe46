"""Reference for ``conv_bn_act``: ``Conv2d -> BatchNorm2d -> LeakyReLU`` as torch.nn computes it.

The definition of correct for every backend of :func:`ganfast.ops.conv_bn_act`
(and :class:`ganfast.nn.ConvBNLeakyReLU2d`): the unfused composition, with
``F.batch_norm``'s semantics for the running statistics (updated in place in
training mode, with the unbiased variance; used to normalise in eval mode).
The DCGAN discriminator block (Radford et al. 2016, section 3); BatchNorm is
Ioffe & Szegedy 2015, Algorithm 1 (training) and its inference transform.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .batch_norm_act import batch_norm_act

Tensor = torch.Tensor


def conv_bn_act(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, bn_weight: Optional[Tensor] = None,
                bn_bias: Optional[Tensor] = None, running_mean: Optional[Tensor] = None,
                running_var: Optional[Tensor] = None, training: bool = True, momentum: float = 0.1,
                eps: float = 1e-5, stride=1, padding=0, negative_slope: float = 0.2) -> Tensor:
    """``leaky_relu(batch_norm(conv2d(x, weight, bias, stride, padding)), negative_slope)``, unfused.

    Arguments as :func:`ganfast.ops.conv_bn_act` (without ``backend``).
    Differentiable to every order by autograd.
    """
    y = F.conv2d(x, weight, bias, stride, padding)
    return batch_norm_act(y, running_mean, running_var, bn_weight, bn_bias, training, momentum, eps, negative_slope)
