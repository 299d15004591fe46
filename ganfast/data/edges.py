"""A paired demo set for translation methods (pix2pix): Fashion-MNIST images and their edge maps.

``fashion-edges``: ``image`` (domain A, pix2pix's input) is an edge map of
each Fashion-MNIST image, drawn as black lines on white like the edges2shoes /
edges2handbags sets of Isola et al. 2017 (sec. 4); ``target`` (domain B) is
the image itself.  Edges are computed at the output size, so they align with
the target's pixels:

* ``edges="canny"`` (default): ``skimage.feature.canny`` (sigma 1), binary:
  -1 on an edge, +1 elsewhere;
* ``edges="sobel"``: ``skimage.filters.sobel`` gradient magnitude, scaled per
  image to [0, 1] and drawn as ``1 - 2 * magnitude`` (soft lines).

:class:`PairedTensors` is the in-memory paired dataset it returns (also usable
for any aligned pair of image tensors).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from ._checks import check_channels, check_image_size, check_num_samples, check_seed
from .batch import Batch
from .dataset import BatchDataset

__all__ = ["PairedTensors", "edge_maps", "load_fashion_edges", "EDGE_METHODS", "DESCRIPTION"]

EDGE_METHODS = ("canny", "sobel")
DESCRIPTION = "Fashion-MNIST edge maps (A) -> images (B), aligned pairs for pix2pix (layout 'paired')"


class PairedTensors(BatchDataset):
    """Aligned in-memory pairs: ``image`` (A) ``(N, C, H, W)`` and ``target`` (B) ``(N, C', H, W)``, float32.

    Attributes: as :class:`ganfast.data.PairedImages` (``layout = "paired"``,
    ``fields = ("image", "target")``, ``sample_shape``, ``target_shape``,
    ``direction = "AtoB"``), with ``in_memory = True``.

    Raises:
        ValueError: the tensors are not 4-D, or disagree on N, H or W.
    """

    kind = "image"
    layout = "paired"
    fields = ("image", "target")

    def __init__(self, name: str, image: torch.Tensor, target: torch.Tensor) -> None:
        if image.dim() != 4 or target.dim() != 4 or image.shape[0] != target.shape[0] \
                or image.shape[2:] != target.shape[2:]:
            raise ValueError(f"paired tensors must be (N, C, H, W) and (N, C', H, W); got {tuple(image.shape)} and "
                             f"{tuple(target.shape)}")
        self.name = name
        self.image, self.target = image.float().contiguous(), target.float().contiguous()
        self.direction, self.split = "AtoB", None
        self.in_memory = True
        self.tensors = None  # batches come from batch(): the trainer must not take `tensors` as (x, y)
        self.sample_shape = tuple(int(v) for v in self.image.shape[1:])
        self.target_shape = tuple(int(v) for v in self.target.shape[1:])

    def __len__(self) -> int:
        return len(self.image)

    def __getitem__(self, index):
        i = int(index)
        return {"image": self.image[i], "target": self.target[i]}

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        self.set_epoch(epoch)
        idx = indices.cpu()
        return Batch(image=self.image[idx], target=self.target[idx])

    def __repr__(self) -> str:
        return f"PairedTensors({self.name!r}, N={len(self)}, image={self.sample_shape}, target={self.target_shape})"


def edge_maps(images: torch.Tensor, method: str = "canny", sigma: float = 1.0) -> torch.Tensor:
    """Edge maps of gray images ``(N, 1, H, W)`` in [-1, 1]: ``(N, 1, H, W)`` float32, lines -1 on +1.

    Raises:
        ValueError: an unknown ``method`` or images not ``(N, 1, H, W)``.
        ImportError: scikit-image is missing (``pip install scikit-image``).
    """
    if method not in EDGE_METHODS:
        raise ValueError(f"edges must be one of {EDGE_METHODS}; got {method!r}")
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"edge_maps takes gray images (N, 1, H, W); got {tuple(images.shape)}")
    try:
        from skimage import feature, filters
    except ImportError as e:  # pragma: no cover - scikit-image is a dependency of the photo sets
        raise ImportError("the fashion-edges dataset needs scikit-image: pip install scikit-image") from e
    gray = ((images[:, 0].double().cpu().numpy() + 1) / 2).clip(0, 1)
    out = np.empty(gray.shape, dtype=np.float32)
    for i, g in enumerate(gray):
        if method == "canny":
            out[i] = np.where(feature.canny(g, sigma=sigma), -1.0, 1.0)
        else:
            mag = filters.sobel(g)
            top = mag.max()
            out[i] = 1.0 - 2.0 * (mag / top if top > 0 else mag)
    return torch.from_numpy(out).unsqueeze(1)


def load_fashion_edges(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                       num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None,
                       edges: str = "canny") -> PairedTensors:
    """Fashion-MNIST edges -> images, paired (see the module docstring).

    Args:
        image_size: side of A and B (default 32, as ``fashion-mnist``).
        channels: channels of the target B (1, or 3 / 4 repeating the gray); A is always 1 channel.
        num_samples: a seeded random subset (edges cost ~0.5 ms per image: all 60,000 in about
            30 s).  seed: seeds it.
        split: ``"train"`` (default) or ``"test"``.
        edges: ``"canny"`` or ``"sobel"``.

    Returns:
        a :class:`PairedTensors` (image: ``(N, 1, S, S)`` edges, target: ``(N, C, S, S)`` images, in [-1, 1]).

    Raises:
        FileNotFoundError: Fashion-MNIST is not installed (``apt-get install dataset-fashion-mnist``).
        ValueError: a bad option.
    """
    from .packaged import load_fashion_mnist

    check_image_size(image_size), check_channels(channels), check_num_samples(num_samples), check_seed(seed)
    if edges not in EDGE_METHODS:
        raise ValueError(f"edges must be one of {EDGE_METHODS}; got {edges!r}")
    gray = load_fashion_mnist(image_size=image_size, num_samples=num_samples, seed=seed, split=split)
    x = _images(gray)
    target = x if channels in (None, 1) else x.expand(-1, channels, -1, -1).contiguous()
    return PairedTensors("fashion-edges", edge_maps(x, edges), target)


def _images(ds) -> torch.Tensor:
    tensors: Tuple[torch.Tensor, ...] = getattr(ds, "tensors", None) or ()
    if tensors:
        return tensors[0]
    return torch.stack([ds[i][0] if isinstance(ds[i], tuple) else ds[i]["image"] for i in range(len(ds))])
