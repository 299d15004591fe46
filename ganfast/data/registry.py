"""``load(spec)``: one entry point for built-in datasets, image folders and NumPy files."""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Tuple

from . import digits as _digits
from ._checks import check_channels, check_image_size, check_num_samples, check_seed
from .arrays import load_array
from .dataset import GANDataset
from .folder import IMAGE_EXTENSIONS, load_image_folder
from .mixtures import MIXTURES, load_mixture

_ARRAY_SUFFIXES = (".npy", ".npz")


def _mixture_loader(name: str) -> Callable[..., GANDataset]:
    def load_it(**options) -> GANDataset:
        return load_mixture(name, **options)

    return load_it


#: built-in name -> (one-line description, loader taking load()'s keyword options)
_BUILTINS: Dict[str, Tuple[str, Callable[..., GANDataset]]] = {
    **{name: (m.description, _mixture_loader(name)) for name, m in MIXTURES.items()},
    "digits": (_digits.DESCRIPTION, _digits.load_digits),
}


class UnknownDataset(FileNotFoundError, ValueError):
    """A spec that is neither a built-in name nor an existing path.

    Both a ``ValueError`` (an unknown name) and a ``FileNotFoundError`` (a
    missing path): a bare word like ``cifar10`` could have been meant as either.
    """


def names() -> List[str]:
    """Names of the built-in datasets."""
    return list(_BUILTINS)


def describe() -> List[Tuple[str, str]]:
    """``(name, one-line description)`` for ``ganfast list``: built-ins, then the path forms ``load`` accepts."""
    exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    return [(name, desc) for name, (desc, _) in _BUILTINS.items()] + [
        ("<folder>", f"a folder of images ({exts}), searched recursively; one sub-folder per class gives labels"),
        ("<file>.npy|.npz", "an array of points (N, D) or images (N, H, W), (N, C, H, W), (N, H, W, C); "
                            ".npz: samples under 'x', optional int labels under 'y'"),
    ]


def load(spec, *, image_size: Optional[int] = None, channels: Optional[int] = None,
         num_samples: Optional[int] = None, seed: int = 0) -> GANDataset:
    """Load a dataset by built-in name (see :func:`names`) or path (image folder, ``.npy``, ``.npz``).

    A built-in name wins over a file or folder of the same name in the
    working directory; write ``./digits`` to mean the folder.

    Args:
        image_size: output side for images (digits: 8, 16, 32 or 64, default
            32; folders and arrays: shorter side scaled to it, then centre
            crop; default: the images' own size).  Refused for points.
        channels: 1, 3 or 4 to convert images to gray, RGB or RGBA.  Refused for points.
        num_samples: points drawn from a mixture (default 100_000), or a seeded
            random subset of the other datasets.
        seed: seeds the mixture draw or the subset choice.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"spec must be a dataset name or a path, got {type(spec).__name__}")
    # Checked here as well as in each loader so a bad option is reported before any file is touched.
    options = dict(image_size=check_image_size(image_size), channels=check_channels(channels),
                   num_samples=check_num_samples(num_samples), seed=check_seed(seed))
    if isinstance(spec, str) and spec in _BUILTINS:
        return _BUILTINS[spec][1](**options)
    path = os.fspath(spec)
    if not path:
        raise ValueError(f"spec is empty; expected one of {', '.join(names())}, a folder, or an .npy/.npz file")
    if os.path.isdir(path):
        return load_image_folder(path, **options)
    suffix = os.path.splitext(path)[1].lower()
    if os.path.exists(path):
        if suffix in _ARRAY_SUFFIXES:
            return load_array(path, **options)
        raise ValueError(f"cannot load {path}: expected an image folder or an .npy/.npz file, not a {suffix or 'file'}")
    if os.sep in path or (os.altsep and os.altsep in path) or suffix:
        raise FileNotFoundError(f"no such file or folder: {path}")
    raise UnknownDataset(
        f"unknown dataset {path!r}: not a built-in ({', '.join(names())}) and no file or folder of that name exists"
    )
