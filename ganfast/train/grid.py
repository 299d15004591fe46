"""Sample sheets: image grids and 2-D scatter plots written as PNGs.

Pillow is needed only to encode PNGs and is imported when a PNG is written;
``make_grid`` itself is numpy.  Files are written atomically so that a
viewer refreshing the latest sample sheet never catches half a file.
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch

from .checkpoint import write_atomically

__all__ = ["make_grid", "save_image_grid", "save_points_png"]

# Tiles smaller than this are upscaled by default: 16x16 MNIST-style samples
# are unreadable at one screen pixel per image pixel.
_MIN_TILE_PX = 64


def _pillow():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ImportError("writing PNGs needs Pillow: pip install pillow") from None
    return Image, ImageDraw, ImageFont


def _save_png(image, path: str) -> None:
    """Encode a Pillow image as PNG into ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            image.save(f, format="PNG")

    write_atomically(os.fspath(path), write)


def _as_numpy(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        # float() first: numpy has no bfloat16, and it frees us from half precision maths.
        return x.detach().to("cpu", torch.float32).numpy()
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a tensor or an array, got {type(x).__name__}") from None


def make_grid(images: Any, nrow: Optional[int] = None, padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in ``[-1, 1]`` into one ``(H', W', 3)`` uint8 RGB array.

    ``nrow`` is the number of images per row (default ``ceil(sqrt(N))``);
    ``padding`` pixels of ``pad_value`` (same ``[-1, 1]`` scale: 1 is white)
    surround every tile and fill unused cells.  Values outside ``[-1, 1]``
    are clamped; NaN becomes 0 (mid grey), so a diverged sample shows as a
    flat tile instead of failing the save.  ``C`` is 1 (grey) or 3 (RGB).
    """
    x = _as_numpy(images, "images")
    if x.ndim != 4:
        hint = " (a single image? add a batch dimension: x[None])" if x.ndim == 3 else ""
        raise ValueError(f"images must be (N, C, H, W), got {x.ndim} dimensions {tuple(x.shape)}{hint}")
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("images is empty: there is nothing to put in a grid")
    if c not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {c} (shape {tuple(x.shape)}; channels come second)")
    if h == 0 or w == 0:
        raise ValueError(f"images have zero size {h}x{w}")
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    nrow, padding = int(nrow), int(padding)
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    ncol_cells = min(nrow, n)
    rows = math.ceil(n / nrow)

    def to_uint8(v: np.ndarray) -> np.ndarray:
        v = np.nan_to_num(v, nan=0.0, posinf=1.0, neginf=-1.0)
        return np.rint((np.clip(v, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)

    tiles = to_uint8(x)
    if c == 1:
        tiles = np.repeat(tiles, 3, axis=1)
    tiles = tiles.transpose(0, 2, 3, 1)  # NHWC
    fill = to_uint8(np.array([pad_value], dtype=np.float32))[0]
    out = np.full((rows * (h + padding) + padding, ncol_cells * (w + padding) + padding, 3), fill, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x0 = padding + r * (h + padding), padding + col * (w + padding)
        out[y : y + h, x0 : x0 + w] = tiles[i]
    return out


def save_image_grid(
    images: Any, path: str, nrow: Optional[int] = None, padding: int = 2, scale: Optional[int] = None
) -> None:
    """Write ``make_grid(images, nrow, padding)`` as a PNG, upscaled by ``scale`` (nearest neighbour).

    By default ``scale`` is the smallest integer that makes each tile at
    least 64 pixels on its shorter side (1 for tiles that already are).
    """
    images = _as_numpy(images, "images")
    grid = make_grid(images, nrow=nrow, padding=padding)
    if scale is None:
        h, w = images.shape[-2:]
        scale = max(1, math.ceil(_MIN_TILE_PX / min(int(h), int(w))))
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    scale = int(scale)
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    Image, _, _ = _pillow()
    _save_png(Image.fromarray(np.ascontiguousarray(grid)), path)


_LimitsArg = Union[None, float, Tuple[float, float, float, float]]


def save_points_png(
    points: Any, path: str, *, reference: Any = None, size: int = 512, limits: _LimitsArg = None
) -> None:
    """Scatter ``(N, 2)`` samples as small blue dots, ``reference`` points (e.g. mode centres) as red crosses.

    ``limits`` is a half-width ``L`` for the box ``[-L, L]^2`` or a tuple
    ``(xmin, xmax, ymin, ymax)``; by default the symmetric box around the
    origin that covers every finite point of both sets, plus 10%.  Grey axis
    lines go through 0 when it is in view; points outside the box are not
    drawn.  ``y`` points up.
    """
    pts = _as_numpy(points, "points")
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got shape {tuple(pts.shape)}")
    ref = None
    if reference is not None:
        ref = _as_numpy(reference, "reference")
        if ref.ndim != 2 or ref.shape[1] != 2:
            raise ValueError(f"reference must be (M, 2), got shape {tuple(ref.shape)}")
    size = int(size)
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")

    if limits is None:
        both = pts if ref is None else np.concatenate([pts, ref])
        finite = np.abs(both[np.isfinite(both)])
        half = float(finite.max()) * 1.1 if finite.size else 0.0
        half = half or 1.0  # no points, or all at the origin
        xmin, xmax, ymin, ymax = -half, half, -half, half
    elif np.ndim(limits) == 0:
        half = float(limits)
        if not half > 0:
            raise ValueError(f"limits must be positive, got {limits}")
        xmin, xmax, ymin, ymax = -half, half, -half, half
    else:
        xmin, xmax, ymin, ymax = (float(v) for v in limits)
        if not (xmin < xmax and ymin < ymax):
            raise ValueError(f"limits must be (xmin, xmax, ymin, ymax) with min < max, got {limits}")

    def to_pixels(p: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        keep = np.isfinite(p).all(axis=1)
        keep &= (p[:, 0] >= xmin) & (p[:, 0] <= xmax) & (p[:, 1] >= ymin) & (p[:, 1] <= ymax)
        p = p[keep].astype(np.float64)
        col = np.rint((p[:, 0] - xmin) / (xmax - xmin) * (size - 1)).astype(np.int64)
        row = np.rint((ymax - p[:, 1]) / (ymax - ymin) * (size - 1)).astype(np.int64)
        return row, col

    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    axis = np.array([190, 190, 190], dtype=np.uint8)
    if xmin <= 0 <= xmax:
        canvas[:, int(round(-xmin / (xmax - xmin) * (size - 1)))] = axis
    if ymin <= 0 <= ymax:
        canvas[int(round(ymax / (ymax - ymin) * (size - 1))), :] = axis

    # Dots are set in the array directly (2x2 pixels): tens of thousands of
    # samples would take seconds as individual draw calls.
    row, col = to_pixels(pts)
    blue = np.array([31, 90, 200], dtype=np.uint8)
    for dr in (0, 1):
        for dc in (0, 1):
            canvas[np.minimum(row + dr, size - 1), np.minimum(col + dc, size - 1)] = blue

    Image, ImageDraw, ImageFont = _pillow()
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    if ref is not None:
        arm = max(3, size // 100)
        red = (220, 30, 30)
        for r, c in zip(*to_pixels(ref)):
            draw.line([(c - arm, r - arm), (c + arm, r + arm)], fill=red, width=2)
            draw.line([(c - arm, r + arm), (c + arm, r - arm)], fill=red, width=2)
    label = f"x [{xmin:.3g}, {xmax:.3g}]  y [{ymin:.3g}, {ymax:.3g}]  n={len(pts)}"
    draw.text((4, size - 14), label, fill=(90, 90, 90), font=ImageFont.load_default())
    _save_png(image, path)
