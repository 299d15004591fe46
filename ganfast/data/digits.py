"""scikit-learn's handwritten digits: a small labelled image set that needs no download."""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import numpy as np
import torch

from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from ._images import convert_channels, resize_square
from .dataset import GANDataset

#: Sizes ``digits`` can be resized to: powers of two, which the image models' up/down-sampling stacks expect.
DIGITS_SIZES = (8, 16, 32, 64)
DIGITS_DEFAULT_SIZE = 16  # a clean 2x of the 8x8 originals; 32 is 4x blur and 6x the training cost
DESCRIPTION = "scikit-learn's 1797 handwritten digits, 8x8 gray upscaled to 16x16 (image_size 8/16/32/64), 10 classes"


@functools.lru_cache(maxsize=1)
def _raw_digits() -> Tuple[np.ndarray, np.ndarray]:
    # Parsing the bundled CSV takes a noticeable fraction of a second; loading
    # several sizes in one process should pay it once.
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from e
    bunch = load_digits()
    images = np.ascontiguousarray(bunch.images, dtype=np.float32)
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                num_samples: Optional[int] = None, seed: int = 0) -> GANDataset:
    """The 1797 8x8 digits (values 0..16), resized to ``image_size`` and scaled to [-1, 1].

    0 (background) maps to -1 and 16 (full ink) to 1; resizing is bilinear
    with antialiasing.  ``channels=3`` repeats the gray channel to RGB.
    ``num_samples`` keeps a seeded random subset.
    """
    size = check_image_size(image_size)
    size = DIGITS_DEFAULT_SIZE if size is None else size
    if size not in DIGITS_SIZES:
        raise ValueError(f"image_size for 'digits' must be one of {DIGITS_SIZES}, got {size}")
    channels = check_channels(channels)
    n = check_num_samples(num_samples)
    seed = check_seed(seed)

    images, labels = _raw_digits()
    x = torch.from_numpy(images.copy()).unsqueeze(1).div_(8.0).sub_(1.0)
    y = torch.from_numpy(labels.copy())
    keep = subset_indices(len(y), n, seed, "digits")
    if keep is not None:
        x, y = x[keep], y[keep]
    x = convert_channels(resize_square(x, size), channels)
    return GANDataset("digits", x.contiguous(), y, classes=[str(d) for d in range(10)])
