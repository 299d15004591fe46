"""``SelfAttention2d``: the SAGAN self-attention block (Zhang et al. 2019) on the fused attention op."""

from __future__ import annotations

import torch
from torch import nn

from .. import _backend
from .._checks import TypeOrValueError, check_ndim, check_positive_int, check_tensor
from ..ops.self_attention2d import self_attention2d


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

    Raises:
        ValueError: ``channels`` or ``reduction`` is not a positive int (a
            :class:`ganfast._checks.TypeOrValueError` when not an int at all),
            or ``backend`` unknown; in ``forward``, ``x`` not 4-D, with the
            wrong channels, or empty.
        TypeError: in ``forward``, ``x`` not a float tensor.
    """

    def __init__(self, channels: int, reduction: int = 8, backend: str = "auto") -> None:
        super().__init__()
        # A non-int raised ValueError before the convention: TypeOrValueError keeps that.
        self.channels = check_positive_int(channels, "channels", TypeOrValueError)
        self.reduction = check_positive_int(reduction, "reduction", TypeOrValueError)
        self.inner_channels = max(1, channels // reduction)
        self.backend = _backend.check_backend(backend)
        self.query = nn.Conv2d(channels, self.inner_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, self.inner_channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", dtypes=None)
        check_ndim(x, "x", 4, "be 4-D (batch, channels, height, width)")
        if x.shape[1] != self.channels:
            raise ValueError(f"x must have {self.channels} channels (dim 1); got shape {tuple(x.shape)}")
        check_tensor(x, "x", nonempty=True)
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
