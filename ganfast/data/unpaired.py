"""Unpaired image domains (CycleGAN): ``image`` from domain A, ``target`` an independent draw from domain B.

Folder layout: ``trainA/`` and ``trainB/`` (``split="test"``: ``testA/`` and
``testB/``; any ``<split>A/`` + ``<split>B/``), or plain ``A/`` and ``B/``.

The dataset has ``max(NA, NB)`` samples; sample ``i`` of epoch ``e`` is
``A[i % NA]`` with ``B[perm_e[i % NB]]``, where ``perm_e`` is a permutation
of B drawn from ``(seed, e)``: the pairs change every epoch, and a run
resumed at epoch ``e`` sees the same pairs as the uninterrupted run.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import folder as _folder
from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from .batch import Batch
from .dataset import BatchDataset
from .folder import ImageFiles, list_images, probe_image, require_folder, sub_folders, uniform_channels, uniform_hw

# Mixed into the seed so B's permutation is not the trainer's shuffle of the same length
# (ganfast.train.loader.epoch_order seeds with seed * 1_000_003 + epoch).
_PAIRING_SALT = 0x9E3779B97F4A7C15


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of ``range(n)`` (int64) that is a pure function of ``(seed, epoch)``."""
    g = torch.Generator().manual_seed(((seed * 1_000_003 + epoch) ^ _PAIRING_SALT) % (2 ** 63))
    return torch.randperm(n, generator=g)


def domain_folders(root: str, split: Optional[str], layout: str) -> Tuple[str, str, Optional[str]]:
    """``(folder A, folder B, split)`` of a two-domain folder: ``<split>A/`` + ``<split>B/``, or ``A/`` + ``B/``.

    Without ``split``: ``trainA/`` + ``trainB/`` if present, else ``A/`` + ``B/``.

    Raises:
        TypeError: ``split`` is not a str.
        ValueError: the pair of folders asked for is not there (the error lists what is).
    """
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train' or None, got {split!r}")
    subs = sub_folders(require_folder(root))
    splits = [s[:-1] for s in subs if s.endswith("A") and s[:-1] + "B" in subs]
    want = split if split is not None else ("train" if "train" in splits else "")
    if want not in splits:
        asked = f"{want}A/ and {want}B/" if split is not None else "trainA/ and trainB/ (or A/ and B/)"
        if splits:
            found = "the domain pairs " + ", ".join(f"{s}A/ + {s}B/" if s else "A/ + B/" for s in splits)
            if any(splits):
                found += f" (split={', '.join(repr(s) for s in splits if s)})"
        else:
            found = "sub-folders: " + (", ".join(subs) or "none")
        raise ValueError(f"layout {layout!r} expects sub-folders {asked} in {root}; found {found}")
    return os.path.join(root, want + "A"), os.path.join(root, want + "B"), (want or None)


def cap_domains(counts: Sequence[int], num_samples: Optional[int], seed: int,
                name: str) -> List[Optional[torch.Tensor]]:
    """Per domain, the indices of a seeded subset of at most ``num_samples`` items (None: keep all).

    The two-domain datasets have ``max(counts)`` samples, so capping each domain makes it ``num_samples``.
    """
    if num_samples is not None and num_samples > max(counts):
        raise ValueError(f"num_samples={num_samples} asks for more than the {max(counts)} samples dataset "
                         f"{name!r} holds (the larger domain)")
    return [subset_indices(c, min(num_samples, c), seed + d, name) if num_samples else None
            for d, c in enumerate(counts)]


