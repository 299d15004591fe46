"""Datasets for GAN training: built-in benchmarks, image folders and NumPy files.

``load(spec)`` returns a :class:`GANDataset` for

* ``ring8`` / ``grid25``: 2-D Gaussian mixtures, the mode-collapse
  benchmarks (:mod:`.mixtures`; scored by :func:`ganfast.metrics.mode_coverage`);
* ``digits``: scikit-learn's 8x8 handwritten digits, labelled (:mod:`.digits`);
* a folder of images, labelled by sub-folder (:mod:`.folder`);
* an ``.npy`` or ``.npz`` array of points or images (:mod:`.arrays`).

Images come out float32 ``(C, H, W)`` in [-1, 1]; ``dataset[i]`` is
``(x, y)`` with ``y = -1`` for unlabeled data.
"""

from .arrays import load_array
from .dataset import GANDataset
from .digits import load_digits
from .folder import IMAGE_EXTENSIONS, LazyImageFolder, load_image_folder
from .mixtures import MIXTURES, mixture_modes, sample_mixture
from .registry import UnknownDataset, describe, load, names

__all__ = [
    "GANDataset",
    "IMAGE_EXTENSIONS",
    "LazyImageFolder",
    "MIXTURES",
    "UnknownDataset",
    "describe",
    "load",
    "load_array",
    "load_digits",
    "load_image_folder",
    "mixture_modes",
    "names",
    "sample_mixture",
]
