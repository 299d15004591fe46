"""Reading image folders for ``ganfast fid``: file listing, decoding, batching.

Decoding uses Pillow when it is installed (every format it knows).  Without
it, PNG (the format GAN sample dumps are usually written in) is decoded
here with zlib and numpy, and ``.npy`` arrays are read directly, so
``ganfast fid`` needs no extra dependency for those; other formats ask for
``pip install pillow``.  Images become RGB uint8 ``(3, H, W)`` tensors, as
pytorch-fid's ``PIL.Image.convert("RGB")`` makes them (alpha dropped, gray
repeated).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Iterator, List, Sequence

import numpy as np
import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".npy")


def list_images(folder: str, recursive: bool = False) -> List[str]:
    """Image files in ``folder`` (sorted; subfolders too with ``recursive``)."""
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{folder} is not a directory")
    files = root.rglob("*") if recursive else root.iterdir()
    out = sorted(str(p) for p in files if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    return out


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


# -- PNG without Pillow ---------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # color type -> samples per pixel


def _unfilter(data: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo PNG's per-row filters (RFC 2083 section 6) -> (height, stride) uint8."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size < height * (stride + 1):
        raise ValueError("PNG image data is truncated")
    raw = raw[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        ftype, line = raw[y, 0], raw[y, 1:]
        if ftype == 0:  # None
            cur = line.copy()
        elif ftype == 1:  # Sub: a running sum per channel modulo 256 (stride is a multiple of bpp)
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint64).astype(np.uint8).reshape(-1)
        elif ftype == 2:  # Up
            cur = line + prev
        elif ftype in (3, 4):  # Average, Paeth: each byte depends on the decoded byte to its left
            cur = _sequential(line, prev, bpp, ftype)
        else:
            raise ValueError(f"PNG row {y} has an unknown filter type {ftype}")
        out[y] = cur
        prev = cur
    return out


def _sequential(line: np.ndarray, prev: np.ndarray, bpp: int, ftype: int) -> np.ndarray:
    """Average (3) and Paeth (4) filters, byte by byte (pure Python: Pillow is much faster)."""
    cur = bytearray(line.tobytes())
    up = prev.tobytes()
    n = len(cur)
    if ftype == 3:
        for i in range(n):
            left = cur[i - bpp] if i >= bpp else 0
            cur[i] = (cur[i] + ((left + up[i]) >> 1)) & 0xFF
    else:
        for i in range(n):
            a = cur[i - bpp] if i >= bpp else 0
            b = up[i]
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), dtype=np.uint8)


def read_png(path: str) -> np.ndarray:
    """Decode a PNG file to an RGB uint8 array ``(H, W, 3)`` without Pillow.

    Handles every non-interlaced PNG: gray, gray+alpha, RGB, RGBA, palette;
    bit depths 1, 2, 4, 8 and 16 (16-bit samples keep their high byte, as
    Pillow's RGB conversion does).  Alpha is dropped.  Interlaced files need
    Pillow.
    """
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, palette, header = 8, [], None, None
    while pos + 8 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind = blob[pos + 4:pos + 8]
        body = blob[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: PNG without an IHDR chunk")
    width, height, depth, ctype, _, _, interlace = header
    if interlace:
        raise ValueError(f"{path} is an interlaced PNG; install Pillow (pip install pillow) to read it")
    if ctype not in _CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise ValueError(f"{path}: unsupported PNG color type {ctype} / bit depth {depth}")
    channels = _CHANNELS[ctype]
    bits = channels * depth
    stride = (width * bits + 7) // 8
    rows = _unfilter(zlib.decompress(b"".join(idat)), height, stride, max(1, bits // 8))
    if depth == 16:
        px = rows.reshape(height, width, channels, 2)[..., 0]  # big-endian: the high byte first
    elif depth == 8:
        px = rows.reshape(height, width, channels)
    else:
        px = np.unpackbits(rows, axis=1)[:, : width * depth].reshape(height, width, depth)
        px = (px * (1 << np.arange(depth - 1, -1, -1, dtype=np.uint8))).sum(-1).astype(np.uint8)[..., None]
        if ctype == 0:  # scale gray levels to 0..255
            px = (px.astype(np.uint16) * 255 // ((1 << depth) - 1)).astype(np.uint8)
    if ctype == 3:
        if palette is None:
            raise ValueError(f"{path}: palette PNG without a PLTE chunk")
        return palette[px[..., 0]]
    if channels in (1, 2):
        return np.repeat(px[..., :1], 3, axis=2)
    return np.ascontiguousarray(px[..., :3])


# -- any image ----------------------------------------------------------------------------


def load_image(path: str) -> torch.Tensor:
    """An image file as an RGB uint8 tensor ``(3, H, W)``."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        a = np.load(path, allow_pickle=False)
        return _array_to_chw(a, path)
    Image = _pillow()
    if Image is not None:
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"))
    elif ext == ".png":
        a = read_png(path)
    else:
        raise RuntimeError(
            f"reading {ext} images needs Pillow (pip install pillow); without it ganfast reads .png and .npy: {path}"
        )
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()


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
