"""Datasets from a folder of image files, labelled by sub-folder when it has them.

``load_image_folder(root)`` lists the images under ``root`` recursively.  If
they all sit inside ``root``'s immediate sub-folders (at any depth below
them), each sub-folder is a class, labelled 0..K-1 in sorted name order;
if they all sit directly in ``root`` the dataset is unlabeled; a mix of both
is refused, since neither reading is clearly meant.  Hidden files and
folders (names starting with ".") are skipped.

Every file's header is read once at load (Pillow, no pixel decode) so an
unreadable file, mixed channel counts or mixed sizes are reported before
training starts, not some minutes into it.  Small folders are then decoded
into memory; large ones are decoded image by image in ``__getitem__``.

The other folder layouts (:mod:`.paired`, :mod:`.unpaired`, :mod:`.frames`,
:mod:`.captions`) share this module's listing, probing and decoding:
:func:`list_images`, :func:`uniform_channels` / :func:`uniform_hw`,
:func:`decide_eager` and :class:`ImageFiles`.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from ._images import IMAGE_EXTENSIONS, decode_pixels, resize_square, uint8_to_float
from .dataset import GANDataset


#: A folder is decoded into memory at load when it has at most this many images
#: and its decoded uint8 pixels (at the output size) take less than EAGER_MAX_BYTES.
EAGER_MAX_IMAGES = 20_000
EAGER_MAX_BYTES = 256 * 2**20

_PIL_MODE = {1: "L", 3: "RGB", 4: "RGBA"}
# Native Pillow mode -> channels it loads as.  Alpha is kept only for true RGBA:
# LA and PA are gray/palette images whose alpha is rarely meant as a channel.
_MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "La": 1, "I": 1, "F": 1, "RGBA": 4, "RGBa": 4}


def _pillow():
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("loading an image folder needs Pillow: pip install pillow") from e
    return Image


def mode_channels(mode: str) -> int:
    """Channels a Pillow image of ``mode`` loads as (P, CMYK, YCbCr, ... as RGB)."""
    if mode.startswith("I;"):
        return 1
    return _MODE_CHANNELS.get(mode, 3)


def is_image_name(name: str) -> bool:
    """Whether a file name is a visible image (one of :data:`IMAGE_EXTENSIONS`, any case)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(folder: str, seen: set) -> List[str]:
    """Image files under ``folder``, sorted, following links without looping on cycles."""
    real = os.path.realpath(folder)
    if real in seen:
        return []
    seen.add(real)
    files, subdirs = [], []
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                subdirs.append(entry.path)
            elif entry.is_file() and is_image_name(entry.name):
                files.append(entry.path)
    out = sorted(files)
    for d in sorted(subdirs):
        out.extend(_walk(d, seen))
    return out


