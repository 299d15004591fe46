"""``load(spec)``: one entry point for built-in datasets, folders in every layout, and NumPy files."""

from __future__ import annotations

import functools
import os
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple

from . import digits as _digits
from . import edges as _edges
from . import packaged as _packaged
from . import shoes as _shoes
from ._checks import check_channels, check_image_size, check_num_samples, check_seed
from .arrays import load_array
from .captions import CSV_NAME, load_captions
from .dataset import LAYOUTS, BatchDataset
from .folder import IMAGE_EXTENSIONS, load_image_folder, sub_folders
from .frames import FRAMES_PER_SAMPLE, check_frames_per_sample, load_frames
from .mixtures import MIXTURES, load_mixture
from .paired import check_direction, load_paired
from .unpaired import load_unpaired

_ARRAY_SUFFIXES = (".npy", ".npz")
#: load()'s options that only some datasets take, and which folders take them (for the error refusing them;
#: the built-ins that take one are listed from their _Builtin.takes).
_EXTRA_OPTIONS: Dict[str, str] = {
    "split": "paired, unpaired and two-domain frame folders",
    "frames_per_sample": "frame folders (layout='frames')",
    "direction": "paired folders (layout='paired')",
}


class _Builtin(NamedTuple):
    description: str
    loader: Callable[..., BatchDataset]
    layout: str  # one of LAYOUTS
    takes: Tuple[str, ...] = ()  # the _EXTRA_OPTIONS it accepts
    labelled: bool = False


#: built-in name -> what it is, its loader (taking load()'s keyword options), its layout
_BUILTINS: Dict[str, _Builtin] = {
    **{name: _Builtin(m.description, functools.partial(load_mixture, name), "points") for name, m in MIXTURES.items()},
    "digits": _Builtin(_digits.DESCRIPTION, _digits.load_digits, "images", labelled=True),
    "fashion-mnist": _Builtin(_packaged.DESCRIPTIONS["fashion-mnist"], _packaged.load_fashion_mnist, "images",
                              ("split",), labelled=True),
    "mnist5k": _Builtin(_packaged.DESCRIPTIONS["mnist5k"], _packaged.load_mnist5k, "images", labelled=True),
    "lfw-faces": _Builtin(_packaged.DESCRIPTIONS["lfw-faces"], _packaged.load_lfw_faces, "images"),
    **{name: _Builtin(_packaged.DESCRIPTIONS[name], functools.partial(_packaged.load_photo, name), "images")
       for name in _packaged.PHOTOS},
    "fashion-edges": _Builtin(_edges.DESCRIPTION, _edges.load_fashion_edges, "paired", ("split",)),
    "fashion-shoes": _Builtin(_shoes.DESCRIPTIONS["fashion-shoes"], _shoes.load_fashion_shoes, "unpaired", ("split",)),
    "fashion-shoes-clips": _Builtin(_shoes.DESCRIPTIONS["fashion-shoes-clips"], _shoes.load_fashion_shoes_clips,
                                    "frames", ("split", "frames_per_sample")),
}

#: batch fields per layout of a built-in (without labels)
_LAYOUT_FIELDS: Dict[str, Tuple[str, ...]] = {"paired": ("image", "target"), "unpaired": ("image", "target"),
                                              "frames": ("frames", "target_frames")}

#: folder layout -> (loader, the _EXTRA_OPTIONS it accepts)
_FOLDER_LOADERS: Dict[str, Tuple[Callable[..., BatchDataset], Tuple[str, ...]]] = {
    "images": (load_image_folder, ()),
    "paired": (load_paired, ("split", "direction")),
    "unpaired": (load_unpaired, ("split",)),
    "frames": (load_frames, ("split", "frames_per_sample")),
    "captions": (load_captions, ()),
}


class UnknownDataset(FileNotFoundError, ValueError):
    """A spec that is neither a built-in name nor an existing path.

    Both a ``ValueError`` (an unknown name) and a ``FileNotFoundError`` (a
    missing path): a bare word like ``cifar10`` could have been meant as either.
    """


def names() -> List[str]:
    """Names of the built-in datasets."""
    return list(_BUILTINS)


