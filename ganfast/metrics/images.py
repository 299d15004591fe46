"""Reading image folders for ``ganfast fid``: file listing, decoding, batching.

Pillow decodes every image format it knows; ``.npy`` arrays (uint8 0..255
or float 0..1, ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``) are read with
numpy.  Images become RGB uint8 ``(3, H, W)`` tensors, as pytorch-fid's
``PIL.Image.convert("RGB")`` makes them (alpha dropped, gray repeated).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List, Sequence

import numpy as np
import torch

from ..data._images import IMAGE_EXTENSIONS as _PILLOW_EXTENSIONS
from ..data._images import decode_pixels

#: Pillow's image files (the list every reader shares) and ``.npy`` image arrays.
IMAGE_EXTENSIONS = _PILLOW_EXTENSIONS + (".npy",)


def list_images(folder: str, recursive: bool = False) -> List[str]:
    """Image files in ``folder`` (sorted; subfolders too with ``recursive``)."""
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{folder} is not a directory")
    files = root.rglob("*") if recursive else root.iterdir()
    out = sorted(str(p) for p in files if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return out


def _read_rgb(path: str) -> np.ndarray:
    """An image file as an RGB uint8 array ``(H, W, 3)``: :func:`ganfast.data._images.decode_pixels`, the decoder
    training folders use too (Pillow's ``convert("RGB")``, pytorch-fid's reading; 16-bit samples keep their
    high byte)."""
    return decode_pixels(path, "RGB")


def load_image(path: str) -> torch.Tensor:
    """An image file as an RGB uint8 tensor ``(3, H, W)``.

    ``.npy`` arrays are read with numpy, every other file with Pillow
    (16-bit images keep their high byte).  A file that is not an image, or
    is damaged, raises ``ValueError`` naming it.
    """
    if os.path.splitext(path)[1].lower() == ".npy":
        return _array_to_chw(np.load(path, allow_pickle=False), path)
    return torch.from_numpy(_read_rgb(path)).permute(2, 0, 1).contiguous()


def _array_to_chw(a: np.ndarray, path: str) -> torch.Tensor:
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise ValueError(f"{path}: an image array must be (H, W), (H, W, C) or (C, H, W); got shape {a.shape}")
    if a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        a = np.moveaxis(a, 0, 2)
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{path}: image arrays must be uint8 (0..255) or float (0..1); got {a.dtype}")
        if a.size and (a.min() < -1e-3 or a.max() > 1 + 1e-3):
            raise ValueError(f"{path}: float image arrays must be in [0, 1]")
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    a = a[..., :3] if a.shape[2] >= 3 else np.repeat(a[..., :1], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return load_image(self.paths[i])


def batches(paths: Sequence[str], batch_size: int, num_workers: int = 0) -> Iterator[torch.Tensor]:
    """uint8 batches ``(B, 3, H, W)`` of the images, in order; images of different sizes go in separate batches."""
    loader = torch.utils.data.DataLoader(_Files(paths), batch_size=batch_size, num_workers=num_workers,
                                         collate_fn=list)
    for items in loader:
        group: List[torch.Tensor] = []
        for im in items:
            if group and im.shape != group[0].shape:
                yield torch.stack(group)
                group = []
            group.append(im)
        if group:
            yield torch.stack(group)
