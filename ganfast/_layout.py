"""Memory-layout helpers shared by the Triton and CUDA host launchers.

Element-wise kernels walk a tensor's storage in memory order, so they work
for any *dense* layout (NCHW, channels_last, any permutation) as long as they
can tell which channel an element belongs to: for a dense tensor the element
at memory offset ``i`` has index ``(i // stride[dim]) % size[dim]`` along
``dim``.  Non-dense tensors (slices with gaps, expanded views) are copied once
into a dense tensor with the same dimension order.
"""

from __future__ import annotations

from typing import Tuple

import torch


def is_dense(t: torch.Tensor) -> bool:
    """True when ``t`` covers ``t.numel()`` consecutive elements of storage, without overlap."""
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda p: p[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def dense(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when dense, else a dense copy in the same dimension order.

    ``torch.empty_like`` keeps the stride order of its argument, which is also
    what a registered op's fake implementation returns, so the real and fake
    outputs agree on strides.
    """
    return t if is_dense(t) else torch.empty_like(t).copy_(t)


def like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` laid out with exactly ``ref``'s strides (``ref`` must be dense)."""
    if t.stride() == ref.stride():
        return t
    return torch.empty_like(ref, dtype=t.dtype).copy_(t)


def like_layout_of(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``t`` laid out as ``torch.empty_like(ref)`` would be (what fake implementations return)."""
    if t.stride() == torch.empty_like(ref, device="meta").stride():
        return t
    return torch.empty_like(ref, dtype=t.dtype).copy_(t)


def channel_geometry(t: torch.Tensor, dim: int) -> Tuple[int, int]:
    """``(channels, channel_stride)`` of a dense tensor along ``dim``."""
    channels = t.shape[dim]
    if channels == 1:
        return 1, 1
    return channels, t.stride(dim)


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """The memory format a 4-D op's output takes for input ``t``.

    channels_last when ``t`` is channels_last and not also plain contiguous
    (as when C == 1 or H == W == 1, where both hold and NCHW is the
    unambiguous answer), else contiguous NCHW: what ``torch.cat`` and cuDNN's
    convolutions give.
    """
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