def batch_fields(name: str) -> Tuple[str, ...]:
    """The batch fields built-in dataset ``name`` fills, without loading it (``ganfast list``).

    Raises:
        ValueError: ``name`` is not a built-in.
    """
    if name not in _BUILTINS:
        raise ValueError(f"unknown built-in dataset {name!r}; choices: {', '.join(_BUILTINS)}")
    b = _BUILTINS[name]
    if b.layout in _LAYOUT_FIELDS:
        return _LAYOUT_FIELDS[b.layout]
    return ("image", "label") if b.labelled else ("image",)


def layouts() -> List[Tuple[str, str]]:
    """``(layout, what a batch holds)`` for every value of ``layout`` (:data:`ganfast.data.dataset.LAYOUTS`)."""
    return list(LAYOUTS.items())


def describe() -> List[Tuple[str, str]]:
    """``(name, one-line description)`` for ``ganfast list``: built-ins, then the path forms ``load`` accepts."""
    exts = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    return [(name, b.description) for name, b in _BUILTINS.items()] + [
        ("<folder>", f"a folder of images ({exts}), searched recursively; one sub-folder per class gives labels"),
        ("<folder> (layout paired)", "pix2pix pairs: sub-folders A/ and B/ matched by file name (detected), or "
                                     "side-by-side AB images (layout='paired'); optional train/ val/ test/ (split), "
                                     "direction AtoB or BtoA"),
        ("<folder> (layout unpaired)", "CycleGAN domains: trainA/ + trainB/ (detected; split='test': testA/ + testB/),"
                                       " B re-paired with A every epoch"),
        ("<folder> (layout frames)", f"one sub-folder per clip of numbered frames, served as runs of "
                                     f"frames_per_sample (default {FRAMES_PER_SAMPLE}) frames; A/ + B/ (or trainA/ + "
                                     f"trainB/) of clips for unpaired video (layout='frames')"),
        ("<folder> (layout captions)", f"images with a .txt of the same stem (one caption per line) or a {CSV_NAME} "
                                       f"with columns file, caption (layout='captions')"),
        ("<file>.npy|.npz", "an array of points (N, D) or images (N, H, W), (N, C, H, W), (N, H, W, C); "
                            ".npz: samples under 'x', optional int labels under 'y'"),
    ]


def _check_layout(layout) -> Optional[str]:
    if layout is None:
        return None
    if not isinstance(layout, str):
        raise TypeError(f"layout must be one of {tuple(LAYOUTS)} or None, got {layout!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)} (or None to detect it), got {layout!r}")
    return layout


def _refuse(extras: Dict[str, object], takes: Tuple[str, ...], what: str) -> Dict[str, object]:
    """The extra options ``takes`` lists (those given); ValueError for any other one given."""
    for opt, value in extras.items():
        if value is not None and opt not in takes:
            builtins = ", ".join(n for n, b in _BUILTINS.items() if opt in b.takes)
            raise ValueError(f"{opt}={value!r} does not apply to {what}; it applies to "
                             f"{builtins + ' and ' if builtins else ''}{_EXTRA_OPTIONS[opt]}")
    return {k: v for k, v in extras.items() if k in takes and v is not None}


def detect_layout(path: str, split: Optional[str] = None) -> str:
    """The layout of folder ``path`` when none is asked for: ``unpaired``, ``paired`` or ``images``.

    ``unpaired`` when it has ``trainA/`` and ``trainB/`` (or ``testA/`` + ``testB/``, or
    ``<split>A/`` + ``<split>B/``); ``paired`` when its sub-folders are exactly ``A/`` and ``B/``;
    otherwise an image folder.  Side-by-side pairs, frames and captions are never guessed.
    """
    subs = set(sub_folders(path))
    prefixes = ["train", "test"] + ([split] if isinstance(split, str) else [])
    if any({p + "A", p + "B"} <= subs for p in prefixes):
        return "unpaired"
    if subs == {"A", "B"}:
        return "paired"
    return "images"