def require_folder(path: str) -> str:
    """``path`` if it is a folder; FileNotFoundError if it does not exist, NotADirectoryError if it is a file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such folder: {path}")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"not a folder: {path}")
    return path


def scan_folder(root: str) -> Tuple[List[str], Optional[List[int]], Optional[List[str]]]:
    """``(files, labels, classes)`` for an image folder; labels and classes are ``None`` when it is flat.

    Sub-folders without any image are not classes.
    """
    require_folder(root)
    seen: set = set()
    top, per_class = [], {}
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    seen.add(os.path.realpath(root))
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found = _walk(entry.path, seen)
            if found:
                per_class[entry.name] = found
        elif entry.is_file() and is_image_name(entry.name):
            top.append(entry.path)
    if not top and not per_class:
        raise ValueError(f"no images found in folder {root} (looked for {', '.join(IMAGE_EXTENSIONS)}, recursively)")
    if top and per_class:
        raise ValueError(
            f"folder {root} has images both directly inside it (e.g. {os.path.basename(top[0])}) and in "
            f"sub-folders (e.g. {next(iter(per_class))}/); put every image in a class sub-folder for a "
            f"labelled dataset, or all of them in one folder for an unlabeled one"
        )
    if top:
        return top, None, None
    classes = sorted(per_class)
    files = [f for c in classes for f in per_class[c]]
    labels = [k for k, c in enumerate(classes) for _ in per_class[c]]
    return files, labels, classes


def probe_image(path: str) -> Tuple[int, Tuple[int, int], str]:
    """``(channels, (height, width), mode)`` from an image's header, without decoding its pixels."""
    Image = _pillow()
    try:
        with Image.open(path) as im:
            width, height = im.size
            mode = im.mode
    except (OSError, SyntaxError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise ValueError(f"cannot read image file {path}: {e}") from e
    return mode_channels(mode), (height, width), mode


def decode_image(path: str, channels: int, image_size: Optional[int] = None) -> torch.Tensor:
    """Decode one image to float32 ``(channels, H, W)`` in [-1, 1], resized like the rest of the folder
    (pixels from :func:`ganfast.data._images.decode_pixels`, the decoder every reader shares)."""
    pixels = decode_pixels(path, _PIL_MODE[channels])
    t = torch.from_numpy(pixels)
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
    return resize_square(uint8_to_float(t)[None], image_size)[0]


def list_images(folder: str, recursive: bool = True) -> List[str]:
    """Image files under ``folder`` (at any depth, or directly inside it), sorted; ``[]`` when there are none.

    Hidden names are skipped.  Raises FileNotFoundError or NotADirectoryError from :func:`require_folder`.
    """
    if recursive:
        return _walk(require_folder(folder), set())
    with os.scandir(require_folder(folder)) as it:
        return sorted(e.path for e in it if e.is_file() and is_image_name(e.name))


def sub_folders(folder: str) -> List[str]:
    """Names of the visible sub-folders of ``folder``, sorted."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def common_value(root: str, files: Sequence[str], values: Sequence, shown: Sequence[str], what: str, fix: str):
    """The value every image shares, or a ValueError naming the first file and one that differs."""
    for f, v, s in zip(files, values, shown):
        if v != values[0]:
            raise ValueError(f"images in {root} have different {what}: {files[0]} has {shown[0]}, {f} has {s}; {fix}")
    return values[0]


def uniform_channels(root: str, files: Sequence[str], probes: Sequence[tuple], channels: Optional[int]) -> int:
    """``channels`` if given, else the channel count every probed image shares (ValueError naming two that differ)."""
    if channels is not None:
        return channels
    return common_value(root, files, [p[0] for p in probes], [f"{p[0]} channel(s) (mode {p[2]})" for p in probes],
                        "channel counts", "convert every image with --channels 1, 3 or 4 (gray, RGB, RGBA) on "
                        "the command line, or channels=1, 3 or 4 in ganfast.data.load")


def uniform_hw(root: str, files: Sequence[str], probes: Sequence[tuple], size: Optional[int]) -> Tuple[int, int]:
    """``(size, size)`` if given, else the ``(H, W)`` every probed image shares (ValueError naming two that differ).

    A probe is ``(channels, (H, W), mode)`` as :func:`probe_image` returns it.
    """
    if size is not None:
        return size, size
    return common_value(root, files, [p[1] for p in probes], [f"{p[1][1]}x{p[1][0]} pixels (WxH)" for p in probes],
                        "sizes", "pass image_size= to resize them all (shorter side scaled, then centre-cropped)")


def decide_eager(eager: Optional[bool], num_images: int, nbytes: int) -> bool:
    """Whether to decode into memory at load: ``eager`` if given, else by count and uint8 bytes at the output size."""
    if eager is None:
        return num_images <= EAGER_MAX_IMAGES and nbytes < EAGER_MAX_BYTES
    return bool(eager)


class ImageFiles:
    """Image files decoded to one shape, float32 in [-1, 1]: in memory after :meth:`load`, else file by file.

    Args:
        files: the image paths (item ``i`` is ``files[i]``).
        channels: output channels (1, 3 or 4).
        image_size: ``None`` keeps each image's size (the caller checked they agree), else
            shorter side scaled to it and centre-cropped.
        out_hw: the ``(H, W)`` of one output image (of one half when ``halves``).
        halves: split each image at the middle of its width (pix2pix's side-by-side ``AB``
            files): an item is then ``(2, C, H, W)``, left half first.

    Holds paths only until :meth:`load`, so a lazy dataset pickles cheaply into workers.
    """

    def __init__(self, files: Sequence[str], channels: int, image_size: Optional[int], out_hw: Tuple[int, int],
                 halves: bool = False):
        self.files = list(files)
        self.channels = channels
        self.image_size = image_size
        self.halves = halves
        self.item_shape = ((2,) if halves else ()) + (channels, *out_hw)
        self.memory: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def nbytes(self) -> int:
        """Bytes of all items as uint8 (what :func:`decide_eager` weighs)."""
        return len(self.files) * int(np.prod(self.item_shape))

    def decode(self, i: int) -> torch.Tensor:
        """Item ``i`` decoded from its file: float32 ``item_shape``."""
        if not self.halves:
            return decode_image(self.files[i], self.channels, self.image_size)
        x = decode_image(self.files[i], self.channels, None)
        w = x.shape[-1] // 2
        return resize_square(torch.stack([x[..., :w], x[..., w:]]), self.image_size)

    def load(self) -> "ImageFiles":
        """Decode every file into one float32 tensor ``(N, *item_shape)``; returns ``self``."""
        memory = torch.empty((len(self.files), *self.item_shape), dtype=torch.float32)
        for i in range(len(self.files)):
            memory[i] = self.decode(i)
        self.memory = memory
        return self

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.memory[i] if self.memory is not None else self.decode(int(i))

    def take(self, indices: torch.Tensor) -> torch.Tensor:
        """Items at ``indices`` (int64 ``(B,)``) as ``(B, *item_shape)``."""
        if self.memory is not None:
            return self.memory[indices]
        return torch.stack([self.decode(i) for i in indices.tolist()])


class LazyImageFolder(GANDataset):
    """An image folder decoded file by file in ``__getitem__`` (``tensors`` is ``None``).

    Holds only paths and labels, so it pickles cheaply into ``DataLoader`` workers.
    """

    def __init__(self, name: str, files: Sequence[str], labels: Optional[torch.Tensor],
                 classes: Optional[Sequence[str]], channels: int, out_hw: Tuple[int, int],
                 image_size: Optional[int]):
        self._set_meta(name, "image", (channels, *out_hw), classes)
        self.tensors = None
        self.images = ImageFiles(files, channels, image_size, out_hw)
        self.files = self.images.files
        self.labels = labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        index = int(index)
        y = self.labels[index] if self.labels is not None else torch.tensor(-1, dtype=torch.int64)
        return self.images.decode(index), y


def load_image_folder(root, *, image_size: Optional[int] = None, channels: Optional[int] = None,
                      num_samples: Optional[int] = None, seed: int = 0,
                      eager: Optional[bool] = None) -> GANDataset:
    """A dataset from the images under ``root`` (see the module docstring).

    ``channels`` converts every image (1 gray, 3 RGB, 4 RGBA); without it the
    images must agree.  ``image_size`` scales each image's shorter side to it
    and centre-crops a square; without it the images must share one size,
    which is kept.  ``num_samples`` keeps a seeded random subset (labels are
    still numbered over all the classes).  ``eager`` forces (``True``) or
    forbids (``False``) decoding into memory; ``None`` decides by size.
    """
    root = os.fspath(root)
    size = check_image_size(image_size)
    channels = check_channels(channels)
    n = check_num_samples(num_samples)
    seed = check_seed(seed)

    files, labels, classes = scan_folder(root)
    keep = subset_indices(len(files), n, seed, root)
    if keep is not None:
        files = [files[i] for i in keep.tolist()]
        labels = [labels[i] for i in keep.tolist()] if labels is not None else None

    probes = [probe_image(f) for f in files]
    channels = uniform_channels(root, files, probes, channels)
    out_hw = uniform_hw(root, files, probes, size)

    y = torch.tensor(labels, dtype=torch.int64) if labels is not None else None
    if not decide_eager(eager, len(files), len(files) * channels * out_hw[0] * out_hw[1]):
        return LazyImageFolder(root, files, y, classes, channels, out_hw, size)
    x = ImageFiles(files, channels, size, out_hw).load().memory
    return GANDataset(root, x, y, classes=classes)
