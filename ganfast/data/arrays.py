"""Datasets from NumPy files: ``.npy`` (samples only) and ``.npz`` (samples and optional labels).

Layouts, decided from the array's shape:

* ``(N, D)``: points.
* ``(N, H, W)``: gray images.
* ``(N, C, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3, 4}: images; the
  small axis is the channel axis, and channels-first wins when both could be.

uint8 images are scaled to [-1, 1] (``x / 127.5 - 1``); float images are
taken as given and must be finite and in [-1, 1] (training's convention):
a float array of 0..255 values is refused with the conversion to make, and
one whose values all lie in [0, 1] gets a warning (it is probably [0, 1]
images, which training would read as mid-gray to white).  Other integer
images are refused rather than guessed at (is 255 white, or 65535?).
"""

from __future__ import annotations

import os
import zipfile
from typing import Optional, Tuple

import numpy as np
import torch

from ._checks import (check_channels, check_image_size, check_num_samples, check_seed, refuse_image_options,
                      subset_indices)
from ._images import convert_channels, resize_square, uint8_to_float
from .dataset import GANDataset

#: Keys searched, in order, for the samples and for the labels of an ``.npz``.
X_KEYS = ("x", "images", "data")
Y_KEYS = ("y", "labels")
_CHANNEL_COUNTS = (1, 3, 4)


def _read(path: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(samples, labels or None) from an .npy or .npz file."""
    try:
        # allow_pickle stays off: a data file must never be able to run code.
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        keys = list(loaded.files)
        x_key = next((k for k in X_KEYS if k in keys), None)
        y_key = next((k for k in Y_KEYS if k in keys), None)
        if x_key is None:
            others = [k for k in keys if k != y_key]
            if len(others) != 1:
                raise ValueError(
                    f"{path}: cannot tell which array holds the samples; expected a key among {X_KEYS} "
                    f"(or a single array), found {keys or 'no arrays'}"
                )
            x_key = others[0]
        try:
            return loaded[x_key], (loaded[y_key] if y_key is not None else None)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"cannot read {path}: {e}") from e


def _labels(path: str, y: np.ndarray, n: int) -> torch.Tensor:
    """Check and convert labels: 1-D, one per sample, whole non-negative numbers."""
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{path}: labels must be a 1-D array with one label per sample ({n}), got shape {y.shape}")
    if np.issubdtype(y.dtype, np.floating):
        # Labels saved as floats (say from a float tensor) are fine if they are whole numbers.
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{path}: labels must be integers 0..K-1, got non-integer values ({y.dtype})")
    elif not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise ValueError(f"{path}: labels must be integers 0..K-1, got dtype {y.dtype}")
    if n and y.min() < 0:
        raise ValueError(f"{path}: labels must be non-negative integers 0..K-1, got {int(y.min())}")
    return torch.from_numpy(y.astype(np.int64))


def _image_layout(path: str, x: np.ndarray) -> np.ndarray:
    """Images as (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.shape[1] in _CHANNEL_COUNTS:
        return x
    if x.shape[3] in _CHANNEL_COUNTS:
        return x.transpose(0, 3, 1, 2)
    raise ValueError(
        f"{path}: a 4-D image array needs a channel axis of size 1, 3 or 4, as (N, C, H, W) or (N, H, W, C); "
        f"got shape {x.shape}"
    )


#: Float images may stray this far outside [-1, 1] (resampling overshoot) and still be taken.
RANGE_SLACK = 1e-3


def _check_float_range(path: str, lo: float, hi: float) -> None:
    """Float images are in [-1, 1]: refuse other ranges with the fix, warn when they look like [0, 1]."""
    if lo < -1 - RANGE_SLACK or hi > 1 + RANGE_SLACK:
        hint = ("they look like 0..255 pixels: save them as uint8, or as x / 127.5 - 1" if lo >= 0 and hi <= 255
                else "rescale them to [-1, 1]")
        raise ValueError(f"{path}: float images must be in [-1, 1] (training's range); its values run from "
                         f"{lo:.6g} to {hi:.6g}: {hint}")
    if lo >= 0 and hi <= 1 and hi - lo > 0:
        import warnings
        warnings.warn(f"{path}: every value of these float images lies in [0, {hi:.3g}]; training takes float "
                      f"images as [-1, 1], so [0, 1] images would train as mid-gray to white: save them as "
                      f"2 x - 1 (or as uint8 0..255) if that is what they are", stacklevel=3)


def _to_float(path: str, x: np.ndarray, kind: str) -> torch.Tensor:
    if np.issubdtype(x.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not torch.isfinite(t).all():
            raise ValueError(f"{path}: samples must be finite, found NaN or inf")
        if kind == "image":
            _check_float_range(path, float(t.min()), float(t.max()))
        return t
    if kind == "image" and x.dtype == np.uint8:
        return uint8_to_float(torch.from_numpy(np.ascontiguousarray(x)))
    if kind == "points" and np.issubdtype(x.dtype, np.integer) and x.dtype != np.bool_:
        return torch.from_numpy(x.astype(np.float32))
    expected = "uint8 (0..255) or float (in [-1, 1])" if kind == "image" else "a real number type"
    raise ValueError(f"{path}: {kind} samples must be {expected}, got dtype {x.dtype}")


def load_array(path, *, image_size: Optional[int] = None, channels: Optional[int] = None,
               num_samples: Optional[int] = None, seed: int = 0) -> GANDataset:
    """A dataset from an ``.npy`` or ``.npz`` file (see the module docstring for layouts and keys).

    ``image_size`` resizes images (shorter side, then centre crop);
    ``channels`` converts them; ``num_samples`` keeps a seeded random subset.
    """
    path = os.fspath(path)
    size = check_image_size(image_size)
    channels = check_channels(channels)
    n = check_num_samples(num_samples)
    seed = check_seed(seed)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")

    x, y = _read(path)
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            f"{path}: expected (N, D) points or (N, H, W), (N, C, H, W), (N, H, W, C) images; "
            f"got an array of shape {x.shape}"
        )
    if x.size == 0:
        raise ValueError(f"{path}: the sample array is empty (shape {x.shape})")
    labels = _labels(path, y, x.shape[0]) if y is not None else None

    kind = "points" if x.ndim == 2 else "image"
    if kind == "points":
        refuse_image_options(path, size, channels)
    else:
        x = _image_layout(path, x)
    keep = subset_indices(x.shape[0], n, seed, path)
    if keep is not None:
        # Subset before converting so a large file is only converted where needed.
        x = x[keep.numpy()]
        labels = labels[keep] if labels is not None else None
    t = _to_float(path, x, kind)
    if kind == "image":
        t = convert_channels(resize_square(t, size, clamp=x.dtype == np.uint8), channels).contiguous()
    return GANDataset(path, t, labels)