def load(spec, *, image_size: Optional[int] = None, channels: Optional[int] = None,
         num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None,
         layout: Optional[str] = None, frames_per_sample: Optional[int] = None,
         direction: Optional[str] = None) -> BatchDataset:
    """Load a dataset by built-in name (see :func:`names`) or path (a folder in any layout, ``.npy``, ``.npz``).

    A built-in name wins over a file or folder of the same name in the
    working directory; write ``./digits`` to mean the folder.

    Args:
        image_size: output side for images (digits: 8, 16, 32 or 64, default 16; fashion-mnist,
            mnist5k, lfw-faces: default 32; photos: the crop side, default 64; folders and
            arrays: shorter side scaled to it, then centre crop; default: their own size).
            Refused for points.
        channels: 1, 3 or 4 to convert images to gray, RGB or RGBA.  Refused for points.
        num_samples: points drawn from a mixture (default 100_000), crops of a photo (default
            10_000), windows per domain of fashion-shoes-clips (default: those of 1,000 clips), or
            a seeded random subset of the other datasets (per domain for two domains).
        seed: seeds the mixture draw, the crops, the subset choice and per-epoch pairings.
        split: ``"train"``/``"test"`` for fashion-mnist, fashion-edges, fashion-shoes and
            fashion-shoes-clips; the split sub-folder of a paired,
            unpaired or two-domain frames folder.
        layout: one of :data:`ganfast.data.dataset.LAYOUTS`; None detects it (see
            :func:`detect_layout`); ``paired`` side-by-side images, ``frames`` and ``captions``
            must be asked for.
        frames_per_sample: frames per sample for ``layout="frames"`` and fashion-shoes-clips (default 3).
        direction: ``"AtoB"`` (default) or ``"BtoA"`` for paired folders.

    Returns:
        a :class:`~ganfast.data.dataset.BatchDataset` (a :class:`~ganfast.data.dataset.GANDataset`
        for points and plain images).

    Raises:
        TypeError, ValueError: a bad option, or one that does not apply to the dataset.
        FileNotFoundError: a missing path (:class:`UnknownDataset` for an unknown bare name).
        ImportError: an optional package a built-in needs is missing (with the pip command).
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"spec must be a dataset name or a path, got {type(spec).__name__}")
    # Checked here as well as in each loader so a bad option is reported before any file is touched.
    options = dict(image_size=check_image_size(image_size), channels=check_channels(channels),
                   num_samples=check_num_samples(num_samples), seed=check_seed(seed))
    layout = _check_layout(layout)
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train' or None, got {split!r}")
    extras = dict(split=split, frames_per_sample=frames_per_sample, direction=direction)
    if frames_per_sample is not None:
        check_frames_per_sample(frames_per_sample)
    if direction is not None:
        check_direction(direction)
    if isinstance(spec, str) and spec in _BUILTINS:
        b = _BUILTINS[spec]
        if layout is not None and layout != b.layout:
            raise ValueError(f"layout={layout!r} does not fit dataset {spec!r}, whose layout is {b.layout!r}")
        return b.loader(**options, **_refuse(extras, b.takes, f"dataset {spec!r}"))
    path = os.fspath(spec)
    if not path:
        raise ValueError(f"spec is empty; expected one of {', '.join(names())}, a folder, or an .npy/.npz file")
    if os.path.isdir(path):
        chosen = layout or detect_layout(path, split)
        if chosen == "points":
            raise ValueError(f"layout='points' does not fit folder {path}: points come from an .npy/.npz file; "
                             f"a folder holds images (layouts {', '.join(_FOLDER_LOADERS)})")
        loader, takes = _FOLDER_LOADERS[chosen]
        return loader(path, **options, **_refuse(extras, takes, f"folder {path} (layout {chosen!r})"))
    suffix = os.path.splitext(path)[1].lower()
    if os.path.exists(path):
        if suffix in _ARRAY_SUFFIXES:
            _refuse(extras, (), f"array file {path}")
            if layout not in (None, "points", "images"):
                raise ValueError(f"layout={layout!r} does not fit array file {path}: an .npy/.npz holds points "
                                 f"or images (layout 'points' or 'images'); {layout} data comes from a folder")
            ds = load_array(path, **options)
            if layout is not None and layout != ds.layout:
                raise ValueError(f"layout={layout!r} does not fit {path}: it holds {ds.layout} "
                                 f"(sample shape {ds.sample_shape})")
            return ds
        raise ValueError(f"cannot load {path}: expected a folder or an .npy/.npz file, not a {suffix or 'file'}")
    if os.sep in path or (os.altsep and os.altsep in path) or suffix:
        raise FileNotFoundError(f"no such file or folder: {path}")
    raise UnknownDataset(
        f"unknown dataset {path!r}: not a built-in ({', '.join(names())}) and no file or folder of that name exists"
    )
