"""Pixel conversions shared by the digits, array and folder loaders, and the one image-file decoder.

Everything works on float ``(N, C, H, W)`` tensors in [-1, 1], so the three
sources resize and convert channels in exactly the same way.
:func:`decode_pixels` is the only place an image file becomes pixels: the
training folders, ``ganfast fid``, ``translate``, ``upscale`` and ``inpaint``
all read through it, so one file gives the same pixels everywhere.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma, the weights PIL's convert("L") uses, so an RGB array and
# an RGB image file turn gray the same way.
_LUMA = (0.299, 0.587, 0.114)

#: Files every image reader takes (decoded by Pillow).  ``ganfast fid`` also reads ``.npy`` image arrays.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".pgm", ".ppm")


def decode_pixels(path: str, mode: str):
    """An image file as uint8 pixels: ``(H, W)`` for ``mode="L"``, ``(H, W, 3)`` for ``"RGB"``, ``(H, W, 4)``
    for ``"RGBA"`` (a numpy array).

    Pillow decodes and converts (``Image.convert``: palettes looked up, gray
    repeated, alpha dropped or made opaque, CMYK and YCbCr JPEGs converted,
    the first frame of an animation).  16-bit samples keep their high byte
    (``v >> 8``): Pillow itself does so for 16-bit RGB, RGBA and gray+alpha
    PNGs, while its ``convert`` would clip 16-bit gray (modes ``I;16*`` and
    ``I``) at 255, turning nearly every such image white; those are shifted
    here the same way before converting.

    Raises:
        ValueError: ``mode`` not L, RGB or RGBA; the file is not an image or is damaged (naming it).
        FileNotFoundError: no file at ``path``.
        ImportError: Pillow is missing.
    """
    import numpy as np

    if mode not in ("L", "RGB", "RGBA"):
        raise ValueError(f"mode must be 'L', 'RGB' or 'RGBA'; got {mode!r}")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as e:  # pragma: no cover - Pillow is a dependency
        raise ImportError("reading image files needs Pillow: pip install pillow") from e
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I;16") or im.mode == "I":
                wide = np.asarray(im).astype(np.int64)
                im = Image.fromarray((np.clip(wide, 0, 65535) >> 8).astype(np.uint8), "L")
            return np.asarray(im.convert(mode)).copy()
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        # Pillow's messages for truncated or damaged data do not name the file.
        raise ValueError(f"cannot read the image {path}: {err}") from err


# Resizing everything at once would hold two float copies of a large array;
# chunks bound the extra memory without slowing the small cases.
_RESIZE_CHUNK = 2048


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1] (0 -> -1 and 255 -> 1 exactly)."""
    return x.to(torch.float32).div_(127.5).sub_(1.0)


def convert_channels(x: torch.Tensor, channels: Optional[int]) -> torch.Tensor:
    """Convert ``(N, C, H, W)`` in [-1, 1] to ``channels`` channels.

    Gray repeats to RGB; RGB turns gray by BT.601 luma; alpha is dropped when
    asked for fewer channels and added opaque (1.0) when asked for four.
    """
    c = x.shape[1]
    if channels is None or channels == c:
        return x
    if c == 4:
        x, c = x[:, :3], 3
    if channels == 1:
        if c == 1:
            return x
        w = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    rgb = x.expand(-1, 3, -1, -1) if c == 1 else x
    if channels == 3:
        return rgb.contiguous()
    alpha = torch.ones_like(rgb[:, :1])
    return torch.cat([rgb, alpha], dim=1)


def resized_shape(height: int, width: int, size: int) -> Tuple[int, int]:
    """(H, W) after scaling the shorter side to ``size``, aspect ratio kept."""
    if height <= width:
        return size, max(size, round(width * size / height))
    return max(size, round(height * size / width)), size


def resize_square(x: torch.Tensor, size: Optional[int], *, clamp: bool = True) -> torch.Tensor:
    """Scale the shorter side of ``(N, C, H, W)`` to ``size``, then centre-crop to ``size x size``.

    Bilinear with antialiasing, so downscaling averages instead of aliasing.
    Its weights are non-negative, so [-1, 1] data stays in range up to
    rounding, which ``clamp`` removes (off for float arrays taken as given).
    """
    if size is None:
        return x
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    th, tw = resized_shape(h, w, size)
    if (th, tw) != (h, w):
        parts = [
            F.interpolate(x[i:i + _RESIZE_CHUNK], size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
            for i in range(0, x.shape[0], _RESIZE_CHUNK)
        ]
        x = torch.cat(parts) if len(parts) > 1 else parts[0]
    top, left = (th - size) // 2, (tw - size) // 2
    x = x[..., top:top + size, left:left + size].contiguous()
    return x.clamp_(-1.0, 1.0) if clamp else x
