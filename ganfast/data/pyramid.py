"""Gaussian and Laplacian image pyramids (Burt & Adelson 1983), as LAPGAN uses them (Denton et al. 2015, sec. 3).

With ``d`` the downsampling by 2 and ``u`` the upsampling by 2::

    Gaussian:   I_0 = I,  I_{k+1} = d(I_k)                      (k = 0 .. K-1)
    Laplacian:  h_k = I_k - u(I_{k+1})  (k < K),  h_K = I_K      (eq. 1 of the LAPGAN paper)
    inverse:    I_k = u(I_{k+1}) + h_k                          (eq. 2)

so the Laplacian pyramid ``[h_0, ..., h_{K-1}, I_K]`` reconstructs ``I``
exactly up to floating-point rounding (one rounding per level), whatever
``d`` and ``u`` are.  Here ``d`` is the 2x2 box average (what bilinear
downscaling by exactly 2 computes; torch's ``image.scale`` in the released
facebookarchive/eyescream code) and ``u`` is bilinear upsampling by 2 with
``align_corners=False``.  Level 0 is the finest.
"""

from __future__ import annotations

from typing import List, Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["downsample2x", "upsample2x", "gaussian_pyramid", "laplacian_pyramid", "reconstruct_pyramid"]


def _check_image(x, name: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating (N, C, H, W) tensor; got {got}")


def downsample2x(x: Tensor) -> Tensor:
    """``d``: ``(N, C, H, W)`` -> ``(N, C, H/2, W/2)``, the mean of each 2x2 block (H, W even).

    Raises:
        ValueError: ``x`` not a floating 4-D tensor, or an odd side.
    """
    _check_image(x, "x")
    if x.shape[2] % 2 or x.shape[3] % 2:
        raise ValueError(f"downsample2x needs even sides; got {tuple(x.shape)}")
    return F.avg_pool2d(x, 2)


def upsample2x(x: Tensor) -> Tensor:
    """``u``: ``(N, C, H, W)`` -> ``(N, C, 2H, 2W)``, bilinear, ``align_corners=False`` (edges replicated).

    Raises:
        ValueError: ``x`` not a floating 4-D tensor.
    """
    _check_image(x, "x")
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def gaussian_pyramid(x: Tensor, levels: int) -> List[Tensor]:
    """``[I_0 = x, I_1, ..., I_levels]``: ``levels`` halvings of ``x`` ``(N, C, H, W)``, finest first.

    Raises:
        ValueError: ``levels`` < 0, or H and W not multiples of ``2 ** levels``.
    """
    _check_image(x, "x")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
        raise ValueError(f"levels must be an int >= 0; got {levels!r}")
    step = 2 ** levels
    if x.shape[2] % step or x.shape[3] % step:
        raise ValueError(f"{levels} halvings need H and W multiples of {step}; got {tuple(x.shape)}")
    out = [x]
    for _ in range(levels):
        out.append(downsample2x(out[-1]))
    return out


def laplacian_pyramid(x: Tensor, levels: int) -> List[Tensor]:
    """``[h_0, ..., h_{levels-1}, I_levels]``: the band-pass images, finest first, then the low-pass residual.

    ``h_k = I_k - u(I_{k+1})`` has the shape of ``I_k``; ``levels = 0`` gives ``[x]``.

    Raises:
        ValueError: as :func:`gaussian_pyramid`.
    """
    g = gaussian_pyramid(x, levels)
    return [g[k] - upsample2x(g[k + 1]) for k in range(levels)] + [g[-1]]


def reconstruct_pyramid(pyramid: Sequence[Tensor]) -> Tensor:
    """The image of a Laplacian pyramid: ``I_k = u(I_{k+1}) + h_k`` from the coarsest level up.

    Raises:
        ValueError: an empty pyramid, or a level whose shape is not twice the next coarser one's.
    """
    if len(pyramid) == 0:
        raise ValueError("reconstruct_pyramid needs at least one level")
    image = pyramid[-1]
    _check_image(image, "pyramid[-1]")
    for k in range(len(pyramid) - 2, -1, -1):
        h = pyramid[k]
        _check_image(h, f"pyramid[{k}]")
        want = tuple(image.shape[:2]) + (2 * image.shape[2], 2 * image.shape[3])
        if tuple(h.shape) != want:
            raise ValueError(f"pyramid[{k}] must be {want} (twice pyramid[{k + 1}]'s sides); got {tuple(h.shape)}")
        image = upsample2x(image) + h
    return image
