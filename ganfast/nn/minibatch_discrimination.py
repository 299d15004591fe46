"""``MinibatchDiscrimination``: Salimans et al. 2016's layer on :func:`ganfast.ops.minibatch_discrimination`."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import _backend
from ..ops.minibatch_discrimination import minibatch_discrimination
from .._checks import TypeOrValueError, check_positive_int


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, section 3.2).

    (B, in_features) -> (B, in_features + num_kernels): with
    M = x @ T reshaped to (B, num_kernels, kernel_dim), appends
    o[i, b] = sum_{j != i} exp(-||M[i, b] - M[j, b]||_1).  See
    :func:`ganfast.ops.minibatch_discrimination`.

    The parameter ``T`` has shape (in_features, num_kernels, kernel_dim)
    (the paper's A x B x C tensor) and is initialised from
    N(0, 1 / in_features): then M has about the scale of x, so for
    unit-scale features the L1 distances are a few units and exp(-distance)
    neither vanishes nor saturates.  (A standard-normal T, common in ports,
    makes M ~ sqrt(in_features) times larger: at in_features = 8192 every
    exp(-distance) underflows to 0 and the layer starts with no gradient.)

    Args:
        in_features, num_kernels, kernel_dim: A, B and C of the paper.
        backend: ``"auto"`` follows the global choice; a name pins this layer.

    Raises:
        ValueError: a size is not a positive int (a
            :class:`ganfast._checks.TypeOrValueError` when not an int at all),
            or ``backend`` unknown.
    """

    def __init__(self, in_features: int, num_kernels: int, kernel_dim: int, backend: str = "auto",
                 device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features", TypeOrValueError)
        self.num_kernels = check_positive_int(num_kernels, "num_kernels", TypeOrValueError)
        self.kernel_dim = check_positive_int(kernel_dim, "kernel_dim", TypeOrValueError)
        self.backend = _backend.check_backend(backend)
        self.T = nn.Parameter(torch.empty(in_features, num_kernels, kernel_dim, device=device, dtype=dtype))
        self.reset_parameters()

    @property
    def out_features(self) -> int:
        return self.in_features + self.num_kernels

    def reset_parameters(self) -> None:
        nn.init.normal_(self.T, 0.0, 1.0 / math.sqrt(self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_discrimination(x, self.T, backend=None if self.backend == "auto" else self.backend)

    def extra_repr(self) -> str:
        text = f"in_features={self.in_features}, num_kernels={self.num_kernels}, kernel_dim={self.kernel_dim}"
        if self.backend != "auto":
            text += f", backend={self.backend!r}"
        return text
