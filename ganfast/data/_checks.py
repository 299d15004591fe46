"""Argument checks shared by every loader, so each bad argument is reported the same way.

Built on :mod:`ganfast._checks` (``TypeError`` for a wrong type, ``ValueError`` for a wrong value).
"""

from __future__ import annotations

from typing import Optional

import torch

from .._checks import check_choice, check_int, check_positive_int

#: Channel counts an image dataset can be converted to: gray, RGB, RGBA.
CHANNEL_CHOICES = (1, 3, 4)


def check_image_size(image_size) -> Optional[int]:
    """``None`` or a positive int (bool is refused: ``True`` is not a size)."""
    return None if image_size is None else check_positive_int(image_size, "image_size")


def check_channels(channels) -> Optional[int]:
    """``None`` or one of :data:`CHANNEL_CHOICES`."""
    if channels is None:
        return None
    check_int(channels, "channels", what=f"one of {CHANNEL_CHOICES} (gray, RGB, RGBA)")
    return check_choice(int(channels), "channels", CHANNEL_CHOICES)


def check_num_samples(num_samples) -> Optional[int]:
    """``None`` or a positive int."""
    return None if num_samples is None else check_positive_int(num_samples, "num_samples")


def check_seed(seed) -> int:
    """An int seed for a ``torch.Generator``."""
    return check_int(seed, "seed")


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
