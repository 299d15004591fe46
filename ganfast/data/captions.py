"""Captioned images (text-to-image GANs): fields ``image`` and ``text`` (one caption per image).

Captions come from either

* a ``captions.csv`` in the folder: a header row with columns ``file`` (the
  image's path relative to the folder) and ``caption``, then one row per
  caption (several rows per file allowed); read with the :mod:`csv` module;
* or, without it, a text file beside each image with the same stem
  (``bird_01.png`` + ``bird_01.txt``), one caption per non-empty line.

Every image must have a caption.  With several, sample ``i`` of epoch ``e``
takes the one chosen by a hash of ``(seed, e, i)``: reproducible, resumable,
and different from epoch to epoch.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List, Optional, Sequence

import torch

from . import folder as _folder
from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from .batch import Batch
from .dataset import BatchDataset
from .folder import ImageFiles, list_images, probe_image, require_folder, uniform_channels, uniform_hw

CSV_NAME = "captions.csv"
CSV_COLUMNS = ("file", "caption")
_SHOWN = 5
_MASK = (1 << 64) - 1


def caption_choice(seed: int, epoch: int, index: int, count: int) -> int:
    """Which of ``count`` captions sample ``index`` takes at ``epoch``: splitmix64 of the three, mod ``count``."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB + 1) & _MASK
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = ((z ^ (z >> shift)) * mult) & _MASK
    return (z ^ (z >> 31)) % count


def _some(items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def read_caption_csv(path: str, root: str, files: Sequence[str]) -> Dict[str, List[str]]:
    """Captions per image file from ``path`` (see the module docstring).

    Raises:
        ValueError: the file cannot be read as UTF-8 CSV, lacks the columns, or names a missing image.
    """
    known = {os.path.normpath(os.path.relpath(f, root)): f for f in files}
    out: Dict[str, List[str]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if any(c not in columns for c in CSV_COLUMNS):
                raise ValueError(f"{path}: the header row must name the columns {CSV_COLUMNS}, found "
                                 f"{tuple(columns) or 'an empty file'}")
            for row in reader:
                name, text = (row[c] or "" for c in CSV_COLUMNS)
                f = known.get(os.path.normpath(name.strip())) if name.strip() else None
                if f is None:
                    raise ValueError(f"{path} line {reader.line_num}: no image {name!r} in {root}")
                if text.strip():
                    out.setdefault(f, []).append(text.strip())
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"cannot read {path} as a UTF-8 CSV file: {e}") from e
    return out


def read_caption_files(files: Sequence[str]) -> Dict[str, List[str]]:
    """Captions per image from the ``.txt`` beside it (non-empty lines, stripped); images without one are left out."""
    out: Dict[str, List[str]] = {}
    for f in files:
        txt = os.path.splitext(f)[0] + ".txt"
        if not os.path.isfile(txt):
            continue
        try:
            with open(txt, encoding="utf-8") as fh:
                lines = [line.strip() for line in fh]
        except (UnicodeDecodeError, OSError) as e:
            raise ValueError(f"cannot read caption file {txt} as UTF-8 text: {e}") from e
        if any(lines):
            out[f] = [line for line in lines if line]
    return out


class CaptionedImages(BatchDataset):
    """Images with captions (``layout="captions"``, fields ``("image", "text")``).

    Attributes (beyond :class:`BatchDataset`'s):
        captions: every caption of each image (``captions[i]`` a list of str).
        seed: seeds each epoch's caption choice.

    ``dataset[i]`` is ``{"image": (C, H, W) float32 in [-1, 1], "text": str}``; a batch's
    ``text`` is a list of B str.
    """

    kind = "image"
    layout = "captions"
    fields = ("image", "text")

    def __init__(self, name: str, images: ImageFiles, captions: Sequence[List[str]], seed: int, eager: bool):
        self.name = name
        self.images = images.load() if eager else images
        self.captions = [list(c) for c in captions]
        self.seed = seed
        self.in_memory = eager
        self.tensors = None
        self.sample_shape = tuple(int(v) for v in images.item_shape)

    def __len__(self) -> int:
        return len(self.images)

    def caption(self, index: int, epoch: Optional[int] = None) -> str:
        """The caption sample ``index`` takes at ``epoch`` (default: the current one)."""
        caps = self.captions[index]
        epoch = self.epoch if epoch is None else epoch
        return caps[0] if len(caps) == 1 else caps[caption_choice(self.seed, epoch, index, len(caps))]

    def __getitem__(self, index) -> Dict[str, object]:
        i = int(index)
        return {"image": self.images[i], "text": self.caption(i)}

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        self.set_epoch(epoch)
        indices = indices.cpu()
        return Batch(image=self.images.take(indices), text=[self.caption(i) for i in indices.tolist()])

    def __repr__(self) -> str:
        total = sum(len(c) for c in self.captions)
        return (f"CaptionedImages({self.name!r}, N={len(self)}, shape={self.sample_shape}, {total} captions, "
                f"{'in memory' if self.in_memory else 'lazy'})")


def load_captions(root, *, image_size: Optional[int] = None, channels: Optional[int] = None,
                  num_samples: Optional[int] = None, seed: int = 0, eager: Optional[bool] = None) -> CaptionedImages:
    """Captioned images from the folder ``root`` (searched recursively; see the module docstring).

    Args:
        image_size: output side (shorter side scaled, then centre crop); without it the images
            must share one size.
        channels: convert to 1, 3 or 4 channels; without it the images must agree.
        num_samples: keep a seeded random subset of the images.
        seed: seeds the subset and each epoch's caption choice.
        eager: decode into memory (True), per sample (False) or by size (None).

    Returns:
        a :class:`CaptionedImages`.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no images, images without captions (named), a bad ``captions.csv``,
            differing sizes or channels.
    """
    root = os.fspath(root)
    size, channels = check_image_size(image_size), check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    files = list_images(require_folder(root))
    if not files:
        raise ValueError(f"no images found in folder {root} (looked for {', '.join(_folder.IMAGE_EXTENSIONS)}, "
                         f"recursively)")
    csv_path = os.path.join(root, CSV_NAME)
    from_csv = os.path.isfile(csv_path)
    captions = read_caption_csv(csv_path, root, files) if from_csv else read_caption_files(files)
    bare = [os.path.relpath(f, root) for f in files if f not in captions]
    if bare:
        source = f"rows in {csv_path}" if from_csv else "a .txt file of the same stem with a non-empty line"
        raise ValueError(f"{len(bare)} image(s) in {root} have no caption (expected {source}): {_some(bare)}")
    keep = subset_indices(len(files), n, seed, root)
    if keep is not None:
        files = [files[i] for i in keep.tolist()]
    probes = [probe_image(f) for f in files]
    channels = uniform_channels(root, files, probes, channels)
    images = ImageFiles(files, channels, size, uniform_hw(root, files, probes, size))
    eager = _folder.decide_eager(eager, len(files), images.nbytes)
    return CaptionedImages(root, images, [captions[f] for f in files], seed, eager)
