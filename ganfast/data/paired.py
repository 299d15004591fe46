"""Paired images for image-to-image translation (pix2pix): ``image`` (A) and the aligned ``target`` (B).

Two folder layouts:

* side-by-side ``AB`` files directly in the folder, pix2pix's own layout:
  each file is A | B concatenated horizontally and is split at the middle of
  its width (an odd width is an error);
* two sub-folders ``A/`` and ``B/`` whose files are matched by name (path
  below ``A/`` or ``B/`` without the extension: ``A/0001.jpg`` pairs with
  ``B/0001.png``); a name found on one side only is an error.

Either may sit under split sub-folders ``train/``, ``val/``, ``test/``;
``split`` picks one (default ``train``).  ``direction="BtoA"`` swaps the
roles (``image`` = B, ``target`` = A).
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from . import folder as _folder
from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from .batch import Batch
from .dataset import BatchDataset
from .folder import (ImageFiles, list_images, probe_image, require_folder, sub_folders, uniform_channels,
                     uniform_hw)

#: Split sub-folders a paired folder may have, in the order they are listed.
SPLITS = ("train", "val", "test")
DIRECTIONS = ("AtoB", "BtoA")
_SHOWN = 5  # names listed in an error about unmatched files


def check_direction(direction) -> str:
    """``None`` (-> ``"AtoB"``) or one of :data:`DIRECTIONS`."""
    if direction is None:
        return "AtoB"
    if not isinstance(direction, str):
        raise TypeError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS} (image=A, target=B or the reverse), got {direction!r}")
    return direction


def choose_split(root: str, split: Optional[str]) -> Tuple[str, Optional[str]]:
    """``(folder, split)``: ``root/<split>`` when ``root`` has split sub-folders, else ``root`` itself.

    Raises:
        TypeError: ``split`` is not a str.
        ValueError: ``split`` is not one of the split sub-folders present (or there are none).
    """
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train' or None, got {split!r}")
    present = [s for s in SPLITS if os.path.isdir(os.path.join(root, s))]
    if not present:
        if split is not None:
            listed = ", ".join(s + "/" for s in SPLITS)
            raise ValueError(f"split={split!r}: {root} has no split sub-folders ({listed}); leave split unset to "
                             f"use the folder itself")
        return root, None
    split = "train" if split is None else split
    if split not in present:
        raise ValueError(f"split={split!r} not found in {root}; the splits present are {', '.join(present)}")
    return os.path.join(root, split), split


def _by_name(side: str) -> Dict[str, str]:
    """Image files under ``side`` keyed by their path below it without the extension."""
    out: Dict[str, str] = {}
    for f in list_images(side):
        key = os.path.splitext(os.path.relpath(f, side))[0]
        if key in out:
            raise ValueError(f"{side} has two images named {key!r} ({os.path.basename(out[key])} and "
                             f"{os.path.basename(f)}): a pair must be matched by one name")
        out[key] = f
    if not out:
        raise ValueError(f"no images found in {side}")
    return out


def match_pairs(folder: str) -> Tuple[List[str], List[str]]:
    """Files of ``folder/A`` and ``folder/B`` paired by name, sorted by it.

    Raises:
        ValueError: a side is empty, or some names appear on one side only (a few are listed).
    """
    a, b = _by_name(os.path.join(folder, "A")), _by_name(os.path.join(folder, "B"))
    for mine, other, side, other_side in ((a, b, "A", "B"), (b, a, "B", "A")):
        lonely = sorted(set(mine) - set(other))
        if lonely:
            more = f" and {len(lonely) - _SHOWN} more" if len(lonely) > _SHOWN else ""
            raise ValueError(f"{len(lonely)} image(s) in {os.path.join(folder, side)} have no partner of the same "
                             f"name in {os.path.join(folder, other_side)}: {', '.join(lonely[:_SHOWN])}{more}")
    keys = sorted(a)
    return [a[k] for k in keys], [b[k] for k in keys]


class PairedImages(BatchDataset):
    """Aligned ``(image, target)`` pairs (``layout="paired"``, fields ``("image", "target")``).

    Attributes (beyond :class:`BatchDataset`'s):
        target_shape: ``(C', H, W)`` of one ``target`` (B may have other channels than A).
        direction: ``"AtoB"`` or ``"BtoA"``.  split: the split sub-folder used, or None.

    ``dataset[i]`` is ``{"image": (C, H, W), "target": (C', H, W)}``, float32 in [-1, 1].
    """

    kind = "image"
    layout = "paired"
    fields = ("image", "target")

    def __init__(self, name: str, sides: Sequence[ImageFiles], direction: str, split: Optional[str], eager: bool):
        # sides: [A, B] (two folders) or [AB] (side-by-side files, items of shape (2, C, H, W))
        self.name = name
        self.direction = direction
        self.split = split
        self.sides = [s.load() if eager else s for s in sides]
        self.in_memory = eager
        self.tensors = None  # batches come from batch(): the trainer must not take `tensors` as (x, y)
        shapes = ([sides[0].item_shape[1:]] * 2 if len(sides) == 1 else [s.item_shape for s in sides])
        if direction == "BtoA":
            shapes = shapes[::-1]
        self.sample_shape, self.target_shape = (tuple(int(v) for v in s) for s in shapes)

    def __len__(self) -> int:
        return len(self.sides[0])

    def _orient(self, a: torch.Tensor, b: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"image": a, "target": b} if self.direction == "AtoB" else {"image": b, "target": a}

    def __getitem__(self, index) -> Dict[str, torch.Tensor]:
        i = int(index)
        if len(self.sides) == 1:
            ab = self.sides[0][i]
            return self._orient(ab[0], ab[1])
        return self._orient(self.sides[0][i], self.sides[1][i])

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        self.set_epoch(epoch)
        if len(self.sides) == 1:
            ab = self.sides[0].take(indices.cpu())
            return Batch(**self._orient(ab[:, 0], ab[:, 1]))
        return Batch(**self._orient(self.sides[0].take(indices.cpu()), self.sides[1].take(indices.cpu())))

    def __repr__(self) -> str:
        where = "in memory" if self.in_memory else "lazy"
        return (f"PairedImages({self.name!r}, N={len(self)}, image={self.sample_shape}, target={self.target_shape}, "
                f"{self.direction}, {where})")


def load_paired(root, *, image_size: Optional[int] = None, channels: Optional[int] = None,
                num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None,
                direction: Optional[str] = None, eager: Optional[bool] = None) -> PairedImages:
    """Paired images from ``root`` (see the module docstring for the two layouts).

    Args:
        root: the folder (or the folder holding ``train/``, ``val/``, ``test/``).
        image_size: output side for A and B (shorter side scaled, then centre crop); without it
            every A and every B must have one size, which is kept.
        channels: convert A and B to 1, 3 or 4 channels; without it the images of each side must
            agree (A and B may differ).
        num_samples: keep a seeded random subset of the pairs.
        seed: seeds that subset.
        split: ``"train"`` (default when split sub-folders exist), ``"val"`` or ``"test"``.
        direction: ``"AtoB"`` (default: image = A, target = B) or ``"BtoA"``.
        eager: decode into memory (True), per sample (False) or by size (None).

    Returns:
        a :class:`PairedImages`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no images, unmatched names, an odd-width AB file, differing sizes or channels,
            an unknown split.
    """
    root = os.fspath(root)
    size, channels = check_image_size(image_size), check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    direction = check_direction(direction)
    folder, split = choose_split(require_folder(root), split)
    subs = sub_folders(folder)
    if "A" in subs or "B" in subs:
        if not ("A" in subs and "B" in subs):
            have, lack = ("A", "B") if "A" in subs else ("B", "A")
            raise ValueError(f"paired folder {folder} has {have}/ but no {lack}/: expected both A/ and B/ "
                             f"(files matched by name), or side-by-side AB images")
        groups, where = list(match_pairs(folder)), [os.path.join(folder, "A"), os.path.join(folder, "B")]
    else:
        groups, where = [list_images(folder, recursive=False)], [folder]
        if not groups[0]:
            raise ValueError(f"no images found in {folder}: layout 'paired' expects side-by-side AB images, or "
                             f"sub-folders A/ and B/ (found sub-folders: {', '.join(subs) or 'none'})")
    keep = subset_indices(len(groups[0]), n, seed, root)
    if keep is not None:
        groups = [[g[i] for i in keep.tolist()] for g in groups]

    probes = [[probe_image(f) for f in g] for g in groups]
    if len(groups) == 1:
        for f, p in zip(groups[0], probes[0]):
            if p[1][1] % 2:
                raise ValueError(f"side-by-side AB image {f} has an odd width ({p[1][1]} pixels): cannot split it "
                                 f"at the middle into A | B")
        probes = [[(c, (h, w // 2), m) for c, (h, w), m in probes[0]]]
    hw = uniform_hw(folder, sum(groups, []), sum(probes, []), size)
    sides = [ImageFiles(g, uniform_channels(w, g, p, channels), size, hw, halves=len(groups) == 1)
             for w, g, p in zip(where, groups, probes)]
    eager = _folder.decide_eager(eager, len(groups[0]) * len(groups), sum(s.nbytes for s in sides))
    return PairedImages(root, sides, direction, split, eager)
