"""Argument checks shared by every loader, so each bad argument is reported the same way."""

from __future__ import annotations

import numbers
from typing import Optional

import torch

#: Channel counts an image dataset can be converted to: gray, RGB, RGBA.
CHANNEL_CHOICES = (1, 3, 4)


def check_image_size(image_size) -> Optional[int]:
    """``None`` or a positive int (bool is refused: ``True`` is not a size)."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral):
        raise TypeError(f"image_size must be a positive int or None, got {image_size!r}")
    if image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {image_size}")
    return int(image_size)


def check_channels(channels) -> Optional[int]:
    """``None`` or one of :data:`CHANNEL_CHOICES`."""
    if channels is None:
        return None
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral):
        raise TypeError(f"channels must be one of {CHANNEL_CHOICES} or None, got {channels!r}")
    if int(channels) not in CHANNEL_CHOICES:
        raise ValueError(f"channels must be one of {CHANNEL_CHOICES} (gray, RGB, RGBA), got {channels}")
    return int(channels)


def check_num_samples(num_samples) -> Optional[int]:
    """``None`` or a positive int."""
    if num_samples is None:
        return None
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"num_samples must be a positive int or None, got {num_samples!r}")
    if num_samples <= 0:
        raise ValueError(f"num_samples must be a positive int, got {num_samples}")
    return int(num_samples)


def check_seed(seed) -> int:
    """An int seed for a ``torch.Generator``."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return int(seed)


def refuse_image_options(name: str, image_size, channels) -> None:
    """Points have no pixels: silently ignoring ``image_size``/``channels`` would hide a mistake."""
    for arg, value in (("image_size", image_size), ("channels", channels)):
        if value is not None:
            raise ValueError(
                f"{arg}={value!r} applies to image datasets only; dataset {name!r} holds points, not images"
            )


def subset_indices(total: int, num_samples: Optional[int], seed: int, name: str) -> Optional[torch.Tensor]:
    """Indices of a seeded random subset of ``num_samples`` out of ``total`` (sorted), or ``None`` for all.

    Sorted so a subset keeps the source's order (and, for folders, reads files in directory order).
    """
    if num_samples is None or num_samples == total:
        return None
    if num_samples > total:
        raise ValueError(f"num_samples={num_samples} asks for more than the {total} samples dataset {name!r} holds")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:num_samples].sort().values