class EpochPairing:
    """Mixin for two-domain datasets: ``pairs(indices)`` maps sample indices to (A index, B index) for this epoch."""

    seed: int = 0
    epoch: int = 0
    _perm: Optional[torch.Tensor] = None
    _perm_epoch: Optional[int] = None

    def pairs(self, indices: torch.Tensor, na: int, nb: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if self._perm is None or self._perm_epoch != self.epoch:
            self._perm, self._perm_epoch = epoch_permutation(nb, self.seed, self.epoch), self.epoch
        indices = indices.to(torch.int64)
        return indices % na, self._perm[indices % nb]


class UnpairedImages(EpochPairing, BatchDataset):
    """Two unpaired domains (``layout="unpaired"``, fields ``("image", "target")``).

    Attributes (beyond :class:`BatchDataset`'s):
        domains: ``(A, B)`` as :class:`~ganfast.data.folder.ImageFiles`.
        seed: seeds each epoch's pairing.  split: the split used, or None.

    ``dataset[i]`` (at the epoch last given to :meth:`set_epoch`) is
    ``{"image": A sample, "target": B sample}``, float32 ``(C, H, W)`` in [-1, 1].
    """

    kind = "image"
    layout = "unpaired"
    fields = ("image", "target")

    def __init__(self, name: str, a: ImageFiles, b: ImageFiles, seed: int, split: Optional[str], eager: bool):
        self.name = name
        self.domains = (a.load(), b.load()) if eager else (a, b)
        self.seed = seed
        self.split = split
        self.in_memory = eager
        self.tensors = None
        self.sample_shape = tuple(int(v) for v in a.item_shape)

    def __len__(self) -> int:
        return max(len(d) for d in self.domains)

    def __getitem__(self, index) -> Dict[str, torch.Tensor]:
        a, b = self.pairs(torch.tensor([int(index)]), *map(len, self.domains))
        return {"image": self.domains[0][int(a)], "target": self.domains[1][int(b)]}

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        self.set_epoch(epoch)
        a, b = self.pairs(indices.cpu(), *map(len, self.domains))
        return Batch(image=self.domains[0].take(a), target=self.domains[1].take(b))

    def __repr__(self) -> str:
        na, nb = map(len, self.domains)
        return (f"UnpairedImages({self.name!r}, A={na}, B={nb}, shape={self.sample_shape}, "
                f"{'in memory' if self.in_memory else 'lazy'})")


def load_unpaired(root, *, image_size: Optional[int] = None, channels: Optional[int] = None,
                  num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None,
                  eager: Optional[bool] = None) -> UnpairedImages:
    """Two unpaired image domains from ``root`` (see the module docstring).

    Args:
        image_size: output side (shorter side scaled, then centre crop); without it every image of
            both domains must have one size.
        channels: convert both domains to 1, 3 or 4 channels; without it A and B must agree.
        num_samples: keep a seeded subset of at most this many images per domain (the dataset
            then has ``num_samples`` samples).
        seed: seeds the pairing of every epoch and the subset.
        split: picks ``<split>A/`` + ``<split>B/`` (default ``train``, else plain ``A/`` + ``B/``).
        eager: decode into memory (True), per sample (False) or by size (None).

    Returns:
        an :class:`UnpairedImages`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: the domain folders are missing or empty, sizes or channels differ.
    """
    root = os.fspath(root)
    size, channels = check_image_size(image_size), check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    folders = domain_folders(root, split, "unpaired")
    files = [list_images(d) for d in folders[:2]]
    for d, f in zip(folders, files):
        if not f:
            raise ValueError(f"no images found in domain folder {d}")
    for k, keep in enumerate(cap_domains([len(f) for f in files], n, seed, root)):
        if keep is not None:
            files[k] = [files[k][i] for i in keep.tolist()]
    probes = [[probe_image(f) for f in fs] for fs in files]
    everything, all_probes = files[0] + files[1], probes[0] + probes[1]
    channels = uniform_channels(root, everything, all_probes, channels)
    hw = uniform_hw(root, everything, all_probes, size)
    a, b = (ImageFiles(f, channels, size, hw) for f in files)
    eager = _folder.decide_eager(eager, len(a) + len(b), a.nbytes + b.nbytes)
    return UnpairedImages(root, a, b, seed, folders[2], eager)
