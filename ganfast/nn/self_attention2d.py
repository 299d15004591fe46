"""``SelfAttention2d``: the SAGAN self-attention block (Zhang et al. 2019) on the fused attention op."""

from __future__ import annotations

import torch
from torch import nn

from .. import _backend
from ..ops.self_attention2d import SUPPORTED_DTYPES, self_attention2d


class SelfAttention2d(nn.Module):
    """``x + gamma * attention(x)`` over all ``H*W`` positions of a feature map.

    Zhang et al. 2019, section 3: 1x1 convolutions give queries and keys of
    ``channels // reduction`` channels and values of ``channels`` channels;
    every position's output is the softmax-weighted sum of all positions'
    values, with scores ``query_i . key_j`` (no ``1/sqrt(d)`` scaling); the
    block returns ``x + gamma * out`` with ``gamma`` a learnable scalar
    starting at 0, so it begins as the identity and learns how much attention
    to mix in.  (The paper's final version also narrows the value
    projection to ``channels // 8`` and adds a 1x1 output convolution after
    the attention; this block is the one DESIGN.md specifies and the common
    PyTorch implementations use: values of full width, no output
    convolution.)

    The projections are plain ``nn.Conv2d`` 1x1 children (matmuls, cuDNN or
    cuBLAS; spectral norm can be applied to them as usual); the attention is
    :func:`ganfast.ops.self_attention2d`, whose memory grows linearly in
    ``H*W`` on the triton backend.

    Args:
        channels: channels of the input (and output).
        reduction: query/key width is ``channels // reduction`` (at least 1).
        backend: ``"auto"`` follows the global choice
            (:func:`ganfast.use_backend`); a backend name pins this layer to it.

    state_dict keys: ``gamma`` (shape ``(1,)``), ``query.weight``
    ``(channels // reduction, channels, 1, 1)``, ``query.bias``,
    ``key.weight``, ``key.bias`` (same shapes), ``value.weight``
    ``(channels, channels, 1, 1)``, ``value.bias``.

    Input ``(B, channels, H, W)`` in float16, bfloat16, float32 or float64
    (the parameters' dtype under ``.to()``, or any of them under autocast);
    output of the same shape and dtype.  Derivatives: as the op (double
    backward, e.g. R1, recomputes the attention through the reference).
    """

    def __init__(self, channels: int, reduction: int = 8, backend: str = "auto") -> None:
        super().__init__()
        for value, name in ((channels, "channels"), (reduction, "reduction")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        self.channels = channels
        self.reduction = reduction
        self.inner_channels = max(1, channels // reduction)
        self.backend = _backend._check_name(backend)
        self.query = nn.Conv2d(channels, self.inner_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, self.inner_channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"x must be 4-D (batch, channels, height, width); got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise ValueError(f"x must have {self.channels} channels (dim 1); got shape {tuple(x.shape)}")
        if x.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"x must be float16, bfloat16, float32 or float64; got {x.dtype}")
        if x.numel() == 0:
            raise ValueError(f"x must not be empty; got shape {tuple(x.shape)}")
        # flatten(2) of an NCHW or channels_last map is a view: the op reads it in place.
        q = self.query(x).flatten(2)
        k = self.key(x).flatten(2)
        v = self.value(x).flatten(2)
        out = self_attention2d(q, k, v, backend=None if self.backend == "auto" else self.backend)
        return x + self.gamma.to(out.dtype) * out.view(v.shape[0], v.shape[1], *x.shape[2:])

    def extra_repr(self) -> str:
        parts = [f"{self.channels}", f"reduction={self.reduction}"]
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)
